"""2D image files (PNG/JPG/TIFF/BMP): pixels, masks and cheap header reads, with one-line errors."""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ssinfnet.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# PIL mode -> modality understood by ssinfnet.data.intensity.to_unit_range.
_MODE_MODALITY = {
    "L": "8bit",
    "1": "8bit",
    "LA": "8bit",
    "P": "rgb",
    "RGB": "rgb",
    "RGBA": "rgba",
    "CMYK": "rgb",
    "YCbCr": "rgb",
    "I;16": "16bit",
    "I;16B": "16bit",
    "I;16L": "16bit",
    "I": "16bit",
    "F": "float",
}


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_header(path: str | Path) -> tuple[tuple[int, int], str]:
    """((rows, cols), PIL mode) without decoding the pixels: fast enough for thousands of files."""
    with _open(path) as image:
        return (image.height, image.width), image.mode


def read_image_2d(path: str | Path) -> tuple[np.ndarray, str]:
    """Pixels as stored plus their modality (see :mod:`ssinfnet.data.intensity`).

    Returns (rows, cols) for grey images, (rows, cols, 3|4) for colour ones.
    """
    with _open(path) as image:
        mode = image.mode
        modality = _MODE_MODALITY.get(mode)
        if modality is None:
            raise InputError(f"unsupported image mode {mode!r}", path)
        if mode in ("P", "CMYK", "YCbCr"):
            image = image.convert("RGB")
        elif mode == "LA":
            image = image.getchannel("L")
        elif mode == "1":
            image = image.convert("L")
        array = _decode(image, path)
    if mode.startswith("I;16") or mode == "I":
        array = array.astype(np.int32)
    return array, modality


def read_mask_2d(path: str | Path) -> np.ndarray:
    """Label mask as int64 0 background / 1 GGO / 2 consolidation.

    Accepted encodings: values 0/1/2 (multi-class GT, also palette PNGs whose indices are the labels),
    and 0/255 (binary infection masks, mapped to 0/1). Anything else is refused rather than
    guessed, e.g. a JPEG mask whose compression smeared the label values.
    """
    with _open(path) as image:
        if image.mode in ("RGB", "RGBA"):
            rgb = _decode(image, path)[..., :3]
            if not (np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 0] == rgb[..., 2])):
                raise InputError("colour mask: expected grey label values 0/1/2 or 0/255", path)
            array = rgb[..., 0]
        elif image.mode == "1":
            array = _decode(image, path).astype(np.uint8)
        else:
            array = _decode(image, path)
    if array.ndim != 2:
        raise InputError(f"mask has shape {array.shape}; expected a 2D label image", path)
    return labels_from_values(array, path)


def labels_from_values(array: np.ndarray, path: str | Path) -> np.ndarray:
    """Map stored label values to 0/1/2 (see :func:`read_mask_2d`); refuse anything else."""
    values = set(np.unique(array).tolist())
    if values <= {0, 1, 2}:
        return array.astype(np.int64)
    if values <= {0, 255}:
        return (array == 255).astype(np.int64)
    shown = sorted(values)[:8]
    raise InputError(f"unexpected label values {shown}{'...' if len(values) > 8 else ''}; "
                     "expected 0/1/2 (background/GGO/consolidation) or 0/255 (binary)", path)


def _open(path: str | Path) -> Image.Image:
    """Open an image file lazily, turning every way it can fail into an InputError."""
    path = Path(path)
    check_readable_file(path)
    try:
        with warnings.catch_warnings():  # PIL only warns below twice its limit: refuse those too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"header claims more than {Image.MAX_IMAGE_PIXELS:,} pixels; refused as a broken "
                         "header or decompression bomb", path) from None
    except UnidentifiedImageError:
        if _is_zero_size_png(path):
            raise InputError("zero-size image (0 pixels wide or high)", path) from None
        raise InputError("not an image file PIL can read (PNG/JPG/TIFF/BMP)", path) from None
    except OSError as err:
        raise InputError(f"cannot read image: {err}", path) from None
    if getattr(image, "n_frames", 1) > 1:
        frames = image.n_frames
        image.close()
        raise InputError(f"image has {frames} frames; expected a single 2D slice", path)
    return image


def _is_zero_size_png(path: Path) -> bool:
    """PIL refuses 0-pixel images as 'unidentified'; PNG headers let us say what is really wrong."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    return (len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
            and 0 in struct.unpack(">II", head[16:24]))


def _decode(image: Image.Image, path: str | Path) -> np.ndarray:
    try:
        return np.asarray(image)
    except (OSError, SyntaxError, ValueError) as err:  # PIL reports truncation as OSError
        raise InputError(f"corrupt or truncated image: {err}", path) from None


def require_dir(path: Path) -> None:
    """Refuse a missing path or a file where a folder is expected, with a one-line reason."""
    if not path.exists():
        raise InputError("folder not found", path)
    if not path.is_dir():
        raise InputError("is a file; expected a folder", path)


def check_readable_file(path: Path) -> None:
    """Refuse missing paths, folders, unreadable and empty files with a one-line reason."""
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a folder; expected a file", path)
    if not os.access(path, os.R_OK):
        raise InputError("cannot read: permission denied", path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path)
