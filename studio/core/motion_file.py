"""The motion file: the stable format other tools (and our own evaluation) read.

Keys, in JSON and NPZ alike:

=======================  ===========================================================================
``format``               ``"studio-motion"``
``version``              ``1``
``fps``                  frames per second (float)
``channels``             the 74 channel names (:data:`studio.core.motion.CHANNELS`), in column order
``values``               (T, 74) float32 motion
``keypoint_names``       the 21 keypoint names
``canonical_keypoints``  (21, 3) the identity's canonical keypoints, or the documented mean face
``keypoints``            (T, 21, 3) final keypoints per frame, ``x = s·(c·R + δ) + t``
=======================  ===========================================================================

CSV holds the same motion as a table: ``#`` comment lines carry ``format``, ``version``, ``fps``,
``keypoint_names`` and ``canonical_keypoints`` as JSON; then a header ``frame,time,<74 channels>``
and one row per frame. It omits ``keypoints`` (they follow from the rest). Floats are written with
the exact decimal of each float32 value, so every round trip is bit-exact.

Readers accept channels in any order and fill channels missing from older files with the neutral
value; unknown channels, wrong shapes, non-finite numbers and other formats are refused with an
error that names the file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.safe_io import atomic_write, load_npz
from studio.core.keypoints import KEYPOINT_NAMES, MEAN_FACE, NUM_KEYPOINTS
from studio.core.motion import CHANNEL_INDEX, CHANNELS, NEUTRAL_FRAME, keypoints, validate_motion

FORMAT = "studio-motion"
VERSION = 1
FORMATS = ("json", "npz", "csv")
#: Refuse files (or NPZ contents) larger than this before parsing (10 h at 60 fps is ~300 MB of JSON).
MAX_FILE_BYTES = 2 << 30


class MotionFileError(ValueError):
    """A motion file cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True, eq=False)
class Motion:
    """A motion track with its frame rate and identity."""

    values: np.ndarray
    fps: float
    canonical_keypoints: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "values", validate_motion(self.values))
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        object.__setattr__(self, "fps", float(self.fps))
        c = MEAN_FACE if self.canonical_keypoints is None else np.asarray(self.canonical_keypoints, dtype=np.float64)
        if c.shape != (NUM_KEYPOINTS, 3) or not np.all(np.isfinite(c)):
            raise ValueError(f"canonical keypoints must be finite with shape ({NUM_KEYPOINTS}, 3), got {c.shape}")
        object.__setattr__(self, "canonical_keypoints", c)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def keypoints(self) -> np.ndarray:
        return keypoints(self.values, self.canonical_keypoints)


