"""Lip-sync metrics: closure counting at frame resolution, correlation and lag on rig tracks."""

import numpy as np
import pytest

from studio.audio.phones import Phone
from studio.generate.lipsync import CLOSED_GAP, ClosureCounts, closure_counts, lag_ms, mouth_correlation
from studio.generate.pipeline import phones_motion
from studio.generate.rig import mouth_gap

PHONES = [Phone("SIL", 0, 0.3), Phone("M", 0.3, 0.38), Phone("AA", 0.38, 0.55), Phone("P", 0.55, 0.62),
          Phone("AE", 0.62, 0.8), Phone("B", 0.8, 0.83), Phone("OW", 0.83, 1.0), Phone("SIL", 1.0, 1.5)]


def test_closure_counts_follow_the_frames():
    fps = 25
    gap = np.full(38, 0.2)
    gap[8] = 0.0  # 0.32 s: inside the M
    counts = closure_counts(gap, fps, PHONES)
    assert counts == ClosureCounts(bilabials=3, closed_bilabials=1, open_vowels=3, closed_vowels=0)
    # a 30 ms B between frames 20 (0.80 s) and 21 (0.84 s) owns both neighbours within half a frame
    gap[21] = 0.0
    assert closure_counts(gap, fps, PHONES).closed_bilabials == 2
    # closing in the middle of the AA is a false closure; at its edge it is not
    gap[11] = 0.0  # 0.44 s: central half of 0.38…0.55
    assert closure_counts(gap, fps, PHONES).closed_vowels == 1
    gap[11] = 0.2
    gap[10] = CLOSED_GAP  # 0.40 s: the AA's first quarter, where the lips may still be opening
    assert closure_counts(gap, fps, PHONES).closed_vowels == 0


def test_counts_pool_and_rates():
    a = ClosureCounts(10, 9, 20, 1)
    b = ClosureCounts(10, 10, 20, 0)
    total = a + b
    assert total.recall == pytest.approx(0.95) and total.false_rate == pytest.approx(0.025)
    assert np.isnan(ClosureCounts(0, 0, 0, 0).recall)


@pytest.mark.parametrize("shift_ms", [-60, -25, 0, 15, 40])
def test_lag_of_shifted_phones_is_measured_to_a_few_ms(shift_ms):
    phones = PHONES * 1
    long = []
    for k in range(8):  # 12 s of varied material
        long += [Phone(p.label, p.start + 1.5 * k + 0.02 * (k % 3), p.end + 1.5 * k + 0.02 * (k % 3)) for p in phones]
    shifted = [Phone(p.label, p.start + shift_ms / 1000, p.end + shift_ms / 1000) for p in long]
    duration = 12.5
    ref = mouth_gap(phones_motion(long, duration, 100))
    test = mouth_gap(phones_motion(shifted, duration, 100))
    assert lag_ms(test, ref, 100) == pytest.approx(shift_ms, abs=4)
    assert mouth_correlation(ref, ref) == pytest.approx(1.0)
    if shift_ms:
        assert mouth_correlation(test, ref) < 1.0


def test_degenerate_inputs():
    assert np.isnan(mouth_correlation(np.zeros(10), np.ones(10)))
    assert np.isnan(lag_ms(np.zeros(50), np.zeros(50), 25))
