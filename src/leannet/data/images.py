"""Image input, once: which files a dataset or an `--images` argument means, how they are
decoded, and the evaluation transform.

Every tool (classification training and evaluation, export calibration and `--eval`, `infer`,
the detector's training, export and inference) finds files here (`IMAGE_EXTENSIONS`,
`find_images`, `image_folder`, `list_file`) and decodes them with `load_image`, so the same
folder or list means the same files everywhere and a photo is decoded the same way: EXIF
orientation applied, any mode (CMYK, palette, 16-bit, grayscale, alpha) turned into 8-bit RGB.
A file that cannot be an image raises `DataError` with the reason, so a caller can skip it and
say why.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from leannet.errors import DataError

log = logging.getLogger("leannet.data")

# The one set of image suffixes: training, evaluation, calibration, inference and detection all
# find files with it (torchvision's IMG_EXTENSIONS lacks .gif, which export used and training
# dropped). load_image decodes each of these; a GIF gives its first frame.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})

_ORIENTATION = 0x0112  # EXIF tag

# Modes whose samples exceed 8 bits: PIL's convert("RGB") would clip them to 255, not rescale.
_WIDE_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0}


def load_image(path: str | Path) -> Image.Image:
    """Decode `path` fully into an 8-bit RGB image, or raise DataError(reason)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            # Between MAX_IMAGE_PIXELS and twice that PIL only warns; a decompression bomb is
            # refused either way, before its pixels are allocated.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode now: truncation shows up here, not later in a worker
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{path}: image too large (over {Image.MAX_IMAGE_PIXELS} pixels); "
                        "refused as a possible decompression bomb") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL reports bad data as these
        raise DataError(f"{path}: corrupt or truncated image ({str(e).strip() or type(e).__name__})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in _WIDE_MODES:
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(arr / _WIDE_MODES[img.mode] * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "F":  # float images: assume [0, 1] when they fit, else 8-bit values
        arr = np.asarray(img, dtype=np.float64)
        arr = arr * 255.0 if np.nanmax(arr, initial=0.0) <= 1.0 else arr
        return Image.fromarray(np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # avoids PIL's warning about palette transparency
    return img.convert("RGB") if img.mode != "RGB" else img.copy()


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


# EXIF orientations whose display swaps width and height (transpose, 90/270 rotations).
SWAPS_AXES = frozenset({5, 6, 7, 8})


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation tag of an image file (1, upright, when it has none or is unreadable).
    Reads the header only."""
    try:
        with Image.open(path) as img:
            return int(img.getexif().get(_ORIENTATION, 1))
    except (OSError, SyntaxError, ValueError):
        return 1


# --- which files: one set of extensions, one walk, one ImageFolder reader, one list parser ---

UNLABELED = -1  # label of an image with no class (distillation's unlabeled set, calibration lists)


@dataclass(frozen=True)
class Samples:
    """(path, label) pairs of a dataset, its class names, and what the user pointed at."""

    items: list[tuple[str, int]]
    classes: list[str]
    source: str  # for messages

    @property
    def paths(self) -> list[Path]:
        return [Path(p) for p, _ in self.items]

    @property
    def labels(self) -> list[int]:
        return [y for _, y in self.items]


def _images_under(folder: Path) -> list[Path]:
    # os.walk(followlinks=True), as torchvision's ImageFolder: class folders are often symlinks
    # (Path.rglob before 3.13 does not enter them). Sorted by path components, so an
    # ImageFolder (class by class) and a plain walk of its root list files in the same order.
    found = [Path(d) / f for d, _, files in os.walk(folder, followlinks=True) for f in files]
    return sorted((p for p in found if is_image_file(p)), key=lambda p: p.relative_to(folder).parts)


def find_images(sources: Iterable[str | Path]) -> list[Path]:
    """Files named directly (whatever their extension) plus image files under named folders,
    recursively, in sorted order. A source that does not exist raises DataError. Every tool
    that is given "images" (infer, calibration folders, detect infer/export) lists them here."""
    out: list[Path] = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            out.extend(_images_under(src))
        elif src.exists():
            out.append(src)
        else:
            raise DataError(f"{src}: no such file or folder")
    return out


def image_folder(root: str | Path, classes: Sequence[str] | None = None) -> Samples:
    """`root/<class>/**/<image>`. Classes are the sorted sub-folder names (torchvision's rule);
    with `classes` given (a model's), each sub-folder must be one of them and takes its index.
    A class folder without images is an error, as in torchvision."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset folder")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DataError(f"{root}: empty dataset (no class sub-folders; expected root/<class>/*.jpg)")
    names = list(classes) if classes is not None else folders
    index = {c: i for i, c in enumerate(names)}
    items: list[tuple[str, int]] = []
    for folder in folders:
        if folder not in index:
            raise DataError(f"{root / folder}: folder is not one of the model's classes "
                            f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
        files = _images_under(root / folder)
        if not files:
            raise DataError(f"{root / folder}: empty dataset (class folder has no image files "
                            f"with a suffix in {' '.join(sorted(IMAGE_EXTENSIONS))})")
        items += [(str(p), index[folder]) for p in files]
    return Samples(items, names, str(root))


_LIST_LINE = re.compile(r"(.+?)\s+(-?\d+)")  # path, whitespace, integer label


def list_file(path: str | Path, root: str | Path | None = None, classes: Sequence[str] | None = None,
              *, allow_unlabeled: bool = False) -> Samples:
    """A PaddleClas list file: `relative/path.jpg LABEL` per line (blank lines and `#` comments
    skipped), paths relative to `root` (default: the list file's folder). Labels are integers
    in [0, len(classes)); without `classes` the classes are "0".."max label".

    A line without a label is an error naming file:line, since training and evaluation need
    one; calibration, which needs none, passes `allow_unlabeled=True` and gets such lines as
    UNLABELED."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    if not path.is_file():
        raise DataError(f"{path}: no such list file")
    items: list[tuple[str, int]] = []
    n_cls = len(classes) if classes is not None else None
    for no, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LIST_LINE.fullmatch(line)
        if m is not None:
            rel, label = m.groups()
        else:
            if not allow_unlabeled:
                raise DataError(f"{path}:{no}: expected 'relative/path.jpg LABEL', got {line!r} "
                                "(a bare path is unlabeled: fine for calibration, not for training or evaluation)")
            rel, label = line, str(UNLABELED)
        y = int(label)
        unlabeled = y == UNLABELED and allow_unlabeled
        if not unlabeled and (y < 0 or (n_cls is not None and y >= n_cls)):
            limit = f"[0, {n_cls})" if n_cls is not None else ">= 0"
            raise DataError(f"{path}:{no}: label {y} is outside the class range {limit}")
        items.append((str(root / rel.strip()), y))
    if not items:
        raise DataError(f"{path}: empty dataset (no samples listed)")
    if classes is None:
        classes = [str(i) for i in range(max(y for _, y in items) + 1)]
    return Samples(items, list(classes), str(path))


def labelled_images(source: str | Path, classes: Sequence[str] | None = None) -> Samples:
    """An ImageFolder root or a list file, whichever `source` is (evaluation sets)."""
    source = Path(source)
    if source.is_file():
        return list_file(source, classes=classes)
    if not source.is_dir():
        raise DataError(f"{source}: no such folder or list file")
    return image_folder(source, classes)


def unlabeled_folder(root: str | Path) -> Samples:
    """Every image under `root` (any depth), labelled UNLABELED."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder of unlabeled images")
    files = find_images([root])
    if not files:
        raise DataError(f"{root}: empty dataset (no image files)")
    return Samples([(str(f), UNLABELED) for f in files], [], str(root))


def report_skipped(what: str, reasons: Sequence[str], total: int) -> None:
    """Say (once, as a warning) that `len(reasons)` of `total` images of `what` were skipped as
    unreadable, with the first reason: the one message of every tool that skips bad files
    outside training (training counts them in its summary)."""
    if reasons:
        log.warning("%s: skipped %d of %d images as unreadable (first: %s)", what, len(reasons), total, reasons[0])


def eval_transform_for(pre: dict[str, Any]) -> Callable[[Image.Image], torch.Tensor]:
    """`transforms.eval_transform` configured by a preprocessing record (`input_size`, `mean`,
    `std`, `interpolation`, `crop_pct`, `channel_order`), as stored in checkpoints and export
    sidecars."""
    from leannet.data.transforms import eval_transform

    _, h, w = pre["input_size"]
    order = pre.get("channel_order", "rgb")
    if order not in ("rgb", "bgr"):
        raise DataError(f"unknown channel_order {order!r} in the preprocessing record; use rgb or bgr")
    # mean/std are listed in the model's channel order: for BGR, normalise the RGB image with
    # them reversed, then reverse the channels.
    flip = order == "bgr"
    mean, std = (list(pre["mean"])[::-1], list(pre["std"])[::-1]) if flip else (pre["mean"], pre["std"])
    transform = eval_transform((h, w), float(pre.get("crop_pct", 1.0)), mean, std,
                               pre.get("interpolation", "bilinear"))
    return (lambda img: transform(img).flip(0)) if flip else transform


def image_batches(paths: list[Path], pre: dict[str, Any], batch: int,
                  on_error: Callable[[Path, str], None] | None = None) -> Iterator[tuple[list[Path], np.ndarray]]:
    """(paths, array) batches of preprocessed images; unreadable files go to `on_error` and are skipped."""
    transform = eval_transform_for(pre)
    done: list[Path] = []
    arrays: list[np.ndarray] = []
    for p in paths:
        try:
            arrays.append(transform(load_image(p)).numpy())
            done.append(p)
        except DataError as e:
            if on_error is None:
                raise
            on_error(p, str(e))
        if len(arrays) == batch:
            yield done, np.stack(arrays)
            done, arrays = [], []
    if arrays:
        yield done, np.stack(arrays)
