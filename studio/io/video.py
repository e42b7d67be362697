"""Video export: H.264/AAC MP4 files and numbered PNG sequences, written from a stream of frames.

The renderer hands its frames here as an iterable of H × W × 3 ``uint8`` RGB arrays (all the same
size), so an export of any length holds about one frame in memory. Both writers report progress,
can be cancelled between frames, and never leave a partial result behind:

* :func:`write_mp4` encodes H.264 (libx264 from PyAV's own FFmpeg, yuv420p, BT.709 limited range,
  tagged as such) and, optionally, AAC audio taken from a file or from ``(samples, sample_rate)``.
  The file is written under a temporary name beside ``path`` and renamed into place when
  complete. Audio is encoded alongside the frames, so the two tracks are interleaved and both
  start at time 0 (the AAC encoder's priming samples are hidden by the MP4 edit list), and audio
  that runs past the last frame is cut at the video's end.
* :func:`write_png_sequence` writes ``frame_000000.png``, ``frame_000001.png``… into a folder.
* :func:`probe_video` and :func:`read_frames` read an exported file back (tests, the CLI).

Both writers are registered as exporters of the plugin registry (kinds ``"video"`` and
``"image_sequence"``, see :mod:`studio.plugins.api`) by :func:`register`, through the same
entry-point path as any third-party plugin (see pyproject.toml).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import cv2
import numpy as np

from studio.plugins.api import ExporterSpec

__all__ = [
    "ExportCancelled",
    "VideoInfo",
    "probe_video",
    "read_frames",
    "register",
    "write_mp4",
    "write_png_sequence",
]

VIDEO_CODEC = "libx264"
VIDEO_PIXEL_FORMAT = "yuv420p"
AUDIO_CODEC = "aac"
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
CRF_RANGE = (0, 51)  # libx264's constant-rate-factor scale for 8-bit video: 0 lossless … 51 worst
#: Sample rates the AAC format defines; audio at any other rate is resampled to the next one up.
AAC_SAMPLE_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_AUDIO_SAMPLE_RATE = 48000  # higher source rates are resampled down to this
AUDIO_BITRATE_PER_CHANNEL = 96_000  # bit/s; transparent for speech, 192 kbit/s for stereo
MAX_FPS_DENOMINATOR = 1001  # 29.97 → 2997/100, 23.976 → 2997/125 (NTSC rates stay exact-ish)
# RGB → Y'CbCr with the BT.709 matrix in limited ("MPEG", 16…235) range, and the stream tagged
# with the same, so players and read_frames() convert back with the matrix we used.
_COLORSPACE_BT709 = 1  # AVCOL_SPC_BT709 / AVCOL_PRI_BT709 / AVCOL_TRC_BT709
_COLOR_RANGE_MPEG = 1  # AVCOL_RANGE_MPEG
_AUDIO_READ_BLOCK_SECONDS = 1.0  # arrays are handed to the resampler in blocks of this length

ProgressCallback = Callable[[float], object]
CancelCallback = Callable[[], bool]


class ExportCancelled(Exception):
    """``cancel()`` returned True: the export stopped and left nothing behind."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` reads from a video file (times in seconds).

    The ``audio_*`` fields are ``None`` when the file has no audio stream.
    """

    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    audio_duration: float | None
    video_start: float
    audio_start: float | None


# --- MP4 ----------------------------------------------------------------------------------------

def write_mp4(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    *,
    fps: float,
    audio: str | os.PathLike | tuple[np.ndarray, int] | None = None,
    num_frames: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    crf: int = 18,
    preset: str = "medium",
) -> Path:
    """Encode ``frames`` (H × W × 3 ``uint8`` RGB, all the same size) as an H.264 MP4 at ``path``.

    Odd widths and heights are padded to even ones by repeating the last column / row (yuv420p
    needs even sizes); nothing is cropped. ``audio`` is ``None``, the path of any audio or video
    file, or ``(samples, sample_rate)`` with float32 ``samples`` in −1…1 of shape ``(n,)`` (mono)
    or ``(n, channels)`` (1 or 2 channels). A file is decoded at its own sample rate and channel
    layout (more than two channels are mixed down to stereo); rates the AAC format lacks are
    resampled to the next one up, rates above 48 kHz to 48 kHz. The audio is encoded as AAC and
    cut at the video's duration.

    ``progress(fraction)`` is called after each frame with the fraction of ``num_frames`` written
    (``len(frames)`` when it has one, else the audio's duration × ``fps``; with neither, only
    ``progress(1.0)`` at the end). ``cancel()`` is asked before each frame; when it returns True
    the export stops and :class:`ExportCancelled` is raised. ``crf`` (0…51, lower is better) and
    ``preset`` (``"ultrafast"`` … ``"veryslow"``) are libx264's quality and speed settings.

    The file appears at ``path`` only when complete. On any error or cancellation nothing is
    left there or beside it; bad frames raise ``ValueError``, a file that cannot be written
    ``OSError``, both naming ``path``. Returns ``path``.
    """
    path = Path(path)
    rate = _frame_rate(path, fps)
    if not (isinstance(crf, (int, np.integer)) and CRF_RANGE[0] <= crf <= CRF_RANGE[1]):
        raise ValueError(f"{path}: crf must be an integer in {CRF_RANGE[0]}…{CRF_RANGE[1]}, got {crf!r}")
    if preset not in X264_PRESETS:
        raise ValueError(f"{path}: preset must be one of {', '.join(X264_PRESETS)}; got {preset!r}")
    if num_frames is None and isinstance(frames, Sized):
        num_frames = len(frames)
    source = _audio_source(path, audio) if audio is not None else None
    total = num_frames or (source.duration * float(rate) if source and source.duration else None)
    reporter = _Progress(progress, total)

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    writer = None
    try:
        writer = _Mp4Writer(path, partial, rate, int(crf), preset, source)
        for index, frame in enumerate(frames):
            if cancel is not None and cancel():
                raise ExportCancelled(f"{path}: export cancelled")
            writer.write(index, frame)
            reporter.update(index + 1)
        if writer.num_frames == 0:
            raise ValueError(f"{path}: no frames to write")
        writer.finish()
        writer = None
        os.replace(partial, path)
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        if source is not None:
            source.close()
        partial.unlink(missing_ok=True)
        if isinstance(exc, (av.error.FFmpegError, OSError)) and str(path) not in str(exc):
            raise OSError(f"{path}: cannot write the video: {exc}") from exc
        raise
    reporter.finish()
    return path


class _Mp4Writer:
    """One MP4 being written: the streams are created with the first frame (its size decides)."""

    def __init__(self, path: Path, partial: Path, rate: Fraction, crf: int, preset: str,
                 audio: _AudioSource | None):
        self.path = path
        self.rate = rate
        self.crf = crf
        self.preset = preset
        self.audio = audio
        self.num_frames = 0
        self.shape: tuple[int, ...] | None = None
        self.video_stream = None
        self.audio_track: _AudioTrack | None = None
        self.container = av.open(str(partial), mode="w", format="mp4",
                                 options={"movflags": "+faststart"})

    def _open_streams(self, height: int, width: int) -> None:
        stream = self.container.add_stream(VIDEO_CODEC, rate=self.rate)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = VIDEO_PIXEL_FORMAT
        stream.time_base = 1 / self.rate
        context = stream.codec_context
        context.options = {"crf": str(self.crf), "preset": self.preset}
        context.colorspace = context.color_primaries = context.color_trc = _COLORSPACE_BT709
        context.color_range = _COLOR_RANGE_MPEG
        self.video_stream = stream
        if self.audio is not None:
            self.audio_track = _AudioTrack(self.container, self.audio)

    def write(self, index: int, frame: np.ndarray) -> None:
        frame = self._checked(index, frame)
        if self.video_stream is None:
            self._open_streams(*frame.shape[:2])
        height, width = frame.shape[:2]
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        rgb = av.VideoFrame.from_ndarray(frame, format="rgb24")
        yuv = rgb.reformat(format=VIDEO_PIXEL_FORMAT, dst_colorspace=_COLORSPACE_BT709,
                           dst_color_range=_COLOR_RANGE_MPEG)
        yuv.pts = index
        self.container.mux(self.video_stream.encode(yuv))
        self.num_frames = index + 1
        if self.audio_track is not None:
            self.audio_track.write_until(self._audio_samples_at(self.num_frames))

    def _checked(self, index: int, frame: object) -> np.ndarray:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
                or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
            got = (f"shape {frame.shape}, dtype {frame.dtype}" if isinstance(frame, np.ndarray)
                   else type(frame).__name__)
            raise ValueError(f"{self.path}: frame {index} must be an H×W×3 uint8 RGB array; got {got}")
        if self.shape is None:
            self.shape = frame.shape
        elif frame.shape != self.shape:
            raise ValueError(f"{self.path}: frame {index} is {frame.shape[1]}×{frame.shape[0]}, but "
                             f"frame 0 is {self.shape[1]}×{self.shape[0]}; all frames must be one size")
        return np.ascontiguousarray(frame)

    def _audio_samples_at(self, frame_count: int) -> int:
        """The audio sample index where video frame ``frame_count`` starts."""
        rate = self.audio_track.sample_rate
        return frame_count * rate * self.rate.denominator // self.rate.numerator

    def finish(self) -> None:
        self.container.mux(self.video_stream.encode(None))
        if self.audio_track is not None:
            self.audio_track.finish(self._audio_samples_at(self.num_frames))
        self.container.close()

    def abort(self) -> None:
        if self.audio is not None:
            self.audio.close()
        try:
            self.container.close()
        except (av.error.FFmpegError, OSError, ValueError):
            pass  # the partial file is deleted anyway


class _AudioTrack:
    """The AAC stream of an MP4, fed from an :class:`_AudioSource` as far as the video has got."""

    def __init__(self, container, source: _AudioSource):
        self.container = container
        self.source = source
        self.sample_rate = source.sample_rate
        stream = container.add_stream(AUDIO_CODEC, rate=source.sample_rate, layout=source.layout)
        stream.bit_rate = AUDIO_BITRATE_PER_CHANNEL * source.channels
        stream.time_base = Fraction(1, source.sample_rate)
        self.stream = stream
        self.blocks = source.blocks()
        self.pending: list[np.ndarray] = []  # (channels, n) float32 pieces not yet encoded
        self.pending_samples = 0
        self.encoded = 0  # samples handed to the encoder so far
        self.exhausted = False

    def write_until(self, end_sample: int) -> None:
        """Encode the source's samples up to ``end_sample`` (fewer when it ends before)."""
        while not self.exhausted and self.encoded + self.pending_samples < end_sample:
            block = next(self.blocks, None)
            if block is None:
                self.exhausted = True
            elif block.shape[1]:
                self.pending.append(block)
                self.pending_samples += block.shape[1]
        count = min(end_sample - self.encoded, self.pending_samples)
        if count <= 0:
            return
        joined = np.concatenate(self.pending, axis=1) if len(self.pending) > 1 else self.pending[0]
        chunk, rest = joined[:, :count], joined[:, count:]
        self.pending = [rest] if rest.shape[1] else []
        self.pending_samples = rest.shape[1]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                           layout=self.source.layout)
        frame.sample_rate = self.sample_rate
        frame.pts = self.encoded
        frame.time_base = self.stream.time_base
        self.container.mux(self.stream.encode(frame))
        self.encoded += count

    def finish(self, end_sample: int) -> None:
        self.write_until(end_sample)
        self.source.close()
        self.container.mux(self.stream.encode(None))


