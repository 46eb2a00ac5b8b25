"""Difficulty "cifar-like": composed objects in cluttered scenes, learnt like CIFAR-10.

Each class is an object made of up to five parts (body, wings, wheels, ears, legs...,
loosely after the CIFAR-10 class it is filed under: a truck is a box, a cab and three
wheels, a cat a head with pointed ears, a dog one with drooping ears). Classes share part
shapes and come in confusable pairs (cat/dog, deer/horse, automobile/truck,
airplane/ship/bird), and every image varies the object a great deal:

- pose: random scale (8-13 pixels per object unit), position, rotation (up to about
  +-48 degrees), mirror image, aspect and a bend of the object's coordinates;
- parts: each one moved and resized at random, and each but the body missing 12% of
  the time (some images lose the part that tells a pair apart: a modest, honest
  ambiguity, not label noise);
- colour: the object's hue follows a class preference in 55% of images and is random
  otherwise; a second colour for some parts; stripes on the body in some images;
- scene: a smooth random background (sky-, grass- or neutral-coloured by class in 55% of
  images), 1-4 random clutter shapes behind the object, a smaller object of another class
  in 40% of images, an occluding shape in front in half of them, random contrast,
  brightness and pixel noise.

With these settings the research CNN (10 epochs, batch 64, 50,000 / 10,000 images) went
from 37% validation accuracy after epoch 1 to 70% after epoch 10, training accuracy 84%
(data seed 0, training seed 42; data seed 1, training seed 7: 40% to 70%, training 83%).
``tests/tools/difficulty_check.py`` measures it.

Only uniform random draws and +, -, *, /, floor, comparisons, min/max are used (no
trigonometry: rotations come from a rational parametrisation of the unit circle), so a
seed gives the same bytes on every machine with the same numpy.
"""

from __future__ import annotations

import numpy as np

from harness.dataset.paths import IMAGE_SIZE, NUM_CLASSES

_SCALE_PX = (8.0, 13.0)  # pixels per object unit (objects span about 2 units)
_SHIFT_PX = 6.0  # object centre moves up to this many pixels from the image centre
_ROTATION = 0.45  # tan(angle / 2) range: about +-48 degrees
_ASPECT = (0.8, 1.25)
_BEND = 0.25  # quadratic bend of the object's coordinates
_PART_JITTER = 0.12  # part position jitter, object units
_PART_SIZE = (0.75, 1.3)  # part size factor
_PART_DROP = 0.12  # chance that a part (not the body) is missing
_HUE_BIAS = 0.55  # chance that the object's hue follows its class preference
_BG_BIAS = 0.55  # chance that the background's hue follows its class preference
_CLUTTER = (1, 4)  # clutter shapes behind the object
_CLUTTER_SIZE = (1.5, 6.0)  # half size, pixels
_OCCLUDERS = (0, 1)  # shapes in front of the object
_OCCLUDER_SIZE = (2.0, 6.0)
_DISTRACTOR = 0.4  # chance of a smaller object of another class behind the object
_DISTRACTOR_SCALE = (0.35, 0.7)  # its size relative to a main object's
_TEXTURE = 0.35  # stripe contrast on the body, at most
_NOISE = (0.02, 0.10)  # pixel noise amplitude, full scale = 1
_CONTRAST = (0.6, 1.1)

_F = np.float32
_COORD = np.arange(IMAGE_SIZE, dtype=_F)
_YY, _XX = np.meshgrid(_COORD, _COORD, indexing="ij")

