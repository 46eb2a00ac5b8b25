"""The research model and its input pipeline. Worker side: imports TensorFlow.

The model, loss, optimizer, batch size and epochs are the research workload
(README, "The workload"); pipeline and execution settings (:class:`Pipeline`) may change
only speed and memory, never the mathematics. They were chosen by measurement with
``python -m harness bench`` (README, "Performance").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from harness.dataset.loading import ALIGNMENT, aligned_empty
from harness.scenario import TrainingSpec

NUM_CLASSES = 10
#: Images per evaluation batch by default (Pipeline.eval_batch); evaluation results do not
#: depend on it, only speed and memory.
EVAL_BATCH = 256


@dataclass(frozen=True)
class Pipeline:
    """Speed-only settings of the input pipeline and of Keras' execution loop.

    The defaults are what the worker uses; ``python -m harness bench`` can run
    other values side by side (``--variants 'worker:steps_per_execution=1'``).
    """

    steps_per_execution: int = 8
    """Training steps per call into the compiled function: fewer Python round trips
    (1 was 0.89x of the research pipeline, 8 and 32 alike within noise; 8 keeps the
    batch callbacks, which measure step gaps, at about 0.2 s apart). The last execution
    of an epoch stops at the end of the data (782 steps for 50,000 images, the last
    batch partial), as ``fit(x, y)`` does."""
    autotune: bool = False
    """tf.data autotuning. Off: its model thread is what iterator destruction waited
    for, 9-28 s at epoch boundaries (a backtrace showed it); fixed parallelism and
    prefetch below do the same job for this small pipeline."""
    index_shuffle: bool = True
    """Shuffle image indices and gather each batch from one uint8 tensor, instead of a
    shuffle buffer that holds a copy of every image."""
    data_optimizations: bool = False
    """tf.data's default graph rewrites. Off: to rewrite, tf.data serialises the pipeline's
    graph, and with it a copy of the images tensor the batches are gathered from (+167 MB
    resident for CIFAR-10's training images, measured); this pipeline (range, shuffle,
    batch, map, prefetch) has nothing for them to fuse."""
    parallel_calls: int = 1
    """Threads gathering and scaling batches (one keeps up with training on 2 cores)."""
    prefetch: int = 4
    """Batches prepared ahead of the training step."""
    inter_op_threads: int = 2
    """TensorFlow inter-op threads (independent ops run side by side), at most the CPUs
    granted: 2 was 1.18x faster than 1 on 2 cores (2 processes each, side by side)."""
    intra_op_threads: int = 0
    """TensorFlow intra-op threads (one op's work split across them); 0: the CPUs granted."""
    eval_batch: int = EVAL_BATCH
    """Images per batch of the per-epoch validation and the final evaluation (the loss and
    accuracy over the test set do not depend on it)."""


DEFAULT_PIPELINE = Pipeline()


def pipeline_for(replicas: int) -> Pipeline:
    """The worker's pipeline for a model replicated ``replicas`` times.

    Several replicas (MirroredStrategy, more than one GPU) train with one step per
    execution: Keras 3.15 with TF 2.21 fails inside the multi-step loop of a mirrored
    model ("You must feed a value for placeholder tensor ...while/cond/Placeholder",
    reproduced on two logical devices; keras-team/keras#19246).
    """
    if replicas > 1:
        return dataclasses.replace(DEFAULT_PIPELINE, steps_per_execution=1)
    return DEFAULT_PIPELINE


def build_model(training: TrainingSpec, pipeline: Pipeline = DEFAULT_PIPELINE, *,
                one_hot: bool = False) -> tf.keras.Model:
    """The research CNN, compiled with Adam and (sparse) categorical cross-entropy.

    Sparse labels with the sparse loss are the same mathematics as one-hot labels
    with categorical cross-entropy, without materialising a one-hot matrix;
    ``one_hot=True`` is the research script's own form (the benchmark's reference).
    """
    if training.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
    layers = tf.keras.layers
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(32, 32, 3)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(128, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            # float32 output keeps the softmax and loss stable under mixed precision.
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="cifar10_cnn",
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=training.effective_learning_rate),
        loss="categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=training.xla,
        steps_per_execution=pipeline.steps_per_execution,
    )
    return model


def configure_threads(cpus: float, pipeline: Pipeline = DEFAULT_PIPELINE) -> int:
    """Match TensorFlow's thread pools to the CPUs granted; returns the intra-op count.

    Must run before TensorFlow executes its first op.
    """
    threads = max(1, math.ceil(cpus))
    intra = min(pipeline.intra_op_threads, threads) if pipeline.intra_op_threads else threads
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(min(pipeline.inter_op_threads, threads))
    return intra


