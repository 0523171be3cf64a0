"""Reading images and annotation files with errors that name the file and the problem."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fusepose.errors import DataError
from fusepose.files import read_json
from fusepose.limits import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

__all__ = ["check_image_limits", "decode_image", "image_header_size", "read_image", "read_json"]

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = b"\xff\xda"
_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def read_image(path: str | Path, apply_exif: bool = False) -> np.ndarray:
    """Read an image as OpenCV BGR ``uint8 (H, W, 3)`` (grey images are expanded to 3 channels).

    ``apply_exif``: rotate the pixels as the file's EXIF Orientation tag says (what a photo
    viewer shows; the Predictor does this for users' photos). Off by default: COCO-style
    annotations are in the frame of the stored pixels, as the official code reads them
    (``cv2.IMREAD_IGNORE_ORIENTATION``), so datasets and evaluation must ignore the tag.

    Raises :class:`DataError` naming the file when it is missing, empty (0 bytes), not a
    decodable image (e.g. a text file named ``.jpg``), truncated (a JPEG without its end
    marker, a PNG without ``IEND``; OpenCV would otherwise return a half-grey image with only a
    warning) or decodes to an empty array.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an image file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read image file ({e.strerror or e})") from None
    return decode_image(data, str(path), apply_exif)


def image_header_size(data: bytes, name: str = "<bytes>") -> tuple[int, int, str] | None:
    """``(width, height, format)`` read from an encoded image's header (Pillow parses the
    header only; no pixel is decoded), or None when Pillow does not know the format.
    DataError when the header declares a decompression bomb."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return int(im.size[0]), int(im.size[1]), str(im.format)
    except Image.DecompressionBombError as e:
        raise DataError(f"{name}: image too large ({e})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def check_image_limits(
    width: int,
    height: int,
    name: str,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_side: int = MAX_IMAGE_SIDE,
) -> None:
    """DataError naming ``name`` when an image of ``width x height`` is over ``max_pixels``
    pixels or ``max_side`` on a side (the limits the server and the command line share,
    :mod:`fusepose.limits`)."""
    if width > max_side or height > max_side or width * height > max_pixels:
        raise DataError(f"{name}: image of {width}x{height} pixels: the limit is {max_pixels} "
                        f"pixels and {max_side} per side")  # fmt: skip


def decode_image(
    data: bytes,
    name: str = "<bytes>",
    apply_exif: bool = False,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_side: int = MAX_IMAGE_SIDE,
) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, ...) held in memory, as :func:`read_image` does a
    file: BGR ``uint8 (H, W, 3)``; :class:`DataError` naming ``name`` when it is empty, not an
    image, truncated, decodes to nothing, or is larger than ``max_pixels`` / ``max_side``
    (checked from the header before decoding where the format allows, else after)."""
    if len(data) == 0:
        raise DataError(f"{name}: empty image file (0 bytes)")
    header = image_header_size(data, name)
    if header is not None:
        check_image_limits(header[0], header[1], name, max_pixels, max_side)
    if data.startswith(_JPEG_SOI):
        # A complete JPEG has an end-of-image marker after its last start-of-scan. Searching
        # from the last SOS tolerates trailing bytes some cameras append after EOI and ignores
        # the EOI of an embedded EXIF thumbnail (which precedes the main image's scans).
        last_sos = data.rfind(_JPEG_SOS)
        if last_sos < 0 or data.find(_JPEG_EOI, last_sos) < 0:
            raise DataError(f"{name}: truncated JPEG (no end-of-image marker); file is corrupt")
    elif data.startswith(_PNG_SIG) and b"IEND" not in data[-64:]:
        raise DataError(f"{name}: truncated PNG (no IEND chunk); file is corrupt")
    flags = cv2.IMREAD_COLOR if apply_exif else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if img is None:
        head = data[:16]
        kind = "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "binary"
        raise DataError(
            f"{name}: not a decodable image ({kind} content, {len(data)} bytes; "
            "unknown format or corrupt)"
        )
    if img.size == 0 or img.shape[0] == 0 or img.shape[1] == 0:
        raise DataError(f"{name}: image decodes to an empty array (shape {img.shape})")
    check_image_limits(img.shape[1], img.shape[0], name, max_pixels, max_side)
    return img
