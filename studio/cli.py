"""The ``studio`` command: no arguments opens the desktop application; subcommands run headless.

    studio info [--json]                                  versions and compute devices that really work
    studio export-motion PROJECT|MOTION -o OUT [--format json|npz|csv] [--frames A:B]
    studio import-motion MOTION (-p PROJECT [-o OUT] | -n NEW) [--as-layer NAME]
    studio generate AUDIO [--generator rig|neural] [--transcript FILE | --text "…"] [--language L]
                   [--emotion LABEL] [--strength S] [--intensity X] [--fps N] [--seed N]
                   [--steps N] [--guidance G] [--audio-trust A] [--device auto|cpu|cuda] [--model FILE] -o motion.json|npz|csv
    studio eval lipsync (--corpus MANIFEST | AUDIO --reference PHONES) [--mode with|without|both]
    studio eval build-corpus OUT [--items N] [--seed N]
    studio train corpus OUT [--items N] [--seed N] [--workers W] [--piper-share X] [--natural-share X] [--clean-share X]
                        [--piper-sentences natural|bank]           the neural model's training corpus
    studio train fit DATA [--out DIR] [--init CHECKPOINT] [--hours H] [--steps N] [--batch B] [--seed S]
                     [--source-shares SRC=X,…] [--model-config FIELD=VALUE,…] [--threads N]
    studio bench core [--minutes M] [--repeat N]
    studio bench generate [--seconds S] [--repeat N]
    studio bench gui [--minutes M] [--frames N]           window latency during jobs, 2D view scrub fps
    studio demo                                           the bundled demo (portrait + speech → MP4, mesh)
    studio screenshots OUT_DIR                            the main window at the main steps (offscreen PNGs)

Errors for bad input are printed as one line naming the file and the problem (exit status 2);
nothing is written when a command fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# `studio` with no command opens the window: its numpy work is per frame on small matrices while
# jobs run in other processes on the same cores, where OpenBLAS's worker threads cost more than
# they save (deforming a FLAME head took 16 ms a frame instead of 1.3 ms beside a busy job).
# OpenBLAS reads this once, when numpy loads, so it is set before that.
if len(sys.argv) == 1 and Path(sys.argv[0]).name in ("studio", "cli.py"):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from studio.core.document import BaseMotion, Project
from studio.core.fcurve import FCurve, Interpolation
from studio.core.keypoints import MEAN_FACE
from studio.core.motion import CHANNELS, NEUTRAL_FRAME
from studio.core.motion_file import FORMATS, Motion, MotionFileError, format_of
from studio.core.project_file import (
    EXTENSION,
    ProjectFileError,
    load_project,
    save_project,
)


class CommandError(Exception):
    """A user-facing failure: printed as ``studio: <message>`` with exit status 2."""


def _registry():
    from studio.plugins import default_registry

    return default_registry()


# --- motion in and out --------------------------------------------------------------------------

def _parse_frames(text: str | None, num_frames: int) -> np.ndarray:
    if not text:
        return np.arange(num_frames)
    start, sep, end = text.partition(":")
    try:
        a = int(start) if start else 0
        b = int(end) if sep and end else num_frames
    except ValueError:
        raise CommandError(f"--frames must look like START:END, got {text!r}") from None
    if not 0 <= a < b <= num_frames:
        raise CommandError(f"--frames {text} is outside the project's 0:{num_frames}")
    return np.arange(a, b)


def project_motion(project: Project, frames: np.ndarray | None = None) -> Motion:
    """The evaluated motion of a project with its identity, ready for a motion exporter."""
    return Motion(project.evaluate(frames), project.fps, project.identity)


def _read_any_motion(path: Path) -> Motion:
    if path.suffix.lower() == EXTENSION:
        return project_motion(load_project(path))
    return _registry().importer_for(path, kind="motion").load(path)


def cmd_export_motion(args) -> int:
    src = Path(args.source)
    out = Path(args.output)
    fmt = format_of(out, args.format)
    if src.suffix.lower() == EXTENSION:
        project = load_project(src)
        motion = project_motion(project, _parse_frames(args.frames, project.num_frames))
    else:
        motion = _read_any_motion(src)
        if args.frames:
            motion = Motion(motion.values[_parse_frames(args.frames, len(motion))], motion.fps,
                            motion.canonical_keypoints)
    exporter = _registry().exporter(f"motion_{fmt}")
    exporter.export(motion, out)
    print(f"wrote {out} ({len(motion)} frames at {motion.fps:g} fps, {fmt})")
    return 0


def resample_motion(motion: Motion, fps: float) -> Motion:
    """Linear resampling of every channel to another frame rate (same duration)."""
    if fps == motion.fps or len(motion) < 2:
        return motion
    n = max(1, int(round(len(motion) * fps / motion.fps)))
    src_t = np.arange(len(motion)) / motion.fps
    dst_t = np.arange(n) / fps
    values = np.stack([np.interp(dst_t, src_t, motion.values[:, c]) for c in range(len(CHANNELS))], axis=1)
    return Motion(values.astype(np.float32), fps, motion.canonical_keypoints)


def cmd_import_motion(args) -> int:
    motion = _read_any_motion(Path(args.motion))
    if args.project:
        project = load_project(args.project)
        target = Path(args.output or args.project)
        if motion.fps != project.fps:
            print(f"resampling {motion.fps:g} fps → {project.fps:g} fps", file=sys.stderr)
            motion = resample_motion(motion, project.fps)
    else:
        target = Path(args.new)
        if target.exists() and not args.force:
            raise CommandError(f"{target} exists; use --project to import into it or --force to replace it")
        project = Project(motion.fps, len(motion))
    n = len(motion)
    with project.macro(f"Import {args.motion}"):
        if project.identity is None and not np.array_equal(motion.canonical_keypoints, MEAN_FACE):
            project.set_identity(motion.canonical_keypoints)
        if n > project.num_frames:
            project.set_timing(num_frames=n)
        if args.as_layer:
            layer_id = project.add_layer(args.as_layer)
            frames = np.arange(n)
            for c, channel in enumerate(CHANNELS):
                column = motion.values[:, c]
                if np.any(column != NEUTRAL_FRAME[c]):
                    project.set_curve(("layer", layer_id, channel),
                                      FCurve.from_keys(frames, column, Interpolation.LINEAR), "Import motion")
            what = f"layer {args.as_layer!r}"
        else:
            conditions = project.conditions(np.arange(n))
            project.set_base(BaseMotion(motion.values, conditions, "imported", {"source": str(args.motion)}))
            what = "base motion"
    save_project(project, target)
    print(f"imported {n} frames from {args.motion} as the {what} of {target}")
    return 0


# --- generate and evaluate ----------------------------------------------------------------------

def _transcript(args) -> str | None:
    if getattr(args, "text", None) is not None:
        if not args.text.strip():
            raise CommandError("--text is empty")
        return args.text
    if getattr(args, "transcript", None):
        from studio.audio.phonemes import read_transcript

        return read_transcript(Path(args.transcript))
    return None


class _ProgressLine:
    """A one-line percentage on stderr while a long command runs (only on a terminal)."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.last = -1

    def __call__(self, fraction: float) -> None:
        percent = int(100 * fraction)
        if self.tty and percent != self.last:
            self.last = percent
            print(f"\r{self.label} {percent:3d} %", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and self.last >= 0:
            print(file=sys.stderr)


def _run_job(label: str, job, request):
    """``job(request, progress=…)`` with a progress line; its warnings printed on stderr."""
    bar = _ProgressLine(label)
    try:
        result = job(request, progress=bar)
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"studio: warning: {warning}", file=sys.stderr)
    return result


