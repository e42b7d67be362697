"""Training the neural motion model: ``studio train fit DATA --out models/neural``.

``DATA`` is either

* a **training corpus** (a folder with the ``manifest.json`` of ``studio train corpus``,
  :mod:`studio.generate.neural.corpus`): its ``train`` items are trained on, its ``val`` items
  choose the checkpoint; or
* a **motion dataset** for fine-tuning (``--init CHECKPOINT``; training from scratch works too):
  a folder of motion files in the project's format (``<name>.json``, ``.npz`` or ``.csv``, any
  frame rate, :mod:`studio.core.motion_file`) each beside its audio ``<name>.wav`` (or ``.flac``,
  ``.ogg``, ``.mp3``, ``.m4a``, ``.aac``, ``.opus``) and, optionally, its transcript
  ``<name>.txt``. The inputs are computed from the audio exactly as at run time (features,
  phones recognized — or aligned to the transcript — and
  :func:`~studio.generate.neural.inputs.neural_inputs`) and cached in ``OUT/inputs/``; the motion,
  resampled to 25 fps, is the target; the conditions are neutral at intensity 1 and the identity
  is the file's canonical keypoints. Every tenth file (in name order, from 5 files on) is held out
  for validation, its lip metrics measured against its own phones. Fine-tuning keeps the
  checkpoint's model shape and motion normalization, and starts at a lower learning rate (5e-4).

**The loop**: random windows (:class:`WindowSampler`: ``R`` reference frames + a ``C``-frame
chunk + lookahead audio, built by the same function the runner uses, starting at frame 0 for
15 % of them so that first chunks are learned), :meth:`MotionFlowModel.loss`, AdamW with a linear
warm-up and a cosine decay to 10 %, gradient clipping, an exponential moving average (EMA) of the
weights — what is validated and shipped. Seeded: the window draws, the noise and the emotion
drops come from generators seeded by ``--seed`` whose states are checkpointed, so a resumed run
continues the same sequence.

**Budget**: ``--steps`` fixes the schedule's length; ``--hours`` the wall-clock time (of all runs
of this ``OUT`` together): alone, it sets the length from the speed of the first steps (stored, so
a resumed run keeps it). Neither: 2.5 hours.

**Files in OUT**: ``last.pt`` (everything needed to resume, written atomically every
``checkpoint_minutes``; running the same command again resumes from it, ahead of ``--init``, with
the options it started with but a new ``--hours``/``--steps``), ``best.pt`` (the EMA
weights with the best validation **lip score** — not the lowest loss — for
``studio generate --generator neural``), ``log.jsonl`` (one JSON object per line: losses every 50
steps, validations, checkpoints).

**Weight averages** (``studio train average A.pt B.pt --weight W --out C.pt``,
:func:`average_checkpoints`): two fine-tunes of one model mixed tensor by tensor, ``W·A +
(1 − W)·B``; the shipped model is one (its card has the commands).

**Lip score** (validation, every ``validate_minutes`` and at the end): the val items are generated
with 10 steps, seed 0, and compared with their true phones and their rig target
(:mod:`studio.generate.lipsync`): ``score = (closure recall + mouth-open correlation) / 2 −
false-closure rate``.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from studio.audio.phones import Phone
from studio.core.motion import NUM_CHANNELS
from studio.core.safe_io import atomic_write
from studio.generate.neural.inputs import prior_motion
from studio.generate.neural.model import (
    ModelConfig,
    MotionFlowModel,
    encode_controls,
    encode_identity,
    parameter_count,
)
from studio.generate.neural.runner import (
    CHECKPOINT_FORMAT,
    TorchRunner,
    load_checkpoint,
    make_window,
    model_from_checkpoint,
    stream_motion,
)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus")
MOTION_SUFFIXES = (".json", ".npz", ".csv")
FPS = 25.0
FIRST_CHUNK_SHARE = 0.15
STD_FLOOR = 1e-3
DEFAULT_HOURS = 2.5


class TrainError(ValueError):
    """Training data or options that cannot be used; the message names the file or option."""


# --- data ----------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Clip:
    """One recording to train or validate on, at 25 fps."""

    name: str
    inputs: np.ndarray          # (T, F)
    motion: np.ndarray          # (T, 74) target
    conditions: np.ndarray      # (T, 13)
    canonical: np.ndarray       # (21, 3)
    phones: tuple[Phone, ...]   # the lip metric's reference
    source: str = ""            # the synthesizer of a corpus item ("espeak-ng", "flite", "festival")

    @property
    def seconds(self) -> float:
        return len(self.motion) / FPS


def corpus_clips(corpus_dir: str | Path, split: str) -> list[Clip]:
    """The items of one split of a training corpus."""
    from studio.generate.neural.corpus import load_item, read_manifest

    root = Path(corpus_dir)
    clips = []
    for entry in read_manifest(root)["items"]:
        if entry["split"] != split:
            continue
        item = load_item(root / entry["file"])
        phones = tuple(Phone(str(label), float(a), float(b)) for label, a, b in
                       zip(item["phone_labels"], item["phone_starts"], item["phone_ends"]))
        clips.append(Clip(entry["id"], item["inputs"], item["motion"], item["conditions"], item["canonical"], phones,
                          str(entry.get("synthesizer", ""))))
    return clips


def motion_dataset_clips(folder: str | Path, cache_dir: str | Path | None = None,
                         progress: Callable[[int, int], None] | None = None) -> list[Clip]:
    """The clips of a motion dataset (module docstring), inputs cached in ``cache_dir``."""
    from studio.core.motion_file import read_motion

    folder = Path(folder)
    pairs = []
    for motion_path in sorted(p for p in folder.iterdir() if p.suffix.lower() in MOTION_SUFFIXES):
        audio = next((motion_path.with_suffix(s) for s in AUDIO_SUFFIXES if motion_path.with_suffix(s).is_file()), None)
        if audio is None:
            raise TrainError(f"{motion_path}: no audio beside it (expected {motion_path.stem}"
                             f"{'|'.join(AUDIO_SUFFIXES)})")
        pairs.append((motion_path, audio))
    if not pairs:
        raise TrainError(f"{folder}: neither a training corpus (manifest.json) nor a motion dataset "
                         f"(<name>{'|'.join(MOTION_SUFFIXES)} files beside their audio)")
    clips = []
    for i, (motion_path, audio_path) in enumerate(pairs):
        motion = read_motion(motion_path)
        inputs, phones = _cached_inputs(audio_path, cache_dir)
        n = len(inputs)
        if abs(len(motion) / motion.fps - n / FPS) > 0.5:
            raise TrainError(f"{motion_path}: {len(motion) / motion.fps:.2f} s of motion for {n / FPS:.2f} s of "
                             f"audio in {audio_path.name}")
        from studio.generate.neural.runner import resample_frames
        from studio.generate.rig import default_conditions

        values = resample_frames(motion.values, motion.fps, FPS, n)
        clips.append(Clip(motion_path.stem, inputs, values, default_conditions(n), motion.canonical_keypoints, phones))
        if progress:
            progress(i + 1, len(pairs))
    return clips


def _cached_inputs(audio_path: Path, cache_dir: str | Path | None) -> tuple[np.ndarray, tuple[Phone, ...]]:
    """The model inputs (T, F) at 25 fps and the phones of an audio file, computed as at run time."""
    from studio.audio.decode import load_audio
    from studio.audio.features import compute_features
    from studio.audio.phonemes import phones_for
    from studio.generate.neural.inputs import INPUTS_VERSION, neural_inputs
    from studio.generate.rig import num_frames_for

    transcript_path = audio_path.with_suffix(".txt")
    transcript = transcript_path.read_text(encoding="utf-8").strip() if transcript_path.is_file() else None
    stat = audio_path.stat()
    key = f"{stat.st_size}:{stat.st_mtime_ns}:{transcript}:inputs-v{INPUTS_VERSION}"
    cache = Path(cache_dir) / f"{audio_path.stem}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                phones = tuple(Phone(str(lab), float(a), float(b)) for lab, a, b in zip(z["labels"], z["starts"], z["ends"]))
                return z["inputs"], phones
    audio = load_audio(audio_path, require_sound=True)
    found = phones_for(audio, transcript)
    inputs = neural_inputs(compute_features(audio), found.phones, num_frames_for(audio.duration, FPS), FPS,
                           phones_from_transcript=found.method == "aligned")
    phones = tuple(found.phones)
    if cache is not None:
        buffer = io.BytesIO()
        np.savez(buffer, key=np.array(key), inputs=inputs, labels=np.array([p.label for p in phones], dtype=str),
                 starts=np.array([p.start for p in phones]), ends=np.array([p.end for p in phones]))
        atomic_write(cache, buffer.getvalue())
    return inputs, phones


def load_training_data(data: str | Path, cache_dir: str | Path | None = None) -> tuple[list[Clip], list[Clip], str]:
    """``(train clips, validation clips, kind)`` of a corpus or a motion dataset (module docstring)."""
    data = Path(data)
    if not data.is_dir():
        raise TrainError(f"{data}: not a folder (a training corpus or a motion dataset)")
    if (data / "manifest.json").is_file():
        train, val = corpus_clips(data, "train"), corpus_clips(data, "val")
        if not train:
            raise TrainError(f"{data}: the corpus has no train items")
        return train, val, "corpus"
    clips = motion_dataset_clips(data, cache_dir)
    held = set(range(9, len(clips), 10)) if len(clips) >= 5 else set()
    return ([c for i, c in enumerate(clips) if i not in held], [c for i, c in enumerate(clips) if i in held],
            "motion dataset")


def validation_clips(data: str | Path) -> list[Clip]:
    """The validation clips of a corpus or a motion dataset (those :func:`load_training_data` holds out)."""
    data = Path(data)
    if (data / "manifest.json").is_file():
        return corpus_clips(data, "val")
    return load_training_data(data)[1]


def generated_target(clip: Clip, config: ModelConfig) -> np.ndarray:
    """What a model of ``config`` generates for ``clip`` (T, 74): its motion, less the rig's mouth
    on the clip's phones (:func:`~studio.generate.neural.inputs.prior_motion`) with ``mouth_residual``."""
    if not config.mouth_residual:
        return clip.motion
    return (clip.motion - prior_motion(clip.inputs)).astype(np.float32)


