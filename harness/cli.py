"""Command line: ``python -m harness COMMAND``.

The one place that catches :class:`UserError`: it prints the message, without a
traceback, and exits with status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import UserError

if TYPE_CHECKING:  # the command line imports what a command needs when it runs
    from rich.console import Console

    from harness.backends import Backend, LineSink
    from harness.results import LoadedSession
    from harness.scenario import LoadedScenario
    from harness.schema import RunSpec

EXIT_USER_ERROR = 2
EXIT_RUNS_FAILED = 1
SYNTHETIC_HELP = ("train every scenario on generated data of CIFAR-10's size (50,000/10,000) "
                  "instead of its declared dataset, e.g. where CIFAR-10 cannot be downloaded; "
                  "DIFFICULTY easy (the default: a smoke test) or cifar-like (about 70%% after "
                  "10 epochs, a CIFAR-like curve); every result says synthetic")


def _cmd_validate(args: argparse.Namespace) -> int:
    from harness.scenario import load_scenarios

    for item in load_scenarios(args.files):
        scenario = item.scenario
        print(f"{item.path}: ok ({scenario.name}: {len(scenario.hardware)} hardware, "
              f"{len(scenario.regions.all)} regions, {scenario.repeats} repeat(s))")
    return 0


def _plan(files: list[Path], synthetic: str | None = None
          ) -> tuple[list[LoadedScenario], list[RunSpec]]:
    from harness.plan import expand
    from harness.scenario import DatasetSpec, load_scenarios

    loaded = load_scenarios(files)
    replacement = DatasetSpec(kind="synthetic", difficulty=synthetic) if synthetic else None
    return loaded, expand(loaded, replacement)


def _cmd_plan(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from harness.plan import describe

    _, runs = _plan(args.files, args.synthetic)
    print(tabulate([describe(run) for run in runs], headers="keys", tablefmt="simple"))
    print(f"\n{len(runs)} run(s); nothing was run. Run them with: python -m harness run "
          + " ".join(str(f) for f in args.files))
    return 0


def _make_backend(args: argparse.Namespace, console: Console) -> Backend:
    """The backend named by --backend; ``auto`` is docker when a daemon answers."""
    name = args.backend
    if name == "auto":
        from harness.backends.docker_backend import docker_answers

        if docker_answers():
            name = "docker"
        else:
            from harness.backends.local import LocalBackend

            reason = "--backend auto: no Docker daemon answered"
            console.print(f"[bold yellow]NOTE: {reason}; running workers as local processes. "
                          "Hardware limits (cpus, memory) are not enforced, and every result "
                          "records the local backend.[/]")
            return LocalBackend(fallback_reason=reason)
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend()
    if name == "docker":
        from harness.backends.docker_backend import DockerBackend

        return DockerBackend(base_image=args.base_image, flavour=args.image_flavour,
                             log=_plain(console))
    if name == "slurm":
        from harness.backends.slurm_backend import SlurmBackend

        return SlurmBackend(log=_plain(console))
    raise UserError(f"unknown backend {name!r}", key="--backend",
                    fix="use --backend auto, docker, local or slurm")


def _plain(console: Console) -> LineSink:
    """Print a line of tool output (build logs...) as is: no rich markup or highlighting."""
    return lambda line: console.print(line, markup=False, highlight=False)


def _stop_on_sigterm() -> None:
    """Treat SIGTERM and SIGHUP (the terminal closed) like Ctrl-C, so the running worker
    and its container are stopped and removed, and the session stays readable, when the
    harness itself is stopped. (SIGKILL cannot be caught: the worker's lifeline, its
    stdin, closes then, and it stops itself.)"""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGHUP, _raise)


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _cmd_run(args: argparse.Namespace) -> int:
    loaded, runs = _plan(args.files, args.synthetic)
    _stop_on_sigterm()
    console = _console()
    from harness import dataset
    from harness.report import runs_table
    from harness.results import load
    from harness.runner import Runner, check_results_dir, check_session_name

    check_results_dir(args.results_dir)
    if args.session is not None:
        check_session_name(args.session)
    backend = _make_backend(args, console)
    runner = Runner(backend, args.results_dir, args.data_dir or dataset.default_data_dir(), console,
                    idle_s=0.0 if args.no_idle else args.idle_s,
                    idle_max_age_s=0.0 if args.no_idle else args.idle_max_age,
                    machine_meter=not args.no_machine_meter)
    session_dir, records = runner.run(runs, session=args.session,
                                      scenario_files=[str(item.path) for item in loaded],
                                      argv=sys.argv, detach=args.detach)
    if args.detach:  # submitted; `harness attach` writes the outcomes and the report
        return EXIT_RUNS_FAILED if records else 0
    sessions, load_warnings = load([session_dir])
    print(runs_table([run for item in sessions for run in item.runs]))
    # The comparison of this session, as `harness report` would write it.
    _report(sessions, load_warnings, out=None, baseline=None, fmt="simple", scope="training")
    bad = [r for r in records if r.status.value != "ok"]
    skipped = len(runs) - len(records)
    if bad or skipped:
        console.print(f"[red]{len(bad)} run(s) did not succeed[/]"
                      + (f", {skipped} not started" if skipped else "")
                      + f"; details in {session_dir}/*/outcome.json and worker.log")
        return 130 if any(r.status.value == "interrupted" for r in records) else EXIT_RUNS_FAILED
    return 0


def _cmd_attach(args: argparse.Namespace) -> int:
    """Follow a Slurm session's jobs to their end, then the tables and report as `run`."""
    _stop_on_sigterm()
    console = _console()
    from harness import dataset
    from harness.backends.slurm_backend import SlurmBackend
    from harness.report import runs_table
    from harness.results import load
    from harness.runner import Runner

    session_dir = args.session_dir
    if not session_dir.is_dir():
        raise UserError("no such session directory", source=session_dir,
                        fix="pass results/<session> as `run --detach` printed it")
    runner = Runner(SlurmBackend(log=_plain(console)), session_dir.parent,
                    dataset.default_data_dir(), console)
    records = runner.attach(session_dir)
    sessions, load_warnings = load([session_dir])
    print(runs_table([run for item in sessions for run in item.runs]))
    _report(sessions, load_warnings, out=None, baseline=None, fmt="simple", scope="training")
    bad = [r for r in records if r.status.value != "ok"]
    if bad:
        console.print(f"[red]{len(bad)} run(s) did not succeed[/]; details in "
                      f"{session_dir}/*/outcome.json and worker.log")
        return 130 if any(r.status.value == "interrupted" for r in records) else EXIT_RUNS_FAILED
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.report.export import check_out_dir
    from harness.results import load

    if args.out is not None:
        check_out_dir(args.out)
    sessions, load_warnings = load(args.dirs)
    _report(sessions, load_warnings, out=args.out, baseline=args.baseline, fmt=args.format,
            scope=args.scope, attribution=args.attribution, net=args.net)
    return 0