# Parts in object coordinates (u to the right, v down, the object about [-1, 1]^2):
# centre u, v; half size u, v; taper along u and along v (1: a point at one end);
# boxiness (0 ellipse .. 1 rectangle); hole (ring inner size); colour slot (0 body, 1 other).
_PART_FIELDS = 9
_PARTS: dict[int, list[tuple[float, ...]]] = {
    0: [  # airplane: fuselage, wings, tail fin, tailplane
        (0.0, 0.0, 0.95, 0.16, 0, 0, 0.0, 0, 0),
        (0.05, 0.0, 0.2, 0.85, 0, 0, 0.6, 0, 0),
        (-0.8, -0.22, 0.14, 0.25, 0, 0.9, 1.0, 0, 1),
        (-0.82, 0.0, 0.08, 0.3, 0, 0, 0.6, 0, 0),
    ],
    1: [  # automobile: body, cabin, two wheels, window
        (0.0, 0.05, 0.9, 0.28, 0, 0, 0.8, 0, 0),
        (-0.05, -0.38, 0.5, 0.2, 0, 0.45, 1.0, 0, 0),
        (-0.5, 0.38, 0.2, 0.2, 0, 0, 0.0, 0.35, 1),
        (0.5, 0.38, 0.2, 0.2, 0, 0, 0.0, 0.35, 1),
        (0.0, -0.38, 0.25, 0.1, 0, 0, 1.0, 0, 1),
    ],
    2: [  # bird: body, head, beak, tail, wing
        (0.0, 0.1, 0.55, 0.33, 0, 0, 0.0, 0, 0),
        (0.55, -0.3, 0.22, 0.22, 0, 0, 0.0, 0, 0),
        (0.85, -0.3, 0.14, 0.07, -0.9, 0, 1.0, 0, 1),
        (-0.65, 0.0, 0.3, 0.14, -0.9, 0, 1.0, 0, 0),
        (-0.05, 0.0, 0.35, 0.15, 0, 0, 0.0, 0, 1),
    ],
    3: [  # cat: head, two pointed ears, two eyes
        (0.0, 0.1, 0.6, 0.55, 0, 0, 0.1, 0, 0),
        (-0.38, -0.55, 0.2, 0.28, 0, 0.95, 1.0, 0, 0),
        (0.38, -0.55, 0.2, 0.28, 0, 0.95, 1.0, 0, 0),
        (-0.22, 0.0, 0.1, 0.07, 0, 0, 0.0, 0, 1),
        (0.22, 0.0, 0.1, 0.07, 0, 0, 0.0, 0, 1),
    ],
    4: [  # deer: body, front and back legs, neck, antlers
        (-0.05, 0.0, 0.6, 0.3, 0, 0, 0.2, 0, 0),
        (0.38, 0.55, 0.07, 0.35, 0, 0, 1.0, 0, 0),
        (-0.45, 0.55, 0.07, 0.35, 0, 0, 1.0, 0, 0),
        (0.6, -0.4, 0.14, 0.32, 0, 0, 0.3, 0, 0),
        (0.6, -0.85, 0.28, 0.16, 0, -0.9, 1.0, 0.5, 1),
    ],
    5: [  # dog: head, two drooping ears, snout, nose
        (0.0, 0.05, 0.55, 0.5, 0, 0, 0.1, 0, 0),
        (-0.62, 0.05, 0.16, 0.38, 0, 0, 0.0, 0, 1),
        (0.62, 0.05, 0.16, 0.38, 0, 0, 0.0, 0, 1),
        (0.0, 0.42, 0.28, 0.2, 0, 0, 0.0, 0, 1),
        (0.0, 0.3, 0.09, 0.07, 0, 0, 0.0, 0, 1),
    ],
    6: [  # frog: body, two ring eyes, two legs
        (0.0, 0.2, 0.8, 0.4, 0, 0, 0.0, 0, 0),
        (-0.38, -0.22, 0.16, 0.16, 0, 0, 0.0, 0.3, 1),
        (0.38, -0.22, 0.16, 0.16, 0, 0, 0.0, 0.3, 1),
        (-0.75, 0.55, 0.28, 0.09, 0, 0, 1.0, 0, 0),
        (0.75, 0.55, 0.28, 0.09, 0, 0, 1.0, 0, 0),
    ],
    7: [  # horse: body, front and back legs, neck, tail
        (-0.05, 0.0, 0.62, 0.3, 0, 0, 0.2, 0, 0),
        (0.4, 0.6, 0.07, 0.42, 0, 0, 1.0, 0, 0),
        (-0.45, 0.6, 0.07, 0.42, 0, 0, 1.0, 0, 0),
        (0.62, -0.42, 0.15, 0.38, 0, 0, 0.3, 0, 0),
        (-0.72, 0.2, 0.08, 0.35, 0, 0, 0.0, 0, 1),
    ],
    8: [  # ship: hull, cabin, funnel, mast
        (0.0, 0.45, 0.95, 0.22, 0, -0.35, 1.0, 0, 0),
        (-0.1, 0.08, 0.4, 0.18, 0, 0, 1.0, 0, 1),
        (0.2, -0.3, 0.1, 0.25, 0, 0, 1.0, 0, 1),
        (-0.45, -0.15, 0.07, 0.2, 0, 0, 1.0, 0, 0),
    ],
    9: [  # truck: cargo box, cab, three wheels
        (-0.25, -0.1, 0.62, 0.42, 0, 0, 1.0, 0, 0),
        (0.62, 0.05, 0.25, 0.28, 0, 0, 0.8, 0, 1),
        (-0.6, 0.45, 0.18, 0.18, 0, 0, 0.0, 0.35, 1),
        (-0.05, 0.45, 0.18, 0.18, 0, 0, 0.0, 0.35, 1),
        (0.6, 0.45, 0.18, 0.18, 0, 0, 0.0, 0.35, 1),
    ],
}
_MAX_PARTS = max(len(parts) for parts in _PARTS.values())


