"""A corpus of damaged sessions the report must survive with the right verdict per run.

Each case copies the fixture session machine-a (written by the real harness), damages
one file of one run (``rptfix__cpu-1__r01``) the way a disk, an editor, a copy or another
tool might, and checks that the loader names the file, the field and the reason, that
the damaged run is listed and never averaged, and that the other runs are untouched.
The last test runs ``harness report`` over every damaged copy at once: exit 0, no
traceback, every damaged run in every export.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.report import build_report
from harness.results import load
from tests.conftest import run_cli
from tests.test_report import SESSIONS

VICTIM = "rptfix__cpu-1__r01"


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _edit_json(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        document = _json(run / name)
        change(document)
        (run / name).write_text(json.dumps(document))

    return damage


def _csv_row(change: Callable[[dict[str, str]], None]) -> Callable[[Path], None]:
    """Edit the total (last) row of emissions.csv field by field."""

    def damage(run: Path) -> None:
        lines = (run / "emissions.csv").read_text().splitlines()
        header = lines[0].split(",")
        values = dict(zip(header, lines[-1].split(","), strict=True))
        change(values)
        lines[-1] = ",".join(values[column] for column in header)
        (run / "emissions.csv").write_text("\n".join(lines) + "\n")

    return damage


def _cut_csv_inside_energy(run: Path) -> None:
    """Truncate the file inside the last row's energy_consumed (a full disk, a copy cut
    short): what remains of the row ends in the middle of that number."""
    text = (run / "emissions.csv").read_text()
    header, row = text.splitlines()[:2]
    index = header.split(",").index("energy_consumed")
    start = sum(len(v) + 1 for v in row.split(",")[:index])
    (run / "emissions.csv").write_text(header + "\n" + row[:start + 4])


def _truncate_exponent(values: dict[str, str]) -> None:
    # "9.53e-05" cut to "9.53": 100,000 times the energy if it were believed.
    values["energy_consumed"] = values["energy_consumed"].split("e")[0]


def _set(path: tuple, value: object) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _scale(path: tuple, factor: float) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] *= factor

    return change


def _write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        path = run / name
        path.unlink()
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)

    return damage


def _replace_with_dir(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()

    return damage


def _symlink_loop(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink()
        (run / name).symlink_to(run / name)

    return damage


def _fifo(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink()
        os.mkfifo(run / name)

    return damage


def _drop_last_epoch(document: dict) -> None:
    document["epochs"] = document["epochs"][:-1]


def _move_epoch_energy(document: dict) -> None:
    energy = document["epochs"][0]["energy"]
    for key in ("energy_kwh", "cpu_kwh", "ram_kwh"):
        energy[key] *= 2


def _scale_energy(document: dict) -> None:
    """Every component of the run scope's energy x 1.5: consistent in itself, not the CSV's."""
    energy = document["scopes"]["run"]["energy"]
    energy.update({key: value * 1.5 for key, value in energy.items()})


def _other_tool_csv(run: Path) -> None:
    (run / "emissions.csv").write_text("timestamp,power_w,energy_j\n2026-01-01,12.5,400\n")


#: id -> (damage, file named in the verdict, words of the reason)
CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "csv missing": (lambda r: (r / "emissions.csv").unlink(), "emissions.csv",
                    "missing, but the run is recorded ok"),
    "csv empty": (_write("emissions.csv", ""), "emissions.csv", "is empty"),
    "csv cut inside energy": (_cut_csv_inside_energy, "emissions.csv", "truncated or damaged"),
    "csv exponent lost": (_csv_row(_truncate_exponent), "emissions.csv",
                          "is not the sum of cpu, gpu and ram energy"),
    "csv of another tool": (_other_tool_csv, "emissions.csv", "not CodeCarbon's emissions file"),
    "csv nan energy": (_csv_row(lambda v: v.update(cpu_energy="nan")), "emissions.csv",
                       "finite number"),
    "csv negative energy": (_csv_row(lambda v: v.update(ram_energy="-" + v["ram_energy"])),
                            "emissions.csv", "greater than or equal to 0"),
    "csv text for a number": (_csv_row(lambda v: v.update(cpu_power="lots")), "emissions.csv",
                              "is not a number"),
    "csv priced elsewhere": (_csv_row(lambda v: v.update(country_iso_code="DEU")),
                             "emissions.csv", "the tracker priced in"),
    "csv co2 not the energy's": (_csv_row(lambda v: v.update(
        emissions=repr(float(v["emissions"]) * 3))), "emissions.csv", "is not its energy"),
    "metrics missing": (lambda r: (r / "metrics.json").unlink(), "metrics.json",
                        "missing, but the run is recorded ok"),
    "metrics empty": (_write("metrics.json", ""), "metrics.json", "is empty"),
    "metrics truncated": (lambda r: (r / "metrics.json").write_text(
        (r / "metrics.json").read_text()[:300]), "metrics.json", "not valid JSON"),
    "metrics not utf-8": (_write("metrics.json", b"\xff\xfe{\x00"), "metrics.json",
                          "not UTF-8"),
    "metrics foreign": (_write("metrics.json", '{"format": "pyperf.bench", "version": 1}'),
                        "metrics.json", "not a harness.metrics file"),
    "metrics version 1": (_edit_json("metrics.json", _set(("version",), 1)), "metrics.json",
                          "written by harness 0.1"),
    "metrics infinity": (lambda r: (r / "metrics.json").write_text(
        (r / "metrics.json").read_text().replace('"test_loss": ', '"test_loss": Infinity, "x": ',
                                                 1)), "metrics.json", "not a number a result"),
    "metrics nested deep": (_write("metrics.json", "[" * 200_000), "metrics.json",
                            "nested too deeply"),
    "metrics too large": (_write("metrics.json", "{" + " " * (17 * 2**20) + "}"),
                          "metrics.json", "more than"),
    "metrics a directory": (_replace_with_dir("metrics.json"), "metrics.json", "a directory"),
    "metrics a symlink loop": (_symlink_loop("metrics.json"), "metrics.json",
                               "cannot be read"),
    "metrics a fifo": (_fifo("metrics.json"), "metrics.json", "not a regular file"),
    "metrics string for a number": (_edit_json("metrics.json", _set(
        ("scopes", "training", "duration_s"), "12.5")), "metrics.json", "valid number"),
    "metrics negative duration": (_edit_json("metrics.json", _scale(
        ("scopes", "training", "duration_s"), -1)), "metrics.json",
        "greater than or equal to 0"),
    "metrics accuracy above 1": (_edit_json("metrics.json", _set(("test_accuracy",), 1.7)),
                                 "metrics.json", "less than or equal to 1"),
    "metrics count not whole": (_edit_json("metrics.json", _set(
        ("training", "epochs_run"), 2.0)), "metrics.json", "valid integer"),
    "metrics unknown key": (_edit_json("metrics.json", _set(("surprise",), 1)),
                            "metrics.json", "Extra inputs are not permitted"),
    "metrics energy not the csv's": (_edit_json("metrics.json", _scale_energy),
                                     "metrics.json", "but emissions.csv's"),
    "metrics scopes not nested": (_edit_json("metrics.json", _scale(
        ("scopes", "training", "duration_s"), 100)), "metrics.json",
        "longer than the enclosing run scope"),
    "metrics of another run": (_edit_json("metrics.json", _set(("run_id",), "x__y__r09")),
                               "metrics.json", "a file from another run"),
    "metrics says partial": (_edit_json("metrics.json", _set(("status",), "partial")),
                             "metrics.json", "while outcome.json says ok"),
    "history epochs not a list": (_edit_json("history.json", _set(("epochs",), {"1": 2})),
                                  "history.json", "valid array"),
    "history shorter than the run": (_edit_json("history.json", _drop_last_epoch),
                                     "history.json", "metrics.json says 2 ran"),
    "history energies do not add up": (_edit_json("history.json", _move_epoch_energy),
                                       "history.json", "add up to"),
    "history missing": (lambda r: (r / "history.json").unlink(), "history.json",
                        "missing, but 2 epochs ran"),
    "run.json missing": (lambda r: (r / "run.json").unlink(), "run.json", "missing"),
    "outcome a directory": (_replace_with_dir("outcome.json"), "outcome.json", "a directory"),
}


def _damaged_copy(tmp_path: Path, case: str) -> Path:
    session = tmp_path / case.replace(" ", "-").replace("'", "").replace(".", "")
    shutil.copytree(SESSIONS / "machine-a", session, symlinks=True)
    CASES[case][0](session / VICTIM)
    return session


@pytest.mark.parametrize("case", list(CASES))
def test_damage_is_named_and_never_averaged(tmp_path: Path, case: str) -> None:
    _, file_name, words = CASES[case]
    session = _damaged_copy(tmp_path, case)
    loaded, warnings = load([session])
    runs = {run.run_id: run for run in loaded[0].runs}
    assert set(runs) == {"rptfix__cpu-1__r01", "rptfix__cpu-2__r01", "rptfix__cpu-1__r02",
                         "rptfix__cpu-2__r02"}, "every run directory is listed"
    victim = runs[VICTIM]
    assert victim.status == "damaged" and not victim.usable
    assert any(d.file == file_name and words in d.reason for d in victim.damage), victim.reason
    assert all(run.usable for name, run in runs.items() if name != VICTIM)
    report = build_report(loaded, warnings=warnings)
    cpu1 = next(g for g in report.groups if g.hardware == "cpu-1")
    assert len(cpu1.usable) == 1 and all(r.run_id != VICTIM for r in cpu1.usable)
    (left,) = [r for r in report.left_out if r.run == VICTIM]
    assert left.status == "damaged" and file_name in left.reason


def test_a_run_without_outcome_is_listed_as_unknown(tmp_path: Path) -> None:
    session = tmp_path / "no-outcome"
    shutil.copytree(SESSIONS / "machine-a", session)
    (session / VICTIM / "outcome.json").unlink()
    loaded, _ = load([session])
    victim = next(r for r in loaded[0].runs if r.run_id == VICTIM)
    assert victim.status == "unknown" and "no outcome.json" in victim.reason


def test_a_damaged_session_record_keeps_its_runs(tmp_path: Path) -> None:
    session = tmp_path / "no-record"
    shutil.copytree(SESSIONS / "machine-a", session)
    (session / "session.json").write_text("{not json")
    loaded, warnings = load([session])
    assert len(loaded[0].runs) == 4 and all(r.usable for r in loaded[0].runs)
    assert any("session.json" in w and "not valid JSON" in w for w in warnings)


def test_a_stray_directory_in_a_session_is_listed(tmp_path: Path) -> None:
    session = tmp_path / "stray"
    shutil.copytree(SESSIONS / "machine-a", session)
    (session / "notes").mkdir()
    loaded, _ = load([session])
    stray = next(r for r in loaded[0].runs if r.run_id == "notes")
    assert stray.status == "damaged" and "run.json: missing" in stray.reason
    # Counted where it is listed, though it belongs to no group: the first line adds up.
    assert build_report(loaded).statuses == (("damaged", 1), ("ok", 4))
    report = run_cli("report", str(session), "--out", str(tmp_path / "out"))
    assert report.stdout.splitlines()[0] == "5 run(s) from 1 session(s): 1 damaged, 4 ok"


def test_report_survives_every_damage_at_once(tmp_path: Path) -> None:
    sessions = [_damaged_copy(tmp_path / "all", case) for case in CASES]
    out = tmp_path / "out"
    proc = run_cli("report", *map(str, sessions), "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    damaged = {(r["session"], r["run"]) for r in summary["left_out"] if r["status"] == "damaged"}
    assert damaged == {(s.name, VICTIM) for s in sessions}
    # Nothing of a damaged file entered a figure: each group averages only sound runs.
    cpu1 = next(g for g in summary["groups"] if g["hardware"] == "cpu-1")
    assert cpu1["figures"]["energy_kwh"]["n"] == 1
    assert all(math.isfinite(v) and v > 0 for v in cpu1["figures"]["energy_kwh"]["values"])
    csv_text = (out / "summary.csv").read_text()
    assert csv_text.count(f",{VICTIM},damaged,") == len(CASES)
