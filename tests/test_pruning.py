"""Magnitude pruning of the research model (harness.pruning), with real Keras 3.

Small generated data (512 images 32x32x3, batch 64: 8 steps an epoch), and the model as
the worker compiles it (harness.model.build_model: steps_per_execution=8, so Keras runs
the batch callbacks once per epoch here, after 8 optimizer steps).
"""

from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from harness import pruning  # noqa: E402
from harness.model import build_model  # noqa: E402
from harness.pruning import PruningSpec  # noqa: E402
from harness.scenario import TrainingSpec  # noqa: E402

IMAGES, BATCH = 512, 64
PRUNED = ["conv2d", "conv2d_1", "conv2d_2", "dense"]  # every kernel but the classifier's


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, IMAGES)
    # Learnable: the class sets the mean brightness of one colour channel.
    images = rng.random((IMAGES, 32, 32, 3), dtype=np.float32) * 0.5
    images[np.arange(IMAGES), :, :, labels % 3] += (labels[:, None, None] / 20).astype(np.float32)
    return images, labels


def _model(seed: int = 1, **compile_args: object) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = build_model(TrainingSpec(epochs=2, batch_size=BATCH))
    if compile_args:
        model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy",
                      **compile_args)
    return model


def _layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    # Layer names are unique per process: map the model's own to the canonical ones.
    with_kernel = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    return dict(zip([*PRUNED, "classifier"], with_kernel, strict=True))


def _kernel(model: keras.Model, name: str) -> np.ndarray:
    return np.array(pruning._numpy(_layers(model)[name].kernel))


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target_sparsity": 0.0, "end_step": 10}, "target_sparsity must be strictly between 0 and 1"),
    ({"target_sparsity": 1.0, "end_step": 10}, "target_sparsity must be strictly between 0 and 1"),
    ({"target_sparsity": -0.2, "end_step": 10}, "target_sparsity must be strictly between 0 and 1"),
    ({"target_sparsity": 0.5, "begin_step": 10, "end_step": 5},
     r"end_step \(5\) is before begin_step \(10\)"),
    ({"target_sparsity": 0.5, "end_step": 10, "frequency": 0}, "frequency must be >= 1"),
    ({"target_sparsity": 0.5, "end_step": 10, "initial_sparsity": 0.6}, "initial_sparsity must be between"),
    ({"target_sparsity": 0.5, "end_step": 10, "begin_step": -1}, "begin_step must be >= 0"),
    ({"target_sparsity": 0.5, "end_step": 10, "power": 0}, "power must be > 0"),
])
def test_bad_parameters_are_refused_with_a_clear_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PruningSpec(**kwargs)


def test_from_epochs_converts_to_steps() -> None:
    spec = PruningSpec.from_epochs(0.5, begin_epoch=1, end_epoch=3, steps_per_epoch=782, frequency=50)
    assert (spec.begin_step, spec.end_step, spec.frequency) == (782, 2346, 50)
    with pytest.raises(ValueError, match="end_step"):
        PruningSpec.from_epochs(0.5, begin_epoch=3, end_epoch=1, steps_per_epoch=10)


def test_schedule_is_monotone_and_reaches_the_target_at_the_end_step() -> None:
    spec = PruningSpec(0.8, begin_step=100, end_step=1100, frequency=100, initial_sparsity=0.1)
    values = [spec.sparsity_at(step) for step in range(0, 1500)]
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert values[99] == 0.0 and values[100] == pytest.approx(0.1)
    assert values[1099] < 0.8 and values[1100] == 0.8 and values[1499] == 0.8
    assert spec.update_steps() == [*range(100, 1100, 100), 1100]
    # Zhu & Gupta eq. 1 on the grid, constant in between.
    assert spec.sparsity_at(650) == spec.sparsity_at(600) == pytest.approx(0.8 - 0.7 * 0.5**3)
    one_shot = PruningSpec(0.5, begin_step=7, end_step=7)
    assert (one_shot.sparsity_at(6), one_shot.sparsity_at(7)) == (0.0, 0.5)


# --------------------------------------------------------------------------- masks, no training


