"""The phone vocabulary every audio stage speaks: timed phones, label normalization, visemes.

One phone set travels between the stages: **ARPAbet** (the 39 phones of the CMU dictionary, which
is also pocketsphinx's en-us set and flite's) plus ``SIL`` for silence and non-speech. Every
source of phones is normalized to it here:

* pocketsphinx labels (``AH``, ``SIL``, fillers such as ``+NSN+``),
* flite / festival / HTS labels (lower-case ARPAbet, ``pau``, ``h#``, ``sp``),
* espeak-ng's IPA output for any language, through :func:`ipa_to_arpabet`, which maps each IPA
  segment to the ARPAbet phone that looks the same on the lips (a German ``ʏ`` is rounded like
  ``UW``; a Spanish ``β`` is labiodental-looking ``V``, not a closure).

The **viseme table** (:data:`VISEME_OF`) groups phones by what the mouth does, following the 15
visemes of the widely used Oculus/Meta lip-sync set. Diphthongs have a second, glide viseme
(:data:`GLIDE_VISEME_OF`): ``AY`` opens like ``aa`` and closes toward ``ih``. The rig gives each
viseme a mouth shape; the lip-sync evaluation uses :data:`BILABIALS` and :data:`OPEN_VOWELS`.

=========  ====================  ===========================================================
viseme     phones                mouth
=========  ====================  ===========================================================
``sil``    SIL                   rest, lips lightly together, jaw relaxed
``PP``     P B M                 lips pressed closed (guaranteed closure)
``FF``     F V                   lower lip tucked up against the upper teeth
``TH``     TH DH                 tongue tip between the teeth, jaw slightly open
``DD``     T D                   tongue on the alveolar ridge, small opening
``kk``     K G NG                back of the tongue raised, medium opening
``CH``     CH JH SH ZH           lips pushed forward (flared), teeth close
``SS``     S Z                   teeth almost closed, lips spread a little
``nn``     N L                   small opening, relaxed lips
``RR``     R ER                  slight rounding, small opening
``aa``     AA AE AH (AY AW)      jaw wide open
``E``      EH EY                 mid-open, lips spread
``ih``     IH IY Y               narrow opening, lips spread wide
``oh``     AO OW OY              open and rounded
``ou``     UW UH W               small rounded opening, lips protruded
=========  ====================  ===========================================================

``HH`` has no shape of its own: it takes the shape of the vowel that follows (its viseme is
``None`` and the rig gives it almost no dominance).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SILENCE = "SIL"

#: The 39 ARPAbet phones of the CMU pronouncing dictionary (no stress digits) plus SIL.
PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH",
    "UW", "V", "W", "Y", "Z", "ZH", SILENCE,
)
VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY",
                    "UH", "UW"})

VISEMES: tuple[str, ...] = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E",
                            "ih", "oh", "ou")

VISEME_OF: dict[str, str | None] = {
    SILENCE: "sil",
    "P": "PP", "B": "PP", "M": "PP",
    "F": "FF", "V": "FF",
    "TH": "TH", "DH": "TH",
    "T": "DD", "D": "DD",
    "K": "kk", "G": "kk", "NG": "kk",
    "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH",
    "S": "SS", "Z": "SS",
    "N": "nn", "L": "nn",
    "R": "RR", "ER": "RR",
    "AA": "aa", "AE": "aa", "AH": "aa", "AY": "aa", "AW": "aa",
    "EH": "E", "EY": "E",
    "IH": "ih", "IY": "ih", "Y": "ih",
    "AO": "oh", "OW": "oh", "OY": "oh",
    "UW": "ou", "UH": "ou", "W": "ou",
    "HH": None,
}

#: Diphthongs end on a second viseme (the glide), reached over the last part of the phone.
GLIDE_VISEME_OF: dict[str, str] = {"AY": "ih", "AW": "ou", "OY": "ih", "EY": "ih", "OW": "ou"}

#: Phones during which the lips must close.
BILABIALS = frozenset({"P", "B", "M"})
#: Vowels with the jaw clearly open: lips closed during one of these is a false closure.
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "OW"})

assert set(VISEME_OF) == set(PHONES)


@dataclass(frozen=True)
class Phone:
    """One phone with its time span in seconds. ``label`` is ARPAbet (see :data:`PHONES`).

    ``stress`` is 1 for a primary-stressed vowel, 2 for secondary, 0 for unstressed or unknown
    (recognized phones carry no stress; transcripts and synthesizers do).
    """

    label: str
    start: float
    end: float
    stress: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def viseme(self) -> str | None:
        return VISEME_OF[self.label]


# --- labels from other tools -------------------------------------------------------------------

_SILENCE_LABELS = {"sil", "pau", "h#", "sp", "spn", "sil0", "#", "_", "", "<sil>", "<s>", "</s>",
                   "silence", "noise", "nsn", "spn", "br", "brth", "cg", "ls", "lg", "sh_"}


def normalize_label(label: str) -> str:
    """ARPAbet label of a phone written by pocketsphinx, flite, festival, HTS or a TextGrid.

    Stress digits are dropped, case is ignored, every silence/filler/noise spelling becomes
    ``SIL``. Anything else that is not ARPAbet raises ``ValueError`` naming the label.
    """
    text = label.strip()
    core = text.strip("+").lower()
    if core in _SILENCE_LABELS or text.startswith("+") or text.startswith("["):
        return SILENCE
    upper = re.sub(r"[012]$", "", text.upper())
    if upper in VISEME_OF:
        return upper
    if upper == "AX":  # TIMIT/festival schwa
        return "AH"
    if upper == "AXR":
        return "ER"
    if upper in ("DX", "NX"):  # flaps
        return "D" if upper == "DX" else "N"
    if upper == "EM":
        return "M"
    if upper == "EN":
        return "N"
    if upper == "EL":
        return "L"
    if upper == "IX":
        return "IH"
    if upper == "UX":
        return "UW"
    raise ValueError(f"not an ARPAbet phone: {label!r}")


def stress_of(label: str) -> int:
    """Stress digit of an ARPAbet label (``AH1`` → 1), 0 when there is none."""
    m = re.search(r"([012])$", label.strip())
    return int(m.group(1)) if m else 0


# --- IPA (espeak-ng, any language) -------------------------------------------------------------

# IPA segment → ARPAbet phone(s), chosen by what the lips and jaw do. Longest segments first
# when tokenizing (affricates and diphthongs before their parts). Combining marks (nasalization,
# syllabicity, dental, …), length marks and tie bars are stripped before lookup.
_IPA: dict[str, tuple[str, ...]] = {
    # diphthongs
    "aɪ": ("AY",), "aj": ("AY",), "ʌɪ": ("AY",), "ɑɪ": ("AY",), "aʊ": ("AW",), "aw": ("AW",),
    "ɑʊ": ("AW",), "ɔɪ": ("OY",), "oɪ": ("OY",), "ɔj": ("OY",), "eɪ": ("EY",), "ej": ("EY",),
    "oʊ": ("OW",), "əʊ": ("OW",), "ow": ("OW",), "ɪə": ("IH", "AH"), "eə": ("EH", "AH"),
    "ʊə": ("UH", "AH"), "aɪə": ("AY", "AH"), "aʊə": ("AW", "AH"), "ɛɪ": ("EY",), "œy": ("OY",),
    "ɔø": ("OY",), "ɔʏ": ("OY",), "ai": ("AY",), "au": ("AW",), "ei": ("EY",), "oi": ("OY",),
    "ou": ("OW",), "eu": ("EH", "UW"),
    # affricates
    "tʃ": ("CH",), "dʒ": ("JH",), "tɕ": ("CH",), "dʑ": ("JH",), "ʈʂ": ("CH",), "ɖʐ": ("JH",),
    "ts": ("T", "S"), "dz": ("D", "Z"), "pf": ("P", "F"),
    # vowels
    "i": ("IY",), "ɪ": ("IH",), "e": ("EY",), "ɛ": ("EH",), "æ": ("AE",), "a": ("AA",),
    "ɑ": ("AA",), "ɒ": ("AO",), "ɔ": ("AO",), "o": ("OW",), "ʊ": ("UH",), "u": ("UW",),
    "ʌ": ("AH",), "ə": ("AH",), "ɐ": ("AH",), "ɜ": ("ER",), "ɚ": ("ER",), "ɝ": ("ER",),
    "ɘ": ("AH",), "ɵ": ("OW",), "ɞ": ("AO",), "y": ("UW",), "ʏ": ("UH",), "ø": ("OW",),
    "œ": ("AO",), "ɶ": ("AO",), "ɨ": ("IH",), "ʉ": ("UW",), "ɯ": ("UH",), "ɤ": ("AH",),
    "ᵻ": ("IH",), "ɑ̃": ("AA",), "ɛ̃": ("EH",), "ɔ̃": ("AO",), "œ̃": ("AO",),
    # consonants
    "p": ("P",), "b": ("B",), "m": ("M",), "ɱ": ("V",), "f": ("F",), "v": ("V",), "ɸ": ("F",),
    "β": ("V",), "ʋ": ("V",), "θ": ("TH",), "ð": ("DH",), "t": ("T",), "d": ("D",), "n": ("N",),
    "l": ("L",), "ɫ": ("L",), "ɬ": ("L",), "ɮ": ("L",), "s": ("S",), "z": ("Z",), "ʃ": ("SH",),
    "ʒ": ("ZH",), "ɕ": ("SH",), "ʑ": ("ZH",), "ʂ": ("SH",), "ʐ": ("ZH",), "k": ("K",),
    "g": ("G",), "ɡ": ("G",), "ŋ": ("NG",), "c": ("K",), "ɟ": ("G",), "q": ("K",), "ɢ": ("G",),
    "x": ("HH",), "ɣ": ("G",), "χ": ("HH",), "ʁ": ("R",), "ʀ": ("R",), "r": ("R",), "ɾ": ("D",),
    "ɹ": ("R",), "ɻ": ("R",), "ɽ": ("D",), "h": ("HH",), "ɦ": ("HH",), "ç": ("HH",), "ʝ": ("Y",),
    "j": ("Y",), "w": ("W",), "ʍ": ("W",), "ɥ": ("W",), "ɲ": ("N",), "ɳ": ("N",), "ʎ": ("L",),
    "ɭ": ("L",), "ʈ": ("T",), "ɖ": ("D",), "ɰ": ("W",), "ħ": ("HH",), "ʕ": ("HH",),
    "ʔ": (), "ʕ̞": (),
}
_IPA_MAX = max(len(k) for k in _IPA)
_IPA_IGNORED = set("ˈˌːˑ.|‖‿ ͜͡-_'") | {"ʰ", "ʲ", "ʷ", "ˠ", "ˤ", "ⁿ", "ˡ", "ʼ", ":"}  # ":" is espeak-ng's ASCII length mark


def _strip_ipa(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    kept = [ch for ch in decomposed if not unicodedata.combining(ch) and ch not in _IPA_IGNORED]
    return unicodedata.normalize("NFC", "".join(kept))


def ipa_to_arpabet(ipa: str) -> list[str]:
    """ARPAbet phones for an IPA string (one phone, a word, or a phrase).

    Tokenizes greedily, longest known segment first; stress, length and most diacritics are
    ignored; a glottal stop maps to nothing. An unknown symbol raises ``ValueError`` naming it.
    """
    text = _strip_ipa(ipa)
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        for size in range(min(_IPA_MAX, len(text) - i), 0, -1):
            seg = text[i:i + size]
            if seg in _IPA:
                out.extend(_IPA[seg])
                i += size
                break
        else:
            raise ValueError(f"unknown IPA symbol {text[i]!r} (U+{ord(text[i]):04X}) in {ipa!r}")
    return out


def ipa_stress(ipa: str) -> int:
    """1 when an IPA phone/syllable string carries a primary stress mark, 2 for secondary."""
    if "ˈ" in ipa:
        return 1
    if "ˌ" in ipa:
        return 2
    return 0


# --- sequences ---------------------------------------------------------------------------------

def merge_silences(phones: Iterable[Phone]) -> list[Phone]:
    """Adjacent ``SIL`` phones joined into one; zero-length phones dropped; order kept."""
    out: list[Phone] = []
    for p in phones:
        if p.end <= p.start:
            continue
        if out and p.label == SILENCE and out[-1].label == SILENCE:
            out[-1] = Phone(SILENCE, out[-1].start, p.end)
        else:
            out.append(p)
    return out


def validate_phones(phones: Sequence[Phone], what: str = "phones") -> None:
    """Raise ``ValueError`` unless labels are ARPAbet and spans are ordered and non-negative."""
    previous_end = 0.0
    for i, p in enumerate(phones):
        if p.label not in VISEME_OF:
            raise ValueError(f"{what}[{i}]: {p.label!r} is not an ARPAbet phone")
        if not (p.start >= 0 and p.end >= p.start):
            raise ValueError(f"{what}[{i}]: bad span {p.start}…{p.end}")
        if p.start < previous_end - 1e-6:
            raise ValueError(f"{what}[{i}]: starts at {p.start} before the previous end {previous_end}")
        previous_end = p.end
