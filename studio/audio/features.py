"""Per-frame audio features at 100 frames/s: log-mel spectrogram, energy, pitch/voicing, voice activity.

This is the feature front end of the audio stage. It turns the 16 kHz mono samples of
:mod:`studio.audio.decode` into one :class:`AudioFeatures` that three consumers read:

* the phoneme-driven rig (head nods on pitch accents and stressed syllables from ``f0`` and
  ``energy_db``, stillness where ``vad`` is off, more blinks in :meth:`AudioFeatures.pauses`),
* a neural audio-to-motion model (``log_mel``, resampled to the video frame rate with
  :meth:`AudioFeatures.resample`),
* splitting long recordings at pauses (:meth:`AudioFeatures.pauses`).

Framing (the same for every feature)
------------------------------------
* :data:`FEATURE_RATE` = 100 frames/s: the hop is ``sample_rate // 100`` samples (160 at 16 kHz).
* Frame ``i`` is **centred** at time ``i / 100`` s. The signal is padded with **zeros** (not a
  reflection) on both sides, so the audio is treated as silence outside the recording: a frame
  that straddles the start or the end measures the sound that is really there and nothing more.
* ``n`` samples give ``T = ceil(n / hop)`` frames (:func:`num_frames`): the last frame is the
  one whose centre is the last hop position inside the signal. Empty input gives ``T = 0``.
* Log-mel and energy use a 25 ms window (400 samples); pitch uses a ~42 ms window (670 samples:
  a 25 ms YIN integration window plus the longest period searched, 1/60 s), centred on the same
  time. (YIN compares the window's first 25 ms with the same span one period later, so its
  estimate leans 3–7 ms early; irrelevant at video frame rates.)

Features
--------
* :func:`log_mel` ``(T, n_mels)``: natural log of the mel-filtered power spectrum of a periodic
  Hann window (n_fft 512), floored at 1e-10 before the log. The filterbank is **Slaney**-style
  (the mel scale linear below 1 kHz, logarithmic above, each triangle area-normalized), the same
  as ``librosa.filters.mel(sr=16000, n_fft=512, n_mels=80, fmin=20, fmax=7600)`` with librosa's
  defaults, so models trained on librosa features read ours. It is built with NumPy and cached.
* :func:`energy_db` ``(T,)``: RMS level of the (unwindowed) 25 ms frame about its mean, in dBFS,
  floor −100: a DC offset is not sound, and removing it keeps an offset from raising the noise
  floor that voice activity is measured against.
* :func:`pitch` ``(T,)``, ``(T,)``: YIN (de Cheveigné & Kawahara 2002) on all frames at once: the
  difference function comes from an FFT cross-correlation and running sums of squares, the
  cumulative-mean-normalized difference (CMND) is searched for the first trough below 0.1
  between 60 and 500 Hz (else the deepest one), refined by parabolic interpolation.
  ``voicing = clip(1 − CMND(trough), 0, 1)`` (periodicity: ~1 for a clean vowel, ~0.3 for white
  noise, 0 for digital silence). ``f0`` is 0 where ``voicing < VOICED`` (0.5). A cheap cleanup
  follows: a voiced frame more than ~3/4 octave away from the median of its 7 neighbours' voiced
  f0 is moved by whole octaves toward it (octave jumps), and voiced runs shorter than 3 frames
  are dropped. ``f0`` says nothing about *speech*: a periodic background (hum, music) is voiced
  too; combine with ``vad``.
* :func:`voice_activity` ``(T,)`` bool: see its docstring; adaptive to the recording's noise floor
  and level, with hysteresis, minimum durations and a short hangover.

Streaming
---------
:func:`features_from_stream` takes consecutive blocks (as :func:`studio.audio.decode.stream_audio`
yields them) and returns exactly what :func:`compute_features` returns for the concatenated
signal, bit for bit: frames are always analysed in the same aligned chunks of 512 frames,
whatever the block sizes. About two chunks of signal plus the caller's block are held at a time;
the per-frame outputs are kept (~330 bytes per frame, 0.24 GB for two hours). Pitch cleanup and
VAD need the whole recording (the VAD floor is a percentile of all frames' energy), so they run
in a second pass over the small per-frame arrays once the stream ends.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import scipy.sparse

from studio.audio.decode import DEFAULT_SAMPLE_RATE, Audio

FEATURE_RATE = 100
"""Feature frames per second (hop 10 ms)."""

WINDOW_SECONDS = 0.025
"""Analysis window of log-mel and energy."""

N_MELS = 80
MEL_FMIN = 20.0
MEL_FMAX = 7600.0
F0_MIN = 60.0
F0_MAX = 500.0

ENERGY_FLOOR_DB = -100.0
LOG_MEL_FLOOR = 1e-10
VOICED = 0.5
"""A frame with ``voicing >= VOICED`` is voiced (has an ``f0``)."""

_YIN_THRESHOLD = 0.1  # first CMND trough below this is the period (YIN's absolute threshold)
_CHUNK_FRAMES = 512  # frames analysed together; fixed and aligned so streaming == one-shot
_OCTAVE_WINDOW = 7  # frames in the median that octave jumps are checked against
_MIN_VOICED_FRAMES = 3


# --------------------------------------------------------------------------------------------
# Framing


@dataclass(frozen=True)
class _Framing:
    """Frame geometry for one sample rate; every length is in samples."""

    sample_rate: int
    hop: int
    win: int  # log-mel / energy window
    n_fft: int
    yin_window: int  # YIN integration window W
    lag_min: int  # shortest period searched (f0 max)
    lag_max: int  # longest period searched (f0 min)
    pitch_len: int  # W + lag_max + 2 (room for the parabola's right neighbour), even
    half: int  # half of the context every frame needs (the longer window's half)

    @property
    def context(self) -> int:
        return 2 * self.half


@functools.lru_cache(maxsize=16)
def _framing(sample_rate: int, f0_min: float, f0_max: float) -> _Framing:
    hop = sample_rate // FEATURE_RATE
    win = 2 * round(WINDOW_SECONDS * sample_rate / 2)
    n_fft = 1 << (win - 1).bit_length()
    lag_min = max(2, math.floor(sample_rate / f0_max))
    lag_max = math.ceil(sample_rate / f0_min)
    pitch_len = win + lag_max + 2
    pitch_len += pitch_len % 2
    return _Framing(sample_rate, hop, win, n_fft, win, lag_min, lag_max, pitch_len,
                    max(win, pitch_len) // 2)


def num_frames(num_samples: int, sample_rate: int = DEFAULT_SAMPLE_RATE) -> int:
    """Frames for ``num_samples`` samples: ``ceil(num_samples / hop)`` (0 for no samples)."""
    hop = _check_rate(sample_rate) // FEATURE_RATE
    return -(-int(num_samples) // hop)


def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ValueError(
            f"sample_rate must be an integer number of samples per second, got "
            f"{sample_rate!r} ({type(sample_rate).__name__})"
        )
    rate = int(sample_rate)
    if rate < 8000 or rate % FEATURE_RATE:
        raise ValueError(
            f"sample_rate must be a multiple of {FEATURE_RATE} Hz and at least 8000 Hz "
            f"(the audio stage runs at {DEFAULT_SAMPLE_RATE}); got {rate}"
        )
    return rate


def _check_block(samples, where: str) -> np.ndarray:
    """``samples`` as a 1-D float array (not yet converted or checked for finiteness)."""
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"{where}: expected mono samples as a 1-D array, got shape {x.shape}")
    if x.dtype.kind in "iub":
        raise ValueError(
            f"{where}: expected float samples in -1…1, got dtype {x.dtype} "
            f"(divide integer samples by their full-scale value first)"
        )
    if x.dtype.kind != "f":
        raise ValueError(f"{where}: expected real float samples, got dtype {x.dtype}")
    return x


def _finite_float32(x: np.ndarray, where: str, offset: int, rate: int) -> np.ndarray:
    """``x`` as float32; a NaN or infinity is an error naming its index and time in the stream."""
    x = x.astype(np.float32, copy=False)
    finite = np.isfinite(x)
    if not finite.all():
        i = int(np.argmin(finite))
        raise ValueError(
            f"{where}: non-finite sample {x[i]} at index {offset + i} ({(offset + i) / rate:.3f} s); "
            f"samples must be finite"
        )
    return x


def _context_chunks(
    blocks: Iterable[np.ndarray], fr: _Framing, where: str
) -> Generator[np.ndarray, None, int]:
    """Yield the frames' contexts, chunk by chunk: ``(k, 2·half)`` strided views whose row ``j``
    is the zero-padded signal from ``(f + j)·hop − half`` to ``(f + j)·hop + half`` for the
    chunk's first frame ``f``.

    Chunks start at multiples of ``_CHUNK_FRAMES`` frames and are full except the last one,
    whatever the sizes of the blocks, so every frame is computed in the same company (and so
    bit-identically) in one-shot and streaming use. Blocks are cut into chunk-sized pieces and
    joined only when a chunk is complete, so memory stays at about two chunks of signal plus the
    caller's block, and tiny blocks cost no quadratic copying. Returns the number of samples.
    """
    hop, half, rate = fr.hop, fr.half, fr.sample_rate
    step = _CHUNK_FRAMES * hop
    pending: list[np.ndarray] = [np.zeros(half, np.float32)]  # left zero padding first
    pending_len = half
    buf_start = -half  # stream index of pending[0][0]
    n = 0
    next_frame = 0

    def needed(count: int) -> int:  # buffer length that holds the contexts of `count` frames
        return (next_frame + count - 1) * hop + half - buf_start

    def chunk(buf: np.ndarray, count: int) -> np.ndarray:
        lo = next_frame * hop - half - buf_start
        span = buf[lo: lo + (count - 1) * hop + fr.context]
        return np.lib.stride_tricks.sliding_window_view(span, fr.context)[::hop]

    for block in blocks:
        x = _check_block(block, where)
        for i in range(0, x.size, step):
            piece = _finite_float32(x[i: i + step], where, n, rate)
            n += piece.size
            pending.append(piece)
            pending_len += piece.size
            if pending_len < needed(_CHUNK_FRAMES):
                continue
            buf = np.concatenate(pending)
            while buf.size >= needed(_CHUNK_FRAMES):
                yield chunk(buf, _CHUNK_FRAMES)
                next_frame += _CHUNK_FRAMES
            drop = next_frame * hop - half - buf_start
            buf, buf_start = buf[drop:].copy(), buf_start + drop  # copy: let the joined one go
            pending, pending_len = [buf], buf.size
    total = -(-n // hop)
    buf = np.concatenate(pending + [np.zeros(half + hop, np.float32)])  # right zero padding
    while next_frame < total:
        count = min(_CHUNK_FRAMES, total - next_frame)
        yield chunk(buf, count)
        next_frame += count
    return n


# --------------------------------------------------------------------------------------------
# Per-chunk analysis (pure functions of the contexts)


@functools.lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (as librosa and scipy's ``get_window('hann', n)``)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def _hz_to_mel(hz):
    """Slaney mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz,
                    min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel):
    mel = np.asarray(mel, np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_band_edges(n_mels: int = N_MELS, fmin: float = MEL_FMIN, fmax: float = MEL_FMAX) -> np.ndarray:
    """``(n_mels + 2,)`` Hz: band ``k`` rises from edge ``k``, peaks at ``k + 1``, ends at ``k + 2``."""
    return _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))


