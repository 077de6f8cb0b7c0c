"""A deterministic synthetic document-detection dataset, written as COCO JSON + JPEGs.

Each image is a cluttered background (a crop of one of scikit-image's bundled sample photos,
or a procedural texture) with one to three documents on it: ID-card-like cards (a header
stripe, a portrait photo, text lines, a barcode) and pages (paragraphs of text lines, a
figure or a table), each under a random scale, rotation and perspective, with a soft shadow,
sometimes partly covered by a thumb or another object; then the whole photo gets uneven
lighting, a colour cast, blur, sensor noise and JPEG compression. Boxes are the axis-aligned
bounds of each document's four corners (amodal: an occluded corner still counts).

`difficulty="hard"` is for detectors that saturate the standard set (85 mAP@.5 after 12
epochs): a third class, receipts (long narrow thermal slips with monospace text and a total
line, often curled), stronger perspective, defocus and motion blur, documents tinted toward
the background under them (low contrast), up to five documents, and a card, receipt or page
lying partly on another document (box IoU up to 0.6). The standard set draws exactly the
random numbers it always drew, so it stays byte-identical for a seed
(tests/detect/test_synthetic.py pins it); the hard set has its own draws and its own
categories (card, page, receipt).

Image `i` of seed `s` depends only on `(s, i)`, so a set is reproducible and a held-out set
is just another seed. Nothing is downloaded: the photos ship inside scikit-image.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from leannet.fileio import atomic_path, write_text

CATEGORIES = ({"id": 1, "name": "card"}, {"id": 2, "name": "page"})  # the standard set's
HARD_CATEGORIES = (*CATEGORIES, {"id": 3, "name": "receipt"})
CARD, PAGE, RECEIPT = 1, 2, 3
CARD_ASPECT = 85.6 / 54.0  # ISO/IEC 7810 ID-1
PAGE_ASPECT = 297.0 / 210.0  # ISO 216 A-series
RECEIPT_WIDTH_MM, RECEIPT_LENGTH_MM = 80.0, (200.0, 300.0)  # an 80 mm thermal roll, torn at 20-30 cm
DIFFICULTIES = ("standard", "hard")
# Bundled sample photos (no download): backgrounds, and portraits/figures printed on documents.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
          "retina", "colorwheel")
TEXTURES = ("brick", "grass", "gravel", "camera", "coins", "moon")  # grayscale, tinted


@functools.cache
def _sample(name: str) -> np.ndarray:
    from leannet.extras import require

    skimage = require("skimage", "synthetic documents")
    require("skimage.data", "synthetic documents")

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def _crop(rng: np.random.Generator, name: str, w: int, h: int) -> Image.Image:
    """A random crop of sample `name` with aspect w/h, resized to (w, h)."""
    src = _sample(name)
    sh, sw = src.shape[:2]
    scale = rng.uniform(0.35, 1.0)
    cw = min(sw, int(min(sw, sh * w / h) * scale))
    ch = max(1, min(sh, int(cw * h / w)))
    x0 = int(rng.integers(0, sw - cw + 1))
    y0 = int(rng.integers(0, sh - ch + 1))
    img = Image.fromarray(src[y0:y0 + ch, x0:x0 + cw]).resize((w, h), Image.BILINEAR)
    return img.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else img


def _color(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


# --- backgrounds ------------------------------------------------------------------------------


def _texture(rng: np.random.Generator, size: int) -> Image.Image:
    kind = rng.integers(0, 4)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 0:  # wood-like grain: warped sinusoid rings
        f = rng.uniform(8, 30)
        v = np.sin(f * (xx + 0.15 * np.sin(rng.uniform(2, 6) * yy)) * np.pi)
    elif kind == 1:  # tiles / checkerboard
        n = rng.integers(3, 12)
        v = ((np.floor(xx * n) + np.floor(yy * n)) % 2) * 2 - 1.0
    elif kind == 2:  # smooth blotches: blurred noise
        small = rng.normal(size=(int(rng.integers(4, 16)),) * 2).astype(np.float32)
        v = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))
        v = v / (np.abs(v).max() + 1e-6)
    else:  # a tinted grayscale sample texture
        gray = np.asarray(_crop(rng, TEXTURES[rng.integers(len(TEXTURES))], size, size).convert("L"))
        v = gray.astype(np.float32) / 127.5 - 1
    a, b = np.array(_color(rng)), np.array(_color(rng))
    img = (0.5 + 0.5 * v)[..., None] * a + (0.5 - 0.5 * v)[..., None] * b
    return Image.fromarray(img.clip(0, 255).astype(np.uint8))


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    if rng.random() < 0.6:
        img = _crop(rng, PHOTOS[rng.integers(len(PHOTOS))], size, size)
    else:
        img = _texture(rng, size)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(0, 6)):  # clutter that is not a document: blobs and cords
        x, y = rng.uniform(0, size, 2)
        r = rng.uniform(0.03, 0.15) * size
        if rng.random() < 0.5:
            draw.ellipse([x - r, y - r * rng.uniform(0.4, 1), x + r, y + r], fill=_color(rng))
        else:
            pts = [tuple(p) for p in rng.uniform(0, size, (int(rng.integers(2, 5)), 2))]
            draw.line(pts, fill=_color(rng), width=int(rng.integers(1, 6)))
    return img


# --- documents --------------------------------------------------------------------------------


def _words(draw: ImageDraw.ImageDraw, rng: np.random.Generator, x0: float, x1: float, y: float,
           h: float, ink: tuple[int, int, int]) -> None:
    """A line of text-like word blocks from x0 to at most x1."""
    x = x0
    end = x0 + (x1 - x0) * rng.uniform(0.4, 1.0)
    while x < end:
        w = h * rng.uniform(1.0, 5.0)
        draw.rectangle([x, y, min(x + w, end), y + h], fill=ink)
        x += w + h * rng.uniform(0.4, 0.9)


def _card(rng: np.random.Generator, w: int) -> Image.Image:
    h = max(8, round(w / CARD_ASPECT))
    img = Image.new("RGB", (w, h), _color(rng, 150, 256))
    draw = ImageDraw.Draw(img)
    ink = _color(rng, 0, 90)
    band = int(h * rng.uniform(0.12, 0.25))
    if rng.random() < 0.8:  # header stripe
        draw.rectangle([0, 0, w, band], fill=_color(rng, 0, 200))
        _words(draw, rng, 0.06 * w, 0.9 * w, band * 0.3, band * 0.4, _color(rng, 200, 256))
    for _ in range(int(rng.integers(0, 4))):  # security stripes / wave lines
        y = rng.uniform(band, h)
        draw.line([(0, y), (w, y + rng.uniform(-0.2, 0.2) * h)], fill=_color(rng, 100, 240),
                  width=max(1, int(h * 0.02)))
    photo_w = int(w * rng.uniform(0.22, 0.32))
    py0 = band + int(0.08 * h)
    photo_h = min(int(photo_w * 1.25), h - py0 - int(0.06 * h))
    if photo_h > 4 and rng.random() < 0.9:
        px0 = int(0.05 * w) if rng.random() < 0.7 else w - int(0.05 * w) - photo_w
        img.paste(_crop(rng, PHOTOS[rng.integers(3)], photo_w, photo_h), (px0, py0))
        tx0, tx1 = (px0 + photo_w + 0.05 * w, 0.95 * w) if px0 < w / 2 else (0.05 * w, px0 - 0.04 * w)
    else:
        tx0, tx1 = 0.06 * w, 0.94 * w
    line_h = h * rng.uniform(0.045, 0.07)
    y = py0
    while y + line_h < h * 0.8:
        _words(draw, rng, tx0, tx1, y, line_h, ink)
        y += line_h * rng.uniform(1.8, 2.6)
    if rng.random() < 0.5:  # barcode / machine-readable zone
        x = 0.06 * w
        while x < 0.94 * w:
            bw = rng.uniform(0.3, 1.5) * w / 200
            draw.rectangle([x, 0.86 * h, x + bw, 0.95 * h], fill=ink)
            x += bw + rng.uniform(0.3, 1.5) * w / 200
    if rng.random() < 0.7:
        draw.rectangle([0, 0, w - 1, h - 1], outline=_color(rng, 0, 150), width=max(1, w // 80))
    return img


def _page(rng: np.random.Generator, w: int) -> Image.Image:
    landscape = rng.random() < 0.2
    h = max(8, round(w / PAGE_ASPECT if landscape else w * PAGE_ASPECT))
    paper = int(rng.integers(215, 256))
    img = Image.new("RGB", (w, h), (paper, paper - int(rng.integers(0, 15)), paper - int(rng.integers(0, 25))))
    draw = ImageDraw.Draw(img)
    ink = _color(rng, 0, 70)
    m = w * rng.uniform(0.07, 0.12)
    line_h = max(1.0, h * rng.uniform(0.008, 0.016))
    y = m
    _words(draw, rng, m, w - m, y, line_h * 2, ink)  # title
    y += line_h * 5
    figure_at = rng.uniform(0.3, 0.7) * h if rng.random() < 0.5 else -1
    while y + line_h < h - m:
        if 0 < figure_at <= y:
            fh = int(h * rng.uniform(0.12, 0.25))
            fw = int((w - 2 * m) * rng.uniform(0.5, 1.0))
            if y + fh < h - m and fw > 4 and fh > 4:
                if rng.random() < 0.6:
                    img.paste(_crop(rng, PHOTOS[rng.integers(len(PHOTOS))], fw, fh), (int(m), int(y)))
                else:  # a table
                    rows, cols = int(rng.integers(3, 8)), int(rng.integers(2, 6))
                    for r in range(rows + 1):
                        draw.line([(m, y + r * fh / rows), (m + fw, y + r * fh / rows)], fill=ink)
                    for c in range(cols + 1):
                        draw.line([(m + c * fw / cols, y), (m + c * fw / cols, y + fh)], fill=ink)
                y += fh + line_h * 2
            figure_at = -1
            continue
        for _ in range(int(rng.integers(2, 7))):  # a paragraph
            if y + line_h >= h - m:
                break
            _words(draw, rng, m, w - m, y, line_h, ink)
            y += line_h * rng.uniform(1.6, 2.2)
        y += line_h * 1.5
    if rng.random() < 0.25:
        draw.rectangle([m / 2, m / 2, w - m / 2, h - m / 2], outline=ink, width=max(1, w // 150))
    return img


def _receipt(rng: np.random.Generator, w: int) -> Image.Image:
    """A till receipt: thermal paper, a monospace grid of characters (a centred header, item
    lines with right-aligned prices, dashed rules, a double-height TOTAL line), crumple shading."""
    h = max(8, round(w * rng.uniform(*RECEIPT_LENGTH_MM) / RECEIPT_WIDTH_MM))
    paper = int(rng.integers(225, 256))
    img = Image.new("RGB", (w, h), (paper - int(rng.integers(0, 10)), paper, paper - int(rng.integers(0, 12))))
    draw = ImageDraw.Draw(img)
    ink = tuple(int(v) for v in rng.integers(20, 110) + rng.integers(-10, 11, 3))  # faded thermal grey
    m = w * 0.06
    cols = int(rng.choice([32, 42, 48]))  # characters per line of common 80 mm printers
    cell = (w - 2 * m) / cols
    line_h = cell * rng.uniform(1.7, 2.2)

    def text(col: int, n: int, y: float, tall: float = 1.0) -> None:
        """`n` monospace characters from column `col`, spaces among them."""
        for c in range(col, min(cols, col + n)):
            if rng.random() > 0.15:
                draw.rectangle([m + c * cell, y, m + (c + 0.7) * cell, y + 1.2 * cell * tall], fill=ink)

    def rule(y: float) -> None:
        for c in range(0, cols, 2):
            draw.rectangle([m + c * cell, y + 0.5 * cell, m + (c + 1) * cell, y + 0.7 * cell], fill=ink)

    y = m
    for i in range(int(rng.integers(2, 5))):  # store name (double height) and address, centred
        n = int(rng.integers(cols // 4, cols * 3 // 4))
        text((cols - n) // 2, n, y, 2.0 if i == 0 else 1.0)
        y += line_h * (2.0 if i == 0 else 1.0)
    rule(y)
    y += line_h
    end = h * rng.uniform(0.55, 0.8)
    while y < end:  # items: name on the left, price right-aligned
        text(0, int(rng.integers(5, cols // 2)), y)
        price = int(rng.integers(4, 8))
        text(cols - price, price, y)
        y += line_h
    rule(y)
    y += line_h
    if y + 2 * line_h < h - m:
        text(0, 5, y, 2.0)  # TOTAL
        text(cols - 7, 7, y, 2.0)
        y += 3 * line_h
    while y + line_h < h - m and rng.random() < 0.8:  # payment lines, thanks, a barcode
        n = int(rng.integers(cols // 4, cols))
        text((cols - n) // 2, n, y)
        y += line_h
    # Crumples: smooth bands of light and shade across the slip.
    bands = np.asarray(Image.fromarray(rng.normal(size=(int(rng.integers(4, 12)), 1)).astype(np.float32))
                       .resize((1, h), Image.BICUBIC))
    shade = 1.0 + rng.uniform(0.03, 0.12) * bands / (np.abs(bands).max() + 1e-6)
    return Image.fromarray((np.asarray(img) * shade[..., None]).clip(0, 255).astype(np.uint8))


def _perspective_coeffs(src: np.ndarray, dst: np.ndarray) -> tuple[float, ...]:
    """PIL's 8 PERSPECTIVE coefficients, which map output points (`dst`) back to `src`."""
    from skimage.transform import ProjectiveTransform

    t = ProjectiveTransform.from_estimate(dst, src) if hasattr(ProjectiveTransform, "from_estimate") else None
    if t is None:
        t = ProjectiveTransform()
        t.estimate(dst, src)
    p = t.params / t.params[2, 2]
    return tuple(float(v) for v in p.flatten()[:8])


