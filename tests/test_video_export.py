"""Video export: real MP4 files and PNG sequences written, then read back and compared.

Frames are synthetic (a bright square moving over a gradient), speech comes from espeak-ng, other
audio from NumPy (written to files with soundfile where a source file is needed).
"""

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import soundfile as sf

from studio.audio.reference import read_phones_json
from studio.audio.synth import synthesize_espeak
from studio.io.video import (
    ExportCancelled,
    VideoInfo,
    probe_video,
    read_frames,
    register,
    write_mp4,
    write_png_sequence,
)
from studio.plugins.registry import Registry, default_registry, reset_default_registry

FPS = 25
MIN_PSNR_DB = 30.0  # H.264 at crf 18 is lossy; below this something is wrong (colours, padding…)
DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


@pytest.fixture(scope="module")
def speech():
    synthesis = synthesize_espeak("Hello world, this is a test.")
    return synthesis.samples, synthesis.sample_rate


def moving_square(height, width, count):
    """A bright square moving right over a smooth grey-blue gradient; H × W × 3 uint8 RGB."""
    rows, cols = np.mgrid[0:height, 0:width]
    background = np.stack([40 + 80 * cols / width, 40 + 80 * rows / height, np.full((height, width), 90.0)], -1)
    frames = []
    for i in range(count):
        frame = background.astype(np.uint8)
        x = (3 * i) % (width - 16)
        frame[20:36, x:x + 16] = 235
        frames.append(frame)
    return frames


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def decode_audio(path):
    """``(samples (n, channels), sample_rate, time of the first sample)`` of the first audio stream."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    samples = np.concatenate([f.to_ndarray() for f in frames], axis=1).T  # fltp → (n, channels)
    return samples, frames[0].sample_rate, frames[0].time


def no_leftovers(folder, allowed=()):
    return sorted(p.name for p in folder.iterdir() if p.name not in allowed) == []


@pytest.mark.parametrize("height, width", [(64, 96), (63, 97)])
def test_mp4_with_speech_round_trips(tmp_path, speech, height, width):
    samples, rate = speech
    count = int(len(samples) / rate * FPS) + 5  # the video runs a little past the speech
    frames = moving_square(height, width, count)
    reported = []
    path = write_mp4(tmp_path / "clip.mp4", iter(frames), fps=FPS, audio=speech, num_frames=count,
                     progress=reported.append)

    assert path == tmp_path / "clip.mp4" and no_leftovers(tmp_path, {"clip.mp4"})
    info = probe_video(path)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height) == (width + width % 2, height + height % 2)  # padded, not cropped
    assert info.fps == FPS and info.num_frames == count
    assert info.duration == pytest.approx(count / FPS, abs=1e-6)
    assert info.has_audio and info.audio_sample_rate == rate and info.audio_channels == 1
    assert info.audio_duration == pytest.approx(len(samples) / rate, abs=1 / FPS)
    assert abs(info.audio_start - info.video_start) <= 1 / FPS and info.video_start == 0

    back = list(read_frames(path))
    assert len(back) == count
    assert min(psnr(a, b[:height, :width]) for a, b in zip(frames, back, strict=True)) >= MIN_PSNR_DB
    if width % 2:  # the padding repeats the last column / row
        assert np.abs(back[5][:height, width].astype(int) - back[5][:height, width - 1]).mean() < 2
        assert np.abs(back[5][height, :width].astype(int) - back[5][height - 1, :width]).mean() < 2

    decoded, decoded_rate, start = decode_audio(path)
    assert decoded_rate == rate and start == 0
    n = len(samples)
    correlation = np.corrcoef(decoded[:n, 0], samples)[0, 1]  # AAC keeps the waveform in place
    assert correlation > 0.9
    assert reported == pytest.approx([(i + 1) / count for i in range(count)])


def test_audio_longer_than_the_video_is_cut_and_progress_follows_the_audio(tmp_path, speech):
    samples, rate = speech
    count = 10
    reported = []
    path = write_mp4(tmp_path / "short.mp4", (f for f in moving_square(64, 64, count)), fps=FPS,
                     audio=speech, progress=reported.append)
    info = probe_video(path)
    assert info.num_frames == count
    assert info.audio_duration == pytest.approx(count / FPS, abs=1e-3)
    expected_total = len(samples) / rate * FPS  # no num_frames, no len(): the audio sets the scale
    assert reported == pytest.approx([(i + 1) / expected_total for i in range(count)] + [1.0])


def test_audio_and_video_stay_in_sync(tmp_path):
    fps, count, flip = 30, 45, 31  # the picture turns white at frame 31, when the click sounds
    flip_time = flip / fps
    for rate in (22050, 96000):  # an AAC rate as is, and one resampled to 48 kHz
        audio = np.zeros(round(rate * (count / fps + 0.5)), np.float32)
        audio[round(flip_time * rate)] = 0.9
        frames = [np.full((32, 48, 3), 255 if i >= flip else 0, np.uint8) for i in range(count)]
        path = write_mp4(tmp_path / f"sync_{rate}.mp4", frames, fps=fps, audio=(audio, rate))

        with av.open(str(path)) as container:
            video_time = next(f.time for f in container.decode(video=0)
                              if f.to_ndarray(format="rgb24").mean() > 128)
        decoded, decoded_rate, start = decode_audio(path)
        click_time = start + np.argmax(np.abs(decoded[:, 0])) / decoded_rate
        assert decoded_rate == min(rate, 48000)
        assert video_time == pytest.approx(flip_time, abs=1e-6)
        assert abs(click_time - video_time) <= 1 / fps


def test_stereo_44k_source_file_stays_stereo_44k(tmp_path):
    rate, seconds = 44100, 1.5
    t = np.arange(round(rate * seconds)) / rate
    left, right = 0.4 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 1000 * t)
    source = tmp_path / "stereo.wav"
    sf.write(source, np.stack([left, right], 1).astype(np.float32), rate, subtype="PCM_16")

    path = write_mp4(tmp_path / "stereo.mp4", moving_square(48, 64, 30), fps=FPS, audio=source)
    info = probe_video(path)
    assert (info.audio_sample_rate, info.audio_channels) == (44100, 2)
    assert info.audio_duration == pytest.approx(30 / FPS, abs=1e-3)  # cut at the video's end
    decoded, _, _ = decode_audio(path)
    n = len(t) // 2
    assert np.corrcoef(decoded[:n, 0], left[:n])[0, 1] > 0.99  # channels not swapped or mixed
    assert np.corrcoef(decoded[:n, 1], right[:n])[0, 1] > 0.99


def cancel_after(asked):
    """A cancel() that says yes the ``asked``-th time it is asked."""
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) >= asked

    return cancel


def test_cancel_leaves_no_file(tmp_path, speech):
    with pytest.raises(ExportCancelled):
        write_mp4(tmp_path / "cancelled.mp4", moving_square(64, 64, 20), fps=FPS, audio=speech,
                  cancel=cancel_after(6))
    assert no_leftovers(tmp_path)

    with pytest.raises(ExportCancelled):
        write_png_sequence(tmp_path / "seq", moving_square(64, 64, 20), cancel=cancel_after(6))
    assert no_leftovers(tmp_path)  # the folder this call created is gone too
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    with pytest.raises(ExportCancelled):
        write_png_sequence(tmp_path / "kept", moving_square(64, 64, 20), cancel=cancel_after(3))
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["notes.txt"]


def test_an_error_from_the_frame_source_propagates_and_leaves_no_file(tmp_path):
    def failing_renderer():
        yield from moving_square(32, 32, 4)
        raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError, match="renderer failed"):
        write_mp4(tmp_path / "out.mp4", failing_renderer(), fps=FPS)
    assert no_leftovers(tmp_path)


@pytest.mark.parametrize("bad", [
    np.zeros((64, 64), np.uint8),  # no channel axis
    np.zeros((64, 64, 4), np.uint8),  # RGBA
    np.zeros((64, 64, 3), np.float32),  # not uint8
    np.zeros((32, 64, 3), np.uint8),  # a different size than frame 0
    "not an array",
])
def test_bad_frames_raise_and_leave_no_file(tmp_path, bad):
    frames = moving_square(64, 64, 3) + [bad]
    target = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match=r"bad\.mp4.*frame 3"):
        write_mp4(target, frames, fps=FPS)
    assert no_leftovers(tmp_path)
    with pytest.raises(ValueError, match="frame 3"):
        write_png_sequence(tmp_path / "seq", frames)
    assert no_leftovers(tmp_path)


def test_bad_arguments_name_the_file(tmp_path):
    frames = moving_square(32, 32, 2)
    with pytest.raises(ValueError, match="out.mp4.*no frames"):
        write_mp4(tmp_path / "out.mp4", [], fps=FPS)
    with pytest.raises(ValueError, match="out.mp4.*fps"):
        write_mp4(tmp_path / "out.mp4", frames, fps=0)
    with pytest.raises(ValueError, match="out.mp4.*missing.wav"):
        write_mp4(tmp_path / "out.mp4", frames, fps=FPS, audio=tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="out.mp4.*NaN"):
        write_mp4(tmp_path / "out.mp4", frames, fps=FPS, audio=(np.full(100, np.nan, np.float32), 16000))
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(OSError, match="folder.mp4"):
        write_mp4(tmp_path / "folder.mp4", frames, fps=FPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.mp4"]


def test_png_sequence_round_trips_exactly(tmp_path):
    frames = moving_square(63, 97, 12)
    reported = []
    files = write_png_sequence(tmp_path / "png" / "take1", frames, progress=reported.append)
    assert [f.name for f in files] == [f"frame_{i:06d}.png" for i in range(12)]
    for frame, file in zip(frames, files, strict=True):
        back = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
        np.testing.assert_array_equal(back, frame)
    assert reported == pytest.approx([(i + 1) / 12 for i in range(12)])
    named = write_png_sequence(tmp_path / "other", iter(frames[:2]), prefix="mouth_", digits=3)
    assert [f.name for f in named] == ["mouth_000.png", "mouth_001.png"]


def test_registered_exporters_follow_the_registry_calling_conventions(tmp_path, speech):
    registry = Registry()
    register(registry)
    video = registry.exporter_for(tmp_path / "x.mp4", kind="video")
    sequence = registry.exporters(kind="image_sequence")[0]
    frames = moving_square(32, 32, 8)
    video.export(iter(frames), tmp_path / "x.mp4", fps=FPS, audio=speech, preset="veryfast")
    info = probe_video(tmp_path / "x.mp4")
    assert info.num_frames == 8 and info.has_audio
    written = sequence.export(frames, tmp_path / "seq")
    assert len(written) == 8 and all(p.exists() for p in written)


def test_the_built_in_entry_point_registers_both_exporters():
    reset_default_registry()
    try:
        registry = default_registry()
        names = {spec.name for spec in registry.exporters()}
        assert {"video_mp4", "png_sequence"} <= names, (
            "pyproject.toml declares video = studio.io.video:register; reinstall (pip install -e .) "
            f"if the installed metadata is older: {registry.errors}")
    finally:
        reset_default_registry()


def test_the_demo_speech_exports_with_its_own_audio_file(tmp_path):
    audio = DEMO / "speech.flac"
    source = sf.info(audio)
    phones = read_phones_json(DEMO / "speech.phones.json")
    assert phones[0].start == 0 and phones[-1].end == pytest.approx(source.duration, abs=1e-5)
    count = round(source.duration * FPS)
    path = write_mp4(tmp_path / "demo.mp4", moving_square(32, 48, count), fps=FPS, audio=audio,
                     preset="veryfast")
    info = probe_video(path)
    assert (info.audio_sample_rate, info.audio_channels) == (source.samplerate, 1)
    assert info.audio_duration == pytest.approx(source.duration, abs=1 / FPS)
