"""Magnitude pruning of the research model on Keras 3. Worker side: imports Keras.

A "greener training" strategy: the smallest-magnitude kernel weights of the Conv2D and
Dense layers are set to zero on a schedule during training and kept at zero to the end,
as in Zhu & Gupta 2017, "To prune or not to prune" (https://arxiv.org/abs/1710.01878).

Why it is here and not TensorFlow Model Optimization: tfmot 0.8.1 (the latest release)
requires ``tf-keras`` (Keras 2), sets ``TF_USE_LEGACY_KERAS=1`` on import and refuses
Keras 3 models (tensorflow/model-optimization#1119, #1141, #1167); Keras 3 itself has no
pruning API. The workload stays on Keras 3 here.

How the zeros survive training: each pruned kernel gets a non-trainable mask variable and
a :class:`MaskConstraint` on the kernel *variable* (``kernel.constraint``). Keras 3's
optimizer applies ``variable.constraint`` right after every update, inside the compiled
train step, so the mask holds after every optimizer step, also within one execution
of ``steps_per_execution`` steps (8 in the worker), where batch callbacks do not run.
(A constraint set on ``layer.kernel_constraint`` after the layer is built is *not*
honoured: Keras copies it onto the variable once, in ``add_weight``.) The
:class:`MagnitudePruning` callback only decides, on the schedule, which weights the masks
keep. With an all-ones mask (before the schedule starts) the constraint multiplies by
1.0, which is exact: training is bit for bit that of the dense model.

What it saves: storage, when the zeros are stripped or compressed
(:func:`model_size`), and multiply-adds, *if* a sparse kernel ran the model
(:func:`inference_macs`). Keras/TensorFlow's dense Conv2D and MatMul kernels (oneDNN,
Eigen, cuDNN) do not skip zeros, so training and inference time of the pruned model on
this stack are those of the dense one (:func:`compare_inference` measures it).
"""

from __future__ import annotations

import contextlib
import gzip
import math
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

#: Layer classes pruned by default (their ``kernel``; never their bias).
DEFAULT_LAYER_TYPES: tuple[str, ...] = ("Conv2D", "Dense")