def _quad(rng: np.random.Generator, w: int, h: int, size: int, keystone: float = 0.1,
          on: np.ndarray | None = None) -> np.ndarray:
    """Corners (tl, tr, br, bl) of a (w, h) document after rotation, perspective (corners moved
    by up to `keystone` x its long side) and a shift; centred somewhere on box `on` if given."""
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) - [w / 2, h / 2]
    angle = rng.uniform(-np.pi, np.pi) if rng.random() < 0.15 else rng.normal(0, 0.25)
    c, s = np.cos(angle), np.sin(angle)
    corners = corners @ np.array([[c, s], [-s, c]])
    corners += rng.uniform(-keystone, keystone, corners.shape) * max(w, h)  # keystone / perspective
    if on is not None:  # lying partly on another document
        return corners + on[:2] + rng.uniform(0.0, 1.0, 2) * (on[2:] - on[:2])
    return corners + rng.uniform(0.15, 0.85, 2) * size


def _convex(quad: np.ndarray) -> bool:
    """Whether corners (in order) make a convex quadrilateral: every turn has the same sign."""
    edges = np.roll(quad, -1, 0) - quad
    turns = edges[:, 0] * np.roll(edges, -1, 0)[:, 1] - edges[:, 1] * np.roll(edges, -1, 0)[:, 0]
    return bool((turns > 0).all() or (turns < 0).all())


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Sample:
    image: Image.Image
    boxes: list[tuple[int, tuple[float, float, float, float]]]  # (category id, x0 y0 x1 y1)
    # Each box's document corners (tl, tr, br, bl) in image pixels, before clipping to the image.
    quads: list[tuple[tuple[float, float], ...]] = field(default_factory=list)


