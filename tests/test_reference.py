"""Reference phone readers: every format written here by the test, every bad-file path.

TextGrids (long and short text formats, UTF-8 and UTF-16), HTS/HTK labels (mono, full-context,
seconds), festival xlabel and flite ``-psdur`` segments (from real flite output), espeak-ng
events, and our JSON; ARPAbet, TIMIT and IPA labels.
"""

import json

import pytest

from studio.audio.phones import SILENCE, Phone
from studio.audio.reference import (
    PhoneFileError,
    phones_from_events,
    phones_from_synthesis,
    read_htk_labels,
    read_phones_json,
    read_reference,
    read_segments,
    read_textgrid,
    textgrid_tiers,
    write_phones_json,
)
from studio.audio.synth import synthesize_espeak, synthesize_flite

PAPA = [("sil", 0.0, 0.1), ("P", 0.1, 0.2), ("AA1", 0.2, 0.4), ("P", 0.4, 0.5), ("AH0", 0.5, 0.7), ("", 0.7, 1.2)]
EXPECTED = [Phone(SILENCE, 0.0, 0.1), Phone("P", 0.1, 0.2), Phone("AA", 0.2, 0.4, 1), Phone("P", 0.4, 0.5),
            Phone("AH", 0.5, 0.7), Phone(SILENCE, 0.7, 1.2)]


def _long_textgrid(tiers, xmax=1.2):
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ", f"xmax = {xmax} ",
           "tiers? <exists> ", f"size = {len(tiers)} ", "item []: "]
    for k, (name, rows) in enumerate(tiers, start=1):
        out += [f"    item [{k}]:", '        class = "IntervalTier" ', f'        name = "{name}" ',
                "        xmin = 0 ", f"        xmax = {xmax} ", f"        intervals: size = {len(rows)} "]
        for j, (label, a, b) in enumerate(rows, start=1):
            escaped = label.replace('"', '""')
            out += [f"        intervals [{j}]:", f"            xmin = {a} ", f"            xmax = {b} ",
                    f'            text = "{escaped}" ']
    return "\n".join(out) + "\n"


def _short_textgrid(tiers, xmax=1.2, points=None):
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "0", str(xmax), "<exists>",
           str(len(tiers) + (1 if points else 0))]
    if points:
        out += ['"TextTier"', '"events"', "0", str(xmax), str(len(points))]
        for t, mark in points:
            out += [str(t), f'"{mark}"']
    for name, rows in tiers:
        out += ['"IntervalTier"', f'"{name}"', "0", str(xmax), str(len(rows))]
        for label, a, b in rows:
            escaped = label.replace('"', '""')
            out += [str(a), str(b), f'"{escaped}"']
    return "\n".join(out) + "\n"


WORDS = [("", 0.0, 0.1), ('papa "quoted"', 0.1, 0.7), ("", 0.7, 1.2)]
PHONE_ROWS = [(label, a, b) for label, a, b in PAPA]


def test_textgrid_long_format_picks_the_phone_tier(tmp_path):
    path = tmp_path / "a.TextGrid"
    path.write_text(_long_textgrid([("words", WORDS), ("phones", PHONE_ROWS)]), encoding="utf-8")
    assert read_textgrid(path) == EXPECTED
    assert read_reference(path) == EXPECTED


def test_textgrid_short_format_utf16_with_a_point_tier(tmp_path):
    path = tmp_path / "b.TextGrid"
    path.write_text(_short_textgrid([("segs", PHONE_ROWS)], points=[(0.5, "click")]), encoding="utf-16")
    assert read_textgrid(path) == EXPECTED  # the only interval tier


def test_textgrid_tiers_as_written_in_both_formats(tmp_path):
    """Every interval tier, labels as written (words too), the same from the long and the short
    format; point tiers skipped."""
    long, short = tmp_path / "long.TextGrid", tmp_path / "short.TextGrid"
    long.write_text(_long_textgrid([("words", WORDS), ("phones", PHONE_ROWS)]), encoding="utf-8")
    short.write_text(_short_textgrid([("words", WORDS), ("phones", PHONE_ROWS)], points=[(0.5, "x")]),
                     encoding="utf-8")
    for path in (long, short):
        tiers = textgrid_tiers(path)
        assert [name for name, _ in tiers] == ["words", "phones"]
        assert [(label, a, b) for a, b, label, _ in tiers[0][1]] == WORDS
        assert [(label, a, b) for a, b, label, _ in tiers[1][1]] == PHONE_ROWS