def _numpy(value: Any) -> np.ndarray:
    """A variable's or tensor's value as a numpy array (a copy for variables)."""
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class PruningSpec:
    """What to prune, how far and when. Steps are optimizer steps (batches), counted from 0.

    The schedule is Zhu & Gupta's polynomial decay (their eq. 1, ``power`` 3 by default):
    ``s(t) = target + (initial - target) * (1 - (t - begin) / (end - begin)) ** power``
    for ``begin <= t <= end``, evaluated on the grid ``begin, begin + frequency, ...``
    and at ``end``: masks are recomputed when training has done ``begin``,
    ``begin + frequency``, ... steps, and a last time at ``end``, where the sparsity is
    exactly ``target``. Before ``begin`` nothing is pruned; after ``end`` the masks stay
    as they are (fine-tuning). ``end == begin`` prunes once, to ``target``.

    Masks are recomputed in a batch callback, which Keras calls once per execution of
    ``steps_per_execution`` steps: an update is applied at the first execution end at or
    after its grid step (up to ``steps_per_execution - 1`` steps late), with the sparsity
    of that grid step. Between updates the masks hold after every step (module doc).
    """

    target_sparsity: float
    """Fraction of each pruned kernel's weights that are zero at the end, 0 < s < 1."""
    end_step: int
    """Step at which the target sparsity is reached (>= begin_step)."""
    begin_step: int = 0
    """Step at which pruning starts (>= 0)."""
    initial_sparsity: float = 0.0
    """Sparsity of the first update, at begin_step (0 <= initial <= target)."""
    frequency: int = 100
    """Steps between mask updates (>= 1)."""
    power: float = 3.0
    """Exponent of the polynomial decay (> 0; 3 in Zhu & Gupta; 1 is linear)."""
    layer_types: tuple[str, ...] = DEFAULT_LAYER_TYPES
    """Class names of the layers whose kernels are pruned."""
    prune_classifier: bool = False
    """Also prune the output layer (the final Dense 10); off by default, as in Zhu & Gupta's
    practice of leaving the small, sensitive last layer dense."""
    layer_names: tuple[str, ...] | None = None
    """Prune exactly these layers (by name) instead of selecting by type."""

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ValueError(f"PruningSpec: {message}")

        if not (isinstance(self.target_sparsity, int | float) and 0.0 < self.target_sparsity < 1.0):
            fail(f"target_sparsity must be strictly between 0 and 1 (a fraction of the weights "
                 f"set to zero), got {self.target_sparsity!r}")
        if not (isinstance(self.initial_sparsity, int | float)
                and 0.0 <= self.initial_sparsity <= self.target_sparsity):
            fail(f"initial_sparsity must be between 0 and target_sparsity "
                 f"({self.target_sparsity}), got {self.initial_sparsity!r}")
        for name in ("begin_step", "end_step", "frequency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                fail(f"{name} must be an integer, got {value!r}")
        if self.begin_step < 0:
            fail(f"begin_step must be >= 0, got {self.begin_step}")
        if self.end_step < self.begin_step:
            fail(f"end_step ({self.end_step}) is before begin_step ({self.begin_step}); "
                 f"the schedule must end at or after its start")
        if self.frequency < 1:
            fail(f"frequency must be >= 1 step, got {self.frequency}")
        if not (isinstance(self.power, int | float) and self.power > 0):
            fail(f"power must be > 0, got {self.power!r}")
        if self.layer_names is None and not self.layer_types:
            fail("layer_types is empty: name at least one layer class, e.g. ('Conv2D', 'Dense')")

    @classmethod
    def from_epochs(cls, target_sparsity: float, *, begin_epoch: float, end_epoch: float,
                    steps_per_epoch: int, **kwargs: Any) -> PruningSpec:
        """The same schedule given in epochs: step = round(epoch * steps_per_epoch).

        ``steps_per_epoch`` is ``harness.model.steps(train_size, batch_size)``; the other
        keyword arguments are the fields of :class:`PruningSpec`.
        """
        if steps_per_epoch < 1:
            raise ValueError(f"PruningSpec: steps_per_epoch must be >= 1, got {steps_per_epoch}")
        return cls(target_sparsity, begin_step=round(begin_epoch * steps_per_epoch),
                   end_step=round(end_epoch * steps_per_epoch), **kwargs)

    def schedule(self, step: int) -> float:
        """The polynomial ``s(step)``, with ``step`` clipped to [begin_step, end_step]."""
        if self.end_step == self.begin_step:
            return float(self.target_sparsity)
        progress = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return float(self.target_sparsity
                     + (self.initial_sparsity - self.target_sparsity) * (1.0 - progress) ** self.power)

    def grid_step(self, step: int) -> int | None:
        """The last scheduled mask update at or before ``step``; None before begin_step."""
        if step < self.begin_step:
            return None
        if step >= self.end_step:
            return self.end_step
        return self.begin_step + (step - self.begin_step) // self.frequency * self.frequency

    def sparsity_at(self, step: int) -> float:
        """Scheduled sparsity after ``step`` steps: 0 before begin_step, the target from end_step."""
        grid = self.grid_step(step)
        return 0.0 if grid is None else self.schedule(grid)

    def update_steps(self) -> list[int]:
        """Every step at which the masks are recomputed: begin, begin + frequency, ..., end."""
        steps = list(range(self.begin_step, self.end_step, self.frequency))
        return [*steps, self.end_step]


# --------------------------------------------------------------------------- masks


class MaskConstraint(keras.constraints.Constraint):
    """``w -> inner(w) * mask``: applied by the optimizer after every update of ``w``.

    ``mask`` is a non-trainable variable of the kernel's shape holding 0.0 and 1.0;
    ``inner`` is a constraint the kernel already had (kept, applied first).
    """

    def __init__(self, mask: keras.Variable, inner: Any = None) -> None:
        self.mask = mask
        self.inner = inner

    def __call__(self, w: Any) -> Any:
        if self.inner is not None:
            w = self.inner(w)
        return keras.ops.multiply(w, keras.ops.cast(self.mask, w.dtype))


@dataclass
class PrunedKernel:
    """One pruned kernel: its layer, the kernel variable and the mask variable."""

    layer: keras.layers.Layer
    kernel: keras.Variable
    mask: keras.Variable

    def update(self, sparsity: float) -> int:
        """Zero the ``round(sparsity * size)`` smallest-magnitude weights; returns that count.

        Weights pruned before are pruned first (ties with exact zeros cannot swap them
        back in), so with a non-decreasing schedule each mask is contained in the last.
        The kernel is masked at once, not only at the next optimizer step.
        """
        weights = _numpy(self.kernel)
        old_mask = _numpy(self.mask)
        size = weights.size
        count = min(size, math.floor(sparsity * size + 0.5))
        score = np.abs(weights).astype(np.float64).ravel()
        score[old_mask.ravel() == 0] = -1.0
        mask = np.ones(size, dtype=old_mask.dtype)
        if count > 0:
            mask[np.argpartition(score, count - 1)[:count]] = 0
        mask = mask.reshape(weights.shape)
        self.mask.assign(mask)
        self.kernel.assign(weights * mask)
        return count


def prunable_layers(model: keras.Model, spec: PruningSpec) -> list[keras.layers.Layer]:
    """The layers of ``model`` whose kernels ``spec`` prunes, in model order.

    By type (``spec.layer_types``, matched on the class and its bases), without the
    model's output layer unless ``spec.prune_classifier``; or exactly ``spec.layer_names``.
    Only the model's own layers are considered (not those inside nested models).
    """
    layers = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    if spec.layer_names is not None:
        by_name = {layer.name: layer for layer in layers}
        missing = [name for name in spec.layer_names if name not in by_name]
        if missing:
            raise ValueError(f"PruningSpec.layer_names: no layer with a kernel named "
                             f"{', '.join(missing)} (layers with kernels: {', '.join(by_name)})")
        return [layer for layer in layers if layer.name in spec.layer_names]
    outputs = _output_layer_ids(model)
    chosen = []
    for layer in layers:
        kinds = {cls.__name__ for cls in type(layer).__mro__}
        if kinds.isdisjoint(spec.layer_types):
            continue
        if id(layer) in outputs and not spec.prune_classifier:
            continue
        chosen.append(layer)
    return chosen


def _output_layer_ids(model: keras.Model) -> set[int]:
    """ids of the layers that produce the model's outputs (the last layer as a fallback)."""
    try:
        outputs = {id(t) for t in model.outputs}
    except (AttributeError, ValueError):
        outputs = set()
    found = set()
    for layer in model.layers:
        try:
            if id(layer.output) in outputs:
                found.add(id(layer))
        except (AttributeError, ValueError):
            continue
    if not found and model.layers:
        found.add(id(model.layers[-1]))
    return found


def pruned_kernels(model: keras.Model) -> list[PrunedKernel]:
    """The kernels of ``model`` that carry a pruning mask (attached by :func:`attach_pruning`)."""
    found = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        constraint = getattr(kernel, "constraint", None)
        if isinstance(constraint, MaskConstraint):
            found.append(PrunedKernel(layer, kernel, constraint.mask))
    return found


class MagnitudePruning(keras.callbacks.Callback):
    """Recomputes the masks on the schedule of a :class:`PruningSpec`.

    The step is read from ``model.optimizer.iterations`` (optimizer steps done), at the
    start of training and after every execution. Zeroing between updates is the job of
    the :class:`MaskConstraint` inside the train step, not of this callback.

    Attributes:
        updates: ``(step, grid_step, sparsity, zeros per layer name)`` of every update.
    """

    def __init__(self, spec: PruningSpec, kernels: list[PrunedKernel]) -> None:
        super().__init__()
        self.spec = spec
        self.kernels = kernels
        self.updates: list[tuple[int, int, float, dict[str, int]]] = []
        self._last_grid: int | None = None

    def _step(self) -> int:
        return int(_numpy(self.model.optimizer.iterations))

    def _maybe_update(self) -> None:
        step = self._step()
        grid = self.spec.grid_step(step)
        if grid is None or grid == self._last_grid:
            return
        sparsity = self.spec.schedule(grid)
        zeros = {k.layer.name: k.update(sparsity) for k in self.kernels}
        self._last_grid = grid
        self.updates.append((step, grid, sparsity, zeros))

    def on_train_begin(self, logs: dict | None = None) -> None:
        for k in self.kernels:
            if not (isinstance(k.kernel.constraint, MaskConstraint) and k.kernel.constraint.mask is k.mask):
                raise RuntimeError(f"the pruning mask of layer {k.layer.name!r} was removed from "
                                   "its kernel: call attach_pruning again")
        self._maybe_update()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._maybe_update()

    def on_train_end(self, logs: dict | None = None) -> None:
        step = self._step()
        if step < self.spec.end_step:
            warnings.warn(
                f"pruning schedule ends at step {self.spec.end_step} but training stopped at "
                f"step {step}: the sparsity is {self.spec.sparsity_at(step):.3f}, not the target "
                f"{self.spec.target_sparsity}", RuntimeWarning, stacklevel=2)

    @property
    def done(self) -> bool:
        """Whether the last update (to the target sparsity) has been applied."""
        return self._last_grid == self.spec.end_step


def attach_pruning(model: keras.Model, spec: PruningSpec) -> list[keras.callbacks.Callback]:
    """Make a built (and compiled) model prunable in place; returns the callbacks for ``fit``.

    For each layer :func:`prunable_layers` selects, adds an all-ones mask variable and
    sets ``layer.kernel.constraint`` to a :class:`MaskConstraint` (keeping an existing
    constraint inside it), then drops the model's traced train function so the next
    ``fit`` traces the constraint into the step. Nothing else about the model, its
    compilation (optimizer, ``steps_per_execution``, ``jit_compile``) or its weights
    changes, and ``model.save`` / ``save_weights`` write a plain model (the masks are
    not saved; the zeros are). Pass *all* the returned callbacks to ``fit``.

    Raises:
        ValueError: the model is not built, nothing to prune, or a layer is already pruned.
    """
    if not model.built:
        raise ValueError("attach_pruning needs a built model (build_model builds it)")
    layers = prunable_layers(model, spec)
    if not layers:
        raise ValueError(f"no layer to prune: no {', '.join(spec.layer_types)} layer with a "
                         "kernel other than the classifier")
    strategy = getattr(model, "distribute_strategy", None)
    kernels = []
    for layer in layers:
        kernel = layer.kernel
        if isinstance(kernel.constraint, MaskConstraint):
            raise ValueError(f"layer {layer.name!r} is already pruned (attach_pruning was called twice)")
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            mask = keras.Variable(np.ones(kernel.shape, dtype=kernel.dtype), trainable=False,
                                  name=f"{layer.name}_prune_mask")
        kernel.constraint = MaskConstraint(mask, inner=kernel.constraint)
        kernels.append(PrunedKernel(layer, kernel, mask))
    _retrace(model)
    return [MagnitudePruning(spec, kernels)]


def strip_pruning(model: keras.Model) -> None:
    """Remove the masks (the zeros stay in the weights); further training is dense again."""
    for k in pruned_kernels(model):
        k.kernel.constraint = k.kernel.constraint.inner
    _retrace(model)


def _retrace(model: keras.Model) -> None:
    # The optimizer reads variable.constraint when the train step is traced.
    if hasattr(model, "train_function"):
        model.train_function = None


# --------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class LayerSparsity:
    """Exact zeros in one layer's kernel."""

    name: str
    kind: str
    shape: tuple[int, ...]
    weights: int
    zeros: int
    pruned: bool
    """Whether the kernel carries a pruning mask."""

    @property
    def sparsity(self) -> float:
        """zeros / weights."""
        return self.zeros / self.weights if self.weights else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Exact zero counts (``== 0.0``) of a model's weights."""

    layers: list[LayerSparsity]
    """Every layer with a kernel (Conv2D, Dense), pruned or not; kernels only."""
    pruned_weights: int
    pruned_zeros: int
    all_weights: int
    """Every weight of the model (kernels, biases, everything in ``model.weights``)."""
    all_zeros: int

    @property
    def pruned_sparsity(self) -> float:
        """Zeros / weights over the pruned kernels."""
        return self.pruned_zeros / self.pruned_weights if self.pruned_weights else 0.0

    @property
    def overall_sparsity(self) -> float:
        """Zeros / weights over every weight of the model, biases and unpruned layers included."""
        return self.all_zeros / self.all_weights if self.all_weights else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "layers": [{"name": s.name, "kind": s.kind, "shape": list(s.shape), "weights": s.weights,
                        "zeros": s.zeros, "sparsity": s.sparsity, "pruned": s.pruned}
                       for s in self.layers],
            "pruned_weights": self.pruned_weights, "pruned_zeros": self.pruned_zeros,
            "pruned_sparsity": self.pruned_sparsity, "all_weights": self.all_weights,
            "all_zeros": self.all_zeros, "overall_sparsity": self.overall_sparsity,
        }