def _part_table() -> tuple[np.ndarray, np.ndarray]:
    """(classes, parts, fields) float32 part parameters and (classes, parts) presence."""
    table = np.zeros((NUM_CLASSES, _MAX_PARTS, _PART_FIELDS), dtype=_F)
    table[:, :, 2:4] = 1.0  # absent parts: a harmless unit size (they are masked out)
    present = np.zeros((NUM_CLASSES, _MAX_PARTS), dtype=bool)
    for label, parts in _PARTS.items():
        for index, part in enumerate(parts):
            table[label, index] = part
            present[label, index] = True
    return table, present


_TABLE, _PRESENT = _part_table()

# Hue preferences (centre, half width) on the [0, 1) hue circle, per class: the object's
# (greys and blues for airplanes, red cars, brown animals, green frogs...) and the
# background's (sky and water blue, grass green, anything for the rest).
_OBJECT_HUE = np.array([(0.6, 0.15), (0.0, 0.08), (0.08, 0.08), (0.07, 0.06), (0.08, 0.05),
                        (0.09, 0.06), (0.3, 0.08), (0.06, 0.05), (0.6, 0.1), (0.0, 0.1)])
_BACKGROUND_HUE = np.array([(0.58, 0.05), (0.1, 0.5), (0.58, 0.05), (0.1, 0.5), (0.28, 0.08),
                            (0.1, 0.5), (0.28, 0.08), (0.28, 0.08), (0.58, 0.05), (0.1, 0.5)])

# Bilinear interpolation of a 4 x 4 grid to 32 pixels: grid index and weight per pixel.
_GRID = 4
_GRID_POS = np.linspace(0.0, _GRID - 1.0, IMAGE_SIZE)
_GRID_I0 = np.minimum(np.floor(_GRID_POS).astype(np.intp), _GRID - 2)
_GRID_W = (_GRID_POS - _GRID_I0).astype(_F)


def render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render images for ``labels`` as uint8, channel-planar (n, 3, 32, 32) like CIFAR-10."""
    n = labels.shape[0]
    image = _background(labels, rng)
    _clutter(image, rng, *_CLUTTER, _CLUTTER_SIZE, (-2.0, IMAGE_SIZE + 1.0))
    _distractor(image, labels, rng)
    _main_object(image, labels, rng)
    _clutter(image, rng, *_OCCLUDERS, _OCCLUDER_SIZE, (0.0, IMAGE_SIZE - 1.0))
    # Contrast around mid-grey, brightness, then triangular noise (sum of two uniforms).
    contrast = rng.uniform(*_CONTRAST, (n, 1, 1, 1)).astype(_F)
    brightness = rng.uniform(-0.1, 0.1, (n, 1, 1, 1)).astype(_F)
    image -= _F(0.5)
    image *= contrast
    image += brightness + _F(0.5)
    amplitude = rng.uniform(*_NOISE, (n, 1, 1, 1)).astype(_F)
    noise = rng.random(image.shape, dtype=_F)
    noise += rng.random(image.shape, dtype=_F)
    noise -= _F(1.0)
    noise *= amplitude
    image += noise
    image *= _F(255.0)
    return np.clip(np.rint(image, out=image), 0, 255, out=image).astype(np.uint8)


def _background(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 32, 32) float32: a class-tinted colour plus a smooth random pattern."""
    n = labels.shape[0]
    hue = _pick_hue(rng, labels, _BACKGROUND_HUE, _BG_BIAS)
    base = _hsv_to_rgb(hue, rng.uniform(0.1, 0.7, n), rng.uniform(0.25, 0.9, n)).astype(_F)
    grid = rng.uniform(-0.25, 0.25, (n, 3, _GRID, _GRID)).astype(_F)
    w = _GRID_W
    rows = grid[:, :, _GRID_I0, :] * (1 - w)[:, None] + grid[:, :, _GRID_I0 + 1, :] * w[:, None]
    image = rows[:, :, :, _GRID_I0] * (1 - w) + rows[:, :, :, _GRID_I0 + 1] * w
    image += base[:, :, None, None]
    return image


