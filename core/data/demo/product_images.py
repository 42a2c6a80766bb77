"""Product photos for demo data: 500×500 JPEGs from which the class is only partly recoverable.

Each class has a visual style — an object shape shared with related classes and a colour palette that
overlaps others — and half of the photos borrow another class's style (lifestyle shots, odd
packaging), as product photos do. Like the real photos, most are on a white background.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE: Final = 500
BORROW_RATE: Final = 0.5


@dataclass(frozen=True)
class Look:
    shape: str
    hue: float  # 0..1; negative = any hue
    saturation: float
    value: float


LOOKS: Final[dict[int, Look]] = {
    10: Look("book", 0.09, 0.35, 0.65),
    2705: Look("book", -1, 0.6, 0.8),
    2403: Look("stack", -1, 0.5, 0.75),
    2280: Look("paper", 0.12, 0.1, 0.85),
    2522: Look("notebook", -1, 0.55, 0.85),
    40: Look("case", 0.6, 0.7, 0.7),
    2462: Look("stack", 0.6, 0.5, 0.5),
    2905: Look("case", 0.75, 0.6, 0.35),
    50: Look("device", 0.0, 0.0, 0.2),
    60: Look("device", 0.6, 0.15, 0.3),
    1140: Look("figure", -1, 0.8, 0.8),
    1180: Look("figure", 0.0, 0.05, 0.5),
    1160: Look("card", -1, 0.75, 0.9),
    1280: Look("blob", -1, 0.85, 0.95),
    1281: Look("case", -1, 0.75, 0.9),
    1302: Look("round", -1, 0.8, 0.95),
    1300: Look("vehicle", -1, 0.7, 0.6),
    1301: Look("sock", -1, 0.35, 0.95),
    1320: Look("blob", -1, 0.3, 0.95),
    1560: Look("furniture", 0.08, 0.45, 0.6),
    1920: Look("textile", -1, 0.45, 0.85),
    2060: Look("star", 0.12, 0.7, 0.9),
    2220: Look("round", 0.05, 0.5, 0.7),
    2582: Look("furniture", 0.3, 0.45, 0.5),
    2583: Look("pool", 0.55, 0.75, 0.85),
    2585: Look("tool", 0.08, 0.85, 0.9),
    1940: Look("jar", 0.05, 0.65, 0.75),
}


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return int(r * 255), int(g * 255), int(b * 255)


def _colour(rng: np.random.Generator, look: Look) -> tuple[int, int, int]:
    hue = rng.random() if look.hue < 0 else (look.hue + rng.normal(0, 0.1)) % 1.0
    sat = float(np.clip(look.saturation + rng.normal(0, 0.25), 0, 1))
    val = float(np.clip(look.value + rng.normal(0, 0.2), 0.05, 1))
    return _hsv(hue, sat, val)


def _box(cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _draw_object(d: ImageDraw.ImageDraw, rng: np.random.Generator, look: Look, scale: float) -> None:
    cx, cy = SIZE / 2 + rng.normal(0, 30, 2)
    main, second = _colour(rng, look), _colour(rng, look)
    s = scale * SIZE
    shape = look.shape
    if shape in ("book", "notebook", "paper", "case"):
        aspect = {"book": 0.68, "notebook": 0.72, "paper": 0.75, "case": 0.8}[shape]
        box = _box(cx, cy, s * aspect * 0.8, s * 0.8)
        d.rectangle(box, fill=main, outline=(40, 40, 40), width=2)
        if shape == "case":
            d.rectangle((box[0], box[1], box[2], box[1] + s * 0.12), fill=second)
        for k in range(rng.integers(2, 9)):
            y = box[1] + s * (0.2 + 0.07 * k)
            if y < box[3] - 10:
                ink = (30, 30, 30) if shape in ("paper", "notebook") else second
                d.line((box[0] + 12, y, box[2] - 12 - rng.integers(0, 60), y), fill=ink, width=3)
    elif shape == "stack":
        for k in range(int(rng.integers(2, 6))):
            c = _colour(rng, look)
            d.rectangle(_box(cx + rng.normal(0, 8), cy + s * 0.35 - k * s * 0.14, s * 0.7, s * 0.12), fill=c)
    elif shape == "device":
        d.rounded_rectangle(_box(cx, cy, s * 0.85, s * 0.45), radius=int(s * 0.12), fill=main)
        for k in (-1, 1):
            d.ellipse(_box(cx + k * s * 0.25, cy, s * 0.1, s * 0.1), fill=second)
    elif shape == "figure":
        d.ellipse(_box(cx, cy - s * 0.3, s * 0.22, s * 0.22), fill=second)
        d.polygon([(cx - s * 0.2, cy + s * 0.4), (cx + s * 0.2, cy + s * 0.4), (cx, cy - s * 0.2)], fill=main)
    elif shape == "card":
        box = _box(cx, cy, s * 0.55, s * 0.78)
        d.rounded_rectangle(box, radius=12, fill=(235, 205, 60), outline=(20, 20, 20), width=2)
        d.rectangle((box[0] + 15, box[1] + 40, box[2] - 15, box[1] + s * 0.4), fill=main)
        d.rectangle((box[0] + 15, box[1] + s * 0.45, box[2] - 15, box[3] - 20), fill=second)
    elif shape in ("blob", "round", "pool"):
        n = 1 if shape == "pool" else int(rng.integers(2, 6))
        for _ in range(n):
            r = s * (0.45 if shape == "pool" else rng.uniform(0.1, 0.25))
            ox, oy = (0.0, 0.0) if n == 1 else tuple(rng.normal(0, s * 0.15, 2))
            d.ellipse(
                _box(cx + ox, cy + oy, r * 2, r * (1.0 if shape != "pool" else 0.6) * 2),
                fill=_colour(rng, look),
            )
    elif shape == "vehicle":
        d.rectangle(_box(cx, cy, s * 0.8, s * 0.22), fill=main)
        d.polygon(
            [(cx - s * 0.2, cy - s * 0.11), (cx + s * 0.15, cy - s * 0.11), (cx, cy - s * 0.3)], fill=second
        )
        for k in (-1, 1):
            d.ellipse(_box(cx + k * s * 0.28, cy + s * 0.13, s * 0.16, s * 0.16), fill=(25, 25, 25))
    elif shape == "sock":
        d.rectangle(_box(cx - s * 0.05, cy - s * 0.1, s * 0.18, s * 0.5), fill=main)
        d.rounded_rectangle(_box(cx + s * 0.06, cy + s * 0.18, s * 0.35, s * 0.16), radius=20, fill=main)
        d.rectangle(_box(cx - s * 0.05, cy - s * 0.33, s * 0.18, s * 0.05), fill=second)
    elif shape == "furniture":
        top = _box(cx, cy - s * 0.15, s * 0.8, s * 0.08)
        d.rectangle(top, fill=main)
        for x in (top[0] + 10, top[2] - 25):
            d.rectangle((x, top[3], x + 15, top[3] + s * 0.4), fill=main)
    elif shape == "textile":
        box = _box(cx, cy, s * 0.7, s * 0.7)
        d.rounded_rectangle(box, radius=30, fill=main)
        step = int(rng.integers(15, 45))
        for x in range(int(box[0]) + step, int(box[2]), step):
            d.line((x, box[1] + 8, x, box[3] - 8), fill=second, width=int(rng.integers(2, 8)))
    elif shape == "star":
        r1, r2 = s * 0.4, s * 0.17
        pts = [
            (
                cx + (r1 if k % 2 == 0 else r2) * math.cos(math.pi * k / 5 - math.pi / 2),
                cy + (r1 if k % 2 == 0 else r2) * math.sin(math.pi * k / 5 - math.pi / 2),
            )
            for k in range(10)
        ]
        d.polygon(pts, fill=main)
    elif shape == "tool":
        d.rectangle(_box(cx, cy + s * 0.1, s * 0.12, s * 0.6), fill=main)
        d.rectangle(_box(cx, cy - s * 0.25, s * 0.5, s * 0.15), fill=(120, 120, 125))
    elif shape == "jar":
        d.rounded_rectangle(_box(cx, cy + s * 0.05, s * 0.45, s * 0.6), radius=25, fill=main)
        d.rectangle(_box(cx, cy - s * 0.3, s * 0.35, s * 0.1), fill=second)
        d.rectangle(_box(cx, cy + s * 0.05, s * 0.45, s * 0.2), fill=(245, 245, 240))


def draw_product(code: int, rng: np.random.Generator) -> Image.Image:
    """A 500×500 RGB product photo for class `code`."""
    look = LOOKS[code]
    if rng.random() < BORROW_RATE:
        look = LOOKS[int(rng.choice(list(LOOKS)))]
    r = rng.random()
    if r < 0.75:
        bg = (255, 255, 255)
    elif r < 0.9:
        g = int(rng.integers(180, 245))
        bg = (g, g, g)
    else:
        bg = _hsv(rng.random(), 0.25, 0.9)
    img = Image.new("RGB", (SIZE, SIZE), bg)
    d = ImageDraw.Draw(img)
    if rng.random() < 0.45:  # a distractor: packaging, a prop, another item in the shot
        other = LOOKS[int(rng.choice(list(LOOKS)))]
        _draw_object(d, rng, other, rng.uniform(0.25, 0.45))
    _draw_object(d, rng, look, rng.uniform(0.45, 0.95))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.5))))
    return img


def product_jpeg(code: int, rng: np.random.Generator) -> bytes:
    """`draw_product` encoded as a JPEG of marketplace quality."""
    buf = io.BytesIO()
    draw_product(code, rng).save(buf, format="JPEG", quality=int(rng.integers(70, 93)))
    return buf.getvalue()


def scene_photo(rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """A photo unlike every demo product photo: a textured outdoor-like scene (1/f noise, the spectrum of
    natural images, in correlated colours under a light gradient) with no object on a plain background.
    What a model trained on the demo's drawings has never seen — the photo guard must set it aside."""
    n = 128
    fx, fy = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]
    frequency = np.hypot(fx, fy)
    frequency[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spectrum = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
        texture = np.real(np.fft.ifft2(spectrum / frequency ** rng.uniform(1.0, 1.6)))
        channels.append((texture - texture.mean()) / texture.std())
    mix = rng.normal(size=(3, 3)) * 0.3 + np.eye(3)
    base = rng.uniform(0.2, 0.8, 3)
    light = rng.uniform(-0.2, 0.2, 3)[:, None, None] * np.linspace(0, 1, n)[:, None]
    rgb = base[:, None, None] + 0.15 * np.tensordot(mix, np.stack(channels), axes=1) + light
    pixels = (np.clip(rgb.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC)


def scene_jpeg(rng: np.random.Generator) -> bytes:
    """`scene_photo` encoded as a JPEG."""
    buf = io.BytesIO()
    scene_photo(rng).save(buf, format="JPEG", quality=88)
    return buf.getvalue()
