"""Decode any audio or video file into float32 mono samples at one sample rate (16 kHz by default).

This is the first step of the audio front end: every later stage (features, phonemes, the
generators) reads the :class:`Audio` this module returns, or the blocks :func:`stream_audio`
yields, and never deals with containers, codecs, channel layouts or sample rates itself.

* :func:`stream_audio` decodes incrementally with PyAV (FFmpeg) and yields consecutive mono
  blocks, so a two-hour recording is processed in bounded memory.
* :func:`load_audio` concatenates those blocks into one :class:`Audio`.
* Anything wrong with the input (missing, empty, not audio, corrupt, no audio stream, no samples,
  only silence when sound is required) raises :class:`AudioError` naming the file and the problem.

Channels are mixed down as the plain mean of all channels (LFE and surrounds included, each with
weight 1/channels), so "mono" means the same thing for every layout.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import numpy as np

DEFAULT_SAMPLE_RATE = 16000

# Everything PyAV raises for unreadable input. FFmpegError is the base of InvalidDataError,
# EOFError-likes and the rest of FFmpeg's error codes; ValueError/RuntimeError cover PyAV's own
# checks (e.g. a frame with an unsupported layout).
_PYAV_ERRORS = (av.error.FFmpegError, ValueError, RuntimeError)

# FFmpeg demuxers that accept still images or plain text: a file read by one of them is not media.
_NOT_MEDIA_FORMATS = {"tty", "image2", "webp_pipe", "svg_pipe"}

# Integer sample formats → the divisor that maps them to −1…1 (u8 is offset by 128 first).
_INT_SCALE = {"s16": 2.0**15, "s32": 2.0**31, "s64": 2.0**63, "u8": 2.0**7}


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Audio:
    """Decoded audio: float32 mono samples in −1…1 at ``sample_rate``.

    ``source_sample_rate`` and ``source_channels`` describe the file's audio stream before
    mixing down and resampling.
    """

    samples: np.ndarray = field(repr=False)
    sample_rate: int
    source_sample_rate: int
    source_channels: int
    path: Path | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


def is_silent(audio: Audio | np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the peak level stays below ``threshold_db`` dBFS (empty audio is silent).

    The peak, not the RMS, decides: speech with long pauses is quiet on average but not silent.
    """
    samples = audio.samples if isinstance(audio, Audio) else np.asarray(audio)
    if samples.size == 0:
        return True
    peak = float(np.max(np.abs(samples)))
    return peak < 10.0 ** (threshold_db / 20.0)


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    max_seconds: float | None = None,
    require_sound: bool = False,
) -> Audio:
    """Decode the whole file (or its first ``max_seconds``) into one :class:`Audio`.

    Raises :class:`AudioError` for anything that is not usable audio, and, with
    ``require_sound``, for a file that contains only silence (see :func:`is_silent`).
    """
    path = Path(path)
    decoder = _Decoder(path, sample_rate, max_seconds)
    blocks = list(decoder.blocks(block_samples=sample_rate * 60))
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    audio = Audio(samples, sample_rate, decoder.source_sample_rate, decoder.source_channels, path)
    if require_sound and is_silent(audio):
        raise AudioError(f"{path}: contains only silence (peak below -60 dBFS)")
    return audio


