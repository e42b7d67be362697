"""Reference phone timings from files: Praat TextGrids, HTS/HTK labels, festival/flite segments, JSON.

A *reference* is the phone sequence we trust for a recording (a synthesizer's own timings, a
forced alignment, a hand-labelled corpus); the lip-sync evaluation and the corpora compare
against it. Every reader returns one ``list[Phone]``: ARPAbet labels (see
:mod:`studio.audio.phones`), times in seconds, ordered, contiguous (gaps become ``SIL``, adjacent
silences are merged), validated.

Labels are detected per file: if every label is ARPAbet or TIMIT-style (``AH1``, ``ax``, ``pau``,
``pcl``, ``dx``, ``h#``…) they are read as such; otherwise the file is IPA (``ʃ``, ``aː``, ``ɑ̃``…)
and each label goes through :func:`~studio.audio.phones.ipa_to_arpabet` (an IPA label that is
several ARPAbet phones is split evenly; a glottal stop joins the phone before it). TIMIT closures
(``pcl``) merge with their release (``p``) into one stop.

Anything wrong raises :class:`PhoneFileError` (a ``ValueError``) naming the file, the line and
the problem.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from studio.audio.phones import (
    SILENCE,
    Phone,
    ipa_stress,
    ipa_to_arpabet,
    merge_silences,
    normalize_label,
    stress_of,
    validate_phones,
)

__all__ = [
    "PhoneFileError",
    "phones_from_events",
    "phones_from_synthesis",
    "read_htk_labels",
    "read_phones_json",
    "read_reference",
    "read_segments",
    "read_textgrid",
    "textgrid_tiers",
    "textgrid_words",
    "write_phones_json",
]

#: Tier names a TextGrid's phone tier goes by, in order of preference (case-insensitive).
PHONE_TIERS = ("phones", "phone", "phonemes", "phoneme", "segments", "segment", "phns", "phn")

# TIMIT/Buckeye-style labels normalize_label does not know.
_TIMIT = {
    "pcl": "P", "bcl": "B", "tcl": "T", "dcl": "D", "kcl": "K", "gcl": "G", "epi": SILENCE,
    "hv": "HH", "ax-h": "AH", "eng": "NG", "q": "",  # q: a glottal stop, part of the phone before
}
_CLOSURES = {"pcl", "bcl", "tcl", "dcl", "kcl", "gcl"}


class PhoneFileError(ValueError):
    """A phone-timing file that cannot be read; the message names the file, line and problem."""


# --- label normalization -----------------------------------------------------------------------

def _arpabet_or_none(label: str) -> tuple[str, int] | None:
    """(ARPAbet, stress) of an ARPAbet/TIMIT/silence label, ``("", 0)`` for a glottal stop."""
    low = label.strip().lower()
    if low in _TIMIT:
        return _TIMIT[low], 0
    try:
        return normalize_label(label), stress_of(label)
    except ValueError:
        return None


def _is_silence(label: str) -> bool:
    found = _arpabet_or_none(label)
    return found is not None and found[0] == SILENCE


class _Labels:
    """Turns one file's labels into ARPAbet, the file's label kind decided once from all of them."""

    def __init__(self, path: Path, rows: Iterable[tuple[str, int]]):
        others = [(label, line) for label, line in rows if _arpabet_or_none(label) is None]
        for label, line in others:
            try:
                ipa_to_arpabet(label)
            except ValueError as exc:
                raise PhoneFileError(f"{path}:{line}: label {label!r} is neither ARPAbet nor IPA "
                                     f"({exc})") from None
        self.ipa = bool(others)

    def convert(self, label: str) -> list[tuple[str, int]]:
        """``[(ARPAbet, stress), …]``: one phone, several (an IPA diphthong), or none (ʔ)."""
        if _is_silence(label):
            return [(SILENCE, 0)]
        found = _arpabet_or_none(label)
        if self.ipa:
            try:
                phones = ipa_to_arpabet(label)
            except ValueError:
                if found is None:
                    raise
            else:
                stress = ipa_stress(label)
                return [(p, stress if k == 0 else 0) for k, p in enumerate(phones)]
        assert found is not None
        return [found] if found[0] else []


def _build(path: Path, rows: Sequence[tuple[float, float, str, int]], what: str = "phones") -> list[Phone]:
    """Phones from ``(start, end, label, line)`` rows: labels converted, gaps filled, validated."""
    labels = _Labels(path, [(label, line) for _, _, label, line in rows])
    out: list[Phone] = []
    previous_end = 0.0
    previous_raw = ""
    for start, end, label, line in rows:
        if not (start == start and end == end) or start < 0 or end < start:  # NaN, negative, reversed
            raise PhoneFileError(f"{path}:{line}: bad time span {start}…{end} for {label!r}")
        if start < previous_end - 1e-4:
            raise PhoneFileError(f"{path}:{line}: {label!r} starts at {start:.4f} s, before the "
                                 f"previous phone ends ({previous_end:.4f} s)")
        try:
            converted = labels.convert(label)
        except ValueError as exc:
            raise PhoneFileError(f"{path}:{line}: label {label!r}: {exc}") from None
        if start > previous_end + 1e-3:
            out.append(Phone(SILENCE, previous_end, start))
        start = max(start, previous_end) if out else start
        if not converted:  # a glottal stop: the phone before it lasts longer
            if out:
                out[-1] = Phone(out[-1].label, out[-1].start, end, out[-1].stress)
            else:
                out.append(Phone(SILENCE, start, end))
        elif (previous_raw.lower() in _CLOSURES and out and len(converted) == 1
              and converted[0][0] == out[-1].label and label.lower() not in _CLOSURES):
            out[-1] = Phone(out[-1].label, out[-1].start, end, out[-1].stress)  # pcl + p = P
        else:
            count = len(converted)
            for k, (arpabet, stress) in enumerate(converted):
                a = start + (end - start) * k / count
                b = start + (end - start) * (k + 1) / count
                out.append(Phone(arpabet, a, b, stress))
        previous_end = max(previous_end, end)
        previous_raw = label
    phones = merge_silences(out)
    if not phones:
        raise PhoneFileError(f"{path}: no {what} with a duration")
    try:
        validate_phones(phones, str(path))
    except ValueError as exc:
        raise PhoneFileError(str(exc)) from None
    return phones


def _read_text(path: Path) -> str:
    if not path.exists():
        raise PhoneFileError(f"{path}: file not found")
    if not path.is_file():
        raise PhoneFileError(f"{path}: is not a file")
    data = path.read_bytes()
    if not data.strip():
        raise PhoneFileError(f"{path}: file is empty")
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(codec)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PhoneFileError(f"{path}: is not UTF-8 or UTF-16 text (byte {exc.start})") from None


# --- Praat TextGrid ----------------------------------------------------------------------------

_TG_TOKEN = re.compile(r'"((?:[^"]|"")*)"|(<exists>|<absent>)|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)')
_TG_INDEX = re.compile(r"\[\s*\d*\s*\]")  # "item [1]:", "intervals [3]:" in the long format


def read_textgrid(path: str | os.PathLike, tier: str | None = None) -> list[Phone]:
    """Phones of one interval tier of a Praat TextGrid, long ("ooTextFile") or short format.

    ``tier`` names the tier (case-insensitive); by default the first tier named like
    :data:`PHONE_TIERS`, or the only interval tier. Empty intervals are ``SIL``.
    """
    path = Path(path)
    return _build(path, _choose_tier(path, textgrid_tiers(path), tier))


def textgrid_tiers(path: str | os.PathLike) -> list[tuple[str, list[tuple[float, float, str, int]]]]:
    """Every interval tier of a Praat TextGrid (long or short format) as ``(name, rows)``, a row
    being ``(start, end, label, line)`` with the label as written (words, phones, anything);
    point tiers are skipped. Raises :class:`PhoneFileError` naming the file and line."""
    path = Path(path)
    text = _read_text(path)
    tokens = _textgrid_tokens(path, text)
    pos = 0

    def take(kind: str):
        nonlocal pos
        if pos >= len(tokens):
            raise PhoneFileError(f"{path}: ends early: expected a {kind}")
        value, line = tokens[pos]
        want_str = kind in ("string", "tier class")
        if want_str != isinstance(value, str) or (kind == "flag" and value not in ("<exists>", "<absent>")):
            raise PhoneFileError(f"{path}:{line}: expected a {kind}, found {value!r}")
        pos += 1
        return value, line

    header1, line = take("string")
    header2, _ = take("string")
    if header1 != "ooTextFile" or header2 != "TextGrid":
        raise PhoneFileError(f"{path}:{line}: not a Praat TextGrid (header {header1!r} {header2!r})")
    take("number")
    take("number")
    # "<exists>" is a flag token; _textgrid_tokens marks it as a string
    flag, line = take("string")
    if flag != "<exists>":
        raise PhoneFileError(f"{path}:{line}: the TextGrid has no tiers")
    count, line = take("number")
    tiers: list[tuple[str, list[tuple[float, float, str, int]]]] = []
    for _ in range(int(count)):
        kind, line = take("tier class")
        name, _ = take("string")
        take("number")
        take("number")
        n, n_line = take("number")
        if n < 0 or n != int(n):
            raise PhoneFileError(f"{path}:{n_line}: bad interval count {n}")
        if kind == "IntervalTier":
            rows = []
            for _ in range(int(n)):
                xmin, row_line = take("number")
                xmax, _ = take("number")
                label, _ = take("string")
                rows.append((xmin, xmax, label.strip(), row_line))
            tiers.append((name, rows))
        elif kind == "TextTier":
            for _ in range(int(n)):
                take("number")
                take("string")
        else:
            raise PhoneFileError(f"{path}:{line}: unknown tier class {kind!r}")
    return tiers


def textgrid_words(path: str | os.PathLike, tier: str = "words") -> str:
    """The words of a TextGrid's ``tier`` as one line of text: its non-empty labels in order,
    tags such as ``<sil>`` left out (the transcript of an aligned recording)."""
    return " ".join(label for _, _, label, _ in dict(textgrid_tiers(path)).get(tier, [])
                    if label and not label.startswith("<"))


def _textgrid_tokens(path: Path, text: str) -> list[tuple[object, int]]:
    """(value, line) of every number, string and flag; strings are str, numbers float."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    tokens: list[tuple[object, int]] = []
    # Blank out "[n]" indices and "!" comments (short format) without moving any character.
    cleaned = _TG_INDEX.sub(lambda m: " " * len(m.group()), text)
    for m in _TG_TOKEN.finditer(cleaned):
        line = bisect.bisect_right(starts, m.start())
        if m.group(1) is not None:
            tokens.append((m.group(1).replace('""', '"'), line))
        elif m.group(2) is not None:
            tokens.append((m.group(2), line))
        else:
            # a number that is part of a word ("xmin2", "item2") is not a value
            before = cleaned[m.start() - 1] if m.start() else " "
            if before.isalpha() or before == "_":
                continue
            tokens.append((float(m.group(3)), line))
    if not tokens:
        raise PhoneFileError(f"{path}: not a Praat TextGrid (no values found)")
    return tokens


