"""The research model and its input pipeline. Worker side: imports TensorFlow.

The model, loss, optimizer, batch size and epochs are the research workload
(shared/design.md); pipeline and execution settings may change only speed.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from harness.scenario import TrainingSpec

NUM_CLASSES = 10
#: Images per evaluation batch; evaluation results do not depend on it, only speed.
EVAL_BATCH = 256


def build_model(training: TrainingSpec) -> tf.keras.Model:
    """The research CNN, compiled with Adam and (sparse) categorical cross-entropy.

    Sparse labels with the sparse loss are the same mathematics as one-hot labels
    with categorical cross-entropy, without materialising a one-hot matrix.
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
        optimizer=tf.keras.optimizers.Adam(learning_rate=training.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=training.xla,
        steps_per_execution=1,
    )
    return model


def _scale(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    # Scaling per batch keeps the data uint8 in memory (4x smaller than float32).
    return tf.cast(images, tf.float32) / 255.0, labels


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled, batched, scaled training batches; reshuffled every epoch like ``fit(x, y)``."""
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(_scale, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(_options())
    )


def eval_dataset(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    """Batched, scaled evaluation batches in order."""
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(EVAL_BATCH)
        .map(_scale, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(_options())
    )


def steps(n: int, batch_size: int) -> int:
    """Batches per pass over ``n`` images (the last one may be partial)."""
    return math.ceil(n / batch_size)


def count_parameters(model: tf.keras.Model) -> int:
    """Trainable parameters."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
