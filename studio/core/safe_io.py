"""Safe file I/O shared by the studio's file formats.

* :func:`atomic_write` — a file is either the old one or the complete new one, never half written.
* :func:`load_npz` — arrays from an ``.npz`` with no pickle, refusing archives whose declared
  uncompressed size is above a limit before anything is decompressed.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask is process-wide and not thread-safe to probe


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a saved file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def load_npz(source: str | Path | bytes, max_bytes: int) -> dict[str, np.ndarray]:
    """All arrays of an npz (a path or its bytes). Raises ValueError for a damaged archive, an
    object (pickled) array, or more than ``max_bytes`` of declared array data."""
    data = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with zipfile.ZipFile(data) as archive:
            total = sum(info.file_size for info in archive.infolist())
        if total > max_bytes:
            raise ValueError(f"holds {total} bytes of arrays, above the limit of {max_bytes}")
        if isinstance(data, io.BytesIO):
            data.seek(0)
        with np.load(data, allow_pickle=False) as z:
            return {key: z[key] for key in z.files}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:  # zlib: a corrupt deflate stream
        raise ValueError(f"not a valid npz archive ({exc})") from None
