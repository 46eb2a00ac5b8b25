"""Difficulty "easy": one coloured class shape per image on a dark, noisy, shaded background.

The class decides the shape and, loosely, the hue; position, size, aspect, exact colour,
background and noise are random. The research CNN learns it to about 99% in one epoch:
a smoke test of the pipeline, not a stand-in for CIFAR-10's learning curve (that is
"cifar-like", :mod:`harness.dataset.scenes`). The images do not depict the CIFAR-10 class
names they are filed under. These are, byte for byte, the images of generator version 1.

Only uniform random draws and +, -, *, /, floor, comparisons are used (no sin/exp or
normal draws, whose last bits can differ between CPUs), so a seed gives the same bytes
on every machine with the same numpy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.dataset.paths import CHANNELS, IMAGE_SIZE, NUM_CLASSES

_SHIFT_PX = 5.0  # object centre moves up to this many pixels from the image centre
_RADIUS_PX = (8.0, 11.0)  # half width of the object, pixels
_ASPECT = (0.8, 1.25)  # height / width of the object
_HUE_JITTER = 0.025  # class hues are 0.1 apart on the [0, 1) hue circle
_FG_SAT_VAL = (0.8, 1.0)  # object saturation and value range
_BG_LEVEL = (0.2, 0.35)  # background colour is a random RGB colour scaled by this
_BG_GRADIENT = 0.3  # maximum brightness change across the background, full scale = 1
_NOISE = (0.08, 0.26)  # per-image noise amplitude range, full scale = 1

_COORD = np.arange(IMAGE_SIZE, dtype=np.float64)
_YY, _XX = np.meshgrid(_COORD, _COORD, indexing="ij")


def render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render images for ``labels`` as uint8, channel-planar (n, 3, 32, 32) like CIFAR-10."""
    n = labels.shape[0]
    mask = _object_masks(labels, rng)
    foreground = _hsv_to_rgb(
        (labels / NUM_CLASSES + rng.uniform(-_HUE_JITTER, _HUE_JITTER, n)) % 1.0,
        rng.uniform(*_FG_SAT_VAL, n),
        rng.uniform(*_FG_SAT_VAL, n),
    )
    background = rng.random((n, CHANNELS)) * rng.uniform(*_BG_LEVEL, (n, 1))
    slope = rng.uniform(-_BG_GRADIENT, _BG_GRADIENT, (n, 2, 1, 1))
    shading = (slope[:, 0] * (_XX / (IMAGE_SIZE - 1) - 0.5)
               + slope[:, 1] * (_YY / (IMAGE_SIZE - 1) - 0.5))
    # float32 from here on: the per-pixel work dominates the run time and 8-bit output
    # needs no more precision.
    image = np.where(
        mask[:, None],
        foreground[:, :, None, None].astype(np.float32),
        (background[:, :, None, None] + shading[:, None]).astype(np.float32),
    )
    # Triangular noise (sum of two uniforms): near-Gaussian without transcendental functions.
    amplitude = rng.uniform(*_NOISE, (n, 1, 1, 1)).astype(np.float32)
    noise = rng.random(image.shape, dtype=np.float32)
    noise += rng.random(image.shape, dtype=np.float32)
    noise -= 1.0
    noise *= amplitude
    image += noise
    image *= 255.0
    return np.clip(np.rint(image, out=image), 0, 255, out=image).astype(np.uint8)


def _object_masks(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean (n, 32, 32): where each image's class shape is, at a random place and size."""
    n = labels.shape[0]
    centre = (IMAGE_SIZE - 1) / 2 + rng.uniform(-_SHIFT_PX, _SHIFT_PX, (n, 2, 1, 1))
    half_w = rng.uniform(*_RADIUS_PX, (n, 1, 1))
    half_h = half_w * rng.uniform(*_ASPECT, (n, 1, 1))
    # u, v: pixel coordinates relative to the object, the object spans about [-1, 1].
    u = (_XX - centre[:, 0]) / half_w
    v = (_YY - centre[:, 1]) / half_h
    mask = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for label, shape in enumerate(_SHAPES):
        chosen = np.flatnonzero(labels == label)
        if chosen.size:
            mask[chosen] = shape(u[chosen], v[chosen])
    return mask


def _hsv_to_rgb(hue: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """(n,) hue, saturation, value in [0, 1] to (n, 3) RGB in [0, 1], piecewise linear."""
    channels = []
    for offset in (5.0, 3.0, 1.0):  # R, G, B
        k = (offset + hue * 6.0) % 6.0
        channels.append(val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    return np.stack(channels, axis=1)


def _disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.85


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.36)


def _plus(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    bars = (np.abs(u - v) <= 0.4) | (np.abs(u + v) <= 0.4)
    return bars & (np.maximum(np.abs(u), np.abs(v)) <= 0.9)


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (v >= -0.9) & (v <= 0.8) & (np.abs(u) <= (v + 0.9) / 1.7)  # apex up


def _h_stripes(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.maximum(np.abs(u), np.abs(v)) <= 0.9) & (np.floor((v + 1.0) * 2.5) % 2 == 0)


def _v_stripes(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _h_stripes(v, u)


def _checkers(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cells = np.floor((u + 1.0) * 2.0) + np.floor((v + 1.0) * 2.0)
    return (np.maximum(np.abs(u), np.abs(v)) <= 0.9) & (cells % 2 == 0)


def _diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(u) + np.abs(v) <= 1.0


_SHAPES: tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], ...] = (
    _disc, _square, _ring, _plus, _cross, _triangle, _h_stripes, _v_stripes, _checkers, _diamond,
)

