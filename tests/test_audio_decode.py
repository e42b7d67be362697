"""Audio decoding: real files in every supported format, streaming in bounded memory, every bad-file path.

All inputs are written by the tests themselves: a chirp and sines from NumPy, speech from
espeak-ng, encoded with PyAV (FLAC, Vorbis, MP3, AAC, H.264 video) or soundfile (WAV).
"""

import shutil
import struct
import subprocess
import time
import tracemalloc
import zlib

import av
import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from studio.audio.decode import Audio, AudioError, is_silent, load_audio, stream_audio

TARGET = 16000
LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
# (codec, extension, container format, channel counts the encoder accepts)
FORMATS = {
    "wav": ("pcm_s16le", "wav", None, (1, 2, 6)),
    "flac": ("flac", "flac", None, (1, 2, 6)),
    "ogg": ("vorbis", "ogg", None, (2,)),  # FFmpeg's own Vorbis encoder is stereo-only
    "mp3": ("libmp3lame", "mp3", None, (1, 2)),
    "m4a": ("aac", "m4a", "ipod", (1, 2, 6)),
    "mp4": ("aac", "mp4", None, (1, 2, 6)),  # with an H.264 video stream
}
RATES = (8000, 22050, 44100, 48000)
CHIRP_SECONDS = 1.5


def _chirp(rate, seconds=CHIRP_SECONDS):
    """150 Hz → 2500 Hz linear chirp, fully below the Nyquist frequency of every rate used."""
    t = np.arange(round(rate * seconds)) / rate
    return (0.5 * signal.chirp(t, 150, seconds, 2500)).astype(np.float32)


def _require_encoder(codec):
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec!r} encoder")
    try:
        av.Codec(codec, "w")
    except Exception as exc:  # noqa: BLE001 - any failure means: not available here
        pytest.skip(f"this PyAV build cannot encode {codec!r}: {exc}")


