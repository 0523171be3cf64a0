"""Files that ship inside the package (so commands run outside a checkout).

- ``000000000785.jpg`` / ``.json``: one COCO val2017 image (Flickr, CC BY 2.0,
  http://farm8.staticflickr.com/7015/6795644157_f019453ae7_z.jpg) with its COCO keypoint
  annotation (CC BY 4.0, COCO Consortium): the default input of commands that need an image.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS", "sample_annotations", "sample_image"]

ASSETS = Path(__file__).resolve().parent


def sample_image() -> Path:
    """The bundled sample photo (640x425, one person)."""
    return ASSETS / "000000000785.jpg"


def sample_annotations() -> Path:
    """COCO keypoint annotations of :func:`sample_image` (the file sits beside it)."""
    return ASSETS / "000000000785.json"
