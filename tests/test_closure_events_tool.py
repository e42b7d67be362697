"""tools/closure_events.py: the runs it finds and how it sorts the neural model's extra closures."""

import importlib.util
from pathlib import Path

import numpy as np

from studio.core.motion import CHANNEL_INDEX, NUM_CHANNELS

_SPEC = importlib.util.spec_from_file_location("closure_events", Path(__file__).parents[1] / "tools" / "closure_events.py")
tool = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tool)


def mouth(gaps) -> np.ndarray:
    """A motion track whose inner-lip opening is ``gaps`` per frame."""
    out = np.zeros((len(gaps), NUM_CHANNELS), np.float32)
    out[:, CHANNEL_INDEX["exp.lip_upper_center.y"]] = gaps
    return out


def test_runs_are_half_open_spans_of_true():
    assert tool.runs(np.array([1, 1, 0, 0, 1, 0, 1], bool)) == [(0, 2), (4, 5), (6, 7)]
    assert tool.runs(np.zeros(3, bool)) == []


def test_extra_closures_are_right_where_the_reference_closes_and_skip_the_rigs_own():
    open_, shut = 0.2, 0.0
    neural = mouth([open_, shut, shut, open_, shut, open_, shut, open_, shut])
    rig = mouth([open_, open_, open_, open_, open_, open_, shut, open_, open_])
    reference = mouth([open_, open_, shut, open_, open_, open_, shut, open_, open_])
    speech = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
    # frames 1-2: the reference closes at 2 (right); 4: invented; 6: the rig closes too (not extra);
    # 8: outside speech (not counted)
    assert tool.extra_closures(neural, rig, reference, speech) == [(1, 3, True), (4, 5, False)]
    item = {"neural": neural, "rig": rig, "extra": [(1, 3, True), (4, 5, False)]}
    fixed = tool.without_invented(item)
    # the invented closure and MARGIN frames around it take the rig's mouth; the rest is the model's
    assert np.array_equal(fixed[1:8], rig[1:8])
    assert np.array_equal(fixed[0], neural[0]) and np.array_equal(fixed[8], neural[8])


def test_closed_by_class_counts_phones_whose_frames_close():
    from studio.audio.phones import Phone
    phones = [Phone("P", 0.00, 0.08), Phone("AA", 0.08, 0.20), Phone("K", 0.20, 0.28), Phone("M", 0.28, 0.36),
              Phone("T", 0.36, 0.44), Phone("N", 0.44, 0.52)]
    gap = np.full(14, 0.2)
    gap[1] = 0.0    # inside the P (frames 0-2 at 25 fps)
    gap[10] = 0.01  # inside the T (frames 9-11), at the closed threshold's side
    counts = tool.closed_by_class(gap, phones)
    assert counts == {"p/b/m": (2, 1), "t/d/k/g": (2, 1), "n/ng": (1, 0)}
    assert tool.closed_by_class(np.zeros(0), phones) == {"p/b/m": (0, 0), "t/d/k/g": (0, 0), "n/ng": (0, 0)}