def test_textgrid_tier_by_name_and_ipa_labels(tmp_path):
    ipa = [("m", 0.0, 0.2), ("aː", 0.2, 0.5), ("ʔ", 0.5, 0.6), ("aɪə", 0.6, 0.9), ("ʃ", 0.9, 1.0), ("sil", 1.0, 1.2)]
    path = tmp_path / "c.TextGrid"
    path.write_text(_long_textgrid([("words", WORDS), ("MFA", ipa)]), encoding="utf-8")
    phones = read_textgrid(path, tier="mfa")
    assert [(p.label, round(p.start, 3), round(p.end, 3)) for p in phones] == [
        ("M", 0.0, 0.2), ("AA", 0.2, 0.6), ("AY", 0.6, 0.75), ("AH", 0.75, 0.9), ("SH", 0.9, 1.0),
        (SILENCE, 1.0, 1.2)]


def test_textgrid_without_a_phone_tier_name_asks_for_one(tmp_path):
    path = tmp_path / "d.TextGrid"
    path.write_text(_long_textgrid([("words", WORDS), ("tier2", PHONE_ROWS)]), encoding="utf-8")
    with pytest.raises(PhoneFileError, match=r"which tier.*'words', 'tier2'"):
        read_textgrid(path)
    with pytest.raises(PhoneFileError, match="no interval tier named 'nope'"):
        read_textgrid(path, tier="nope")


@pytest.mark.parametrize("damage, message", [
    (lambda t: t[: t.index("intervals [4]")], "ends early"),
    (lambda t: t.replace('text = "AA1"', 'text = "XQ9"'), r":\d+: label 'XQ9'"),
    (lambda t: t.replace("xmin = 0.4 ", "xmin = 0.3 "), r":\d+: 'P' starts at 0.3000 s, before"),
    (lambda t: t.replace('Object class = "TextGrid"', 'Object class = "Pitch"'), "not a Praat TextGrid"),
    (lambda t: "", "file is empty"),
])
def test_bad_textgrids_name_file_and_line(tmp_path, damage, message):
    path = tmp_path / "bad.TextGrid"
    path.write_text(damage(_long_textgrid([("phones", PHONE_ROWS)])), encoding="utf-8")
    with pytest.raises(PhoneFileError, match=message) as info:
        read_textgrid(path)
    assert str(path) in str(info.value)


def test_bad_label_line_number_is_right(tmp_path):
    text = _long_textgrid([("phones", PHONE_ROWS)]).replace('text = "AA1"', 'text = "XQ9"')
    path = tmp_path / "line.TextGrid"
    path.write_text(text, encoding="utf-8")
    line = next(i for i, row in enumerate(text.splitlines(), start=1) if '"XQ9"' in row)
    with pytest.raises(PhoneFileError, match=rf"line.TextGrid:{line - 2}:"):  # the interval's xmin line
        read_textgrid(path)


def test_htk_mono_labels_in_100ns(tmp_path):
    path = tmp_path / "a.lab"
    path.write_text("".join(f"{round(a * 1e7)} {round(b * 1e7)} {label.lower() or 'pau'}\n"
                            for label, a, b in PAPA), encoding="utf-8")
    assert read_htk_labels(path) == EXPECTED
    assert read_reference(path) == EXPECTED


def test_hts_full_context_labels(tmp_path):
    names = ["sil", "p", "aa", "p", "ax", "sil"]
    lines = []
    for k, (_, a, b) in enumerate(PAPA):
        left2, left = names[max(0, k - 2)], names[max(0, k - 1)]
        right, right2 = names[min(5, k + 1)], names[min(5, k + 2)]
        lines.append(f"{round(a * 1e7)} {round(b * 1e7)} {left2}^{left}-{names[k]}+{right}={right2}"
                     f"@1_2/A:0_0_0/B:1-1-2@1-2&1-2#1-1$1-1!0-0;0-0|0/C:0+0+0/D:0_0/E:content+2@1+1&1+1#0+0")
    path = tmp_path / "full.lab"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    phones = read_htk_labels(path)
    assert [p.label for p in phones] == [p.label for p in EXPECTED]
    assert [p.end for p in phones] == pytest.approx([p.end for p in EXPECTED])


def test_htk_seconds_timit_closures_and_gaps(tmp_path):
    path = tmp_path / "timit.txt"
    path.write_text("0.0\t0.1\th#\n0.1\t0.15\tpcl\n0.15\t0.2\tp\n0.2\t0.4\tae\n0.45\t0.5\tdx\n"
                    "0.5\t0.6\tix\n0.6\t0.7\tq\n0.7\t0.8\th#\n", encoding="utf-8")
    phones = read_htk_labels(path)
    assert [(p.label, p.start, p.end) for p in phones] == [
        (SILENCE, 0.0, 0.1), ("P", 0.1, 0.2), ("AE", 0.2, 0.4), (SILENCE, 0.4, 0.45), ("D", 0.45, 0.5),
        ("IH", 0.5, 0.7), (SILENCE, 0.7, 0.8)]


