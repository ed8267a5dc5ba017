"""Still images: read, write (atomically), list a folder. Arrays are (H, W, 3) RGB."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rtderain import util
from rtderain.errors import MediaError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB ``(H, W, 3)``: uint8, or uint16 for 16-bit files.

    Grey images are expanded to 3 channels; alpha is dropped.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise MediaError(f"cannot read image {path}: {exc.strerror or exc}") from None
    img = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if img is None:
        raise MediaError(f"{path}: not a readable image")
    if img.dtype not in (np.uint8, np.uint16):
        raise MediaError(f"{path}: unsupported sample type {img.dtype}")
    return np.ascontiguousarray(img[..., ::-1])


def write_image(
    path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95, *, overwrite: bool = True
) -> None:
    """Write RGB ``(H, W, 3)`` uint8/uint16 to ``path`` (format from the suffix), atomically.

    ``overwrite=False``: never replace a file at ``path``, even one created meanwhile (the
    result is then kept beside it and the error says where; see ``util.finish_noreplace``).
    """
    path = Path(path)
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if path.suffix.lower() in {".jpg", ".jpeg"} else []
    )
    ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(rgb[..., ::-1]), params)
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
