"""Units that only subprocesses reached before: outcome classification, the worker's
environment, image tags, cgroup parsing, the training pipeline's order of images, and the
worker's forecast, budget and target arithmetic."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness import hostinfo
from harness.backends import Outcome, worker_environment
from harness.runner import classify
from harness.schema import (
    BudgetSpec,
    Energy,
    EpochRecord,
    Window,
)
from harness.worker.callbacks import budget_decision, forecast, target_reached
from tests.conftest import REPO

# --- runner: how a run's status is decided ---------------------------------------------


def _metrics(status: str, error: str | None = None):
    """A worker metrics record with only what classify reads (status and error)."""
    from types import SimpleNamespace

    from harness.schema import RunStatus

    return SimpleNamespace(status=RunStatus(status), error=error)


@pytest.mark.parametrize(("outcome", "worker", "status", "reason"), [
    (Outcome(exit_code=0, duration_s=1), "ok", "ok", None),
    (Outcome(exit_code=None, duration_s=1, interrupted=True), "partial", "interrupted", "Ctrl-C"),
    (Outcome(exit_code=3, duration_s=1, timed_out=True), "partial", "timeout", "timeout_s"),
    (Outcome(exit_code=137, duration_s=1, oom_killed=True), None, "failed", "out-of-memory"),
    (Outcome(exit_code=3, duration_s=1), "partial", "partial", "boom"),
    (Outcome(exit_code=3, duration_s=1), "over_budget", "over_budget", "boom"),
    (Outcome(exit_code=0, duration_s=1), "failed", "failed", "exit code 0: boom"),
    (Outcome(exit_code=-9, duration_s=1), None, "failed", "exit code -9: last line"),
    (Outcome(exit_code=None, duration_s=1, reason="backend error: x"), None, "failed",
     "backend error: x"),
])
def test_classify(outcome: Outcome, worker: str | None, status: str, reason: str | None) -> None:
    metrics = _metrics(worker, "boom") if worker else None
    got_status, got_reason = classify(outcome, metrics, ["first line", "last line"])
    assert got_status == status
    assert (got_reason is None) if reason is None else (reason in got_reason)


# --- the worker's environment: explicit names only ----------------------------------------


def test_worker_environment_is_an_explicit_list_of_names() -> None:
    source = {"PATH": "/bin", "TF_CPP_MIN_LOG_LEVEL": "2", "TF_VAR_db_password": "secret",
              "CUDA_VISIBLE_DEVICES": "0", "CUDA_SECRET_TOKEN": "x", "HARNESS_DATA_DIR": "/d",
              "HARNESS_API_KEY": "k", "CODECARBON_COUNTRY_ISO_CODE": "USA", "HOME": "/root",
              "AWS_SECRET_ACCESS_KEY": "a", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    env = worker_environment(source)
    assert env["PATH"] == "/bin" and env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["HARNESS_DATA_DIR"] == "/d"
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    for secret in ("TF_VAR_db_password", "CUDA_SECRET_TOKEN", "HARNESS_API_KEY",
                   "CODECARBON_COUNTRY_ISO_CODE", "HOME", "AWS_SECRET_ACCESS_KEY"):
        assert secret not in env, secret
    assert env["HARNESS_LIFELINE"] == "stdin" and env["PYTHONUNBUFFERED"] == "1"


# --- image tags: the code, not the documentation ------------------------------------------


def test_image_tag_follows_the_sources_not_the_documentation(tmp_path: Path) -> None:
    from harness.backends.docker_backend import image_tag

    root = tmp_path / "repo"
    for name in ("Dockerfile.cpu", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, root / name) if root.exists() else (
            root.mkdir(), shutil.copy(REPO / name, root / name))
    shutil.copytree(REPO / "docker", root / "docker")
    shutil.copytree(REPO / "harness", root / "harness",
                    ignore=shutil.ignore_patterns("__pycache__"))
    tag = image_tag("cpu", "sha256:base", root)
    assert tag == image_tag("cpu", "sha256:base", root), "stable for the same inputs"
    (root / "README.md").write_text("edited documentation\n")
    assert image_tag("cpu", "sha256:base", root) == tag
    assert image_tag("cpu", "sha256:other-base", root) != tag
    source = root / "harness" / "stats.py"
    source.write_text(source.read_text() + "\n# a change to the code\n")
    assert image_tag("cpu", "sha256:base", root) != tag


# --- cgroups and /proc -----------------------------------------------------------------


@pytest.mark.parametrize(("text", "cpus"), [("max 100000", None), ("150000 100000", 1.5),
                                            ("50000 100000\n", 0.5)])
def test_parse_cpu_max(text: str, cpus: float | None) -> None:
    assert hostinfo.parse_cpu_max(text) == cpus


@pytest.mark.parametrize("text", ["", "100000", "-1 100000", "a b"])
def test_parse_cpu_max_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        hostinfo.parse_cpu_max(text)


def test_parse_cfs_and_memory_limits() -> None:
    assert hostinfo.parse_cfs("-1", "100000") is None
    assert hostinfo.parse_cfs("200000\n", "100000\n") == 2.0
    assert hostinfo.parse_memory_limit("max") is None
    assert hostinfo.parse_memory_limit("4294967296\n") == 4 * 2**30
    assert hostinfo.parse_memory_limit("9223372036854771712") is None  # v1: unlimited


def test_parse_proc_stat_counts_busy_time_only() -> None:
    text = "cpu  100 20 30 400 50 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8\n"
    assert hostinfo.parse_proc_stat(text, 100.0) == pytest.approx((100 + 20 + 30 + 6 + 7 + 8)
                                                                  / 100)
    assert hostinfo.parse_meminfo_total("MemTotal:  1024 kB\nMemFree: 1 kB\n") == 1024 * 1024


# --- forecast, budget, target (the worker's arithmetic, without TensorFlow) ----------------


def _energy(kwh: float) -> Energy:
    return Energy(energy_kwh=kwh, cpu_kwh=kwh / 2, gpu_kwh=0.0, ram_kwh=kwh / 2, co2_kg=kwh / 10)


def _epoch(n: int, kwh: float, duration: float = 10.0, val: float = 0.5) -> EpochRecord:
    return EpochRecord(epoch=n, loss=1.0, accuracy=0.5, val_loss=1.0, val_accuracy=val,
                       duration_s=duration, train_s=duration - 1, validation_s=1.0,
                       energy=_energy(kwh))


def test_forecast_is_setup_plus_mean_epoch_times_planned_plus_one_validation() -> None:
    setup = Window(name="setup", duration_s=5.0, energy=_energy(0.01))
    made = forecast(setup, [_epoch(1, 0.02), _epoch(2, 0.04)], 10, lambda kwh: kwh * 0.1)
    assert made.after_epoch == 2
    assert made.duration_s == pytest.approx(5 + 10 * 10 + 1)
    # Evaluation: one validation pass (1 s) at the epochs' mean power (0.03 kWh / 10 s).
    assert made.energy_kwh == pytest.approx(0.01 + 0.03 * 10 + 0.03 / 10)
    assert made.co2_kg == pytest.approx(made.energy_kwh * 0.1)
    assert forecast(None, [_epoch(1, 0.02)], 10, lambda kwh: kwh) is None


def test_budget_decision() -> None:
    made = forecast(Window(name="setup", duration_s=1, energy=_energy(0.0)),
                    [_epoch(1, 0.1)], 5, lambda kwh: kwh * 0.5)
    stop = budget_decision(BudgetSpec(limit=0.2, unit="kwh"), made)
    assert stop.exceeded and stop.action == "stopped" and stop.forecast_value > 0.5
    warn = budget_decision(BudgetSpec(limit=0.2, unit="kg", on_exceed="warn"), made)
    assert warn.exceeded and warn.action == "warned"
    fine = budget_decision(BudgetSpec(limit=10, unit="kg"), made)
    assert not fine.exceeded and fine.action == "none"


def test_target_accuracy_time_and_energy_to_the_first_epoch_reaching_it() -> None:
    epochs = [_epoch(1, 0.1, val=0.4), _epoch(2, 0.2, val=0.72), _epoch(3, 0.3, val=0.8)]
    reached = target_reached(0.7, epochs, lambda kwh: kwh)
    assert reached.reached and reached.epoch == 2
    assert reached.duration_s == 20.0 and reached.energy_kwh == pytest.approx(0.3)
    never = target_reached(0.9, epochs, lambda kwh: kwh)
    assert not never.reached and never.epoch is None


# --- oneDNN's instruction set: what the worker records, what the bench verifies ----------

AVX512_BF16_HOST = frozenset({"sse4_1", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                              "avx512dq", "avx512_vnni", "avx512_bf16"})
AVX2_HOST = frozenset({"sse4_1", "avx", "avx2", "fma"})


@pytest.mark.parametrize(("environ", "flags", "effective", "cap"), [
    ({}, AVX512_BF16_HOST, "AVX512_CORE_BF16", None),
    ({}, AVX2_HOST, "AVX2", None),
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, AVX512_BF16_HOST, "AVX2", "AVX2"),
    ({"DNNL_MAX_CPU_ISA": "AVX512_CORE"}, AVX512_BF16_HOST, "AVX512_CORE", "AVX512_CORE"),
    # the first variable set wins, as in oneDNN
    ({"ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX"}, AVX512_BF16_HOST, "AVX2", "AVX2"),
    # oneDNN reads the name in any case; names it does not know, ALL and caps above the
    # host's own level leave it uncapped
    ({"ONEDNN_MAX_CPU_ISA": "avx2"}, AVX512_BF16_HOST, "AVX2", "avx2"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX3"}, AVX512_BF16_HOST, "AVX512_CORE_BF16", "AVX3"),
    ({"ONEDNN_MAX_CPU_ISA": "ALL"}, AVX512_BF16_HOST, "AVX512_CORE_BF16", "ALL"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, AVX2_HOST, "AVX2", "AVX512_CORE_BF16"),
    # AVX2_VNNI is a side branch: an AVX-512 host without AVX-VNNI capped to it gets AVX2
    ({"ONEDNN_MAX_CPU_ISA": "AVX2_VNNI"}, AVX512_BF16_HOST, "AVX2", "AVX2_VNNI"),
    ({}, frozenset(), None, None),  # not x86
])
def test_onednn_isa_is_the_hosts_best_level_under_the_cap(
        environ: dict[str, str], flags: frozenset[str], effective: str | None,
        cap: str | None) -> None:
    isa = hostinfo.onednn_isa(environ, flags)
    assert (isa.effective, isa.cap) == (effective, cap)
    assert isa.capped == (effective != isa.native)


def test_onednn_verbose_parse_and_cap_check() -> None:
    from harness.bench import cap_took_effect, parse_onednn_verbose

    text = "\n".join([
        "onednn_verbose,v1,info,oneDNN v3.7.0 (commit abc)",
        "onednn_verbose,v1,info,cpu,runtime:threadpool,nthr:2",
        "onednn_verbose,v1,info,cpu,isa:Intel AVX2",
        "some other line",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,forward_training,"
        "src:f32::blocked:acdb::f0,,alg:convolution_direct,mb64_ic3oc32_ih32oh30kh3,0.5",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,backward_weights,"
        "src:f32::blocked:acdb::f0,,alg:convolution_direct,mb64_ic3oc32_ih32oh30kh3,0.25",
        "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32,,,64x32,0.1",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_bwd:avx2+brg_conv_fwd:avx2,"
        "backward_data,src:f32,,alg:convolution_direct,mb64_ic32oc64,0.5",
        "onednn_verbose,v1,primitive,exec,cpu,gemm_api,,undef,src_f32::blocked:ba:f0,,,"
        "256x64:64x10,0.02",
    ])
    parsed = parse_onednn_verbose(text)
    assert parsed["isa"] == "Intel AVX2" and parsed["version"].startswith("oneDNN v3.7")
    assert parsed["runtime"] == "threadpool" and parsed["threads"] == "2"
    assert parsed["kernels"]["convolution"]["jit:avx2"] == {"count": 2, "ms": 0.75}
    assert parsed["kernels"]["gemm_api"][""]["count"] == 1
    assert parsed["kernel_isas"] == ["avx2"]
    assert cap_took_effect(parsed, "AVX2")[0]
    uncapped = parse_onednn_verbose(text.replace("jit:avx2,backward", "brgconv:avx512_core,"
                                                 "backward").replace("AVX2", "AVX-512"))
    ok, detail = cap_took_effect(uncapped, "AVX2")
    assert not ok and "avx512_core" in detail and "AVX-512" in detail


# --- the training pipeline: speed only, never the mathematics ----------------------------


@pytest.mark.slow
def test_pipeline_shows_each_image_once_per_epoch_and_reshuffles() -> None:
    """The worker's tf.data pipeline (index shuffle, gather, batch): every image exactly
    once per epoch, scaled to [0, 1], labels kept with their images, a new order each
    epoch, the same orders for the same seed."""
    import numpy as np

    from harness.model import train_dataset

    n, batch = 250, 64  # ids fit in a uint8 pixel
    x = np.arange(n, dtype=np.uint8).repeat(32 * 32 * 3).reshape(n, 32, 32, 3)
    y = (np.arange(n) % 10).astype(np.uint8)

    def epochs(seed: int, count: int = 2) -> list[list[int]]:
        dataset = train_dataset(x, y, batch, seed)
        orders = []
        for _ in range(count):
            order: list[int] = []
            for images, labels in dataset:
                ids = np.rint(images.numpy()[:, 0, 0, 0] * 255).astype(int)
                assert images.numpy().max() <= 1.0
                assert (labels.numpy() == ids % 10).all()
                order.extend(ids.tolist())
            orders.append(order)
        return orders

    first, second = epochs(seed=7)
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(n))
    assert first != second, "a new order every epoch"
    assert epochs(seed=7) == [first, second], "the same seed gives the same orders"


@pytest.mark.slow
def test_evaluation_batches_every_image_once_in_order() -> None:
    """The evaluation pipeline (gathered in order from the images in place): every test
    image once, in order, scaled, with its label, at any evaluation batch size."""
    from dataclasses import replace

    import numpy as np

    from harness.model import DEFAULT_PIPELINE, eval_dataset

    n = 250
    x = np.arange(n, dtype=np.uint8).repeat(32 * 32 * 3).reshape(n, 32, 32, 3)
    y = (np.arange(n) % 10).astype(np.uint8)
    for batch in (64, 256, 1000):
        ids, labels = [], []
        for images, batch_labels in eval_dataset(x, y, replace(DEFAULT_PIPELINE,
                                                               eval_batch=batch)):
            assert images.shape[0] <= batch and images.numpy().max() <= 1.0
            ids += np.rint(images.numpy()[:, 0, 0, 0] * 255).astype(int).tolist()
            labels += batch_labels.numpy().tolist()
        assert ids == list(range(n)) and labels == [i % 10 for i in range(n)]


@pytest.mark.slow
def test_host_tensor_shares_an_aligned_array_and_copies_an_unaligned_one() -> None:
    """The training images are used in place (no TensorFlow copy) when 64-byte aligned,
    as the data set loader makes them; anything else is copied first, never aborts."""
    import numpy as np

    from harness.dataset.loading import aligned_empty
    from harness.model import host_tensor

    aligned = aligned_empty((10, 32, 32, 3))
    aligned[...] = 1
    assert aligned.ctypes.data % 64 == 0
    tensor = host_tensor(aligned)
    aligned[0, 0, 0, 0] = 7
    assert int(tensor[0, 0, 0, 0]) == 7, "shares the array's memory"

    unaligned = np.ones(10 * 32 * 32 * 3 + 1, dtype=np.uint8)[1:].reshape(10, 32, 32, 3)
    assert unaligned.ctypes.data % 64 != 0
    copied = host_tensor(unaligned)
    unaligned[0, 0, 0, 0] = 7
    assert int(copied[0, 0, 0, 0]) == 1 and copied.shape == (10, 32, 32, 3)
    readonly = np.ones((10, 32, 32, 3), dtype=np.uint8)
    readonly.flags.writeable = False
    assert int(host_tensor(readonly).numpy().sum()) == readonly.size


def test_cpu_time_of_finished_children_is_our_own_not_background() -> None:
    """CodeCarbon's hardware detection burns about a CPU-second in a subprocess: that must
    not read as another process's load (it made a 3 s idle measurement look busy)."""
    import subprocess
    import sys

    before = hostinfo.cpu_times()
    subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\n"
                    "while time.process_time() - t < 0.6: pass"], check=True)
    after = hostinfo.cpu_times()
    assert before is not None and after is not None
    assert after.own_s - before.own_s >= 0.55


