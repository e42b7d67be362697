"""The portrait renderer's two backends give one result: the torch backend (on the CPU here, on
CUDA too where there is one) draws the same pictures as the OpenCV backend, on real photos
(scikit-image's astronaut, matplotlib's Grace Hopper, and the astronaut enlarged so the map is
computed at half resolution), for the rest frame, an open jaw, a blink, gaze both ways and a
head turn. Measured (OpenCV 5.0 and 4.10): at most one grey level apart, on at most about 1 value
in 10⁴; the rest frame gives the photo back exactly from both."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from studio.core.motion import CHANNEL_INDEX  # noqa: E402
from studio.render.contact_sheet import sample_photos  # noqa: E402
from studio.render.face_fit import fit_portrait  # noqa: E402
from studio.render.portrait import PortraitRenderer  # noqa: E402
from studio.render.portrait_torch import (  # noqa: E402
    TorchPortraitRenderer,
    create_renderer,
    resolve_device,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "grace_hopper", "astronaut_1600")
FRAMES = ("rest", "jaw_open", "blink", "gaze_left", "gaze_right", "yaw")
JAW_KEYS = ("lip_lower_center", "lip_lower_l", "lip_lower_r", "chin")


def _photo(name: str) -> np.ndarray:
    if name == "astronaut_1600":
        return cv2.resize(sample_photos()["astronaut"], (1600, 1600), interpolation=cv2.INTER_CUBIC)
    return sample_photos()[name]


@pytest.fixture(scope="module")
def photos():
    """Each photo and its fit, fitted once."""
    out = {}
    for name in PHOTOS:
        image = _photo(name)
        out[name] = (image, fit_portrait(image, name=name))
    return out


@pytest.fixture(scope="module")
def renderers(photos):
    """(OpenCV renderer, torch CPU renderer) of each photo."""
    return {name: (PortraitRenderer(image, fit), TorchPortraitRenderer(image, fit, device="cpu"))
            for name, (image, fit) in photos.items()}


def make_frame(renderer: PortraitRenderer, kind: str) -> np.ndarray:
    frame = renderer.rig.rest_frame()
    if kind == "jaw_open":
        for key in JAW_KEYS:
            frame[CHANNEL_INDEX[f"exp.{key}.y"]] -= 0.25
    elif kind == "blink":
        frame[CHANNEL_INDEX["eye.blink_l"]] = frame[CHANNEL_INDEX["eye.blink_r"]] = 1.0
    elif kind == "gaze_left":
        frame[CHANNEL_INDEX["eye.gaze_x"]] = -1.0
    elif kind == "gaze_right":
        frame[CHANNEL_INDEX["eye.gaze_x"]] = 1.0
    elif kind == "yaw":
        frame[CHANNEL_INDEX["pose.yaw"]] = 15.0
    else:
        assert kind == "rest"
    return frame


def assert_same_picture(expected: np.ndarray, actual: np.ndarray) -> None:
    assert actual.shape == expected.shape and actual.dtype == np.uint8
    diff = np.abs(expected.astype(np.int16) - actual.astype(np.int16))
    # The brief's bound is mean < 0.5 and 99.9th percentile ≤ 3; the backends do far better.
    assert diff.mean() < 0.01, f"mean |diff| {diff.mean():.4f}"
    assert np.percentile(diff, 99.9) <= 1
    assert diff.max() <= 1, f"max |diff| {diff.max()} at {np.argwhere(diff == diff.max())[:3].tolist()}"
    assert (diff > 0).mean() < 1e-3, f"{(diff > 0).sum()} values differ"


def test_the_large_photo_maps_at_half_resolution(renderers):
    assert renderers["astronaut"][0].step == 1
    assert renderers["astronaut_1600"][0].step == 2


@pytest.mark.parametrize("kind", FRAMES)
@pytest.mark.parametrize("photo", PHOTOS)
def test_torch_cpu_draws_what_opencv_draws(renderers, photos, photo, kind):
    opencv, torch_cpu = renderers[photo]
    frame = make_frame(opencv, kind)
    expected = opencv.render(frame)
    actual = torch_cpu.render(frame)
    assert_same_picture(expected, actual)
    image = photos[photo][0]
    changed = (expected != image).any(-1).mean()
    if kind == "rest":
        assert np.array_equal(actual, image)
    elif kind == "yaw":
        assert changed > 0.05  # the frames really move the picture
    elif kind == "jaw_open":
        vertices = opencv._vertices(frame[None])[0]
        assert opencv.mouth.opacity(vertices) > 0.5  # the mouth interior is composited
        assert changed > 0.002
    else:
        assert changed > 0.0


def test_gaze_edits_come_and_go_on_the_device(renderers, photos):
    """Gaze edits the photo on the device's copy too, and a later frame without gaze undoes it."""
    opencv, torch_cpu = renderers["grace_hopper"]
    image = photos["grace_hopper"][0]
    for kind in ("gaze_right", "rest", "gaze_left", "gaze_left", "gaze_right", "rest", "yaw"):
        frame = make_frame(opencv, kind)
        actual = torch_cpu.render(frame)
        assert_same_picture(opencv.render(frame), actual)
        if kind == "rest":
            assert np.array_equal(actual, image)


