"""Audio features: framing, log-mel, energy, pitch, voice activity, streaming, resampling, bad input.

Inputs are synthetic (harmonic tones, impulses, white noise from NumPy) or real speech synthesized
by espeak-ng at two voice pitches and decoded with :func:`studio.audio.decode.load_audio`.
"""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from studio.audio.decode import Audio, load_audio, stream_audio
from studio.audio.features import (
    FEATURE_RATE,
    AudioFeatures,
    compute_features,
    energy_db,
    features_from_stream,
    log_mel,
    mel_band_centres,
    mel_band_edges,
    num_frames,
    pitch,
    voice_activity,
)

RATE = 16000
HOP = RATE // FEATURE_RATE
SENTENCE = "Maybe we can make the talking head move more naturally when it speaks."
FIELDS = ("log_mel", "energy_db", "f0", "voicing", "vad")


def _tone(f0, seconds=1.0, harmonics=6, amplitude=0.3):
    """A harmonic tone: ``harmonics`` partials with 1/k amplitudes and arbitrary phases."""
    t = np.arange(round(RATE * seconds)) / RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t + 0.7 * k) / k for k in range(1, harmonics + 1))
    return (amplitude * x / np.max(np.abs(x))).astype(np.float32)


def _noise(n, rms, seed=0):
    return (np.random.default_rng(seed).standard_normal(n) * rms).astype(np.float32)


