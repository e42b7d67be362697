"""The inspector: a named slider for every channel at the playhead, keys, region locks and limits.

One row per motion channel — the 63 keypoint offsets grouped by face region (brows, eyelids, nose,
cheeks, lips, jaw), the head pose, the eyes — and the generator controls (intensity and the emotion
segment under the playhead). Each row shows the *evaluated* value at the playhead (a slider over the
channel's usual span, a field for exact values over its whole valid range) and follows the playhead
and every document change. Labels are human ("Lip upper center · up/down"); the tooltip names the
raw channel (``exp.lip_upper_center.y``), its anatomy, units and sign.

Editing goes through the document's undoable methods only:

* **dragging a slider** (or holding the mouse in its groove) keys the channel at the playhead on
  every move, so the 2D/3D views (which observe :attr:`Session.events.motion
  <studio.core.session.Session>`) preview live; the whole press-to-release is one undo step
  (:class:`Gesture`: a document macro held open while the mouse is down, its repeated edits of one
  slot collapsed into one change on release);
* **typing** a value (Enter) and the arrow keys on a focused slider or field: one undo step each;
* **Key** (◆ per row, "Key" per section) keys the evaluated value at the playhead;
* **locks** (the padlock of a section) lock a channel group (:meth:`Project.lock_groups`): locked
  groups keep the generated motion and their rows are disabled;
* **limits** (a row's context menu ▸ Limit…) clamp a channel's evaluated value
  (:meth:`Project.set_limit`); the slider shades what lies outside the limit.

Where a key goes (:mod:`studio.core.keying`, the rule K follows too): on the session's active layer
(the one chosen in the timeline, else the top layer, created when there is none) — or, for an eye
channel whose gaze/blink override curve covers the playhead, on that override. The key's value is
chosen so that the *evaluated* value becomes the one asked for, whatever the layer's blend
(``ADD``) and influence (:func:`~studio.core.keying.key_value_for`). Keyed rows are marked: ◆ and an amber field where a
key sits at the playhead, a green field where the channel is animated, purple where an override
holds it.

Cheap to follow the playhead: updates are coalesced to one per pass of the event loop, only rows
on screen (expanded, not filtered out, inside the scrolled view) are touched, and only when their
shown value or state changed, with signals blocked. :func:`benchmark_refresh` times one
frame-change update; :func:`benchmark_drag` measures a slider drag's live preview.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QIcon,
    QMouseEvent,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from studio.core.commands import SetSlot
from studio.core.document import (
    EMOTIONS,
    INTENSITY_RANGE,
    Project,
    emotion_weights,
)
from studio.core.keying import (
    edit_path,
    insert_key,
    key_channels,
    key_value_for,
    needs_below,
    values_below,
)
from studio.core.keypoints import KEYPOINT_REGIONS, KEYPOINTS
from studio.core.motion import (
    CHANNEL_GROUPS,
    CHANNEL_INDEX,
    CHANNEL_RANGES,
    EXPRESSION_CHANNELS,
)
from studio.core.session import Session, format_time

#: The non-channel rows: the generator's intensity control (an F-curve) and the emotion segments.
INTENSITY = "intensity"
EMOTION = "emotion"
CONTROLS = "controls"  # the section holding them (not a channel group: it cannot be locked)

#: Sections top to bottom: the controls, the head, the eyes, then the face regions from the brows
#: down (any region :mod:`studio.core.keypoints` adds later comes after them).
_FACE_ORDER = ("brows", "lids", "nose", "cheeks", "lips", "jaw")
SECTION_ORDER: tuple[str, ...] = ((CONTROLS, "head", "eyes")
                                  + tuple(r for r in _FACE_ORDER if r in KEYPOINT_REGIONS)
                                  + tuple(r for r in KEYPOINT_REGIONS if r not in _FACE_ORDER))
SECTION_TITLES = {CONTROLS: "Intensity & emotion", "head": "Head pose", "eyes": "Eyes", "brows": "Brows",
                  "lids": "Eyelids", "nose": "Nose", "cheeks": "Cheeks", "lips": "Lips & mouth", "jaw": "Jaw"}
#: Sections open in a new inspector (the face regions start folded: 63 rows are a lot).
EXPANDED_BY_DEFAULT = frozenset({CONTROLS, "head", "eyes"})

_AXIS_WORDS = {"x": "left/right", "y": "up/down", "z": "in/out"}
_AXIS_SIGNS = {"x": "+ moves it to the image right (the subject's left)", "y": "+ moves it up",
               "z": "+ moves it toward the viewer"}
_NAMED_LABELS = {
    "pose.pitch": "Pitch · nod", "pose.yaw": "Yaw · turn", "pose.roll": "Roll · tilt",
    "t.x": "Position · left/right", "t.y": "Position · up/down", "t.z": "Position · in/out", "scale": "Scale",
    "eye.blink_l": "Blink · left eye", "eye.blink_r": "Blink · right eye",
    "eye.gaze_x": "Gaze · left/right", "eye.gaze_y": "Gaze · up/down",
    INTENSITY: "Intensity", EMOTION: "Emotion",
}
_NAMED_HELP = {
    "pose.pitch": "Head rotation about x, degrees: + tips the nose down (a nod).",
    "pose.yaw": "Head rotation about y, degrees: + turns the nose to the image right.",
    "pose.roll": "Head rotation about z, degrees: + tilts the head counter-clockwise as the viewer sees it.",
    "t.x": "Head translation, face units (inter-ocular distance = 1): + to the image right.",
    "t.y": "Head translation, face units (inter-ocular distance = 1): + up.",
    "t.z": "Head translation, face units (inter-ocular distance = 1): + toward the viewer.",
    "scale": "Head scale: 1 is the identity's own size.",
    "eye.blink_l": "Subject's left eye (on the image right): 0 open … 1 closed.",
    "eye.blink_r": "Subject's right eye (on the image left): 0 open … 1 closed.",
    "eye.gaze_x": "Gaze, −1 … 1: + looks to the image right; ±1 is the eye's limit (about 30°).",
    "eye.gaze_y": "Gaze, −1 … 1: + looks up; ±1 is the eye's limit (about 20°).",
    INTENSITY: "Motion intensity the generator is conditioned on, 0 … 2 (1 = as generated).\n"
               "Frames whose intensity changed need generating again to show it.",
    EMOTION: "The emotion segment under the playhead: its label and strength (0 … 1).\n"
             "Choose a label where there is none to add a segment from the playhead on;\n"
             "choose “none” to remove the segment. Changed frames need generating again.",
}

#: Slider spans (Blender's "soft" limits): the usual span of each kind of channel. The numeric field
#: takes the channel's whole valid range (:data:`~studio.core.motion.CHANNEL_RANGES`).
_SOFT_RANGES = {"exp": (-0.5, 0.5), "angle": (-45.0, 45.0), "t": (-1.0, 1.0), "scale": (0.5, 2.0)}
SLIDER_STEPS = 1000

_KEYED, _ANIMATED, _OVERRIDDEN, _PLAIN = "keyed", "animated", "overridden", ""
_STATE_FIELD = {_KEYED: QColor(92, 74, 18), _ANIMATED: QColor(34, 66, 40), _OVERRIDDEN: QColor(70, 48, 92)}
_STATE_GLYPH = {_KEYED: ("◆", QColor(245, 185, 50)), _ANIMATED: ("◇", QColor(130, 200, 130)),
                _OVERRIDDEN: ("◇", QColor(190, 150, 235)), _PLAIN: ("◇", QColor(150, 150, 158))}
_LIMIT_SHADE = QColor(230, 90, 70, 120)
_LOCK_COLOUR = QColor(240, 180, 60)


# --- names and ranges -----------------------------------------------------------------------------

def keypoint_title(name: str) -> str:
    """``lip_upper_center`` → "Lip upper center", ``brow_inner_l`` → "Brow inner left"."""
    words = name.split("_")
    side = {"l": "left", "r": "right"}.get(words[-1])
    if side:
        words[-1] = side
    return " ".join(words).capitalize()


def channel_label(key: str) -> str:
    """The row's label: "Lip upper center · up/down", "Yaw · turn", "Intensity"."""
    if key in _NAMED_LABELS:
        return _NAMED_LABELS[key]
    _, keypoint, axis = key.split(".")
    return f"{keypoint_title(keypoint)} · {_AXIS_WORDS[axis]}"


