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
    reference_counts: ClosureCounts = ClosureCounts(0, 0, 0, 0)  # the reference rig's own (true phones)


@dataclass(frozen=True)
class LipsyncReport:
    with_transcript: bool
    fps: float
    items: tuple[ItemScore, ...]

    @property
    def counts(self) -> ClosureCounts:
        return sum((item.counts for item in self.items), ClosureCounts(0, 0, 0, 0))

    @property
    def reference_counts(self) -> ClosureCounts:
        return sum((item.reference_counts for item in self.items), ClosureCounts(0, 0, 0, 0))

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
            "reference_closure_recall": self.reference_counts.recall if self.reference_counts.bilabials else float("nan"),
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
            d["reference_counts"] = asdict(i.reference_counts)
            items.append(d)
        return json.dumps({"summary": self.summary(), "items": items}, indent=2, allow_nan=True)


def evaluate_item(item: EvalItem, *, with_transcript: bool, fps: float = 25.0, seed: int = 0,
                  generator: str = "rig", model: Path | None = None, audio_trust: float | None = None) -> ItemScore:
    """Generate for one item with ``generator`` (``"rig"`` or ``"neural"``, whose checkpoint is
    ``model`` and sampling ``audio_trust``) and score it (see the module docstring)."""
    started = time.perf_counter()
    audio = load_audio(item.audio, require_sound=True)
    transcript = item.transcript if with_transcript else None
    result = generate(GenerateRequest(audio, transcript=transcript, language=item.language, fps=fps, seed=seed,
                                      generator=generator, model=model, audio_trust=audio_trust))
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
        reference_counts=closure_counts(ref_gap, fps, reference),
    )


def evaluate_lipsync(items: Iterable[EvalItem], *, with_transcript: bool, fps: float = 25.0, seed: int = 0,
                     generator: str = "rig", model: Path | None = None, audio_trust: float | None = None,
                     progress: Callable[[int, ItemScore], None] | None = None) -> LipsyncReport:
    scores = []
    for i, item in enumerate(items):
        score = evaluate_item(item, with_transcript=with_transcript, fps=fps, seed=seed, generator=generator,
                              model=model, audio_trust=audio_trust)
        scores.append(score)
        if progress:
            progress(i, score)
    return LipsyncReport(with_transcript, fps, tuple(scores))


