"""Jobs in the window: cancelling a running generation or export leaves the document and the disk
as they were; failures are shown (job list, message) and never take the window down; the worker
thread and the event-loop monitor on their own."""

from __future__ import annotations

import time

import pytest
from qt_support import load_demo, wait_for_jobs

from studio.qt.dialogs import ExportSettings, GenerateSettings


def test_cancelling_a_running_generation_changes_nothing(make_window, astronaut_png, qtbot):
    window = make_window()
    load_demo(qtbot, window, astronaut_png)
    project = window.session.project
    steps = len(project.undo_stack)
    job = window.start_generate(GenerateSettings())
    qtbot.waitUntil(lambda: job.progress > 0.0 or not job.running, timeout=60000)
    assert job.running, "the generation ended before it could be cancelled"
    row = window.job_list.rows[id(job)]
    assert row.cancel.isVisible() and row.bar.isVisible()
    row.cancel.click()  # the job list's Cancel button
    wait_for_jobs(qtbot, window)
    assert job.state == "cancelled"
    assert project.base is None and len(project.undo_stack) == steps
    assert "Cancelled" in row.outcome.text() and not row.cancel.isVisible()
    assert window.dialogs.errors == []


def test_cancelling_an_export_leaves_no_file(make_window, astronaut_png, qtbot, tmp_path):
    window = make_window()
    load_demo(qtbot, window, astronaut_png, transcript=False)
    window.session.project.set_timing(num_frames=3000)  # two minutes: still running when cancelled
    out = tmp_path / "out" / "long.mp4"
    job = window.start_export(ExportSettings("mp4", out))
    qtbot.waitUntil(lambda: job.progress > 0.01 or not job.running, timeout=60000)
    job.cancel()
    wait_for_jobs(qtbot, window)
    assert job.state == "cancelled"
    assert not out.exists() and list(out.parent.glob("*")) == []  # not even the partial file


def test_a_failing_job_is_reported_and_the_window_lives_on(make_window, astronaut_png, qtbot, tmp_path):
    window = make_window()
    load_demo(qtbot, window, astronaut_png, transcript=False)
    bad = tmp_path / "curves.xyz"
    job = window.start_export(ExportSettings("arkit", bad))
    wait_for_jobs(qtbot, window)
    assert job.state == "failed" and "curves.xyz" in job.error
    row = window.job_list.rows[id(job)]
    assert row.outcome.text().startswith("Failed:") and "curves.xyz" in row.outcome.text()
    assert window.dialogs.errors and window.dialogs.errors[-1][0] == "Export curves.xyz failed"
    assert "failed" in window.statusBar().currentMessage()
    # The window still works: a motion export right after succeeds.
    good = tmp_path / "motion.json"
    job = window.start_export(ExportSettings("motion", good))
    wait_for_jobs(qtbot, window)
    assert job.state == "done" and good.is_file()


def test_a_broken_audio_file_is_refused_and_the_document_is_unchanged(make_window, qtbot, tmp_path):
    window = make_window()
    broken = tmp_path / "speech.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    window.import_files([broken])
    wait_for_jobs(qtbot, window)
    assert window.session.project.sources == {} and not window.session.project.undo_stack.can_undo
    assert window.dialogs.errors and "speech.wav" in window.dialogs.errors[-1][1]


def test_worker_thread_progress_result_and_error(qtbot, no_leaks):
    from studio.qt.workers import JobManager

    manager = JobManager()
    results = []

    def work(n):
        for i in range(n):
            time.sleep(0.01)
            yield (i + 1) / n
        return n * 10

    job = manager.run("count", lambda: work(5), on_done=results.append)
    qtbot.waitUntil(lambda: not job.running, timeout=10000)
    assert job.state == "done" and results == [50] and job.progress == 1.0

    def broken():
        yield 0.1
        raise ValueError("photo.png: not a portrait")

    failed = []
    manager.failed.connect(failed.append)
    job = manager.run("broken", broken)
    qtbot.waitUntil(lambda: not job.running, timeout=10000)
    assert job.state == "failed" and job.error == "photo.png: not a portrait" and failed == [job]

    def forever():
        while True:
            time.sleep(0.005)
            yield None

    job = manager.run("forever", forever)
    manager.cancel_all(wait=True)
    assert job.state == "cancelled"
    manager.clear_finished()
    assert manager.jobs == []


def test_the_event_loop_monitor_sees_a_blocked_gui_thread(qtbot, no_leaks):
    from studio.qt.workers import EventLoopMonitor

    monitor = EventLoopMonitor(interval_ms=10)
    monitor.start()
    qtbot.wait(100)
    quiet = monitor.max_lateness_ms
    time.sleep(0.2)  # the GUI thread does nothing else for 200 ms
    qtbot.wait(50)
    monitor.stop()
    assert monitor.beats >= 5
    assert monitor.max_lateness_ms > 150 > quiet
    monitor.reset()
    assert monitor.max_lateness_ms == 0.0


@pytest.mark.parametrize("kind,name", [("png", "frames"), ("motion", "talk.motion.npz"), ("arkit", "talk.arkit.json")])
def test_every_export_kind_writes_its_files(make_window, astronaut_png, qtbot, tmp_path, kind, name):
    window = make_window()
    load_demo(qtbot, window, astronaut_png, transcript=False)
    window.session.project.set_timing(num_frames=12)
    job = window.start_export(ExportSettings(kind, tmp_path / name))
    wait_for_jobs(qtbot, window)
    assert job.state == "done", job.error
    if kind == "png":
        assert len(list((tmp_path / name).glob("frame_*.png"))) == 12
    elif kind == "motion":
        from studio.core.motion_file import read_motion

        motion = read_motion(tmp_path / name)
        assert len(motion) == 12 and (motion.canonical_keypoints == window.session.project.identity).all()
    else:
        import json

        doc = json.loads((tmp_path / name).read_text())
        assert doc["format"] == "studio-arkit" and len(doc["weights"]) == 12