_ANATOMY = {k.name: k.anatomy for k in KEYPOINTS}


_MENU_HINT = "\nRight-click: key or delete the key here, limits, selection."


def channel_help(key: str) -> str:
    """The row's tooltip: the raw channel name, what it moves, its units and sign, its valid range."""
    return _describe(key) + (_MENU_HINT if key != EMOTION else "")


def _describe(key: str) -> str:
    if key in CHANNEL_RANGES:
        low, high = CHANNEL_RANGES[key]
        valid = f"\nValid range {low:g} … {high:g}."
    else:
        valid = ""
    if key in _NAMED_HELP:
        return f"{key}\n{_NAMED_HELP[key]}{valid}"
    _, keypoint, axis = key.split(".")
    return (f"{key}\n{_ANATOMY[keypoint]}\nOffset in face units (inter-ocular distance = 1): "
            f"{_AXIS_SIGNS[axis]}.{valid}")


def slider_range(key: str) -> tuple[float, float]:
    """The span a row's slider covers (the field accepts the whole valid range)."""
    if key in EXPRESSION_CHANNELS:
        return _SOFT_RANGES["exp"]
    if key.startswith("pose."):
        return _SOFT_RANGES["angle"]
    if key.startswith("t."):
        return _SOFT_RANGES["t"]
    if key == "scale":
        return _SOFT_RANGES["scale"]
    if key == INTENSITY:
        return INTENSITY_RANGE
    if key == EMOTION:
        return (0.0, 1.0)
    return CHANNEL_RANGES[key]


def field_range(key: str) -> tuple[float, float]:
    if key == INTENSITY:
        return INTENSITY_RANGE
    if key == EMOTION:
        return (0.0, 1.0)
    return CHANNEL_RANGES[key]


def _decimals(key: str) -> tuple[int, float]:
    """Decimals shown and the step of the arrow keys."""
    if key.startswith("pose."):
        return 1, 0.5
    if key in EXPRESSION_CHANNELS or key.startswith("t.") or key == "scale":
        return 3, 0.005
    return 2, 0.05


def group_of(key: str) -> str:
    """The section a row lives in: a channel group of :data:`CHANNEL_GROUPS`, or ``controls``."""
    for group, channels in CHANNEL_GROUPS.items():
        if key in channels:
            return group
    return CONTROLS


class Gesture:
    """An edit that lasts from a mouse press to its release and is one undo step.

    A document macro is held open meanwhile: every edit pushed is applied at once (and announced,
    so the views preview it) and recorded in the macro. On :meth:`finish`, repeated edits of one
    slot are collapsed into one change (first old value, last new value), so undoing a long drag
    replays one change per slot, not every mouse move.
    """

    def __init__(self, project: Project, text: str):
        self.project = project
        self._context = project.macro(text)
        self._macro = self._context.__enter__()
        self.data: dict = {}  # what the edit worked out once (the curve path, the value below)

    def finish(self) -> None:
        """Close the macro: one undo step (none when nothing was edited)."""
        commands = self._macro.commands
        if commands and all(isinstance(c, SetSlot) for c in commands):
            first: dict[tuple, SetSlot] = {}
            last: dict[tuple, SetSlot] = {}
            for command in commands:
                first.setdefault(command.slot, command)
                last[command.slot] = command
            commands[:] = [SetSlot(c.target, slot, c.old, last[slot].new, c.text) for slot, c in first.items()]
        self._context.__exit__(None, None, None)


# --- small widgets --------------------------------------------------------------------------------