def format_summary(summary: dict) -> str:
    mode = "with transcript (forced alignment)" if summary["with_transcript"] else "without transcript (recognition)"
    return "\n".join([
        f"lip sync, {mode}: {summary['items']} items, {summary['audio_seconds']:.1f} s of audio at {summary['fps']:g} fps",
        f"  bilabial closure recall  {summary['closure_recall']:.3f}  ({summary['bilabials']} p/b/m; the reference "
        f"rig on the true phones: {summary.get('reference_closure_recall', float('nan')):.3f})",
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


def write_recorded_item(out: Path, ident: str, source: Path, text: str, phones: Callable[..., Sequence[Phone]],
                        *, speaker: str, voice: str, reference: str) -> dict:
    """Add a recording to an eval corpus in ``out``: its audio as 16-bit WAV (decoded once more
    from there, so the reference is made on what the eval will read), ``phones(audio)`` as its
    reference, ``text`` as its transcript; the manifest entry (split ``dev``)."""
    import soundfile

    from studio.audio.reference import write_phones_json

    audio = load_audio(source, require_sound=True)
    soundfile.write(out / f"{ident}.wav", audio.samples, audio.sample_rate, subtype="PCM_16")
    audio = load_audio(out / f"{ident}.wav", require_sound=True)
    write_phones_json(phones(audio), out / f"{ident}.phones.json")
    (out / f"{ident}.txt").write_text(text + "\n", encoding="utf-8")
    return {"id": ident, "audio": f"{ident}.wav", "phones": f"{ident}.phones.json", "transcript": f"{ident}.txt",
            "synthesizer": "recorded", "speaker": speaker, "voice": voice, "language": "en-us", "split": "dev",
            "settings": {}, "padding": [0.0, 0.0], "duration": audio.duration, "reference": reference}


def single_item(audio: Path, reference: Path, transcript: str | None, language: str) -> list[EvalItem]:
    from studio.audio.reference import read_reference

    return [EvalItem(Path(audio), tuple(read_reference(reference)), transcript, language, Path(audio).stem)]


# --- the neural model's controls ------------------------------------------------------------------

#: Head rotation channels whose difference between seeds measures diversity (degrees).
HEAD_CHANNELS = ("pose.pitch", "pose.yaw", "pose.roll")


def evaluate_controls(items: Sequence[EvalItem], *, model: Path | None = None, seeds: tuple[int, int] = (0, 1),
                      fps: float = 25.0, steps: int = 10, device: str = "auto",
                      progress: Callable[[int], None] | None = None) -> dict:
    """How the neural generator answers its controls, on ``items`` without their transcripts.

    * **Diversity**: the same audio with two seeds. Head rotation differs (RMS difference of pitch,
      yaw and roll between the two, degrees, mean over items; beside it each seed's own RMS motion
      around its mean) while the lips agree (closure recall of each seed, pooled; the mean
      correlation of their mouth openings).
    * **Emotion**: the same audio and seed under each label held throughout at strength 1; per label
      the mean over items and frames of its expression offsets minus neutral's — their norm over
      the 63 channels (face units; inter-ocular distance = 1), the three channels that move most
      (signed), and for scale the norm of the rig's own preset of that label.
    """
    from studio.audio.features import compute_features
    from studio.audio.phonemes import phones_for
    from studio.core.document import EMOTIONS
    from studio.core.motion import CHANNEL_INDEX, CHANNELS, EXP
    from studio.generate.neural.runner import neural_motion
    from studio.generate.rig import EMOTION_PRESETS, default_conditions, num_frames_for

    head = [CHANNEL_INDEX[c] for c in HEAD_CHANNELS]
    counts = [ClosureCounts(0, 0, 0, 0) for _ in seeds]
    head_rms, head_own, lip_agreement = [], [], []
    offsets = {label: [] for label in EMOTIONS if label != "neutral"}
    weights = []
    for k, item in enumerate(items):
        audio = load_audio(item.audio, require_sound=True)
        features = compute_features(audio)
        phones = phones_for(audio, None, language=item.language).phones
        frames = num_frames_for(audio.duration, fps)

        def run(seed: int, emotion: str = "neutral") -> np.ndarray:
            return neural_motion(features, phones, duration=audio.duration, fps=fps,
                                 conditions=default_conditions(frames, emotion=emotion), seed=seed, steps=steps,
                                 device=device, model_path=model)

        motions = [run(seed) for seed in seeds]
        for i, motion in enumerate(motions):
            counts[i] = counts[i] + closure_counts(mouth_gap(motion), fps, item.reference)
        a, b = (m[:, head].astype(np.float64) for m in motions)
        head_rms.append(float(np.sqrt(np.mean((a - b) ** 2))))
        head_own.append(float(np.mean([np.sqrt(np.mean((m - m.mean(axis=0)) ** 2)) for m in (a, b)])))
        r = mouth_correlation(mouth_gap(motions[0]), mouth_gap(motions[1]))
        if np.isfinite(r):
            lip_agreement.append(r)
        neutral = motions[0][:, EXP].astype(np.float64)
        for label in offsets:
            offsets[label].append((run(seeds[0], label)[:, EXP] - neutral).mean(axis=0))
        weights.append(frames)
        if progress:
            progress(k)
    w = np.asarray(weights, dtype=np.float64)
    emotions = {}
    names = CHANNELS[EXP]
    for label, rows in offsets.items():
        mean = np.average(np.stack(rows), axis=0, weights=w)
        top = np.argsort(-np.abs(mean))[:3]
        emotions[label] = {"offset_norm": float(np.linalg.norm(mean)),
                           "rig_preset_norm": float(np.linalg.norm(EMOTION_PRESETS[label])),
                           "largest": [(names[i], float(mean[i])) for i in top]}
    return {
        "items": len(items), "seeds": list(seeds), "steps": steps,
        "head_rms_difference_deg": float(np.mean(head_rms)), "head_rms_motion_deg": float(np.mean(head_own)),
        "closure_recall_by_seed": [c.recall for c in counts], "bilabials": counts[0].bilabials,
        "lip_agreement": float(np.mean(lip_agreement)) if lip_agreement else float("nan"),
        "emotions": emotions,
    }


def format_controls(report: dict) -> str:
    recall = report["closure_recall_by_seed"]
    lines = [
        f"neural controls: {report['items']} items, seeds {report['seeds'][0]} and {report['seeds'][1]}, "
        f"{report['steps']} steps",
        f"  head rotation differs by  {report['head_rms_difference_deg']:.2f}° RMS between the seeds "
        f"(each moves {report['head_rms_motion_deg']:.2f}° RMS)",
        f"  closure recall by seed    {recall[0]:.3f} / {recall[1]:.3f}  (Δ {abs(recall[0] - recall[1]):.3f}, "
        f"{report['bilabials']} p/b/m)",
        f"  mouth openings agree      r = {report['lip_agreement']:.3f}",
        "  emotion vs neutral (mean expression offset, face units; the rig's preset for scale):",
    ]
    for label, e in report["emotions"].items():
        largest = ", ".join(f"{name} {value:+.3f}" for name, value in e["largest"])
        lines.append(f"    {label:<10} {e['offset_norm']:.3f}  (rig {e['rig_preset_norm']:.3f})  {largest}")
    return "\n".join(lines)


__all__: Sequence[str] = ("EvalItem", "ItemScore", "LipsyncReport", "evaluate_controls", "evaluate_item",
                          "evaluate_lipsync", "format_controls", "format_summary", "items_from_manifest",
                          "single_item")