def mel_band_centres(n_mels: int = N_MELS, fmin: float = MEL_FMIN, fmax: float = MEL_FMAX) -> np.ndarray:
    """``(n_mels,)`` Hz: the peak frequency of each log-mel band."""
    return mel_band_edges(n_mels, fmin, fmax)[1:-1]


@functools.lru_cache(maxsize=8)
def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``(n_fft // 2 + 1, n_mels)`` float32 Slaney filterbank (transposed for ``power @ fb``)."""
    edges = mel_band_edges(n_mels, fmin, fmax)
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    ramps = edges[:, None] - bins[None, :]
    widths = np.diff(edges)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # Slaney: equal area per band
    empty = np.flatnonzero(weights.max(axis=1) == 0)
    if empty.size:
        raise ValueError(
            f"n_mels={n_mels} is too many for {fmin}–{fmax} Hz at n_fft={n_fft}: "
            f"bands {empty.tolist()} contain no FFT bin"
        )
    fb = np.ascontiguousarray(weights.T, np.float32)
    fb.setflags(write=False)
    return fb


@functools.lru_cache(maxsize=8)
def _sparse_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float):
    """The filterbank as a sparse matrix: each FFT bin feeds at most two bands, and a sparse
    product is single-threaded and ~10× faster than a BLAS GEMM for these small chunks."""
    return scipy.sparse.csc_matrix(_mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax))


