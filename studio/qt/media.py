"""The project's sources, loaded: the portrait (photo, face fit, renderer), the audio, the
transcript and the head mesh — and importing files into the project.

:class:`MediaController` follows the document: when a source changes (an import, an undo, a
newly opened project) it loads the file in a job (off the GUI thread: the face detector, the
audio decoder and mesh readers run in a child process), keeps what the views need (the photo,
its :class:`~studio.render.face_fit.FaceFit`, a :class:`~studio.render.portrait.PortraitRenderer`,
the decoded :class:`~studio.audio.decode.Audio`) and publishes plain information on the session
(:attr:`studio.core.session.Session.media`) for the media bin and the transport.

Importing is "load first, then edit": the file is loaded, and only once that worked is the
document changed, as one undo step (the source, plus the identity for a portrait or the length for
audio). A file that cannot be used leaves the document as it was; the job list says why.

The face fit: the detector's, unless the document holds hand-placed keypoints
(:attr:`Project.portrait_keypoints`): they correct the detected fit (:func:`adjust_fit`) or, on a
face the detector missed, place the mean face (:func:`fit_from_keypoints`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from studio.core.document import Source
from studio.core.session import AudioInfo, PortraitInfo, Session
from studio.jobs import (
    decode_audio_job,
    fit_portrait_job,
    load_mesh_job,
    read_transcript_job,
    run_in_process,
)
from studio.qt.workers import JobManager

PORTRAIT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".mp4", ".mov", ".mkv",
                    ".webm")
TRANSCRIPT_EXTENSIONS = (".txt",)
PROJECT_EXTENSION = ".thproj"


def mesh_extensions() -> tuple[str, ...]:
    from studio.render.mesh.loaders import FLAME_MODEL_EXTENSIONS, MESH_EXTENSIONS

    return MESH_EXTENSIONS + FLAME_MODEL_EXTENSIONS


def role_extensions() -> dict[str, tuple[str, ...]]:
    """File extensions by what they are imported as (the File ▸ Import dialogs' filters)."""
    return {"portrait": PORTRAIT_EXTENSIONS, "audio": AUDIO_EXTENSIONS, "transcript": TRANSCRIPT_EXTENSIONS,
            "mesh": mesh_extensions()}


def role_for(path: str | Path) -> str:
    """What a dropped or opened file is: ``"project"``, ``"portrait"``, ``"audio"``,
    ``"transcript"`` or ``"mesh"`` (by extension); ValueError naming the file otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix == PROJECT_EXTENSION:
        return "project"
    for role, extensions in role_extensions().items():
        if suffix in extensions:
            return role
    known = sorted({e for es in role_extensions().values() for e in es} | {PROJECT_EXTENSION})
    raise ValueError(f"{path}: not a file the studio opens (known extensions: {', '.join(known)})")


@dataclass(frozen=True)
class LoadedPortrait:
    """A portrait load job's result: the photo, the detector's fit (None: no face) and a renderer
    for that fit (built in the job's thread: the first one imports the face-mesh topology)."""

    image: np.ndarray = field(repr=False)
    fit: object = field(repr=False)
    message: str = ""
    renderer: object = field(default=None, repr=False)


def _portrait_work(path: str):
    """Fit the photo in a child process, then build its renderer on the worker thread."""
    from studio.render.portrait import PortraitRenderer

    loaded = yield from run_in_process(fit_portrait_job, path)
    renderer = None if loaded.fit is None else PortraitRenderer(loaded.image, loaded.fit)
    return LoadedPortrait(loaded.image, loaded.fit, loaded.message, renderer)


class MediaController(QObject):
    """Loads the open project's sources and keeps the portrait's fit and renderer (see module)."""

    #: The photo, its fit or its renderer changed.
    portrait_changed = Signal()
    #: A one-line notice for the status bar (a source that could not be read, no face found).
    notice = Signal(str)

    def __init__(self, session: Session, jobs: JobManager, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session
        self.jobs = jobs
        self.image: np.ndarray | None = None
        self.detected = None  # FaceFit of the detector, or None
        self.fit = None  # the fit in use (detected, corrected or placed), or None
        self.renderer = None
        self._detected_renderer = None
        self.audio = None  # studio.audio.decode.Audio
        self._loaded: dict[str, str | None] = {}  # role → sha256 of what is loaded (or being loaded)
        self._cache: dict[tuple[str, str], object] = {}  # (role, sha256) → a load job's result
        self._fits: dict[bytes, object] = {}  # placed keypoints → fit (the last few)
        session.follow_project({"sources": self._on_sources, "portrait_keypoints": self._on_keypoints},
                               self._on_project)

    # --- following the document -----------------------------------------------------------------
    @property
    def project(self):
        return self.session.project

    def _on_project(self) -> None:
        self._loaded.clear()
        for role in ("portrait", "audio", "transcript", "mesh"):
            self._sync(role)

    def _on_sources(self, event) -> None:
        self._sync(event.role)

    def _on_keypoints(self, event) -> None:
        self._update_fit()

    def _sync(self, role: str) -> None:
        """Bring what is loaded for ``role`` in line with the document's source."""
        source = self.project.sources.get(role)
        sha = None if source is None else source.sha256
        if role in self._loaded and self._loaded[role] == sha:
            return
        self._loaded[role] = sha
        if source is None:
            self._apply(role, None, None)
            return
        cached = self._cache.get((role, sha))
        if cached is not None:
            self._apply(role, source, cached)
            return
        if role == "portrait":
            self.session.update_media(portrait=PortraitInfo(source.path, (0, 0), "pending"))
        self._load(role, source, lambda result: self._on_loaded(role, source, result))

    def _on_loaded(self, role: str, source: Source, result) -> None:
        if self._loaded.get(role) == source.sha256:  # still the document's source
            self._apply(role, source, result)

    def _load(self, role: str, source: Source, then) -> None:
        """Load ``source`` in a job; ``then(result)`` on the GUI thread when it worked."""
        work = {"portrait": _portrait_work, "audio": lambda path: run_in_process(decode_audio_job, path),
                "transcript": lambda path: run_in_process(read_transcript_job, path),
                "mesh": lambda path: run_in_process(load_mesh_job, path)}[role]

        def done(result) -> None:
            self._remember(role, source, result)
            then(result)

        self.jobs.run(f"Load {role} {Path(source.path).name}", lambda: work(source.path), on_done=done)

    def _remember(self, role: str, source: Source, result) -> None:
        for key in [k for k in self._cache if k[0] == role]:  # one per role, besides the new one
            del self._cache[key]
        self._cache[(role, source.sha256)] = result

    def _apply(self, role: str, source: Source | None, result) -> None:
        if role == "portrait":
            self.image = None if result is None else result.image
            self.detected = None if result is None else result.fit
            self._detected_renderer = None if result is None else result.renderer
            self._update_fit()
        elif role == "audio":
            self.audio = result
            info = None if result is None else AudioInfo(source.path, result.samples, result.sample_rate)
            self.session.update_media(audio=info)
        elif role == "transcript":
            self.session.update_media(transcript=result)
        elif role == "mesh":
            self.session.update_media(mesh=result)

    # --- the face fit -----------------------------------------------------------------------------
    def fit_for_keypoints(self, keypoints: np.ndarray):
        """The fit that hand-placed keypoints (21, 2) give on the loaded photo (PortraitError when
        they cannot make one)."""
        from studio.render.face_fit import adjust_fit, fit_from_keypoints

        keypoints = np.asarray(keypoints, dtype=np.float64)
        key = keypoints.tobytes()
        fit = self._fits.get(key)
        if fit is None:
            fit = adjust_fit(self.detected, keypoints) if self.detected is not None else \
                fit_from_keypoints(self.image.shape[:2], keypoints)
            if len(self._fits) > 8:
                self._fits.clear()
            self._fits[key] = fit
        return fit

    def _update_fit(self) -> None:
        from studio.render.face_fit import PortraitError

        placed = self.project.portrait_keypoints
        fit = self.detected
        if self.image is not None and placed is not None:
            try:
                fit = self.fit_for_keypoints(placed)
            except PortraitError:
                fit = self.detected
        if self.image is None:
            fit = None
        if fit is not self.fit or (fit is None and self.renderer is not None):
            from studio.render.portrait import PortraitRenderer

            self.fit = fit
            if fit is None:
                self.renderer = None
            elif fit is self.detected and self._detected_renderer is not None:
                self.renderer = self._detected_renderer  # built by the load job, off the GUI thread
            else:
                self.renderer = PortraitRenderer(self.image, fit)
        self._publish_portrait()
        self.portrait_changed.emit()

    def _publish_portrait(self) -> None:
        source = self.project.sources.get("portrait")
        if source is None or self.image is None:
            if source is None:
                self.session.update_media(portrait=None)
            return
        if self.project.portrait_keypoints is not None and self.fit is not None:
            face = "placed"
        else:
            face = "detected" if self.detected is not None else "missing"
        self.session.update_media(portrait=PortraitInfo(source.path, self.image.shape[:2], face))

    def place_keypoints(self, keypoints: np.ndarray) -> None:
        """Put hand-placed keypoints into the document with the identity they imply: one undo step.
        Raises PortraitError (document unchanged) when they make no face."""
        fit = self.fit_for_keypoints(keypoints)
        with self.project.macro("Move face keypoints"):
            self.project.set_portrait_keypoints(keypoints)
            self.project.set_identity(fit.canonical_keypoints)

    def reset_keypoints(self) -> None:
        """Back to the detector's fit (one undo step); without a detected face the identity goes too."""
        with self.project.macro("Reset face keypoints"):
            self.project.set_portrait_keypoints(None)
            self.project.set_identity(None if self.detected is None else self.detected.canonical_keypoints)

    # --- importing ----------------------------------------------------------------------------
    def import_file(self, path: str | Path, role: str | None = None) -> None:
        """Load ``path`` as ``role`` (by extension when None), then make it the project's source.
        An unknown or unreadable file raises ValueError; a file that does not load fails its job."""
        path = Path(path)
        role = role or role_for(path)
        if role == "project":
            raise ValueError(f"{path}: a project is opened, not imported")
        source = Source.from_file(role, path)
        self._load(role, source, lambda result: self._imported(role, source, result))

    def _imported(self, role: str, source: Source, result) -> None:
        project = self.project
        name = Path(source.path).name
        with project.macro(f"Import {role} {name}"):
            project.set_source(role, source)
            if role == "portrait":
                if project.portrait_keypoints is not None:
                    project.set_portrait_keypoints(None)
                if result.fit is not None:
                    project.set_identity(result.fit.canonical_keypoints)
            elif role == "audio":
                from studio.generate.rig import num_frames_for

                frames = num_frames_for(result.duration, project.fps)
                if frames > project.num_frames:
                    project.set_timing(num_frames=frames)
            elif role == "mesh" and project.mesh_keypoints is not None:
                project.set_mesh_keypoints(None)  # vertex ids of the previous mesh
        if role == "portrait" and result.fit is None:
            self.notice.emit(f"No face found in {name}: place the 21 keypoints in the 2D view (Edit face fit).")