def sparsity(model: keras.Model) -> SparsityReport:
    """Count the exact zeros of every kernel and of all the model's weights."""
    layers = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        values = _numpy(kernel)
        layers.append(LayerSparsity(
            name=layer.name, kind=type(layer).__name__, shape=tuple(values.shape),
            weights=int(values.size), zeros=int(values.size - np.count_nonzero(values)),
            pruned=isinstance(getattr(kernel, "constraint", None), MaskConstraint)))
    arrays = [_numpy(w) for w in model.weights]
    pruned = [s for s in layers if s.pruned]
    return SparsityReport(
        layers=layers,
        pruned_weights=sum(s.weights for s in pruned), pruned_zeros=sum(s.zeros for s in pruned),
        all_weights=int(sum(a.size for a in arrays)),
        all_zeros=int(sum(a.size - np.count_nonzero(a) for a in arrays)))


@dataclass(frozen=True)
class ModelSize:
    """Sizes of a model's weights (``model.weights``: no optimizer state), all in bytes."""

    dense_bytes: int
    """Every weight stored densely at its dtype (float32: 4 bytes a weight), no container."""
    bitmask_bytes: int
    """Zeros stripped, bitmask format: each tensor of rank >= 2 as a bitmask of 1 bit a
    weight (rounded up to whole bytes) plus its non-zero values at their dtype; 1-D
    tensors (biases) dense."""
    csr_bytes: int
    """Zeros stripped, CSR format (scipy.sparse's layout with int32 indices): each tensor
    of rank >= 2 seen as a (fan-in, last axis) matrix, stored as its non-zero values,
    one int32 column index per value and (rows + 1) int32 row pointers; 1-D tensors dense.
    Larger than dense below 50% sparsity (an index per value is 4 bytes)."""
    saved_bytes: int
    """The file ``save_weights`` writes for the model without its optimizer state
    (``.weights.h5``: HDF5, dense float32 arrays plus layout metadata)."""
    saved_gzip_bytes: int
    """That file gzip-compressed (level 9): what zeros save without a sparse format."""
    raw_gzip_bytes: int
    """The weights' raw bytes, concatenated in ``model.weights`` order, gzip level 9."""

    def as_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return dict(self.__dict__)


