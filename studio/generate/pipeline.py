"""Audio file (+ transcript) → motion track: the one path every generator request takes.

``generate(request)`` decodes the audio, computes its features, finds the phones (forced
alignment to the transcript, or recognition, with a fallback warning), runs the chosen
generator and returns a :class:`~studio.core.motion_file.Motion` with everything it used. The
CLI (``studio generate``), the evaluation and the GUI's worker all call it; it reports progress
as a fraction and stops at the next stage boundary (or inside a stage that supports it) when
``cancel()`` returns True, raising :class:`Cancelled`. The neural generator streams:
``on_chunk(start, values)`` receives its frames as each chunk settles them (the rig makes every
frame at once and reports progress only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.audio.decode import Audio, load_audio
from studio.audio.features import AudioFeatures, compute_features
from studio.audio.phones import Phone
from studio.core.document import CONDITION_CHANNELS, EMOTIONS
from studio.core.keypoints import MEAN_FACE
from studio.core.motion_file import Motion
from studio.generate.rig import RigStyle, default_conditions, num_frames_for, rig_motion

GENERATORS = ("rig", "neural")
#: Progress share of each stage (they sum to 1).
_STAGES = {"decode": 0.1, "features": 0.1, "phones": 0.7, "motion": 0.1}


class Cancelled(Exception):
    """The caller asked to stop; nothing was produced."""


class GenerateError(ValueError):
    """A request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class GenerateRequest:
    """What to generate. ``conditions`` (T, 13) overrides emotion/strength/intensity when given.
    ``steps``, ``guidance``, ``audio_trust``, ``device`` and ``model`` (a ``.pt`` checkpoint or
    ``.onnx`` export; None: ``models/neural/best.pt``) are for the neural generator."""

    audio: Path | Audio
    transcript: str | None = None
    language: str = "en-us"
    generator: str = "rig"
    fps: float = 25.0
    seed: int = 0
    emotion: str = "neutral"
    strength: float = 1.0
    intensity: float = 1.0
    conditions: np.ndarray | None = field(default=None, repr=False)
    canonical_keypoints: np.ndarray | None = field(default=None, repr=False)
    steps: int = 10
    guidance: float = 1.0
    audio_trust: float | None = None  # None: by how the phones were found (neural.runner.default_audio_trust)
    device: str = "auto"
    model: Path | None = None


@dataclass(frozen=True)
class GenerateResult:
    motion: Motion
    phones: tuple[Phone, ...]
    phone_method: str                 # "aligned" | "recognized"
    warnings: tuple[str, ...]
    seconds: dict[str, float]         # wall time per stage
    duration: float                   # audio length (s)
    features: AudioFeatures = field(repr=False)  # the features the motion was generated from


def _check(request: GenerateRequest) -> None:
    if request.generator not in GENERATORS:
        raise GenerateError(f"unknown generator {request.generator!r}; available: {', '.join(GENERATORS)}")
    if not (np.isfinite(request.fps) and 1.0 <= request.fps <= 240.0):
        raise GenerateError(f"fps must be within 1…240, got {request.fps}")
    if request.emotion not in EMOTIONS:
        raise GenerateError(f"unknown emotion {request.emotion!r}; expected one of {', '.join(EMOTIONS)}")
    if not 0.0 <= request.strength <= 1.0:
        raise GenerateError(f"emotion strength must be within 0…1, got {request.strength}")
    if not 0.0 <= request.intensity <= 2.0:
        raise GenerateError(f"intensity must be within 0…2, got {request.intensity}")
    if request.generator == "neural":
        from studio.generate.neural.runner import (
            DEFAULT_CHECKPOINT,
            missing_model_message,
        )

        if not 1 <= request.steps <= 1000:
            raise GenerateError(f"steps must be within 1…1000, got {request.steps}")
        if not (np.isfinite(request.guidance) and 0.0 <= request.guidance <= 20.0):
            raise GenerateError(f"guidance must be within 0…20, got {request.guidance}")
        if request.audio_trust is not None and not (np.isfinite(request.audio_trust) and
                                                    0.0 <= request.audio_trust <= 2.0):
            raise GenerateError(f"audio trust must be within 0…2, got {request.audio_trust}")
        model = Path(request.model) if request.model is not None else DEFAULT_CHECKPOINT
        if not model.is_file():
            raise GenerateError(missing_model_message(model))