def _stages(seconds: dict[str, float]) -> str:
    return ", ".join(f"{stage} {value:.2f} s" for stage, value in seconds.items())


def cmd_generate(args) -> int:
    from studio.generate.pipeline import GenerateRequest, generate

    out = Path(args.output)
    fmt = format_of(out, args.format)
    request = GenerateRequest(Path(args.audio), transcript=_transcript(args), language=args.language,
                              generator=args.generator, fps=args.fps, seed=args.seed, emotion=args.emotion,
                              strength=args.strength, intensity=args.intensity, steps=args.steps,
                              guidance=args.guidance, audio_trust=args.audio_trust, device=args.device,
                              model=Path(args.model) if args.model else None)
    result = _run_job("generating", generate, request)
    _registry().exporter(f"motion_{fmt}").export(result.motion, out)
    if args.phones:
        from studio.audio.reference import write_phones_json

        write_phones_json(result.phones, Path(args.phones))
    total = sum(result.seconds.values())
    print(f"wrote {out}: {len(result.motion)} frames at {result.motion.fps:g} fps from {result.duration:.2f} s "
          f"of audio, phones {result.phone_method}, {total:.2f} s")
    return 0


def _pairs(text: str | None, flag: str, what: str) -> dict[str, str] | None:
    """``"a=1,b=2"`` → ``{"a": "1", "b": "2"}`` (None when not given)."""
    if not text:
        return None
    pairs = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise CommandError(f"{flag}: expected {what} pairs separated by commas, got {part!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _source_shares(text: str | None) -> dict[str, float] | None:
    """``"espeak-ng=0.35,flite=0.35,festival=0.3"`` → a dict (None when not given)."""
    pairs = _pairs(text, "--source-shares", "SOURCE=SHARE")
    try:
        return None if pairs is None else {name: float(value) for name, value in pairs.items()}
    except ValueError:
        raise CommandError(f"--source-shares: shares are numbers, got {text!r}") from None


def _model_config(text: str | None) -> dict:
    """``"width=128,mouth_residual=false"`` → ModelConfig fields of a new model, typed as declared."""
    from dataclasses import fields

    from studio.generate.neural.model import ModelConfig

    types = {f.name: f.type for f in fields(ModelConfig) if f.name != "num_inputs"}
    config = {}
    for name, value in (_pairs(text, "--model-config", "FIELD=VALUE") or {}).items():
        kind = types.get(name)
        if kind is None:
            raise CommandError(f"--model-config: no field {name!r}; the fields are {', '.join(types)}")
        try:
            if kind == "bool":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                config[name] = value.lower() in ("true", "1")
            else:
                config[name] = {"int": int, "float": float}.get(kind, str)(value)
        except ValueError:
            raise CommandError(f"--model-config: {name} is {kind}, got {value!r}") from None
    return config


def cmd_eval_lve(args) -> int:
    """Lip vertex error (and upper-face dynamics deviation) of a motion-driven head against a
    reference mesh sequence of the same topology."""
    from studio.render.mesh import metrics
    from studio.render.mesh.animate import load_animated_head
    from studio.render.mesh.deform import FaceFrame

    if not (args.target and args.motion and args.reference):
        raise CommandError("lve needs the head (MESH), --motion FILE and --reference SEQUENCE.npy")
    head = load_animated_head(args.target, keypoints=args.keypoints, flame_model=args.flame_model)
    motion = _read_any_motion(Path(args.motion))
    try:
        reference = np.load(args.reference, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise CommandError(f"{args.reference}: not a readable .npy mesh sequence ({exc})") from exc
    if reference.ndim != 3 or reference.shape[1:] != head.rest.shape:
        raise CommandError(f"{args.reference}: shape {reference.shape} does not match the head's "
                           f"(T, {head.rest.shape[0]}, 3)")
    predicted = head.deform(np.asarray(motion.values, dtype=np.float64))
    frame = FaceFrame.from_keypoints(np.stack([head.rest[list(ids)].mean(0) for ids in head.keypoint_vertices]))
    rest_face = frame.to_face(head.rest)
    lips = metrics.lip_vertices(rest_face, head.canonical_keypoints)
    upper = metrics.upper_face_vertices(rest_face, head.canonical_keypoints)
    lve = metrics.lip_vertex_error(predicted, reference, lips)
    fdd = metrics.upper_face_dynamics_deviation(predicted, reference, head.rest, upper)
    frames = min(len(predicted), len(reference))
    print(f"{head.name}: {frames} frames, {len(lips)} lip vertices, {len(upper)} upper-face vertices")
    scale, unit = (1000.0, "mm") if head.kind in ("flame", "portrait") else (1.0, "mesh units")
    print(f"  LVE {scale * lve:.4g} {unit} (mean over frames of the max lip-vertex error)")
    print(f"  FDD {scale * fdd:.4g} {unit} (upper-face dynamics deviation)")
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": frames, "lve": lve, "fdd": fdd, "lip_vertices": len(lips),
                                               "upper_face_vertices": len(upper), "units": "mesh units"},
                                              indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def cmd_eval(args) -> int:
    from studio.generate import evaluate

    if args.what == "lve":
        return cmd_eval_lve(args)
    if args.what == "build-corpus":
        from studio.generate.devcorpus import build_dev_corpus

        bar = _ProgressLine("building")
        try:
            manifest = build_dev_corpus(Path(args.target), items=args.items, seed=args.seed,
                                        progress=lambda done, total: bar(done / max(1, total)))
        finally:
            bar.close()
        print(f"wrote {manifest}")
        return 0
    if args.corpus:
        items = evaluate.items_from_manifest(Path(args.corpus), split=args.split, limit=args.limit)
    elif args.target and args.reference:
        items = evaluate.single_item(Path(args.target), Path(args.reference), _transcript(args), args.language)
    else:
        raise CommandError("give --corpus MANIFEST, or AUDIO with --reference PHONES")
    if not items:
        raise CommandError("no items to evaluate")
    if args.what == "controls":
        return _eval_controls(args, items)
    modes = {"with": [True], "without": [False], "both": [True, False]}[args.mode]
    results = {}
    for with_transcript in modes:
        if with_transcript and any(i.transcript is None for i in items):
            raise CommandError("--mode with needs a transcript for every item")
        bar = _ProgressLine("with transcript" if with_transcript else "without transcript")
        try:
            report = evaluate.evaluate_lipsync(items, with_transcript=with_transcript, fps=args.fps, seed=args.seed,
                                               generator=args.generator, model=Path(args.model) if args.model else None,
                                               audio_trust=args.audio_trust,
                                               progress=lambda i, score: bar((i + 1) / len(items)))
        finally:
            bar.close()
        print(evaluate.format_summary(report.summary()))
        results["with" if with_transcript else "without"] = json.loads(report.to_json())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def _eval_controls(args, items) -> int:
    """``studio eval controls``: the neural model's diversity across seeds and its emotion offsets."""
    from studio.generate import evaluate

    bar = _ProgressLine("controls")
    try:
        report = evaluate.evaluate_controls(items, model=Path(args.model) if args.model else None,
                                            seeds=(args.seed, args.seed + 1), fps=args.fps,
                                            progress=lambda k: bar((k + 1) / len(items)))
    finally:
        bar.close()
    print(evaluate.format_controls(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


# --- train ------------------------------------------------------------------------------------

def cmd_train_corpus(args) -> int:
    """Build (or resume) the neural model's training corpus and report its size and build time."""
    from studio.generate.neural.corpus import SPLITS, build_train_corpus, read_manifest

    if not args.target:
        raise CommandError("studio train corpus needs the output folder")
    options = {key: getattr(args, key) for key in ("items", "seed", "workers", "piper_share", "natural_share",
                                                     "piper_sentences", "clean_share")
               if getattr(args, key) is not None}
    bar = _ProgressLine("building")
    try:
        manifest = build_train_corpus(Path(args.target), progress=lambda done, total: bar(done / max(1, total)),
                                      **options)
    finally:
        bar.close()
    data = read_manifest(manifest.parent)
    report = data["report"]
    splits = {split: sum(1 for item in data["items"] if item["split"] == split) for split in SPLITS}
    voices = report.get("synthesizers", {})
    print(f"wrote {manifest}: {report['items']} items ({', '.join(f'{n} {s}' for s, n in splits.items())}; "
          f"{', '.join(f'{n} {s}' for s, n in voices.items())}), "
          f"{report['hours']:.3f} h of audio, {report['bytes'] / 1e6:.1f} MB, {report['phones_from_transcript']} with "
          f"phones aligned to the transcript; built {report['built']}, "
          f"kept {report['kept']}, refreshed {report.get('refreshed', 0)}, {report['seconds']:.1f} s with {report['workers']} workers")
    return 0


def cmd_train_fit(args) -> int:
    """Train the neural model on a corpus (or fine-tune it on a motion dataset); resumable."""
    from studio.generate.neural.runner import MODELS_DIR
    from studio.generate.neural.train import FitOptions, fit

    if not args.target:
        raise CommandError("studio train fit needs the training data: a corpus folder or a motion dataset folder")
    if args.threads is not None and args.threads < 1:
        raise CommandError(f"--threads must be ≥ 1, got {args.threads}")
    options = FitOptions(hours=args.hours, steps=args.steps, batch=args.batch, seed=args.seed or 0,
                         source_shares=_source_shares(args.source_shares), config=_model_config(args.model_config),
                         threads=args.threads)
    out = Path(args.out) if args.out else MODELS_DIR
    summary = fit(Path(args.target), out, init=Path(args.init) if args.init else None, options=options,
                  log=lambda line: print(line, file=sys.stderr))
    print(f"trained {summary['parameters']:,} parameters for {summary['step']} steps "
          f"({summary['elapsed_s'] / 3600:.2f} h): best lip score {summary['best_score']:.3f} in {summary['best']}; "
          f"resume state in {summary['last']}")
    return 0


def cmd_train_export(args) -> int:
    """A checkpoint → ONNX (one velocity evaluation; checked against torch before it is written)."""
    from studio.generate.neural.runner import export_onnx

    if not args.target or not args.out:
        raise CommandError("studio train export needs the checkpoint and --out FILE.onnx")
    result = export_onnx(Path(args.target), Path(args.out))
    print(f"wrote {args.out}: {result}")
    return 0


def cmd_train_average(args) -> int:
    """Two fine-tunes of one model → the weighted average of their weights (a "model soup")."""
    from studio.generate.neural.train import (
        average_checkpoints,
        format_lip_scores,
        save_checkpoint,
    )

    if not args.target or len(args.more) != 1 or not args.out:
        raise CommandError("studio train average needs two checkpoints and --out FILE.pt")
    weight = 0.5 if args.weight is None else args.weight
    data = average_checkpoints(Path(args.target), Path(args.more[0]), weight,
                               validate=Path(args.validate) if args.validate else None)
    save_checkpoint(Path(args.out), data)
    print(f"wrote {args.out}: {weight:g} × {args.target} + {1 - weight:g} × {args.more[0]} "
          f"({len(data['model'])} tensors, {data['parameters']:,} parameters)")
    if data["metrics"]:
        print(f"  validation ({data['metrics']['items']} items of {args.validate}): "
              f"{format_lip_scores(data['metrics'])}")
    return 0


def cmd_train(args) -> int:
    if args.what != "average" and args.more:
        raise CommandError(f"studio train {args.what} takes one folder or file, got {len(args.more) + 1}")
    if args.what == "average":
        return cmd_train_average(args)
    if args.what == "corpus":
        return cmd_train_corpus(args)
    if args.what == "export":
        return cmd_train_export(args)
    return cmd_train_fit(args)


# --- info, bench, demo ------------------------------------------------------------------------

def cmd_info(args) -> int:
    from studio.info import collect_info, format_info

    info = collect_info()
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 0


def cmd_bench(args) -> int:
    from studio import bench

    if args.what == "core":
        result = bench.bench_core(args.minutes, args.fps or 25.0, args.repeat)
        print(json.dumps(result, indent=2) if args.json else bench.format_core(result))
    elif args.what == "generate":
        result = bench.bench_generate(args.seconds, args.repeat)
        print(json.dumps(result, indent=2) if args.json else bench.format_generate(result))
    elif args.what == "render":
        result = bench.bench_render(args.seconds, args.frames, args.repeat)
        print(json.dumps(result, indent=2) if args.json else bench.format_render(result))
    elif args.what == "mesh":
        result = bench.bench_mesh(args.seconds, args.fps or 30.0, args.repeat)
        print(json.dumps(result, indent=2) if args.json else bench.format_mesh(result))
    elif args.what == "neural":
        from studio.generate.neural.runner import (
            DEFAULT_CHECKPOINT,
            bench_neural,
            format_bench_neural,
            missing_model_message,
        )

        model = Path(args.model) if args.model else DEFAULT_CHECKPOINT
        if not model.is_file():
            raise CommandError(missing_model_message(model))
        result = bench_neural(model, args.seconds, args.steps, device=args.device, repeat=min(args.repeat, 5))
        print(json.dumps(result, indent=2) if args.json else format_bench_neural(result))
    elif args.what == "gui":
        from studio.qt.benchmarks import bench_gui, format_gui

        result = bench_gui(args.minutes, args.frames, min(args.repeat, 3))
        print(json.dumps(result, indent=2) if args.json else format_gui(result))
    return 0


def cmd_screenshots(args) -> int:
    from studio.qt.screenshots import take_screenshots

    for path in take_screenshots(Path(args.output)):
        print(f"wrote {path}")
    return 0


def cmd_render(args) -> int:
    from studio.render.job import RenderRequest, render_video

    motion = _read_any_motion(Path(args.motion)) if args.motion else None
    audio = args.audio_file or args.audio
    if motion is None and audio is None:
        raise CommandError("give AUDIO to generate from, or --motion FILE (with --audio for the sound)")
    request = RenderRequest(Path(args.portrait), Path(args.output), audio=Path(audio) if audio else None, motion=motion,
                            transcript=_transcript(args), language=args.language, emotion=args.emotion,
                            strength=args.strength, intensity=args.intensity, fps=args.fps, seed=args.seed,
                            keypoints=Path(args.keypoints) if args.keypoints else None, face_index=args.face,
                            backend=args.backend, device=args.device, frames_folder=args.png)
    result = _run_job("rendering", render_video, request)
    print(f"wrote {result.output}: {result.frames} frames at {result.fps:g} fps ({_stages(result.seconds)})")
    return 0


MESH_FORMATS = ("obj", "ply", "npy", "glb", "gltf", "usd")


def mesh_motion(args, head, audio: Path | None) -> Motion:
    """The motion for a mesh export or render: ``--motion`` as is, else generated from ``audio``
    for this head's identity."""
    if args.motion:
        return _read_any_motion(Path(args.motion))
    if audio is None:
        raise CommandError("give AUDIO to generate from, or --motion FILE")
    from studio.generate.pipeline import GenerateRequest, generate

    request = GenerateRequest(audio, transcript=_transcript(args), language=args.language, fps=args.fps,
                              seed=args.seed, emotion=args.emotion, strength=args.strength,
                              intensity=args.intensity, canonical_keypoints=head.canonical_keypoints)
    return _run_job("generating", generate, request).motion


def cmd_export_mesh(args) -> int:
    import time

    from studio.render.mesh.animate import load_animated_head

    t0 = time.perf_counter()
    head = load_animated_head(args.mesh, keypoints=args.keypoints, flame_model=args.flame_model, face_index=args.face)
    audio = Path(args.audio) if args.audio else (Path(args.audio_file) if args.audio_file else None)
    motion = mesh_motion(args, head, audio)
    t1 = time.perf_counter()
    vertices = head.deform(np.asarray(motion.values, dtype=np.float64))
    t2 = time.perf_counter()
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    ext = {"gltf": ".gltf", "usd": ".usdc"}.get(args.format, f".{args.format}")
    target = out_dir / f"{head.name}{ext}"
    exporter = _registry().exporter("mesh_glb" if args.format == "gltf" else f"mesh_{args.format}")
    options = {"uv": head.uv, "texture": head.texture, "name": head.name} if head.uv is not None else {"name": head.name}
    bar = _ProgressLine(f"exporting {args.format}")
    try:
        exporter.export(vertices, head.faces, target, fps=motion.fps, progress=bar, **options)
    finally:
        bar.close()
    t3 = time.perf_counter()
    print(f"wrote {target}: {len(vertices)} frames × {vertices.shape[1]} vertices at {motion.fps:g} fps "
          f"({head.kind}; load + motion {t1 - t0:.2f} s, deform {t2 - t1:.2f} s, export {t3 - t2:.2f} s)")
    if args.video:
        seconds = render_mesh_video(head, vertices, motion.fps, Path(args.video), audio, view=args.view,
                                    size=args.size, shading=args.shading)
        print(f"wrote {args.video}: {args.view} view, {len(vertices)} frames ({seconds:.2f} s)")
    return 0


def render_mesh_video(head, vertices: np.ndarray, fps: float, output: Path, audio: Path | None, *,
                      view: str = "front", size: int = 512, shading: str = "smooth") -> float:
    """Renders an animated head headless (vispy, EGL) to an MP4 with the sound; returns seconds."""
    import time

    from studio.io.video import write_mp4
    from studio.qt.mesh_scene import render_mesh_frames

    t0 = time.perf_counter()
    textured = shading == "smooth" and head.texture is not None
    frames = render_mesh_frames(vertices, head.faces, size=(size, size), view=view, shading=shading,
                                toward_viewer=head.toward_viewer, up=head.up,
                                uv=head.uv if textured else None, texture=head.texture if textured else None)
    bar = _ProgressLine("rendering 3D")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(output, frames, fps=fps, audio=audio, num_frames=len(vertices), progress=bar)
    finally:
        bar.close()
    return time.perf_counter() - t0


def cmd_contact_sheet(args) -> int:
    import cv2

    from studio.render.contact_sheet import contact_sheet, sample_photos
    from studio.render.face_fit import load_image

    photos = {Path(p).stem: load_image(p) for p in args.photos} if args.photos else sample_photos()
    sheet = contact_sheet_3d(photos) if args.three_d else contact_sheet(photos)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet[:, :, ::-1]):
        raise CommandError(f"{out}: could not write the image (unknown extension?)")
    what = f"{len(photos)} photo(s) × 10 poses" if not args.three_d else \
        f"{len(photos)} portrait face mesh(es) and the FLAME-format head × {len(SHEET_3D_POSES)} poses"
    print(f"wrote {out}: {what}, {sheet.shape[1]}×{sheet.shape[0]}")
    return 0


SHEET_3D_POSES = ("m (closed)", "ah", "blink", "happy", "surprised", "yaw -15", "yaw +15")


def contact_sheet_3d(photos: dict[str, np.ndarray], tile: int = 256) -> np.ndarray:
    """The 3D pipeline's key poses, rendered headless: each photo's textured face mesh and the
    FLAME-format stand-in head (retargeted, shaded), one row each, captioned."""
    import cv2

    from studio.qt.mesh_scene import render_mesh_frames
    from studio.render.contact_sheet import sheet_frames
    from studio.render.face_fit import fit_portrait
    from studio.render.mesh.flame import FlameModel
    from studio.render.mesh.flame_retarget import FlameRetarget
    from studio.render.mesh.flame_synth import build_flame_like_model
    from studio.render.mesh.portrait_mesh import PortraitMesh

    frames = np.stack([sheet_frames()[k] for k in SHEET_3D_POSES]).astype(np.float64)
    rows = []
    for name, image in photos.items():
        mesh = PortraitMesh.from_fit(image, fit_portrait(image, name=name))
        pictures = render_mesh_frames(mesh.deform(frames), mesh.faces, size=(tile, tile), uv=mesh.uv,
                                      texture=mesh.texture)
        rows.append((name, list(pictures)))
    flame = FlameRetarget(FlameModel.from_arrays(build_flame_like_model(seed=0)))
    big = render_mesh_frames(flame.deform(frames), flame.model.faces, size=(2 * tile, 2 * tile))
    rows.append(("FLAME-format", [p[int(0.4 * tile):int(1.4 * tile), tile // 2:3 * tile // 2] for p in big]))
    lines = []
    for name, pictures in rows:
        tiles = []
        for caption, picture in zip(SHEET_3D_POSES, pictures):
            picture = np.ascontiguousarray(picture)
            cv2.putText(picture, f"{name}: {caption}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                        cv2.LINE_AA)
            tiles.append(picture)
        lines.append(np.hstack(tiles))
    return np.vstack(lines)


DEMO_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo"


def cmd_demo(args) -> int:
    """The bundled demo, headless: the astronaut speaking assets/demo/speech.flac as an MP4 (the
    2D renderer), the same face as a textured mesh sequence (GLB) and its 3D view (MP4)."""
    import tempfile

    import cv2

    from studio.render.contact_sheet import sample_photos
    from studio.render.job import RenderRequest, render_video
    from studio.render.mesh.animate import AnimatedHead
    from studio.render.mesh.portrait_mesh import PortraitMesh

    speech = DEMO_DIR / "speech.flac"
    if not speech.is_file():
        raise CommandError(f"{speech} is missing: run tools/make_demo_audio.py")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    astronaut = sample_photos()["astronaut"]
    with tempfile.TemporaryDirectory() as tmp:
        portrait = Path(tmp) / "astronaut.png"
        cv2.imwrite(str(portrait), astronaut[:, :, ::-1])
        transcript = (DEMO_DIR / "speech.txt").read_text(encoding="utf-8")
        result = _run_job("demo", render_video, RenderRequest(portrait, out, audio=speech, transcript=transcript))
    print(f"wrote {out}: the astronaut speaking assets/demo/speech.flac, {result.frames} frames "
          f"({_stages(result.seconds)})")

    mesh = PortraitMesh.from_fit(astronaut, result.fit)
    vertices = mesh.deform(np.asarray(result.motion.values, dtype=np.float64))
    glb = out.with_name(f"{out.stem}_face.glb")
    report = _registry().exporter("mesh_glb").export(vertices, mesh.faces, glb, fps=result.fps, uv=mesh.uv,
                                                     texture=mesh.texture, name="astronaut")
    print(f"wrote {glb}: the same face as a textured mesh sequence, {len(vertices)} frames × "
          f"{vertices.shape[1]} vertices, {report.num_targets} morph targets")
    head = AnimatedHead("astronaut", "portrait", mesh.faces, mesh.vertices, result.fit.canonical_keypoints,
                        mesh.keypoint_vertices, mesh.deform, mesh.uv, mesh.texture)
    video = out.with_name(f"{out.stem}_face3d.mp4")
    seconds = render_mesh_video(head, vertices, result.fps, video, speech, size=512)
    print(f"wrote {video}: its 3D view (front, headless GL), {seconds:.2f} s")
    return 0


def cmd_gui(args) -> int:
    """``studio`` with no arguments: the desktop application (studio.qt.app)."""
    from studio.qt import app

    return app.main()


# --- parser -------------------------------------------------------------------------------------

def _add_generation_options(p: argparse.ArgumentParser) -> None:
    """The options of generating motion from speech, shared by the commands that can."""
    text = p.add_mutually_exclusive_group()
    text.add_argument("--transcript", help="plain-text transcript file (forced alignment)")
    text.add_argument("--text", help="the transcript, typed")
    p.add_argument("--language", default="en-us")
    p.add_argument("--emotion", default="neutral")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--intensity", type=float, default=1.0)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Talking Head Studio: speech → facial animation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="versions and the compute devices that really work")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export-motion", help="write a project's evaluated motion (or convert a motion file)")
    p.add_argument("source", help=f"a project ({EXTENSION}) or a motion file ({', '.join(FORMATS)})")
    p.add_argument("-o", "--output", required=True, help="motion file to write")
    p.add_argument("--format", choices=FORMATS, help="format (default: from the output's extension)")
    p.add_argument("--frames", help="frame range START:END (end exclusive)")
    p.set_defaults(func=cmd_export_motion)

    p = sub.add_parser("import-motion", help="put a motion file into a project as its base motion or a layer")
    p.add_argument("motion", help="motion file (json, npz, csv)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("-p", "--project", help="existing project to import into (saved in place unless -o)")
    group.add_argument("-n", "--new", help=f"create a new project ({EXTENSION})")
    p.add_argument("-o", "--output", help="with --project: save the result here instead of in place")
    p.add_argument("--as-layer", metavar="NAME", help="import as a REPLACE layer of keys instead of the base motion")
    p.add_argument("--force", action="store_true", help="replace an existing file given with --new")
    p.set_defaults(func=cmd_import_motion)

    p = sub.add_parser("generate", help="audio (+ transcript) → motion file")
    p.add_argument("audio", help="speech: WAV, FLAC, OGG, MP3, M4A/AAC or a video file")
    p.add_argument("-o", "--output", required=True, help="motion file to write (.json, .npz or .csv)")
    p.add_argument("--format", choices=FORMATS, help="format (default: from the output's extension)")
    p.add_argument("--generator", default="rig", choices=["rig", "neural"],
                   help="motion generator: the phoneme rig, or the trained neural model (default: rig)")
    p.add_argument("--steps", type=int, default=10, help="neural: sampling steps (default 10)")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="neural: classifier-free guidance on emotion, 1 = none (default 1; above 1 costs 2×)")
    p.add_argument("--audio-trust", type=float, default=None, metavar="A",
                   help="neural: how far the lips follow the sound's spectrum rather than the phones alone, "
                        "0…2 (default 1 for recognized phones, 0.5 for phones aligned to a transcript; "
                        "values other than 1 cost one more evaluation per step)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="neural: compute device")
    p.add_argument("--model", metavar="FILE", help="neural: checkpoint (.pt) or ONNX export (.onnx) "
                   "(default models/neural/best.pt)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--transcript", metavar="FILE", help="plain-text transcript: lips aligned to it")
    group.add_argument("--text", help="the transcript typed in")
    p.add_argument("--language", default="en-us", help="espeak-ng language of the transcript (default en-us)")
    p.add_argument("--emotion", default="neutral", help="one of: neutral, happy, sad, angry, surprised, "
                   "fearful, disgusted, contempt")
    p.add_argument("--strength", type=float, default=1.0, help="emotion strength 0…1 (default 1)")
    p.add_argument("--intensity", type=float, default=1.0, help="motion intensity 0…2 (default 1)")
    p.add_argument("--fps", type=float, default=25.0, help="frames per second (default 25)")
    p.add_argument("--seed", type=int, default=0, help="seed of head motion, blinks and gaze (default 0)")
    p.add_argument("--phones", metavar="JSON", help="also write the phones used (JSON)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("eval", help="evaluation: lip sync against reference phones; the neural model's controls; "
                       "dev-corpus builder")
    p.add_argument("what", choices=["lipsync", "controls", "build-corpus", "lve"])
    p.add_argument("target", nargs="?", help="lipsync: an audio file; build-corpus: the output folder; "
                   "lve: the head (FLAME model, template, mesh or photo) the motion drives")
    p.add_argument("--motion", help="lve: the motion file to drive the head with")
    p.add_argument("--generator", choices=["rig", "neural"], default="rig", help="lipsync: the generator scored")
    p.add_argument("--model", help="lipsync, neural: checkpoint (.pt) or ONNX file (default models/neural/best.pt)")
    p.add_argument("--audio-trust", type=float, default=None, metavar="A",
                   help="lipsync, neural: the sampling's trust in the sound, 0…2 (default 1 for recognized "
                        "phones, 0.5 for aligned ones)")
    p.add_argument("--keypoints", help="lve: JSON of a custom mesh's 21 keypoint vertex ids")
    p.add_argument("--flame-model", help="lve: a FLAME model to drive a VOCA template with")
    p.add_argument("--corpus", metavar="MANIFEST", help="lipsync, controls: a dev corpus manifest.json")
    p.add_argument("--reference", metavar="FILE", help="lipsync: reference phones of AUDIO (JSON, TextGrid, "
                   "HTS/HTK .lab, flite segments); lve: the reference mesh sequence (.npy, T × V × 3)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--transcript", metavar="FILE", help="lipsync: transcript of AUDIO")
    group.add_argument("--text", help="lipsync: transcript of AUDIO typed in")
    p.add_argument("--language", default="en-us")
    p.add_argument("--mode", choices=["with", "without", "both"], default="both",
                   help="lipsync: generate with the transcript, without it, or both (default)")
    p.add_argument("--split", help="lipsync: only corpus items of this split (dev, heldout)")
    p.add_argument("--limit", type=int, help="lipsync: at most this many items")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--items", type=int, default=120, help="build-corpus: number of items (default 120)")
    p.add_argument("--json", metavar="OUT", help="lipsync: write per-item scores and the summary here")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="the neural model: build its training corpus, fit it, average two fine-tunes, "
                       "export it to ONNX")
    p.add_argument("what", choices=["corpus", "fit", "average", "export"])
    p.add_argument("target", nargs="?", help="corpus: the output folder; fit: the corpus folder, or a motion "
                   "dataset folder (<name>.json|npz|csv motion files beside <name>.wav|flac|… audio); "
                   "average: the first checkpoint; export: the checkpoint")
    p.add_argument("more", nargs="*", metavar="SECOND", help="average: the second checkpoint")
    p.add_argument("--weight", type=float, metavar="W",
                   help="average: the first checkpoint's share of every weight, 0…1 (default 0.5)")
    p.add_argument("--validate", metavar="DATA", help="average: score the average's lips on the validation "
                   "items of this training data (a corpus or motion dataset folder) and keep the scores in it")
    p.add_argument("--out", help="export: the .onnx file to write; average: the .pt file to write; "
                   "fit: folder of best.pt, last.pt, log.jsonl (default: the models/neural folder "
                   "generate reads; an existing last.pt is resumed)")
    p.add_argument("--init", metavar="CHECKPOINT", help="fit: fine-tune from this checkpoint")
    p.add_argument("--hours", type=float, help="fit: wall-clock budget of the whole training (default 2.5 "
                   "unless --steps)")
    p.add_argument("--steps", type=int, help="fit: optimizer steps (the learning-rate schedule's length)")
    p.add_argument("--batch", type=int, default=32, help="fit: windows per step (default 32)")
    p.add_argument("--source-shares", metavar="SRC=X,…",
                   help="fit: share of the training windows per corpus synthesizer, e.g. "
                        "espeak-ng=0.35,flite=0.35,festival=0.3 (default: every frame equally likely)")
    p.add_argument("--model-config", metavar="FIELD=VALUE,…",
                   help="fit: fields of a new model's config (studio/generate/neural/model.py ModelConfig), "
                        "e.g. width=128,mouth_residual=false (default: the defaults); with --init only its training "
                        "fields (e.g. mel_augment=0.5), a resumed model keeps its own")
    p.add_argument("--threads", type=int, help="fit: torch threads (default: timed at the start, one or every "
                   "core, whichever steps faster; give it when other work shares the machine then)")
    p.add_argument("--items", type=int, help="corpus: number of items (default 2000)")
    p.add_argument("--seed", type=int, help="corpus: seed of every draw; its held-out voices are the dev "
                   "corpus's for the same seed; fit: seed of the model, windows and noise (default 0)")
    p.add_argument("--workers", type=int, help="corpus: items built side by side in processes (default 2)")
    p.add_argument("--piper-share", type=float, metavar="X",
                   help="corpus: share of the training items a Piper voice speaks, where one is installed "
                        "(default 0.25; with --natural-share 0: the corpus the first shipped model was trained on)")
    p.add_argument("--natural-share", type=float, metavar="X",
                   help="corpus: share of the other English training items that say everyday sentences instead "
                        "of the bilabial-rich bank's (default 0.5; 0: the bank's only)")
    p.add_argument("--piper-sentences", choices=["natural", "bank"],
                   help="corpus: what the Piper voices say: everyday sentences (default) or the bank's")
    p.add_argument("--clean-share", type=float, metavar="X",
                   help="corpus: share of the training items recorded without noise, room or codec "
                        "(default 0: all as drawn)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="benchmarks (medians of repeated runs)")
    p.add_argument("what", choices=["core", "generate", "render", "mesh", "gui", "neural"],
                   help="core: document evaluation; generate: audio → motion; render: portrait frames and MP4; "
                        "mesh: motion → 5023-vertex meshes and GLB export; gui: the window's event-loop "
                        "latency during jobs and the 2D view's scrubbing fps; neural: the neural model's "
                        "motion stage (whole stream and first chunk)")
    p.add_argument("--frames", type=int, default=100, help="render: frames timed per size; gui: playhead positions")
    p.add_argument("--seconds", type=float, default=60.0, help="generate, neural: length of the speech")
    p.add_argument("--model", help="neural: checkpoint (.pt) or ONNX export (default models/neural/best.pt)")
    p.add_argument("--steps", type=int, default=10, help="neural: sampling steps")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="neural: compute device")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=None, help="frame rate (core: 25, mesh: 30)")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="run the bundled demo headless")
    p.add_argument("-o", "--output", default="out/demo.mp4", help="MP4 to write (default out/demo.mp4)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("render", help="portrait + speech (or a motion file) → MP4 with sound, or PNG frames")
    p.add_argument("portrait", help="photo (PNG, JPEG, …)")
    p.add_argument("audio", nargs="?", help="speech to generate the motion from (and the sound of the video)")
    p.add_argument("--motion", help="render this motion file instead of generating one")
    p.add_argument("--audio", dest="audio_file", help="with --motion: the sound to mux")
    p.add_argument("-o", "--output", required=True, help="MP4 to write (a folder with --png)")
    p.add_argument("--png", action="store_true", help="write a PNG sequence into the output folder")
    _add_generation_options(p)
    p.add_argument("--keypoints", help="JSON of the 21 keypoints in image pixels (for a face the detector misses)")
    p.add_argument("--face", type=int, default=0, help="which face when there are several (0: the largest)")
    p.add_argument("--backend", choices=["opencv", "torch"], default="opencv")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="torch backend's device")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("export-mesh", help="a head (photo, FLAME model, template or any mesh) animated by speech "
                                          "or a motion file → mesh sequence (+ a 3D video)")
    p.add_argument("mesh", help="photo, FLAME model (.pkl/.npz), VOCA template or .obj/.ply/.glb/.gltf/.stl head")
    p.add_argument("audio", nargs="?", help="speech to generate the motion from (and the video's sound)")
    p.add_argument("--motion", help="animate with this motion file instead of generating one")
    p.add_argument("--audio", dest="audio_file", help="with --motion: the sound for --video")
    p.add_argument("--format", choices=MESH_FORMATS, default="glb")
    p.add_argument("-o", "--output", required=True, help="folder to write into")
    p.add_argument("--keypoints", help="JSON of the mesh's 21 keypoint vertex ids (a photo: keypoints in pixels)")
    p.add_argument("--flame-model", help="a FLAME model to drive a VOCA template with")
    p.add_argument("--face", type=int, default=0, help="a photo with several faces: which (0: the largest)")
    p.add_argument("--video", help="also render the animated mesh to this MP4 (headless)")
    p.add_argument("--view", choices=["front", "turntable"], default="front")
    p.add_argument("--shading", choices=["smooth", "flat", "wireframe"], default="smooth")
    p.add_argument("--size", type=int, default=512, help="video frame size (square, pixels)")
    _add_generation_options(p)
    p.set_defaults(func=cmd_export_mesh)

    p = sub.add_parser("screenshots", help="the main window at the main steps of a session, as PNGs (offscreen)")
    p.add_argument("output", help="folder to write the PNGs into")
    p.set_defaults(func=cmd_screenshots)

    p = sub.add_parser("contact-sheet", help="the renderer's key poses on photos, as one PNG to look at")
    p.add_argument("photos", nargs="*", help="photos (default: scikit-image's astronaut and matplotlib's grace_hopper)")
    p.add_argument("-o", "--output", default="out/contact_sheet.png")
    p.add_argument("--3d", dest="three_d", action="store_true",
                   help="the 3D pipeline instead: textured face meshes of the photos and the FLAME-format head")
    p.set_defaults(func=cmd_contact_sheet)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return cmd_gui(args)
    try:
        return args.func(args)
    except (CommandError, MotionFileError, ProjectFileError) as exc:
        print(f"studio: {exc}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"studio: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("studio: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
