"""The worker: one tracked training run, ``python -m harness.worker RUN_DIR``.

The only process that imports TensorFlow. It runs the same way in a local process, a
container and a Slurm allocation: it reads ``run.json`` from the run directory and
writes ``metrics.json``, ``history.json`` and CodeCarbon's CSVs there (formats:
:mod:`harness.schema`). Progress goes to stdout as ``HARNESS_PROGRESS {json}`` lines.

Modules: :mod:`.run` (the process: signals, lifeline, tracker, result files),
:mod:`.callbacks` (per-epoch windows, forecast, budget, target accuracy),
:mod:`.provenance` (versions, packages, machine, the run's share of it).

The host never imports this package: what both sides need lives in
:mod:`harness.schema`, :mod:`harness.hostinfo` and :mod:`harness.identity`.

Exit status: 0 complete; 1 failed; 3 stopped early (signal, lost lifeline, budget).
"""
