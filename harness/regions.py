"""Regions: where electricity is priced in CO2, with CodeCarbon's own data and functions.

CO2 (kg) = energy (kWh) x carbon intensity of a region (kg/kWh). Energy does not depend
on the region, so the worker trains once under an ``OfflineEmissionsTracker`` for one
"home" region and the report re-prices the measured energy for every other declared
region with :func:`price`.

:func:`price` goes through the very functions the tracker calls
(``Emissions.get_private_infra_emissions`` / ``Emissions.get_cloud_emissions`` on a
``GeoMetadata`` / ``CloudMetadata`` built as ``OfflineEmissionsTracker`` builds them), so
for the home region it reproduces the ``emissions`` column of the tracker's CSV. The
tracker sums ``rate x delta_energy`` over its measurement intervals while we price the
total energy once; with a rate that is constant for a region (offline data, no
Electricity Maps token) the two differ only by float rounding, far below 1e-9 relative.
One CodeCarbon race can still part them: ``stop()`` does not wait for a measurement
already running in the tracker's timer thread, and energy added by it while ``stop()``
prices the last interval lands in ``energy_consumed`` but not in ``emissions``.

CodeCarbon silently prices an unknown country, sub-national region or cloud region with a
world average (or the national value); :class:`Region` refuses them instead, so a typo
in a scenario file fails at validation time, not in a published table.

Host-side module: imports neither TensorFlow nor starts a tracker.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

# Private names, imported on purpose: they *are* CodeCarbon's dispatch rules (which
# countries get sub-national pricing, how Chinese province names are matched). Reusing
# them keeps validation in step with pricing; an upgrade that renames them fails at
# import instead of letting the two drift apart.
from codecarbon.core.emissions import (
    _CHINA_REGION_SUFFIX,
    _NORDIC_REGIONS_BY_COUNTRY,
    Emissions,
)
from codecarbon.core.units import EmissionsPerKWh, Energy
from codecarbon.external.geography import CloudMetadata, GeoMetadata
from codecarbon.input import DataSource

SYNTAX = (
    "'FRA' (a country, ISO 3166-1 alpha-3), 'USA/california' (country/sub-national "
    "region) or 'cloud:gcp/europe-west1' (cloud:provider/region)"
)
_CLOUD_PREFIX = "cloud:"
_LISTING_HINT = "the `regions` command lists every name CodeCarbon has data for"

# Dataset names as CodeCarbon documents them (docs/explanation/methodology.md, the
# metadata inside each data file, and PR mlco2/codecarbon#914 for Canada).
_SOURCE_COUNTRY = (
    "CodeCarbon global_energy_mix.json: Our World in Data, carbon intensity of "
    "electricity generation (Ember / Energy Institute)"
)
_SOURCE_COUNTRY_MIX = (
    "CodeCarbon global_energy_mix.json: Our World in Data generation mix x "
    "carbon_intensity_per_source.json"
)
_SOURCE_CANADA = (
    "CodeCarbon canada_energy_mix.json: Canada Energy Regulator, Canada's Energy Future "
    "Data Appendices (doi:10.35002/zjr8-8x75)"
)
_SOURCE_CLOUD = "CodeCarbon cloud/impact.csv: {provider_name} region carbon data ({url})"


@dataclass(frozen=True)
class CarbonIntensity:
    """The carbon intensity CodeCarbon applies to a region, and where it comes from.

    Attributes:
        g_per_kwh: grams of CO2-equivalent per kWh of electricity (China's provincial
            factors are CO2 only; ``method`` says so).
        source: the dataset, named as CodeCarbon documents it.
        year: the data's year where CodeCarbon's data carries one, else None.
        method: how CodeCarbon prices this region ("country carbon intensity",
            "sub-national: US state (EPA eGRID)", "cloud region"...).
    """

    g_per_kwh: float
    source: str
    year: str | None
    method: str


@dataclass(frozen=True)
class Region:
    """A place whose electricity prices the energy.

    Exactly one of: a country (``country_iso_code``, ISO 3166-1 alpha-3), optionally with
    a sub-national ``region`` CodeCarbon has data for (US state, Canadian province,
    Chinese province, Swedish/Norwegian bidding zone, Finland's zone), or a
    ``cloud_provider`` + ``cloud_region``.

    Construction normalises case (country upper, the rest lower; a Chinese province to
    its first CodeCarbon name) and validates against CodeCarbon's data: anything
    CodeCarbon would silently price with a fallback raises ``ValueError``.
    """

    country_iso_code: str | None = None
    region: str | None = None
    cloud_provider: str | None = None
    cloud_region: str | None = None

    def __post_init__(self) -> None:
        # Frozen, so normalisation writes through object.__setattr__; doing it here (not
        # only in parse_region) means a Region built from code is as safe as a parsed one.
        country = _clean(self.country_iso_code)
        region = _clean(self.region)
        provider = _clean(self.cloud_provider)
        cloud_region = _clean(self.cloud_region)
        if country is not None and (provider is not None or cloud_region is not None):
            raise ValueError(
                f"a region is either a country or a cloud region, not both "
                f"(got country {country!r} and cloud {provider!r}/{cloud_region!r}); "
                f"write it as {SYNTAX}"
            )
        if country is not None:
            country = _check_country(country.upper())
            if region is not None:
                region = _check_subnational(country, region.lower())
        elif region is not None:
            raise ValueError(
                f"sub-national region {region!r} needs a country: write "
                f"'COUNTRY/{region.lower()}', e.g. 'USA/california' ({SYNTAX})"
            )
        elif provider is not None or cloud_region is not None:
            provider, cloud_region = _check_cloud(provider, cloud_region)
        else:
            raise ValueError(f"empty region; write it as {SYNTAX}")
        object.__setattr__(self, "country_iso_code", country)
        object.__setattr__(self, "region", region)
        object.__setattr__(self, "cloud_provider", provider)
        object.__setattr__(self, "cloud_region", cloud_region)

    @property
    def is_cloud(self) -> bool:
        """True for a cloud provider region, False for a country (or part of one)."""
        return self.cloud_provider is not None

    @property
    def label(self) -> str:
        """``FRA``, ``USA/california`` or ``cloud:gcp/europe-west1``, as parse_region reads it."""
        if self.is_cloud:
            return f"{_CLOUD_PREFIX}{self.cloud_provider}/{self.cloud_region}"
        if self.region is not None:
            return f"{self.country_iso_code}/{self.region}"
        return str(self.country_iso_code)

    def tracker_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make ``OfflineEmissionsTracker`` price like :func:`price`.

        Every location key is passed, ``None`` included: a key left out is read by
        CodeCarbon from ``~/.codecarbon.config``, ``./.codecarbon.config`` or a
        ``CODECARBON_*`` variable, and a stray ``cloud_provider`` or ``region`` there
        would silently change the price. For the same reason the two pricing overrides
        are pinned off: ``force_carbon_intensity_g_co2e_kwh=None``, and
        ``electricitymaps_api_token=""`` (an empty string, not None: with None
        CodeCarbon goes on to read the legacy ``co2_signal_api_token`` from the config,
        while "" is taken as set and then never used, since it is falsy).

        A cloud region needs no country: the offline tracker prices it from
        ``cloud/impact.csv`` and takes the country for the CSV from that file too.
        """
        return {
            "country_iso_code": self.country_iso_code,
            "region": self.region,
            "cloud_provider": self.cloud_provider,
            "cloud_region": self.cloud_region,
            "electricitymaps_api_token": "",
            "force_carbon_intensity_g_co2e_kwh": None,
        }

    def __str__(self) -> str:
        return self.label


def parse_region(text: str) -> Region:
    """Read ``FRA``, ``USA/california`` or ``cloud:gcp/europe-west1`` (any case).

    Raises:
        ValueError: bad syntax (the message shows the syntax) or a name CodeCarbon has
            no data for (the message suggests close matches).
    """
    if not isinstance(text, str):
        raise ValueError(f"a region must be text, got {type(text).__name__}; write it as {SYNTAX}")
    raw = text.strip()
    if raw.lower().startswith(_CLOUD_PREFIX):
        provider, sep, cloud_region = raw[len(_CLOUD_PREFIX) :].partition("/")
        if not sep or not provider.strip() or not cloud_region.strip() or "/" in cloud_region:
            raise ValueError(
                f"bad cloud region {text!r}: write 'cloud:PROVIDER/REGION', "
                f"e.g. 'cloud:gcp/europe-west1'"
            )
        return Region(cloud_provider=provider, cloud_region=cloud_region)
    country, sep, region = raw.partition("/")
    if not country.strip() or (sep and not region.strip()) or "/" in region or ":" in raw:
        raise ValueError(f"bad region {text!r}: write it as {SYNTAX}")
    return Region(country_iso_code=country, region=region if sep else None)


def known_regions() -> dict[str, dict[str, Any]]:
    """Every name :func:`parse_region` accepts, for a ``regions`` listing.

    Returns:
        ``{"countries": {iso3: country name}, "subnational": {iso3: [region, ...]},
        "cloud": {provider: [cloud region, ...]}}``, all sorted; a fresh copy.
    """
    cat = _catalogue()
    return {
        "countries": dict(cat.countries),
        "subnational": {iso: list(names) for iso, names in cat.subnational.items()},
        "cloud": {prov: list(regions) for prov, regions in cat.cloud.items()},
    }


def carbon_intensity(region: Region) -> CarbonIntensity:
    """The carbon intensity (g CO2eq/kWh) CodeCarbon's offline data gives ``region``.

    Follows the branches of ``Emissions.get_private_infra_emissions`` /
    ``get_cloud_emissions``; the tests check ``price(1 kWh) x 1000`` equals it for every
    known region, so this and :func:`price` cannot drift apart unnoticed.
    """
    ds = _data_source()
    if region.is_cloud:
        row = _cloud_row(str(region.cloud_provider), str(region.cloud_region))
        return CarbonIntensity(
            g_per_kwh=float(row["impact"]),
            source=_SOURCE_CLOUD.format(provider_name=row["providerName"], url=row["source"]),
            year=None,  # impact.csv carries no year
            method="cloud region",
        )
    iso = str(region.country_iso_code)
    if region.region is None:
        mix = ds.get_global_energy_mix_data()[iso]
        year = _year(mix.get("year"))
        if mix.get("carbon_intensity") is not None:
            return CarbonIntensity(
                float(mix["carbon_intensity"]), _SOURCE_COUNTRY, year, "country carbon intensity"
            )
        # No published intensity: CodeCarbon weights per-source factors by the mix.
        rate = Emissions._global_energy_mix_to_emissions_rate(mix)
        return CarbonIntensity(
            rate.kgs_per_kWh * 1000, _SOURCE_COUNTRY_MIX, year, "country generation mix"
        )
    if iso in _NORDIC_REGIONS_BY_COUNTRY:
        nordic = ds.get_nordic_country_energy_mix_data()
        entry = nordic["data"][region.region.upper()]
        zone_source = nordic.get("metadata", {}).get("source", "bidding-zone factors")
        return CarbonIntensity(
            g_per_kwh=float(entry["emission_factor"]),
            source=f"CodeCarbon nordic_emissions.json: {zone_source}",
            year=_year(entry.get("year")),
            method=f"sub-national: electricity bidding zone ({entry.get('description', '')})",
        )
    if iso == "CHN":
        china = ds.get_china_provincial_emissions_data()
        province = _china_province(region.region)
        assert province is not None  # Region validated it
        entry = china["data"][province]
        return CarbonIntensity(
            g_per_kwh=float(entry["emission_factor"]),
            source=f"CodeCarbon china_provincial_emissions.json: {china['metadata']['source']}",
            year=_year(entry.get("year", china["metadata"].get("year"))),
            method="sub-national: Chinese province (CO2 only, not CO2eq)",
        )
    if iso == "USA":
        usa = ds.get_country_emissions_data("usa")
        src = usa.get("_source", {})
        rate = EmissionsPerKWh.from_lbs_per_mWh(usa[region.region]["emissions"])
        return CarbonIntensity(
            g_per_kwh=rate.kgs_per_kWh * 1000,
            source=f"CodeCarbon usa_emissions.json: {src.get('name', 'EPA eGRID')}",
            year=_year(src.get("year")),
            method="sub-national: US state (EPA eGRID emission rate)",
        )
    # CAN: the only country CodeCarbon prices from a sub-national *mix*.
    rate = Emissions._region_energy_mix_to_emissions_rate(
        ds.get_country_energy_mix_data("can")[region.region]
    )
    return CarbonIntensity(
        g_per_kwh=rate.kgs_per_kWh * 1000,
        source=_SOURCE_CANADA,
        year=_year_in_path(ds.config["can_energy_mix_data_path"]),
        method="sub-national: Canadian province generation mix (only coal, petroleum "
        "and natural gas carry emissions in CodeCarbon's formula)",
    )


def price(energy_kwh: float, region: Region) -> float:
    """CO2 (kg CO2eq) of ``energy_kwh`` kWh in ``region``, as the offline tracker computes it.

    Calls the same ``Emissions`` method on the same metadata as
    ``OfflineEmissionsTracker._update_emissions``, with an engine that has no
    Electricity Maps token and no forced intensity, as :meth:`Region.tracker_kwargs` sets.
    """
    if isinstance(energy_kwh, bool) or not isinstance(energy_kwh, (int, float)):
        raise ValueError(f"energy must be a number of kWh, got {energy_kwh!r}")
    if not math.isfinite(energy_kwh) or energy_kwh < 0:
        raise ValueError(f"energy must be a finite, non-negative number of kWh, got {energy_kwh!r}")
    energy = Energy.from_energy(kWh=energy_kwh)
    engine = _engine()
    # GeoMetadata as OfflineEmissionsTracker._get_geo_metadata builds it (country_name
    # only feeds log lines; it does not change the number).
    geo = GeoMetadata(
        # None for a cloud region, as in the tracker: the cloud price never reads it.
        country_iso_code=region.country_iso_code,  # type: ignore[arg-type]
        country_name=_catalogue().countries.get(region.country_iso_code or ""),
        region=region.region,
    )
    if region.is_cloud:
        cloud = CloudMetadata(provider=region.cloud_provider, region=region.cloud_region)
        return float(engine.get_cloud_emissions(energy, cloud, geo))
    return float(engine.get_private_infra_emissions(energy, geo))


# --- CodeCarbon data, loaded once -------------------------------------------------------


@dataclass(frozen=True)
class _Catalogue:
    """Everything a Region may name, derived once from CodeCarbon's data files."""

    countries: dict[str, str]  # iso3 -> country name
    subnational: dict[str, tuple[str, ...]]  # iso3 -> canonical lower-case names
    cloud: dict[str, tuple[str, ...]]  # provider -> cloud regions


@lru_cache(maxsize=1)
def _data_source() -> DataSource:
    return DataSource()


@lru_cache(maxsize=1)
def _engine() -> Emissions:
    # No token, no forced intensity: CodeCarbon's static data only, which is what the
    # tracker uses when started with Region.tracker_kwargs().
    return Emissions(_data_source())


@lru_cache(maxsize=1)
def _catalogue() -> _Catalogue:
    ds = _data_source()
    mix = ds.get_global_energy_mix_data()
    countries = {iso: str(d.get("country_name", iso)) for iso, d in sorted(mix.items())}

    subnational: dict[str, tuple[str, ...]] = {}
    # US states: skip the file's "_unit"/"_source" metadata keys (CodeCarbon would look
    # them up and fall back to the country value) and "usa", the national eGRID rate,
    # which is not sub-national (and differs from the country value for "USA").
    usa = ds.get_country_emissions_data("usa")
    states = (k for k, v in usa.items() if not k.startswith("_") and "emissions" in v)
    subnational["USA"] = tuple(sorted(k for k in states if k != "usa"))
    subnational["CAN"] = tuple(sorted(ds.get_country_energy_mix_data("can")))
    china = ds.get_china_provincial_emissions_data()["data"]
    subnational["CHN"] = tuple(sorted(entry["names"][0] for entry in china.values()))
    nordic = ds.get_nordic_country_energy_mix_data()["data"]
    for iso, zones in _NORDIC_REGIONS_BY_COUNTRY.items():
        subnational[iso] = tuple(sorted(z.lower() for z in zones if z in nordic))
    subnational = {
        iso: names for iso, names in sorted(subnational.items()) if names and iso in countries
    }

    df = ds.get_cloud_emissions_data()
    df = df[df["impact"].notna()]
    cloud = {
        str(prov): tuple(sorted(str(r) for r in group["region"]))
        for prov, group in sorted(df.groupby("provider"), key=lambda item: str(item[0]))
    }
    return _Catalogue(countries=countries, subnational=subnational, cloud=cloud)


def _cloud_row(provider: str, cloud_region: str) -> Any:
    df = _data_source().get_cloud_emissions_data()
    rows = df.loc[(df["provider"] == provider) & (df["region"] == cloud_region)]
    return rows.iloc[0]


def _china_province(name: str) -> str | None:
    """CodeCarbon's province key for ``name``, matched exactly as CodeCarbon matches it."""
    key = _CHINA_REGION_SUFFIX.sub("", " ".join(name.lower().split()))
    for province, entry in _data_source().get_china_provincial_emissions_data()["data"].items():
        if key in entry["names"]:
            return str(province)
    return None


def _year(value: object) -> str | None:
    """A data year as text (``2023`` -> ``"2023"``), None where the data has none."""
    return None if value is None else str(value)


def _year_in_path(path: str) -> str | None:
    """The year folder CodeCarbon files a data set under (``private_infra/2023/...``)."""
    parent = PurePosixPath(path).parent.name
    return parent if re.fullmatch(r"\d{4}", parent) else None


# --- validation -------------------------------------------------------------------------


def _clean(value: str | None) -> str | None:
    """Strip and collapse inner whitespace; empty means absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"region fields must be text, got {value!r}; write a region as {SYNTAX}")
    cleaned = " ".join(value.split())
    return cleaned or None


def _did_you_mean(word: str, candidates: list[str]) -> str:
    """``"; did you mean 'a' or 'b'?"`` for close matches, else ``"."``: ends a sentence."""
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    if not close:
        return "."
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def _check_country(iso: str) -> str:
    countries = _catalogue().countries
    if iso in countries:
        return iso
    # Suggest by code and by name, so "FRN" and "france" both lead to FRA.
    by_name = {name.lower(): code for code, name in countries.items()}
    close_codes = difflib.get_close_matches(iso, list(countries), n=3, cutoff=0.6)
    close_names = difflib.get_close_matches(iso.lower(), list(by_name), n=3, cutoff=0.6)
    suggestions = list(dict.fromkeys([*(by_name[n] for n in close_names), *close_codes]))[:3]
    hint = (
        "; did you mean " + " or ".join(f"'{c}' ({countries[c]})" for c in suggestions) + "?"
        if suggestions
        else "."
    )
    raise ValueError(
        f"unknown country {iso!r} (CodeCarbon has no carbon intensity for it and would "
        f"silently use a world average){hint} A country is an ISO 3166-1 alpha-3 code "
        f"such as 'FRA'; {_LISTING_HINT}."
    )


def _check_subnational(iso: str, region: str) -> str:
    subnational = _catalogue().subnational
    if iso not in subnational:
        raise ValueError(
            f"CodeCarbon has no sub-national data for {iso} (only for "
            f"{', '.join(subnational)}), so region {region!r} would be ignored; "
            f"use {iso!r} alone."
        )
    if iso == "CHN":
        # Accept every spelling CodeCarbon matches; store its first (canonical) name.
        province = _china_province(region)
        if province is not None:
            china = _data_source().get_china_provincial_emissions_data()["data"]
            return str(china[province]["names"][0])
    elif region in subnational[iso]:
        return region
    names = list(subnational[iso])
    listing = f"known: {', '.join(names)}" if len(names) <= 15 else _LISTING_HINT
    raise ValueError(
        f"unknown region {region!r} of {iso}{_did_you_mean(region, names)} CodeCarbon "
        f"would silently use the national value instead; {listing}."
    )


def _check_cloud(provider: str | None, cloud_region: str | None) -> tuple[str, str]:
    cloud = _catalogue().cloud
    if provider is None or cloud_region is None:
        raise ValueError(
            f"a cloud region needs both a provider and a region "
            f"(got {provider!r}/{cloud_region!r}); write 'cloud:gcp/europe-west1'"
        )
    provider, cloud_region = provider.lower(), cloud_region.lower()
    if provider not in cloud:
        raise ValueError(
            f"unknown cloud provider {provider!r}{_did_you_mean(provider, list(cloud))} "
            f"CodeCarbon has cloud carbon data only for {', '.join(cloud)}; for another "
            f"provider use the data centre's country or state, e.g. 'USA/virginia'."
        )
    regions = list(cloud[provider])
    if cloud_region not in regions:
        raise ValueError(
            f"unknown {provider} region {cloud_region!r}{_did_you_mean(cloud_region, regions)} "
            f"CodeCarbon would silently use a country or world average instead; "
            f"{_LISTING_HINT}."
        )
    return provider, cloud_region
