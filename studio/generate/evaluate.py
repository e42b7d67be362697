"""``studio eval lipsync``: generate from audio and score the lips against reference phone timings.

For each item (an audio file, its reference phones and optionally its transcript) the real
generation path (:func:`studio.generate.pipeline.generate`) runs — with the transcript (forced
alignment) or without it (recognition) — and the metrics of :mod:`studio.generate.lipsync` compare
its mouth with the reference phones and with the *reference rig*: the same rig, same seed and
features, driven by the true phones.

* Closure recall and false closures are counted at the output frame rate (25 fps by default, the
  hardest common case) and pooled over all items (micro averages).
* Mouth-open correlation is computed per item at the output rate; the mean is reported.
* The lag is measured per item on 100 fps tracks (the rig samples any rate) with sub-frame peak
  interpolation; the median over items is reported, and the pooled cross-correlation lag too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from studio.audio.decode import load_audio
from studio.audio.phones import Phone
from studio.generate.lipsync import ClosureCounts, closure_counts, lag_ms, mouth_correlation
from studio.generate.pipeline import GenerateRequest, generate, phones_motion
from studio.generate.rig import mouth_gap

LAG_FPS = 100.0


@dataclass(frozen=True)
class EvalItem:
    audio: Path
    reference: tuple[Phone, ...]
    transcript: str | None = None
    language: str = "en-us"
    name: str = ""


@dataclass(frozen=True)
class ItemScore:
    name: str
    duration: float
    method: str
    counts: ClosureCounts
    correlation: float
    lag_ms: float
    seconds: float
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class LipsyncReport:
    with_transcript: bool
    fps: float
    items: tuple[ItemScore, ...]

    @property
    def counts(self) -> ClosureCounts:
        total = ClosureCounts(0, 0, 0, 0)
        for item in self.items:
            total = total + item.counts
        return total

    def summary(self) -> dict:
        counts = self.counts
        lags = np.array([i.lag_ms for i in self.items if np.isfinite(i.lag_ms)])
        corr = np.array([i.correlation for i in self.items if np.isfinite(i.correlation)])
        audio = sum(i.duration for i in self.items)
        wall = sum(i.seconds for i in self.items)
        return {
            "items": len(self.items),
            "with_transcript": self.with_transcript,
            "fps": self.fps,
            "bilabials": counts.bilabials,
            "closure_recall": counts.recall,
            "open_vowels": counts.open_vowels,
            "false_closure_rate": counts.false_rate,
            "mouth_correlation_mean": float(corr.mean()) if corr.size else float("nan"),
            "lag_ms_median": float(np.median(lags)) if lags.size else float("nan"),
            "lag_ms_mean_abs": float(np.abs(lags).mean()) if lags.size else float("nan"),
            "fell_back_to_recognition": sum(1 for i in self.items if self.with_transcript and i.method != "aligned"),
            "audio_seconds": audio,
            "real_time_factor": wall / audio if audio else float("nan"),
        }

    def to_json(self) -> str:
        items = []
        for i in self.items:
            d = asdict(i)
            d["counts"] = asdict(i.counts)
            items.append(d)
        return json.dumps({"summary": self.summary(), "items": items}, indent=2, allow_nan=True)


def evaluate_item(item: EvalItem, *, with_transcript: bool, fps: float = 25.0, seed: int = 0,
                  generator: str = "rig", model: Path | None = None) -> ItemScore:
    """Generate for one item with ``generator`` (``"rig"`` or ``"neural"``, whose checkpoint is
    ``model``) and score it (see the module docstring)."""
    started = time.perf_counter()
    audio = load_audio(item.audio, require_sound=True)
    transcript = item.transcript if with_transcript else None
    result = generate(GenerateRequest(audio, transcript=transcript, language=item.language, fps=fps, seed=seed,
                                      generator=generator, model=model))
    features = result.features
    seconds = time.perf_counter() - started
    gap = mouth_gap(result.motion.values)
    reference = list(item.reference)
    ref_gap = mouth_gap(phones_motion(reference, audio.duration, fps, features=features, seed=seed))
    if generator == "rig":  # the rig can be driven at the lag's finer rate directly
        gap_hi = mouth_gap(phones_motion(result.phones, audio.duration, LAG_FPS, features=features, seed=seed))
    else:  # other generators: their own motion, interpolated onto the lag's grid
        fine = np.arange(round(audio.duration * LAG_FPS)) / LAG_FPS
        gap_hi = np.interp(fine, np.arange(len(gap)) / fps, gap)
    ref_hi = mouth_gap(phones_motion(reference, audio.duration, LAG_FPS, features=features, seed=seed))
    return ItemScore(
        name=item.name or item.audio.stem,
        duration=audio.duration,
        method=result.phone_method,
        counts=closure_counts(gap, fps, reference),
        correlation=mouth_correlation(gap, ref_gap),
        lag_ms=lag_ms(gap_hi, ref_hi, LAG_FPS),
        seconds=seconds,
        warnings=result.warnings,
    )


def evaluate_lipsync(items: Iterable[EvalItem], *, with_transcript: bool, fps: float = 25.0, seed: int = 0,
                     generator: str = "rig", model: Path | None = None,
                     progress: Callable[[int, ItemScore], None] | None = None) -> LipsyncReport:
    scores = []
    for i, item in enumerate(items):
        score = evaluate_item(item, with_transcript=with_transcript, fps=fps, seed=seed, generator=generator,
                              model=model)
        scores.append(score)
        if progress:
            progress(i, score)
    return LipsyncReport(with_transcript, fps, tuple(scores))


def format_summary(summary: dict) -> str:
    mode = "with transcript (forced alignment)" if summary["with_transcript"] else "without transcript (recognition)"
    return "\n".join([
        f"lip sync, {mode}: {summary['items']} items, {summary['audio_seconds']:.1f} s of audio at {summary['fps']:g} fps",
        f"  bilabial closure recall  {summary['closure_recall']:.3f}  ({summary['bilabials']} p/b/m)",
        f"  false closures           {100 * summary['false_closure_rate']:.2f} %  ({summary['open_vowels']} open vowels)",
        f"  mouth-open correlation   {summary['mouth_correlation_mean']:.3f}  (mean over items)",
        f"  audio-visual lag         {summary['lag_ms_median']:+.1f} ms median, {summary['lag_ms_mean_abs']:.1f} ms mean |lag|",
        f"  fell back to recognition {summary['fell_back_to_recognition']}",
        f"  real-time factor         {summary['real_time_factor']:.3f}",
    ])


def items_from_manifest(manifest: Path, *, split: str | None = None, limit: int | None = None) -> list[EvalItem]:
    """Items of a dev corpus built by :mod:`studio.generate.devcorpus`."""
    from studio.audio.reference import read_reference

    data = json.loads(Path(manifest).read_text(encoding="utf-8"))
    root = Path(manifest).parent
    items = []
    for entry in data["items"]:
        if split and entry.get("split") != split:
            continue
        transcript = (root / entry["transcript"]).read_text(encoding="utf-8").strip()
        items.append(EvalItem(root / entry["audio"], tuple(read_reference(root / entry["phones"])), transcript,
                              entry.get("language", "en-us"), entry.get("id", "")))
        if limit and len(items) >= limit:
            break
    return items


def single_item(audio: Path, reference: Path, transcript: str | None, language: str) -> list[EvalItem]:
    from studio.audio.reference import read_reference

    return [EvalItem(Path(audio), tuple(read_reference(reference)), transcript, language, Path(audio).stem)]


__all__: Sequence[str] = ("EvalItem", "ItemScore", "LipsyncReport", "evaluate_item", "evaluate_lipsync",
                          "format_summary", "items_from_manifest", "single_item")