def test_idle_baseline_retries_a_busy_window(tmp_path: Path, monkeypatch) -> None:
    from harness import meter
    from harness.schema import IdleBaseline

    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path))
    windows = iter([RuntimeError("the machine was busy (0.40 CPUs used by other processes)"),
                    IdleBaseline(measured_at="2026-11-29T12:00:00+00:00", duration_s=3.0,
                                 cpu_w=4.0, gpu_w=0.0, ram_w=2.0, estimated=True, methods=[],
                                 gpu_count=0)])

    def fake_measure(duration_s: float) -> IdleBaseline:
        result = next(windows)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(meter, "measure_idle", fake_measure)
    baseline, note = meter.idle_baseline(3.0, 0.0)
    assert baseline is not None and baseline.cpu_w == 4.0
    assert "attempt 2" in note and "0.40 CPUs" in note

    def always_busy(duration_s: float) -> IdleBaseline:
        raise RuntimeError("the machine was busy (0.90 CPUs used by other processes)")

    monkeypatch.setattr(meter, "measure_idle", always_busy)
    baseline, note = meter.idle_baseline(3.0, 0.0)
    assert baseline is None
    assert note.startswith(f"no idle baseline after {meter.IDLE_ATTEMPTS} attempts")


def test_codecarbon_gets_the_same_cpu_model_without_its_one_second_probe() -> None:
    """prime_cpu_model hands CodeCarbon /proc/cpuinfo's brand string: the same string
    py-cpuinfo's probe finds (checked here against the real probe), py-cpuinfo restored.
    In a fresh process: CodeCarbon caches the model per process."""
    import json
    import subprocess
    import sys

    code = (
        "import json, time, cpuinfo\n"
        "from codecarbon.core.util import detect_cpu_model\n"
        "from harness.carbon import prime_cpu_model\n"
        "probe = cpuinfo.get_cpu_info\n"
        "t = time.perf_counter(); primed = prime_cpu_model(); took = time.perf_counter() - t\n"
        "print(json.dumps({'primed': primed, 'took': took, 'restored': cpuinfo.get_cpu_info is probe,\n"
        "                  'codecarbon': detect_cpu_model(), 'probe': probe().get('brand_raw')}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                                    text=True, check=True).stdout)
    assert out["restored"]
    if hostinfo.proc_cpu_model() is None:  # no model name line: CodeCarbon detects itself
        assert not out["primed"]
        return
    assert out["primed"] and out["took"] < 0.5
    assert out["codecarbon"] == out["probe"] == hostinfo.proc_cpu_model()


# --- worker: a stop is never lost ------------------------------------------------------


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_dropped_inside_a_finaliser_is_raised_at_the_next_step(monkeypatch) -> None:
    """The signal handler's exception surfaces wherever the main thread is; inside a
    ``__del__`` Python prints it and drops it. The stop stays requested, and the
    training callback raises it after the next step and at the next epoch's end."""
    import gc
    import signal

    from harness.worker import run as worker
    from harness.worker.callbacks import LoopState, make_callback

    monkeypatch.setattr(worker._Stop, "requested", None)

    class Finalised:
        def __del__(self) -> None:
            worker._on_signal(signal.SIGTERM, None)

    Finalised()  # the Stopped raised in __del__ is dropped: no exception here
    gc.collect()
    assert worker._Stop.requested == "stopped by SIGTERM"
    callback = make_callback(state=LoopState(), tracking=None, epochs=5, process_start=0.0,
                             forecast_after=6, budget=None, price=lambda _kwh: 0.0,
                             on_history=lambda: None, emit=lambda **_event: None,
                             check_stop=worker.check_stop)
    callback.on_train_begin()
    with pytest.raises(worker.Stopped, match="stopped by SIGTERM"):
        callback.on_train_batch_end(0)
    callback.on_epoch_begin(0)
    with pytest.raises(worker.Stopped, match="stopped by SIGTERM"):
        callback.on_epoch_end(0, {"accuracy": 0.5, "val_accuracy": 0.5})


def test_a_run_ended_by_an_unexpected_exit_is_never_written_as_ok(tmp_path: Path,
                                                                  write_yaml, monkeypatch) -> None:
    """SystemExit (or KeyboardInterrupt) escapes the worker's handlers; the metrics written
    on the way out say failed, with the reason, and the exception still ends the run."""
    import json
    import signal

    from harness import tracking
    from harness.plan import expand, write_run_file
    from harness.scenario import load_scenario
    from harness.worker import run as worker
    from tests.conftest import MINIMAL

    spec = expand([load_scenario(write_yaml(MINIMAL))])[0]
    write_run_file(tmp_path, spec, session="s", session_id="x",
                   created_at="2026-01-01T00:00:00+00:00", backend="local")

    def exits(*_args, **_kwargs):
        raise SystemExit(1)

    monkeypatch.setattr(tracking, "start_tracking", exits)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with pytest.raises(SystemExit):
            worker.run(tmp_path, tmp_path / "data")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert metrics["error"] == "SystemExit: 1"
