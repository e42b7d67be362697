"""The headless ``studio`` command: motion export/import, bench, errors (run as real subprocesses)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from studio.cli import main, resample_motion
from studio.core.document import Project
from studio.core.fcurve import Interpolation as I
from studio.core.motion import CHANNEL_INDEX, neutral_motion
from studio.core.motion_file import Motion, read_motion, write_motion
from studio.core.project_file import load_project, save_project

STUDIO = str(Path(sys.executable).with_name("studio"))


DEMO_SPEECH = Path(__file__).resolve().parents[1] / "assets" / "demo" / "speech.flac"


def run(*args):
    return subprocess.run([STUDIO, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def project_path(tmp_path):
    p = Project(25, 50)
    layer = p.add_layer()
    p.insert_keys(("layer", layer, "exp.chin.y"), [0, 25, 49], [0.0, -0.3, 0.0], I.LINEAR)
    p.insert_keys(("layer", layer, "pose.yaw"), [0, 49], [-10.0, 10.0], I.LINEAR)
    return save_project(p, tmp_path / "p.thproj")


@pytest.mark.parametrize("fmt", ["json", "npz", "csv"])
def test_export_motion_from_a_project(project_path, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    result = run("export-motion", project_path, "-o", out)
    assert result.returncode == 0, result.stderr
    motion = read_motion(out)
    np.testing.assert_array_equal(motion.values, load_project(project_path).evaluate())
    assert motion.fps == 25.0


def test_export_a_frame_range_and_convert_formats(project_path, tmp_path):
    assert main(["export-motion", str(project_path), "-o", str(tmp_path / "part.npz"), "--frames", "10:20"]) == 0
    part = read_motion(tmp_path / "part.npz")
    np.testing.assert_array_equal(part.values, load_project(project_path).evaluate(np.arange(10, 20)))
    assert main(["export-motion", str(tmp_path / "part.npz"), "-o", str(tmp_path / "part.txt"), "--format", "csv"]) == 0
    np.testing.assert_array_equal(read_motion(tmp_path / "part.txt", "csv").values, part.values)


def test_import_motion_as_base_and_as_layer(tmp_path):
    values = neutral_motion(30)
    values[:, CHANNEL_INDEX["exp.chin.y"]] = np.linspace(0, -0.4, 30)
    write_motion(Motion(values, 30.0), tmp_path / "m.json")
    result = run("import-motion", tmp_path / "m.json", "-n", tmp_path / "new.thproj")
    assert result.returncode == 0, result.stderr
    project = load_project(tmp_path / "new.thproj")
    assert project.fps == 30.0 and project.num_frames == 30 and project.base.generator == "imported"
    np.testing.assert_array_equal(project.evaluate(), values)
    assert not project.stale_frames().any()
    assert main(["import-motion", str(tmp_path / "m.json"), "-p", str(tmp_path / "new.thproj"),
                 "--as-layer", "Mocap", "-o", str(tmp_path / "layered.thproj")]) == 0
    layered = load_project(tmp_path / "layered.thproj")
    assert layered.layers[0].name == "Mocap" and set(layered.layers[0].curves) == {"exp.chin.y"}
    np.testing.assert_allclose(layered.evaluate(), values, atol=1e-7)
    result = run("import-motion", tmp_path / "m.json", "-n", tmp_path / "new.thproj")
    assert result.returncode == 2 and "exists" in result.stderr


def test_import_resamples_to_the_project_rate(project_path, tmp_path):
    values = neutral_motion(50)
    values[:, CHANNEL_INDEX["pose.yaw"]] = np.linspace(0, 49, 50)  # 1° per frame at 50 fps
    write_motion(Motion(values, 50.0), tmp_path / "m.npz")
    assert main(["import-motion", str(tmp_path / "m.npz"), "-p", str(project_path)]) == 0
    base = load_project(project_path).base.values
    assert len(base) == 25
    np.testing.assert_allclose(base[:, CHANNEL_INDEX["pose.yaw"]], np.arange(25) * 2.0, atol=1e-4)
    same = Motion(values, 50.0)
    assert resample_motion(same, 50.0) is same


def test_bad_input_gives_one_clear_line_and_status_2(tmp_path):
    (tmp_path / "junk.thproj").write_text("not a zip")
    (tmp_path / "junk.json").write_text("{")
    for args, message in (
        (["export-motion", tmp_path / "junk.thproj", "-o", tmp_path / "o.json"], "junk.thproj: not a project file"),
        (["export-motion", tmp_path / "junk.json", "-o", tmp_path / "o.json"], "junk.json: not a valid JSON"),
        (["export-motion", tmp_path / "missing.thproj", "-o", tmp_path / "o.json"], "No such file"),
        (["export-motion", tmp_path / "junk.json", "-o", tmp_path / "o.xyz"], "unknown motion file format"),
        (["import-motion", tmp_path / "junk.json", "-n", tmp_path / "n.thproj"], "junk.json"),
    ):
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "n.thproj").exists()


def test_bench_core_reports_medians():
    result = run("bench", "core", "--minutes", "0.5", "--repeat", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames"] == 750 and report["keyed_channels"] == 66
    assert report["evaluate_all_median_s"] > 0


def test_demo_writes_the_talking_astronaut(tmp_path):
    from studio.io.video import probe_video

    out = tmp_path / "demo.mp4"
    demo = run("demo", "-o", str(out))
    assert demo.returncode == 0, demo.stderr
    info = probe_video(out)
    assert (info.width, info.height, info.fps) == (512, 512, 25.0) and info.has_audio
    assert abs(info.duration - info.audio_duration) < 0.04 and abs(info.audio_start - info.video_start) < 0.04
    # The mesh part: the same face as a textured GLB sequence, and its headless 3D view.
    from studio.io.gltf_read import read_glb

    glb = read_glb(tmp_path / "demo_face.glb")
    assert len(glb["times"]) == 161 and glb["texture"] is not None and glb["uv"] is not None
    view = probe_video(tmp_path / "demo_face3d.mp4")
    assert (view.width, view.height, view.fps) == (512, 512, 25.0) and view.has_audio


def test_export_mesh_of_a_portrait_and_lip_vertex_error(tmp_path):
    import cv2
    import skimage.data

    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), skimage.data.astronaut()[:, :, ::-1])
    motion = tmp_path / "m.json"
    assert run("generate", str(DEMO_SPEECH), "-o", str(motion)).returncode == 0
    done = run("export-mesh", photo, "--motion", motion, "--format", "npy", "-o", tmp_path / "npy")
    assert done.returncode == 0, done.stderr
    sequence = np.load(tmp_path / "npy" / "astronaut.npy")
    faces = np.load(tmp_path / "npy" / "astronaut_faces.npy")
    assert sequence.shape[0] == 161 and sequence.shape[2] == 3 and faces.max() < sequence.shape[1]
    # LVE of the motion-driven mesh against itself is 0; against a still face it is not.
    same = run("eval", "lve", photo, "--motion", motion, "--reference", tmp_path / "npy" / "astronaut.npy")
    assert same.returncode == 0, same.stderr
    assert "LVE 0 mm" in same.stdout
    still = tmp_path / "still.npy"
    np.save(still, np.repeat(sequence[:1], len(sequence), axis=0))
    moved = run("eval", "lve", photo, "--motion", motion, "--reference", still, "--json", tmp_path / "lve.json")
    assert moved.returncode == 0 and json.loads((tmp_path / "lve.json").read_text())["lve"] > 0.002  # metres
    wrong = run("eval", "lve", photo, "--motion", motion, "--reference", tmp_path / "npy" / "astronaut_faces.npy")
    assert wrong.returncode == 2 and "does not match" in wrong.stderr
    bad = tmp_path / "head.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\n")
    failed = run("export-mesh", bad, "--motion", motion, "--format", "glb", "-o", tmp_path / "out")
    assert failed.returncode == 2 and "head.obj" in failed.stderr


def test_render_a_motion_file_and_a_face_that_is_not_there(tmp_path):
    import cv2
    import numpy as np

    from studio.io.video import probe_video

    motion = tmp_path / "m.json"
    assert run("generate", str(DEMO_SPEECH), "-o", str(motion)).returncode == 0
    photo = tmp_path / "astronaut.png"
    import skimage.data

    cv2.imwrite(str(photo), skimage.data.astronaut()[:, :, ::-1])
    frames = tmp_path / "frames"
    done = run("render", str(photo), "--motion", str(motion), "--png", "-o", str(frames))
    assert done.returncode == 0, done.stderr
    assert len(list(frames.glob("*.png"))) == 161
    out = tmp_path / "m.mp4"
    assert run("render", str(photo), "--motion", str(motion), "--audio", str(DEMO_SPEECH), "-o", str(out)).returncode == 0
    assert probe_video(out).has_audio
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 300, 3), 90, np.uint8))
    failed = run("render", str(blank), str(DEMO_SPEECH), "-o", str(tmp_path / "x.mp4"))
    assert failed.returncode == 2 and "no face found" in failed.stderr and "--keypoints" in failed.stderr
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.gl
def test_contact_sheet_3d_renders_every_head_and_pose(tmp_path):
    import cv2

    out = tmp_path / "sheet3d.png"
    done = run("contact-sheet", "--3d", "-o", out)
    assert done.returncode == 0, done.stderr
    sheet = cv2.imread(str(out))
    assert sheet.shape == (3 * 256, 7 * 256, 3)  # two photos' face meshes and the FLAME-format head, 7 poses
    for row in range(3):
        tile = sheet[row * 256 + 30:(row + 1) * 256, :256].astype(int)
        assert np.abs(tile - tile[-1, 0]).sum(-1).max() > 60  # a head, not an empty frame


def test_neural_commands_name_the_missing_model(tmp_path):
    missing = tmp_path / "none.pt"
    bench = run("bench", "neural", "--model", missing)
    assert bench.returncode == 2 and "no trained neural model" in bench.stderr and "studio train fit" in bench.stderr
    export = run("train", "export", missing)
    assert export.returncode == 2 and "--out" in export.stderr