def _check_mel(n_mels, fmin, fmax, sample_rate) -> tuple[int, float, float]:
    if not (isinstance(n_mels, (int, np.integer)) and n_mels > 0):
        raise ValueError(f"n_mels must be a positive integer, got {n_mels!r}")
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(
            f"mel range must satisfy 0 <= fmin < fmax <= {sample_rate / 2:g} Hz (Nyquist), "
            f"got fmin={fmin}, fmax={fmax}"
        )
    return int(n_mels), float(fmin), float(fmax)


def _log_mel_chunk(ctx: np.ndarray, fr: _Framing, fb) -> np.ndarray:
    a = fr.half - fr.win // 2
    frames = ctx[:, a: a + fr.win] * _hann(fr.win)
    spec = scipy.fft.rfft(frames, n=fr.n_fft, axis=1)
    power = spec.real**2 + spec.imag**2
    mel = np.asarray(power @ fb, np.float32)
    return np.log(np.maximum(mel, np.float32(LOG_MEL_FLOOR)))


def _energy_chunk(ctx: np.ndarray, fr: _Framing) -> np.ndarray:
    a = fr.half - fr.win // 2
    frames = ctx[:, a: a + fr.win]
    mean = frames.sum(axis=1, dtype=np.float64) / fr.win
    mean_square = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / fr.win
    variance = np.maximum(mean_square - mean * mean, 10.0 ** (ENERGY_FLOOR_DB / 10))
    return (10.0 * np.log10(variance)).astype(np.float32)