class ValueSlider(QSlider):
    """A horizontal slider over a float span; shades what lies outside a limit. ``pressed`` and
    ``released`` bracket every mouse interaction (a drag, a click or hold in the groove)."""

    pressed = Signal()
    released = Signal()

    def __init__(self, low: float, high: float, parent: QWidget | None = None):
        super().__init__(Qt.Horizontal, parent)
        self.low, self.high = float(low), float(high)
        self.limit: tuple[float, float] | None = None
        self.setRange(0, SLIDER_STEPS)
        self.setPageStep(SLIDER_STEPS // 20)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMinimumWidth(60)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def position_of(self, value: float) -> int:
        t = (float(value) - self.low) / (self.high - self.low)
        return round(min(max(t, 0.0), 1.0) * SLIDER_STEPS)

    def value_at(self, position: int | None = None) -> float:
        position = self.value() if position is None else position
        return self.low + (self.high - self.low) * position / SLIDER_STEPS

    def set_limit(self, limit: tuple[float, float] | None) -> None:
        if limit != self.limit:
            self.limit = limit
            self.update()

    def handle_center(self) -> QPointF:
        """Where the handle is, in widget coordinates (for tests and the benchmark)."""
        return QRectF(self._sub_rect(QStyle.SC_SliderHandle)).center()

    def point_for(self, value: float) -> QPointF:
        """The widget point the handle's centre sits on at ``value``."""
        groove, handle = self._sub_rect(QStyle.SC_SliderGroove), self._sub_rect(QStyle.SC_SliderHandle)
        span = groove.width() - handle.width()
        x = groove.x() + handle.width() / 2 + QStyle.sliderPositionFromValue(0, SLIDER_STEPS, self.position_of(value),
                                                                            span)
        return QPointF(x, handle.center().y())

    def _sub_rect(self, control):
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        return self.style().subControlRect(QStyle.CC_Slider, option, control, self)

    def mousePressEvent(self, event) -> None:
        if event.button() in (Qt.LeftButton, Qt.MiddleButton):  # the buttons a slider moves with
            self.pressed.emit()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        if event.button() in (Qt.LeftButton, Qt.MiddleButton):
            self.released.emit()

    #: Keys a focused slider moves with: it takes them before the window's shortcuts (the arrows
    #: step the playhead elsewhere in the window).
    EDIT_KEYS = frozenset({Qt.Key_Left, Qt.Key_Right, Qt.Key_Up, Qt.Key_Down, Qt.Key_PageUp, Qt.Key_PageDown,
                           Qt.Key_Home, Qt.Key_End})

    def event(self, event) -> bool:
        if (event.type() == QEvent.ShortcutOverride and event.key() in self.EDIT_KEYS
                and not event.modifiers() & ~Qt.KeypadModifier):
            event.accept()
            return True
        return super().event(event)

    def wheelEvent(self, event) -> None:
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()  # scroll the inspector, not the slider under the pointer

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.limit is None:
            return
        groove = self._sub_rect(QStyle.SC_SliderGroove)
        low_x, high_x = self.point_for(self.limit[0]).x(), self.point_for(self.limit[1]).x()
        top, height = groove.center().y() - 3, 7
        painter = QPainter(self)
        painter.setPen(Qt.NoPen)
        painter.setBrush(_LIMIT_SHADE)
        if low_x > groove.left() + 1:
            painter.drawRect(QRectF(groove.left(), top, low_x - groove.left(), height))
        if high_x < groove.right() - 1:
            painter.drawRect(QRectF(high_x, top, groove.right() - high_x, height))
        painter.setPen(QPen(_LIMIT_SHADE.lighter(150), 2))
        for x in (low_x, high_x):
            painter.drawLine(QPointF(x, top - 3), QPointF(x, top + height + 2))
        painter.end()


class ValueField(QDoubleSpinBox):
    """The exact value: typed (Enter), arrow keys; the wheel only once it has the focus."""

    def __init__(self, low: float, high: float, decimals: int, step: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.setRange(low, high)
        self.setDecimals(decimals)
        self.setSingleStep(step)
        self.setKeyboardTracking(False)  # valueChanged on Enter or leaving the field, not per keystroke
        self.setButtonSymbols(QAbstractSpinBox.NoButtons)
        self.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setFixedWidth(self.fontMetrics().horizontalAdvance("−10.000°") + 14)

    def wheelEvent(self, event) -> None:
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()

    def being_typed(self) -> bool:
        """True while the user has typed something not yet entered (the display leaves it alone)."""
        return self.hasFocus() and self.lineEdit().isModified()


class NameLabel(QLabel):
    """A row's or section's name: click selects (Shift/Ctrl adds), right-click opens its menu."""

    clicked = Signal(bool)  # additive

    def __init__(self, text: str, parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setContextMenuPolicy(Qt.CustomContextMenu)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.LeftButton:
            self.clicked.emit(bool(event.modifiers() & (Qt.ShiftModifier | Qt.ControlModifier)))
        super().mousePressEvent(event)


def _lock_icon() -> QIcon:
    """A padlock: closed and amber when checked (locked), open and grey otherwise."""
    icon = QIcon()
    ratio = max(1.0, QGuiApplication.primaryScreen().devicePixelRatio() if QGuiApplication.primaryScreen() else 1.0)
    for state, colour, closed in ((QIcon.On, _LOCK_COLOUR, True), (QIcon.Off, QColor(150, 150, 158), False)):
        size = int(16 * ratio)
        pixmap = QPixmap(size, size)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.transparent)
        p = QPainter(pixmap)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QPen(colour, 1.6))
        p.setBrush(Qt.NoBrush)
        shift = 0.0 if closed else 3.0  # an open shackle swings up and to the side
        p.drawArc(QRectF(4.5 + shift, 1.5 - (1.5 if not closed else 0.0), 7, 9), 0, 180 * 16)
        p.drawLine(QPointF(4.5 + shift, 6.0), QPointF(4.5 + shift, 7.5 if closed else 4.5))
        p.drawLine(QPointF(11.5 + shift, 6.0), QPointF(11.5 + shift, 7.5))
        p.setPen(Qt.NoPen)
        p.setBrush(colour)
        p.drawRoundedRect(QRectF(3, 7.5, 10, 7.5), 1.5, 1.5)
        p.end()
        icon.addPixmap(pixmap, QIcon.Normal, state)
    return icon


# --- rows and sections ----------------------------------------------------------------------------

class ChannelRow:
    """One row of a section's grid: name, slider, field, key button — for a motion channel or the
    intensity. Plain Python holding its widgets; the panel wires and updates it."""

    def __init__(self, key: str, parent: QWidget):
        self.key = key
        self.group = group_of(key)
        self.label = channel_label(key)
        tip = channel_help(key)
        decimals, step = _decimals(key)
        self.decimals = decimals
        self.name = NameLabel(self.label, parent)
        self.name.setToolTip(tip)
        self.slider = ValueSlider(*slider_range(key), parent)
        self.slider.setToolTip(tip)
        self.field = ValueField(*field_range(key), decimals, step, parent)
        if key.startswith("pose."):
            self.field.setSuffix("°")
        self.field.setToolTip(tip)
        self.key_button = QToolButton(parent)
        self.key_button.setAutoRaise(True)
        self.key_button.setFixedWidth(24)
        self.key_button.setToolTip("Key this channel at the playhead with its value there")
        self.widgets = (self.name, self.slider, self.field, self.key_button)
        self.anchor = self.name  # the widget whose place in the section is the row's
        self.search_text = f"{self.label} {key} {SECTION_TITLES.get(self.group, self.group)} {self.group}".lower()
        # What is on screen, so unchanged rows cost nothing.
        self.shown_position: int | None = None
        self.shown_value: float | None = None
        self.shown_state: str | None = None
        self.shown_enabled: bool | None = None
        self.shown_limit: object = ()
        self.shown_look: tuple | None = None
        self.filtered_out = False

    def set_filtered_out(self, hidden: bool) -> None:
        if hidden != self.filtered_out:
            self.filtered_out = hidden
            for widget in self.widgets:
                widget.setVisible(not hidden)

    def show_value(self, value: float, move_slider: bool = True) -> None:
        position = self.slider.position_of(value)
        if move_slider and position != self.shown_position:
            self.slider.blockSignals(True)
            self.slider.setValue(position)
            self.slider.blockSignals(False)
            self.shown_position = position
        rounded = round(float(value), self.decimals)
        if rounded != self.shown_value and not self.field.being_typed():
            self.field.blockSignals(True)
            self.field.setValue(rounded)
            self.field.blockSignals(False)
            self.shown_value = rounded

    def show_state(self, state: str, base: QPalette, button: QPalette) -> None:
        if state == self.shown_state:
            return
        self.shown_state = state
        palette = QPalette(base)
        glyph, colour = _STATE_GLYPH[state]
        button_palette = QPalette(button)
        for group in (QPalette.Active, QPalette.Inactive):  # disabled (locked) rows stay grey
            if state in _STATE_FIELD:
                palette.setColor(group, QPalette.Base, _STATE_FIELD[state])
            button_palette.setColor(group, QPalette.ButtonText, colour)
        self.field.setPalette(palette)
        self.key_button.setPalette(button_palette)
        self.key_button.setText(glyph)

    def set_editable(self, enabled: bool) -> None:
        if enabled != self.shown_enabled:
            self.shown_enabled = enabled
            for widget in (self.slider, self.field, self.key_button):
                widget.setEnabled(enabled)


class EmotionRow:
    """The emotion segment under the playhead: a label (or none) and its strength."""

    key = EMOTION
    group = CONTROLS

    def __init__(self, parent: QWidget):
        self.label = channel_label(EMOTION)
        tip = channel_help(EMOTION)
        self.name = NameLabel(self.label, parent)
        self.name.setToolTip(tip)
        self.combo = QComboBox(parent)
        self.combo.addItem("— none —", None)
        for emotion in EMOTIONS:
            self.combo.addItem(emotion.capitalize(), emotion)
        self.combo.setToolTip(tip)
        self.combo.setFocusPolicy(Qt.StrongFocus)
        self.slider = ValueSlider(0.0, 1.0, parent)
        self.slider.setToolTip("Strength of the emotion segment under the playhead (0 … 1)")
        self.field = ValueField(0.0, 1.0, 2, 0.05, parent)
        self.field.setToolTip(self.slider.toolTip())
        self.caption = QLabel(parent)
        self.caption.setWordWrap(True)
        self.caption.setForegroundRole(QPalette.PlaceholderText)
        font = self.caption.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)
        self.caption.setFont(font)
        self.widgets = (self.name, self.combo, self.slider, self.field, self.caption)
        self.anchor = self.name
        self.search_text = f"{self.label} strength {' '.join(EMOTIONS)} {SECTION_TITLES[CONTROLS]}".lower()
        self.filtered_out = False
        self.shown: tuple | None = None

    def set_filtered_out(self, hidden: bool) -> None:
        if hidden != self.filtered_out:
            self.filtered_out = hidden
            for widget in self.widgets:
                widget.setVisible(not hidden)


