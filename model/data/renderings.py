"""Fashion-MNIST images rendered the way people photograph garments, and things that are not one.

Each rendering turns a (28, 28) uint8 Fashion-MNIST image (light garment on black) into the bytes
of an image file as a user would upload it: a product shot filling its frame, with a margin, off
centre, tinted on a coloured background, on a floor, bed or wood texture under uneven light, with
a soft shadow, rotated, or in another file format. The framing benchmark
(`benchmarks/framing.py`) scores each against the plain 28x28 PNG; training feeds the same
renderings through the served preprocessing (`pipeline_copies`), and teaches the network the
outside of its classes with `non_garments`. Everything is seeded: the same seed, the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# The side of a rendered product shot: Fashion-MNIST's 28 pixels, ten times.
# Bumped whenever a rendering changes: the training caches are keyed by it.
RENDERINGS_VERSION = 1
SIZE = 280

Render = Callable[[np.ndarray, np.random.Generator], bytes]


def _encode(img: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _alpha(image: np.ndarray, size: int) -> np.ndarray:
    """The garment's coverage in [0, 1], enlarged to size x size (Fashion-MNIST's ink)."""
    big = Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 255.0


def _compose(alpha: np.ndarray, garment: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Garment colour (3,) over an (H, W, 3) background, by coverage alpha (H, W)."""
    a = alpha[..., None]
    return np.clip(background * (1 - a) + garment * a, 0, 255).astype(np.uint8)


def _place(alpha: np.ndarray, canvas: tuple[int, int], top: int, left: int) -> np.ndarray:
    """alpha pasted onto an empty (H, W) canvas at (top, left)."""
    out = np.zeros(canvas, dtype=np.float32)
    h, w = alpha.shape
    out[top : top + h, left : left + w] = alpha
    return out


def _flat(shape: tuple[int, int], colour: tuple[float, float, float]) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (*shape, 3)).copy()


def _lighting(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W, 1) uneven light: a linear fall-off across the frame and a soft vignette."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h) * rng.uniform(0.2, 0.4)
    r2 = ((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2
    light = 1.0 - ramp + ramp.mean() - 0.5 * r2
    return light[..., None]


def texture(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A (H, W, 3) float background: 'floor' (tiles), 'bed' (soft folds) or 'wood' (grain)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 2)
    if kind == "floor":
        tile = rng.integers(40, 90)
        grout = ((xx % tile) < 3) | ((yy % tile) < 3)
        base = np.asarray(rng.uniform([150, 140, 120], [210, 200, 185]), np.float32)
        img = base * (1 + 0.04 * noise[..., None]) * np.where(grout, 0.75, 1.0)[..., None]
    elif kind == "bed":
        folds = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 18)
        folds /= max(float(np.abs(folds).max()), 1e-6)
        base = np.asarray(rng.uniform([200, 200, 200], [240, 235, 235]), np.float32)
        img = base * (1 + 0.12 * folds[..., None] + 0.02 * noise[..., None])
    elif kind == "wood":
        warp = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 12)
        grain = np.sin((yy + 25 * warp / max(float(np.abs(warp).max()), 1e-6)) / 3.5)
        base = np.asarray(rng.uniform([120, 75, 40], [170, 115, 70]), np.float32)
        img = base * (1 + 0.12 * grain[..., None] + 0.03 * noise[..., None])
    else:
        raise ValueError(f"unknown texture {kind!r}")
    return img * _lighting(shape, rng)


# -----------------------------------------------------------------------------
# The renderings