def test_masks_hit_the_sparsity_per_layer_and_leave_biases_and_classifier_alone() -> None:
    model = _model()
    before = [np.array(w) for w in model.get_weights()]
    (callback,) = pruning.attach_pruning(model, PruningSpec(0.5, end_step=10))
    assert [k.layer for k in callback.kernels] == [_layers(model)[n] for n in PRUNED]
    first = {}
    for sparsity in (0.3, 0.5, 0.8):
        for k in callback.kernels:
            zeros = k.update(sparsity)
            values = np.array(pruning._numpy(k.kernel))
            assert abs(zeros - sparsity * values.size) <= 1
            assert values.size - np.count_nonzero(values) == zeros
            # The smallest magnitudes went: every survivor is at least as large as any pruned one.
            original = before[next(i for i, w in enumerate(model.weights) if w is k.kernel)]
            if sparsity == 0.3:
                first[k.layer.name] = values == 0
                assert np.abs(original[values == 0]).max() <= np.abs(original[values != 0]).min()
            assert np.all(values[first[k.layer.name]] == 0)  # nested: once pruned, always pruned
    report = pruning.sparsity(model)
    assert [s.pruned for s in report.layers] == [True, True, True, True, False]
    assert report.pruned_sparsity == pytest.approx(0.8, abs=1e-5)
    assert report.all_zeros < report.all_weights * 0.8
    for weight, old in zip(model.weights, before, strict=True):
        if weight.path.endswith("bias") or weight is _layers(model)["classifier"].kernel:
            np.testing.assert_array_equal(pruning._numpy(weight), old)
            assert weight.constraint is None


def test_sizes_shrink_with_sparsity() -> None:
    model = _model()
    (callback,) = pruning.attach_pruning(model, PruningSpec(0.5, end_step=10))
    sizes, macs = [], []
    for sparsity in (0.0, 0.5, 0.8):
        for k in callback.kernels:
            k.update(sparsity)
        sizes.append(pruning.model_size(model))
        macs.append(pruning.inference_macs(model))
    params = sum(int(np.prod(w.shape)) for w in model.weights)
    assert all(s.dense_bytes == 4 * params for s in sizes)
    assert sizes[0].saved_bytes == sizes[2].saved_bytes > sizes[0].dense_bytes  # dense on disk
    for field in ("bitmask_bytes", "csr_bytes", "saved_gzip_bytes", "raw_gzip_bytes"):
        values = [getattr(s, field) for s in sizes]
        assert values[0] > values[1] > values[2], (field, values)
    assert sizes[2].bitmask_bytes < 0.3 * sizes[2].dense_bytes
    assert sizes[0].csr_bytes > sizes[0].dense_bytes  # an int32 index per value: dense is smaller
    assert macs[0]["ratio"] == 1.0 and macs[0]["dense_macs"] == macs[2]["dense_macs"]
    classifier_macs = 256 * 10
    assert macs[2]["nonzero_macs"] == pytest.approx(  # per-layer counts are rounded
        0.2 * (macs[2]["dense_macs"] - classifier_macs) + classifier_macs, rel=1e-3)


def test_attach_refuses_twice_and_training_cut_short_warns() -> None:
    model = _model()
    (callback,) = pruning.attach_pruning(model, PruningSpec(0.5, end_step=10))
    with pytest.raises(ValueError, match="already pruned"):
        pruning.attach_pruning(model, PruningSpec(0.5, end_step=10))
    callback.set_model(model)
    with pytest.warns(RuntimeWarning, match="ends at step 10 but training stopped at step 0"):
        callback.on_train_end()
    pruning.strip_pruning(model)
    assert pruning.pruned_kernels(model) == []
    with pytest.raises(ValueError, match="no layer with a kernel named nope"):
        pruning.attach_pruning(model, PruningSpec(0.5, end_step=10, layer_names=("nope",)))


# --------------------------------------------------------------------------- training


