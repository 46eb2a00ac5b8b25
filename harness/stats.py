"""Statistics over repeats: means with intervals, and ratios with intervals.

Repeats of one training are few (often 2 to 5), so every interval uses Student's t with
the right degrees of freedom, never the normal approximation, and a single run gets no
interval at all rather than a misleading zero-width one.

Ratios (speed-up, energy and CO2 of a hardware against its baseline) are computed on
the logarithms of the per-run values: times and energies are positive and their noise
is multiplicative (a slower run is slower by a factor), so the log of a ratio is a
difference of means. When the runs of the two sides pair up one to one by seed (repeats
vary the seed, and every variant and hardware of a repeat uses the same one), the interval
is Student's t on the per-pair log ratios (:func:`paired_ratio`): the pair shares its
shuffles, its initial weights and its place in the session, and pairing takes that
shared variation out. Otherwise it is Welch's t interval on the difference of the mean
logs (unequal variances, Welch-Satterthwaite degrees of freedom). Either, transformed back
with exp, is an interval for the ratio of geometric means. A ratio is *distinguishable*
from 1 only when its 95% interval excludes 1; with fewer than two runs on either side it
has no interval and is not distinguishable. Differences (accuracy in percentage points)
use the same two intervals on the values directly.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
#: Coefficient of variation above which a figure is flagged as too noisy to trust.
CV_LIMIT = 0.10
#: The most repeats :func:`repeats_needed` will suggest before saying "more than".
MAX_REPEATS = 1000


def _t(df: float) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    from scipy import stats as scipy_stats  # heavy: only when there is an interval to draw

    return float(scipy_stats.t.ppf((1 + CONFIDENCE) / 2, df=df))


@dataclass(frozen=True)
class Stat:
    """One figure over the repeats of a group, in the unit of the values given.

    Attributes:
        mean: arithmetic mean.
        ci95: half-width of the 95% confidence interval of the mean (Student's t);
            None with fewer than two values.
        n: number of values.
        cv: coefficient of variation (sample standard deviation / |mean|); None with
            fewer than two values or a zero mean.
        values: the values themselves, in run order.
    """

    mean: float
    ci95: float | None
    n: int
    cv: float | None
    values: tuple[float, ...]

    @property
    def noisy(self) -> bool:
        """True when the spread over repeats exceeds :data:`CV_LIMIT`."""
        return self.cv is not None and self.cv > CV_LIMIT

    @property
    def low(self) -> float | None:
        return None if self.ci95 is None else self.mean - self.ci95

    @property
    def high(self) -> float | None:
        return None if self.ci95 is None else self.mean + self.ci95

    def as_dict(self) -> dict[str, object]:
        """Plain data for summary.json."""
        return {"mean": self.mean, "ci95": self.ci95, "low": self.low, "high": self.high,
                "n": self.n, "cv": self.cv, "values": list(self.values)}


def summarize(values: Iterable[float | None]) -> Stat | None:
    """Mean, 95% CI and CV of ``values``; None when there is no finite value.

    Missing or non-finite values are dropped rather than poisoning the mean; callers only
    pass figures of checked, usable runs, so a drop is a figure that does not exist for
    that run (an accuracy never reached), not a damaged one.
    """
    finite = tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))
    if not finite:
        return None
    n = len(finite)
    mean = statistics.fmean(finite)
    if n < 2:
        return Stat(mean=mean, ci95=None, n=n, cv=None, values=finite)
    sd = statistics.stdev(finite)
    cv = sd / abs(mean) if mean != 0 else None
    return Stat(mean=mean, ci95=_t(n - 1) * sd / math.sqrt(n), n=n, cv=cv, values=finite)


@dataclass(frozen=True)
class Comparison:
    """A ratio (or a difference) of two groups' figures with its 95% interval.

    Attributes:
        estimate: the ratio of geometric means (``kind`` "ratio") or the difference of
            means ("difference").
        low, high: the 95% interval; None without one (n < 2 on a side).
        n: (runs of the numerator, runs of the denominator).
        kind: "ratio" or "difference".
        repeats_needed: repeats per side that would make an effect of the observed size
            distinguishable at the observed spread (None when it already is, when there is
            no spread to go on, or when there is no effect at all).
    """

    estimate: float
    low: float | None
    high: float | None
    n: tuple[int, int]
    kind: str
    repeats_needed: int | None = None
    paired: bool = False
    """True when the interval comes from runs paired by seed (t on the per-pair
    differences), False for Welch's interval on two independent samples."""

    @property
    def neutral(self) -> float:
        """The value meaning "no difference": 1 for a ratio, 0 for a difference."""
        return 1.0 if self.kind == "ratio" else 0.0

    @property
    def distinguishable(self) -> bool:
        """True when the 95% interval excludes :attr:`neutral`."""
        if self.low is None or self.high is None:
            return False
        return not (self.low <= self.neutral <= self.high)

    def inverted(self) -> Comparison:
        """1 / the ratio (a speed-up from a time ratio), interval inverted."""
        assert self.kind == "ratio"
        return Comparison(
            estimate=1 / self.estimate,
            low=None if self.high is None else 1 / self.high,
            high=None if self.low is None else 1 / self.low,
            n=self.n, kind="ratio", repeats_needed=self.repeats_needed, paired=self.paired)

    def as_dict(self) -> dict[str, object]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "n": list(self.n), "kind": self.kind, "paired": self.paired,
                "distinguishable": self.distinguishable, "repeats_needed": self.repeats_needed}