def _report(sessions: list[LoadedSession], load_warnings: list[str], *, out: Path | None,
            baseline: str | None, fmt: str, scope: str, attribution: str = "attributed",
            net: bool = False) -> None:
    """Print the comparison tables and write report.md, CSV, JSON and plots."""
    from harness.report import build_report, default_out_dir, render_text, write_report

    report = build_report(sessions, baseline=baseline, warnings=load_warnings, scope=scope,
                          attribution=attribution, net=net)
    print(render_text(report, fmt))
    out_dir = out or default_out_dir(sessions)
    written = write_report(report, out_dir)
    print(f"report written to {out_dir}/: " + ", ".join(path.name for path in written),
          flush=True)
    # Last, so they are not scrolled away by the tables.
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _cmd_data(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from harness import dataset

    data_dir = args.data_dir or dataset.default_data_dir()
    if args.action == "fetch":
        root = dataset.fetch(data_dir)
    elif args.action == "import":
        root = dataset.import_archive(args.archive, data_dir, name=args.name)
    elif args.action == "synth":
        root = dataset.synthetic_root(data_dir, args.train_size, args.test_size, args.seed,
                                      args.difficulty)
        dataset.synthesize(root, train_size=args.train_size, test_size=args.test_size,
                           seed=args.seed, difficulty=args.difficulty)
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
    from tabulate import tabulate

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
    import textwrap

    known = known_regions()

    def _listing(title: str, names: list[str]) -> None:
        print(f"{title} ({len(names)}):")
        print(textwrap.fill(", ".join(names), width=100, initial_indent="  ",
                            subsequent_indent="  ", break_on_hyphens=False))

    _listing("countries (ISO 3166-1 alpha-3)", sorted(known["countries"]))
    for iso, names in sorted(known["subnational"].items()):
        _listing(f"{iso}/REGION", sorted(names))
    for provider, names in sorted(known["cloud"].items()):
        _listing(f"cloud:{provider}/REGION", sorted(names))
    print("name regions as COUNTRY (ISO 3166 alpha-3, e.g. FRA), COUNTRY/REGION "
          "(e.g. USA/california) or cloud:PROVIDER/REGION (e.g. cloud:gcp/europe-west1);"
          " pass names to see their carbon intensity")
    return 0


def _cmd_image(args: argparse.Namespace) -> int:
    from harness.backends.docker_backend import DockerBackend

    console = _console()
    backend = DockerBackend(base_image=args.base_image,
                            log=_plain(console))
    for flavour in ("cpu", "gpu") if args.flavour == "all" else (args.flavour,):
        image = backend.ensure_image(flavour)
        print(f"{flavour}: {image.tags[0] if image.tags else image.id} ({image.id[:19]})")
    return 0


def _cmd_ps(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from harness import state

    sessions = state.entries()
    rows = [{"session": e.session, "directory": e.session_dir, "pid": e.pid, "host": e.host,
             "state": "running" if e.alive else "dead (harness gone)"} for e in sessions]
    print(tabulate(rows, headers="keys", tablefmt="simple") if rows
          else "no harness session is running")
    containers = _containers_or_note()
    if containers is not None:
        rows = [{"container": c.name, "status": c.status, "session": c.session, "run": c.run,
                 "owner": f"pid {c.owner_pid} on {c.owner_host}",
                 "owner alive": "yes" if c.owner_alive else "no (orphan)"} for c in containers]
        print("\n" + (tabulate(rows, headers="keys", tablefmt="simple") if rows
                      else "no harness container"))
    return 0


def _containers_or_note() -> list | None:
    """The harness's containers, or None (with a note) when no Docker engine answers."""
    from harness.backends.docker_backend import docker_answers, harness_containers

    if not docker_answers():
        print("\n(no Docker engine answers: containers not listed)")
        return None
    import docker

    return harness_containers(docker.from_env(timeout=10))


def _cmd_clean(args: argparse.Namespace) -> int:
    from harness.runner import reap_dead_sessions

    marked = reap_dead_sessions(print)
    reaped: list = []
    removed: list[str] = []
    from harness.backends.docker_backend import docker_answers

    if docker_answers():
        from harness.backends.docker_backend import DockerBackend

        backend = DockerBackend(log=print)
        reaped = backend.reap(print)
        if args.images:
            removed = backend.remove_unused_images(print)
    elif args.images:
        print("no Docker engine answers: no image removed")
    print(f"clean: {marked} run(s) of dead sessions marked orphaned, {len(reaped)} orphan "
          f"container(s) stopped and removed" + (f", {len(removed)} unused worker image(s) "
                                                  "removed" if args.images else ""))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from harness.bench import config_from_args, render, run_bench

    console = _console()
    report = run_bench(config_from_args(args),
                       log=_plain(console))
    print(render(report))
    print(f"\nreport written to {report['written_to']}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from harness.doctor import main as doctor_main

    return doctor_main(args.files, args.backend, as_json=args.json)


def _cmd_gpu_check(args: argparse.Namespace) -> int:
    from harness.gpu_check import main as gpu_check_main

    return gpu_check_main(results_dir=args.results_dir, gpus=args.gpus,
                          base_image=args.base_image)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness",
                                     description="CIFAR-10 carbon benchmark harness")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check scenario files")
    p.add_argument("files", nargs="+", type=Path)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("plan", help="show the runs the scenarios expand to, without running")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--synthetic", nargs="?", const="easy", choices=["easy", "cifar-like"],
                   metavar="DIFFICULTY", help=SYNTHETIC_HELP)
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("run", help="run the scenarios and write a results session")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--backend", default="auto", choices=["auto", "docker", "local", "slurm"],
                   help="where workers run: docker containers, local processes, Slurm jobs "
                        "(one per run, on the nodes the entries' slurm blocks select), or "
                        "auto (docker when a daemon answers, else local; the default)")
    p.add_argument("--detach", action="store_true",
                   help="slurm: submit every run and return; `harness attach SESSION_DIR` "
                        "follows the jobs to their end and writes the outcomes and report")
    p.add_argument("--base-image", help="docker: base image of the worker images (default: "
                   "python:3.11-slim-bookworm, else the local stand-in from `make base-image`)")
    p.add_argument("--image-flavour", choices=["cpu", "gpu"],
                   help="docker: use this worker image for every run (default: by device)")
    p.add_argument("--session", help="session directory name (default: timestamp + scenarios)")
    p.add_argument("--results-dir", type=Path, default=Path("results"))
    p.add_argument("--data-dir", type=Path, help="datasets (default: $HARNESS_DATA_DIR or data/)")
    p.add_argument("--synthetic", nargs="?", const="easy", choices=["easy", "cifar-like"],
                   metavar="DIFFICULTY", help=SYNTHETIC_HELP)
    p.add_argument("--idle-s", type=float, default=30.0, metavar="S",
                   help="measure the host's idle power for S seconds before the first run "
                   "(default 30), so every run gets net figures beside gross ones")
    p.add_argument("--idle-max-age", type=float, default=3600.0, metavar="S",
                   help="reuse an idle measurement younger than S seconds (default 3600)")
    p.add_argument("--no-idle", action="store_true",
                   help="no idle baseline (no net figures in the report)")
    p.add_argument("--no-machine-meter", action="store_true",
                   help="no machine scope: do not run CodeCarbon on the host around each run")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "attach", help="follow a Slurm session's jobs to their end (after run --detach, or "
        "after the harness that submitted them died), then write the outcomes and report",
        description="Follow the jobs of a Slurm session (their ids are in each run "
        "directory's slurm-job.json) until they end, record each run's outcome as `run` "
        "would, and print the report. Ctrl-C cancels the session's jobs.")
    p.add_argument("session_dir", type=Path, metavar="SESSION_DIR",
                   help="the session directory, results/<session>")
    p.set_defaults(func=_cmd_attach)

    p = sub.add_parser(
        "report", help="compare result sessions: tables, report.md, CSV, JSON and plots",
        description="Turn result directories (sessions from one or several machines) into "
        "the comparison: summary, CO2 per region, against a baseline, phases. Runs are "
        "matched by scenario and hardware names; repeats are averaged with a 95% CI; "
        "failed runs and runs that are not comparable are left out, never averaged. "
        "Needs neither Docker nor TensorFlow.")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                   help="session directories, a results directory holding sessions, or runs")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="where report.md, summary.csv, summary.json and the PNGs go "
                   "(default: <session>/report/ for one session; for several sessions "
                   "report-<YYYYmmdd-HHMMSS>/ next to the first session)")
    p.add_argument("--baseline", metavar="HARDWARE",
                   help="hardware name every other hardware of the same workload is compared "
                   "with (default: the first CPU hardware of each workload)")
    p.add_argument("--format", default="simple", choices=["simple", "github"],
                   help="terminal table format (report.md is always GitHub Markdown)")
    p.add_argument("--scope", default="training", choices=["training", "run", "process"],
                   help="the time and energy every figure and ratio covers: training (fit "
                   "with its validation; the default), run (what the tracker saw: set-up, "
                   "training, evaluation) or process (from process start, partly estimated)")
    p.add_argument("--attribution", default="attributed", choices=["attributed", "tracker"],
                   help="whose energy: attributed (the run's own GPUs, CPU and RAM in proportion "
                   "to what it was granted; the default) or tracker (what its CodeCarbon "
                   "tracker reported)")
    p.add_argument("--net", action="store_true",
                   help="subtract the idle baseline (power measured before the session x "
                   "duration) from every energy figure")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("data", help="get or generate the dataset")
    p.add_argument("--data-dir", type=Path, help="default: $HARNESS_DATA_DIR or data/")
    # --data-dir is accepted after the action too (`data synth --data-dir DIR`).
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                       help="default: $HARNESS_DATA_DIR or data/")
    data_sub = p.add_subparsers(dest="action", required=True)
    data_sub.add_parser("fetch", help="download CIFAR-10 and verify its MD5", parents=[where])
    imp = data_sub.add_parser("import", parents=[where],
                              help="import a cifar-10-python.tar.gz obtained elsewhere "
                              "(MD5-checked), or with --name a non-official CIFAR-format archive")
    imp.add_argument("archive", type=Path)
    imp.add_argument("--name", help="import a non-official CIFAR-format archive under this name "
                     "(lower-case letters, digits, hyphens) into data/custom-NAME; scenarios use "
                     "it as dataset: {kind: custom, name: NAME} and every result is labelled "
                     "with it")
    syn = data_sub.add_parser("synth", parents=[where],
                              help="generate a dataset in CIFAR-10's on-disk format")
    syn.add_argument("--train-size", type=int, default=50_000)
    syn.add_argument("--test-size", type=int, default=10_000)
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--difficulty", default="easy", choices=["easy", "cifar-like"],
                     help="easy: learnt to ~99%% in one epoch (a smoke test); cifar-like: the "
                     "research CNN reaches about 70%% after 10 epochs (README, Data)")
    data_sub.add_parser("status", help="list the datasets on disk", parents=[where])
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("image", help="build the worker images (docker) if their inputs changed")
    p.add_argument("flavour", choices=["cpu", "gpu", "all"])
    p.add_argument("--base-image", help="base image (default: python:3.11-slim-bookworm, else "
                   "the local stand-in from `make base-image`)")
    p.set_defaults(func=_cmd_image)

    p = sub.add_parser("bench", help="performance: the worker's training against the research "
                       "script's, and the harness's own overhead (README, Performance)")
    from harness.bench import add_arguments as add_bench_arguments

    add_bench_arguments(p)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("ps", help="the harness sessions running on this machine, and their "
                       "containers (an orphan is one whose harness is gone)")
    p.set_defaults(func=_cmd_ps)

    p = sub.add_parser("clean", help="mark runs of dead sessions orphaned, stop and remove "
                       "orphan containers; --images also removes unused worker images")
    p.add_argument("--images", action="store_true",
                   help="also remove worker images other than the current sources' tags")
    p.set_defaults(func=_cmd_clean)

    p = sub.add_parser("regions", help="list known regions, or show the carbon intensity of some")
    p.add_argument("regions", nargs="*")
    p.set_defaults(func=_cmd_regions)
    p = sub.add_parser("doctor", help="check this host before measuring: per backend, what "
                       "each run will measure or estimate, and the fixes (read-only)")
    p.add_argument("files", nargs="*", type=Path, metavar="SCENARIO",
                   help="scenario files whose hardware entries to predict (default: one "
                   "plain CPU entry)")
    p.add_argument("--backend", default="auto", help="auto (docker when an engine answers, "
                   "else local; the default), local, docker or slurm")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document (format harness.doctor, version 1)")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("gpu-check", help="on a GPU host: a short CPU and GPU run in the "
                       "containers that checks GPU use, NVML energy and the report (make gpu-check)")
    p.add_argument("--gpus", type=int, metavar="N", help="GPUs of the multi-GPU run (default: "
                   "every GPU a container sees; 1 skips it)")
    p.add_argument("--results-dir", type=Path, default=Path("results"),
                   help="where the check's folder gpu-check-<time>/ goes (default results/)")
    p.add_argument("--base-image", help="base image of the worker images (as for run)")
    p.set_defaults(func=_cmd_gpu_check)

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
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, like other command-line tools.
        sys.stderr.close()
        return 0