def render(seed: int, index: int, size: int = 256, difficulty: str = "standard") -> Sample:
    """Image `index` of the set with `seed`: a `size` x `size` RGB photo and its boxes."""
    from leannet.errors import ConfigError

    if difficulty not in DIFFICULTIES:
        raise ConfigError(f"unknown difficulty {difficulty!r}; choose from {', '.join(DIFFICULTIES)}")
    hard = difficulty == "hard"
    rng = np.random.default_rng([seed, index])
    img = _background(rng, size).convert("RGBA")
    boxes: list[tuple[int, tuple[float, float, float, float]]] = []
    quads: list[tuple[tuple[float, float], ...]] = []
    count = rng.choice([1, 2, 3, 4, 5], p=[0.15, 0.25, 0.25, 0.2, 0.15]) if hard else \
        rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])
    for _ in range(int(count)):
        if hard:
            cat = int(rng.choice([CARD, PAGE, RECEIPT], p=[0.35, 0.35, 0.3]))
        else:
            cat = CARD if rng.random() < 0.5 else PAGE
        if cat == RECEIPT:
            frac = rng.uniform(0.1, 0.22)
            w = max(8, int(frac * size))
            doc = _receipt(rng, w)
        else:
            frac = rng.uniform(0.2, 0.55) if cat == CARD else rng.uniform(0.25, 0.7)
            w = max(8, int(frac * size * (1 if cat == CARD else rng.uniform(0.7, 1.0))))
            doc = _card(rng, w) if cat == CARD else _page(rng, w)
        # Hard: corners shift up to 18% of the long side (standard: 10%); a receipt's long side
        # is ~3x its width, so 8% of it is already a marked curl. Half of the documents after
        # the first lie partly on one already placed.
        keystone = (0.08 if cat == RECEIPT else 0.18) if hard else 0.1
        on = np.array(boxes[int(rng.integers(len(boxes)))][1]) if hard and boxes and rng.random() < 0.5 else None
        max_iou = 0.6 if hard else 0.15
        for _try in range(20):  # keep documents mostly inside and mostly apart
            quad = _quad(rng, doc.width, doc.height, size, keystone, on if _try < 10 else None)
            box = np.concatenate([quad.min(0), quad.max(0)])
            clipped = np.clip(box, 0, size)
            area = (box[2] - box[0]) * (box[3] - box[1])
            inside = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) / area
            if hard and not _convex(quad):  # a folded quadrilateral is no photo of a flat document
                continue
            if inside > 0.85 and all(_box_iou(box, np.array(b)) < max_iou for _, b in boxes):
                break
        else:
            continue
        src = np.array([[0, 0], [doc.width, 0], [doc.width, doc.height], [0, doc.height]], np.float64)
        coeffs = _perspective_coeffs(src, quad)
        alpha = Image.new("L", doc.size, 255)
        if cat == CARD:  # rounded corners
            alpha = Image.new("L", doc.size, 0)
            ImageDraw.Draw(alpha).rounded_rectangle([0, 0, doc.width - 1, doc.height - 1],
                                                    radius=doc.height * 0.06, fill=255)
        doc = doc.convert("RGBA")
        doc.putalpha(alpha)
        warped = doc.transform((size, size), Image.PERSPECTIVE, coeffs, Image.BILINEAR)
        if hard and rng.random() < 0.7:
            warped = _low_contrast(rng, warped, img)
        if rng.random() < 0.7:  # soft shadow below the document
            shadow_alpha = warped.getchannel("A").filter(ImageFilter.GaussianBlur(size * 0.01))
            darkness = rng.uniform(0.3, 0.6)
            shadow_alpha = Image.fromarray((np.asarray(shadow_alpha) * darkness).astype(np.uint8))
            shadow = Image.new("RGBA", (size, size), (0, 0, 0, 0))
            shadow.putalpha(shadow_alpha)
            off = tuple(int(v) for v in rng.integers(-3, 4, 2) * max(1, size // 128))
            img.alpha_composite(shadow, dest=(max(0, off[0]), max(0, off[1])))
        img.alpha_composite(warped)
        if rng.random() < 0.3:  # a thumb or an object over one edge (at most ~25% of the box)
            bw, bh = box[2] - box[0], box[3] - box[1]
            cx = box[0] + bw * rng.choice([0.0, 1.0, rng.uniform(0, 1)])
            cy = box[1] + bh * rng.choice([0.0, 1.0, rng.uniform(0, 1)])
            r = rng.uniform(0.12, 0.28) * min(bw, bh)
            skin = (int(rng.integers(150, 240)), int(rng.integers(100, 190)), int(rng.integers(80, 160)))
            fill = skin if rng.random() < 0.6 else _color(rng)
            ImageDraw.Draw(img).ellipse([cx - r, cy - r * 1.6, cx + r, cy + r * 1.6], fill=fill)
        boxes.append((cat, tuple(float(v) for v in np.clip(box, 0, size))))
        quads.append(tuple((float(x), float(y)) for x, y in quad))
    if hard:
        img = _camera_blur(rng, img.convert("RGB"))
    img = _photometric(rng, img.convert("RGB"))
    return Sample(img, boxes, quads)


def _low_contrast(rng: np.random.Generator, warped: Image.Image, scene: Image.Image) -> Image.Image:
    """The document tinted toward the mean colour of what lies under it (a white page on a white
    desk, a beige card on wood): its edges and its own contrast fade."""
    a = np.asarray(warped).astype(np.float32)
    mask = a[..., 3] > 0
    if not mask.any():
        return warped
    under = np.asarray(scene.convert("RGB")).astype(np.float32)[mask].mean(0)
    t = rng.uniform(0.5, 0.85)
    a[..., :3] = a[..., :3] * (1 - t) + under * t
    return Image.fromarray(a.clip(0, 255).astype(np.uint8), "RGBA")


def _camera_blur(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    """A hand-held shot: defocus (a wide Gaussian) or motion blur (a line kernel at a random
    angle, scipy.ndimage's convolution), or neither."""
    size = img.width
    kind = rng.choice(["none", "defocus", "motion"], p=[0.3, 0.35, 0.35])
    if kind == "defocus":
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 3.0) * size / 256))
    if kind == "motion":
        from scipy import ndimage  # a scikit-image dependency

        length = max(3, int(rng.uniform(4, 10) * size / 256)) | 1
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0
        kernel = ndimage.rotate(kernel, rng.uniform(0, 180), reshape=False, order=1)
        kernel /= kernel.sum()
        a = np.asarray(img).astype(np.float32)
        out = np.stack([ndimage.convolve(a[..., c], kernel, mode="nearest") for c in range(3)], -1)
        return Image.fromarray(out.clip(0, 255).astype(np.uint8))
    return img


