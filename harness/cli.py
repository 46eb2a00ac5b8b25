"""Command line: ``python -m harness COMMAND``.

The one place that catches :class:`UserError`: it prints the message, without a
traceback, and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from tabulate import tabulate

from harness.errors import UserError

EXIT_USER_ERROR = 2
EXIT_RUNS_FAILED = 1


def _cmd_validate(args: argparse.Namespace) -> int:
    from harness.scenario import load_scenarios

    for item in load_scenarios(args.files):
        scenario = item.scenario
        print(f"{item.path}: ok ({scenario.name}: {len(scenario.hardware)} hardware, "
              f"{len(scenario.regions.all)} regions, {scenario.repeats} repeat(s))")
    return 0


def _plan(files: list[Path]):
    from harness.plan import expand
    from harness.scenario import load_scenarios

    loaded = load_scenarios(files)
    return loaded, expand(loaded)


def _cmd_plan(args: argparse.Namespace) -> int:
    from harness.plan import describe

    _, runs = _plan(args.files)
    print(tabulate([describe(run) for run in runs], headers="keys", tablefmt="simple"))
    print(f"\n{len(runs)} run(s); nothing was run. Run them with: python -m harness run "
          + " ".join(str(f) for f in args.files))
    return 0


def _make_backend(name: str, console: Console):
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend()
    raise UserError(f"unknown backend {name!r}", key="--backend", fix="use --backend local")


def _cmd_run(args: argparse.Namespace) -> int:
    loaded, runs = _plan(args.files)
    console = Console(stderr=True)
    from harness import dataset
    from harness.report import runs_table
    from harness.results import load_results
    from harness.runner import Runner

    backend = _make_backend(args.backend, console)
    runner = Runner(backend, args.results_dir, args.data_dir or dataset.default_data_dir(), console)
    session_dir, records = runner.run(runs, session=args.session,
                                      scenario_files=[str(item.path) for item in loaded],
                                      argv=sys.argv)
    print(runs_table(load_results([session_dir])))
    bad = [r for r in records if r.status != "ok"]
    skipped = len(runs) - len(records)
    if bad or skipped:
        console.print(f"[red]{len(bad)} run(s) did not succeed[/]"
                      + (f", {skipped} not started" if skipped else "")
                      + f"; details in {session_dir}/*/outcome.json and worker.log")
        return 130 if any(r.status == "interrupted" for r in records) else EXIT_RUNS_FAILED
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.report import runs_table
    from harness.results import load_results

    results = load_results(args.dirs)
    for result in results:
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    print(runs_table(results, tablefmt=args.format))
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from harness import dataset

    data_dir = args.data_dir or dataset.default_data_dir()
    if args.action == "fetch":
        root = dataset.fetch(data_dir)
    elif args.action == "import":
        root = dataset.import_archive(args.archive, data_dir)
    elif args.action == "synth":
        root = dataset.synthetic_root(data_dir, args.train_size, args.test_size, args.seed)
        dataset.synthesize(root, train_size=args.train_size, test_size=args.test_size,
                           seed=args.seed)
    else:
        entries = dataset.status(data_dir)
        if not entries:
            print(f"no dataset in {data_dir}; run `python -m harness data fetch` (CIFAR-10) "
                  "or `python -m harness data synth` (generated)")
            return 0
        print(tabulate(entries, headers="keys", tablefmt="simple"))
        return 0
    print(f"dataset ready: {root}")
    return 0


def _cmd_regions(args: argparse.Namespace) -> int:
    from harness.regions import carbon_intensity, known_regions, parse_region

    if args.regions:
        rows = []
        for text in args.regions:
            try:
                region = parse_region(text)
            except ValueError as exc:
                raise UserError(str(exc), key=text) from None
            intensity = carbon_intensity(region)
            rows.append({"region": region.label, "g CO2/kWh": intensity.g_per_kwh,
                         "method": intensity.method, "source": intensity.source,
                         "year": intensity.year or "-"})
        print(tabulate(rows, headers="keys", tablefmt="simple", floatfmt=".1f"))
        return 0
    known = known_regions()
    for key, values in known.items():
        print(f"{key}: {len(values)}")
    print("name regions as COUNTRY (ISO 3166 alpha-3, e.g. FRA), COUNTRY/REGION "
          "(e.g. USA/california) or cloud:PROVIDER/REGION (e.g. cloud:gcp/europe-west1);"
          " pass names to see their carbon intensity")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness",
                                     description="CIFAR-10 carbon benchmark harness")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check scenario files")
    p.add_argument("files", nargs="+", type=Path)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("plan", help="show the runs the scenarios expand to, without running")
    p.add_argument("files", nargs="+", type=Path)
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("run", help="run the scenarios and write a results session")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--backend", default="local", help="where workers run (default: local)")
    p.add_argument("--session", help="session directory name (default: timestamp + scenarios)")
    p.add_argument("--results-dir", type=Path, default=Path("results"))
    p.add_argument("--data-dir", type=Path, help="datasets (default: $HARNESS_DATA_DIR or data/)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="tables from result directories")
    p.add_argument("dirs", nargs="+", type=Path, help="session (or results) directories")
    p.add_argument("--format", default="simple", help="tabulate format (simple, github...)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("data", help="get or generate the dataset")
    p.add_argument("--data-dir", type=Path, help="default: $HARNESS_DATA_DIR or data/")
    data_sub = p.add_subparsers(dest="action", required=True)
    data_sub.add_parser("fetch", help="download CIFAR-10 and verify its MD5")
    imp = data_sub.add_parser("import", help="import a cifar-10-python.tar.gz obtained elsewhere")
    imp.add_argument("archive", type=Path)
    syn = data_sub.add_parser("synth", help="generate a dataset in CIFAR-10's on-disk format")
    syn.add_argument("--train-size", type=int, default=50_000)
    syn.add_argument("--test-size", type=int, default=10_000)
    syn.add_argument("--seed", type=int, default=0)
    data_sub.add_parser("status", help="list the datasets on disk")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("regions", help="list known regions, or show the carbon intensity of some")
    p.add_argument("regions", nargs="*")
    p.set_defaults(func=_cmd_regions)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
