"""Where a generator closes the lips and the rig does not: right (a reference p/b/m) or not.

The neural model closes more p/b/m than the rig, on synthesized and on recorded speech, because it
hears closures the recognizer missed. Whether that hearing can be trusted decides whether its
extra closures help the mouth or hurt it. This tool generates each item of an eval corpus twice
without its transcript — the neural model and the rig, on the same recognized phones — and counts
the *extra closures*: runs of frames in which the neural mouth is closed during speech while the
rig's stays open. An extra closure is *right* when the reference rig (true phones) also closes in
it, else *invented*; the phones the reference has there are listed for the invented ones::

    python tools/closure_events.py /tmp/devcorpus/manifest.json --split heldout
    python tools/closure_events.py /tmp/real/manifest.json

It also reports two mouths built from the pair, to bound what any mix of the two could reach on
the corpus: the neural mouth with every invented closure replaced by the rig's (an oracle: it needs
the reference), and the mouth blended with the rig's, ``(1 − w)·neural + w·rig``, for a few ``w``.
Scores as ``studio eval lipsync`` (25 fps; closure recall, false closures, mean mouth-open r).

Last, *where* each mouth closes: the share of the reference's p/b/m, of its other stops (t/d/k/g)
and of its other nasals (n/ng) during which it is closed (at least one frame, counted over the
phone's span and half a frame either side, as closure recall counts a p/b/m). A mouth that hears
the place of articulation closes for the first class and rarely for the other two; one that hears
only "a closure" closes for all three alike.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from studio.audio.decode import load_audio
from studio.generate.evaluate import items_from_manifest
from studio.generate.lipsync import (
    CLOSED_GAP,
    ClosureCounts,
    closure_counts,
    mouth_correlation,
    phone_frames,
)
from studio.generate.neural.model import LOSS_GROUPS
from studio.generate.pipeline import GenerateRequest, generate, phones_motion
from studio.generate.rig import mouth_gap

FPS = 25.0
MARGIN = 3  # frames of the rig's mouth around an invented closure the oracle puts back
MOUTH = list(LOSS_GROUPS["mouth"])


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def extra_closures(neural: np.ndarray, rig: np.ndarray, reference: np.ndarray,
                   speech: np.ndarray) -> list[tuple[int, int, bool]]:
    """``(start, end, right)`` of each run in which ``neural`` closes during ``speech`` and ``rig``
    does not; ``right`` when ``reference`` closes within it."""
    closed = [mouth_gap(m) <= CLOSED_GAP for m in (neural, rig, reference)]
    return [(a, b, bool(closed[2][a:b].any())) for a, b in runs(closed[0])
            if speech[a:b].any() and not closed[1][a:b].any()]


#: The reference phone classes the last table counts closures in.
PHONE_CLASSES = {"p/b/m": ("P", "B", "M"), "t/d/k/g": ("T", "D", "K", "G"), "n/ng": ("N", "NG")}


def closed_by_class(gap: np.ndarray, phones: Sequence, fps: float = FPS) -> dict[str, tuple[int, int]]:
    """``class → (phones, phones during which gap is closed)`` for :data:`PHONE_CLASSES`; a phone's
    frames are :func:`~studio.generate.lipsync.phone_frames`, those closure recall counts a p/b/m in."""
    closed = np.asarray(gap) <= CLOSED_GAP
    out = {}
    for name, labels in PHONE_CLASSES.items():
        spans = [p for p in phones if p.label in labels] if len(closed) else []
        out[name] = (len(spans), sum(bool(closed[list(phone_frames(p, len(closed), fps))].any()) for p in spans))
    return out


def score(items: Sequence[dict], mouth: Callable[[dict], np.ndarray]) -> tuple[float, float, float]:
    counts, correlations = ClosureCounts(0, 0, 0, 0), []
    for item in items:
        gap = mouth_gap(mouth(item))
        counts = counts + closure_counts(gap, FPS, item["phones"])
        correlations.append(mouth_correlation(gap, mouth_gap(item["reference"])))
    return counts.recall, counts.false_rate, float(np.nanmean(correlations))


def without_invented(item: dict) -> np.ndarray:
    out = item["neural"].copy()
    for a, b, right in item["extra"]:
        if not right:
            lo, hi = max(0, a - MARGIN), min(len(out), b + MARGIN)
            out[lo:hi, MOUTH] = item["rig"][lo:hi, MOUTH]
    return out


def blended(w: float) -> Callable[[dict], np.ndarray]:
    def mouth(item: dict) -> np.ndarray:
        out = item["neural"].copy()
        out[:, MOUTH] = (1.0 - w) * item["neural"][:, MOUTH] + w * item["rig"][:, MOUTH]
        return out
    return mouth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="an eval corpus's manifest.json")
    parser.add_argument("--split", help="only items of this split")
    parser.add_argument("--model", type=Path, help="the neural checkpoint (default: the shipped one)")
    args = parser.parse_args(argv)
    items = []
    for entry in items_from_manifest(args.manifest, split=args.split):
        audio = load_audio(entry.audio, require_sound=True)
        made = {generator: generate(GenerateRequest(audio, language=entry.language, fps=FPS, generator=generator,
                                                    model=args.model if generator == "neural" else None))
                for generator in ("neural", "rig")}
        features = made["neural"].features
        reference = phones_motion(list(entry.reference), audio.duration, FPS, features=features)
        frames = len(reference)
        times = np.arange(frames) / FPS
        speech = np.zeros(frames, bool)
        for phone in entry.reference:
            if phone.label != "SIL":
                speech |= (times >= phone.start - 0.5 / FPS) & (times < phone.end + 0.5 / FPS)
        item = {"name": entry.name, "phones": list(entry.reference), "reference": reference,
                "neural": made["neural"].motion.values[:frames], "rig": made["rig"].motion.values[:frames]}
        item["extra"] = extra_closures(item["neural"], item["rig"], reference, speech)
        items.append(item)
        print(f"{entry.name}: {sum(r for *_, r in item['extra'])} right, "
              f"{sum(not r for *_, r in item['extra'])} invented extra closures", file=sys.stderr, flush=True)
    right = sum(r for item in items for *_, r in item["extra"])
    invented = Counter()
    for item in items:
        for a, b, r in item["extra"]:
            if not r:
                t0, t1 = a / FPS - 0.02, b / FPS + 0.02
                invented[" ".join(p.label for p in item["phones"] if p.end > t0 and p.start < t1)] += 1
    total = right + sum(invented.values())
    print(f"{len(items)} items; extra closures (neural closed, rig open, during speech): {total}, "
          f"right {right}, invented {total - right}" + (f" (precision {right / total:.2f})" if total else ""))
    if invented:
        print("invented, at the reference phones:", ", ".join(f"{k} ×{n}" if n > 1 else k
                                                             for k, n in invented.most_common(12)))
    rows = [("neural", lambda item: item["neural"]), ("rig", lambda item: item["rig"]),
            ("neural, invented closures → rig (oracle)", without_invented)]
    rows += [(f"blend, rig weight {w:g}", blended(w)) for w in (0.25, 0.5, 0.75)]
    print(f"{'mouth':42s} {'recall':>7s} {'false':>7s} {'r':>7s}")
    for name, mouth in rows:
        recall, false_rate, r = score(items, mouth)
        print(f"{name:42s} {recall:7.3f} {false_rate:7.3f} {r:7.3f}")
    print("closed during the reference's phones: " + ", ".join(PHONE_CLASSES))
    for name in ("neural", "rig", "reference"):
        sums = {c: [0, 0] for c in PHONE_CLASSES}
        for item in items:
            for c, (total, hits) in closed_by_class(mouth_gap(item[name]), item["phones"]).items():
                sums[c][0] += total
                sums[c][1] += hits
        print(f"{name:10s} " + "  ".join(f"{c} {h}/{t} ({h / t:.2f})" if t else f"{c} 0/0" for c, (t, h) in sums.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
