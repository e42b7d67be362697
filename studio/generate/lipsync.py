"""Lip-sync metrics: how well a motion track's mouth follows reference phone timings.

All metrics read the inner-lip opening of a motion track (:func:`studio.generate.rig.mouth_gap`,
face units, IOD = 1) sampled at its frame rate, frame k at time k / fps.

* **Bilabial closure recall** — the share of reference p/b/m phones during which the lips close:
  some frame whose time lies within the phone's span, widened by half a frame on each side (a
  phone shorter than a frame still owns the frame nearest it), has an opening ≤
  :data:`CLOSED_GAP`.
* **False-closure rate** — the share of reference open vowels (:data:`~studio.audio.phones.OPEN_VOWELS`)
  at least 60 ms long during which the lips are closed on a frame in the vowel's central half
  (the frame nearest the vowel's midpoint when no frame falls in it).
* **Mouth-open correlation** — Pearson's r between the opening of the track under test and that
  of the reference rig driven by the true phones.
* **Audio-visual lag** — the shift (ms) that maximizes the cross-correlation of the two openings
  within ±:data:`MAX_LAG` seconds, refined to sub-frame precision with a parabola through the peak;
  positive when the track under test is late.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from studio.audio.phones import BILABIALS, OPEN_VOWELS, Phone

#: Lips count as closed when the inner-lip opening is at most this (face units, ≈ 1.3 mm).
CLOSED_GAP = 0.02
#: Open vowels shorter than this are not judged (a 40 ms vowel between two m's may close).
MIN_VOWEL = 0.06
#: The lag search window (s).
MAX_LAG = 0.2


@dataclass(frozen=True)
class ClosureCounts:
    bilabials: int
    closed_bilabials: int
    open_vowels: int
    closed_vowels: int

    @property
    def recall(self) -> float:
        return self.closed_bilabials / self.bilabials if self.bilabials else float("nan")

    @property
    def false_rate(self) -> float:
        return self.closed_vowels / self.open_vowels if self.open_vowels else float("nan")

    def __add__(self, other: "ClosureCounts") -> "ClosureCounts":
        return ClosureCounts(self.bilabials + other.bilabials, self.closed_bilabials + other.closed_bilabials,
                             self.open_vowels + other.open_vowels, self.closed_vowels + other.closed_vowels)


def phone_frames(phone: Phone, num_frames: int, fps: float) -> range | list[int]:
    """The frames (of ``num_frames`` at ``fps``) within half a frame of ``phone``'s span — the frames
    a p/b/m may close in — or, when none is, the one nearest its middle."""
    half = 0.5 / fps
    lo = max(0, int(np.ceil((phone.start - half) * fps - 1e-9)))
    hi = min(num_frames - 1, int(np.floor((phone.end + half) * fps + 1e-9)))
    if lo <= hi:
        return range(lo, hi + 1)
    return [min(num_frames - 1, max(0, int(round(0.5 * (phone.start + phone.end) * fps))))]


def closure_counts(gap: np.ndarray, fps: float, reference: Sequence[Phone]) -> ClosureCounts:
    """Count closed bilabials and falsely closed open vowels of ``reference`` in ``gap`` (T,)."""
    gap = np.asarray(gap, dtype=np.float64)
    n = gap.size
    closed = gap <= CLOSED_GAP
    bil = bil_closed = vow = vow_closed = 0
    for p in reference:
        if p.label in BILABIALS:
            bil += 1
            bil_closed += bool(any(closed[f] for f in phone_frames(p, n, fps)))
        elif p.label in OPEN_VOWELS and p.duration >= MIN_VOWEL:
            q = 0.25 * p.duration
            lo = max(0, int(np.ceil((p.start + q) * fps - 1e-9)))
            hi = min(n - 1, int(np.floor((p.end - q) * fps + 1e-9)))
            frames = range(lo, hi + 1) if lo <= hi else [min(n - 1, int(round(0.5 * (p.start + p.end) * fps)))]
            vow += 1
            vow_closed += bool(any(closed[f] for f in frames))
    return ClosureCounts(bil, bil_closed, vow, vow_closed)


def mouth_correlation(gap: np.ndarray, reference_gap: np.ndarray) -> float:
    """Pearson's r of two openings of equal length (NaN when either is constant)."""
    a = np.asarray(gap, dtype=np.float64)
    b = np.asarray(reference_gap, dtype=np.float64)
    n = min(a.size, b.size)
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def lag_ms(gap: np.ndarray, reference_gap: np.ndarray, fps: float, max_lag: float = MAX_LAG) -> float:
    """Lag (ms) of ``gap`` behind ``reference_gap`` at the cross-correlation peak (sub-frame)."""
    a = np.asarray(gap, dtype=np.float64)
    b = np.asarray(reference_gap, dtype=np.float64)
    n = min(a.size, b.size)
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    k = max(1, int(round(max_lag * fps)))
    lags = np.arange(-k, k + 1)
    xc = np.array([np.dot(a[max(0, L):n + min(0, L)], b[max(0, -L):n - max(0, L)]) for L in lags])
    if not np.any(xc > 0):
        return float("nan")
    i = int(np.argmax(xc))
    shift = float(lags[i])
    if 0 < i < len(xc) - 1:
        y0, y1, y2 = xc[i - 1], xc[i], xc[i + 1]
        curvature = y0 - 2 * y1 + y2
        if curvature < 0:
            shift += 0.5 * (y0 - y2) / curvature
    return 1000.0 * shift / fps