def _welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float] | None:
    """(difference of means, its standard error, Welch's degrees of freedom), or None
    with fewer than two values on a side."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    se2 = va + vb
    if se2 == 0:
        return diff, 0.0, float(len(a) + len(b) - 2)
    df = se2 ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return diff, math.sqrt(se2), df


def repeats_needed(effect: float, sd_a: float, sd_b: float) -> int | None:
    """Repeats per side for an effect of size ``effect`` (on the analysed scale) to be
    distinguishable with per-run standard deviations ``sd_a`` and ``sd_b``.

    The smallest n with t(2n - 2) x sqrt((sd_a^2 + sd_b^2) / n) < |effect|; None without
    an effect or without spread, MAX_REPEATS + 1 when even that many would not do.
    """
    spread = sd_a ** 2 + sd_b ** 2
    if effect == 0 or spread == 0:
        return None
    for n in range(2, MAX_REPEATS + 1):
        if _t(2 * n - 2) * math.sqrt(spread / n) < abs(effect):
            return n
    return MAX_REPEATS + 1


def _compare(a: Sequence[float], b: Sequence[float], kind: str) -> Comparison:
    estimate = statistics.fmean(a) - statistics.fmean(b)
    welch = _welch(a, b)
    if welch is None:
        return Comparison(estimate=estimate, low=None, high=None, n=(len(a), len(b)), kind=kind)
    diff, se, df = welch
    half = _t(df) * se
    result = Comparison(estimate=diff, low=diff - half, high=diff + half, n=(len(a), len(b)),
                        kind=kind)
    if not result.distinguishable:
        needed = repeats_needed(diff, statistics.stdev(a), statistics.stdev(b))
        result = Comparison(estimate=diff, low=diff - half, high=diff + half,
                            n=(len(a), len(b)), kind=kind, repeats_needed=needed)
    return result


def ratio(numerator: Iterable[float], denominator: Iterable[float]) -> Comparison | None:
    """Ratio of geometric means of two sets of positive values, with its 95% interval.

    None when either side has no positive finite value (a ratio of nothing).
    """
    a = [math.log(v) for v in numerator if v is not None and math.isfinite(v) and v > 0]
    b = [math.log(v) for v in denominator if v is not None and math.isfinite(v) and v > 0]
    if not a or not b:
        return None
    log = _compare(a, b, "difference")  # on the log scale, "no difference" is 0
    return Comparison(estimate=math.exp(log.estimate),
                      low=None if log.low is None else math.exp(log.low),
                      high=None if log.high is None else math.exp(log.high),
                      n=log.n, kind="ratio", repeats_needed=log.repeats_needed)


def _paired(diffs: list[float], kind: str) -> Comparison:
    """Student's t interval on per-pair differences (n - 1 degrees of freedom)."""
    n = len(diffs)
    estimate = statistics.fmean(diffs)
    if n < 2:
        return Comparison(estimate=estimate, low=None, high=None, n=(n, n), kind=kind,
                          paired=True)
    sd = statistics.stdev(diffs)
    half = _t(n - 1) * sd / math.sqrt(n)
    result = Comparison(estimate=estimate, low=estimate - half, high=estimate + half, n=(n, n),
                        kind=kind, paired=True)
    if not result.distinguishable and sd > 0 and estimate != 0:
        needed = next((k for k in range(2, MAX_REPEATS + 1)
                       if _t(k - 1) * sd / math.sqrt(k) < abs(estimate)), MAX_REPEATS + 1)
        result = Comparison(estimate=estimate, low=result.low, high=result.high, n=(n, n),
                            kind=kind, repeats_needed=needed, paired=True)
    return result