@pytest.mark.parametrize("text, message", [
    ("sil\np\naa\n", r"a.lab:1: label without times"),
    ("0 1000000 sil\n500000 2000000 p\n", r"a.lab:2: 'p' starts at 0.0500 s, before"),
    ("0 1000000 sil\n1000000 2000000 p!x\n", r"a.lab:2: label 'p!x'"),
    ("0 1000000\n", r"a.lab:1: a line of times without a label"),
    ("2000000 1000000 sil\n", r"a.lab:1: bad time span"),
])
def test_bad_htk_labels(tmp_path, text, message):
    path = tmp_path / "a.lab"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PhoneFileError, match=message):
        read_htk_labels(path)


def test_flite_psdur_segments_from_real_flite(tmp_path):
    speech = synthesize_flite("Bob paid for the map.", "slt")
    # the same segments flite printed, as a file
    ends = []
    for k, (label, start) in enumerate(speech.events):
        end = speech.events[k + 1][1] if k + 1 < len(speech.events) else speech.phones[-1].end
        ends.append(f"{label}:{end:.3f}")
    path = tmp_path / "bob.psdur"
    path.write_text(" ".join(ends) + "\n", encoding="utf-8")
    phones = read_segments(path)
    assert [p.label for p in phones] == [p.label for p in speech.phones]
    assert [p.start for p in phones] == pytest.approx([p.start for p in speech.phones], abs=1e-3)


def test_festival_xlabel_segments(tmp_path):
    path = tmp_path / "a.segs"
    path.write_text("separator ;\nnfields 1\n#\n0.100 26 pau\n0.200 26 p\n0.400 26 aa\n0.500 26 p\n"
                    "0.700 26 ax\n1.200 26 pau\n", encoding="utf-8")
    assert [(p.label, p.start, p.end) for p in read_reference(path)] == [
        (p.label, p.start, p.end) for p in EXPECTED]
    bad = tmp_path / "b.segs"
    bad.write_text("#\n0.1 26 pau\nzero 26 p\n", encoding="utf-8")
    with pytest.raises(PhoneFileError, match=r"b.segs:3: expected 'end_time colour label'"):
        read_segments(bad)


def test_espeak_events_and_synthesis(tmp_path):
    speech = synthesize_espeak("Maybe a big map.", "en-us")
    assert phones_from_synthesis(speech) == speech.phones
    raw = phones_from_events(speech.events, speech.duration, "espeak")
    spoken = [p.label for p in raw if p.label != SILENCE]
    assert spoken == [p.label for p in speech.phones if p.label != SILENCE]
    # the raw events put each P's closure in the phone before it; the synthesis phones do not
    raw_p = [p for p in raw if p.label == "P"]
    fixed_p = [p for p in speech.phones if p.label == "P"]
    assert all(f.start < r.start for f, r in zip(fixed_p, raw_p))


def test_json_round_trip_with_metadata(tmp_path):
    path = write_phones_json(EXPECTED, tmp_path / "a.json", text="papa", voice="en-us")
    assert read_phones_json(path) == EXPECTED
    assert read_reference(path) == EXPECTED
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["text"] == "papa" and data["voice"] == "en-us" and len(data["phones"]) == 6
    speech = synthesize_espeak("Bob met my mom.", "en-us")
    path = write_phones_json(speech.phones, tmp_path / "b.json")
    back = read_phones_json(path)  # times are written to the microsecond
    assert [(p.label, p.stress) for p in back] == [(p.label, p.stress) for p in speech.phones]
    assert [p.start for p in back] == pytest.approx([p.start for p in speech.phones], abs=1e-6)
    assert back[-1].end == pytest.approx(speech.duration, abs=1e-6)


@pytest.mark.parametrize("text, message", [
    ("{not json", r"bad.json:1: not JSON"),
    ('{"segments": []}', r'no "phones" list'),
    ('{"phones": [\n {"label": "P", "start": 0, "end": 0.1},\n {"label": "P", "start": 0.1}\n]}',
     r"bad.json:3: phones\[1\] needs label, start and end"),
    ('{"phones": [\n {"label": "P", "start": "soon", "end": 0.1}\n]}', r"bad.json:2: phones\[0\] has a non-numeric"),
    ('{"phones": [\n {"label": "P", "start": 0, "end": 0.1},\n {"label": "Q!", "start": 0.1, "end": 0.2}\n]}',
     r"bad.json:3: label 'Q!'"),
])
def test_bad_json(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PhoneFileError, match=message):
        read_phones_json(path)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(PhoneFileError, match="file not found"):
        read_reference(tmp_path / "nope.TextGrid")
    path = tmp_path / "noise.lab"
    path.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(PhoneFileError, match="not UTF-8"):
        read_reference(path)
    with pytest.raises(ValueError):
        write_phones_json([Phone("XX", 0, 1)], tmp_path / "x.json")
