"""Still images: read, write (atomically), list a folder. Arrays are (H, W, 3) RGB.

:func:`read_picture` and :func:`write_picture` keep what the network does not see: the
alpha channel (carried through untouched) and a grey file's single channel (de-rained as
RGB with the grey replicated, written back as grey).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from rtderain import util
from rtderain.errors import MediaError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
ALPHA_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".webp"})  # formats that keep alpha


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB ``(H, W, 3)``: uint8, or uint16 for 16-bit files.

    Grey images are expanded to 3 channels; alpha is left out (:func:`read_picture` has it).
    """
    return read_picture(path)[0]


def read_picture(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Read an image as ``(rgb, alpha, grey)``: RGB ``(H, W, 3)`` uint8/uint16 (grey
    replicated), the ``(H, W)`` alpha plane of the same dtype or None, and whether the
    file is grey."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise MediaError(f"cannot read image {path}: {exc.strerror or exc}") from None
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # channels as stored, EXIF ignored
    if raw is None:
        raise MediaError(f"{path}: not a readable image")
    alpha, grey = None, raw.ndim == 2
    if raw.ndim == 3 and raw.shape[2] == 4:
        bgr, alpha = raw[..., :3], np.ascontiguousarray(raw[..., 3])
    else:  # decoded again with the EXIF orientation applied, as before
        flags = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
        bgr = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | flags)
        if grey and bgr is not None:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    if bgr is None:
        raise MediaError(f"{path}: not a readable image")
    if bgr.dtype not in (np.uint8, np.uint16):
        raise MediaError(f"{path}: unsupported sample type {bgr.dtype}")
    return np.ascontiguousarray(bgr[..., ::-1]), alpha, grey


def write_image(
    path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95, *, overwrite: bool = True
) -> None:
    """Write RGB ``(H, W, 3)`` uint8/uint16 to ``path`` (format from the suffix), atomically.

    ``overwrite=False``: never replace a file at ``path``, even one created meanwhile (the
    result is then kept beside it and the error says where; see ``util.finish_noreplace``).
    """
    write_picture(path, rgb, jpeg_quality=jpeg_quality, overwrite=overwrite)


def write_picture(
    path: str | Path,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    grey: bool = False,
    *,
    jpeg_quality: int = 95,
    overwrite: bool = True,
) -> None:
    """:func:`write_image` with what :func:`read_picture` gave beside the RGB: ``alpha``
    (written as is where the format has alpha, else dropped with a warning) and ``grey``
    (written as one grey channel)."""
    path = Path(path)
    suffix = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in {".jpg", ".jpeg"} else []
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if alpha is not None and suffix not in ALPHA_SUFFIXES:
        log.warning("%s: a %s file has no alpha channel; the alpha is dropped", path, suffix)
        alpha = None
    if alpha is not None:
        pixels = np.dstack([cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
                                         cv2.COLOR_GRAY2BGR) if grey else bgr, alpha])
    elif grey:
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    else:
        pixels = bgr
    ok, buf = cv2.imencode(path.suffix, pixels, params)
    if not ok:
        raise MediaError(f"{path}: cannot encode an image of this type")
    data = buf.tobytes()
    util.atomic_write(path, lambda tmp: tmp.write_bytes(data), overwrite=overwrite)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; an empty folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MediaError(f"not a folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))
    if not files:
        raise MediaError(f"no images in folder {folder}")
    return files


def check_images(files: list[Path]) -> None:
    """Every file is an image OpenCV can decode (its header is read, not the pixels):
    a broken one is an error naming it, before any output is written."""
    for path in files:
        try:
            readable = cv2.haveImageReader(str(path))
        except cv2.error:
            readable = False
        if not readable:
            raise MediaError(f"{path}: not a readable image")