def _write(path, x, rate, codec, container_format=None, video=False):
    """Encode ``x`` (samples × channels, float in −1…1) with PyAV; optionally add an H.264 video."""
    _require_encoder(codec)
    n, channels = x.shape
    layout = LAYOUTS[channels]
    with av.open(str(path), "w", format=container_format) as out:
        if video:
            _require_encoder("libx264")
            vstream = out.add_stream("libx264", rate=25)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 64, "yuv420p"
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        fmt = stream.codec_context.format.name
        for start in range(0, n, 1024):
            chunk = x[start : start + 1024].T
            if fmt.startswith("s16"):
                chunk = np.round(chunk * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                chunk = np.round(chunk * (2**31 - 1)).astype(np.int32)
            else:
                chunk = chunk.astype(np.float32)
            if not fmt.endswith("p"):
                chunk = chunk.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout=layout)
            frame.sample_rate, frame.pts = rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if video:
            for k in range(int(n / rate * 25)):
                image = np.full((64, 64, 3), (k * 9) % 256, np.uint8)
                out.mux(vstream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            out.mux(vstream.encode(None))
    return path


def _aligned_correlation(decoded, reference, max_lag_s=0.2):
    """Correlation coefficient of ``decoded`` with ``reference`` after removing the codec delay."""
    max_lag = round(max_lag_s * TARGET)
    full = signal.correlate(decoded, reference, mode="full", method="fft")
    lags = signal.correlation_lags(len(decoded), len(reference), mode="full")
    window = np.abs(lags) <= max_lag
    lag = lags[window][np.argmax(full[window])]
    a = decoded[lag:] if lag >= 0 else decoded
    b = reference if lag >= 0 else reference[-lag:]
    m = min(len(a), len(b))
    return float(np.corrcoef(a[:m], b[:m])[0, 1]), float(np.std(a[:m]) / np.std(b[:m]))


def _peak_amplitude(x, rate, freq):
    """Amplitude of the sinusoid at ``freq`` (Hann-windowed FFT, searched ±2 %)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) * 2 / (len(x) * 0.5)
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    near = np.abs(freqs - freq) <= 0.02 * freq
    return float(spectrum[near].max())


def _cases():
    for name, (_, _, _, channel_counts) in FORMATS.items():
        for rate in RATES:
            for channels in channel_counts:
                if name == "mp4" and rate in (22050, 44100):
                    continue  # the video path needs no full matrix; keeps the file fast
                yield pytest.param(name, rate, channels, id=f"{name}-{rate}Hz-{channels}ch")


@pytest.mark.parametrize(("name", "rate", "channels"), list(_cases()))
def test_every_format_rate_and_channel_count_decodes_to_16k_mono(tmp_path, name, rate, channels):
    codec, ext, container_format, _ = FORMATS[name]
    # Each channel carries the chirp at its own gain, so the mean has a known gain; the 5.1 LFE
    # (index 3) stays silent because AAC low-passes it.
    gains = {1: [1.0], 2: [1.0, 0.0], 6: [1.0, 0.5, 0.25, 0.0, 0.75, 0.5]}[channels]
    source = _chirp(rate)[:, None] * np.array(gains, np.float32)
    path = tmp_path / f"chirp.{ext}"
    _write(path, source, rate, codec, container_format, video=(name == "mp4"))

    audio = load_audio(path)

    assert isinstance(audio, Audio)
    assert audio.sample_rate == TARGET
    assert (audio.source_sample_rate, audio.source_channels) == (rate, channels)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.path == path
    assert abs(audio.duration - CHIRP_SECONDS) <= 0.05, audio.duration
    assert np.abs(audio.samples).max() <= 1.0
    correlation, gain = _aligned_correlation(audio.samples, _chirp(TARGET))
    assert correlation > 0.95, correlation
    assert gain == pytest.approx(np.mean(gains), rel=0.15)


def test_stereo_with_different_channels_is_their_mean(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    left, right = 0.6 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 1000 * t)
    sf.write(tmp_path / "lr.wav", np.stack([left, right], 1), rate, subtype="FLOAT")

    audio = load_audio(tmp_path / "lr.wav")

    body = audio.samples[800:-800]  # away from the resampler's edges
    assert _peak_amplitude(body, TARGET, 440) == pytest.approx(0.3, rel=0.02)
    assert _peak_amplitude(body, TARGET, 1000) == pytest.approx(0.1, rel=0.02)
    expected = signal.resample_poly((left + right) / 2, 160, 441)
    assert np.abs(audio.samples[800:-800] - expected[800:-800]).max() < 1e-3


def test_six_channels_weigh_equally_including_lfe(tmp_path):
    rate = 48000
    t = np.arange(rate) / rate
    x = np.zeros((rate, 6))
    x[:, 3] = 0.6 * np.sin(2 * np.pi * 60 * t)  # LFE only: a downmix matrix would drop or scale it
    path = _write(tmp_path / "lfe.flac", x, rate, "flac")
    audio = load_audio(path)
    assert audio.source_channels == 6
    assert _peak_amplitude(audio.samples[800:-800], TARGET, 60) == pytest.approx(0.1, rel=0.02)


@pytest.mark.parametrize("name", ["wav", "flac", "ogg", "mp3", "m4a", "mp4"])
def test_sine_keeps_its_frequency(tmp_path, name):
    codec, ext, container_format, channel_counts = FORMATS[name]
    rate, freq = 22050, 1234.0
    tone = 0.5 * np.sin(2 * np.pi * freq * np.arange(rate) / rate)
    source = np.repeat(tone[:, None], channel_counts[0], axis=1)
    path = _write(tmp_path / f"sine.{ext}", source, rate, codec, container_format, video=(name == "mp4"))
    samples = load_audio(path).samples
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    dominant = np.fft.rfftfreq(len(samples), 1 / TARGET)[np.argmax(spectrum)]
    assert dominant == pytest.approx(freq, rel=0.02)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (apt install espeak-ng; `make setup` does it)")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(
        [espeak, "-w", str(path), "The quick brown fox jumps over the lazy dog, twice."],
        check=True, capture_output=True, timeout=30,
    )
    return path


@pytest.mark.parametrize("name", ["flac", "ogg", "mp3", "m4a", "mp4"])
def test_real_speech_survives_every_codec(tmp_path, speech_wav, name):
    codec, ext, container_format, channel_counts = FORMATS[name]
    speech, rate = sf.read(speech_wav, dtype="float32", always_2d=True)
    reference = load_audio(speech_wav)
    assert (reference.source_sample_rate, reference.source_channels) == (rate, 1)
    assert reference.duration == pytest.approx(len(speech) / rate, abs=1e-3)
    assert not is_silent(reference)

    source = np.repeat(speech, channel_counts[0], axis=1)
    path = _write(tmp_path / f"speech.{ext}", source, rate, codec, container_format, video=(name == "mp4"))
    audio = load_audio(path, require_sound=True)

    assert abs(audio.duration - reference.duration) <= 0.05
    correlation, gain = _aligned_correlation(audio.samples, reference.samples)
    assert correlation > 0.9, correlation
    assert gain == pytest.approx(1.0, rel=0.15)


def test_stream_blocks_are_consecutive_and_equal_the_whole(tmp_path):
    rate = 44100
    source = _chirp(rate, seconds=2.3)
    sf.write(tmp_path / "c.wav", source, rate, subtype="FLOAT")
    blocks = list(stream_audio(tmp_path / "c.wav", block_seconds=0.25))
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert [len(b) for b in blocks[:-1]] == [4000] * (len(blocks) - 1)
    assert 0 < len(blocks[-1]) <= 4000
    whole = load_audio(tmp_path / "c.wav")
    np.testing.assert_array_equal(np.concatenate(blocks), whole.samples)
    # Stateful resampling across frames = resampling the whole signal at once (no block seams).
    expected = signal.resample_poly(source, 160, 441)
    inner = slice(800, len(expected) - 800)
    assert np.abs(whole.samples[inner] - expected[inner]).max() < 2e-3


def test_stream_of_ten_minutes_stays_in_bounded_memory(tmp_path):
    rate, minutes = 8000, 10
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as out:
        second = np.sin(2 * np.pi * 300 * np.arange(rate) / rate).astype(np.float32) * 0.3
        for _ in range(minutes * 60):
            out.write(second)
    decoded_bytes = minutes * 60 * TARGET * 4  # what load_audio would hold: 38.4 MB

    tracemalloc.start()
    try:
        total, blocks = 0, 0
        for block in stream_audio(path, block_seconds=10.0):
            total += len(block)
            blocks += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert total == minutes * 60 * TARGET
    assert blocks == minutes * 6
    # Peak ≈ a few blocks of 640 kB; the whole decoded file would be 38.4 MB.
    assert peak < decoded_bytes / 10, f"peak {peak / 1e6:.1f} MB of {decoded_bytes / 1e6:.1f} MB decoded"


def test_max_seconds_and_other_rates(tmp_path):
    sf.write(tmp_path / "c.wav", _chirp(48000), 48000)
    assert len(load_audio(tmp_path / "c.wav", max_seconds=0.5).samples) == 8000
    assert len(list(stream_audio(tmp_path / "c.wav", max_seconds=0.5, block_seconds=0.1))) == 5
    audio = load_audio(tmp_path / "c.wav", sample_rate=22050)
    assert audio.sample_rate == 22050 and len(audio.samples) == pytest.approx(1.5 * 22050, abs=2)
    same = load_audio(tmp_path / "c.wav", sample_rate=48000)  # no resampling at all
    np.testing.assert_allclose(same.samples, _chirp(48000), atol=1 / 32768)


def test_silence_is_audio_but_can_be_refused(tmp_path):
    sf.write(tmp_path / "quiet.wav", np.full(16000, 1e-4, np.float32), 16000, subtype="FLOAT")
    audio = load_audio(tmp_path / "quiet.wav")
    assert audio.duration == 1.0 and is_silent(audio) and not is_silent(audio, threshold_db=-90)
    with pytest.raises(AudioError, match="contains only silence") as err:
        load_audio(tmp_path / "quiet.wav", require_sound=True)
    assert str(tmp_path / "quiet.wav") in str(err.value)
    assert is_silent(np.zeros(0, np.float32))


# --- bad files ----------------------------------------------------------------------------------


def _png(path):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compress(b"".join(b"\x00" + bytes(12) for _ in range(4)))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _video_only(path):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for k in range(10):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), k, np.uint8), format="rgb24")))
        out.mux(stream.encode(None))


def _bad_files(tmp_path):
    """name → (path, words the message must contain)."""
    rng = np.random.default_rng(3)
    sf.write(tmp_path / "good.wav", _chirp(16000), 16000)
    wav = (tmp_path / "good.wav").read_bytes()
    mp3 = _write(tmp_path / "good.mp3", _chirp(44100)[:, None], 44100, "libmp3lame").read_bytes()
    files = {}

    def put(name, data, words):
        (tmp_path / name).write_bytes(data)
        files[name] = (tmp_path / name, words)

    files["missing.wav"] = (tmp_path / "missing.wav", "not found")
    put("empty.wav", b"", "empty")
    put("notes.txt", b"Just some notes, not audio.\n" * 40, "not an audio or video file")
    _png(tmp_path / "image.png")
    files["image.png"] = (tmp_path / "image.png", "not an audio or video file")
    put("header_cut.wav", wav[:20], "not a readable audio or video file")
    put("header_cut.mp3", mp3[:200], "not a readable audio or video file")
    put("garbage_after_header.mp3", mp3[:1000] + rng.bytes(50_000), "corrupt")
    put("random.bin", rng.bytes(100_000), "not a readable audio or video file")
    put("no_samples.wav", wav[:44], "no audio samples")
    _video_only(tmp_path / "video_only.mp4")
    files["video_only.mp4"] = (tmp_path / "video_only.mp4", "no audio stream")
    files["a_folder"] = (tmp_path, "not a file")
    return files


def test_bad_files_raise_clear_errors_quickly(tmp_path):
    for name, (path, words) in _bad_files(tmp_path).items():
        for attempt in (lambda: load_audio(path), lambda: next(stream_audio(path))):
            start = time.perf_counter()
            with pytest.raises(AudioError) as err:
                attempt()
            assert time.perf_counter() - start < 2.0, f"{name} took too long"
            message = str(err.value)
            assert str(path) in message, message
            assert words in message, f"{name}: {message}"
            assert isinstance(err.value, ValueError)


def test_pcm_noise_after_a_valid_header_is_decoded_not_refused(tmp_path):
    # A WAV header followed by random bytes is valid PCM (noise) to any decoder: it loads without
    # crashing, and only what the file holds comes out. So does a WAV cut short inside its data.
    sf.write(tmp_path / "good.wav", _chirp(16000), 16000)
    wav = (tmp_path / "good.wav").read_bytes()
    (tmp_path / "noise.wav").write_bytes(wav[:44] + np.random.default_rng(0).bytes(3200))
    noise = load_audio(tmp_path / "noise.wav")
    assert noise.duration == pytest.approx(0.1, abs=0.01) and not is_silent(noise)
    (tmp_path / "cut.wav").write_bytes(wav[: 44 + 16000])
    assert load_audio(tmp_path / "cut.wav").duration == pytest.approx(0.5, abs=0.01)