def _photometric(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    """What a phone camera does to the scene: light falloff, colour cast, blur, noise, JPEG."""
    size = img.width
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5) * size / 256))
    a = np.asarray(img).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    light = rng.uniform(0.7, 1.15) + rng.uniform(-0.3, 0.3) * (xx - 0.5) + rng.uniform(-0.3, 0.3) * (yy - 0.5)
    a = a * light[..., None] * rng.uniform(0.9, 1.1, 3)
    if rng.random() < 0.7:
        a = a + rng.normal(0, rng.uniform(2, 12), a.shape)
    img = Image.fromarray(a.clip(0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(30, 80)))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


def generate(out_dir: str | Path, num_images: int, seed: int = 0, image_size: int = 256,
             difficulty: str = "standard") -> Path:
    """Write `out_dir/images/*.jpg` and `out_dir/annotations.json` (COCO); return the JSON path.
    `difficulty`: "standard" (cards and pages) or "hard" (module docstring).

    A set already written with the same parameters is reused; the JSON is written last and
    atomically, so an interrupted run is simply redone.
    """
    if difficulty not in DIFFICULTIES:
        from leannet.errors import ConfigError

        raise ConfigError(f"unknown difficulty {difficulty!r}; choose from {', '.join(DIFFICULTIES)}")
    out_dir = Path(out_dir)
    ann_path = out_dir / "annotations.json"
    info = {"description": "leannet synthetic documents", "seed": seed, "num_images": num_images,
            "image_size": image_size, "version": 1}
    if difficulty != "standard":  # the standard set's JSON stays as it always was
        info["difficulty"] = difficulty
    if ann_path.is_file():
        try:
            if json.loads(ann_path.read_text()).get("info") == info:
                return ann_path
        except (json.JSONDecodeError, OSError):
            pass
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        sample = render(seed, i, image_size, difficulty)
        name = f"images/{i:06d}.jpg"
        with atomic_path(out_dir / name) as tmp:
            sample.image.save(tmp, format="JPEG", quality=92)
        images.append({"id": i + 1, "file_name": name, "width": image_size, "height": image_size})
        for cat, (x0, y0, x1, y1) in sample.boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cat,
                                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                                "area": round((x1 - x0) * (y1 - y0), 2), "iscrowd": 0})
    categories = HARD_CATEGORIES if difficulty == "hard" else CATEGORIES
    coco = {"info": info, "images": images, "annotations": annotations, "categories": list(categories)}
    write_text(ann_path, json.dumps(coco))
    return ann_path