def plain_png(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """The 28x28 image itself: the benchmark's reference."""
    return _encode(Image.fromarray(image))


def full_frame(image: np.ndarray, rng: np.random.Generator, dark_on_light: bool = True) -> bytes:
    """Enlarged to fill the whole frame, as a catalogue crop: dark on white or light on black."""
    alpha = _alpha(image, SIZE)
    bg, fg = ((255, 255, 255), (0, 0, 0)) if dark_on_light else ((0, 0, 0), (255, 255, 255))
    return _encode(Image.fromarray(_compose(alpha, np.float32(fg), _flat(alpha.shape, bg))))


def with_margin(image: np.ndarray, rng: np.random.Generator, margin: int = 14) -> bytes:
    """Dark on white with a white margin of `margin` pixels on every side."""
    inner = SIZE - 2 * margin
    alpha = _place(_alpha(image, inner), (SIZE, SIZE), margin, margin)
    return _encode(Image.fromarray(_compose(alpha, np.zeros(3), _flat(alpha.shape, (255,) * 3))))


def off_centre(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """Dark on white, placed off centre on a canvas wider than it is tall."""
    inner = 200
    top = int(rng.integers(10, 70))
    left = int(rng.choice([int(rng.integers(5, 40)), int(rng.integers(160, 195))]))
    alpha = _place(_alpha(image, inner), (inner + 80, inner + 200), top, left)
    return _encode(Image.fromarray(_compose(alpha, np.zeros(3), _flat(alpha.shape, (255,) * 3))))


def tinted(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """A coloured garment on a background of another colour, with a small margin."""
    alpha = _place(_alpha(image, SIZE - 40), (SIZE, SIZE), 20, 20)
    garment = rng.uniform(0, 255, 3).astype(np.float32)
    background = rng.uniform(0, 255, 3).astype(np.float32)
    while np.linalg.norm(garment - background) < 120:
        background = rng.uniform(0, 255, 3).astype(np.float32)
    return _encode(Image.fromarray(_compose(alpha, garment, _flat(alpha.shape, background))))


def on_texture(image: np.ndarray, rng: np.random.Generator, kind: str = "floor") -> bytes:
    """A garment lying on a floor, a bed or wood, under uneven light, as a phone sees it."""
    h, w = 300, 240
    inner = int(rng.integers(170, 210))
    alpha = _place(
        _alpha(image, inner), (h, w), int(rng.integers(10, h - inner - 10)), (w - inner) // 2
    )
    background = texture(kind, (h, w), rng)
    mean = float(background.mean())
    # A garment that stands out: dark on a light background, light on a dark one, some colour.
    tone = rng.uniform(20, 70) if mean > 128 else rng.uniform(190, 240)
    garment = np.clip(tone + rng.normal(0, 25, 3), 0, 255).astype(np.float32)
    return _encode(Image.fromarray(_compose(alpha, garment, background)), "JPEG", quality=90)


def shadowed(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """Dark garment on a light background, casting a soft shadow down and to one side."""
    margin = 24
    alpha = _place(_alpha(image, SIZE - 2 * margin), (SIZE, SIZE), margin, margin)
    dx, dy = int(rng.integers(-12, 13)), int(rng.integers(6, 14))
    shadow = cv2.GaussianBlur(np.roll(alpha, (dy, dx), axis=(0, 1)), (0, 0), 7)
    background = _flat(alpha.shape, (235, 232, 228)) * (1 - 0.45 * shadow[..., None])
    return _encode(Image.fromarray(_compose(alpha, np.float32([40, 40, 45]), background)))


def rotated(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """Dark on white with a margin, turned a few degrees."""
    margin = 20
    alpha = _place(_alpha(image, SIZE - 2 * margin), (SIZE, SIZE), margin, margin)
    angle = float(rng.choice([-1, 1]) * rng.uniform(3, 8))
    turned = np.asarray(Image.fromarray(alpha).rotate(angle, Image.Resampling.BILINEAR))
    return _encode(Image.fromarray(_compose(turned, np.zeros(3), _flat(turned.shape, (255,) * 3))))


def _product(image: np.ndarray) -> Image.Image:
    """The full-frame dark-on-white product shot as an RGB image, for the file formats."""
    alpha = _alpha(image, SIZE)
    return Image.fromarray(_compose(alpha, np.zeros(3), _flat(alpha.shape, (255,) * 3)))


def as_format(image: np.ndarray, rng: np.random.Generator, fmt: str = "JPEG-75") -> bytes:
    """The full-frame product shot in another file format or mode."""
    shot = _product(image)
    if fmt.startswith("JPEG-"):
        return _encode(shot, "JPEG", quality=int(fmt[5:]))
    if fmt == "WebP":
        return _encode(shot, "WEBP", quality=80)
    if fmt == "GIF":
        return _encode(shot.convert("P", palette=Image.Palette.ADAPTIVE), "GIF")
    if fmt == "CMYK":
        return _encode(shot.convert("CMYK"), "JPEG", quality=90)
    if fmt == "16-bit":
        grey = np.asarray(shot.convert("L"), dtype=np.uint16) * 257
        return _encode(Image.fromarray(grey))
    if fmt == "RGBA":
        # A cut-out: the garment opaque, the background transparent.
        rgba = shot.convert("RGBA")
        cover = np.clip(_alpha(image, SIZE) * 4, 0, 1)
        rgba.putalpha(Image.fromarray((cover * 255).astype(np.uint8)))
        return _encode(rgba)
    if fmt == "EXIF-rotated":
        # Stored turned a quarter, with the EXIF orientation that turns it back (6: 90 CW).
        exif = Image.Exif()
        exif[0x0112] = 6
        return _encode(shot.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=exif)
    raise ValueError(f"unknown format {fmt!r}")


def _with(fn: Callable[..., bytes], **kw: object) -> Render:
    return lambda image, rng: fn(image, rng, **kw)


FORMATS = ("JPEG-30", "JPEG-60", "JPEG-95", "WebP", "GIF", "CMYK", "16-bit", "RGBA", "EXIF-rotated")

RENDERINGS: dict[str, Render] = {
    "plain-png-28": plain_png,
    "full-frame-dark-on-light": _with(full_frame, dark_on_light=True),
    "full-frame-light-on-dark": _with(full_frame, dark_on_light=False),
    "margin-5": _with(with_margin, margin=5),
    "margin-14": _with(with_margin, margin=14),
    "margin-40": _with(with_margin, margin=40),
    "off-centre": off_centre,
    "tinted-on-colour": tinted,
    "floor": _with(on_texture, kind="floor"),
    "bed": _with(on_texture, kind="bed"),
    "wood": _with(on_texture, kind="wood"),
    "soft-shadow": shadowed,
    "rotated": rotated,
    **{f"format-{f}": _with(as_format, fmt=f) for f in FORMATS},
}
REFERENCE = "plain-png-28"


def render(name: str, image: np.ndarray, seed: int) -> bytes:
    """The named rendering of one image, seeded (the same seed gives the same bytes)."""
    return RENDERINGS[name](image, np.random.default_rng(seed))


# -----------------------------------------------------------------------------
# Training data through the served pipeline


def parse_weights(text: str) -> dict[str, float]:
    """ "floor=4,bed=4" as {"floor": 4.0, "bed": 4.0}; every name a rendering, every weight > 0."""
    weights = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if name not in RENDERINGS or name == REFERENCE:
            raise ValueError(f"no rendering named {name!r}; there are {', '.join(RENDERINGS)}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: write NAME=WEIGHT, WEIGHT a number") from None
        if not weights[name] > 0:
            raise ValueError(f"{item!r}: a weight must be positive")
    return weights


def pipeline_copies(
    images: np.ndarray, seed: int, weights: dict[str, float] | None = None
) -> np.ndarray:
    """(N, 28, 28) uint8: each image under a random rendering, then the served preprocessing.

    What the network sees of a product shot or a garment on a floor is what these hand it; the
    rendering is drawn per image from all but the reference, each equally likely or, with
    `weights`, the named ones that many times as likely as the rest (weight 1).
    """
    from model.images.silhouette import prepare_photo

    rng = np.random.default_rng(seed)
    names = [n for n in RENDERINGS if n != REFERENCE]
    p = None
    if weights:
        w = np.array([weights.get(n, 1.0) for n in names])
        p = w / w.sum()
    out = np.empty((len(images), 28, 28), dtype=np.uint8)
    for i, image in enumerate(images):
        k = rng.integers(len(names)) if p is None else rng.choice(len(names), p=p)
        out[i] = prepare_photo(RENDERINGS[names[k]](image, rng))
    return out


# -----------------------------------------------------------------------------
# Things that are none of the ten classes


def _gradient(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return Image.fromarray((a + (b - a) * t[..., None]).astype(np.uint8))


def _noise(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    sigma = float(rng.choice([0.5, 2, 6]))
    n = cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), sigma)
    n = (n - n.min()) / max(float(n.max() - n.min()), 1e-6)
    return Image.fromarray((n * 255).astype(np.uint8))


def _shapes(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 7))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w)), y0 + int(rng.integers(10, h))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(3))
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(3)]
            draw.polygon(pts, fill=colour)
    return img