def paired_ratio(pairs: Sequence[tuple[float, float]]) -> Comparison | None:
    """Ratio (numerator / denominator) of runs paired one to one, with the t interval on
    the per-pair log ratios, transformed back: the geometric mean of the per-pair ratios.

    Runs that share a seed trained on the same shuffles from the same initial weights, and
    were run side by side in one session: pairing removes that shared variation, which
    Welch's unpaired interval would count as noise. None without a positive pair.
    """
    logs = [math.log(a) - math.log(b) for a, b in pairs
            if a is not None and b is not None and a > 0 and b > 0
            and math.isfinite(a) and math.isfinite(b)]
    if not logs:
        return None
    log = _paired(logs, "difference")  # on the log scale, "no difference" is 0
    return Comparison(estimate=math.exp(log.estimate),
                      low=None if log.low is None else math.exp(log.low),
                      high=None if log.high is None else math.exp(log.high),
                      n=log.n, kind="ratio", repeats_needed=log.repeats_needed, paired=True)


def paired_difference(pairs: Sequence[tuple[float, float]]) -> Comparison | None:
    """Mean of the per-pair differences (a - b) with Student's t interval."""
    diffs = [a - b for a, b in pairs if a is not None and b is not None
             and math.isfinite(a) and math.isfinite(b)]
    return _paired(diffs, "difference") if diffs else None


def difference(a_values: Iterable[float], b_values: Iterable[float]) -> Comparison | None:
    """Difference of means (a - b) with Welch's 95% interval; None if a side is empty."""
    a = [v for v in a_values if v is not None and math.isfinite(v)]
    b = [v for v in b_values if v is not None and math.isfinite(v)]
    if not a or not b:
        return None
    return _compare(a, b, "difference")


# --- text ------------------------------------------------------------------------------

#: Below this many decimals a number is written in fixed notation, else in scientific.
_MAX_DECIMALS = 6


def _magnitude(x: float) -> int:
    return math.floor(math.log10(abs(x)))


def fmt_num(x: float | None, sig: int = 3) -> str:
    """``x`` with ``sig`` significant digits: fixed notation, scientific when tiny or huge."""
    if x is None or not math.isfinite(x):
        return "-"
    if x == 0:
        return "0"
    mag = _magnitude(x)
    decimals = max(0, sig - 1 - mag)
    if decimals > _MAX_DECIMALS or mag >= 6:
        return f"{x:.{sig - 1}e}"
    return f"{x:.{decimals}f}"


def fmt_stat(stat: Stat | None) -> str:
    """``mean ± ci95`` (the interval to 2 significant digits, the mean to the same
    decimals), or the bare value of a single run; ``-`` when there is no figure."""
    if stat is None:
        return "-"
    if stat.ci95 is None:
        return fmt_num(stat.mean)
    if stat.ci95 == 0 or stat.mean == 0:
        return f"{fmt_num(stat.mean)} ± {fmt_num(stat.ci95, 2)}"
    # The interval sets the precision (2 significant digits); the mean keeps at least one.
    decimals = max(1 - _magnitude(stat.ci95), -_magnitude(stat.mean), 0)
    if decimals > _MAX_DECIMALS or not -_MAX_DECIMALS + 2 <= _magnitude(stat.mean) < 6:
        return f"{stat.mean:.2e} ± {stat.ci95:.1e}"
    return f"{stat.mean:.{decimals}f} ± {stat.ci95:.{decimals}f}"


def fmt_comparison(c: Comparison | None, *, signed: bool = False) -> str:
    """``1.23 [1.10, 1.38]``, ``0.93 [0.81, 1.07] n.d.`` (not distinguishable), or
    ``0.93 (n=1, n.d.)`` without an interval; ``-`` when there is nothing to compare."""
    if c is None:
        return "-"

    def num(x: float) -> str:
        text = fmt_num(x)
        return f"+{text}" if signed and x > 0 else text

    if c.low is None or c.high is None:
        return f"{num(c.estimate)} (n={min(c.n)}, n.d.)"
    text = f"{num(c.estimate)} [{num(c.low)}, {num(c.high)}]" + (" p" if c.paired else "")
    return text if c.distinguishable else f"{text} n.d."