def model_size(model: keras.Model) -> ModelSize:
    """Measure :class:`ModelSize` (writes the weights to a temporary file, then removes it)."""
    arrays = [np.ascontiguousarray(_numpy(w)) for w in model.weights]
    dense = bitmask = csr = 0
    for a in arrays:
        item = a.dtype.itemsize
        dense += a.size * item
        if a.ndim < 2:
            bitmask += a.size * item
            csr += a.size * item
            continue
        nnz = int(np.count_nonzero(a))
        rows = a.size // a.shape[-1]
        bitmask += math.ceil(a.size / 8) + nnz * item
        csr += nnz * item + nnz * 4 + (rows + 1) * 4
    raw = b"".join(a.tobytes() for a in arrays)
    # A copy rebuilt from the config, never compiled: save_weights of a compiled model
    # also writes the optimizer's state (Adam: two more dense copies), which is not the
    # model, and keras.models.clone_model (Keras 3.15) compiles its clone.
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    with tempfile.TemporaryDirectory(prefix="harness-pruning-") as tmp:
        path = Path(tmp) / "model.weights.h5"
        clone.save_weights(path)
        saved = path.read_bytes()
    return ModelSize(dense_bytes=dense, bitmask_bytes=bitmask, csr_bytes=csr,
                     saved_bytes=len(saved), saved_gzip_bytes=len(gzip.compress(saved, 9)),
                     raw_gzip_bytes=len(gzip.compress(raw, 9)))


