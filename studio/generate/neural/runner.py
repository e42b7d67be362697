"""Running the neural model: runners (torch, ONNX Runtime), the chunked streaming driver, the
motion stage of ``studio generate --generator neural``, the ONNX export and the benchmark.

**Runners** share one interface (:class:`Runner`): ``prepare(window, variants)`` once per window
(a batch row per variant of its conditioning, :data:`VARIANTS`), then ``velocity(prepared, x, t)``
per sampling step, NumPy in and out.

* :class:`TorchRunner` loads a checkpoint (``.pt``, :mod:`studio.generate.neural.train`) onto
  ``device``: ``"auto"`` is CUDA when a small operation on it really works, else the CPU
  (:func:`studio.render.portrait_torch.resolve_device`). It encodes a window once and reuses that
  for every step.
* :class:`OnnxRunner` runs an exported graph (:func:`export_onnx`: one velocity evaluation; the
  sampling loop stays here in Python) with onnxruntime(-gpu): the CUDA provider only when the
  created session really lists it, else the CPU — with a warning when CUDA was asked for.

**The driver** (:func:`stream_motion`) cuts the frames into chunks of ``chunk`` frames that
overlap by ``overlap`` frames; each chunk is sampled (Euler, ``steps``, its own seeded noise)
conditioned on the ``R`` frames just before it, which the previous chunks have already settled;
in an overlap the two chunks are blended by position weights (a linear cross-fade, as Ditto
does). Each chunk is yielded as soon as its frames are final (up to the next chunk's start), so
the first 2.8 s of motion are ready after one chunk; ``cancel()`` is asked between chunks.
Eye overrides of the conditions are applied exactly, eye channels clipped to their ranges, and the
inner lips never cross. The last chunk is aligned to end at the last frame (it overlaps its
predecessor more) rather than padded.

**Generation** (:func:`neural_motion`): the pipeline's audio front end (decode, features, phones)
is shared with the rig; this replaces only the motion stage: inputs at 25 fps
(:func:`~studio.generate.neural.inputs.neural_inputs`), the conditions resampled to 25 fps
(nearest frame), the streamed motion resampled linearly to the requested frame rate. ``on_chunk``
receives the frames (at the requested rate) as soon as they are final — the studio's window shows
them while the rest is still being sampled.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from studio.core.document import CONDITION_CHANNELS
from studio.core.motion import CHANNEL_INDEX, CHANNEL_RANGES, EYE_CHANNELS, NUM_CHANNELS
from studio.generate.neural.inputs import TRANSCRIPT_FLAG, prior_motion
from studio.generate.neural.model import (
    MOUTH_TEMPERATURE,
    ModelConfig,
    chunk_noise,
    drop_acoustic,
    drop_emotion,
    encode_controls,
    encode_identity,
    euler,
    window_roles,
)

#: Where ``studio generate --generator neural`` looks for the trained model.
MODELS_DIR = Path(__file__).resolve().parents[3] / "models" / "neural"
DEFAULT_CHECKPOINT = MODELS_DIR / "best.pt"
CHECKPOINT_FORMAT = "studio-neural-checkpoint"
ONNX_FORMAT = "studio-neural-onnx"
TRAIN_COMMAND = "studio train fit CORPUS --out models/neural"
DEFAULT_OVERLAP = 10
#: Audio trust when none is given (:func:`default_audio_trust`): full trust in the sound when the
#: phones were recognized, half when they were aligned to a transcript. Chosen on the dev split of
#: the synthetic dev corpus (with a transcript: mouth-open r 0.950 at 0.5, 0.945 at 1) and one
#: recording with an independent phone alignment (CMU ARCTIC a0009: 0.822 at 0.5, 0.771 at 1);
#: without a transcript the recorded "cards" set keeps 1 (0.806 at 1, 0.797 at 0.5). Checked again
#: for the v2 weights: cards 0.828 at 1, 0.818 at 0.5; dev split with a transcript 0.952 at 0.5,
#: 0.948 at 1.
AUDIO_TRUST_RECOGNIZED = 1.0
AUDIO_TRUST_ALIGNED = 0.5

_EYES = slice(CHANNEL_INDEX[EYE_CHANNELS[0]], CHANNEL_INDEX[EYE_CHANNELS[-1]] + 1)
_EYE_LOW = np.array([CHANNEL_RANGES[c][0] for c in EYE_CHANNELS], np.float32)
_EYE_HIGH = np.array([CHANNEL_RANGES[c][1] for c in EYE_CHANNELS], np.float32)
_LIP_UP = CHANNEL_INDEX["exp.lip_upper_center.y"]
_LIP_DOWN = CHANNEL_INDEX["exp.lip_lower_center.y"]


class NeuralModelError(ValueError):
    """A model file that is missing or unusable; the message names it and says what to do."""


def missing_model_message(path: Path) -> str:
    return (f"no trained neural model at {path}: train one with `studio train corpus CORPUS` and "
            f"`{TRAIN_COMMAND}` (or give another model file), or use --generator rig")


# --- checkpoints ----------------------------------------------------------------------------------

def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents (``torch.load`` with ``weights_only=True``: no code is unpickled)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise NeuralModelError(missing_model_message(path))
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise NeuralModelError(f"{path}: not a readable neural model checkpoint ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise NeuralModelError(f"{path}: not a neural model checkpoint (format {CHECKPOINT_FORMAT!r} expected)")
    return data


def model_from_checkpoint(data: dict, path: str | Path = "checkpoint"):
    """The :class:`~studio.generate.neural.model.MotionFlowModel` of a checkpoint, in eval mode."""
    from studio.generate.neural.inputs import INPUTS_VERSION, NUM_INPUTS
    from studio.generate.neural.model import MotionFlowModel

    config = ModelConfig.from_dict(data["config"])
    if config.num_inputs != NUM_INPUTS or config.inputs_version != INPUTS_VERSION:
        raise NeuralModelError(f"{path}: the model reads inputs version {config.inputs_version} "
                               f"({config.num_inputs} per frame), this code computes version {INPUTS_VERSION} "
                               f"({NUM_INPUTS} per frame); retrain it")
    model = MotionFlowModel(config)
    model.load_state_dict(data["model"])
    return model.eval()


# --- windows and runners --------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """The conditioning of one chunk (NumPy; see :class:`~studio.generate.neural.model.MotionFlowModel`):
    ``audio`` (R + C + lookahead, F), ``controls`` (R + C, 18), ``identity`` (63,), ``reference``
    (R, 74) motion, ``roles`` (R + C, 4)."""

    audio: np.ndarray
    controls: np.ndarray
    identity: np.ndarray
    reference: np.ndarray
    roles: np.ndarray

    def batch(self, variants: tuple[str, ...] = ("full",)) -> dict[str, np.ndarray]:
        """Batched arrays, a row per variant of :data:`VARIANTS`: ``"full"`` as it is,
        ``"no_emotion"`` with the emotion dropped, ``"no_acoustic"`` with the acoustic inputs blanked."""
        rows = []
        for variant in variants:
            if variant not in VARIANTS:
                raise ValueError(f"unknown window variant {variant!r}: expected one of {VARIANTS}")
            rows.append({"audio": drop_acoustic(self.audio) if variant == "no_acoustic" else self.audio,
                         "controls": drop_emotion(self.controls) if variant == "no_emotion" else self.controls,
                         "identity": self.identity, "reference": self.reference, "roles": self.roles})
        return {k: np.stack([row[k] for row in rows]) for k in rows[0]}


#: The conditionings a window can be evaluated with (guidance compares them).
VARIANTS = ("full", "no_emotion", "no_acoustic")


class Runner(Protocol):
    config: ModelConfig
    device: str
    motion_mean: np.ndarray
    motion_std: np.ndarray

    def sampling(self) -> contextlib.AbstractContextManager: ...

    def prepare(self, window: Window, variants: tuple[str, ...]) -> Any: ...

    def velocity(self, prepared: Any, x: np.ndarray, t: float) -> np.ndarray: ...


class TorchRunner:
    """The model in torch on ``device`` (``auto``: CUDA when it really works, else the CPU)."""

    def __init__(self, checkpoint: str | Path = DEFAULT_CHECKPOINT, device: str = "auto"):
        path = Path(checkpoint)
        self._init(model_from_checkpoint(load_checkpoint(path), path), device)
        self.path = path

    @classmethod
    def from_model(cls, model, device: str = "auto") -> TorchRunner:
        """A runner around a model in memory (training validates with this)."""
        runner = cls.__new__(cls)
        runner._init(model, device)
        runner.path = None
        return runner

    def _init(self, model, device: str) -> None:
        import torch

        from studio.render.portrait_torch import resolve_device

        self._torch = torch
        self._device = resolve_device(device)
        self.device = str(self._device)
        self.model = model.to(self._device).eval()
        self.config: ModelConfig = model.config
        self.motion_mean = model.motion_mean.detach().cpu().numpy()
        self.motion_std = model.motion_std.detach().cpu().numpy()
        self._time_parts: dict = {}

    @contextlib.contextmanager
    def sampling(self):
        """While sampling a chunk on the CPU: one torch thread. The tensors are small, so a second
        thread gains nothing, and on a busy machine its spinning costs a lot (3× measured)."""
        if self._device.type != "cpu":
            yield
            return
        threads = self._torch.get_num_threads()
        self._torch.set_num_threads(1)
        try:
            yield
        finally:
            self._torch.set_num_threads(threads)

    def prepare(self, window: Window, variants: tuple[str, ...] = ("full",)) -> tuple:
        torch = self._torch
        arrays = window.batch(variants)
        with torch.inference_mode():
            tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self._device) for k, v in arrays.items()}
            return self.model.encode(tensors["audio"], tensors["controls"], tensors["identity"],
                                     tensors["reference"], tensors["roles"])

    def velocity(self, prepared: tuple, x: np.ndarray, t: float) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self._device)
            key = (float(t), x.shape[0])
            if key not in self._time_parts:  # the same few flow times recur in every chunk
                tt = torch.full((x.shape[0],), float(t), dtype=torch.float32, device=self._device)
                self._time_parts[key] = (tt, self.model.time_parts(tt))
            tt, parts = self._time_parts[key]
            return self.model.step(xt, tt, prepared, parts).cpu().numpy()


class OnnxRunner:
    """An exported model (:func:`export_onnx`) in ONNX Runtime: CUDA only when the session really
    got the CUDA provider, else the CPU (warning when ``device`` asked for CUDA)."""

    def __init__(self, onnx_path: str | Path, device: str = "auto"):
        import onnxruntime

        path = Path(onnx_path)
        if not path.is_file():
            raise NeuralModelError(missing_model_message(path))
        if device not in ("auto", "cpu") and not str(device).startswith("cuda"):
            raise ValueError(f"unknown device {device!r}: expected 'auto', 'cpu' or 'cuda'")
        wants_cuda = device != "cpu" and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        # A CUDA provider that cannot load logs an error and falls back to the CPU: stay silent while
        # sessions are created (the outcome is checked and reported below), then errors only.
        onnxruntime.set_default_logger_severity(4)
        try:
            self.session = None
            if wants_cuda:
                with contextlib.suppress(Exception):  # a provider that cannot start: the CPU below
                    self.session = onnxruntime.InferenceSession(str(path), providers=["CUDAExecutionProvider"])
            if self.session is None or "CUDAExecutionProvider" not in self.session.get_providers():
                options = onnxruntime.SessionOptions()  # small tensors: one thread is fastest (TorchRunner.sampling)
                options.intra_op_num_threads = options.inter_op_num_threads = 1
                self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a damaged file or an old opset: say which file
            raise NeuralModelError(f"{path}: not a usable ONNX model ({exc})") from None
        finally:
            onnxruntime.set_default_logger_severity(3)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != ONNX_FORMAT:
            raise NeuralModelError(f"{path}: not an exported neural motion model (no {ONNX_FORMAT!r} metadata)")
        self.config = ModelConfig.from_dict(json.loads(meta["config"]))
        self.motion_mean = np.array(json.loads(meta["motion_mean"]), np.float32)
        self.motion_std = np.array(json.loads(meta["motion_std"]), np.float32)
        self.providers = list(self.session.get_providers())
        self.device = "cuda" if "CUDAExecutionProvider" in self.providers else "cpu"
        if str(device).startswith("cuda") and self.device != "cuda":
            warnings.warn(f"{path}: CUDA was asked for, but ONNX Runtime's CUDA provider is not available here "
                          f"(session providers: {', '.join(self.providers)}); running on the CPU", stacklevel=2)
        self.path = path

    def sampling(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def prepare(self, window: Window, variants: tuple[str, ...] = ("full",)) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in window.batch(variants).items()}

    def velocity(self, prepared: dict[str, np.ndarray], x: np.ndarray, t: float) -> np.ndarray:
        feed = dict(prepared, x=np.ascontiguousarray(x, dtype=np.float32),
                    t=np.full((x.shape[0],), t, dtype=np.float32))
        return self.session.run(["velocity"], feed)[0]


def open_runner(model_path: str | Path | None = None, device: str = "auto") -> Runner:
    """The runner for a model file: ``.onnx`` → :class:`OnnxRunner`, else :class:`TorchRunner`
    (default: :data:`DEFAULT_CHECKPOINT`). Kept open for the next call with the same file."""
    path = Path(model_path) if model_path is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise NeuralModelError(missing_model_message(path))
    stat = path.stat()
    return _cached_runner(str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device))


@functools.lru_cache(maxsize=2)
def _cached_runner(path: str, mtime: int, size: int, device: str) -> Runner:
    return OnnxRunner(path, device) if path.endswith(".onnx") else TorchRunner(path, device)


def sample_window(runner: Runner, window: Window, noise: np.ndarray, *, steps: int, guidance: float = 1.0,
                  audio_trust: float = 1.0) -> np.ndarray:
    """One chunk (C, 74) in motion units: Euler over ``steps`` from ``noise`` (C, 74).

    Guidance composes the conditionings evaluated side by side in one batch:
    ``v = v + (g − 1)(v − v_no_emotion) + (a − 1)(v − v_no_acoustic)`` with ``g`` = ``guidance``
    on emotion and ``a`` = ``audio_trust`` on the sound (1: one evaluation per step; ``a`` < 1 leans
    on the phones and the rig's lip prior, for recordings far from the training voices; 0 ignores
    the sound's spectrum)."""
    guides = [(variant, scale - 1.0) for variant, scale in (("no_emotion", guidance), ("no_acoustic", audio_trust))
              if scale != 1.0]
    variants = ("full", *(variant for variant, _ in guides))
    with runner.sampling():
        prepared = runner.prepare(window, variants)

        def velocity(x, t):
            v = runner.velocity(prepared, np.repeat(x, len(variants), axis=0), t)
            out = v[:1]
            for row, (_, weight) in enumerate(guides, start=1):
                out = out + weight * (v[:1] - v[row:row + 1])
            return out
        x = euler(velocity, noise[None], steps)[0]
    return x * runner.motion_std + runner.motion_mean


# --- the streaming driver -------------------------------------------------------------------------

@dataclass(frozen=True)
class MotionChunk:
    """Final frames ``[start, start + len(values))`` (25 fps) of a streamed generation."""

    start: int
    values: np.ndarray = field(repr=False)
    index: int
    total: int          # chunks in this generation
    frames: int         # frames in this generation

    @property
    def end(self) -> int:
        return self.start + len(self.values)

    @property
    def fraction(self) -> float:
        return self.end / self.frames if self.frames else 1.0


def chunk_starts(num_frames: int, chunk: int, overlap: int) -> list[int]:
    """First frames of the chunks covering ``num_frames``: every ``chunk − overlap`` frames, the
    last one moved back to end exactly at the last frame (one chunk when they fit in one)."""
    if not 0 <= overlap < chunk:
        raise ValueError(f"overlap must be within 0…{chunk - 1}, got {overlap}")
    starts = [0]
    while starts[-1] + chunk < num_frames:
        starts.append(min(starts[-1] + chunk - overlap, num_frames - chunk))
    return starts


def make_window(inputs: np.ndarray, controls: np.ndarray, identity: np.ndarray, motion: np.ndarray,
            start: int, config: ModelConfig, chunk: int) -> Window:
    """The window of the chunk at ``start`` of a recording: ``inputs`` (T, F), ``controls`` (T, 18),
    the ``motion`` (T, 74) its reference frames come from (the frames generated so far; in training
    the target). Frames before 0 are missing, frames past the end (or past ``chunk``) padding;
    both read zeros. Training builds its windows with this too."""
    R, C, A = config.reference, config.chunk, config.lookahead
    T = len(inputs)
    frames = np.arange(start - R, start + C + A)
    inside = (frames >= 0) & (frames < T)
    valid_chunk = inside[R:R + C] & (np.arange(C) < chunk)
    audio = np.where(inside[:, None], inputs[np.clip(frames, 0, T - 1)], 0.0).astype(np.float32)
    if chunk < C:  # a short chunk: padding after it, as at the end of the audio
        audio[R + chunk:] = 0.0
    window_frames = frames[:R + C]
    keep = np.concatenate([inside[:R], valid_chunk])
    ctrl = np.where(keep[:, None], controls[np.clip(window_frames, 0, T - 1)], 0.0).astype(np.float32)
    reference = np.where(inside[:R, None], motion[np.clip(frames[:R], 0, T - 1)], 0.0).astype(np.float32)
    return Window(audio, ctrl, identity, reference, window_roles(inside[:R], valid_chunk))


def finish_frames(values: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """In place and returned: eye overrides of ``conditions`` applied, eye channels clipped to their
    ranges, the lower inner lip kept at or below the upper one."""
    overrides = np.asarray(conditions, dtype=np.float32)[:, -len(EYE_CHANNELS):]
    eyes = np.clip(values[:, _EYES], _EYE_LOW, _EYE_HIGH)
    values[:, _EYES] = np.where(np.isnan(overrides), eyes, overrides)
    values[:, _LIP_DOWN] = np.minimum(values[:, _LIP_DOWN], values[:, _LIP_UP])
    return values


def stream_motion(runner: Runner, inputs: np.ndarray, conditions: np.ndarray, canonical: np.ndarray | None = None,
                  *, steps: int = 10, seed: int = 0, guidance: float = 1.0, audio_trust: float | None = None,
                  chunk: int | None = None, overlap: int = DEFAULT_OVERLAP,
                  mouth_temperature: float = MOUTH_TEMPERATURE,
                  cancel: Callable[[], bool] | None = None) -> Iterator[MotionChunk]:
    """Generate motion for ``inputs`` (T, F) at the model's 25 fps chunk by chunk (module docstring).

    ``conditions`` (T, 13) of :data:`~studio.core.document.CONDITION_CHANNELS`; ``canonical`` the
    identity (None: the mean face); ``chunk`` ≤ the model's chunk (smaller: earlier first frames);
    ``audio_trust`` None: :func:`default_audio_trust` for the inputs' ``phones_from_transcript``;
    ``mouth_temperature`` scales the mouth's sampling noise (:func:`~.model.chunk_noise`).
    Raises :class:`~studio.generate.pipeline.Cancelled` when ``cancel()`` is True between chunks.
    """
    from studio.generate.pipeline import Cancelled

    config = runner.config
    chunk = config.chunk if chunk is None else int(chunk)
    if not 1 <= chunk <= config.chunk:
        raise ValueError(f"chunk must be within 1…{config.chunk} (the model's), got {chunk}")
    inputs = np.asarray(inputs, dtype=np.float32)
    T = len(inputs)
    if inputs.ndim != 2 or inputs.shape[1] != config.num_inputs:
        raise ValueError(f"inputs must have shape (frames, {config.num_inputs}), got {inputs.shape}")
    if np.shape(conditions) != (T, len(CONDITION_CHANNELS)):
        raise ValueError(f"conditions must have shape ({T}, {len(CONDITION_CHANNELS)}), got {np.shape(conditions)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if T == 0:
        return
    if audio_trust is None:
        audio_trust = default_audio_trust(bool(inputs[0, TRANSCRIPT_FLAG] > 0.5))
    conditions = np.asarray(conditions, dtype=np.float32)
    controls = encode_controls(conditions)
    identity = encode_identity(canonical)
    motion = np.zeros((T, NUM_CHANNELS), np.float32)
    # a residual model generates, and reads as its reference, the motion less the rig's mouth
    prior = prior_motion(inputs) if config.mouth_residual else None
    generated = motion if prior is None else np.zeros_like(motion)
    starts = chunk_starts(T, chunk, min(overlap, chunk - 1))
    emitted = 0
    for k, start in enumerate(starts):
        if cancel is not None and cancel():
            raise Cancelled(f"cancelled after {emitted} of {T} frames")
        window = make_window(inputs, controls, identity, generated, start, config, chunk)
        noise = chunk_noise(seed, k, config.chunk, mouth_temperature=mouth_temperature)
        values = sample_window(runner, window, noise, steps=steps, guidance=guidance, audio_trust=audio_trust)
        n = min(chunk, T - start)
        values = values[:n]
        if prior is not None:
            values = values + prior[start:start + n]
        if k:  # cross-fade over the frames the previous chunk also produced
            previous_end = starts[k - 1] + min(chunk, T - starts[k - 1])
            shared = max(0, previous_end - start)
            w = (np.arange(1, shared + 1) / (shared + 1))[:, None]
            values[:shared] = (1.0 - w) * motion[start:start + shared] + w * values[:shared]
        motion[start:start + n] = values
        final = starts[k + 1] if k + 1 < len(starts) else T
        piece = finish_frames(motion[emitted:final].copy(), conditions[emitted:final])
        motion[emitted:final] = piece
        if prior is not None:
            generated[emitted:start + n] = motion[emitted:start + n] - prior[emitted:start + n]
        yield MotionChunk(emitted, piece, k, len(starts), T)
        emitted = final


# --- the motion stage of the generation path ------------------------------------------------------

def resample_frames(values: np.ndarray, source_fps: float, target_fps: float, num_frames: int) -> np.ndarray:
    """Linear resampling of a track (T, channels) to ``num_frames`` frames at ``target_fps``
    (frame k at time k / fps; times past the end hold the last frame)."""
    values = np.asarray(values, dtype=np.float64)
    position = np.arange(num_frames) * (source_fps / target_fps)
    low = np.clip(np.floor(position).astype(np.int64), 0, len(values) - 1)
    high = np.minimum(low + 1, len(values) - 1)
    frac = np.clip(position - low, 0.0, 1.0)[:, None]
    return ((1.0 - frac) * values[low] + frac * values[high]).astype(np.float32)


def default_audio_trust(phones_from_transcript: bool) -> float:
    """The audio trust a generation uses when none is given: aligned phones are right, so the
    sound need only sharpen them; recognized ones are often wrong, so the sound decides more."""
    return AUDIO_TRUST_ALIGNED if phones_from_transcript else AUDIO_TRUST_RECOGNIZED


def neural_motion(features, phones, *, duration: float, fps: float, conditions: np.ndarray,
                  canonical: np.ndarray | None = None, seed: int = 0, steps: int = 10, guidance: float = 1.0,
                  audio_trust: float | None = None, device: str = "auto", model_path: str | Path | None = None,
                  phones_from_transcript: bool = False,
                  progress: Callable[[float], None] | None = None, cancel: Callable[[], bool] | None = None,
                  on_chunk: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    """The neural model's motion (T, 74) at ``fps`` for the pipeline (module docstring);
    ``conditions`` (T, 13) at ``fps``; ``audio_trust`` None: :func:`default_audio_trust` for the
    phones (:func:`stream_motion`). ``on_chunk(start, values)`` gets frames ``start …`` (n, 74) at ``fps`` as each chunk
    settles them; together they are exactly the returned motion."""
    from studio.generate.neural.inputs import neural_inputs
    from studio.generate.rig import num_frames_for

    runner = open_runner(model_path, device)
    fps_model = runner.config.fps
    n_model = num_frames_for(duration, fps_model)
    inputs = neural_inputs(features, phones, n_model, fps_model, phones_from_transcript=phones_from_transcript)
    conditions = np.asarray(conditions, dtype=np.float32)
    nearest = np.clip(np.round(np.arange(n_model) * fps / fps_model).astype(np.int64), 0, len(conditions) - 1)
    pieces = []
    sent = 0  # frames at ``fps`` handed to on_chunk so far
    for piece in stream_motion(runner, inputs, conditions[nearest], canonical, steps=steps, seed=seed,
                               guidance=guidance, audio_trust=audio_trust, cancel=cancel):
        pieces.append(piece.values)
        if progress:
            progress(piece.fraction)
        if on_chunk is None:
            continue
        if fps == fps_model:
            on_chunk(piece.start, piece.values)
            continue
        # A frame at ``fps`` is final once both model frames it interpolates are.
        ready = len(conditions) if piece.end >= n_model else \
            min(len(conditions), int(np.floor((piece.end - 1) * fps / fps_model)))
        if ready > sent:
            partial = resample_frames(np.concatenate(pieces), fps_model, fps, ready)[sent:]
            on_chunk(sent, finish_frames(partial, conditions[sent:ready]))
            sent = ready
    motion = np.concatenate(pieces)
    if fps == fps_model:
        return motion
    return finish_frames(resample_frames(motion, fps_model, fps, len(conditions)), conditions)


# --- ONNX export ----------------------------------------------------------------------------------

INPUT_ORDER = ("x", "t", "audio", "controls", "identity", "reference", "roles")


def example_inputs(config: ModelConfig, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of one velocity evaluation (for the export and its check)."""
    rng = np.random.default_rng(seed)
    R, C, L = config.reference, config.chunk, config.window
    present = np.arange(R) >= R // 2
    conditions = np.full((L, len(CONDITION_CHANNELS)), np.nan, np.float32)
    conditions[:, 0] = rng.uniform(0.5, 1.5, L)
    conditions[:, 1:9] = rng.dirichlet(np.ones(8), L)
    conditions[L // 2:, 11] = 0.3
    return {
        "x": rng.standard_normal((batch, C, NUM_CHANNELS)).astype(np.float32),
        "t": rng.uniform(0, 1, batch).astype(np.float32),
        "audio": rng.standard_normal((batch, L + config.lookahead, config.num_inputs)).astype(np.float32),
        "controls": np.stack([encode_controls(conditions)] * batch),
        "identity": rng.normal(0, 0.3, (batch, 63)).astype(np.float32),
        "reference": rng.normal(0, 0.05, (batch, R, NUM_CHANNELS)).astype(np.float32),
        "roles": np.stack([window_roles(present, np.arange(C) < C - 3)] * batch),
    }


def export_onnx(checkpoint: str | Path, out_path: str | Path, *, tolerance: float = 1e-3) -> dict:
    """Export one velocity evaluation of a checkpoint's model to ONNX (inputs :data:`INPUT_ORDER`,
    output ``velocity``, any batch size), with the config and normalization as metadata; check it
    against torch on random inputs (batch 1 and 2) and refuse to write it when they differ by more
    than ``tolerance``. Returns the largest difference and the providers used."""
    import onnx
    import onnxruntime
    import torch

    from studio.core.safe_io import atomic_write

    path = Path(checkpoint)
    data = load_checkpoint(path)
    model = model_from_checkpoint(data, path)
    config = model.config
    feeds = [{name: example_inputs(config, batch=b, seed=b)[name] for name in INPUT_ORDER} for b in (1, 2)]
    with torch.inference_mode():
        expected = [model(*(torch.from_numpy(feed[name]) for name in INPUT_ORDER)).numpy() for feed in feeds]
    example = example_inputs(config, batch=2)
    args = tuple(torch.from_numpy(example[name]) for name in INPUT_ORDER)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model_from_checkpoint(data, path), args, input_names=list(INPUT_ORDER),
                                    output_names=["velocity"],
                                    dynamo=True, dynamic_shapes={name: {0: batch} for name in INPUT_ORDER},
                                    verbose=False, optimize=True)
    proto = program.model_proto
    for key, value in {"format": ONNX_FORMAT, "config": json.dumps(config.to_dict()),
                       "motion_mean": json.dumps(model.motion_mean.tolist()),
                       "motion_std": json.dumps(model.motion_std.tolist()),
                       "source": path.name}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()
    onnxruntime.set_default_logger_severity(3)
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = max(float(np.abs(session.run(["velocity"], feed)[0] - want).max()) for feed, want in zip(feeds, expected))
    if not worst <= tolerance:
        raise RuntimeError(f"the ONNX export of {path} differs from torch by {worst:.3g} (> {tolerance})")
    onnx.checker.check_model(proto)
    atomic_write(out_path, data)
    return {"max_difference": worst, "bytes": len(data), "opset": proto.opset_import[0].version}


# --- benchmark ------------------------------------------------------------------------------------

def bench_neural(checkpoint: str | Path = DEFAULT_CHECKPOINT, seconds: float = 60.0, steps: int = 10, *,
                 device: str = "auto", guidance: float = 1.0, repeat: int = 3) -> dict:
    """Time the motion stage alone for ``seconds`` of inputs at 25 fps (the audio front end —
    decoding, features, phones — not included): making the model's inputs from features and phones
    (:func:`~studio.generate.neural.inputs.neural_inputs`, the rig's lip prior included; timed on
    noise features and a phone every 80 ms), then the whole stream and its first chunk (random
    inputs, which cost the same); medians of ``repeat`` runs after a warm-up. ``checkpoint`` may be
    ``.pt`` or ``.onnx``."""
    from studio.audio.features import compute_features
    from studio.audio.phones import PHONES, Phone
    from studio.generate.neural.inputs import neural_inputs
    from studio.generate.rig import default_conditions

    runner = open_runner(checkpoint, device)
    config = runner.config
    frames = round(seconds * config.fps)
    rng = np.random.default_rng(0)
    features = compute_features((0.1 * rng.standard_normal(round(seconds * 16000))).astype(np.float32))
    phones = [Phone(PHONES[i % len(PHONES)], 0.08 * i, 0.08 * (i + 1)) for i in range(int(seconds / 0.08))]
    input_times = []
    for _ in range(max(1, repeat) + 1):
        t0 = time.perf_counter()
        neural_inputs(features, phones, frames, config.fps)
        input_times.append(time.perf_counter() - t0)
    inputs = rng.standard_normal((frames, config.num_inputs)).astype(np.float32)
    conditions = default_conditions(frames)

    def run() -> tuple[float, float, int]:
        t0 = time.perf_counter()
        first = None
        count = 0
        for _ in stream_motion(runner, inputs, conditions, steps=steps, guidance=guidance):
            first = time.perf_counter() - t0 if first is None else first
            count += 1
        return time.perf_counter() - t0, first, count

    run()
    results = [run() for _ in range(max(1, repeat))]
    total = float(np.median([r[0] for r in results]))
    first = float(np.median([r[1] for r in results]))
    return {
        "model": str(checkpoint), "runner": type(runner).__name__, "device": runner.device,
        "seconds_of_audio": seconds, "frames": frames, "steps": steps, "guidance": guidance,
        "chunks": results[0][2], "inputs_median_s": float(np.median(input_times[1:])),
        "motion_median_s": total, "first_chunk_median_s": first,
        "real_time_factor": total / seconds, "runs_s": [r[0] for r in results],
    }


def format_bench_neural(result: dict) -> str:
    head = (f"neural motion: {result['seconds_of_audio']:g} s of audio ({result['frames']} frames, "
            f"{result['chunks']} chunks), {result['steps']} steps, guidance {result['guidance']:g}, "
            f"{result['runner']} on {result['device']}")
    whole = (f"  whole stream   median {result['motion_median_s'] * 1e3:8.1f} ms "
             f"(real-time factor {result['real_time_factor']:.4f})")
    inputs = f"  model inputs   median {result['inputs_median_s'] * 1e3:8.1f} ms (features + phones → inputs, lip prior)"
    return "\n".join([head, inputs, whole, f"  first chunk    median {result['first_chunk_median_s'] * 1e3:8.1f} ms"])


__all__ = ["DEFAULT_CHECKPOINT", "MotionChunk", "NeuralModelError", "OnnxRunner", "Runner", "TorchRunner",
           "Window", "bench_neural", "chunk_starts", "export_onnx", "format_bench_neural", "load_checkpoint",
           "model_from_checkpoint", "neural_motion", "open_runner", "resample_frames", "sample_window",
           "stream_motion"]
