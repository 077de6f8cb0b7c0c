"""Reading one image robustly: any failure becomes a DataError naming the file."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from leannet.errors import DataError


def load_image(path: str | Path, mode: str = "RGB") -> Image.Image:
    """Decode `path` fully (so truncation is caught here, not mid-transform) and convert to
    `mode`; grayscale and palette images become RGB."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return im.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise DataError(f"{path}: unreadable image ({reason})") from None
