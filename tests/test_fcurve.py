"""F-curve interpolation (CONSTANT, LINEAR, BEZIER auto-clamped), extrapolation and edits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.core.fcurve import Extrapolation, FCurve, Interpolation as I


def test_constant_holds_until_the_next_key():
    c = FCurve.from_keys([0, 10, 20], [1.0, 5.0, 2.0], I.CONSTANT)
    np.testing.assert_array_equal(c.evaluate([0, 5, 9.999, 10, 15, 20, 25]), [1, 1, 1, 5, 5, 2, 2])


def test_linear_interpolates_straight():
    c = FCurve.from_keys([0, 10], [0.0, 1.0], I.LINEAR)
    np.testing.assert_allclose(c.evaluate([0, 2.5, 5, 10]), [0, 0.25, 0.5, 1.0])


def test_bezier_passes_through_keys_and_is_smooth():
    f = np.array([0, 7, 12, 30, 41.5])
    v = np.array([0.0, 1.0, 3.0, 4.0, 10.0])  # monotone rising
    c = FCurve.from_keys(f, v, I.BEZIER)
    np.testing.assert_allclose(c.evaluate(f), v)
    # C1 at interior keys: one-sided slopes agree.
    eps = 1e-6
    for k in f[1:-1]:
        left = (c.evaluate(k) - c.evaluate(k - eps)) / eps
        right = (c.evaluate(k + eps) - c.evaluate(k)) / eps
        assert left == pytest.approx(right, rel=1e-3, abs=1e-4)
    t = np.linspace(0, 41.5, 2000)
    assert np.all(np.diff(c.evaluate(t)) >= -1e-12)  # monotone data → monotone curve


def test_bezier_is_flat_at_extremes_and_at_the_ends():
    c = FCurve.from_keys([0, 10, 20], [0.0, 1.0, 0.0], I.BEZIER)
    y = c.evaluate(np.linspace(0, 20, 401))
    assert y.max() == pytest.approx(1.0)  # no overshoot above the peak key
    assert c.evaluate(9.99) == pytest.approx(1.0, abs=1e-4) and c.evaluate(10.01) == pytest.approx(1.0, abs=1e-4)
    assert c.evaluate(0.01) == pytest.approx(0.0, abs=1e-4)  # flat end handle
    # An ease: halfway between two keys the Hermite cubic is at the mean.
    assert c.evaluate(5.0) == pytest.approx(0.5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 500), st.floats(-10, 10, allow_nan=False)), min_size=2, max_size=12,
                unique_by=lambda k: k[0]))
def test_bezier_never_overshoots_its_neighbouring_keys(keys):
    keys.sort()
    f = np.array([k[0] for k in keys], dtype=float)
    v = np.array([k[1] for k in keys])
    c = FCurve.from_keys(f, v, I.BEZIER)
    for a, b, va, vb in zip(f[:-1], f[1:], v[:-1], v[1:]):
        y = c.evaluate(np.linspace(a, b, 50))
        assert y.min() >= min(va, vb) - 1e-9 and y.max() <= max(va, vb) + 1e-9


def test_mixed_modes_use_the_mode_of_the_segment_start():
    c = FCurve.from_keys([0, 10, 20, 30], [0.0, 1.0, 2.0, 0.0], [I.CONSTANT, I.LINEAR, I.BEZIER, I.LINEAR])
    np.testing.assert_allclose(c.evaluate([5, 15]), [0.0, 1.5])
    assert 0.0 < c.evaluate(25) < 2.0


def test_extrapolation():
    c = FCurve.from_keys([10, 20], [1.0, 3.0], I.LINEAR)
    np.testing.assert_allclose(c.evaluate([0, 30]), [1.0, 3.0])
    lin = c.with_extrapolation("LINEAR")
    np.testing.assert_allclose(lin.evaluate([0, 30]), [-1.0, 5.0])
    const_end = FCurve.from_keys([10, 20], [1.0, 3.0], I.CONSTANT, Extrapolation.LINEAR)
    np.testing.assert_allclose(const_end.evaluate([0, 30]), [1.0, 3.0])  # a constant segment has no slope
    bez = FCurve.from_keys([10, 20], [1.0, 3.0], I.BEZIER, Extrapolation.LINEAR)
    np.testing.assert_allclose(bez.evaluate([0, 30]), [-1.0, 5.0])
    eps = 1e-6  # smooth into the extrapolated line
    assert (bez.evaluate(20 + eps) - bez.evaluate(20 - eps)) / (2 * eps) == pytest.approx(0.2, rel=1e-3)


def test_edge_cases():
    single = FCurve.from_keys([5], [2.0])
    np.testing.assert_array_equal(single.evaluate([-100, 5, 1e6]), [2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="no keyframes"):
        FCurve().evaluate([0])
    dup = FCurve.from_keys([3, 1, 3], [1.0, 0.0, 9.0], I.LINEAR)  # unsorted, duplicate frame: last wins
    np.testing.assert_array_equal(dup.frames, [1, 3])
    np.testing.assert_array_equal(dup.values, [0, 9])
    sub = FCurve.from_keys([0.5, 1.5], [0.0, 1.0], I.LINEAR)
    assert sub.evaluate(1.0) == pytest.approx(0.5)
    assert sub.evaluate(np.zeros((2, 3))).shape == (2, 3)
    with pytest.raises(ValueError, match="finite"):
        FCurve.from_keys([0, np.nan], [0, 1])
    with pytest.raises(ValueError, match="matching"):
        FCurve.from_keys([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="interpolation"):
        FCurve.from_keys([0, 1], [0, 1], 7)


def test_edits_return_new_curves():
    c = FCurve.from_keys([0, 10, 20], [0.0, 1.0, 2.0], I.LINEAR)
    c2 = c.with_keys([10, 15], [5.0, 6.0], I.CONSTANT)
    np.testing.assert_array_equal(c2.frames, [0, 10, 15, 20])
    np.testing.assert_array_equal(c2.values, [0, 5, 6, 2])
    np.testing.assert_array_equal(c.values, [0, 1, 2])  # the original is unchanged
    assert not c.frames.flags.writeable
    np.testing.assert_array_equal(c.without_keys([0, 2]).frames, [10])
    moved = c.with_keys_moved([0], frame_delta=10, value_delta=0.5)  # lands on key 10 and replaces it
    np.testing.assert_array_equal(moved.frames, [10, 20])
    np.testing.assert_array_equal(moved.values, [0.5, 2.0])
    assert c.with_interpolation([1], I.CONSTANT).interpolation.tolist() == [1, 0, 1]
    assert c.key_index(10) == 1 and c.key_index(11) is None
    with pytest.raises(IndexError):
        c.without_keys([3])
    assert c == FCurve.from_keys([20, 0, 10], [2.0, 0.0, 1.0], I.LINEAR)
    assert c != c2


def test_plain_data_round_trip_is_exact():
    c = FCurve.from_keys([0, 3.25, 10], [0.1, -1 / 3, 2e-9], [I.BEZIER, I.CONSTANT, I.LINEAR], "LINEAR")
    assert FCurve.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown interpolation"):
        FCurve.from_dict({"frames": [0], "values": [0], "interpolation": ["SPLINE"]})
    with pytest.raises(ValueError, match="unique"):
        FCurve.from_dict({"frames": [0, 0], "values": [0, 1], "interpolation": ["LINEAR", "LINEAR"]})
    with pytest.raises(ValueError, match="length"):
        FCurve.from_dict({"frames": [0, 1], "values": [0, 1], "interpolation": ["LINEAR"]})


def test_a_set_handle_slope_shapes_its_bezier_segments_and_survives_edits():
    auto = FCurve.from_keys([0, 10, 20], [0.0, 1.0, 0.0])
    assert auto.tangents[1] == 0.0  # an extremum: flat
    tilted = auto.with_slopes([1], 0.2)
    assert tilted.tangents.tolist() == [0.0, 0.2, 0.0] and tilted != auto
    np.testing.assert_allclose(tilted.evaluate([0, 10, 20]), [0, 1, 0])  # still through the keys
    # the handle's slope is the curve's slope at the key, on both sides (aligned handles)
    eps = 1e-4
    for side in (-eps, eps):
        slope = (tilted.evaluate(10 + side) - 1.0) / side
        assert slope == pytest.approx(0.2, abs=1e-3)
    assert tilted.evaluate(12) > auto.evaluate(12) and tilted.evaluate(8) < auto.evaluate(8)
    # linear and constant segments ignore it; NaN returns the key to auto
    assert tilted.with_interpolation([0, 1], I.LINEAR).evaluate(15) == pytest.approx(0.5)
    assert tilted.with_slopes([1], np.nan) == auto
    # edits keep the slope with its key: moving, deleting another key, re-keying its frame
    assert tilted.with_keys_moved([1], 2, 0.5).tangents[1] == 0.2
    assert tilted.without_keys([0]).slopes.tolist()[0] == 0.2
    assert tilted.with_keys([10], [3.0]).slopes[1] == 0.2
    assert np.isnan(tilted.with_keys([5], [3.0]).slopes[1])  # a new key is auto
    assert tilted.with_keys([10], [3.0], slopes=np.nan) == auto.with_keys([10], [3.0])
    with pytest.raises(ValueError, match="finite"):
        auto.with_slopes([0], np.inf)


def test_set_slopes_round_trip_and_files_without_them_read_as_auto():
    c = FCurve.from_keys([0, 10, 20], [0.0, 1.0, 0.0]).with_slopes([2], -0.05)
    data = c.to_dict()
    assert data["slopes"] == [None, None, -0.05]
    assert FCurve.from_dict(data) == c
    assert "slopes" not in FCurve.from_keys([0, 1], [0.0, 1.0]).to_dict()  # all auto: the old layout
    old = {"frames": [0, 10], "values": [0, 1], "interpolation": ["BEZIER", "BEZIER"]}
    assert np.isnan(FCurve.from_dict(old).slopes).all()
    for bad in ([None], "steep", [None, float("inf")], [None, True]):
        with pytest.raises(ValueError, match="slopes"):
            FCurve.from_dict({**old, "slopes": bad})