def _scale(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    # Scaling per batch keeps the data uint8 in memory (4x smaller than float32).
    return tf.cast(images, tf.float32) / 255.0, labels


def _options(pipeline: Pipeline) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = pipeline.autotune
    options.experimental_optimization.apply_default_optimizations = pipeline.data_optimizations
    return options


def _parallel(pipeline: Pipeline) -> int:
    return tf.data.AUTOTUNE if pipeline.autotune else pipeline.parallel_calls


def _prefetch(pipeline: Pipeline) -> int:
    return tf.data.AUTOTUNE if pipeline.autotune else pipeline.prefetch


def host_tensor(array: np.ndarray) -> tf.Tensor:
    """``array`` as a CPU tensor that shares its memory (DLPack), not a copy.

    ``tf.constant`` keeps two copies of a numpy array (measured: +301 MB for the 154 MB
    of CIFAR-10's training images, README "Performance"); the tensor made here keeps the
    array alive and adds nothing. TensorFlow aborts the process on a tensor that is not
    64-byte aligned, so an unaligned (or read-only, or non-contiguous) array is first
    copied into an aligned one (the data set loader's arrays are aligned already).
    """
    if (array.ctypes.data % ALIGNMENT or not array.flags.c_contiguous
            or not array.flags.writeable):
        copy = aligned_empty((array.nbytes,)).view(array.dtype).reshape(array.shape)
        copy[...] = array
        array = copy
    with tf.device("/CPU:0"):  # tf.data runs on the host, even with a GPU visible
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


def _gatherer(x: np.ndarray, y: np.ndarray) -> Any:
    """A map function from a batch of indices to its scaled images and labels, gathered
    from the images in place (one tensor shared with ``x``, no per-image copy)."""
    images = host_tensor(x)
    with tf.device("/CPU:0"):
        labels = tf.constant(y)

    def gather(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return _scale(tf.gather(images, indices), tf.gather(labels, indices))

    return gather


def train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                  pipeline: Pipeline = DEFAULT_PIPELINE) -> tf.data.Dataset:
    """Shuffled, batched, scaled training batches; reshuffled every epoch like ``fit(x, y)``.

    One pass is one epoch (the last batch partial); Keras starts a new pass, in a new
    order, each epoch.
    """
    if pipeline.index_shuffle:
        dataset = (tf.data.Dataset.range(len(x))
                   .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
                   .batch(batch_size)
                   .map(_gatherer(x, y), num_parallel_calls=_parallel(pipeline)))
    else:
        dataset = (tf.data.Dataset.from_tensor_slices((x, y))
                   .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
                   .batch(batch_size)
                   .map(_scale, num_parallel_calls=_parallel(pipeline)))
    return dataset.prefetch(_prefetch(pipeline)).with_options(_options(pipeline))


def eval_dataset(x: np.ndarray, y: np.ndarray,
                 pipeline: Pipeline = DEFAULT_PIPELINE) -> tf.data.Dataset:
    """Batched, scaled evaluation batches in order (the images used in place, as in
    :func:`train_dataset`)."""
    if pipeline.index_shuffle:
        dataset = (tf.data.Dataset.range(len(x)).batch(pipeline.eval_batch)
                   .map(_gatherer(x, y), num_parallel_calls=_parallel(pipeline)))
    else:
        dataset = (tf.data.Dataset.from_tensor_slices((x, y)).batch(pipeline.eval_batch)
                   .map(_scale, num_parallel_calls=_parallel(pipeline)))
    return dataset.prefetch(_prefetch(pipeline)).with_options(_options(pipeline))


def fit_arguments(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, training: TrainingSpec,
                  pipeline: Pipeline = DEFAULT_PIPELINE, *, seed: int | None = None
                  ) -> dict[str, Any]:
    """The keyword arguments of ``model.fit`` for the research training (no callbacks).

    The worker and the benchmark both train through this, so the benchmark measures
    the worker's real pipeline. ``seed`` (default ``training.seed``) seeds the shuffle.
    """
    return {
        "x": train_dataset(x_train, y_train, training.batch_size,
                           training.seed if seed is None else seed, pipeline),
        "validation_data": eval_dataset(x_test, y_test, pipeline),
        "epochs": training.epochs,
        "shuffle": False,  # train_dataset shuffles, per epoch
        "verbose": 0,
    }


def steps(n: int, batch_size: int) -> int:
    """Batches per pass over ``n`` images (the last one may be partial)."""
    return math.ceil(n / batch_size)


def training_flops_per_image(model: tf.keras.Model) -> dict[str, float]:
    """Floating-point operations of one training image, counted from the model's layers.

    A multiply-add is 2 FLOPs. Conv2D forward: 2*Ho*Wo*k*k*Cin*Cout; Dense: 2*In*Out.
    Backward: the weight gradient costs as much as the forward, and so does the input
    gradient, except for the first layer (the image needs no gradient). Pooling,
    activations, the loss and the optimizer are element-wise and not counted (under
    1% here), so the ceiling derived from this is a slight overestimate of speed.
    """
    forward = backward = 0.0
    first = True
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            flops = 2.0 * h * w * kh * kw * c_in * c_out
        elif isinstance(layer, tf.keras.layers.Dense):
            flops = 2.0 * layer.input.shape[-1] * layer.units
        else:
            continue
        forward += flops
        backward += flops if first else 2 * flops
        first = False
    return {"forward": forward, "backward": backward, "total": forward + backward}