def stream_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    block_seconds: float = 10.0,
    max_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield consecutive float32 mono blocks of ``block_seconds`` at ``sample_rate``.

    Every block but the last has exactly ``round(block_seconds * sample_rate)`` samples. The file
    is decoded packet by packet, so memory stays bounded by about one block whatever the file's
    length. Being a generator, it raises :class:`AudioError` on the first ``next()``.
    """
    if block_seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds}")
    decoder = _Decoder(Path(path), sample_rate, max_seconds)
    yield from decoder.blocks(block_samples=max(1, round(block_seconds * sample_rate)))


class _Decoder:
    """One pass over one file: checks it up front, then decodes it block by block."""

    def __init__(self, path: Path, sample_rate: int, max_seconds: float | None):
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.path = path
        self.sample_rate = int(sample_rate)
        self.max_samples = None if max_seconds is None else max(0, round(max_seconds * sample_rate))
        if not path.exists():
            raise AudioError(f"{path}: file not found")
        if not path.is_file():
            raise AudioError(f"{path}: is not a file")
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: file is empty (0 bytes)")
        # Probe once here so the source description is known before the first block.
        with self._open() as container:
            stream = self._audio_stream(container)
            ctx = stream.codec_context
            self.source_sample_rate = int(ctx.sample_rate or 0)
            self.source_channels = int(ctx.channels or 0)
        if self.source_sample_rate <= 0 or self.source_channels <= 0:
            raise AudioError(f"{path}: is corrupt: the audio stream has no valid sample rate or channel count")

    def _open(self):
        try:
            return av.open(str(self.path), mode="r")
        except _PYAV_ERRORS as exc:
            raise AudioError(f"{self.path}: is not a readable audio or video file ({_reason(exc)})") from None

    def _audio_stream(self, container):
        if not container.streams.audio:
            fmt = container.format.name
            if fmt in _NOT_MEDIA_FORMATS or fmt.endswith("_pipe") or fmt.startswith("image2"):
                raise AudioError(
                    f"{self.path}: is not an audio or video file "
                    f"(FFmpeg reads it as {fmt!r}, an image or text format)"
                )
            found = ", ".join(f"{s.type} ({s.codec_context.name})" for s in container.streams) or "none"
            raise AudioError(
                f"{self.path}: has no audio stream (format {container.format.name!r}, streams: {found})"
            )
        return container.streams.best("audio") or container.streams.audio[0]

    def blocks(self, block_samples: int) -> Iterator[np.ndarray]:
        pending: list[np.ndarray] = []  # resampled mono pieces not yet yielded
        pending_len = 0
        produced = 0
        limit = self.max_samples
        with self._open() as container:
            stream = self._audio_stream(container)
            for piece in self._mono_pieces(container, stream):
                if limit is not None:
                    piece = piece[: limit - produced]
                pending.append(piece)
                pending_len += len(piece)
                produced += len(piece)
                while pending_len >= block_samples:
                    joined = np.concatenate(pending)
                    yield joined[:block_samples]
                    rest = joined[block_samples:].copy()  # drop the reference to the big array
                    pending, pending_len = [rest], len(rest)
                if limit is not None and produced >= limit:
                    break
        if pending_len:
            yield np.concatenate(pending)
        if produced == 0 and limit != 0:
            raise AudioError(f"{self.path}: contains no audio samples")

    def _mono_pieces(self, container, stream) -> Iterator[np.ndarray]:
        """Mono float32 pieces at the target rate, in order.

        Resampling uses PyAV's AudioResampler (libswresample) on the already mixed-down mono
        signal: it keeps its filter state between calls, so feeding it frame by frame gives the
        same result as resampling the whole signal at once (streamable, no block-edge artifacts),
        which scipy's resample_poly on independent blocks would not. Mixing down is done here in
        NumPy rather than by swresample because swresample's default downmix matrix weights
        channels unequally (centre/surround gains, LFE dropped); we want the plain mean.
        """
        resampler = None
        rate = None
        packet_time = 0.0
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.time_base is not None:
                    packet_time = float(packet.pts * packet.time_base)
                for frame in packet.decode():
                    mono = _frame_to_mono(frame)
                    if frame.sample_rate != rate:  # first frame, or the rate changed mid-stream
                        if resampler is not None:
                            yield from _resampled(resampler, None)
                        rate = frame.sample_rate
                        resampler = (
                            None if rate == self.sample_rate
                            else av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
                        )
                    if resampler is None:
                        yield mono
                    else:
                        yield from _resampled(resampler, _mono_frame(mono, rate))
            if resampler is not None:
                yield from _resampled(resampler, None)
        except _PYAV_ERRORS as exc:
            raise AudioError(
                f"{self.path}: is corrupt: cannot decode audio near {packet_time:.2f} s ({_reason(exc)})"
            ) from None


def _frame_to_mono(frame) -> np.ndarray:
    """Any decoded AudioFrame → float32 mono (mean of channels) at the frame's own rate."""
    fmt = frame.format
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not fmt.is_planar:  # packed: (1, samples * channels), interleaved
        data = data.reshape(-1, channels).T
    base = fmt.name.rstrip("p")
    if base in _INT_SCALE:
        data = data.astype(np.float32)
        if base == "u8":
            data -= 128.0
        data /= np.float32(_INT_SCALE[base])
    return data.mean(axis=0, dtype=np.float64).astype(np.float32)


def _mono_frame(mono: np.ndarray, rate: int):
    frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = rate
    frame.pts = None
    return frame


def _resampled(resampler, frame) -> Iterator[np.ndarray]:
    for out in resampler.resample(frame):
        yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {text}"
