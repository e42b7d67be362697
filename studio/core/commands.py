"""Undo/redo that stays small: every edit is a command holding ``(target, slot, old, new)``.

The project stores its state in *slots* (one F-curve of one layer, the emotion segments, one
channel's limits, …), each holding an immutable value. A :class:`SetSlot` command swaps one slot's
value; ``redo``/``undo`` are one line each. Edits of several slots are a :class:`Macro`. Commands
pushed with the same ``merge_id`` one after another merge into one (a slider drag is one undo
step), keeping the first command's ``old``. ``is_modified`` is ``not is_clean``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Hashable, Protocol

from studio.core.events import EmitterGroup


class SlotTarget(Protocol):
    def _set_slot(self, slot: tuple, value: Any) -> None: ...


@dataclass
class SetSlot:
    target: SlotTarget
    slot: tuple
    old: Any
    new: Any
    text: str
    merge_id: Hashable | None = None

    def redo(self) -> None:
        self.target._set_slot(self.slot, self.new)

    def undo(self) -> None:
        self.target._set_slot(self.slot, self.old)


@dataclass
class Macro:
    text: str
    commands: list = field(default_factory=list)
    merge_id: Hashable | None = None

    def redo(self) -> None:
        for command in self.commands:
            command.redo()

    def undo(self) -> None:
        for command in reversed(self.commands):
            command.undo()


class UndoStack:
    """A linear history with a clean mark. Commands are applied when pushed."""

    def __init__(self, limit: int = 1000):
        self.limit = limit
        self._commands: list = []
        self._index = 0  # commands[:index] are applied
        self._clean: int | None = 0
        self._macros: list[Macro] = []
        self.events = EmitterGroup(self, ("index", "clean"))

    # --- pushing -----------------------------------------------------------------------------
    def push(self, command) -> None:
        """Apply ``command`` and record it (inside a macro: add it to the macro)."""
        command.redo()
        if self._macros:
            self._macros[-1].commands.append(command)
            return
        if self._try_merge(command):
            return
        was_clean = self.is_clean
        del self._commands[self._index:]
        if self._clean is not None and self._clean > self._index:
            self._clean = None  # the clean state was in the discarded redo branch
        self._commands.append(command)
        self._index += 1
        if len(self._commands) > self.limit:
            drop = len(self._commands) - self.limit
            del self._commands[:drop]
            self._index -= drop
            self._clean = None if self._clean is None or self._clean < drop else self._clean - drop
        self._changed(was_clean)

    def _try_merge(self, command) -> bool:
        merge_id = getattr(command, "merge_id", None)
        if merge_id is None or self._index == 0 or self._index != len(self._commands):
            return False
        top = self._commands[self._index - 1]
        if getattr(top, "merge_id", None) != merge_id or not isinstance(top, SetSlot) \
                or not isinstance(command, SetSlot) or top.slot != command.slot:
            return False
        was_clean = self.is_clean
        top.new = command.new
        if self._clean == self._index:
            self._clean = None  # merged into the saved state: it no longer matches the file
        self._changed(was_clean)
        return True

    @contextmanager
    def macro(self, text: str):
        """Group every command pushed inside the block into one undo step."""
        macro = Macro(text)
        self._macros.append(macro)
        try:
            yield macro
        except BaseException:
            self._macros.pop()
            macro.undo()  # leave the target as it was before the failed edit
            raise
        self._macros.pop()
        if not macro.commands:
            return
        if self._macros:
            self._macros[-1].commands.append(macro)
            return
        # Already applied: record without redoing.
        was_clean = self.is_clean
        del self._commands[self._index:]
        if self._clean is not None and self._clean > self._index:
            self._clean = None
        self._commands.append(macro)
        self._index += 1
        self._changed(was_clean)

    # --- history -----------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return self._index > 0 and not self._macros

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands) and not self._macros

    @property
    def undo_text(self) -> str:
        return self._commands[self._index - 1].text if self.can_undo else ""

    @property
    def redo_text(self) -> str:
        return self._commands[self._index].text if self.can_redo else ""

    def undo(self) -> None:
        if not self.can_undo:
            return
        was_clean = self.is_clean
        self._index -= 1
        self._commands[self._index].undo()
        self._changed(was_clean)

    def redo(self) -> None:
        if not self.can_redo:
            return
        was_clean = self.is_clean
        self._commands[self._index].redo()
        self._index += 1
        self._changed(was_clean)

    def clear(self) -> None:
        self._commands.clear()
        self._index = 0
        self._clean = 0
        self.events.index.emit(index=0)

    def __len__(self) -> int:
        return len(self._commands)

    @property
    def index(self) -> int:
        return self._index

    # --- clean state -------------------------------------------------------------------------
    @property
    def is_clean(self) -> bool:
        return self._clean == self._index

    def set_clean(self) -> None:
        was_clean = self.is_clean
        self._clean = self._index
        if not was_clean:
            self.events.clean.emit(clean=True)

    def reset_clean(self) -> None:
        """Leave the clean state with no clean point in the history (a document recovered from an
        autosave differs from every saved file): modified until the next save."""
        was_clean = self.is_clean
        self._clean = None
        if was_clean:
            self.events.clean.emit(clean=False)

    def _changed(self, was_clean: bool) -> None:
        self.events.index.emit(index=self._index)
        if was_clean != self.is_clean:
            self.events.clean.emit(clean=self.is_clean)
