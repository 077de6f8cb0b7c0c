"""Reading images robustly, finding them on disk, and the evaluation transform.

Every tool (training, export calibration, inference) loads through `load_image`, so a photo
is decoded the same way everywhere: EXIF orientation applied, any mode (CMYK, palette, 16-bit,
grayscale, alpha) turned into 8-bit RGB. A file that cannot be an image raises `DataError`
with the reason, so a caller can skip it and say why.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from leannet.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})

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


def find_images(sources: Iterable[str | Path]) -> list[Path]:
    """Files named directly (whatever their extension) plus image files under named folders,
    recursively, in sorted order. A source that does not exist raises DataError."""
    out: list[Path] = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            out.extend(sorted(p for p in src.rglob("*") if p.is_file() and is_image_file(p)))
        elif src.exists():
            out.append(src)
        else:
            raise DataError(f"{src}: no such file or folder")
    return out


def labelled_images(source: str | Path, classes: Sequence[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    """(paths, labels, class names) of an ImageFolder (`root/<class>/*`) or a list file
    (`relative/path.jpg label` per line, PaddleClas style, paths relative to the file).

    With `classes` given, ImageFolder sub-folders are mapped to those names (a folder that is
    not a known class raises); otherwise classes are the sorted sub-folder names.
    """
    source = Path(source)
    if source.is_file():
        return _read_list_file(source, classes)
    if not source.is_dir():
        raise DataError(f"{source}: no such folder or list file")
    folders = sorted(p.name for p in source.iterdir() if p.is_dir())
    if not folders:
        raise DataError(f"{source}: no class sub-folders (expected an ImageFolder root/<class>/*.jpg)")
    names = list(classes) if classes is not None else folders
    index = {c: i for i, c in enumerate(names)}
    paths, labels = [], []
    for folder in folders:
        if folder not in index:
            raise DataError(f"{source / folder}: folder is not one of the model's classes ({', '.join(names[:5])}, ...)")
        for p in sorted(q for q in (source / folder).rglob("*") if q.is_file() and is_image_file(q)):
            paths.append(p)
            labels.append(index[folder])
    if not paths:
        raise DataError(f"{source}: no images found")
    return paths, labels, names


def _read_list_file(path: Path, classes: Sequence[str] | None) -> tuple[list[Path], list[int], list[str]]:
    paths, labels = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rel, _, label = line.strip().rpartition(" ")
        if not rel:  # a bare path: unlabelled (fine for calibration)
            rel, label = label, "-1"
        try:
            labels.append(int(label))
        except ValueError:
            raise DataError(f"{path}:{n}: expected 'relative/path.jpg LABEL', got {line.strip()!r}") from None
        paths.append(path.parent / rel.strip())
    if not paths:
        raise DataError(f"{path}: list file names no images")
    n_cls = max(labels) + 1
    names = list(classes) if classes is not None else [str(i) for i in range(n_cls)]
    if n_cls > len(names):
        raise DataError(f"{path}: label {n_cls - 1} outside the model's {len(names)} classes")
    return paths, labels, names


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