class Section(QWidget):
    """A collapsible group of rows: a header (fold arrow and title, keyed count, lock, Key) over a
    grid of rows."""

    def __init__(self, group: str, name_width: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.group = group
        self.title = SECTION_TITLES.get(group, group.capitalize())
        self.rows: list = []
        self.user_expanded = group in EXPANDED_BY_DEFAULT
        self._name_width = name_width

        self.header = QFrame(self)
        self.header.setAutoFillBackground(True)
        header_palette = self.header.palette()
        header_palette.setColor(QPalette.Window, QColor(58, 58, 65))
        self.header.setPalette(header_palette)
        self.fold = QToolButton(self.header)
        self.fold.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.fold.setAutoRaise(True)
        self.fold.setText(self.title.replace("&", "&&"))  # no mnemonic
        bold = self.fold.font()
        bold.setBold(True)
        self.fold.setFont(bold)
        self.fold.setContextMenuPolicy(Qt.CustomContextMenu)
        self.fold.setToolTip(f"Show or hide the {self.title.lower()} rows (channel group “{group}”)"
                             if group != CONTROLS else "Show or hide the generator's controls")
        self.summary = QLabel(self.header)
        self.lock = QToolButton(self.header)
        self.lock.setCheckable(True)
        self.lock.setAutoRaise(True)
        self.lock.setIcon(_lock_icon())
        self.lock.setToolTip(f"Lock {self.title.lower()}: the region keeps the generated motion; "
                             "its keys are ignored and its sliders disabled")
        self.key_all = QToolButton(self.header)
        self.key_all.setText("◆ Key")
        self.key_all.setAutoRaise(True)
        self.key_all.setToolTip(f"Key every {self.title.lower()} channel at the playhead with its value there")
        header_layout = QHBoxLayout(self.header)
        header_layout.setContentsMargins(2, 1, 4, 1)
        header_layout.setSpacing(4)
        header_layout.addWidget(self.fold)
        header_layout.addWidget(self.summary)
        header_layout.addStretch(1)
        header_layout.addWidget(self.lock)
        header_layout.addWidget(self.key_all)
        if group == CONTROLS:  # the controls are no channel group: nothing to lock or key at once
            self.lock.hide()
            self.key_all.hide()

        self.body = QWidget(self)
        self.grid = QGridLayout(self.body)
        self.grid.setContentsMargins(8, 2, 2, 6)
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(1)
        self.grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 2)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        layout.addWidget(self.body)
        self.shown_summary: tuple | None = None
        self.filtering = False
        self._apply_fold()

    def add_channel_row(self, row: ChannelRow) -> None:
        r = self.grid.rowCount()
        row.name.setFixedWidth(self._name_width)
        self.grid.addWidget(row.name, r, 0)
        self.grid.addWidget(row.slider, r, 1)
        self.grid.addWidget(row.field, r, 2)
        self.grid.addWidget(row.key_button, r, 3)
        self.rows.append(row)

    def add_emotion_row(self, row: EmotionRow) -> None:
        r = self.grid.rowCount()
        holder = QWidget(self.body)  # the name column holds the label and its combo
        holder.setFixedWidth(self._name_width)
        line = QHBoxLayout(holder)
        line.setContentsMargins(0, 0, 0, 0)
        line.setSpacing(6)
        row.name.setParent(holder)
        row.combo.setParent(holder)
        line.addWidget(row.name)
        line.addWidget(row.combo, 1)
        self.grid.addWidget(holder, r, 0)
        self.grid.addWidget(row.slider, r, 1)
        self.grid.addWidget(row.field, r, 2)
        self.grid.addWidget(row.caption, r + 1, 0, 1, 4)
        row.widgets = row.widgets + (holder,)
        row.anchor = holder
        self.rows.append(row)

    @property
    def expanded(self) -> bool:
        """Whether the rows are open (a filter opens the sections it matches)."""
        return self.filtering or self.user_expanded

    def set_expanded(self, expanded: bool) -> None:
        self.user_expanded = bool(expanded)
        self._apply_fold()

    def _apply_fold(self) -> None:
        self.fold.setArrowType(Qt.DownArrow if self.expanded else Qt.RightArrow)
        self.body.setVisible(self.expanded)


# --- the panel ------------------------------------------------------------------------------------

