"""Benchmarks behind ``studio bench``: medians of repeated runs, never timed assertions in tests."""

from __future__ import annotations

import time

import numpy as np

from studio.core.document import BaseMotion, Project
from studio.core.fcurve import Interpolation
from studio.core.motion import EXPRESSION_CHANNELS, EXP, neutral_motion


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