def _clutter(image: np.ndarray, rng: np.random.Generator, low: int, high: int,
             size: tuple[float, float], where: tuple[float, float]) -> None:
    """Paint ``low``..``high`` random shapes of random colours into ``image``."""
    n = image.shape[0]
    count = rng.integers(low, high + 1, n)
    for slot in range(high):
        cx, cy = rng.uniform(*where, n), rng.uniform(*where, n)
        sx, sy = rng.uniform(*size, n), rng.uniform(*size, n)
        tu = rng.uniform(-1, 1, n) * (rng.random(n) < 0.3)
        tv = rng.uniform(-1, 1, n) * (rng.random(n) < 0.3)
        box = rng.random(n)
        hole = np.where(rng.random(n) < 0.2, 0.5, 0.0)
        colour = _random_colour(rng, n, (0.0, 0.9), (0.1, 1.0))
        mask = _part_mask(_XX, _YY, _params(cx, cy, sx, sy, tu, tv, box, hole))
        mask &= (slot < count)[:, None, None]
        _paint(image, mask, colour)


def _distractor(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> None:
    """In some images, a smaller object of another class, anywhere, behind the main one."""
    n = labels.shape[0]
    other = (labels + rng.integers(1, NUM_CLASSES, n)) % NUM_CLASSES
    shown = rng.random(n) < _DISTRACTOR
    scale = rng.uniform(*_SCALE_PX, n) * rng.uniform(*_DISTRACTOR_SCALE, n)
    cx, cy = rng.uniform(-2.0, IMAGE_SIZE + 1.0, n), rng.uniform(-2.0, IMAGE_SIZE + 1.0, n)
    colours = (_random_colour(rng, n, (0.2, 0.9), (0.2, 1.0)),
               _random_colour(rng, n, (0.0, 0.9), (0.0, 1.0)))
    u, v = _object_coordinates(rng, cx, cy, scale)
    for mask, slot in _object_parts(other, rng, u, v):
        mask &= shown[:, None, None]
        _paint(image, mask, np.where((slot == 0)[:, None], *colours))


def _main_object(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> None:
    """The object of the image's class, its body possibly striped."""
    n = labels.shape[0]
    scale = rng.uniform(*_SCALE_PX, n)
    centre = (IMAGE_SIZE - 1) / 2
    cx = centre + rng.uniform(-_SHIFT_PX, _SHIFT_PX, n)
    cy = centre + rng.uniform(-_SHIFT_PX, _SHIFT_PX, n)
    hue = _pick_hue(rng, labels, _OBJECT_HUE, _HUE_BIAS)
    body = _hsv_to_rgb(hue, rng.uniform(0.2, 0.95, n), rng.uniform(0.3, 1.0, n))
    second = np.where((rng.random(n) < 0.5)[:, None], body * rng.uniform(0.2, 0.6, (n, 1)),
                      _random_colour(rng, n, (0.0, 0.9), (0.05, 1.0)))
    stripes = rng.uniform(0, _TEXTURE, n) * (rng.random(n) < 0.6)
    frequency = rng.uniform(1.5, 4.0, n)
    along_u = rng.random(n) < 0.5
    u, v = _object_coordinates(rng, cx, cy, scale)
    for index, (mask, slot) in enumerate(_object_parts(labels, rng, u, v)):
        colour = np.where((slot == 0)[:, None], body, second).astype(_F)[:, :, None, None]
        if index == 0:  # the body: stripes across u or v
            phase = np.where(along_u[:, None, None], u, v) * frequency[:, None, None].astype(_F)
            sign = (np.floor(phase) % 2) * 2 - 1
            colour = colour * (1 + stripes[:, None, None, None].astype(_F) * sign[:, None])
        np.copyto(image, colour, where=mask[:, None])


def _object_coordinates(rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray,
                        scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel object coordinates (u, v), each (n, 32, 32) float32, for objects centred
    at (cx, cy) pixels with ``scale`` pixels per unit: rotated, mirrored, stretched, bent."""
    n = cx.shape[0]
    t = rng.uniform(-_ROTATION, _ROTATION, n)
    cos, sin = (1 - t * t) / (1 + t * t), 2 * t / (1 + t * t)  # the unit circle, rationally
    mirror = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    aspect = rng.uniform(*_ASPECT, n)
    bend_u, bend_v = rng.uniform(-_BEND, _BEND, n), rng.uniform(-_BEND, _BEND, n)

    def per_image(values: np.ndarray) -> np.ndarray:
        return values.astype(_F)[:, None, None]

    dx = _XX - per_image(cx)
    dy = _YY - per_image(cy)
    u = per_image(mirror / scale) * (dx * per_image(cos) + dy * per_image(sin))
    v = (dy * per_image(cos) - dx * per_image(sin)) * per_image(1 / (scale * aspect))
    return u + per_image(bend_u) * v * v, v + per_image(bend_v) * u * u


def _object_parts(labels: np.ndarray, rng: np.random.Generator, u: np.ndarray,
                  v: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mask, colour slot) of each part of each image's object, in drawing order."""
    n = labels.shape[0]
    table = _TABLE[labels]  # (n, parts, fields)
    jitter = rng.uniform(-_PART_JITTER, _PART_JITTER, (n, _MAX_PARTS, 2))
    size = rng.uniform(*_PART_SIZE, (n, _MAX_PARTS, 2))
    present = _PRESENT[labels] & (rng.random((n, _MAX_PARTS)) >= _PART_DROP)
    present[:, 0] = True  # never without a body
    parts = []
    for index in range(_MAX_PARTS):
        if not present[:, index].any():
            continue
        part = table[:, index]
        mask = _part_mask(u, v, _params(
            part[:, 0] + jitter[:, index, 0], part[:, 1] + jitter[:, index, 1],
            part[:, 2] * size[:, index, 0], part[:, 3] * size[:, index, 1],
            part[:, 4], part[:, 5], part[:, 6], part[:, 7]))
        mask &= present[:, index, None, None]
        parts.append((mask, part[:, 8]))
    return parts


def _params(*columns: np.ndarray) -> list[np.ndarray]:
    """Per-image parameters as float32 (n, 1, 1), ready to broadcast over pixels."""
    return [np.asarray(c, dtype=_F)[:, None, None] for c in columns]


def _part_mask(u: np.ndarray, v: np.ndarray, params: list[np.ndarray]) -> np.ndarray:
    """Where a part is: (n, 32, 32) bool.

    A part is an ellipse (boxiness 0) to a rectangle (1), optionally tapered to a point
    at one end along u or v (a triangle at taper 1) and hollow (a ring) inside ``hole``.
    """
    cx, cy, sx, sy, taper_u, taper_v, box, hole = params
    pu = (u - cx) / sx
    pv = (v - cy) / sy
    a = np.abs(pu / np.maximum(1 + taper_v * pv, _F(0.05)))
    b = np.abs(pv / np.maximum(1 + taper_u * pu, _F(0.05)))
    d = box * np.maximum(a, b) + (1 - box) * (a * a + b * b)
    return (d <= 1) & (d >= hole)


def _paint(image: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """Set the pixels of ``mask`` (n, 32, 32) to ``colour`` (n, 3), in place."""
    np.copyto(image, colour.astype(_F)[:, :, None, None], where=mask[:, None])


def _pick_hue(rng: np.random.Generator, labels: np.ndarray, preference: np.ndarray,
              bias: float) -> np.ndarray:
    """Hues in [0, 1): near the class preference with probability ``bias``, else any."""
    n = labels.shape[0]
    centre, width = preference[labels, 0], preference[labels, 1]
    preferred = (centre + rng.uniform(-1, 1, n) * width) % 1.0
    return np.where(rng.random(n) < bias, preferred, rng.random(n))


def _random_colour(rng: np.random.Generator, n: int, saturation: tuple[float, float],
                   value: tuple[float, float]) -> np.ndarray:
    """(n, 3) RGB colours of any hue."""
    return _hsv_to_rgb(rng.random(n), rng.uniform(*saturation, n), rng.uniform(*value, n))


def _hsv_to_rgb(hue: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """(n,) hue, saturation, value in [0, 1] to (n, 3) RGB in [0, 1], piecewise linear."""
    channels = []
    for offset in (5.0, 3.0, 1.0):  # R, G, B
        k = (offset + hue * 6.0) % 6.0
        channels.append(val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    return np.stack(channels, axis=1)