class InspectorPanel(QWidget):
    """Every channel at the playhead, editable (see the module docstring).

    Observes the session (playhead, evaluated motion, selection, open project); edits only through
    the document. ``notice(text)``: one-line messages for the status bar.
    """

    notice = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.updates = 0  # refreshes that ran (tests and the benchmark read it)
        self.gesture: Gesture | None = None
        self._gesture_row = None
        self._version = 0  # bumped on every document change: the key states' cache key
        self._states_for: tuple | None = None
        self._states: dict[str, str] = {}
        self.limit_dialog: LimitDialog | None = None

        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter channels: lip, yaw, blink, exp.chin…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.apply_filter)
        self.playhead = QLabel(self)
        self.playhead.setForegroundRole(QPalette.PlaceholderText)
        top = QHBoxLayout()
        top.setContentsMargins(4, 4, 4, 2)
        top.addWidget(self.filter, 1)
        top.addWidget(self.playhead)

        self.container = QWidget(self)
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setWidget(self.container)
        self.scroll.verticalScrollBar().valueChanged.connect(self.schedule)
        self.empty = QLabel("No channel matches the filter.", self.container)
        self.empty.setAlignment(Qt.AlignCenter)
        self.empty.setForegroundRole(QPalette.PlaceholderText)
        self.empty.hide()

        bold = QFont(self.font())
        bold.setBold(True)  # a selected row's name is bold: the column fits it too
        name_width = max(QFontMetrics(bold).horizontalAdvance(channel_label(k))
                         for k in (*CHANNEL_INDEX, INTENSITY, EMOTION)) + 12
        self._field_palette = QPalette(self.palette())
        self._button_palette = QPalette(self.palette())
        self.sections: dict[str, Section] = {}
        self.rows: dict[str, ChannelRow] = {}
        column = QVBoxLayout(self.container)
        column.setContentsMargins(2, 0, 2, 0)
        column.setSpacing(2)
        for group in SECTION_ORDER:
            section = Section(group, name_width, self.container)
            self.sections[group] = section
            column.addWidget(section)
            section.fold.clicked.connect(lambda checked=False, s=section: self._toggle_section(s))
            section.fold.customContextMenuRequested.connect(
                lambda point, s=section: _popup(self.section_menu(s), s.fold.mapToGlobal(point)))
            section.lock.toggled.connect(lambda locked, g=group: self.lock_group(g, locked))
            section.key_all.clicked.connect(lambda checked=False, g=group: self.key_group(g))
            keys = (INTENSITY,) if group == CONTROLS else CHANNEL_GROUPS[group]
            for key in keys:
                row = ChannelRow(key, section.body)
                section.add_channel_row(row)
                self.rows[key] = row
                self._wire_row(row)
            if group == CONTROLS:
                self.emotion = EmotionRow(section.body)
                section.add_emotion_row(self.emotion)
                self._wire_emotion(self.emotion)
        column.addWidget(self.empty)
        column.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addWidget(self.scroll, 1)
        scrollbar = self.scroll.verticalScrollBar().sizeHint().width()
        self.setMinimumWidth(self.container.minimumSizeHint().width() + scrollbar + 4)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        session.events.frame.connect(self._on_frame)
        session.events.motion.connect(self._on_document)
        session.events.selection.connect(self._on_selection)
        session.events.project.connect(self._on_project)
        self._on_selection()
        self.schedule()

    # --- wiring ---------------------------------------------------------------------------------
    def _wire_row(self, row: ChannelRow) -> None:
        key = row.key
        row.slider.pressed.connect(lambda: self.begin_drag(key))
        row.slider.released.connect(self.end_drag)
        row.slider.valueChanged.connect(lambda position: self._on_slider(row, position))
        row.field.valueChanged.connect(lambda value: self._on_field(row, value))
        row.key_button.clicked.connect(lambda: self.key_channels([key]))
        row.name.clicked.connect(lambda additive: self._select(key, additive))
        for widget in (row.name, row.slider):
            widget.setContextMenuPolicy(Qt.CustomContextMenu)
            widget.customContextMenuRequested.connect(
                lambda point, w=widget: _popup(self.row_menu(key), w.mapToGlobal(point)))

    def _wire_emotion(self, row: EmotionRow) -> None:
        row.combo.activated.connect(lambda index: self.set_emotion_label(row.combo.itemData(index)))
        row.slider.pressed.connect(lambda: self.begin_drag(EMOTION))
        row.slider.released.connect(self.end_drag)
        row.slider.valueChanged.connect(lambda position: self._on_slider(row, position))
        row.field.valueChanged.connect(lambda value: self._on_field(row, value))

    # --- observing ------------------------------------------------------------------------------
    @property
    def project(self) -> Project:
        return self.session.project

    def _on_frame(self, event=None) -> None:
        self.schedule()

    def _on_document(self, event=None) -> None:
        self._version += 1
        self.schedule()

    def _on_project(self, event=None) -> None:
        self.end_drag()  # a drag on the previous project ends there, as one undo step of its own
        self._version += 1
        self.schedule()

    def _on_selection(self, event=None) -> None:
        if not isValid(self):
            return
        selected = set(self.session.selection.channels)
        for key, row in self.rows.items():
            self._style_name(row, key in selected)

    def _style_name(self, row: ChannelRow, selected: bool) -> None:
        look = (selected,)
        if look == row.shown_look:
            return
        row.shown_look = look
        font = row.name.font()
        font.setBold(selected)
        row.name.setFont(font)
        row.name.setForegroundRole(QPalette.Highlight if selected else QPalette.WindowText)

    def schedule(self, *args) -> None:
        """Update soon: once per pass of the event loop however many changes arrive."""
        if not isValid(self):
            return  # closed and deleted; the session lets go of us once Python collects this side
        if not self._timer.isActive():
            self._timer.start(0)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.schedule()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.schedule()  # rows that came on screen

    def hideEvent(self, event) -> None:
        self.end_drag()
        super().hideEvent(event)

    # --- showing the playhead -------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the playhead's values on the rows on screen (the timer calls this; tests and the
        benchmark call it directly)."""
        self._timer.stop()
        session, project = self.session, self.session.project
        frame = session.frame
        self.updates += 1
        self.playhead.setText(f"frame {frame} · {format_time(session.time)}")
        values = session.frame_values()
        states = self.key_states()
        locks = project.locked_groups
        limits = project.limits
        for group, section in self.sections.items():
            locked = group in locks
            if section.lock.isChecked() != locked:
                section.lock.blockSignals(True)
                section.lock.setChecked(locked)
                section.lock.blockSignals(False)
            self._show_summary(section, states, locked)
        if not self.isVisible():
            return  # shown later: showEvent asks again
        top = self.scroll.verticalScrollBar().value()
        bottom = top + self.scroll.viewport().height()
        for group, section in self.sections.items():
            if section.isHidden() or not section.expanded:
                continue
            y0 = section.y()
            if y0 > bottom or y0 + section.height() < top:
                continue
            y0 += section.body.y()
            editable = group not in locks
            for row in section.rows:
                if row.filtered_out:
                    continue
                y = y0 + row.anchor.y()
                if y > bottom or y + row.anchor.height() < top:
                    continue
                if row is self.emotion:
                    self._show_emotion(frame)
                    continue
                key = row.key
                if key == INTENSITY:
                    value = float(project.intensity_values([frame])[0])
                else:
                    value = float(values[CHANNEL_INDEX[key]])
                row.show_value(value, move_slider=row is not self._gesture_row)
                row.show_state(states.get(key, _PLAIN), self._field_palette, self._button_palette)
                row.set_editable(editable)
                limit = limits.get(key)
                if limit != row.shown_limit:
                    row.shown_limit = limit
                    row.slider.set_limit(limit)
                    tip = channel_help(key)
                    if limit is not None:
                        tip += f"\nLimited to {limit[0]:g} … {limit[1]:g} (context menu ▸ Limit…)."
                    row.slider.setToolTip(tip)
                    row.field.setToolTip(tip)

    def key_states(self) -> dict[str, str]:
        """Per row key (channels, intensity) at the playhead: ``keyed`` (a key sits on this frame),
        ``overridden`` (an eye override holds it), ``animated`` (it has keys elsewhere); absent: none."""
        frame = self.session.frame
        if self._states_for == (frame, self._version, id(self.project)):
            return self._states
        project = self.project
        states: dict[str, str] = {}
        for layer in project.layers:
            for channel, curve in layer.curves.items():
                if curve.key_index(frame) is not None:
                    states[channel] = _KEYED
                else:
                    states.setdefault(channel, _ANIMATED)
        for channel, curve in project.overrides.items():
            if curve.frames[0] <= frame <= curve.frames[-1]:
                states[channel] = _KEYED if curve.key_index(frame) is not None else _OVERRIDDEN
        if project.intensity is not None:
            states[INTENSITY] = _KEYED if project.intensity.key_index(frame) is not None else _ANIMATED
        self._states_for, self._states = (frame, self._version, id(project)), states
        return states

    def _show_summary(self, section: Section, states: dict[str, str], locked: bool) -> None:
        keys = [r.key for r in section.rows]
        keyed = sum(1 for k in keys if states.get(k) == _KEYED)
        summary = (keyed, locked)
        if summary == section.shown_summary:
            return
        section.shown_summary = summary
        parts = []
        if keyed:
            parts.append(f"<span style='color:#f5b932'>◆ {keyed}</span>")
        if locked:
            parts.append("<span style='color:#f0b43c'>locked</span>")
        section.summary.setText(" ".join(parts))
        section.summary.setToolTip(f"{keyed} channel(s) keyed at the playhead" + (" · locked" if locked else ""))
        section.key_all.setEnabled(not locked)

    def _show_emotion(self, frame: int) -> None:
        row = self.emotion
        covering = self._segments_at(frame)
        segment = covering[-1] if covering else None
        # The mixture at the playhead; segments not covering it add nothing, so only those are passed.
        weights = emotion_weights(covering, [frame])[0]
        strongest = int(np.argmax(weights[1:])) + 1
        shown = (segment, round(float(weights[strongest]), 3), row is self._gesture_row)
        if shown == row.shown:
            return
        row.shown = shown
        row.combo.blockSignals(True)
        row.combo.setCurrentIndex(0 if segment is None else row.combo.findData(segment.label))
        row.combo.blockSignals(False)
        strength = 0.0 if segment is None else float(segment.strength)
        if row is not self._gesture_row:
            row.slider.blockSignals(True)
            row.slider.setValue(row.slider.position_of(strength))
            row.slider.blockSignals(False)
        if not row.field.being_typed():
            row.field.blockSignals(True)
            row.field.setValue(strength)
            row.field.blockSignals(False)
        row.slider.setEnabled(segment is not None)
        row.field.setEnabled(segment is not None)
        if segment is None:
            row.caption.setText("No emotion segment here: choose a label to add one from the playhead on.")
            return
        fades = (f", fades {segment.blend_in}/{segment.blend_out} frames"
                 if segment.blend_in or segment.blend_out else "")
        here = f"{EMOTIONS[strongest]} {weights[strongest]:.2f}" if weights[strongest] > 0 else "neutral"
        row.caption.setText(f"Segment frames {segment.start}–{segment.end - 1}{fades} · here: {here}")

    def segment_at(self, frame: int):
        """The emotion segment the inspector edits at ``frame``: the last added of those covering it."""
        covering = self._segments_at(frame)
        return covering[-1] if covering else None

    def _segments_at(self, frame: int) -> list:
        return [s for s in self.project.emotion_segments if s.start <= frame < s.end]

    # --- filtering and folding ------------------------------------------------------------------
    def apply_filter(self, text: str | None = None) -> None:
        """Show only the rows whose label, channel name or section matches ``text`` (all when empty)."""
        text = (self.filter.text() if text is None else text).strip().lower()
        any_match = False
        for section in self.sections.values():
            matches = 0
            for row in section.rows:
                hidden = bool(text) and text not in row.search_text
                row.set_filtered_out(hidden)
                matches += not hidden
            section.setVisible(matches > 0)
            section.filtering = bool(text) and matches > 0
            section._apply_fold()
            any_match |= matches > 0
        self.empty.setVisible(not any_match)
        self.schedule()

    def _toggle_section(self, section: Section) -> None:
        if section.filtering:
            return  # a filter holds it open
        section.set_expanded(not section.user_expanded)
        self.schedule()

    def set_expanded(self, groups: Iterable[str] | None = None, expanded: bool = True) -> None:
        """Open (or fold) the named sections, all when ``groups`` is None."""
        for group in (self.sections if groups is None else groups):
            self.sections[group].set_expanded(expanded)
        self.schedule()

    def open_sections(self) -> list[str]:
        """The sections the user has open (top to bottom; a filter holding one open does not count)."""
        return [group for group, section in self.sections.items() if section.user_expanded]

    def set_open_sections(self, groups: Iterable[str]) -> None:
        """Open exactly the named sections and fold the rest (names it does not have are ignored:
        a remembered list from another version)."""
        wanted = set(groups)
        for group, section in self.sections.items():
            section.set_expanded(group in wanted)
        self.schedule()

    def reveal(self, key: str) -> None:
        """Open a row's section and scroll the row into view."""
        row = self.emotion if key == EMOTION else self.rows[key]
        self.sections[row.group].set_expanded(True)
        self.container.adjustSize()
        self.scroll.ensureWidgetVisible(row.name, 0, 40)
        self.schedule()

    # --- editing --------------------------------------------------------------------------------
    def _editable(self, key: str) -> bool:
        return group_of(key) == CONTROLS or group_of(key) not in self.project.locked_groups

    def value_at_playhead(self, key: str) -> float:
        """The evaluated value the row ``key`` shows (a channel, the intensity, the emotion strength)."""
        frame = self.session.frame
        if key == INTENSITY:
            return float(self.project.intensity_values([frame])[0])
        if key == EMOTION:
            segment = self.segment_at(frame)
            return 0.0 if segment is None else float(segment.strength)
        return float(self.session.frame_values()[CHANNEL_INDEX[key]])

    def _apply(self, key: str, value: float, data: dict) -> None:
        """Push the edit "``key`` at the playhead is ``value``"; ``data`` keeps what a drag works
        out once (the segment, the curve path and the value below it)."""
        project, frame = self.project, self.session.frame
        if key == EMOTION:
            if "segment" not in data:
                segment = self.segment_at(frame)
                data["segment"] = None if segment is None else segment.id
            if data["segment"] is not None:
                project.update_emotion(data["segment"], strength=float(np.clip(value, 0.0, 1.0)))
            return
        if "path" not in data:
            data["path"] = edit_path(project, key, frame, create=True, layer=self.session.active_layer)
            path = data["path"]
            data["below"] = (values_below(project, path[1], [key], frame)[key]
                             if needs_below(project, path) else None)
        path = data["path"]
        insert_key(project, path, frame, key_value_for(project, path, value, data["below"]))

    def set_value(self, key: str, value: float) -> None:
        """Make ``key`` evaluate to ``value`` at the playhead, as one undo step (what typing does)."""
        if not self._editable(key):
            self.notice.emit(f"{channel_label(key)}: the {SECTION_TITLES[group_of(key)].lower()} are locked")
            return
        low, high = field_range(key)
        value = float(np.clip(value, low, high))
        with self.project.macro(f"Set {channel_label(key)} at frame {self.session.frame}"):
            self._apply(key, value, {})

    def begin_drag(self, key: str) -> None:
        """A mouse press on a slider: what it changes until :meth:`end_drag` is one undo step."""
        self.end_drag()
        if not self._editable(key) or (key == EMOTION and self.segment_at(self.session.frame) is None):
            return
        what = "emotion strength" if key == EMOTION else channel_label(key)
        self.gesture = Gesture(self.project, f"Set {what} at frame {self.session.frame}")
        self._gesture_row = self.emotion if key == EMOTION else self.rows[key]
        self.gesture.data["key"] = key

    def drag_to(self, value: float) -> None:
        """Live edit during a drag (the slider calls it on every move)."""
        if self.gesture is None:
            return
        self._apply(self.gesture.data["key"], value, self.gesture.data)

    def end_drag(self) -> None:
        """The release: the drag's edits become one undo step."""
        gesture, self.gesture, self._gesture_row = self.gesture, None, None
        if gesture is not None:
            gesture.finish()
            self.schedule()

    def _on_slider(self, row, position: int) -> None:
        value = row.slider.value_at(position)
        row.shown_position = position
        if self.gesture is not None and row is self._gesture_row:
            self.drag_to(value)
        elif row is self.emotion:
            self.set_emotion_strength(value)
        else:
            self.set_value(row.key, value)  # keyboard on a focused slider: one step each

    def _on_field(self, row, value: float) -> None:
        row.field.lineEdit().setModified(False)
        row.shown_value = None
        if row is self.emotion:
            self.set_emotion_strength(value)
        else:
            self.set_value(row.key, value)

    def key_channels(self, keys: Iterable[str], text: str | None = None) -> int:
        """Key ``keys`` (channels, the intensity) at the playhead with their evaluated values, as one
        undo step; locked channels are skipped. Returns how many were keyed."""
        keys = [k for k in keys if self._editable(k)]
        if not keys:
            return 0
        desired = {k: self.value_at_playhead(k) for k in keys}
        label = text or (channel_label(keys[0]) if len(keys) == 1 else f"{len(keys)} channels")
        return key_channels(self.project, keys, self.session.frame, desired, layer=self.session.active_layer,
                            text=label)

    def key_group(self, group: str) -> int:
        """Key every channel of a channel group at the playhead (the section's Key button)."""
        if group in self.project.locked_groups:
            self.notice.emit(f"The {SECTION_TITLES.get(group, group).lower()} are locked: nothing keyed")
            return 0
        return self.key_channels(CHANNEL_GROUPS[group], SECTION_TITLES.get(group, group))

    def delete_keys_here(self, key: str) -> int:
        """Delete the keys of ``key`` at the playhead, on every layer (and its override), one undo step."""
        project, frame = self.project, self.session.frame
        paths = [p for p in self._curve_paths(key) if project.curve(p).key_index(frame) is not None]
        if paths:
            with project.macro(f"Delete {channel_label(key)} key at frame {frame}"):
                for path in paths:
                    project.delete_keys(path, [project.curve(path).key_index(frame)])
        return len(paths)

    def _curve_paths(self, key: str) -> list[tuple]:
        project = self.project
        if key == INTENSITY:
            return [(INTENSITY,)] if project.intensity is not None else []
        paths = [("layer", layer.id, key) for layer in project.layers if key in layer.curves]
        if key in project.overrides:
            paths.append(("override", key))
        return paths

    def lock_group(self, group: str, locked: bool = True) -> None:
        """Lock (or unlock) a channel group, one undo step."""
        if (group in self.project.locked_groups) != bool(locked):
            self.project.lock_groups([group], bool(locked))

    def set_limit(self, key: str, low: float | None, high: float | None = None) -> None:
        """Clamp ``key`` to [low, high] (``low=None`` removes the limit; a lone ``low`` is a magnitude
        ±|low|), one undo step; nothing when the limit is already that."""
        wanted = None
        if low is not None:
            high = -low if high is None else high
            wanted = (float(min(low, high)), float(max(low, high)))
        if self.project.limits.get(key) != wanted:
            self.project.set_limit(key, *(wanted or (None,)))

    def edit_limit(self, key: str) -> LimitDialog:
        """Open the limit dialog of a channel (non-modal; OK applies it as one undo step)."""
        if self.limit_dialog is not None:
            self.limit_dialog.close()
        dialog = LimitDialog(key, self.project.limits.get(key), self)
        dialog.applied.connect(lambda low, high: self.set_limit(key, low, high))
        dialog.removed.connect(lambda: self.set_limit(key, None))
        dialog.finished.connect(dialog.deleteLater)
        self.limit_dialog = dialog
        dialog.destroyed.connect(lambda *args: setattr(self, "limit_dialog", None))
        dialog.open()
        return dialog

    # --- emotion --------------------------------------------------------------------------------
    def set_emotion_label(self, label: str | None) -> None:
        """The emotion combo: relabel the segment under the playhead, remove it (None), or add one
        from the playhead to the next segment (or the project's end) when there is none."""
        project, frame = self.project, self.session.frame
        segment = self.segment_at(frame)
        if segment is None:
            if label is None:
                return
            later = [s.start for s in project.emotion_segments if s.start > frame]
            end = max(min(later, default=project.num_frames), frame + 1)
            with project.macro(f"Add {label} from frame {frame}"):
                project.add_emotion(label, frame, end)
        elif label is None:
            project.remove_emotion(segment.id)
        elif label != segment.label:
            project.update_emotion(segment.id, label=label)
        self.emotion.shown = None
        self.schedule()

    def set_emotion_strength(self, strength: float) -> None:
        segment = self.segment_at(self.session.frame)
        if segment is not None and float(strength) != segment.strength:
            self.project.update_emotion(segment.id, strength=float(np.clip(strength, 0.0, 1.0)))

    # --- selection and menus --------------------------------------------------------------------
    def _select(self, key: str, additive: bool) -> None:
        if key not in CHANNEL_INDEX:
            return
        selected = self.session.selection.channels
        if additive and key in selected:
            self.session.select_channels([c for c in selected if c != key])
        else:
            self.session.select_channels([key], add=additive)

    def row_menu(self, key: str) -> QMenu:
        """A row's context menu: key / delete the key here, limit, select, copy the channel name."""
        menu = QMenu(self)
        frame = self.session.frame
        editable = self._editable(key)
        menu.addAction(f"Key at frame {frame}", lambda: self.key_channels([key])).setEnabled(editable)
        has_key = self.key_states().get(key) == _KEYED
        menu.addAction(f"Delete key at frame {frame}", lambda: self.delete_keys_here(key)).setEnabled(has_key)
        if key in CHANNEL_INDEX:
            menu.addSeparator()
            limit = self.project.limits.get(key)
            menu.addAction("Limit…" if limit is None else f"Limit ({limit[0]:g} … {limit[1]:g})…",
                           lambda: self.edit_limit(key))
            menu.addAction("Remove limit", lambda: self.set_limit(key, None)).setEnabled(limit is not None)
            menu.addSeparator()
            menu.addAction("Select channel", lambda: self.session.select_channels([key]))
            menu.addAction("Add to selection", lambda: self.session.select_channels([key], add=True))
        menu.addAction("Copy channel name", lambda: QApplication.clipboard().setText(key))
        return menu

    def section_menu(self, section: Section) -> QMenu:
        """A section header's context menu: select, key, lock, clear limits, fold all."""
        menu = QMenu(self)
        group = section.group
        if group != CONTROLS:
            locked = group in self.project.locked_groups
            menu.addAction(f"Select {section.title.lower()} channels",
                           lambda: self.session.select_channels([group]))
            menu.addAction(f"Key {section.title.lower()} at frame {self.session.frame}",
                           lambda: self.key_group(group)).setEnabled(not locked)
            menu.addAction("Unlock" if locked else "Lock", lambda: self.lock_group(group, not locked))
            limited = [c for c in CHANNEL_GROUPS[group] if c in self.project.limits]
            menu.addAction(f"Remove limits ({len(limited)})", lambda: self.remove_limits(limited)).setEnabled(
                bool(limited))
            menu.addSeparator()
        menu.addAction("Expand all sections", lambda: self.set_expanded(None, True))
        menu.addAction("Collapse all sections", lambda: self.set_expanded(None, False))
        return menu

    def remove_limits(self, channels: Iterable[str]) -> None:
        channels = [c for c in channels if c in self.project.limits]
        if channels:
            with self.project.macro(f"Remove {len(channels)} limits"):
                for channel in channels:
                    self.project.set_limit(channel, None)