def motion_statistics(clips: Sequence[Clip], config: ModelConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (floored at :data:`STD_FLOOR`) of the targets (of
    what a model of ``config`` generates: :func:`generated_target`; the motion when None)."""
    values = np.concatenate([c.motion if config is None else generated_target(c, config)
                             for c in clips]).astype(np.float64)
    return values.mean(0).astype(np.float32), np.maximum(values.std(0), STD_FLOOR).astype(np.float32)


class WindowSampler:
    """Random training windows of a set of clips, every frame about equally likely — or, with
    ``source_shares`` (source → share), each source's frames drawn with that share of the windows
    (every frame of one source equally likely), e.g. fewer espeak-ng windows than it has frames."""

    def __init__(self, clips: Sequence[Clip], config: ModelConfig, source_shares: dict[str, float] | None = None):
        self.clips = list(clips)
        self.config = config
        self.controls = [encode_controls(c.conditions) for c in self.clips]
        self.identities = [encode_identity(c.canonical) for c in self.clips]
        self.targets = [generated_target(c, config) for c in self.clips]
        lengths = np.array([len(c.motion) for c in self.clips], dtype=np.float64)
        if source_shares:
            sources = np.array([c.source for c in self.clips])
            missing = sorted(set(sources) - set(source_shares))
            if missing:
                raise TrainError(f"source shares give no share for {', '.join(repr(m) for m in missing)}")
            if any(not (math.isfinite(v) and v >= 0) for v in source_shares.values()):
                raise TrainError(f"source shares must be non-negative numbers, got {source_shares}")
            for source in set(sources):
                inside = sources == source
                lengths[inside] *= source_shares[source] / lengths[inside].sum()
            if lengths.sum() <= 0:
                raise TrainError("source shares leave no window to train on")
        self.weights = lengths / lengths.sum()

    def sample(self, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        """A batch: ``motion`` (b, R + C, 74) — reference then target — and the window arrays."""
        C = self.config.chunk
        picks = rng.choice(len(self.clips), size=size, p=self.weights)
        first = rng.random(size) < FIRST_CHUNK_SHARE
        fraction = rng.random(size)
        rows: dict[str, list] = {k: [] for k in ("audio", "controls", "identity", "reference", "roles", "motion")}
        for k, first_chunk, u in zip(picks, first, fraction):
            clip = self.clips[k]
            motion = self.targets[k]
            T = len(motion)
            start = 0 if first_chunk else int(u * (max(0, T - C) + 1))
            window = make_window(clip.inputs, self.controls[k], self.identities[k], motion, start, self.config, C)
            target = np.zeros((C, NUM_CHANNELS), np.float32)
            n = min(C, T - start)
            target[:n] = motion[start:start + n]
            for name in ("audio", "controls", "identity", "reference", "roles"):
                rows[name].append(getattr(window, name))
            rows["motion"].append(np.concatenate([window.reference, target]))
        return {k: np.stack(v) for k, v in rows.items()}


# --- validation ----------------------------------------------------------------------------------

def lip_scores(model: MotionFlowModel, clips: Sequence[Clip], *, steps: int = 10, seed: int = 0) -> dict:
    """Lip metrics of ``model`` on ``clips`` (pooled closure counts, mean correlation) and the score."""
    from studio.generate.lipsync import ClosureCounts, closure_counts, mouth_correlation
    from studio.generate.rig import mouth_gap

    runner = TorchRunner.from_model(model, device="cpu")
    counts = ClosureCounts(0, 0, 0, 0)
    correlations = []
    for clip in clips:
        # plain sampling (trust 1) on every clip, aligned ones included, as the shipped model was chosen
        motion = np.concatenate([c.values for c in stream_motion(runner, clip.inputs, clip.conditions, clip.canonical,
                                                                 steps=steps, seed=seed, audio_trust=1.0)])
        gap = mouth_gap(motion)
        counts = counts + closure_counts(gap, FPS, clip.phones)
        r = mouth_correlation(gap, mouth_gap(clip.motion))
        if np.isfinite(r):
            correlations.append(r)
    recall = counts.recall if counts.bilabials else 0.0
    false_rate = counts.false_rate if counts.open_vowels else 0.0
    correlation = float(np.mean(correlations)) if correlations else 0.0
    return {"items": len(clips), "closure_recall": recall, "false_closure_rate": false_rate,
            "mouth_correlation": correlation, "bilabials": counts.bilabials,
            "score": 0.5 * (recall + correlation) - false_rate}


def format_lip_scores(scores: dict) -> str:
    """One line of :func:`lip_scores`: the score and its parts."""
    return (f"lip score {scores['score']:.3f} (closure recall {scores['closure_recall']:.3f}, mouth correlation "
            f"{scores['mouth_correlation']:.3f}, false closures {scores['false_closure_rate']:.3f})")


# --- the loop ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FitOptions:
    """Options of :func:`fit` (``studio train fit``)."""

    hours: float | None = None
    steps: int | None = None
    batch: int = 32
    seed: int = 0
    lr: float | None = None             # default 2e-3, or 5e-4 when fine-tuning (--init)
    warmup: int = 300
    weight_decay: float = 0.01
    ema: float = 0.999
    checkpoint_minutes: float = 5.0
    validate_minutes: float = 10.0
    validate_seconds: float = 300.0     # seconds of validation audio per validation (first items)
    validate_steps: int = 10
    log_every: int = 50
    threads: int | None = None          # torch threads (default: 1 or every core, measured)
    source_shares: dict | None = None   # share of the windows per corpus source (WindowSampler)
    config: dict = field(default_factory=dict)  # ModelConfig fields: a new model's, or TRAINING_FIELDS (--init)

    def learning_rate(self, fine_tuning: bool) -> float:
        return self.lr if self.lr is not None else (5e-4 if fine_tuning else 2e-3)


#: ModelConfig fields that only shape training (regularization, loss weights): a fine-tuning run
#: may change them; every other field is the architecture or the meaning of the inputs.
TRAINING_FIELDS = ("emotion_dropout", "acoustic_dropout", "mel_augment", "velocity_weight", "acceleration_weight",
                   "closure_weight")


def fine_tuning_config(config: ModelConfig, changes: dict) -> ModelConfig:
    """``config`` with ``changes`` to its :data:`TRAINING_FIELDS` (a fine-tuned model keeps the rest)."""
    fixed = sorted(set(changes) - set(TRAINING_FIELDS))
    if fixed:
        raise TrainError(f"a fine-tuned model keeps its architecture and inputs: {', '.join(fixed)} cannot change "
                         f"(only {', '.join(TRAINING_FIELDS)} can)")
    return replace(config, **changes)


def _rng_state(np_rng: np.random.Generator, generator: torch.Generator) -> dict:
    return {"numpy": np_rng.bit_generator.state, "torch": generator.get_state(), "global": torch.get_rng_state()}


def _restore_rng(state: dict, np_rng: np.random.Generator, generator: torch.Generator) -> None:
    np_rng.bit_generator.state = state["numpy"]
    generator.set_state(state["torch"])
    torch.set_rng_state(state["global"])


def save_checkpoint(path: Path, data: dict) -> None:
    """Write a checkpoint atomically (torch's zip format, tensors and plain data only)."""
    buffer = io.BytesIO()
    torch.save(data, buffer)
    atomic_write(path, buffer.getvalue())


def _schedule(step: int, planned: int, warmup: int, time_progress: float = 0.0) -> float:
    """Learning-rate scale: linear warm-up, then a cosine from 1 to 0.1 over the run. The run's
    progress is the larger of its steps over the planned steps and, with a time budget, its time
    over the budget — so a machine that slows down after the plan was made (other work on its
    cores) still ends the run with the learning rate decayed, not cut off halfway."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, planned - warmup), time_progress))
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def _to_torch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def fit(data: str | Path, out: str | Path, *, init: str | Path | None = None, options: FitOptions = FitOptions(),
        log: Callable[[str], None] = print) -> dict:
    """Train (or resume training) on ``data`` into ``out`` (module docstring); returns a summary."""
    return Trainer(data, out, init=init, options=options, log=log).run()


class Trainer:
    """One run of :func:`fit`: a new model, one from ``init``, or the state in ``out/last.pt``."""

    def __init__(self, data: str | Path, out: str | Path, *, init: str | Path | None, options: FitOptions,
                 log: Callable[[str], None]):
        from studio.generate.neural.inputs import NUM_INPUTS

        self.out = Path(out)
        self.log = log
        self.last_path, self.best_path, self.log_path = self.out / "last.pt", self.out / "best.pt", self.out / "log.jsonl"
        torch.set_num_threads(options.threads or 1)
        train, val, kind = load_training_data(data, self.out / "inputs")
        self.out.mkdir(parents=True, exist_ok=True)
        self.val_clips = _first_seconds(val, options.validate_seconds)
        resume = load_checkpoint(self.last_path) if self.last_path.is_file() else None
        if resume is not None and "train" not in resume:
            raise TrainError(f"{self.last_path}: holds no training state to resume from")
        if resume is not None:
            model = model_from_checkpoint({"config": resume["config"], "model": resume["train"]["weights"]},
                                          self.last_path)
            saved = FitOptions(**resume["train"]["options"])  # a resumed run keeps its options but the budget
            options = replace(saved, hours=saved.hours if options.hours is None else options.hours,
                              steps=saved.steps if options.steps is None else options.steps)
        elif init is not None:
            model = model_from_checkpoint(load_checkpoint(init), init)
            if options.config:
                model.config = fine_tuning_config(model.config, options.config)
        else:
            config = ModelConfig(num_inputs=NUM_INPUTS, **options.config)
            mean, std = motion_statistics(train, config)
            torch.manual_seed(options.seed)
            model = MotionFlowModel(config, mean, std)
        if model.config.fps != FPS:
            raise TrainError(f"the model runs at {model.config.fps:g} fps; training data is at {FPS:g} fps")
        if options.hours is None and options.steps is None:
            options = replace(options, hours=DEFAULT_HOURS)
        self.options, self.model, self.config = options, model.train(), model.config
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        self.fine_tuning = init is not None or bool(resume and resume["train"].get("fine_tuning"))
        self.lr = options.learning_rate(self.fine_tuning)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=self.lr, betas=(0.9, 0.99),
                                           weight_decay=options.weight_decay)
        self.np_rng = np.random.default_rng(options.seed)
        self.generator = torch.Generator().manual_seed(options.seed)
        self.sampler = WindowSampler(train, self.config, options.source_shares)
        self.step, self.base_elapsed, self.best_score, self.planned = 0, 0.0, -math.inf, options.steps
        if resume is not None:
            state = resume["train"]
            self.ema.load_state_dict(resume["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            _restore_rng(state["rng"], self.np_rng, self.generator)
            self.step, self.base_elapsed, self.best_score = state["step"], state["elapsed"], state["best_score"]
            self.planned = options.steps if options.steps is not None else state["planned_steps"]
        self.resumed, self.init = resume is not None, init
        self.budget = options.hours * 3600.0 if options.hours is not None else math.inf
        self.described = {"data": str(data), "kind": kind, "train_items": len(train), "val_items": len(self.val_clips),
                          "train_hours": round(sum(c.seconds for c in train) / 3600, 4)}
        self.validated_step = -1
        self.run_start = time.perf_counter()

    # bookkeeping
    def elapsed(self) -> float:
        """Seconds of training of this ``out``, earlier runs included."""
        return self.base_elapsed + time.perf_counter() - self.run_start

    def write_log(self, record: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def checkpoint(self, metrics: dict | None = None) -> dict:
        """The inference checkpoint: config and EMA weights (normalization included), metrics."""
        return {"format": CHECKPOINT_FORMAT, "version": 1, "config": self.config.to_dict(),
                "model": self.ema.state_dict(), "step": self.step, "metrics": metrics or {}, "data": self.described,
                "parameters": parameter_count(self.model)}

    def save_last(self) -> None:
        data = self.checkpoint()
        data["train"] = {"weights": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                         "rng": _rng_state(self.np_rng, self.generator), "step": self.step, "elapsed": self.elapsed(),
                         "best_score": self.best_score, "planned_steps": self.planned, "fine_tuning": self.fine_tuning,
                         "options": asdict(self.options)}
        save_checkpoint(self.last_path, data)
        self.write_log({"event": "checkpoint", "step": self.step, "elapsed": round(self.elapsed(), 1)})

    def validate(self) -> None:
        """Lip scores of the EMA weights; ``best.pt`` when they are the best so far."""
        if self.validated_step == self.step:
            return
        self.validated_step = self.step
        if not self.val_clips:
            save_checkpoint(self.best_path, self.checkpoint({"note": "no validation items: the latest weights"}))
            return
        t0 = time.perf_counter()
        scores = lip_scores(self.ema, self.val_clips, steps=self.options.validate_steps)
        scores["seconds"] = round(time.perf_counter() - t0, 2)
        improved = scores["score"] > self.best_score
        self.write_log({"event": "validate", "step": self.step, "elapsed": round(self.elapsed(), 1), **scores,
                        "best": improved})
        self.log(f"step {self.step}: {format_lip_scores(scores)}" + (" — best so far, saved" if improved else ""))
        if improved:
            self.best_score = scores["score"]
            save_checkpoint(self.best_path, self.checkpoint(scores))

    # training
    def train_step(self) -> dict:
        """One optimizer step on a fresh batch; its loss and parts."""
        time_progress = self.elapsed() / self.budget if math.isfinite(self.budget) else 0.0
        scale = _schedule(self.step, self.planned or 10**9, self.options.warmup, time_progress)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * scale
        batch = _to_torch(self.sampler.sample(self.np_rng, self.options.batch))
        loss, parts = self.model.loss(batch, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.step += 1
        decay = min(self.options.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters()):
                e.lerp_(p, 1.0 - decay)
        return {"loss": float(loss.detach()), "lr": self.lr * scale, **parts}

    def tune(self, here: int, clock: dict) -> None:
        """Over this run's steps 10…30: unless ``threads`` was given, time 10 steps on one thread and
        10 on every core and keep the faster (on a busy machine a second thread that must wait for
        its core makes every step slower); with ``--hours`` alone, plan the schedule's length."""
        cores = os.cpu_count() or 1
        trying = self.options.threads is None and cores > 1
        if here not in (10, 20, 30) or not (trying or (self.planned is None and here != 20)):
            return
        now = time.perf_counter()
        if here == 10:
            clock["start"] = now
            return
        if here == 20:
            clock[1], clock["start"] = (now - clock["start"]) / 10, now
            torch.set_num_threads(cores)
            return
        if trying:
            clock[cores] = (now - clock["start"]) / 10
            threads = min((1, cores), key=clock.get)
            torch.set_num_threads(threads)
            per_step = clock[threads]
            self.write_log({"event": "threads", "step": self.step, "threads": threads,
                            "seconds_per_step": {"1": clock[1], str(cores): clock[cores]}})
        else:
            per_step = (now - clock["start"]) / 20
        if self.planned is None:
            self.planned = self.step + max(1, int(0.95 * (self.budget - self.elapsed()) / per_step))
            self.write_log({"event": "plan", "step": self.step, "planned_steps": self.planned,
                            "seconds_per_step": per_step})
            self.log(f"{per_step:.3f} s per step on {torch.get_num_threads()} thread(s): planning {self.planned} "
                     f"steps in {self.options.hours:g} h")

    def run(self) -> dict:
        self.write_log({"event": "start", "step": self.step, "resumed": self.resumed,
                        "init": str(self.init) if self.init else None, "parameters": parameter_count(self.model),
                        "config": self.config.to_dict(), "options": asdict(self.options), **self.described})
        self.log(f"training {parameter_count(self.model):,} parameters on {self.described['train_items']} "
                 f"{self.described['kind']} clips ({self.described['train_hours']:.2f} h), validating on "
                 f"{len(self.val_clips)}" + (f"; resuming at step {self.step}" if self.resumed else ""))
        first_step, clock, recent = self.step, {}, []
        last_checkpoint = last_validation = time.perf_counter()
        while not ((self.planned is not None and self.step >= self.planned) or self.elapsed() >= self.budget):
            recent.append(self.train_step())
            self.tune(self.step - first_step, clock)
            if self.step % self.options.log_every == 0:
                mean = {k: round(float(np.mean([r[k] for r in recent])), 6) for k in recent[0]}
                self.write_log({"event": "train", "step": self.step, "elapsed": round(self.elapsed(), 1), **mean})
                recent = []
            if time.perf_counter() - last_validation >= 60 * self.options.validate_minutes:
                self.validate()
                last_validation = time.perf_counter()
            if time.perf_counter() - last_checkpoint >= 60 * self.options.checkpoint_minutes:
                self.save_last()
                last_checkpoint = time.perf_counter()
        self.validate()
        self.save_last()
        summary = {"step": self.step, "elapsed_s": round(self.elapsed(), 1), "best_score": self.best_score,
                   "best": str(self.best_path), "last": str(self.last_path),
                   "parameters": parameter_count(self.model)}
        self.write_log({"event": "end", **summary})
        return summary


def _first_seconds(clips: Sequence[Clip], seconds: float) -> list[Clip]:
    """The first clips, up to (just past) ``seconds`` of audio."""
    out, total = [], 0.0
    for clip in clips:
        if total >= seconds:
            break
        out.append(clip)
        total += clip.seconds
    return out


# --- weight averages -----------------------------------------------------------------------------

#: Tensors a weight average must find equal in both checkpoints: the motion normalization, which
#: fine-tuning keeps, so two fine-tunes of one model share it.
SHARED_TENSORS = ("motion_mean", "motion_std")


def average_checkpoints(first: str | Path, second: str | Path, weight: float = 0.5, *,
                        validate: str | Path | None = None) -> dict:
    """The checkpoint whose weights are ``weight · first + (1 − weight) · second``, tensor by tensor.

    Averaging the weights of two fine-tunes of one model (a "model soup") gives a model between
    them that often beats both; it only makes sense for models that started from the same weights,
    so both must have the same architecture and inputs (every config field but the
    :data:`TRAINING_FIELDS`, whose values are taken from ``first``), the same tensors and the same
    motion normalization. The result is an inference checkpoint (no training state to resume);
    its ``data`` names both sources and the weight; with ``validate`` (training data, as for
    :func:`fit`) its ``metrics`` are the lip scores on that data's validation items, as a run's
    ``best.pt`` has them.
    """
    weight = float(weight)
    if not 0.0 <= weight <= 1.0:
        raise TrainError(f"the weight of the first checkpoint must be within 0…1, got {weight:g}")
    a, b = load_checkpoint(first), load_checkpoint(second)
    # through ModelConfig, so that a field added since a checkpoint was written reads as its default
    ca, cb = (ModelConfig.from_dict(c["config"]).to_dict() for c in (a, b))
    differ = sorted(k for k in ca if k not in TRAINING_FIELDS and ca[k] != cb[k])
    if differ:
        raise TrainError(f"{first} and {second} differ in {', '.join(differ)}: only models with the same "
                         f"architecture and inputs can be averaged")
    wa, wb = a["model"], b["model"]
    if set(wa) != set(wb) or any(wa[k].shape != wb[k].shape for k in wa):
        raise TrainError(f"{first} and {second} do not hold the same tensors")
    unequal = [k for k in wa if (k in SHARED_TENSORS or not wa[k].is_floating_point()) and not torch.equal(wa[k], wb[k])]
    if unequal:
        raise TrainError(f"{first} and {second} differ in {', '.join(unequal)}: they are not fine-tunes of one "
                         f"model, so their weights cannot be averaged")
    mixed = {k: (torch.lerp(wb[k].double(), wa[k].double(), weight).to(wa[k].dtype) if wa[k].is_floating_point()
                 else wa[k].clone())
             for k in wa}
    model = model_from_checkpoint({"config": ca, "model": mixed}, first)  # loads, or says why not
    metrics = {}
    if validate is not None:
        clips = _first_seconds(validation_clips(validate), FitOptions.validate_seconds)
        if not clips:
            raise TrainError(f"{validate}: no validation items to score the average on")
        started = time.perf_counter()
        metrics = {**lip_scores(model, clips), "seconds": round(time.perf_counter() - started, 2),
                   "data": str(validate)}
    return {"format": CHECKPOINT_FORMAT, "version": 1, "config": ca, "model": mixed,
            "step": 0, "metrics": metrics,
            "data": {"kind": "average", "weight": weight,
                     "sources": [{"checkpoint": str(path), "step": c.get("step"), "data": c.get("data")}
                                 for path, c in ((first, a), (second, b))]},
            "parameters": a.get("parameters")}
