"""Statistics over repeats: mean, 95% confidence interval (Student's t), spread.

Repeats of one training are few (often 1 to 5), so the interval uses Student's t with
n - 1 degrees of freedom, not the normal approximation, and a single run gets no
interval at all rather than a misleading zero-width one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

CONFIDENCE = 0.95
#: Coefficient of variation above which a figure is flagged as too noisy to trust.
CV_LIMIT = 0.10


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

    def as_dict(self) -> dict[str, object]:
        """Plain data for summary.json."""
        return {"mean": self.mean, "ci95": self.ci95, "n": self.n, "cv": self.cv,
                "values": list(self.values)}


def summarize(values: Iterable[float | None]) -> Stat | None:
    """Mean, 95% CI and CV of ``values``; None when there is no finite value.

    Missing or non-finite values (a run that never evaluated) are dropped rather than
    poisoning the mean; callers only pass figures of usable runs.
    """
    finite = tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))
    if not finite:
        return None
    n = len(finite)
    mean = statistics.fmean(finite)
    if n < 2:
        return Stat(mean=mean, ci95=None, n=n, cv=None, values=finite)
    from scipy import stats as scipy_stats  # heavy: only when there is an interval to draw

    sd = statistics.stdev(finite)
    t = float(scipy_stats.t.ppf((1 + CONFIDENCE) / 2, df=n - 1))
    cv = sd / abs(mean) if mean != 0 else None
    return Stat(mean=mean, ci95=t * sd / math.sqrt(n), n=n, cv=cv, values=finite)


def ratio(numerator: Stat | None, denominator: Stat | None) -> float | None:
    """Ratio of two means, or None when either is missing or the denominator is zero."""
    if numerator is None or denominator is None or denominator.mean == 0:
        return None
    return numerator.mean / denominator.mean


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