@pytest.mark.slow
def test_gradual_pruning_reaches_the_target_and_zeros_stay_through_fine_tuning() -> None:
    x, y = _data()
    model = _model()
    assert model.steps_per_execution == 8
    # 8 steps an epoch; masks at steps 0 (0%), 8 (70%), 16 (80%).
    spec = PruningSpec(0.8, begin_step=0, end_step=16, frequency=8)
    callbacks = pruning.attach_pruning(model, spec)
    model.fit(x, y, batch_size=BATCH, epochs=2, callbacks=callbacks, verbose=0)
    (callback,) = callbacks
    assert callback.done
    assert [(step, sparsity) for step, _, sparsity, _ in callback.updates] == [
        (0, 0.0), (8, pytest.approx(0.7)), (16, 0.8)]
    report = pruning.sparsity(model)
    for layer in report.layers[:4]:
        assert abs(layer.zeros - 0.8 * layer.weights) <= 1, layer
    assert report.layers[4].zeros == 0 and not report.layers[4].pruned

    # Further training (2 more epochs, 16 Adam steps): the same weights stay exactly zero,
    # the others keep learning.
    pruned = {name: _kernel(model, name) == 0 for name in PRUNED}
    kept = {name: _kernel(model, name) for name in PRUNED}
    history = model.fit(x, y, batch_size=BATCH, epochs=2, callbacks=callbacks, verbose=0)
    for name in PRUNED:
        kernel = _kernel(model, name)
        assert np.all(kernel[pruned[name]] == 0), name
        assert np.count_nonzero(kernel) == np.count_nonzero(~pruned[name])
        assert not np.array_equal(kernel, kept[name])
    assert history.history["accuracy"][-1] > 0.2  # it still learns (chance is 0.1)


@pytest.mark.slow
def test_masks_hold_after_every_step_inside_an_execution_of_8_steps() -> None:
    """A batch callback sees one end per 8 steps; the constraint masks after each step.

    Reference: steps_per_execution=1 and the masks re-applied by a callback after every
    step. The pruned model at steps_per_execution=8 must train to the same weights; a
    callback alone at steps_per_execution=8 does not (weights revive inside an execution).
    """
    x, y = _data()

    def pruned_at_start(model: keras.Model) -> list[pruning.PrunedKernel]:
        (callback,) = pruning.attach_pruning(model, PruningSpec(0.5, end_step=0))
        for k in callback.kernels:
            k.update(0.5)  # same seed, same weights: the same masks in every model
        return callback.kernels

    class Reapply(keras.callbacks.Callback):
        def __init__(self, kernels: list[pruning.PrunedKernel]) -> None:
            super().__init__()
            self.kernels = kernels

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            for k in self.kernels:
                k.kernel.assign(k.kernel * k.mask)

    def train(steps_per_execution: int, constraint: bool) -> list[np.ndarray]:
        model = _model(steps_per_execution=steps_per_execution)
        kernels = pruned_at_start(model)
        if not constraint:
            pruning.strip_pruning(model)
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[Reapply(kernels)])
        assert int(model.optimizer.iterations.numpy()) == 8
        return [np.array(pruning._numpy(k.kernel)) for k in kernels]

    constrained = train(8, constraint=True)
    reference = train(1, constraint=False)
    callback_only = train(8, constraint=False)
    for ours, ref in zip(constrained, reference, strict=True):
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    drift = max(np.abs(a - b).max() for a, b in zip(callback_only, reference, strict=True))
    assert drift > 1e-4, "callback-only masking should differ inside an execution"


@pytest.mark.slow
def test_pruning_before_the_schedule_starts_is_exactly_dense_training() -> None:
    x, y = _data()

    def train(prune: bool) -> list[np.ndarray]:
        model = _model()
        callbacks = pruning.attach_pruning(model, PruningSpec(0.5, begin_step=100, end_step=200)) \
            if prune else []
        with pytest.warns(RuntimeWarning) if prune else contextlib.nullcontext():
            model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
        return model.get_weights()

    for dense, masked in zip(train(False), train(True), strict=True):
        np.testing.assert_array_equal(dense, masked)  # all-ones mask: x * 1.0 == x


def test_inference_helpers_restore_the_weights() -> None:
    model = _model()
    (callback,) = pruning.attach_pruning(model, PruningSpec(0.5, end_step=0))
    for k in callback.kernels:
        k.update(0.5)
    before = [np.array(w) for w in model.get_weights()]
    images = (np.random.default_rng(0).random((64, 32, 32, 3)) * 255).astype(np.uint8)
    result = pruning.compare_inference(model, images, batch_size=32, repeats=1)
    assert result["pruned"].images == 64 and result["pruned"].median_s > 0
    assert math.isfinite(result["speedup"])
    for now, old in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(now, old)