def _pitch_chunk(ctx: np.ndarray, fr: _Framing) -> tuple[np.ndarray, np.ndarray]:
    """Raw YIN per frame: ``(f0 Hz, voicing 0…1)``, f0 = 0 below :data:`VOICED`."""
    a = fr.half - fr.pitch_len // 2
    x = ctx[:, a: a + fr.pitch_len].astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)  # DC would bias the difference function
    W, n_lags = fr.yin_window, fr.lag_max + 2  # lags 0 … lag_max + 1
    n = scipy.fft.next_fast_len(fr.pitch_len, real=True)
    # r(τ) = Σ_{j<W} x_j x_{j+τ}: cross-correlation of the first W samples with the frame.
    cross = scipy.fft.irfft(
        np.conj(scipy.fft.rfft(x[:, :W], n=n, axis=1)) * scipy.fft.rfft(x, n=n, axis=1), n=n, axis=1
    )[:, :n_lags]
    sq = np.concatenate([np.zeros((len(x), 1)), np.cumsum(x * x, axis=1)], axis=1)
    energy_lag = sq[:, W: W + n_lags] - sq[:, :n_lags]  # Σ_{j<W} x_{j+τ}²
    diff = np.maximum(energy_lag[:, :1] + energy_lag - 2.0 * cross, 0.0)  # d(τ)
    diff[:, 0] = 0.0
    running = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    tau = np.arange(1, n_lags)
    with np.errstate(invalid="ignore", divide="ignore"):
        cmnd[:, 1:] = np.where(running > 0, diff[:, 1:] * tau / running, 1.0)

    lo, hi = fr.lag_min, fr.lag_max  # search lags lo … hi; hi + 1 is the parabola's neighbour
    mid = cmnd[:, lo: hi + 1]
    left = cmnd[:, lo - 1: hi]
    right = cmnd[:, lo + 1: hi + 2]
    trough = (mid < left) & (mid <= right)
    below = trough & (mid < _YIN_THRESHOLD)
    has_below = below.any(axis=1)
    # The first trough under the threshold; failing that, the deepest trough (or minimum).
    deepest = np.argmin(np.where(trough, mid, np.inf), axis=1)
    no_trough = ~trough.any(axis=1)
    deepest[no_trough] = np.argmin(mid[no_trough], axis=1)
    best = np.where(has_below, np.argmax(below, axis=1), deepest)
    rows = np.arange(len(x))
    y0, y1, y2 = left[rows, best], mid[rows, best], right[rows, best]
    curvature = y0 - 2.0 * y1 + y2
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(curvature > 0, 0.5 * (y0 - y2) / curvature, 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    period = lo + best + shift
    voicing = np.clip(1.0 - (y1 - 0.25 * (y0 - y2) * shift), 0.0, 1.0)
    f0 = np.where(voicing >= VOICED, fr.sample_rate / period, 0.0)
    return f0.astype(np.float32), voicing.astype(np.float32)


def _clean_pitch(f0: np.ndarray, min_hz: float, max_hz: float) -> np.ndarray:
    """Fix octave jumps against the local median and drop voiced runs too short to be real."""
    f0 = f0.copy()
    voiced = f0 > 0
    if voiced.sum() >= 2:
        half = _OCTAVE_WINDOW // 2
        logf = np.where(voiced, np.log2(np.where(voiced, f0, 1.0)), np.nan)
        padded = np.pad(logf, half, constant_values=np.nan)
        windows = np.lib.stride_tricks.sliding_window_view(padded, _OCTAVE_WINDOW)[voiced]
        with warnings.catch_warnings():  # all-NaN windows cannot happen (the centre is voiced)
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(windows, axis=1)
        octaves = np.round(median - logf[voiced])
        octaves = np.where(np.abs(median - logf[voiced]) > 0.75, octaves, 0.0)
        fixed = f0[voiced] * np.exp2(octaves)
        ok = (fixed >= min_hz * 0.97) & (fixed <= max_hz * 1.03)
        f0[voiced] = np.where(ok, fixed, f0[voiced]).astype(np.float32)
    starts, ends = _runs(f0 > 0)
    short = ends - starts < _MIN_VOICED_FRAMES
    f0[_span_mask(len(f0), starts[short], ends[short])] = 0.0
    return f0


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in ``mask``."""
    edges = np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _span_mask(length: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Boolean ``(length,)``: True inside the half-open spans ``[starts[k], ends[k])``."""
    marks = np.zeros(length + 1, np.int64)
    np.add.at(marks, starts, 1)
    np.add.at(marks, ends, -1)
    return np.cumsum(marks[:-1]) > 0


# --------------------------------------------------------------------------------------------
# Voice activity


def voice_activity(
    energy_db: np.ndarray,
    voicing: np.ndarray | None = None,
    *,
    rate: float = FEATURE_RATE,
    floor_percentile: float = 5.0,
    level_percentile: float = 95.0,
    margin_db: float = 6.0,
    range_db: float = 40.0,
    hysteresis_db: float = 3.0,
    min_speech: float = 0.06,
    min_silence: float = 0.15,
    hangover: float = 0.02,
) -> np.ndarray:
    """Speech / non-speech per frame, ``(T,)`` bool, from ``energy_db`` (and ``voicing``), ``(T,)``.

    The thresholds adapt to the recording, so quiet and loud takes, and takes with steady
    background noise, give the same answer:

    * ``floor`` = the ``floor_percentile`` of all frames' energy (the noise floor: the quietest
      frames are pauses), ``level`` = the ``level_percentile`` (loud speech).
    * A frame switches **on** at ``max(floor + margin_db, level − range_db)`` and **off** below
      that minus ``hysteresis_db``; in between it keeps the previous state. A frame at least
      ``off`` loud with ``voicing >= 0.75`` also switches on (a soft voiced onset in noise).
      The ``level − range_db`` term keeps a recording padded with digital silence (floor
      −100 dBFS) from counting breaths and faint reverberation as speech; it moves with the gain,
      so a take 30 dB quieter gets the same decisions.
    * If ``level`` is not ``margin_db`` above ``floor`` the recording has no dynamics (silence or
      steady noise only) and nothing is speech.
    * Then: silences shorter than ``min_silence`` s between speech are filled (stop closures),
      speech shorter than ``min_speech`` s is dropped (clicks), and each speech segment is
      extended by ``hangover`` s at its end (decaying word endings).

    Percentiles over the whole recording make this a second pass over the (small) energy array;
    :func:`features_from_stream` calls it once the stream has ended.

    Limits: the floor is one number per recording, so noise whose level drifts by more than
    ``margin_db`` (traffic, a fan switching on) or strong low-frequency rumble (handling noise,
    wind) is taken for speech where it is loud; high-pass or denoise such recordings first.
    Unvoiced sounds quieter than ``floor + margin_db`` (a final /s/ in 10 dB SNR noise) are lost.
    """
    e = np.asarray(energy_db, np.float64)
    if e.ndim != 1:
        raise ValueError(f"energy_db must be 1-D (T,), got shape {e.shape}")
    if voicing is not None and np.shape(voicing) != e.shape:
        raise ValueError(f"voicing shape {np.shape(voicing)} does not match energy_db {e.shape}")
    if not e.size:
        return np.zeros(0, bool)
    floor, level = np.percentile(e, [floor_percentile, level_percentile])
    if level < floor + margin_db:
        return np.zeros(e.size, bool)
    on = max(floor + margin_db, level - range_db)
    off = on - hysteresis_db
    switch_on = e >= on
    if voicing is not None:
        switch_on |= (np.asarray(voicing) >= 0.75) & (e >= off)
    # Hysteresis: +1 on, −1 off, 0 keep; carry the last decision forward.
    decision = np.where(switch_on, 1, np.where(e < off, -1, 0))
    last = np.maximum.accumulate(np.where(decision != 0, np.arange(e.size), -1))
    speech = np.where(last >= 0, decision[np.maximum(last, 0)] > 0, False)

    def frames(seconds: float) -> int:
        return int(round(seconds * rate))

    starts, ends = _runs(speech)
    if starts.size > 1:  # fill short gaps between speech segments
        gaps = starts[1:] - ends[:-1] < frames(min_silence)
        speech |= _span_mask(e.size, ends[:-1][gaps], starts[1:][gaps])
    starts, ends = _runs(speech)
    keep = ends - starts >= frames(min_speech)
    starts, ends = starts[keep], np.minimum(ends[keep] + frames(hangover), e.size)
    return _span_mask(e.size, starts, ends)


# --------------------------------------------------------------------------------------------
# Public feature functions


def log_mel(
    samples: np.ndarray,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    n_mels: int = N_MELS,
    fmin: float = MEL_FMIN,
    fmax: float = MEL_FMAX,
) -> np.ndarray:
    """``(T, n_mels)`` float32 natural-log mel power of ``samples`` ``(n,)``, T = ceil(n / hop)."""
    rate = _check_rate(sample_rate)
    n_mels, fmin, fmax = _check_mel(n_mels, fmin, fmax, rate)
    fr = _framing(rate, F0_MIN, F0_MAX)
    fb = _sparse_mel_filterbank(rate, fr.n_fft, n_mels, fmin, fmax)
    parts = [_log_mel_chunk(ctx, fr, fb) for ctx in _context_chunks([samples], fr, "samples")]
    return np.concatenate(parts) if parts else np.zeros((0, n_mels), np.float32)


def energy_db(samples: np.ndarray, sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """``(T,)`` float32 RMS level per 25 ms frame in dBFS, floor −100 (full-scale sine ≈ −3.01).

    The frame's mean (a DC offset) is removed first.
    """
    fr = _framing(_check_rate(sample_rate), F0_MIN, F0_MAX)
    parts = [_energy_chunk(ctx, fr) for ctx in _context_chunks([samples], fr, "samples")]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def pitch(
    samples: np.ndarray,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    fmin: float = F0_MIN,
    fmax: float = F0_MAX,
) -> tuple[np.ndarray, np.ndarray]:
    """``(f0, voicing)``, each ``(T,)`` float32: f0 in Hz (0 where unvoiced), voicing 0…1."""
    fr = _framing(_check_rate(sample_rate), *_check_f0(fmin, fmax, sample_rate))
    parts = [_pitch_chunk(ctx, fr) for ctx in _context_chunks([samples], fr, "samples")]
    if not parts:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    f0, voicing = (np.concatenate(p) for p in zip(*parts))
    return _clean_pitch(f0, fmin, fmax), voicing


def _check_f0(fmin, fmax, sample_rate) -> tuple[float, float]:
    if not 20 <= fmin < fmax <= sample_rate / 4:
        raise ValueError(
            f"pitch range must satisfy 20 <= fmin < fmax <= {sample_rate / 4:g} Hz, "
            f"got fmin={fmin}, fmax={fmax}"
        )
    return float(fmin), float(fmax)


# --------------------------------------------------------------------------------------------
# All features together


@dataclass(frozen=True, eq=False)
class AudioFeatures:
    """Every feature of one recording on one frame grid; frame ``i`` is centred at ``i / rate`` s.

    All arrays have ``T = num_frames`` rows and are read-only.
    """

    rate: float
    """Frames per second (:data:`FEATURE_RATE`, or the ``fps`` given to :meth:`resample`)."""
    duration: float
    """Length of the recording in seconds (samples / sample rate)."""
    log_mel: np.ndarray = field(repr=False)
    """``(T, n_mels)`` float32, natural log of mel power."""
    energy_db: np.ndarray = field(repr=False)
    """``(T,)`` float32 RMS level in dBFS, floor −100."""
    f0: np.ndarray = field(repr=False)
    """``(T,)`` float32 fundamental frequency in Hz, 0 where unvoiced."""
    voicing: np.ndarray = field(repr=False)
    """``(T,)`` float32 periodicity 0…1."""
    vad: np.ndarray = field(repr=False)
    """``(T,)`` bool, True where someone speaks."""

    def __post_init__(self):
        t = len(self.energy_db)
        for name in ("log_mel", "energy_db", "f0", "voicing", "vad"):
            view = np.asarray(getattr(self, name)).view()
            if len(view) != t:
                raise ValueError(f"AudioFeatures.{name} has {len(view)} frames, energy_db has {t}")
            view.setflags(write=False)  # a read-only view; the caller's array stays writable
            object.__setattr__(self, name, view)

    @property
    def num_frames(self) -> int:
        """``T``, the number of frames."""
        return len(self.energy_db)

    @property
    def times(self) -> np.ndarray:
        """``(T,)`` float64 centre time of each frame in seconds."""
        return np.arange(self.num_frames) / self.rate

    def resample(self, fps: float) -> AudioFeatures:
        """The features at ``fps`` frames/s (25 or 30 for video), ``ceil(duration·fps)`` frames.

        Output frame ``j`` (centred at ``j / fps``) **averages** the input frames whose centres
        lie in ``[(j − ½)/fps, (j + ½)/fps)`` (the input frames nearest to it): log-mel, energy
        (averaged in dB) and voicing are plain means; ``f0`` is the mean over the voiced frames
        when at least half the frames are voiced, else 0; ``vad`` is True when at least half the
        frames are speech. An output frame with no input frame in its interval (``fps`` above
        ``rate``) copies the nearest input frame (sample and hold).
        """
        if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not (
            math.isfinite(fps) and fps > 0
        ):
            raise ValueError(f"fps must be a positive finite number, got {fps!r}")
        fps = float(fps)
        m = math.ceil(round(self.duration * fps, 6))  # round: 3.2 s × 25 must not give 81
        t = self.num_frames
        if m == 0 or t == 0:
            return _empty_features(fps, self.duration, self.log_mel.shape[1])
        group = np.minimum(np.floor(np.arange(t) * (fps / self.rate) + 0.5).astype(np.int64), m - 1)
        counts = np.bincount(group, minlength=m)
        filled = counts > 0
        firsts = np.searchsorted(group, np.flatnonzero(filled))  # group never decreases
        empty = np.flatnonzero(~filled)
        nearest = np.minimum(np.round(empty * (self.rate / fps)).astype(np.int64), t - 1)

        def per_frame(sums: np.ndarray, denominators: np.ndarray, source: np.ndarray) -> np.ndarray:
            out = np.empty((m,) + source.shape[1:], np.float64)
            out[filled] = sums / denominators.reshape((-1,) + (1,) * (source.ndim - 1))
            out[empty] = source[nearest]
            return out

        def mean(values: np.ndarray) -> np.ndarray:
            sums = np.add.reduceat(values, firsts, axis=0, dtype=np.float64)
            return per_frame(sums, counts[filled], values)

        voiced = np.add.reduceat(self.f0 > 0, firsts, dtype=np.float64)
        f0_sums = np.add.reduceat(self.f0, firsts, dtype=np.float64)
        f0_sums[voiced < 0.5 * counts[filled]] = 0.0
        return AudioFeatures(
            rate=fps,
            duration=self.duration,
            log_mel=mean(self.log_mel).astype(np.float32),
            energy_db=mean(self.energy_db).astype(np.float32),
            f0=per_frame(f0_sums, np.maximum(voiced, 1.0), self.f0).astype(np.float32),
            voicing=mean(self.voicing).astype(np.float32),
            vad=mean(self.vad) >= 0.5,
        )

    def pauses(self, min_seconds: float = 0.3) -> list[tuple[float, float]]:
        """Silences (``vad`` off) of at least ``min_seconds``, as ``(start, end)`` in seconds.

        Frame ``i`` stands for ``[(i − ½)/rate, (i + ½)/rate)``, clipped to ``[0, duration]``;
        leading and trailing silence count as pauses too.
        """
        starts, ends = _runs(~self.vad)
        start_s = np.clip((starts - 0.5) / self.rate, 0.0, self.duration)
        end_s = np.clip((ends - 0.5) / self.rate, 0.0, self.duration)
        keep = end_s - start_s >= min_seconds - 1e-9
        return [(float(a), float(b)) for a, b in zip(start_s[keep], end_s[keep])]


def _empty_features(rate: float, duration: float, n_mels: int) -> AudioFeatures:
    z = np.zeros(0, np.float32)
    return AudioFeatures(rate, duration, np.zeros((0, n_mels), np.float32), z, z.copy(), z.copy(),
                         np.zeros(0, bool))


def compute_features(
    audio_or_samples: Audio | np.ndarray,
    sample_rate: int | None = None,
    *,
    n_mels: int = N_MELS,
    fmin: float = MEL_FMIN,
    fmax: float = MEL_FMAX,
    f0_min: float = F0_MIN,
    f0_max: float = F0_MAX,
) -> AudioFeatures:
    """All features of an :class:`~studio.audio.decode.Audio` or of mono float samples ``(n,)``.

    ``sample_rate`` defaults to the Audio's own rate, or 16 kHz for a plain array; giving one
    that contradicts the Audio's is an error. Empty input gives an :class:`AudioFeatures` with 0
    frames.
    """
    where = "samples"
    if isinstance(audio_or_samples, Audio):
        audio = audio_or_samples
        where = str(audio.path) if audio.path is not None else "audio"
        if sample_rate is not None and sample_rate != audio.sample_rate:
            raise ValueError(
                f"{where}: sample_rate={sample_rate!r} contradicts the audio's own rate "
                f"{audio.sample_rate}"
            )
        samples, sample_rate = audio.samples, audio.sample_rate
    else:
        samples = audio_or_samples
        sample_rate = DEFAULT_SAMPLE_RATE if sample_rate is None else sample_rate
    return _features([samples], sample_rate, where, n_mels, fmin, fmax, f0_min, f0_max)


def features_from_stream(
    blocks: Iterable[np.ndarray],
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    *,
    n_mels: int = N_MELS,
    fmin: float = MEL_FMIN,
    fmax: float = MEL_FMAX,
    f0_min: float = F0_MIN,
    f0_max: float = F0_MAX,
) -> AudioFeatures:
    """:func:`compute_features` of consecutive mono blocks ``(n_k,)`` of any sizes, in bounded memory.

    Gives the same result as :func:`compute_features` on the concatenated blocks: e.g.
    ``features_from_stream(stream_audio(path), 16000)``. Memory holds one block plus about
    ``_CHUNK_FRAMES`` hops of signal, and the per-frame outputs.
    """
    return _features(blocks, sample_rate, "stream", n_mels, fmin, fmax, f0_min, f0_max)


def _features(blocks, sample_rate, where, n_mels, fmin, fmax, f0_min, f0_max) -> AudioFeatures:
    rate = _check_rate(sample_rate)
    n_mels, fmin, fmax = _check_mel(n_mels, fmin, fmax, rate)
    f0_min, f0_max = _check_f0(f0_min, f0_max, rate)
    fr = _framing(rate, f0_min, f0_max)
    fb = _sparse_mel_filterbank(rate, fr.n_fft, n_mels, fmin, fmax)
    mels, energies, f0s, voicings = [], [], [], []
    chunks = _context_chunks(blocks, fr, where)
    while True:
        try:
            ctx = next(chunks)
        except StopIteration as stop:
            num_samples = stop.value
            break
        mels.append(_log_mel_chunk(ctx, fr, fb))
        energies.append(_energy_chunk(ctx, fr))
        f0, voicing = _pitch_chunk(ctx, fr)
        f0s.append(f0)
        voicings.append(voicing)
    duration = num_samples / rate
    if not energies:
        return _empty_features(FEATURE_RATE, duration, n_mels)
    energy = np.concatenate(energies)
    voicing = np.concatenate(voicings)
    return AudioFeatures(
        rate=FEATURE_RATE,
        duration=duration,
        log_mel=np.concatenate(mels),
        energy_db=energy,
        f0=_clean_pitch(np.concatenate(f0s), f0_min, f0_max),
        voicing=voicing,
        vad=voice_activity(energy, voicing),
    )
