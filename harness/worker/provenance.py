"""What an auditor needs to reproduce or distrust a run: versions, packages, machine, share.

Worker side. Read once, after TensorFlow is configured, into a schema ``Environment``
and ``Attribution``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import re
from typing import Any

from harness import __version__, hostinfo
from harness.schema import Attribution, Environment

ATTRIBUTION_RULE = (
    "attributed = GPU energy of the run's own GPUs + CPU energy x (CPUs granted / host "
    "CPUs) + RAM energy x (memory limit / host memory); a share is 1 when the run is "
    "not limited")


def installed_packages() -> list[str]:
    """Every installed distribution as ``name==version`` (names normalised as PEP 503
    does, so tensorflow_cpu and tensorflow-cpu are one), sorted."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            canonical = re.sub(r"[-_.]+", "-", name).lower()
            seen.setdefault(canonical, f"{canonical}=={dist.version}")
    return [seen[key] for key in sorted(seen)]


def attribution(cpus_effective: float, memory_limit: int | None) -> Attribution:
    """The run's share of the machine's CPUs and memory, by :data:`ATTRIBUTION_RULE`."""
    host = hostinfo.host_cpus()
    ram = hostinfo.ram_total_bytes()
    cpu_share = min(1.0, cpus_effective / host) if host else 1.0
    ram_share = min(1.0, memory_limit / ram) if memory_limit and ram else 1.0
    return Attribution(cpu_share=cpu_share, ram_share=ram_share, rule=ATTRIBUTION_RULE)


def environment(*, tf: Any, threads: int, pipeline: Any, gpu_names: list[str],
                backend: str) -> Environment:
    """The run's provenance record (TensorFlow already imported and configured)."""
    import codecarbon
    import keras
    import numpy

    isa = hostinfo.onednn_isa()
    return Environment(
        versions={
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "codecarbon": codecarbon.__version__,
            "numpy": numpy.__version__,
            "harness": __version__,
        },
        packages=installed_packages(),
        cpu_model=hostinfo.cpu_model(),
        ram_total_bytes=hostinfo.ram_total_bytes(),
        host_cpus=hostinfo.host_cpus(),
        cpus_visible=len(os.sched_getaffinity(0)),
        cpus_effective=hostinfo.effective_cpus(),
        memory_limit_bytes=hostinfo.cgroup_memory_limit(),
        tf_threads=threads,
        tf_inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        # Speed-only settings (harness.model.Pipeline): recorded so runs made with
        # different ones can be told apart.
        pipeline=dataclasses.asdict(pipeline),
        gpu_models=gpu_names,
        gpu_count=len(gpu_names),
        hostname=platform.node(),
        platform=platform.platform(),
        backend=backend,
        in_container=backend == "docker",
        cpu_isa=isa.effective,
        cpu_isa_cap=isa.cap,
    )