def _text(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    bg = int(rng.integers(0, 256))
    img = Image.new("L", (w, h), bg)
    draw = ImageDraw.Draw(img)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for row in range(int(rng.integers(1, 6))):
        line = "".join(rng.choice(list(letters), int(rng.integers(3, 14))))
        size = int(rng.integers(14, 48))
        draw.text((int(rng.integers(0, w // 3)), 10 + row * size), line,
                  fill=255 - bg, font_size=size)  # fmt: skip
    return img.convert("RGB")


def _texture_only(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    kind = str(rng.choice(["floor", "bed", "wood"]))
    return Image.fromarray(np.clip(texture(kind, (h, w), rng), 0, 255).astype(np.uint8))


NON_GARMENTS: dict[str, Callable[[np.random.Generator, int, int], Image.Image]] = {
    "gradient": _gradient,
    "noise": _noise,
    "shapes": _shapes,
    "text": _text,
    "texture": _texture_only,
}


def non_garment(kind: str, seed: int) -> bytes:
    """One seeded image of a kind of non-garment, as PNG (or JPEG) bytes of a random size."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(24, 320)), int(rng.integers(24, 320))
    img = NON_GARMENTS[kind](rng, h, w)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2))))
    return _encode(img, "JPEG", quality=85) if rng.random() < 0.5 else _encode(img)


def non_garment_inputs(n: int, seed: int) -> np.ndarray:
    """(n, 28, 28) uint8: non_garments(n, seed) through the served preprocessing."""
    from model.images.silhouette import prepare_photo

    return np.stack([prepare_photo(b) for b in non_garments(n, seed)])


def non_garments(n: int, seed: int) -> list[bytes]:
    """n seeded non-garments, the kinds in turn. Training and evaluation use apart seeds."""
    kinds = list(NON_GARMENTS)
    return [non_garment(kinds[i % len(kinds)], seed * 1_000_003 + i) for i in range(n)]
