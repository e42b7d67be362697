"""Benchmarks behind ``studio bench``: medians of repeated runs, never timed assertions in tests."""

from __future__ import annotations

import time

import numpy as np

from studio.core.document import BaseMotion, Project
from studio.core.fcurve import Interpolation
from studio.core.motion import EXP, EXPRESSION_CHANNELS, neutral_motion


def _median_seconds(fn, repeat: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times


def keyed_project(minutes: float = 10.0, fps: float = 25.0, keys_per_second: float = 1.0, seed: int = 0) -> Project:
    """A project of ``minutes`` with a base motion, all 63 expression channels keyed (mixed
    interpolation), an ADD layer on the pose, emotion segments, an intensity curve, a gaze override,
    a locked region and a limit."""
    rng = np.random.default_rng(seed)
    n = int(round(minutes * 60 * fps))
    project = Project(fps, n)
    keys = max(2, int(minutes * 60 * keys_per_second))
    with project.macro("Benchmark keys"):
        replace_id = project.add_layer("Keys")
        add_id = project.add_layer("Head offsets", blend="ADD", influence=0.5)
        for channel in EXPRESSION_CHANNELS:
            frames = np.sort(rng.choice(n, size=min(keys, n), replace=False))
            project.insert_keys(("layer", replace_id, channel), frames, rng.normal(0, 0.05, frames.size),
                                rng.integers(0, 3, frames.size))
        for channel in ("pose.pitch", "pose.yaw", "pose.roll"):
            frames = np.sort(rng.choice(n, size=min(keys, n), replace=False))
            project.insert_keys(("layer", add_id, channel), frames, rng.normal(0, 5, frames.size), Interpolation.BEZIER)
        for start in range(0, n - 100, max(n // 20, 101)):
            project.add_emotion("happy", start, start + 100, 0.7, 10, 10)
        project.insert_keys(("intensity",), [0, n // 2, n - 1], [1.0, 1.5, 0.8])
        project.insert_keys(("override", "eye.gaze_x"), [n // 4, n // 3], [0.5, -0.5])
        project.lock_groups(["nose"])
        project.set_limit("exp.chin.y", -0.3, 0.3)
    base = neutral_motion(n)
    base[:, EXP] = rng.normal(0, 0.02, (n, EXP.stop)).astype(np.float32)
    project.set_base(BaseMotion(base, project.conditions(), "benchmark"))
    project.add_emotion("sad", n // 2, n // 2 + 50)  # makes 50 frames stale
    return project


def bench_core(minutes: float = 10.0, fps: float = 25.0, repeat: int = 7) -> dict:
    """Time ``Project.evaluate`` over the whole project and at one frame (scrubbing)."""
    project = keyed_project(minutes, fps)
    full, _ = _median_seconds(project.evaluate, repeat)
    frame = project.num_frames // 2
    one, _ = _median_seconds(lambda: project.evaluate([frame]), max(repeat, 50))
    conds, _ = _median_seconds(project.stale_frames, repeat)
    keys = sum(len(c) for layer in project.layers for c in layer.curves.values())
    return {
        "frames": project.num_frames,
        "keyed_channels": sum(len(l.curves) for l in project.layers),
        "keys": keys,
        "evaluate_all_median_s": full,
        "evaluate_all_frames_per_s": project.num_frames / full,
        "evaluate_one_frame_median_ms": one * 1e3,
        "stale_frames_median_s": conds,
    }


def format_core(result: dict) -> str:
    return "\n".join([
        f"core: evaluate {result['frames']} frames × {result['keyed_channels']} keyed channels "
        f"({result['keys']} keys)",
        f"  whole project   median {result['evaluate_all_median_s'] * 1e3:8.1f} ms "
        f"({result['evaluate_all_frames_per_s']:,.0f} frames/s)",
        f"  one frame       median {result['evaluate_one_frame_median_ms']:8.2f} ms (scrubbing)",
        f"  stale frames    median {result['stale_frames_median_s'] * 1e3:8.1f} ms (conditions vs base)",
    ])


# --- audio → motion -------------------------------------------------------------------------------

def _speech_text(seconds: float) -> str:
    """Enough sentences of the bundled English sentence bank for about ``seconds`` of speech."""
    from studio.generate.devcorpus import load_sentences

    english = load_sentences()["en"]
    words_needed = int(seconds * 3.3) + 1  # espeak-ng at 175 wpm speaks ≈ 3.2 words/s of this text
    out, count, i = [], 0, 0
    while count < words_needed:
        sentence = english[i % len(english)]
        out.append(sentence)
        count += len(sentence.split())
        i += 1
    return " ".join(out)


def bench_generate(seconds: float = 60.0, repeat: int = 3) -> dict:
    """Median wall time of ``studio generate`` (decode → features → phones → rig at 25 fps) on
    ``seconds`` of espeak-ng speech written to a WAV, with and without its transcript."""
    import tempfile
    from pathlib import Path

    import soundfile as sf

    from studio.audio.synth import synthesize_espeak
    from studio.generate.pipeline import GenerateRequest, generate

    text = _speech_text(seconds)
    speech = synthesize_espeak(text, "en-us")
    result = {"audio_seconds": speech.duration, "repeat": repeat, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        sf.write(wav, speech.samples, speech.sample_rate, subtype="PCM_16")
        for mode, transcript in (("without transcript", None), ("with transcript", text)):
            runs = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                out = generate(GenerateRequest(wav, transcript=transcript))
                runs.append((time.perf_counter() - t0, out.seconds, out.phone_method))
            order = np.argsort([r[0] for r in runs])
            median = runs[order[len(runs) // 2]]
            result["modes"][mode] = {
                "median_seconds": median[0],
                "all_seconds": [r[0] for r in runs],
                "stages": median[1],
                "phones": median[2],
                "real_time_factor": median[0] / speech.duration,
            }
    return result


def format_generate(result: dict) -> str:
    lines = [f"studio generate on {result['audio_seconds']:.1f} s of espeak-ng speech (median of {result['repeat']}):"]
    for mode, r in result["modes"].items():
        total = sum(r["stages"].values())
        shares = ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in r["stages"].items())
        lines.append(f"  {mode:20s} {r['median_seconds']:.2f} s (RTF {r['real_time_factor']:.3f}, phones "
                     f"{r['phones']}): {shares}")
    return "\n".join(lines)


def bench_render(seconds: float = 60.0, frames: int = 100, repeat: int = 3) -> dict:
    """The portrait renderer (OpenCV backend): frames per second at 512² (the astronaut) and at
    1920×1080 (the astronaut scaled to 1080 rows on an edge-extended 1920-wide canvas), over rig
    motion of espeak-ng speech; then the whole job end to end — ``seconds`` of speech → MP4 at
    512², 25 fps — with each stage's share."""
    import tempfile
    from pathlib import Path

    import cv2
    import soundfile as sf

    from studio.audio.synth import synthesize_espeak
    from studio.render.contact_sheet import sample_photos
    from studio.render.face_fit import fit_portrait
    from studio.render.job import RenderRequest, render_video
    from studio.render.portrait import PortraitRenderer

    speech = synthesize_espeak(_speech_text(seconds), "en-us")
    astronaut = sample_photos()["astronaut"]
    big = cv2.resize(astronaut, (1080, 1080), interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, 0, 0, 420, 420, cv2.BORDER_REFLECT)
    result = {"audio_seconds": speech.duration, "frames": frames, "repeat": repeat, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        wav, photo = Path(tmp) / "speech.wav", Path(tmp) / "astronaut.png"
        sf.write(wav, speech.samples, speech.sample_rate, subtype="PCM_16")
        cv2.imwrite(str(photo), astronaut[:, :, ::-1])
        motion = None
        for label, image in (("512x512", astronaut), ("1920x1080", big)):
            fit = fit_portrait(image, name=label)
            renderer = PortraitRenderer(image, fit)
            if motion is None:
                from studio.generate.pipeline import GenerateRequest, generate

                motion = generate(GenerateRequest(wav, canonical_keypoints=fit.canonical_keypoints)).motion.values
            clip = motion[:frames]
            runs = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                for frame in clip:
                    renderer.render(frame)
                runs.append(len(clip) / (time.perf_counter() - t0))
            result["sizes"][label] = {"fps": float(np.median(runs)), "all_fps": runs}
        out = Path(tmp) / "out.mp4"
        t0 = time.perf_counter()
        job = render_video(RenderRequest(photo, out, audio=wav))
        total = time.perf_counter() - t0
        result["end_to_end"] = {"seconds": total, "frames": job.frames, "stages": job.seconds,
                                "shares": {k: v / total for k, v in job.seconds.items()}}
    return result


def format_render(result: dict) -> str:
    lines = [f"portrait renderer, OpenCV backend (median of {result['repeat']} × {result['frames']} frames of rig motion):"]
    for label, r in result["sizes"].items():
        lines.append(f"  {label:>10}: {r['fps']:7.1f} frames/s")
    e = result["end_to_end"]
    lines.append(f"end to end: {result['audio_seconds']:.1f} s of speech → MP4 512², {e['frames']} frames: {e['seconds']:.2f} s")
    for stage, share in e["shares"].items():
        lines.append(f"  {stage:>9}: {e['stages'][stage]:6.2f} s  ({100 * share:4.1f} %)")
    return "\n".join(lines)


def bench_mesh(seconds: float = 60.0, fps: float = 30.0, repeat: int = 3) -> dict:
    """Motion → meshes on the 5023-vertex FLAME-format stand-in head (``flame_synth``): frames per
    second of the FLAME retarget + skinning and of the keypoint deformer (the path of any other
    mesh) over ``seconds`` of random speech-like motion at ``fps``; then the GLB export of that
    sequence (morph targets + animation), median of ``repeat`` runs each."""
    import tempfile
    from pathlib import Path

    from studio.io.mesh_export import write_gltf
    from studio.render.mesh.deform import KeypointDeformer
    from studio.render.mesh.flame import FlameModel
    from studio.render.mesh.flame_retarget import FlameRetarget
    from studio.render.mesh.flame_synth import build_flame_like_model

    model = FlameModel.from_arrays(build_flame_like_model(seed=0))
    retarget = FlameRetarget(model)
    frames = round(seconds * fps)
    rng = np.random.default_rng(0)
    motion = neutral_motion(frames).astype(np.float64)
    slow = np.cumsum(rng.normal(0.0, 0.01, (frames, len(EXPRESSION_CHANNELS))), axis=0)
    motion[:, EXP] = 0.05 * np.tanh(slow)
    motion[:, 63:66] = 5.0 * np.sin(np.linspace(0, 20, frames))[:, None]
    deformer = KeypointDeformer(model.v_template, model.faces, model.keypoint_vertices)
    result = {"frames": frames, "fps": fps, "vertices": model.num_vertices, "repeat": repeat}
    for label, deform in (("flame", retarget.deform), ("keypoint_deformer", deformer.deform)):
        median, _ = _median_seconds(lambda deform=deform: deform(motion), repeat)
        result[label] = {"frames_per_second": frames / median, "seconds": median}
    vertices = retarget.deform(motion)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "take.glb"
        report = {}

        def export():
            report["last"] = write_gltf(out, vertices, model.faces, fps=fps)

        median, _ = _median_seconds(export, repeat)
        last = report["last"]
        result["glb_export"] = {"seconds": median, "bytes": out.stat().st_size, "targets": last.num_targets,
                                "max_error": last.max_error, "tolerance": last.tolerance}
    return result


def format_mesh(result: dict) -> str:
    n, v = result["frames"], result["vertices"]
    lines = [(f"motion → mesh, {n} frames ({n / result['fps']:.0f} s at {result['fps']:g} fps) of a {v}-vertex "
              f"FLAME-format head (median of {result['repeat']}):")]
    for label in ("flame", "keypoint_deformer"):
        r = result[label]
        lines.append(f"  {label:>17}: {r['frames_per_second']:9.0f} frames/s ({r['seconds']:.3f} s)")
    g = result["glb_export"]
    lines.append(f"  GLB export: {g['seconds']:.2f} s, {g['bytes'] / 1e6:.1f} MB, {g['targets']} morph targets, "
                 f"max error {1000 * g['max_error']:.3f} mm (tolerance {1000 * g['tolerance']:.3f} mm)")
    return "\n".join(lines)