def generate(request: GenerateRequest, *, progress: Callable[[float], None] | None = None,
             cancel: Callable[[], bool] | None = None, style: RigStyle = RigStyle(),
             on_chunk: Callable[[int, np.ndarray], None] | None = None) -> GenerateResult:
    """Run the whole path for one request (see the module docstring)."""
    from studio.audio.phonemes import Cancelled as PhonemesCancelled
    from studio.audio.phonemes import phones_for

    _check(request)
    report = progress or (lambda fraction: None)
    stop = cancel or (lambda: False)
    seconds: dict[str, float] = {}
    done = 0.0

    def stage_done(name: str, started: float) -> None:
        nonlocal done
        seconds[name] = time.perf_counter() - started
        done += _STAGES[name]
        report(min(1.0, done))
        if stop():
            raise Cancelled(f"cancelled after {name}")

    t0 = time.perf_counter()
    audio = request.audio if isinstance(request.audio, Audio) else load_audio(request.audio, require_sound=True)
    stage_done("decode", t0)

    t0 = time.perf_counter()
    features = compute_features(audio)
    stage_done("features", t0)

    t0 = time.perf_counter()
    base = done

    def phone_progress(fraction: float) -> None:
        report(base + _STAGES["phones"] * min(1.0, max(0.0, fraction)))

    try:
        found = phones_for(audio, request.transcript, language=request.language,
                           progress=phone_progress, cancel=stop)
    except PhonemesCancelled as exc:
        raise Cancelled(str(exc)) from None
    stage_done("phones", t0)

    t0 = time.perf_counter()
    num_frames = num_frames_for(audio.duration, request.fps)
    conditions = request.conditions
    if conditions is None:
        conditions = default_conditions(num_frames, emotion=request.emotion, strength=request.strength,
                                        intensity=request.intensity)
    elif np.shape(conditions) != (num_frames, len(CONDITION_CHANNELS)):
        raise GenerateError(f"conditions must have shape ({num_frames}, {len(CONDITION_CHANNELS)}) for "
                            f"{audio.duration:.2f} s at {request.fps:g} fps, got {np.shape(conditions)}")
    if request.generator == "neural":
        from studio.generate.neural.runner import neural_motion

        motion_start = done
        values = neural_motion(features, found.phones, duration=audio.duration, fps=request.fps,
                               conditions=conditions, canonical=request.canonical_keypoints, seed=request.seed,
                               steps=request.steps, guidance=request.guidance, audio_trust=request.audio_trust,
                               device=request.device,
                               model_path=request.model, phones_from_transcript=found.method == "aligned",
                               progress=lambda f: report(motion_start + _STAGES["motion"] * f), cancel=stop,
                               on_chunk=on_chunk)
    else:
        values = rig_motion(found.phones, num_frames=num_frames, fps=request.fps, features=features,
                            conditions=conditions, seed=request.seed, style=style)
    canonical = MEAN_FACE if request.canonical_keypoints is None else request.canonical_keypoints
    motion = Motion(values, float(request.fps), np.asarray(canonical, dtype=np.float32))
    stage_done("motion", t0)
    return GenerateResult(motion, tuple(found.phones), found.method, tuple(found.warnings), seconds,
                          audio.duration, features)


def phones_motion(phones: Sequence[Phone], duration: float, fps: float, *, features=None, seed: int = 0,
                  conditions: np.ndarray | None = None, style: RigStyle = RigStyle()) -> np.ndarray:
    """The rig's motion (T, 74) for known phones — the reference the evaluation compares against."""
    n = num_frames_for(duration, fps)
    return rig_motion(phones, num_frames=n, fps=fps, features=features, conditions=conditions, seed=seed,
                      style=style)