def test_a_combined_frame_sequence(renderers):
    opencv, torch_cpu = renderers["astronaut_1600"]
    frames = np.stack([make_frame(opencv, kind) for kind in ("jaw_open", "yaw")])
    frames[:, CHANNEL_INDEX["pose.pitch"]] = (6.0, -4.0)
    frames[:, CHANNEL_INDEX["eye.gaze_x"]] = (0.5, -0.7)
    frames[:, CHANNEL_INDEX["eye.blink_r"]] = (0.5, 0.0)
    for frame in frames:
        assert_same_picture(opencv.render(frame), torch_cpu.render(frame))


def test_a_mouth_reaching_out_of_the_working_region(photos):
    """The mouth interior is composited where it lies, also past the working region's edge."""
    image, fit = photos["astronaut"]
    opencv, torch_cpu = PortraitRenderer(image, fit), TorchPortraitRenderer(image, fit, device="cpu")
    frame = make_frame(opencv, "jaw_open")
    _, mask, (_, my0) = opencv.mouth.picture(opencv._vertices(frame[None])[0], image.shape[:2])
    x0, y0, x1, _ = opencv.mesh.region
    cut = my0 + mask.shape[0] // 2  # the region ends halfway down the open mouth
    for renderer in (opencv, torch_cpu):
        renderer.mesh = dataclasses.replace(renderer.mesh, region=(x0, y0, x1, cut))
    expected = opencv.render(frame)
    assert (expected[cut:] != image[cut:]).any()
    assert_same_picture(expected, torch_cpu.render(frame))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("photo", ("astronaut", "astronaut_1600"))
def test_torch_cuda_draws_what_opencv_draws(renderers, photos, photo):
    image, fit = photos[photo]
    opencv = renderers[photo][0]
    cuda = create_renderer(image, fit, backend="torch", device="cuda")
    assert cuda.device.type == "cuda"
    for kind in FRAMES:
        frame = make_frame(opencv, kind)
        assert_same_picture(opencv.render(frame), cuda.render(frame))


def test_create_renderer_picks_the_backend(photos):
    image, fit = photos["astronaut"]
    opencv = create_renderer(image, fit)
    assert type(opencv) is PortraitRenderer
    on_cpu = create_renderer(image, fit, backend="torch", device="cpu")
    assert isinstance(on_cpu, TorchPortraitRenderer) and on_cpu.device.type == "cpu"
    with pytest.raises(ValueError, match="unknown renderer backend"):
        create_renderer(image, fit, backend="vulkan")
    with pytest.raises(ValueError, match="CPU only"):
        create_renderer(image, fit, backend="opencv", device="cuda")


def test_devices():
    auto = resolve_device("auto")
    assert auto.type in ("cpu", "cuda")
    if auto.type == "cuda":
        assert float(torch.ones(3, device=auto).sum()) == 3.0
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError):
        resolve_device("meta")
    with pytest.raises(ValueError):
        resolve_device("not a device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_the_opencv_backend_does_not_import_torch(photos):
    image, fit = photos["astronaut"]
    keypoints = json.dumps(fit.keypoints[:, :2].tolist())
    probe = (
        "import json, sys\n"
        "import numpy as np, skimage.data\n"
        "from studio.core.motion import CHANNEL_INDEX\n"
        "from studio.render.face_fit import fit_from_keypoints\n"
        "from studio.render.portrait_torch import create_renderer\n"
        "image = skimage.data.astronaut()\n"
        f"fit = fit_from_keypoints(image.shape[:2], np.array(json.loads({keypoints!r})))\n"
        "renderer = create_renderer(image, fit, backend='opencv')\n"
        "frame = renderer.rig.rest_frame(); frame[CHANNEL_INDEX['pose.yaw']] = 10.0\n"
        "assert renderer.render(frame).shape == image.shape\n"
        "print(json.dumps('torch' in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPOSITORY_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) is False