@dataclass(frozen=True)
class LayerMacs:
    """Multiply-accumulates of one layer for one image's forward pass."""

    name: str
    dense_macs: int
    nonzero_macs: int
    """MACs whose kernel weight is not zero: what a zero-skipping (sparse) kernel would do."""


def inference_macs(model: keras.Model) -> dict[str, Any]:
    """Forward multiply-accumulates per image, dense and with zero weights skipped.

    Conv2D: output height x width x non-zero kernel weights (each kernel weight meets
    every output position once with 'valid' padding, stride 1 or not; 'same' padding
    counts border positions as full); Dense: non-zero kernel weights. Biases,
    activations and pooling are not counted. One MAC is 2 FLOPs. Returns
    ``{"layers": [LayerMacs...], "dense_macs", "nonzero_macs", "ratio"}`` with
    ratio = nonzero / dense. The dense kernels TensorFlow runs (oneDNN, Eigen, cuDNN)
    do all the dense MACs whatever the zeros.
    """
    layers = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        values = _numpy(kernel)
        if isinstance(layer, keras.layers.Conv2D):
            positions = math.prod(layer.output.shape[1:3])
        elif isinstance(layer, keras.layers.Dense):
            positions = 1
        else:
            continue
        layers.append(LayerMacs(layer.name, positions * int(values.size),
                                positions * int(np.count_nonzero(values))))
    dense = sum(m.dense_macs for m in layers)
    nonzero = sum(m.nonzero_macs for m in layers)
    return {"layers": layers, "dense_macs": dense, "nonzero_macs": nonzero,
            "ratio": nonzero / dense if dense else 1.0}