def _popup(menu: QMenu, position) -> None:
    """Show a context menu at a global position, then let it go."""
    menu.exec(position)
    menu.deleteLater()


class LimitDialog(QDialog):
    """Low and high bounds of one channel's limit; ``applied(low, high)`` on OK, ``removed()``."""

    applied = Signal(float, float)
    removed = Signal()

    def __init__(self, key: str, limit: tuple[float, float] | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Limit {channel_label(key)}")
        low, high = CHANNEL_RANGES[key]
        decimals, step = _decimals(key)
        soft = slider_range(key)
        start = limit if limit is not None else (max(low, soft[0] / 2), min(high, soft[1] / 2))
        self.low = QDoubleSpinBox(self)
        self.high = QDoubleSpinBox(self)
        for box, value in ((self.low, start[0]), (self.high, start[1])):
            box.setRange(low, high)
            box.setDecimals(decimals)
            box.setSingleStep(step)
            box.setValue(value)
        intro = QLabel(f"<b>{key}</b><br>The evaluated value is clamped to this range "
                       f"(valid range {low:g} … {high:g}).", self)
        intro.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.remove_button = QPushButton("Remove limit", self)
        self.remove_button.setEnabled(limit is not None)
        buttons.addButton(self.remove_button, QDialogButtonBox.ResetRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.remove_button.clicked.connect(self._remove)
        self.buttons = buttons
        form = QFormLayout(self)
        form.addRow(intro)
        form.addRow("Low", self.low)
        form.addRow("High", self.high)
        form.addRow(buttons)

    def accept(self) -> None:
        low, high = sorted((self.low.value(), self.high.value()))
        self.applied.emit(low, high)
        super().accept()

    def _remove(self) -> None:
        self.removed.emit()
        self.reject()


# --- measuring ------------------------------------------------------------------------------------

def benchmark_refresh(panel: InspectorPanel, frames: int = 200, *, expand_all: bool = False) -> dict:
    """Time one frame-change update over ``frames`` playhead positions of the open project: moving
    the playhead and evaluating the motion there (:meth:`Session.frame_values`, shared by every
    view and cached per frame: whichever view asks first pays it) — ``evaluate_ms`` — then the
    inspector's own work, :meth:`InspectorPanel.refresh` (what its coalescing timer runs) —
    ``update_ms``. With ``expand_all`` every section is open (the rows on screen are then what
    the panel's height allows). Returns medians, 90th percentiles and maxima in milliseconds."""
    session = panel.session
    if session.project.num_frames < 2:
        raise ValueError("the benchmark needs a project of at least 2 frames")
    if expand_all:
        panel.set_expanded(None, True)
    QApplication.processEvents()
    panel.refresh()
    positions = np.linspace(0, session.last_frame, min(frames, session.project.num_frames)).round().astype(int)
    evaluate, update = [], []
    for frame in positions:
        start = time.perf_counter()
        session.frame = int(frame)
        session.frame_values()
        middle = time.perf_counter()
        panel.refresh()
        update.append(1000.0 * (time.perf_counter() - middle))
        evaluate.append(1000.0 * (middle - start))
    total = [a + b for a, b in zip(evaluate, update)]
    result = {"frames": len(update), "rows_on_screen": sum(1 for row in panel.rows.values() if _on_screen(panel, row))}
    for name, times in (("update", update), ("evaluate", evaluate), ("total", total)):
        ordered = sorted(times)
        result.update({f"{name}_ms": statistics.median(ordered),
                       f"{name}_p90_ms": ordered[int(0.9 * (len(ordered) - 1))], f"{name}_max_ms": ordered[-1]})
    return result


def _on_screen(panel: InspectorPanel, row: ChannelRow) -> bool:
    if row.filtered_out or not row.name.isVisibleTo(panel):
        return False
    y = row.name.mapTo(panel.container, row.name.rect().topLeft()).y()
    top = panel.scroll.verticalScrollBar().value()
    return top - row.name.height() <= y <= top + panel.scroll.viewport().height()


def benchmark_drag(panel: InspectorPanel, key: str, *, moves: int = 100, interval_ms: float = 10.0,
                   viewport=None) -> dict:
    """Drag the slider of ``key`` with real mouse events (a move every ``interval_ms``, the event
    loop running in between, as under a hand), then release. Reports the document edits, the undo
    steps it made and, given a ``viewport`` with a ``renders`` count (the 2D view), how many
    frames per second the live preview showed meanwhile."""
    from PySide6.QtCore import QCoreApplication, QEventLoop

    row = panel.emotion if key == EMOTION else panel.rows[key]
    panel.reveal(key)
    QApplication.processEvents()
    slider = row.slider
    steps = len(panel.project.undo_stack)
    index = panel.project.undo_stack.index
    renders = viewport.renders if viewport is not None else 0
    start_value = panel.value_at_playhead(key)
    low, high = slider.low, slider.high
    targets = start_value + 0.4 * (high - low) * np.sin(np.linspace(0.0, 2.0 * np.pi, moves))
    edits = [0]

    def count(event) -> None:
        edits[0] += 1

    panel.project.events.changed.connect(count)
    begin = time.perf_counter()
    _send_mouse(slider, QEvent.MouseButtonPress, slider.handle_center(), Qt.LeftButton)
    for target in targets:
        tick = time.perf_counter()
        _send_mouse(slider, QEvent.MouseMove, slider.point_for(float(np.clip(target, low, high))), Qt.LeftButton)
        while (time.perf_counter() - tick) * 1000.0 < interval_ms:
            QCoreApplication.processEvents(QEventLoop.AllEvents, 1)
    _send_mouse(slider, QEvent.MouseButtonRelease, slider.point_for(float(np.clip(targets[-1], low, high))),
                Qt.NoButton)
    QApplication.processEvents()
    seconds = time.perf_counter() - begin
    panel.project.events.changed.disconnect(count)
    result = {"moves": moves, "seconds": seconds, "edits": edits[0],
              "undo_steps": len(panel.project.undo_stack) - steps, "undo_index_delta":
              panel.project.undo_stack.index - index}
    if viewport is not None:
        shown = viewport.renders - renders
        result.update(renders=shown, preview_fps=shown / seconds)
    return result


def _send_mouse(widget: QWidget, kind, pos: QPointF, buttons) -> None:
    button = Qt.LeftButton if kind != QEvent.MouseMove else Qt.NoButton
    event = QMouseEvent(kind, QPointF(pos), widget.mapToGlobal(QPointF(pos)), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(widget, event)

