"""Every exporter through File ▸ Export and the real Export dialog (offscreen): the portrait as an
MP4 or PNG frames, the head mesh as OBJ, PLY, NPY, glTF/GLB, USD and a 3D render, the motion as
JSON, NPZ or CSV, the ARKit curves as CSV (both layouts) or JSON. Each file is read back and
compared with the document; each export runs off the GUI thread (how long the GUI thread was
blocked is recorded as a test property; ``studio bench gui`` measures it); a kind
whose prerequisites are missing says which, in the dialog and in an error; a mesh export
cancelled from the status bar leaves nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qt_support import DEMO, ScriptedDialogs, wait_for_jobs

from studio.jobs import HeadRequest, load_head
from studio.qt.dialogs import EXPORT_KINDS, ExportDialog, ExportSettings


@pytest.fixture(scope="session")
def face_mesh(tmp_path_factory, astronaut_png):
    """A custom head mesh (the portrait's face mesh written as a plain OBJ: no FLAME topology, no
    keypoints of its own) and the vertex ids of its 21 keypoints."""
    import trimesh

    from studio.render.mesh.animate import load_animated_head

    head = load_animated_head(astronaut_png)
    path = tmp_path_factory.mktemp("mesh") / "face.obj"
    trimesh.Trimesh(head.rest, head.faces, process=False).export(path)
    return path, tuple(ids[0] for ids in head.keypoint_vertices)


class DialogAnswers(ScriptedDialogs):
    """Answers File ▸ Export with the real ExportDialog, set up by ``configure(dialog)`` (its
    modal ``exec`` is the only part left out)."""

    def __init__(self):
        super().__init__()
        self.configure = None
        self.problems: list[str] = []

    def export_settings(self, kind, suggested, context=None):
        self.asked.append(("export", kind, suggested, context))
        dialog = ExportDialog(kind, suggested, None, context)
        try:
            self.configure(dialog)
            self.problems.append(dialog.problem())
            return dialog.settings() if not dialog.problem() else None
        finally:
            dialog.deleteLater()


def choose(dialog: ExportDialog, exporter: str, path, frames=None, **fields) -> None:
    """Pick the exporter in the Format list, the target and the frame range, then option widgets."""
    index = next(i for i in range(dialog.format_choice.count()) if dialog.format_choice.itemData(i).name == exporter)
    dialog.format_choice.setCurrentIndex(index)
    dialog.path.setText(str(path))
    if frames is not None:
        dialog.range_check.setChecked(True)
        dialog.first.setValue(frames[0])
        dialog.last.setValue(frames[1] - 1)
    for name, value in fields.items():
        widget = getattr(dialog, name)
        if hasattr(widget, "setChecked"):
            widget.setChecked(value)
        elif hasattr(widget, "findData") and widget.findData(value) >= 0:
            widget.setCurrentIndex(widget.findData(value))
        elif hasattr(widget, "setCurrentText"):
            widget.setCurrentText(value)
        else:
            widget.setValue(value)


def window_with_motion(make_window, qtbot, files, keyed: bool = True):
    """A window with ``files`` imported and a few keys that move the jaw and turn the head."""
    window = make_window()
    window.dialogs = DialogAnswers()
    window.import_files(files)
    wait_for_jobs(qtbot, window)
    assert window.dialogs.errors == []
    project = window.session.project
    if keyed:
        layer = project.default_layer_id()
        for channel, keys in (("exp.chin.y", [(0, 0.0), (20, -0.3), (40, 0.0)]),
                              ("pose.yaw", [(0, -10.0), (40, 10.0)])):
            for frame, value in keys:
                project.set_key(("layer", layer, channel), frame, value)
    return window


def export_through_dialog(window, qtbot, kind: str, configure):
    """File ▸ Export ▸ <kind>: the dialog answered by ``configure``; waits for the job."""
    window.dialogs.configure = configure
    before = list(window.jobs.jobs)
    window.export_actions[kind].trigger()
    assert window.dialogs.problems[-1] == "", window.dialogs.problems[-1]
    job = next(j for j in window.jobs.jobs if j not in before)
    wait_for_jobs(qtbot, window)
    assert job.state == "done", (job.error, job.details)
    return job


def test_portrait_video_and_png_frames(make_window, qtbot, tmp_path, astronaut_png, record_property):
    from studio.io.video import probe_video, read_frames

    window = window_with_motion(make_window, qtbot, [astronaut_png, DEMO / "speech.flac"])
    project = window.session.project
    job = export_through_dialog(window, qtbot, "mp4", lambda d: choose(
        d, "video_mp4", tmp_path / "talk.mp4", frames=(10, 35), crf=20, preset="ultrafast"))
    info = probe_video(tmp_path / "talk.mp4")
    assert (info.num_frames, info.fps, info.width, info.height) == (25, 25.0, 512, 512)
    assert info.has_audio and info.audio_duration == pytest.approx(1.0, abs=0.05)  # the sound of frames 10…34
    first = next(read_frames(tmp_path / "talk.mp4")).astype(int)
    expected = window.media.renderer.render(project.evaluate([10])[0]).astype(int)
    assert np.abs(first - expected).mean() < 3.0  # H.264 at CRF 20
    record_property("mp4_export_max_latency_ms", round(job.max_latency_ms, 1))

    job = export_through_dialog(window, qtbot, "png", lambda d: choose(d, "png_sequence", tmp_path / "frames",
                                                                        frames=(20, 26)))
    import cv2

    files = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(files) == 6
    picture = cv2.imread(str(files[0]))[:, :, ::-1]
    np.testing.assert_array_equal(picture, window.media.renderer.render(project.evaluate([20])[0]))  # lossless
    record_property("png_export_max_latency_ms", round(job.max_latency_ms, 1))


def test_mesh_sequences_and_the_3d_render(make_window, qtbot, tmp_path, face_mesh, record_property):
    import trimesh

    from studio.io.gltf_read import frames_at_keys, read_glb
    from studio.io.video import probe_video, read_frames

    mesh, ids = face_mesh
    window = window_with_motion(make_window, qtbot, [DEMO / "speech.flac", mesh])
    project = window.session.project
    project.set_mesh_keypoints(ids)
    qtbot.waitUntil(lambda: window.heads.loaded is not None and window.heads.loaded.head is not None, timeout=60000)
    frames = (5, 30)
    head = load_head(HeadRequest(str(mesh), ids)).head
    expected = head.deform(project.evaluate(np.arange(*frames)).astype(np.float64)).astype(np.float32)
    assert np.ptp(expected[:, :, 1]) > 0  # the take moves
    latencies = {}

    job = export_through_dialog(window, qtbot, "mesh", lambda d: choose(d, "mesh_npy", tmp_path / "take.npy",
                                                                         frames=frames))
    np.testing.assert_allclose(np.load(tmp_path / "take.npy"), expected, atol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "take_faces.npy"), head.faces)
    latencies["npy"] = job.max_latency_ms

    job = export_through_dialog(window, qtbot, "mesh", lambda d: choose(d, "mesh_obj", tmp_path / "obj" / "take.obj",
                                                                         frames=frames))
    objs = sorted((tmp_path / "obj" / "take").glob("take_*.obj"))
    assert len(objs) == 25
    for index in (0, 24):
        loaded = trimesh.load(objs[index], force="mesh", process=False)
        np.testing.assert_allclose(loaded.vertices, expected[index], atol=1e-6)
    latencies["obj"] = job.max_latency_ms

    job = export_through_dialog(window, qtbot, "mesh", lambda d: choose(d, "mesh_ply", tmp_path / "ply" / "take.ply",
                                                                         frames=frames))
    plys = sorted((tmp_path / "ply" / "take").glob("take_*.ply"))
    assert len(plys) == 25
    np.testing.assert_allclose(trimesh.load(plys[12], process=False).vertices, expected[12], atol=1e-6)
    latencies["ply"] = job.max_latency_ms

    for name in ("take.glb", "take.gltf"):
        job = export_through_dialog(window, qtbot, "mesh", lambda d, name=name: choose(
            d, "mesh_glb", tmp_path / name, frames=frames, max_targets=32, rigid=True))
        data = read_glb(tmp_path / name)
        assert len(data["times"]) == 25 and len(data["targets"]) <= 32
        diagonal = np.linalg.norm(expected[0].max(0) - expected[0].min(0))
        assert np.abs(frames_at_keys(data) - expected).max() < 1e-3 * diagonal
        latencies[name] = job.max_latency_ms

    pxr = pytest.importorskip("pxr")
    from pxr import Usd, UsdGeom

    job = export_through_dialog(window, qtbot, "mesh", lambda d: choose(d, "mesh_usd", tmp_path / "take.usdc",
                                                                         frames=frames, meters=0.01))
    stage = Usd.Stage.Open(str(tmp_path / "take.usdc"))
    assert pxr and UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(0.01)
    points = UsdGeom.Mesh(stage.GetDefaultPrim().GetChild("mesh")).GetPointsAttr()
    assert len(points.GetTimeSamples()) == 25
    np.testing.assert_allclose(np.array(points.Get(Usd.TimeCode(7))), expected[7], atol=1e-6)
    latencies["usd"] = job.max_latency_ms

    job = export_through_dialog(window, qtbot, "mesh_video", lambda d: choose(
        d, "video_mp4", tmp_path / "render.mp4", frames=(0, 40), render_size=256, preset="ultrafast", view="front"))
    info = probe_video(tmp_path / "render.mp4")
    assert (info.num_frames, info.width, info.height) == (40, 256, 256) and info.has_audio
    pictures = list(read_frames(tmp_path / "render.mp4"))
    face = np.abs(pictures[0].astype(int) - pictures[0][2, 2].astype(int)).sum(-1) > 40
    assert 0.05 < face.mean() < 0.9  # a head on the background
    assert np.abs(pictures[0].astype(int) - pictures[20].astype(int)).mean() > 1.0  # it moved (jaw, yaw)
    latencies["render"] = job.max_latency_ms
    for name, value in latencies.items():
        record_property(f"mesh_export_{name}_max_latency_ms", round(value, 1))


def test_motion_files_and_arkit_curves(make_window, qtbot, tmp_path):
    from studio.core.motion_file import read_motion
    from studio.io.arkit import arkit_weights, read_arkit

    window = window_with_motion(make_window, qtbot, [DEMO / "speech.flac"])
    project = window.session.project
    values = project.evaluate()
    for exporter, name in (("motion_json", "take.json"), ("motion_npz", "take.npz"), ("motion_csv", "take.csv")):
        export_through_dialog(window, qtbot, "motion", lambda d, e=exporter, n=name: choose(d, e, tmp_path / n))
        motion = read_motion(tmp_path / name)
        assert motion.fps == 25.0 and len(motion) == project.num_frames
        np.testing.assert_allclose(motion.values, values, atol=1e-5 if name.endswith("csv") else 0)
    export_through_dialog(window, qtbot, "motion", lambda d: choose(d, "motion_json", tmp_path / "part.json",
                                                                   frames=(30, 40)))
    np.testing.assert_array_equal(read_motion(tmp_path / "part.json").values, values[30:40])

    weights = arkit_weights(values)
    assert weights[:, 0].size == project.num_frames and weights.max() > 0.1  # the jaw opens
    export_through_dialog(window, qtbot, "arkit", lambda d: choose(d, "arkit_json", tmp_path / "take.arkit.json"))
    doc = json.loads((tmp_path / "take.arkit.json").read_text())
    assert doc["format"] == "studio-arkit" and len(doc["weights"]) == project.num_frames
    np.testing.assert_allclose(read_arkit(tmp_path / "take.arkit.json").weights, weights, atol=1e-6)
    for layout in ("studio", "livelinkface"):
        export_through_dialog(window, qtbot, "arkit", lambda d, layout=layout: choose(
            d, "arkit_csv", tmp_path / f"{layout}.arkit.csv", layout_choice=layout))
        curves = read_arkit(tmp_path / f"{layout}.arkit.csv", fps=25.0)
        np.testing.assert_allclose(curves.weights, weights, atol=1e-4)
    header = (tmp_path / "livelinkface.arkit.csv").read_text().splitlines()[0]
    assert header.startswith("Timecode,BlendShapeCount")


def test_exports_say_what_they_still_need(make_window, qtbot, tmp_path, face_mesh):
    window = make_window()
    window.dialogs = DialogAnswers()
    blocked = window.export_context().blocked
    assert set(blocked) == {"mp4", "png", "mesh", "mesh_video", "motion", "arkit"}
    assert all("Nothing to export yet" in text for text in blocked.values())
    assert not window.export_action.isEnabled()

    mesh, ids = face_mesh
    window.import_files([DEMO / "speech.flac", mesh])
    wait_for_jobs(qtbot, window)
    qtbot.waitUntil(lambda: window.heads.loaded is not None, timeout=60000)
    blocked = window.export_context().blocked
    assert set(blocked) == {"mp4", "png", "mesh", "mesh_video"}  # motion and ARKit curves need only the take
    note = window.export_context().notes["arkit"]
    assert "No motion has been generated" in note  # allowed, but the curves would be flat: the dialog says so
    arkit = ExportDialog("arkit", tmp_path / "a.arkit.csv", None, window.export_context())
    qtbot.addWidget(arkit)
    assert arkit.problem() == "" and arkit.notice.text() == note
    assert "import a photo first" in blocked["mp4"]
    assert "none of its 21 keypoints is assigned yet" in blocked["mesh"]
    assert "3D view (Assign keypoints)" in blocked["mesh_video"]

    # The dialog shows why and keeps Export off; a direct start is refused with the same words.
    window.dialogs.configure = lambda d: None
    window.export_actions["mesh"].trigger()
    assert "none of its 21 keypoints" in window.dialogs.problems[-1]
    context = window.dialogs.asked[-1][3]
    dialog = ExportDialog("mesh", tmp_path / "x.obj", None, context)
    qtbot.addWidget(dialog)
    from PySide6.QtWidgets import QDialogButtonBox

    assert not dialog.buttons.button(QDialogButtonBox.Ok).isEnabled()
    assert dialog.notice.isVisibleTo(dialog) and "keypoints" in dialog.notice.text()
    dialog.kind_choice.setCurrentIndex(list(EXPORT_KINDS).index("motion"))
    assert dialog.kind == "motion" and dialog.problem() == "" and dialog.path.text().endswith("x.json")
    assert window.start_export(ExportSettings("mesh_video", tmp_path / "r.mp4")) is None
    assert window.dialogs.errors[-1][0] == "Export" and "keypoints" in window.dialogs.errors[-1][1]

    window.session.project.set_mesh_keypoint("nose_tip", ids[1])
    qtbot.waitUntil(lambda: "20 of its 21" in window.export_context().blocked.get("mesh", ""), timeout=10000)
    window.session.project.set_mesh_keypoints(ids)
    qtbot.waitUntil(lambda: "mesh" not in window.export_context().blocked, timeout=60000)
    assert "mesh_video" not in window.export_context().blocked


def test_cancelling_a_mesh_export_from_the_status_bar_leaves_nothing(make_window, qtbot, tmp_path, face_mesh):
    mesh, ids = face_mesh
    window = window_with_motion(make_window, qtbot, [DEMO / "speech.flac", mesh])
    project = window.session.project
    project.set_mesh_keypoints(ids)
    qtbot.waitUntil(lambda: window.heads.loaded is not None and window.heads.loaded.head is not None, timeout=60000)
    project.set_timing(num_frames=6000)  # four minutes of OBJ files: still running when cancelled
    layer = project.default_layer_id()
    project.set_key(("layer", layer, "exp.chin.y"), 5999, -0.2)
    out = tmp_path / "out" / "long.obj"
    window.dialogs.configure = lambda d: choose(d, "mesh_obj", out)
    window.export_actions["mesh"].trigger()
    job = window.jobs.jobs[-1]
    qtbot.waitUntil(lambda: job.progress > 0.35 or not job.running, timeout=60000)  # writing files by now
    indicator = window.job_indicator
    assert job.running and indicator.isVisible() and indicator.job is job
    indicator.cancel.click()
    wait_for_jobs(qtbot, window)
    assert job.state == "cancelled" and not indicator.isVisible()
    assert not out.exists() and not (out.parent / "long").exists()
    assert list(out.parent.glob("*")) == []
    assert window.dialogs.errors == []