@dataclass(frozen=True)
class InferenceTiming:
    """Wall-clock time of ``model.predict`` on a fixed set of images."""

    images: int
    seconds: list[float] = field(default_factory=list)
    """One per repeat, after one untimed warm-up call (tracing)."""

    @property
    def median_s(self) -> float:
        """Median of the repeats, seconds."""
        return statistics.median(self.seconds)

    @property
    def images_per_s(self) -> float:
        """images / median_s."""
        return self.images / self.median_s


def time_predict(model: keras.Model, images: np.ndarray, *, batch_size: int = 256,
                 repeats: int = 3) -> InferenceTiming:
    """Time ``model.predict(images)``; uint8 images are scaled to [0, 1] first (not timed)."""
    x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images
    model.predict(x[:batch_size], batch_size=batch_size, verbose=0)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(x, batch_size=batch_size, verbose=0)
        seconds.append(time.perf_counter() - start)
    return InferenceTiming(images=len(x), seconds=seconds)


def compare_inference(model: keras.Model, images: np.ndarray, *, batch_size: int = 256,
                      repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Does the model's sparsity make ``predict`` faster on this stack? Same model, same graph.

    Times ``predict`` with the weights as they are (pruned), then with every zero of every
    kernel replaced by a random value of the kernel's scale (normal, the standard deviation
    of its non-zero weights), then restores the weights exactly. Returns
    ``{"pruned": InferenceTiming, "densified": InferenceTiming, "speedup": densified
    median / pruned median}``: about 1.0 when the kernels do not skip zeros.
    """
    rng = np.random.default_rng(seed)
    kernels = [layer.kernel for layer in model.layers if getattr(layer, "kernel", None) is not None]
    saved = [np.array(_numpy(k)) for k in kernels]
    pruned = time_predict(model, images, batch_size=batch_size, repeats=repeats)
    try:
        for kernel, values in zip(kernels, saved, strict=True):
            nonzero = values[values != 0]
            scale = float(nonzero.std()) if nonzero.size else 0.05
            filled = np.where(values == 0, rng.normal(0.0, scale or 0.05, values.shape), values)
            kernel.assign(filled.astype(values.dtype))
        densified = time_predict(model, images, batch_size=batch_size, repeats=repeats)
    finally:
        for kernel, values in zip(kernels, saved, strict=True):
            kernel.assign(values)
    return {"pruned": pruned, "densified": densified,
            "speedup": densified.median_s / pruned.median_s}