# --- audio sources ------------------------------------------------------------------------------

def _aac_sample_rate(rate: int) -> int:
    """The AAC rate a source at ``rate`` is encoded at: its own when AAC has it, else the next up."""
    return next((r for r in AAC_SAMPLE_RATES if r >= rate), MAX_AUDIO_SAMPLE_RATE)


class _AudioSource:
    """Float32 planar ``(channels, n)`` blocks at an AAC sample rate, from a file or an array."""

    sample_rate: int
    layout: str
    channels: int
    duration: float | None

    def blocks(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the source (the input file); safe to call more than once."""


def _layout_name(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


def _resampled(frames: Iterable[av.AudioFrame], layout: str, rate: int) -> Iterator[np.ndarray]:
    """``frames`` converted to float32 planar ``layout`` at ``rate``, as ``(channels, n)`` arrays."""
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    for frame in frames:
        for out in resampler.resample(frame):
            yield out.to_ndarray()
    for out in resampler.resample(None):
        yield out.to_ndarray()


class _ArraySource(_AudioSource):
    def __init__(self, path: Path, samples: object, sample_rate: object):
        samples = np.asarray(samples)
        if samples.ndim == 1:
            samples = samples[:, None]
        if samples.ndim != 2 or samples.shape[1] not in (1, 2) or samples.shape[0] == 0:
            raise ValueError(f"{path}: audio samples must be a non-empty (n,) mono or (n, 1|2) array; "
                             f"got shape {samples.shape}")
        if not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"{path}: audio samples must be floats in −1…1; got dtype {samples.dtype}")
        if not np.all(np.isfinite(samples)):
            raise ValueError(f"{path}: audio samples contain NaN or infinite values")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"{path}: audio sample rate must be a positive integer; got {sample_rate!r}")
        self.source_rate = int(sample_rate)
        self.sample_rate = _aac_sample_rate(self.source_rate)
        self.channels = samples.shape[1]
        self.layout = _layout_name(self.channels)
        self.samples = np.clip(samples.T, -1.0, 1.0).astype(np.float32)  # (channels, n)
        self.duration = samples.shape[0] / self.source_rate

    def blocks(self) -> Iterator[np.ndarray]:
        if self.source_rate == self.sample_rate:
            yield self.samples
            return
        step = max(1, round(self.source_rate * _AUDIO_READ_BLOCK_SECONDS))

        def frames() -> Iterator[av.AudioFrame]:
            for start in range(0, self.samples.shape[1], step):
                block = np.ascontiguousarray(self.samples[:, start:start + step])
                frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self.layout)
                frame.sample_rate = self.source_rate
                yield frame

        yield from _resampled(frames(), self.layout, self.sample_rate)


class _FileSource(_AudioSource):
    def __init__(self, path: Path, audio_path: Path):
        self.path = path
        self.audio_path = audio_path
        self.container = None
        if not audio_path.is_file():
            raise ValueError(f"{path}: audio file {audio_path} not found")
        try:
            with av.open(str(audio_path)) as container:
                if not container.streams.audio:
                    raise ValueError(f"{path}: {audio_path} has no audio stream")
                stream = container.streams.audio[0]
                rate = int(stream.codec_context.sample_rate or 0)
                channels = int(stream.codec_context.channels or 0)
                duration = (float(stream.duration * stream.time_base) if stream.duration
                            else container.duration / av.time_base if container.duration else None)
        except av.error.FFmpegError as exc:
            raise ValueError(f"{path}: cannot read the audio file {audio_path}: {exc}") from None
        if rate <= 0 or channels <= 0:
            raise ValueError(f"{path}: the audio stream of {audio_path} has no valid rate or channels")
        self.sample_rate = _aac_sample_rate(rate)
        self.channels = min(channels, 2)
        self.layout = _layout_name(self.channels)
        self.duration = duration

    def blocks(self) -> Iterator[np.ndarray]:
        try:
            self.container = av.open(str(self.audio_path))
            stream = self.container.streams.audio[0]
            yield from _resampled(self.container.decode(stream), self.layout, self.sample_rate)
        except av.error.FFmpegError as exc:
            raise ValueError(f"{self.path}: cannot decode the audio file {self.audio_path}: {exc}") from None
        finally:
            self.close()

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


def _audio_source(path: Path, audio: object) -> _AudioSource:
    if isinstance(audio, (str, os.PathLike)):
        return _FileSource(path, Path(audio))
    if isinstance(audio, tuple) and len(audio) == 2:
        return _ArraySource(path, *audio)
    raise ValueError(f"{path}: audio must be None, a file path or (samples, sample_rate); "
                     f"got {type(audio).__name__}")


# --- PNG sequences ------------------------------------------------------------------------------

def write_png_sequence(
    folder: str | os.PathLike,
    frames: Iterable[np.ndarray],
    *,
    num_frames: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    prefix: str = "frame_",
    digits: int = 6,
) -> list[Path]:
    """Write ``frames`` (H × W × 3 ``uint8`` RGB, one size) as ``{prefix}{index:0{digits}}.png``.

    The folder is created when missing; indices start at 0. ``progress`` and ``cancel`` work as
    for :func:`write_mp4`. On cancellation (:class:`ExportCancelled`) or any error the files this
    call wrote are removed again (and the folder, when this call created it). Returns the files
    written, in order.
    """
    folder = Path(folder)
    if not prefix or os.sep in prefix or "/" in prefix:
        raise ValueError(f"{folder}: prefix must be a file name start without a folder; got {prefix!r}")
    if not isinstance(digits, int) or digits < 1:
        raise ValueError(f"{folder}: digits must be a positive integer; got {digits!r}")
    if num_frames is None and isinstance(frames, Sized):
        num_frames = len(frames)
    reporter = _Progress(progress, num_frames)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    shape = None
    try:
        for index, frame in enumerate(frames):
            if cancel is not None and cancel():
                raise ExportCancelled(f"{folder}: export cancelled")
            if index >= 10**digits:
                raise ValueError(f"{folder}: more than {10**digits} frames do not fit {digits} digits")
            file = folder / f"{prefix}{index:0{digits}d}.png"
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
                    or frame.shape[2] != 3 or (shape is not None and frame.shape != shape):
                got = (f"shape {frame.shape}, dtype {frame.dtype}" if isinstance(frame, np.ndarray)
                       else type(frame).__name__)
                want = f"{shape[0]}×{shape[1]}×3" if shape is not None else "H×W×3"
                raise ValueError(f"{file}: frame {index} must be a {want} uint8 RGB array; got {got}")
            shape = frame.shape
            ok, encoded = cv2.imencode(".png", np.ascontiguousarray(frame[:, :, ::-1]))
            if not ok:
                raise OSError(f"{file}: PNG encoding failed")
            file.write_bytes(encoded.tobytes())  # bytes, not cv2.imwrite: any path encoding works
            written.append(file)
            reporter.update(index + 1)
    except BaseException:
        for file in written:
            file.unlink(missing_ok=True)
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise
    reporter.finish()
    return written


# --- reading back -------------------------------------------------------------------------------

def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, frame count, durations and start times of a video file's first streams."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            video = _first_video_stream(container, path)
            fps = float(video.average_rate or video.guessed_rate or video.base_rate or 0)
            num_frames = int(video.frames) or sum(
                1 for packet in container.demux(video) if packet.size)
            duration = (float(video.duration * video.time_base) if video.duration
                        else num_frames / fps if fps else 0.0)
            audio = container.streams.audio[0] if container.streams.audio else None
            info = VideoInfo(
                width=video.codec_context.width,
                height=video.codec_context.height,
                fps=fps,
                num_frames=num_frames,
                duration=duration,
                has_audio=audio is not None,
                audio_sample_rate=int(audio.codec_context.sample_rate) if audio else None,
                audio_channels=int(audio.codec_context.channels) if audio else None,
                audio_duration=(float(audio.duration * audio.time_base)
                                if audio is not None and audio.duration else None),
                video_start=_start_seconds(video),
                audio_start=_start_seconds(audio) if audio is not None else None,
            )
    except av.error.FFmpegError as exc:
        raise ValueError(f"{path}: cannot read the video: {exc}") from None
    return info


def _first_video_stream(container, path: Path):
    if not container.streams.video:
        raise ValueError(f"{path}: has no video stream")
    return container.streams.video[0]


def _start_seconds(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode the first video stream of ``path`` into H × W × 3 ``uint8`` RGB frames, in order."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream = _first_video_stream(container, path)
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as exc:
        raise ValueError(f"{path}: cannot decode the video: {exc}") from None


# --- shared helpers -----------------------------------------------------------------------------

def _frame_rate(path: Path, fps: object) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction, np.number)) \
            or not math.isfinite(float(fps)) or float(fps) <= 0:
        raise ValueError(f"{path}: fps must be a positive number; got {fps!r}")
    rate = Fraction(fps).limit_denominator(MAX_FPS_DENOMINATOR)
    if rate <= 0:
        raise ValueError(f"{path}: fps {fps!r} is too small")
    return rate


class _Progress:
    """Calls ``callback(fraction)`` per frame when the total is known, and 1.0 once at the end."""

    def __init__(self, callback: ProgressCallback | None, total: float | None):
        self.callback = callback
        self.total = total if total and total > 0 else None
        self.last = None

    def update(self, done: int) -> None:
        if self.callback is not None and self.total is not None:
            self.last = min(1.0, done / self.total)
            self.callback(self.last)

    def finish(self) -> None:
        if self.callback is not None and self.last != 1.0:
            self.last = 1.0
            self.callback(1.0)


# --- plugin registration ------------------------------------------------------------------------

def _export_mp4(frames, path, *, fps, audio=None, **options) -> Path:
    """The registry's ``"video"`` calling convention, on :func:`write_mp4`."""
    return write_mp4(path, frames, fps=fps, audio=audio, **options)


def _export_png_sequence(frames, path, **options) -> list[Path]:
    """The registry's ``"image_sequence"`` calling convention, on :func:`write_png_sequence`."""
    return write_png_sequence(path, frames, **options)


def register(registry) -> None:
    registry.add(ExporterSpec(
        name="video_mp4", label="Video (MP4, H.264 + AAC)", kind="video", extensions=(".mp4",),
        export=_export_mp4,
        description="H.264 (yuv420p, BT.709) with AAC audio; odd sizes are padded to even. "
                    "Options: crf (0…51, default 18), preset (libx264, default 'medium'), "
                    "num_frames, progress(fraction), cancel()."))
    registry.add(ExporterSpec(
        name="png_sequence", label="PNG image sequence", kind="image_sequence",
        extensions=(".png",), export=_export_png_sequence,
        description="One lossless RGB PNG per frame, frame_000000.png onward, in the chosen folder. "
                    "Options: prefix, digits, num_frames, progress(fraction), cancel()."))