def format_of(path: str | Path, fmt: str | None = None) -> str:
    fmt = (fmt or Path(path).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise MotionFileError(f"{path}: unknown motion file format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


# --- writing ------------------------------------------------------------------------------------

def write_motion(motion: Motion, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``motion`` atomically as JSON, NPZ or CSV (chosen by ``fmt`` or the file extension)."""
    path = Path(path)
    fmt = format_of(path, fmt)
    header = {"format": FORMAT, "version": VERSION, "fps": motion.fps}
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez_compressed(
            buf, format=np.array(FORMAT), version=np.array(VERSION), fps=np.array(motion.fps),
            channels=np.array(CHANNELS), values=motion.values, keypoint_names=np.array(KEYPOINT_NAMES),
            canonical_keypoints=motion.canonical_keypoints, keypoints=motion.keypoints)
        data = buf.getvalue()
    elif fmt == "json":
        doc = dict(header, channels=list(CHANNELS), values=_floats(motion.values),
                   keypoint_names=list(KEYPOINT_NAMES), canonical_keypoints=motion.canonical_keypoints.tolist(),
                   keypoints=_floats(motion.keypoints))
        data = json.dumps(doc, separators=(",", ":")).encode()
    else:
        out = io.StringIO()
        for key, value in (("format", FORMAT), ("version", VERSION), ("fps", motion.fps),
                           ("keypoint_names", list(KEYPOINT_NAMES)),
                           ("canonical_keypoints", motion.canonical_keypoints.tolist())):
            out.write(f"# {key}={json.dumps(value, separators=(',', ':'))}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("frame", "time") + CHANNELS)
        times = np.arange(len(motion)) / motion.fps
        for i, row in enumerate(_floats(motion.values)):
            writer.writerow([i, repr(float(times[i]))] + row)
        data = out.getvalue().encode()
    atomic_write(path, data)
    return path


def _floats(a: np.ndarray) -> list:
    """float32 array → nested lists of the exact float64 values (their repr reads back bit-exact)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64).tolist()


# --- reading ------------------------------------------------------------------------------------

def read_motion(path: str | Path, fmt: str | None = None) -> Motion:
    path = Path(path)
    fmt = format_of(path, fmt)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise MotionFileError(f"{path}: cannot read motion file: {exc.strerror or exc}") from None
    if size > MAX_FILE_BYTES:
        raise MotionFileError(f"{path}: motion file is {size / 2**30:.1f} GiB, above the 2 GiB limit")
    try:
        if fmt == "npz":
            fields = _read_npz(path)
        elif fmt == "json":
            fields = _read_json(path)
        else:
            fields = _read_csv(path)
        return _to_motion(fields)
    except MotionFileError as exc:
        raise MotionFileError(f"{path}: {exc}") from None
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile, EOFError, UnicodeDecodeError,
            csv.Error) as exc:
        raise MotionFileError(f"{path}: not a valid {fmt.upper()} motion file: {exc}") from None


def _read_npz(path: Path) -> dict:
    fields = load_npz(path, MAX_FILE_BYTES)
    out = {}
    for key, value in fields.items():
        out[key] = value.item() if value.ndim == 0 else value
    for key in ("channels", "keypoint_names"):
        if key in out:
            out[key] = [str(x) for x in out[key]]
    return out


def _read_json(path: Path) -> dict:
    with open(path, "rb") as f:
        doc = json.loads(f.read())
    if not isinstance(doc, dict):
        raise ValueError("top level is not an object")
    if "values" in doc:
        doc["values"] = np.array(doc["values"], dtype=np.float64)
    return doc


def _read_csv(path: Path) -> dict:
    meta: dict = {}
    with open(path, newline="", encoding="utf-8") as f:
        lines = f.read().splitlines()
    body_start = 0
    for body_start, line in enumerate(lines):
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].strip().partition("=")
        if not sep:
            raise ValueError(f"comment line {body_start + 1} is not key=value")
        meta[key.strip()] = json.loads(value)
    rows = list(csv.reader(lines[body_start:]))
    if not rows:
        raise ValueError("no header row")
    header, rows = rows[0], rows[1:]
    if header[:2] != ["frame", "time"]:
        raise ValueError("header must start with frame,time")
    meta["channels"] = header[2:]
    width = len(header)
    for n, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {n + 1} has {len(row)} fields, the header {width}")
    meta["values"] = np.array([[float(x) for x in row[2:]] for row in rows], dtype=np.float64).reshape(-1, width - 2)
    return meta


def _to_motion(fields: dict) -> Motion:
    if fields.get("format") != FORMAT:
        raise ValueError(f"format is {fields.get('format')!r}, expected {FORMAT!r}")
    version = fields.get("version")
    if not isinstance(version, (int, np.integer)) or isinstance(version, bool):
        raise ValueError(f"version must be an integer, got {version!r}")
    if version > VERSION:
        raise MotionFileError(f"written by a newer Talking Head Studio (motion format version {version}; "
                              f"this one reads up to {VERSION})")
    fps = fields.get("fps")
    if not isinstance(fps, (int, float, np.number)) or isinstance(fps, bool):
        raise ValueError(f"fps must be a number, got {fps!r}")
    channels = list(fields.get("channels", []))
    unknown = [c for c in channels if c not in CHANNEL_INDEX]
    if unknown:
        raise ValueError(f"unknown channels {unknown[:5]}")
    if len(set(channels)) != len(channels):
        raise ValueError("duplicate channel names")
    values = np.asarray(fields.get("values"), dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(channels):
        raise ValueError(f"values must be (frames, {len(channels)}) to match the channels, got {values.shape}")
    full = np.tile(NEUTRAL_FRAME.astype(np.float64), (len(values), 1))
    full[:, [CHANNEL_INDEX[c] for c in channels]] = values
    names = fields.get("keypoint_names")
    if names is not None and list(names) != list(KEYPOINT_NAMES):
        raise ValueError("keypoint_names differ from this version's 21 keypoints")
    canonical = fields.get("canonical_keypoints")
    return Motion(full.astype(np.float32), float(fps), None if canonical is None else np.asarray(canonical, dtype=np.float64))