def _choose_tier(path: Path, tiers, name: str | None):
    names = [n for n, _ in tiers]
    if name is not None:
        for n, rows in tiers:
            if n.lower() == name.lower():
                return rows
        raise PhoneFileError(f"{path}: no interval tier named {name!r} (tiers: {names})")
    for wanted in PHONE_TIERS:
        for n, rows in tiers:
            if n.lower() == wanted:
                return rows
    if len(tiers) == 1:
        return tiers[0][1]
    raise PhoneFileError(f"{path}: which tier holds the phones? none is named like "
                         f"{'/'.join(PHONE_TIERS[:5])}; pass tier= one of {names}")


# --- HTS / HTK labels --------------------------------------------------------------------------

_FULL_CONTEXT = re.compile(r"^[^\^]*\^[^-]*-([^+]+)\+")  # "p1^p2-p3+p4=p5@…" → p3
_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


def read_htk_labels(path: str | os.PathLike) -> list[Phone]:
    """Phones of an HTS/HTK label file: ``start end label`` per line.

    Times are in HTK's 100 ns units when written as integers, in seconds when any time has a
    decimal point (the "lab" files of wavesurfer and Audacity label tracks, tab-separated, read
    the same way). A line with one time is ``end label`` (it starts where the previous ended).
    Mono labels (``a``, ``sil``) and HTS full-context labels (``x^y-ph+z=…``: the centre phone
    ``ph``) are both read. HTK's ``///`` level separators and ``.`` end lines stop the first
    level. A file of labels without times (an HTS input file) has no timing to read and is
    rejected.
    """
    path = Path(path)
    text = _read_text(path)
    raw: list[tuple[list[str], str, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped in ("///", "."):
            break
        fields = stripped.split()
        times = []
        while fields and len(times) < 2 and _NUMBER.match(fields[0]):
            times.append(fields.pop(0))
        if not fields:
            raise PhoneFileError(f"{path}:{number}: a line of times without a label: {stripped!r}")
        raw.append((times, fields[0], number))
    if not raw:
        raise PhoneFileError(f"{path}: no labels")
    untimed = [number for times, _, number in raw if not times]
    if untimed:
        raise PhoneFileError(f"{path}:{untimed[0]}: label without times; label files without "
                             f"times (HTS synthesis input) carry no timing to read")
    seconds = any("." in t or "e" in t.lower() for times, _, _ in raw for t in times)
    divisor = 1.0 if seconds else 1e7
    rows = []
    previous_end = 0.0
    for times, label, number in raw:
        values = [float(t) / divisor for t in times]
        start, end = (values if len(values) == 2 else [previous_end, values[0]])
        rows.append((start, end, _centre_phone(label), number))
        previous_end = end
    return _build(path, rows)


def _centre_phone(label: str) -> str:
    m = _FULL_CONTEXT.match(label)
    return m.group(1) if m else label


# --- festival / flite segments -----------------------------------------------------------------

def read_segments(path: str | os.PathLike) -> list[Phone]:
    """Phones from festival or flite segment output, which give each segment's *end* time.

    * flite ``-psdur``: ``pau:0.193 p:0.271 aa:0.413 …`` (any whitespace between segments);
    * festival ``utt.save.segs`` / ESPS xlabel: a header ending with a ``#`` line, then
      ``end_time  colour  label`` per line.
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    rows = []
    start = 0.0
    if any(line.strip() == "#" for line in lines):
        body = lines.index(next(line for line in lines if line.strip() == "#")) + 1
        for number, line in enumerate(lines[body:], start=body + 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 3 or not _NUMBER.match(fields[0]):
                raise PhoneFileError(f"{path}:{number}: expected 'end_time colour label', got {line.strip()!r}")
            end = float(fields[0])
            rows.append((start, end, fields[2], number))
            start = end
    else:
        for number, line in enumerate(lines, start=1):
            for token in line.split():
                label, sep, end = token.rpartition(":")
                if not sep or not label or not _NUMBER.match(end):
                    raise PhoneFileError(f"{path}:{number}: expected 'label:end_time', got {token!r}")
                rows.append((start, float(end), label, number))
                start = float(end)
    if not rows:
        raise PhoneFileError(f"{path}: no segments")
    return _build(path, rows, "segments")


# --- synthesizer events ------------------------------------------------------------------------

_LANGUAGE_SWITCH = re.compile(r"\([a-z][a-z0-9-]*\)")  # espeak-ng's "(en)": a language change


def phones_from_events(events: Sequence[tuple[str, float]], duration: float,
                       source: str = "events") -> list[Phone]:
    """Phones from ``(symbol, start_s)`` events (IPA or ARPAbet; ``""`` a pause, ``(en)`` a
    language change, skipped); the last one ends at ``duration``. This is the raw reading of a
    synthesizer's events, without the corrections :func:`~studio.audio.synth.synthesize_espeak`
    applies to its ``phones``."""
    path = Path(source)
    events = [(symbol, start) for symbol, start in events if not _LANGUAGE_SWITCH.fullmatch(symbol)]
    rows = []
    for k, (symbol, start) in enumerate(events):
        end = events[k + 1][1] if k + 1 < len(events) else duration
        rows.append((float(start), float(end), symbol, k + 1))
    if rows and rows[0][0] > 0:
        rows.insert(0, (0.0, rows[0][0], "", 0))
    return _build(path, rows, "events")


def phones_from_synthesis(synthesis) -> list[Phone]:
    """The reference phones of a :class:`~studio.audio.synth.Synthesis` (espeak-ng or flite), checked."""
    phones = list(synthesis.phones)
    try:
        validate_phones(phones, f"{synthesis.synthesizer} phones")
    except ValueError as exc:
        raise PhoneFileError(str(exc)) from None
    return phones


# --- JSON --------------------------------------------------------------------------------------

def write_phones_json(phones: Sequence[Phone], path: str | os.PathLike, **meta) -> Path:
    """Write ``{"phones": [{"label", "start", "end", "stress"}, …], **meta}`` (times in s, 6 decimals).

    ``meta`` (text, voice, synthesizer, …) must be JSON-serializable; it is kept alongside.
    """
    path = Path(path)
    validate_phones(phones, str(path))
    if "phones" in meta:
        raise ValueError("meta cannot be named 'phones'")
    head = json.dumps(dict(meta), ensure_ascii=False, indent=1)[:-1].rstrip()  # drop the final "}"
    rows = ",\n".join("  " + json.dumps({"label": p.label, "start": round(p.start, 6), "end": round(p.end, 6),
                                          "stress": int(p.stress)}) for p in phones)
    text = f'{head}{"," if meta else ""}\n "phones": [\n{rows}\n ]\n}}\n'
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def read_phones_json(path: str | os.PathLike) -> list[Phone]:
    """Phones of a JSON file written by :func:`write_phones_json` (labels may be any kind)."""
    path = Path(path)
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PhoneFileError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    items = data.get("phones") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise PhoneFileError(f"{path}: no \"phones\" list at the top level")
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    rows = []
    stresses = []
    for k, item in enumerate(items):
        line = _json_item_line(text, starts, k)
        if not isinstance(item, dict) or not {"label", "start", "end"} <= set(item):
            raise PhoneFileError(f"{path}:{line}: phones[{k}] needs label, start and end: {item!r}")
        try:
            start, end = float(item["start"]), float(item["end"])
        except (TypeError, ValueError):
            raise PhoneFileError(f"{path}:{line}: phones[{k}] has a non-numeric time") from None
        if not isinstance(item["label"], str):
            raise PhoneFileError(f"{path}:{line}: phones[{k}] label is not a string")
        rows.append((start, end, item["label"], line))
        stresses.append(item.get("stress"))
    phones = _build(path, rows)
    # Explicit stress fields win over what the labels say, when labels map one-to-one.
    if len(phones) == len(rows) and all(isinstance(s, int) for s in stresses):
        phones = [Phone(p.label, p.start, p.end, s) for p, s in zip(phones, stresses)]
    return phones


def _json_item_line(text: str, starts: list[int], k: int) -> int:
    """Line of the k-th '"label"' key (good enough to point at the bad entry), else 1."""
    found = -1
    for _ in range(k + 1):
        found = text.find('"label"', found + 1)
        if found < 0:
            return 1
    return bisect.bisect_right(starts, found)


# --- any file ----------------------------------------------------------------------------------

def read_reference(path: str | os.PathLike, *, tier: str | None = None) -> list[Phone]:
    """Phones of a reference file of any supported kind, chosen by extension, else by content.

    ``.TextGrid`` → :func:`read_textgrid`; ``.json`` → :func:`read_phones_json`; ``.lab``,
    ``.label``, ``.htk``, ``.rec``, ``.txt`` → :func:`read_htk_labels`; ``.seg``, ``.segs``,
    ``.psdur`` → :func:`read_segments`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".textgrid":
        return read_textgrid(path, tier)
    if suffix == ".json":
        return read_phones_json(path)
    if suffix in (".seg", ".segs", ".psdur", ".xlabel"):
        return read_segments(path)
    if suffix in (".lab", ".label", ".htk", ".rec", ".txt"):
        return read_htk_labels(path)
    head = _read_text(path)[:200]
    if "ooTextFile" in head:
        return read_textgrid(path, tier)
    if head.lstrip().startswith("{"):
        return read_phones_json(path)
    if re.search(r"\S+:\d", head.split("\n", 1)[0]):
        return read_segments(path)
    return read_htk_labels(path)
