"""Jobs in child processes (studio.jobs.run_in_process): progress as yields, the result as the
return value, errors and crashes as JobFailed, cancelling through the generator's close()."""

from __future__ import annotations

import os
import time

import pytest

from studio.jobs import JobFailed, run_in_process


def counting_job(steps, *, progress, cancel):
    for i in range(steps):
        progress((i + 1) / steps)
    return {"pid": os.getpid(), "steps": steps}


def failing_job(path, *, progress, cancel):
    raise ValueError(f"{path}: not a portrait")


def crashing_job(_, *, progress, cancel):
    os._exit(3)


def cancellable_job(marker, *, progress, cancel):
    """Runs until cancelled, then cleans up (removes its marker file) and says so."""
    open(marker, "w").close()
    try:
        while not cancel():
            time.sleep(0.01)
            progress(0.5)
        raise RuntimeError("cancelled")
    finally:
        os.remove(marker)


def drive(generator):
    progress = []
    try:
        while True:
            value = next(generator)
            if value is not None:
                progress.append(value)
    except StopIteration as stop:
        return stop.value, progress


def test_a_job_runs_in_another_process_and_reports_progress():
    result, progress = drive(run_in_process(counting_job, 3))
    assert result["steps"] == 3 and result["pid"] != os.getpid()
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)


def test_errors_and_crashes_come_back_as_job_failed():
    with pytest.raises(JobFailed, match="photo.png: not a portrait") as info:
        drive(run_in_process(failing_job, "photo.png"))
    assert info.value.kind == "ValueError" and "Traceback" in info.value.details
    with pytest.raises(JobFailed, match="stopped unexpectedly.*exit code 3"):
        drive(run_in_process(crashing_job, None))


def test_closing_the_generator_cancels_and_lets_the_child_clean_up(tmp_path):
    marker = tmp_path / "working"
    job = run_in_process(cancellable_job, str(marker))
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline
        next(job)
    job.close()
    assert not marker.exists()  # the child's clean-up ran before close() returned


def test_a_child_that_ignores_cancel_is_stopped_after_the_grace_period(tmp_path):
    marker = tmp_path / "working"

    job = run_in_process(ignoring_job, str(marker), grace=0.3)
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline
        next(job)
    started = time.monotonic()
    job.close()
    assert time.monotonic() - started < 5.0


def ignoring_job(marker, *, progress, cancel):
    open(marker, "w").close()
    while True:
        time.sleep(0.05)


def test_a_child_that_stops_on_request_reports_cancelled(tmp_path):
    """A job that notices the cancel request and raises is reported as cancelled, not failed
    (run_in_process turns that report into JobCancelled)."""
    from studio.jobs import _child

    class Pipe:
        def __init__(self):
            self.sent, self.inbox = [], ["cancel"]

        def poll(self):
            return bool(self.inbox)

        def recv(self):
            return self.inbox.pop(0)

        def send(self, message):
            self.sent.append(message)

        def close(self):
            pass

    pipe = Pipe()
    marker = tmp_path / "m"
    _child(pipe, cancellable_job, str(marker))
    assert pipe.sent[-1] == ("cancelled",) and not marker.exists()