def _assert_same(a: AudioFeatures, b: AudioFeatures):
    assert a.num_frames == b.num_frames and a.duration == b.duration and a.rate == b.rate
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        if x.dtype == bool:
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """espeak-ng speech at voice pitch 30 and 80, trimmed to the first/last sample above −40 dB
    of the peak, so the true onset is sample 0 and the true offset the last sample."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (apt install espeak-ng; `make setup` does it)")
    folder = tmp_path_factory.mktemp("speech")
    voices = {}
    for voice_pitch in (30, 80):
        path = folder / f"pitch{voice_pitch}.wav"
        subprocess.run(
            [espeak, "-w", str(path), "-v", "en-us", "-p", str(voice_pitch), SENTENCE],
            check=True, capture_output=True, timeout=30,
        )
        x = load_audio(path).samples
        loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 0.01)
        voices[voice_pitch] = x[loud[0]: loud[-1] + 1]
    return voices


# --------------------------------------------------------------------------------------------
# Framing


@pytest.mark.parametrize("n", [0, 1, 159, 160, 161, 16000, 16001])
def test_frame_count_is_ceil_of_samples_over_hop(n):
    x = _noise(n, 0.1)
    expected = -(-n // HOP)
    assert num_frames(n) == expected
    assert energy_db(x).shape == (expected,)
    assert log_mel(x).shape == (expected, 80)
    assert all(a.shape == (expected,) for a in pitch(x))
    features = compute_features(x)
    assert features.num_frames == expected and features.duration == n / RATE


def test_frames_are_centred_on_their_time_and_padded_with_zeros():
    x = np.zeros(RATE, np.float32)
    x[8000] = 1.0  # t = 0.5 s, the centre of frame 50; the 25 ms window reaches ±200 samples
    assert np.flatnonzero(energy_db(x) > -100).tolist() == [49, 50, 51]
    # Against a plain per-frame reference on a short random signal (zero padding both ends).
    y = _noise(1234, 0.2, seed=3)
    padded = np.concatenate([np.zeros(200), y, np.zeros(400)])
    reference = [10 * np.log10(np.var(padded[i * HOP: i * HOP + 400].astype(np.float64)))
                 for i in range(num_frames(len(y)))]
    np.testing.assert_allclose(energy_db(y), reference, atol=1e-4)


def test_energy_is_rms_in_dbfs_with_a_floor():
    sine = np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE).astype(np.float32)  # full scale
    level = energy_db(sine)
    np.testing.assert_allclose(level[5:-5], -3.0103, atol=0.01)
    np.testing.assert_allclose(energy_db(0.01 * sine)[5:-5], -43.0103, atol=0.01)
    assert np.all(energy_db(np.zeros(RATE, np.float32)) == -100.0)
    # A DC offset is not sound: it changes neither the level nor the voice activity.
    np.testing.assert_allclose(energy_db(0.01 * sine + 0.2)[5:-5], -43.0103, atol=0.01)
    assert np.all(energy_db(np.full(RATE, 0.2, np.float32))[2:-2] == -100.0)


# --------------------------------------------------------------------------------------------
# Log-mel


def test_log_mel_shape_and_a_1khz_tone_peaks_in_its_band():
    sine = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE)).astype(np.float32)
    mel = log_mel(sine)
    assert mel.shape == (100, 80) and mel.dtype == np.float32
    centres = mel_band_centres()
    assert np.argmax(mel[50]) == np.argmin(np.abs(centres - 1000.0))
    edges = mel_band_edges()
    band = np.argmax(mel[50])
    assert edges[band] < 1000.0 < edges[band + 2]  # inside the band's triangle
    assert log_mel(sine, n_mels=40).shape == (100, 40)


def test_mel_scale_is_slaney_linear_below_1khz_logarithmic_above():
    edges = mel_band_edges(80, 20.0, 7600.0)
    assert edges[0] == pytest.approx(20.0) and edges[-1] == pytest.approx(7600.0)
    low, high = edges[edges < 1000], edges[edges > 1000]
    np.testing.assert_allclose(np.diff(low), np.diff(low)[0], rtol=1e-9)  # equal steps in Hz
    np.testing.assert_allclose(high[1:] / high[:-1], high[1] / high[0], rtol=1e-9)  # equal ratios


def test_log_mel_is_floored_on_silence_and_scales_with_gain():
    silent = log_mel(np.zeros(RATE, np.float32))
    assert np.all(silent == np.float32(np.log(1e-10)))
    x = _noise(RATE, 0.1)
    # 20 dB less amplitude = power / 100 = log-mel − ln(100) in every band.
    np.testing.assert_allclose(log_mel(0.1 * x), log_mel(x) - np.log(100.0), atol=1e-3)


# --------------------------------------------------------------------------------------------
# Pitch


@pytest.mark.parametrize("f0", [100.0, 150.0, 220.0, 300.0])
def test_pitch_of_a_harmonic_tone_within_one_percent(f0):
    estimate, voicing = pitch(_tone(f0))
    inner = slice(5, -5)  # frames whose window lies inside the tone
    assert np.all(estimate[inner] > 0)
    np.testing.assert_allclose(estimate[inner], f0, rtol=0.01)
    assert np.median(estimate[inner]) == pytest.approx(f0, rel=0.002)
    assert voicing[inner].min() > 0.9


def test_pitch_of_a_tone_between_silences_is_placed_in_time():
    silence = np.zeros(RATE // 2, np.float32)
    x = np.concatenate([silence, _tone(180.0, 0.5), silence])
    f0, _ = pitch(x)
    voiced = np.flatnonzero(f0 > 0)
    assert abs(voiced[0] - 50) <= 3 and abs(voiced[-1] - 100) <= 3
    np.testing.assert_allclose(f0[voiced], 180.0, rtol=0.01)


def test_voicing_is_low_on_white_noise_and_zero_on_silence():
    f0, voicing = pitch(_noise(2 * RATE, 0.1))
    assert np.median(voicing) < 0.3 and np.mean(f0 > 0) < 0.02
    f0, voicing = pitch(np.zeros(RATE, np.float32))
    assert np.all(voicing == 0) and np.all(f0 == 0)


def test_espeak_voice_pitch_shows_in_f0(speech):
    low, high = compute_features(speech[30]), compute_features(speech[80])
    low_f0 = np.median(low.f0[low.f0 > 0])
    high_f0 = np.median(high.f0[high.f0 > 0])
    assert 60 < low_f0 < high_f0 < 300
    assert high_f0 > 1.25 * low_f0
    for features in (low, high):
        assert np.mean(features.f0 > 0) > 0.4  # speech is mostly voiced
        assert np.median(features.voicing[features.f0 > 0]) > 0.8


# --------------------------------------------------------------------------------------------
# Voice activity


def _padded(speech_samples, snr_db=None):
    """1 s silence + speech + 1 s silence, optionally with white noise at ``snr_db`` below the
    speech RMS; returns (samples, true onset s, true offset s)."""
    pad = np.zeros(RATE, np.float32)
    x = np.concatenate([pad, speech_samples, pad])
    if snr_db is not None:
        rms = np.sqrt(np.mean(speech_samples.astype(np.float64) ** 2))
        x = x + _noise(len(x), rms * 10 ** (-snr_db / 20), seed=7)
    return x, 1.0, 1.0 + len(speech_samples) / RATE


@pytest.mark.parametrize("voice_pitch", [30, 80])
@pytest.mark.parametrize("snr_db", [None, 20.0])
def test_vad_finds_speech_onset_and_offset_within_50ms(speech, voice_pitch, snr_db):
    x, onset, offset = _padded(speech[voice_pitch], snr_db)
    features = compute_features(x)
    pauses = features.pauses(min_seconds=0.5)
    assert len(pauses) == 2, pauses  # no pause inside the sentence, one before, one after
    (lead_start, lead_end), (tail_start, tail_end) = pauses
    assert lead_start == 0.0 and tail_end == features.duration
    assert abs(lead_end - onset) <= 0.05
    assert abs(tail_start - offset) <= 0.05


@pytest.mark.parametrize("snr_db", [None, 20.0])
def test_vad_is_the_same_for_loud_and_quiet_takes(speech, snr_db):
    x, _, _ = _padded(speech[30], snr_db)
    loud, quiet = compute_features(x), compute_features(x * 10 ** (-30 / 20))
    assert loud.vad.mean() > 0.4
    np.testing.assert_array_equal(loud.vad, quiet.vad)


def test_vad_ignores_a_dc_offset(speech):
    x, _, _ = _padded(speech[30], snr_db=20.0)
    np.testing.assert_array_equal(compute_features(x + 0.1).vad, compute_features(x).vad)


def test_vad_finds_nothing_in_silence_or_steady_noise():
    assert not compute_features(np.zeros(2 * RATE, np.float32)).vad.any()
    assert not compute_features(_noise(2 * RATE, 0.05)).vad.any()


def test_vad_rules_hysteresis_gaps_and_short_bursts():
    floor, loud = -60.0, -20.0
    e = np.full(300, floor)
    e[50:150] = loud
    e[90:100] = floor  # a 100 ms gap: filled (shorter than min_silence)
    e[200:203] = loud  # a 30 ms click: dropped (shorter than min_speech)
    e[150:160] = floor + 4.0  # between off and on: hysteresis keeps speech on
    vad = voice_activity(e, hangover=0.0)
    assert np.flatnonzero(vad).tolist() == list(range(50, 160))
    vad = voice_activity(e, hangover=0.02)
    assert np.flatnonzero(vad)[-1] == 161
    assert voice_activity(np.zeros(0)).shape == (0,)


# --------------------------------------------------------------------------------------------
# Streaming


@pytest.mark.parametrize("block", [1, 100, 160, 399, 4096, 81921])
def test_streaming_equals_one_shot(speech, block):
    x, _, _ = _padded(speech[80], snr_db=30.0)
    if block == 1:
        x = x[: RATE // 2]  # 8000 one-sample blocks are enough
    blocks = (x[i: i + block] for i in range(0, len(x), block))
    _assert_same(features_from_stream(blocks, RATE), compute_features(x))


def test_streaming_a_file_with_stream_audio_equals_loading_it(speech, tmp_path):
    path = tmp_path / "speech.wav"
    sf.write(path, speech[30], RATE, subtype="FLOAT")
    audio = load_audio(path)
    streamed = features_from_stream(stream_audio(path, block_seconds=0.37), RATE)
    _assert_same(streamed, compute_features(audio))
    _assert_same(compute_features(audio), compute_features(audio.samples, RATE))


def test_streaming_irregular_and_empty_blocks():
    x = np.concatenate([_tone(140.0, 0.8), np.zeros(RATE // 3, np.float32), _tone(210.0, 0.6)])
    cuts = np.sort(np.random.default_rng(5).integers(0, len(x), 40))
    blocks = [x[:0]] + np.split(x, cuts) + [x[:0]]
    _assert_same(features_from_stream(blocks, RATE), compute_features(x))
    assert features_from_stream([], RATE).num_frames == 0


def test_single_feature_functions_agree_with_compute_features(speech):
    x = speech[80]
    features = compute_features(x)
    np.testing.assert_array_equal(log_mel(x), features.log_mel)
    np.testing.assert_array_equal(energy_db(x), features.energy_db)
    f0, voicing = pitch(x)
    np.testing.assert_array_equal(f0, features.f0)
    np.testing.assert_array_equal(voicing, features.voicing)
    np.testing.assert_array_equal(voice_activity(features.energy_db, features.voicing), features.vad)


# --------------------------------------------------------------------------------------------
# Resampling and pauses


def test_resample_to_video_frame_rates(speech):
    features = compute_features(_padded(speech[30])[0])
    for fps in (25, 30, 29.97, 60, 120):
        video = features.resample(fps)
        assert video.num_frames == int(np.ceil(round(features.duration * fps, 6)))
        assert video.log_mel.shape == (video.num_frames, 80) and video.rate == fps
        assert abs(video.vad.mean() - features.vad.mean()) < 0.02
        voiced = video.f0[video.f0 > 0]
        assert np.median(voiced) == pytest.approx(np.median(features.f0[features.f0 > 0]), rel=0.03)
    _assert_same(features.resample(FEATURE_RATE), features)
    for bad in (0, -25, float("nan"), "25"):
        with pytest.raises(ValueError, match="fps must be a positive finite number"):
            features.resample(bad)


def test_resample_averages_the_nearest_frames():
    t = 10
    features = AudioFeatures(
        rate=100, duration=0.1, log_mel=np.arange(t * 2, dtype=np.float32).reshape(t, 2),
        energy_db=np.arange(t, dtype=np.float32),
        f0=np.array([0, 0, 100, 100, 200, 200, 0, 0, 0, 0], np.float32),
        voicing=np.zeros(t, np.float32), vad=np.array([0, 0, 1, 1, 1, 1, 1, 0, 0, 0], bool),
    )
    video = features.resample(25)  # frames 0, 1, 2 at 0, 40, 80 ms; 4 input frames per output
    assert video.num_frames == 3
    # Output j averages input frames k with round(k / 4) == j: {0, 1}, {2, 3, 4, 5}, {6, …, 9}.
    np.testing.assert_allclose(video.energy_db, [0.5, 3.5, 7.5])
    np.testing.assert_allclose(video.f0, [0.0, 150.0, 0.0])
    assert video.vad.tolist() == [False, True, False]
    assert features.log_mel.flags.writeable is False


def test_pauses_are_silences_in_seconds(speech):
    x, onset, offset = _padded(speech[80])
    gap = np.zeros(RATE // 2, np.float32)
    x = np.concatenate([x[: int(2.0 * RATE)], gap, x[int(2.0 * RATE):]])  # a 0.5 s pause at 2 s
    features = compute_features(x)
    middle = [p for p in features.pauses(min_seconds=0.3) if 0 < p[0] and p[1] < features.duration]
    assert len(middle) == 1
    start, end = middle[0]
    assert abs(start - 2.0) < 0.06 and abs(end - 2.5) < 0.06
    assert len(features.pauses(min_seconds=0.3)) == 3
    assert features.pauses(min_seconds=10.0) == []


# --------------------------------------------------------------------------------------------
# Bad and edge input


def test_empty_and_one_sample_input():
    empty = compute_features(np.zeros(0, np.float32))
    assert empty.num_frames == 0 and empty.duration == 0.0
    assert empty.log_mel.shape == (0, 80) and empty.vad.shape == (0,)
    assert empty.pauses() == [] and empty.resample(25).num_frames == 0
    one = compute_features(np.array([0.5], np.float32))
    assert one.num_frames == 1 and not one.vad.any()
    assert compute_features(_tone(200.0, 0.03)).num_frames == 3


def test_non_finite_samples_are_rejected_with_their_position():
    x = _tone(150.0, 1.0)
    x[12345] = np.nan
    with pytest.raises(ValueError, match=r"non-finite sample nan at index 12345 \(0\.772 s\)"):
        compute_features(x)
    blocks = [np.zeros(1000, np.float32), np.array([0.0, np.inf], np.float32)]
    with pytest.raises(ValueError, match="stream: non-finite sample inf at index 1001"):
        features_from_stream(blocks, RATE)
    audio = Audio(x, RATE, RATE, 1, path=None)
    with pytest.raises(ValueError, match="audio: non-finite"):
        compute_features(audio)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 16000.0}, "sample_rate must be an integer"),
        ({"sample_rate": "16000"}, "sample_rate must be an integer"),
        ({"sample_rate": True}, "sample_rate must be an integer"),
        ({"sample_rate": 22050}, "multiple of 100"),
        ({"sample_rate": 0}, "multiple of 100"),
        ({"fmax": 9000.0}, "Nyquist"),
        ({"n_mels": 0}, "n_mels must be a positive integer"),
        ({"f0_min": 600.0}, "pitch range"),
    ],
)
def test_bad_parameters_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute_features(_tone(150.0, 0.1), **kwargs)


def test_bad_sample_arrays_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"1-D array, got shape \(1600, 2\)"):
        compute_features(np.zeros((1600, 2), np.float32))
    with pytest.raises(ValueError, match="got dtype int16"):
        compute_features(np.zeros(1600, np.int16))
    audio = Audio(np.zeros(1600, np.float32), 8000, 8000, 1, path=tmp_path / "take.wav")
    with pytest.raises(ValueError, match="take.wav: sample_rate=16000 contradicts"):
        compute_features(audio, 16000)
    with pytest.raises(ValueError, match=r"fmax <= 4000 Hz \(Nyquist\)"):
        compute_features(audio)  # the default fmax of 7600 Hz needs 16 kHz
    assert compute_features(audio, fmax=3800.0).num_frames == 20  # 0.2 s at 100 frames/s
