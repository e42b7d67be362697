"""The neural motion generator: rectified flow (flow matching) on the 74-channel motion space.

:class:`MotionFlowModel` predicts, for one *window* of frames at 25 fps, the velocity that carries
Gaussian noise to a motion chunk. A window is ``R`` reference frames followed by ``C`` chunk
frames (defaults 10 + 80, :class:`ModelConfig`):

* **reference frames** — the last ``R`` frames before the chunk, already generated (the previous
  chunk's frames just before the overlap, :mod:`studio.generate.neural.runner`): clean motion that
  the chunk must continue. Where there is none (the first chunk, frames before 0) they are zeros
  and their *role* says "missing".
* **chunk frames** — the motion being generated; frames past the end of the audio are *padding*
  (masked out of attention and of the losses).

Each frame of the window carries its per-frame conditions (EARTalking injects controls frame by
frame, so a control change at frame k acts at frame k):

* the audio inputs (``F`` = :data:`~studio.generate.neural.inputs.NUM_INPUTS` per frame) through
  :class:`AudioEncoder`, a stack of dilated non-causal convolutions (±14 frames of context by
  default) that also reads ``lookahead`` frames of audio past the end of the chunk, so the last
  frames of a chunk hear what comes next as the middle ones do;
* the controls (:func:`encode_controls`, 18 numbers): intensity − 1, the 8 emotion weights, an
  "emotion given" flag, the 4 eye overrides as value + mask (NaN = no override);
* the identity: the canonical keypoints relative to ``MEAN_FACE`` (63, × :data:`IDENTITY_SCALE`);
* the flow time ``t`` (0 = noise, 1 = data).

**Backbone** (JambaTalk's hybrid): blocks of selective state-space layers (Mamba-style: input-
dependent Δ, B, C, a diagonal A of ``state`` decay rates per head whose channels share Δ and A
as in Mamba-2, a causal depthwise convolution, a SiLU gate; :class:`SelectiveSSM`)
interleaved with multi-head self-attention blocks over the window (``blocks``, default ``"SASA"``).
Every block is pre-normalized by an adaptive LayerNorm whose shift, scale and gate come per frame
from the controls + identity (computed once per window) plus the flow time (per sample), so the
per-frame conditioning costs nothing per sampling step (:meth:`MotionFlowModel.encode`).

**The scan** is plain torch, all frames of the window at once (no custom kernels, no sequential
loop): with ``S`` the cumulative sum of the log-decays ``Δ A`` over time (a log-space cumulative
sum), ``y_t = Σ_{s≤t} Σ_n C_{t,n} e^{S_{t,n}} B_{s,n} e^{−S_{s,n}} Δ_s x_s`` — a causal matrix per
head from one matrix product, then one more for ``y``; it exports to ONNX as it is. The per-frame
log-decay is clamped at −1.5 (a state keeps at least 22 % per frame) so the exponentials stay
finite in float32 (:func:`selective_scan`; :func:`selective_scan_reference` is the sequential
definition it equals).

**Training** (:meth:`MotionFlowModel.loss`): ``x_t = (1 − t) ε + t x``, target velocity
``v = x − ε``, in a normalized motion space (per-channel mean/std of the training data, buffers of
the model, so they travel in every checkpoint). Losses: velocity MSE, plus velocity and
acceleration (first and second time differences) of the predicted clean motion
``x̂ = x_t + (1 − t) v̂`` against the target's, the reference frames included where present;
weighted per channel group (:data:`LOSS_GROUPS`: mouth and jaw, the rest of the face, head pose,
eyes) by learned homoscedastic weights ``Σ_g e^{-s_g} L_g + s_g`` (Kendall et al. 2018), which
let the predictable lips weigh more than the stochastic head. Emotion is dropped (weights 0,
flag 0) for a share ``emotion_dropout`` of windows, for classifier-free guidance; the acoustic
inputs are blanked (:func:`drop_acoustic`) for a share ``acoustic_dropout``, so the model also
animates from phones and the rig's prior alone and the runner can weigh how far to trust the
sound of a recording unlike its training voices; and for a share ``mel_augment`` the mel is
warped along its bands, masked in a run of bands and two runs of frames and offset
(:func:`augment_mel`), so no single band or formant position of the synthesizers decides a lip
shape. With ``closure_weight`` above 1 the mouth group's flow loss weighs the frames whose target
lips are closed (the eval's ``CLOSED_GAP``) that much more, which moves the optimum toward closing
where the inputs leave a closure uncertain (a cost on missed p/b/m; 1 by default).

**Mouth residual** (``mouth_residual``, off by default): the model generates the motion *less the
rig's mouth on the phones it is given* (:func:`~studio.generate.neural.inputs.prior_motion`, read
back from the ``rig.*`` input columns), and reads its reference frames the same way; the runner
adds the rig's mouth back. Its default — what it falls back on for a recording unlike its training
voices — is then the rig's answer, and what it learns is the correction: the emotion's mouth, a
bilabial the recognizer missed, a closure it invented. Tried once (with ``mel_augment`` 0.5 and
fewer espeak-ng windows, see the model card): better with a transcript on recorded speech, worse
at closing the lips without one, so the shipped model generates the whole motion.

**Sampling** (:func:`euler`): Euler steps of the flow from seeded noise (:func:`chunk_noise`: the
seed draws all but the mouth's, which starts at the noise's mean by default), optionally guided
on emotion: ``v = v_∅ + g (v_e − v_∅)`` with ``v_∅`` the emotion-dropped velocity (``g = 1``
needs one evaluation per step), and on the sound (:func:`~studio.generate.neural.runner.sample_window`).

**Size.** The default config has 1,181,506 parameters (:func:`parameter_count`). Most of the
per-window work (audio encoder, per-frame conditioning) runs once per chunk; what runs at every
sampling step is kept small (width 96, four blocks), because streaming is sequential — 60 s are
22 chunks × 10 steps = 220 evaluations of a 90-frame window — and must take well under a second
on a 2-core CPU (``bench_neural`` in :mod:`studio.generate.neural.runner` measures it).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from studio.core.document import CONDITION_CHANNELS, EMOTIONS
from studio.core.keypoints import KEYPOINT_REGIONS, MEAN_FACE, NUM_KEYPOINTS
from studio.core.motion import (
    CHANNEL_INDEX,
    CHANNELS,
    EXPRESSION_CHANNELS,
    EYE_CHANNELS,
    NUM_CHANNELS,
    POSE_CHANNELS,
)
from studio.generate.lipsync import CLOSED_GAP
from studio.generate.neural.inputs import (
    ACOUSTIC_CHANNELS,
    ACOUSTIC_FLAG,
    INPUTS_VERSION,
    MEL_BANDS,
)

#: Per-frame controls the network reads (:func:`encode_controls`).
CONTROL_NAMES: tuple[str, ...] = (
    ("intensity", *(f"emotion.{e}" for e in EMOTIONS), "emotion.given")
    + tuple(f"override.{c}" for c in EYE_CHANNELS) + tuple(f"override_set.{c}" for c in EYE_CHANNELS))
NUM_CONTROLS = len(CONTROL_NAMES)
_EMOTION = slice(1, 1 + len(EMOTIONS) + 1)  # the emotion weights and the "given" flag
_OVERRIDES = slice(1 + len(EMOTIONS), len(CONDITION_CHANNELS))
IDENTITY_SCALE = 10.0
#: Roles of the frames of a window (one-hot, :func:`window_roles`).
ROLES = ("reference", "missing", "chunk", "padding")
MAX_LOG_DECAY = 1.5


def _group_channels() -> dict[str, tuple[int, ...]]:
    mouth_points = set(KEYPOINT_REGIONS["lips"]) | set(KEYPOINT_REGIONS["jaw"])
    mouth = [i for i, c in enumerate(EXPRESSION_CHANNELS) if c.split(".")[1] in mouth_points]
    face = [i for i, c in enumerate(EXPRESSION_CHANNELS) if c.split(".")[1] not in mouth_points]
    head = [CHANNEL_INDEX[c] for c in POSE_CHANNELS]
    eyes = [i for i, c in enumerate(CHANNELS) if c.startswith("eye.")]
    return {"mouth": tuple(mouth), "face": tuple(face), "head": tuple(head), "eyes": tuple(eyes)}


#: Channel groups with their own learned loss weight: lips + jaw, the rest of the face, head, eyes.
LOSS_GROUPS: dict[str, tuple[int, ...]] = _group_channels()
assert sorted(i for g in LOSS_GROUPS.values() for i in g) == list(range(NUM_CHANNELS))
_MOUTH = list(LOSS_GROUPS["mouth"])
#: The lips count as closed where the inner-lip gap (upper minus lower lip-centre offset, as
#: :func:`studio.generate.rig.mouth_gap`) is at most the eval's :data:`CLOSED_GAP`.
_LIP_UP, _LIP_LO = CHANNEL_INDEX["exp.lip_upper_center.y"], CHANNEL_INDEX["exp.lip_lower_center.y"]


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a :class:`MotionFlowModel`; stored in every checkpoint."""

    num_inputs: int                 # F, audio inputs per frame
    chunk: int = 80                 # C, frames generated per window
    reference: int = 10             # R, frames of already generated motion before the chunk
    fps: float = 25.0
    width: int = 96
    blocks: str = "SASA"            # S: selective state-space block, A: attention block (+ MLP)
    heads: int = 4
    state: int = 4                  # N, decay rates (state size) per SSM head
    ssm_heads: int = 4              # SSM heads: channels of a head share Δ and A
    expand: int = 2                 # SSM inner width = expand · width
    conv: int = 4                   # causal depthwise convolution of the SSM
    cond_width: int = 96            # per-frame conditioning embedding
    audio_width: int = 192          # the audio encoder's channels
    audio_layers: int = 2           # its residual dilated convolutions (dilation 2, 4, …)
    audio_kernel: int = 5
    lookahead: int = 10             # frames of audio after the chunk the encoder reads
    mlp_ratio: int = 2
    emotion_dropout: float = 0.1    # share of training windows with the emotion dropped (CFG)
    acoustic_dropout: float = 0.15  # share of training windows with the acoustic inputs blanked
    mel_augment: float = 0.0        # share of training windows whose mel is warped and masked
    mouth_residual: bool = False    # generate the motion minus the rig's mouth on the phones (prior_motion)
    inputs_version: int = INPUTS_VERSION  # what the audio inputs mean (studio.generate.neural.inputs)
    velocity_weight: float = 1.0    # weight of the velocity loss on x̂ (first differences)
    acceleration_weight: float = 1.0  # weight of the acceleration loss on x̂ (second differences)
    closure_weight: float = 1.0     # weight of the flow loss of the mouth group on frames whose target lips are closed

    def __post_init__(self):
        if set(self.blocks) - {"S", "A"} or not self.blocks:
            raise ValueError(f"blocks must be a string of S and A, got {self.blocks!r}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if min(self.num_inputs, self.chunk, self.width, self.state, self.expand, self.conv) < 1 or self.reference < 0:
            raise ValueError(f"invalid model config {self}")

    @property
    def window(self) -> int:
        """Frames of a window: reference + chunk (the audio has ``lookahead`` more)."""
        return self.reference + self.chunk

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        # configs from before these keys: inputs version 1, no acoustic dropout, no mel augmentation,
        # the whole motion generated
        return cls(**{"inputs_version": 1, "acoustic_dropout": 0.0, "mel_augment": 0.0, "mouth_residual": False,
                      **data})


# --- conditions ----------------------------------------------------------------------------------

def encode_controls(conditions: np.ndarray) -> np.ndarray:
    """Conditions ``(T, 13)`` of :data:`CONDITION_CHANNELS` → controls ``(T, 18)`` of
    :data:`CONTROL_NAMES`. NaN intensity reads 1, NaN emotion weights 0; NaN overrides are unset."""
    c = np.asarray(conditions, dtype=np.float32)
    if c.ndim != 2 or c.shape[1] != len(CONDITION_CHANNELS):
        raise ValueError(f"conditions must have shape (frames, {len(CONDITION_CHANNELS)}), got {c.shape}")
    out = np.zeros((len(c), NUM_CONTROLS), np.float32)
    out[:, 0] = np.nan_to_num(c[:, 0], nan=1.0) - 1.0
    out[:, 1:1 + len(EMOTIONS)] = np.nan_to_num(c[:, 1:1 + len(EMOTIONS)], nan=0.0)
    out[:, 1 + len(EMOTIONS)] = 1.0
    overrides = c[:, _OVERRIDES]
    given = ~np.isnan(overrides)
    n = overrides.shape[1]
    out[:, 2 + len(EMOTIONS):2 + len(EMOTIONS) + n] = np.where(given, overrides, 0.0)
    out[:, 2 + len(EMOTIONS) + n:] = given
    return out


def drop_emotion(controls):
    """Controls (numpy or torch, ``(…, 18)``) with the emotion dropped: weights and flag 0."""
    out = controls.copy() if isinstance(controls, np.ndarray) else controls.clone()
    out[..., _EMOTION] = 0.0
    return out


def drop_acoustic(audio):
    """Audio inputs (numpy or torch, ``(…, F)``) with the acoustic channels blanked (0, flag 0):
    what the model sees in the windows of its acoustic dropout."""
    out = audio.copy() if isinstance(audio, np.ndarray) else audio.clone()
    out[..., list(ACOUSTIC_CHANNELS)] = 0.0
    return out


#: Mel augmentation (:func:`augment_mel`): the band-index warp range (a vocal tract ~12 % longer
#: or shorter moves formants by about that much), the widest masked run of bands and of frames,
#: and the largest offset of the whole window's mel (a recording's mean estimated off by that).
MEL_WARP = 0.12
MEL_MASK_BANDS = 6
MEL_MASK_FRAMES = 4
MEL_SHIFT = 0.1


def augment_mel(audio: torch.Tensor, share: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment-style training noise on the mel of a share of windows ``(b, T, F)``: the bands
    warped (read at ``i · α``, α within ``1 ± MEL_WARP``, like a longer or shorter vocal tract),
    one run of up to ``MEL_MASK_BANDS`` bands and two runs of up to ``MEL_MASK_FRAMES`` frames set
    to 0 (the speech mean), and the whole mel offset by up to ``± MEL_SHIFT``. Windows whose
    acoustic inputs are blanked stay blank. The other channels are untouched."""
    b, T, _ = audio.shape
    pick = torch.rand(b, generator=generator) < share
    if not bool(pick.any()):
        return audio
    mel = audio[..., :MEL_BANDS]

    def u(n: int) -> torch.Tensor:
        return torch.rand(n, generator=generator)

    alpha = 1.0 + MEL_WARP * (2.0 * u(b) - 1.0)
    where = (torch.arange(MEL_BANDS, dtype=audio.dtype)[None, :] * alpha[:, None]).clamp(0, MEL_BANDS - 1)
    low = where.floor().long()
    high = (low + 1).clamp(max=MEL_BANDS - 1)
    frac = (where - low)[:, None, :]
    warped = (torch.gather(mel, 2, low[:, None, :].expand(b, T, MEL_BANDS)) * (1.0 - frac)
              + torch.gather(mel, 2, high[:, None, :].expand(b, T, MEL_BANDS)) * frac)
    keep = torch.ones(b, T, MEL_BANDS, dtype=audio.dtype)
    bands = torch.arange(MEL_BANDS)[None, :]
    width = (u(b) * (MEL_MASK_BANDS + 1)).long()
    start = (u(b) * (MEL_BANDS - width + 1)).long()
    keep = keep * ~((bands >= start[:, None]) & (bands < (start + width)[:, None]))[:, None, :]
    frames = torch.arange(T)[None, :]
    for _ in range(2):
        width = (u(b) * (MEL_MASK_FRAMES + 1)).long()
        start = (u(b) * (T - width + 1)).long()
        keep = keep * ~((frames >= start[:, None]) & (frames < (start + width)[:, None]))[:, :, None]
    shift = MEL_SHIFT * (2.0 * u(b) - 1.0)
    heard = audio[..., ACOUSTIC_FLAG:ACOUSTIC_FLAG + 1] > 0   # blanked windows keep their zeros
    augmented = torch.where(heard, warped * keep + shift[:, None, None], mel)
    out = audio.clone()
    out[..., :MEL_BANDS] = torch.where(pick[:, None, None], augmented, mel)
    return out


def encode_identity(canonical: np.ndarray | None) -> np.ndarray:
    """Canonical keypoints ``(21, 3)`` (None: the mean face) → the identity vector ``(63,)``."""
    c = MEAN_FACE if canonical is None else np.asarray(canonical, dtype=np.float64)
    if c.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"canonical keypoints must have shape ({NUM_KEYPOINTS}, 3), got {c.shape}")
    return ((c - MEAN_FACE) * IDENTITY_SCALE).reshape(-1).astype(np.float32)


def window_roles(reference_present: np.ndarray, chunk_valid: np.ndarray) -> np.ndarray:
    """One-hot roles ``(…, R + C, 4)`` of :data:`ROLES` from which reference frames exist
    ``(…, R)`` and which chunk frames are real (not padding) ``(…, C)``."""
    ref = np.asarray(reference_present, dtype=bool)
    valid = np.asarray(chunk_valid, dtype=bool)
    index = np.concatenate([np.where(ref, 0, 1), np.where(valid, 2, 3)], axis=-1)
    return np.eye(len(ROLES), dtype=np.float32)[index]


# --- the selective state-space layer -------------------------------------------------------------

def max_log_decay(frames: int) -> float:
    """The clamp ``c`` of the per-frame log-decay ``Δ A ≥ −c`` for a window of ``frames``: 1.5
    (a state keeps at least e^−1.5 ≈ 22 % per frame) up to 94 frames, tighter beyond, so that
    ``e^{±S}`` stays below e^70 in :func:`selective_scan`."""
    return min(MAX_LOG_DECAY, 140.0 / max(1, frames - 1))


def selective_scan(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor) -> torch.Tensor:
    """The selective scan, all frames at once: ``y_t = Σ_n C_{t,n} h_{t,n}`` with
    ``h_{t,n} = exp(Δ_t A_n) h_{t-1,n} + Δ_t B_{t,n} x_t`` for every channel of every head.

    x ``(b, T, H, P)`` (H heads of P channels), delta ``(b, T, H)`` (> 0), A ``(H, N)`` (< 0: a
    diagonal state matrix per head), B, C ``(b, T, N)`` → y ``(b, T, H, P)``.

    Unrolled, ``y_t = Σ_{s≤t} M_{t,s} Δ_s x_s`` with ``M_{t,s} = Σ_n C_{t,n} e^{S_{t,n}} ·
    B_{s,n} e^{−S_{s,n}}`` and ``S`` the cumulative sum of the log-decays ``Δ A`` (clamped at
    ``−max_log_decay(T)``) over time, centred between its first and last value: a log-space
    cumulative sum, one matrix product per head for ``M`` (masked to ``s ≤ t``) and one for ``y``.
    """
    T = x.shape[1]
    log_decay = torch.clamp(delta.unsqueeze(-1) * A, min=-max_log_decay(T))     # (b, T, H, N)
    S = torch.cumsum(log_decay, dim=1)
    S = (S - 0.5 * (S[:, :1] + S[:, -1:])).transpose(1, 2)                      # (b, H, T, N), |S| ≤ 70
    M = (C.unsqueeze(1) * torch.exp(S)) @ (B.unsqueeze(1) * torch.exp(-S)).transpose(-1, -2)
    # causal: s ≤ t. Above the diagonal e^{S_t − S_s} may overflow; where() drops it, values and
    # gradients alike (a product with a 0/1 mask would turn inf into NaN)
    causal, zero = _causal_mask(T, x.device, x.dtype)
    M = torch.where(causal, M, zero)
    y = M @ (delta.unsqueeze(-1) * x).transpose(1, 2)                           # (b, H, T, P)
    return y.transpose(1, 2)


@functools.lru_cache(maxsize=16)
def _causal_mask(T: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode(False):  # cached: usable by training after inference made it
        return torch.ones(T, T, dtype=torch.bool, device=device).tril(), torch.zeros((), dtype=dtype, device=device)


def selective_scan_reference(x, delta, A, B, C):
    """The sequential definition of :func:`selective_scan`, one frame at a time (for tests)."""
    b, T, H, P = x.shape
    h = torch.zeros(b, H, P, A.shape[1], dtype=x.dtype)
    ys = []
    for t in range(T):
        decay = torch.exp(torch.clamp(delta[:, t, :, None] * A, min=-max_log_decay(T)))   # (b, H, N)
        h = decay[:, :, None, :] * h + (delta[:, t, :, None] * x[:, t])[..., None] * B[:, t, None, None, :]
        ys.append((h * C[:, t, None, None, :]).sum(-1))
    return torch.stack(ys, dim=1)


class SelectiveSSM(nn.Module):
    """Mamba-style selective state-space mixer: in-projection to (x, z); causal depthwise
    convolution + SiLU on x; input-dependent Δ (per head, softplus), B and C (per frame); a
    diagonal A = −exp(A_log) of N decay rates per head; the scan (:func:`selective_scan`); a skip
    ``D · x``; gated by SiLU(z); out-projection. The channels of a head share Δ and A (as in
    Mamba-2), which is what lets the scan run as a few batched matrix products."""

    def __init__(self, width: int, state: int, expand: int, conv: int, heads: int):
        super().__init__()
        inner = expand * width
        if inner % heads:
            raise ValueError(f"SSM inner width {inner} is not divisible by {heads} heads")
        self.inner, self.state, self.heads, self.kernel = inner, state, heads, conv
        self.in_proj = nn.Linear(width, 2 * inner)
        self.conv_weight = nn.Parameter(torch.randn(inner, conv) / math.sqrt(conv))
        self.conv_bias = nn.Parameter(torch.zeros(inner))
        self.x_proj = nn.Linear(inner, heads + 2 * state)
        dt = torch.exp(torch.rand(heads) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        with torch.no_grad():
            self.x_proj.bias.zero_()
            self.x_proj.bias[:heads] = dt + torch.log(-torch.expm1(-dt))        # softplus⁻¹(dt)
        rates = torch.linspace(1.0, 16.0, heads * state).reshape(state, heads).T  # every head: slow … fast
        self.A_log = nn.Parameter(torch.log(rates).contiguous())
        self.skip = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, T, _ = x.shape
        u, z = self.in_proj(x).chunk(2, dim=-1)
        padded = F.pad(u, (0, 0, self.kernel - 1, 0))                           # causal: past frames only
        u = F.silu((padded.unfold(1, self.kernel, 1) * self.conv_weight).sum(-1) + self.conv_bias)
        dt, B, C = torch.split(self.x_proj(u), [self.heads, self.state, self.state], dim=-1)
        y = selective_scan(u.reshape(b, T, self.heads, -1), F.softplus(dt), -torch.exp(self.A_log), B, C)
        y = y.reshape(b, T, self.inner) + u * self.skip
        return self.out_proj(y * F.silu(z))


class Attention(nn.Module):
    """Multi-head self-attention over the window; padding frames are not attended to."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        b, T, W = x.shape
        q, k, v = self.qkv(x).reshape(b, T, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) * (W // self.heads) ** -0.5 + key_bias[:, None, None, :]
        y = torch.softmax(scores, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, T, W))


class Modulation(nn.Module):
    """Adaptive LayerNorm parameters (shift, scale, gate per sub-layer) of one block from the
    per-frame conditioning (once per window, :meth:`frame`) plus the flow time's share (computed for
    all blocks at once by the model). Zero-initialized: every block starts as the identity
    (adaLN-Zero)."""

    def __init__(self, cond: int, width: int, parts: int):
        super().__init__()
        self.frame = nn.Linear(cond, parts * width)
        nn.init.zeros_(self.frame.weight)
        nn.init.zeros_(self.frame.bias)
        self.parts = parts

    def forward(self, frame_part: torch.Tensor, time_part: torch.Tensor) -> list[torch.Tensor]:
        return list((frame_part + time_part[:, None]).chunk(self.parts, dim=-1))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:]) * (1.0 + scale) + shift


class Block(nn.Module):
    """A residual block: ``S`` = adaLN + selective SSM; ``A`` = adaLN + attention, adaLN + MLP."""

    def __init__(self, kind: str, config: ModelConfig):
        super().__init__()
        W = config.width
        self.kind = kind
        if kind == "S":
            self.mixer = SelectiveSSM(W, config.state, config.expand, config.conv, config.ssm_heads)
            self.modulation = Modulation(config.cond_width, W, 3)
        else:
            self.mixer = Attention(W, config.heads)
            self.mlp = nn.Sequential(nn.Linear(W, config.mlp_ratio * W), nn.GELU(), nn.Linear(config.mlp_ratio * W, W))
            self.modulation = Modulation(config.cond_width, W, 6)

    def forward(self, x, frame_part, time_part, key_bias):
        m = self.modulation(frame_part, time_part)
        if self.kind == "S":
            return x + m[2] * self.mixer(_modulate(x, m[0], m[1]))
        x = x + m[2] * self.mixer(_modulate(x, m[0], m[1]), key_bias)
        return x + m[5] * self.mlp(_modulate(x, m[3], m[4]))


class AudioEncoder(nn.Module):
    """Audio inputs ``(b, R + C + lookahead, F)`` → per-frame tokens ``(b, R + C + lookahead, W)``:
    a convolution, then residual dilated convolutions (GELU), LayerNorm, a projection. Runs once
    per window, so its size costs nothing per sampling step."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        k, E = config.audio_kernel, config.audio_width
        self.first = nn.Conv1d(config.num_inputs, E, k, padding=k // 2)
        self.layers = nn.ModuleList(nn.Conv1d(E, E, k, padding=2 ** (i + 1) * (k // 2), dilation=2 ** (i + 1))
                                    for i in range(config.audio_layers))
        self.norm = nn.LayerNorm(E)
        self.out = nn.Linear(E, config.width)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.first(audio.transpose(1, 2)))
        for layer in self.layers:
            h = h + F.gelu(layer(h))
        return self.out(self.norm(h.transpose(1, 2)))


def _time_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    angles = 1000.0 * t[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


# --- the model -----------------------------------------------------------------------------------

class MotionFlowModel(nn.Module):
    """Velocity field of the rectified flow over motion chunks (see the module docstring).

    Tensors (batch first): ``audio`` (b, R + C + lookahead, F) raw inputs, ``controls`` (b, R + C, 18)
    (:func:`encode_controls`), ``identity`` (b, 63) (:func:`encode_identity`), ``reference``
    (b, R, 74) raw motion, ``roles`` (b, R + C, 4) (:func:`window_roles`); ``x`` (b, C, 74) and the
    velocity are in the normalized motion space (:meth:`normalize`), ``t`` (b,) in 0…1.
    """

    def __init__(self, config: ModelConfig, motion_mean: np.ndarray | None = None,
                 motion_std: np.ndarray | None = None):
        super().__init__()
        self.config = config
        W, K = config.width, config.cond_width
        mean = torch.zeros(NUM_CHANNELS) if motion_mean is None else torch.as_tensor(motion_mean, dtype=torch.float32)
        std = torch.ones(NUM_CHANNELS) if motion_std is None else torch.as_tensor(motion_std, dtype=torch.float32)
        self.register_buffer("motion_mean", mean.clone().reshape(NUM_CHANNELS))
        self.register_buffer("motion_std", std.clone().reshape(NUM_CHANNELS))
        self.audio = AudioEncoder(config)
        self.motion_in = nn.Linear(NUM_CHANNELS, W)
        self.reference_in = nn.Linear(NUM_CHANNELS, W)
        self.role_in = nn.Linear(len(ROLES), W, bias=False)
        self.position = nn.Parameter(0.02 * torch.randn(config.window, W))
        self.frame_cond = nn.Sequential(nn.Linear(NUM_CONTROLS + 3 * NUM_KEYPOINTS, K), nn.SiLU(), nn.Linear(K, K))
        self.time_cond = nn.Sequential(nn.Linear(64, K), nn.SiLU(), nn.Linear(K, K))
        self.blocks = nn.ModuleList(Block(kind, config) for kind in config.blocks)
        self.out_modulation = Modulation(K, W, 2)
        modulations = [block.modulation for block in self.blocks] + [self.out_modulation]
        self._time_split = [m.parts * W for m in modulations]
        self.time_modulation = nn.Linear(K, sum(self._time_split), bias=False)  # every block's time share
        nn.init.zeros_(self.time_modulation.weight)
        self.out = nn.Linear(W, NUM_CHANNELS)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        #: Learned log-variances s_g of the loss groups (:data:`LOSS_GROUPS`), used only in training.
        self.loss_log_vars = nn.Parameter(torch.zeros(len(LOSS_GROUPS)))

    # normalized motion space
    def normalize(self, motion: torch.Tensor) -> torch.Tensor:
        return (motion - self.motion_mean) / self.motion_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.motion_std + self.motion_mean

    def encode(self, audio, controls, identity, reference, roles) -> tuple[torch.Tensor, ...]:
        """Everything of a window that does not depend on ``x`` or ``t``, computed once per window:
        the conditioning tokens, each block's per-frame modulation, and the attention key bias."""
        R = self.config.reference
        present = roles[:, :R, :1]
        ref = self.reference_in(self.normalize(reference) * present)
        tokens = (self.audio(audio)[:, :self.config.window] + self.role_in(roles) + self.position
                  + F.pad(ref, (0, 0, 0, self.config.chunk)))
        frame = F.silu(self.frame_cond(torch.cat([controls, identity[:, None].expand(-1, controls.shape[1], -1)], -1)))
        parts = [block.modulation.frame(frame) for block in self.blocks]
        parts.append(self.out_modulation.frame(frame))
        key_bias = roles[..., 3] * -1e9
        return (tokens, key_bias, *parts)

    def time_parts(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every block's share of the modulation from the flow time ``t`` (b,): the same for every
        window, so a sampler may compute it once per step value."""
        time_cond = F.silu(self.time_cond(_time_features(t, 64)))
        return torch.split(self.time_modulation(time_cond), self._time_split, dim=-1)

    def step(self, x: torch.Tensor, t: torch.Tensor, context: tuple[torch.Tensor, ...],
             time_parts: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """The velocity (b, C, 74) at ``x`` (b, C, 74), ``t`` (b,) for an :meth:`encode`d window
        (``time_parts``: :meth:`time_parts` of ``t``, when the caller has it already)."""
        tokens, key_bias, *parts = context
        R = self.config.reference
        h = tokens + F.pad(self.motion_in(x), (0, 0, R, 0))
        if time_parts is None:
            time_parts = self.time_parts(t)
        for block, part, time_part in zip(self.blocks, parts, time_parts):
            h = block(h, part, time_part, key_bias)
        shift, scale = self.out_modulation(parts[-1], time_parts[-1])
        return self.out(_modulate(h, shift, scale))[:, R:]

    def forward(self, x, t, audio, controls, identity, reference, roles) -> torch.Tensor:
        """One velocity evaluation (the graph the ONNX export holds)."""
        return self.step(x, t, self.encode(audio, controls, identity, reference, roles))

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """The training loss of a batch of windows (see the module docstring) and its parts.

        ``batch``: ``motion`` (b, R + C, 74) raw (reference frames then the target chunk),
        ``audio``, ``controls``, ``identity``, ``roles`` as in :meth:`forward`.
        """
        R = self.config.reference
        motion, roles = batch["motion"], batch["roles"]
        b = motion.shape[0]
        controls = batch["controls"]
        if self.training and self.config.emotion_dropout > 0:
            drop = torch.rand(b, generator=generator) < self.config.emotion_dropout
            controls = torch.where(drop[:, None, None], drop_emotion(controls), controls)
        audio = batch["audio"]
        if self.training and self.config.acoustic_dropout > 0:
            drop = torch.rand(b, generator=generator) < self.config.acoustic_dropout
            audio = torch.where(drop[:, None, None], drop_acoustic(audio), audio)
        if self.training and self.config.mel_augment > 0:
            audio = augment_mel(audio, self.config.mel_augment, generator)
        x = self.normalize(motion[:, R:])
        noise = torch.randn(x.shape, generator=generator)
        t = torch.rand(b, generator=generator)
        x_t = (1.0 - t[:, None, None]) * noise + t[:, None, None] * x
        v = self.forward(x_t, t, audio, controls, batch["identity"], motion[:, :R], roles)
        x_hat = x_t + (1.0 - t[:, None, None]) * v
        valid = roles[:, R:, 2]                                                   # (b, C)
        # velocity and acceleration of x̂, continuing from the reference frames where they exist
        ref = self.normalize(motion[:, :R]) * roles[:, :R, :1]
        d_hat, d = torch.cat([ref, x_hat], 1).diff(dim=1), torch.cat([ref, x], 1).diff(dim=1)
        present = torch.cat([roles[:, :R, 0], valid], 1)
        into_chunk = torch.cat([torch.zeros_like(roles[:, :R, 0]), valid], 1)    # frames of the chunk
        d_mask = present[:, :-1] * present[:, 1:] * into_chunk[:, 1:]
        a_mask = present[:, :-2] * d_mask[:, 1:]
        flow_error = (v - (x - noise)) ** 2
        per_channel = {
            "flow": _masked_mean(flow_error, valid),
            "velocity": _masked_mean((d_hat - d) ** 2, d_mask),
            "acceleration": _masked_mean((d_hat.diff(dim=1) - d.diff(dim=1)) ** 2, a_mask),
        }
        mouth_flow = per_channel["flow"]
        if self.training and self.config.closure_weight != 1.0:
            # closed target lips weigh more: where the sound leaves it unsure, the lips lean to closing
            target = motion[:, R:]
            closed = ((target[..., _LIP_UP] - target[..., _LIP_LO]).clamp(min=0.0) <= CLOSED_GAP).float()
            weight = valid * (1.0 + (self.config.closure_weight - 1.0) * closed)
            mouth_flow = (flow_error * weight[..., None]).sum((0, 1)) / valid.sum().clamp(min=1.0)
        total = torch.zeros(())
        parts: dict[str, float] = {}
        for g, (name, index) in enumerate(LOSS_GROUPS.items()):
            idx = torch.tensor(index)
            flow = (mouth_flow if name == "mouth" else per_channel["flow"])[idx].mean()
            group = (flow + self.config.velocity_weight * per_channel["velocity"][idx].mean()
                     + self.config.acceleration_weight * per_channel["acceleration"][idx].mean())
            total = total + torch.exp(-self.loss_log_vars[g]) * group + self.loss_log_vars[g]
            parts[f"group.{name}"] = float(group.detach())
        for name, value in per_channel.items():
            parts[name] = float(value.detach().mean())
        return total, parts


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over batch and time of (b, T, channels) values where ``mask`` (b, T) is 1 → (channels,)."""
    return (values * mask[..., None]).sum((0, 1)) / mask.sum().clamp(min=1.0)


def parameter_count(model: nn.Module) -> int:
    """Parameters of the network proper (the loss weights excluded)."""
    return sum(p.numel() for name, p in model.named_parameters() if name != "loss_log_vars")


# --- sampling ------------------------------------------------------------------------------------

def flow_times(steps: int) -> np.ndarray:
    """The ``steps + 1`` flow times of Euler sampling, 0 (noise) … 1 (data), evenly spaced."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return np.linspace(0.0, 1.0, steps + 1)


def euler(velocity: Callable[[np.ndarray, float], np.ndarray], noise: np.ndarray, steps: int) -> np.ndarray:
    """Integrate the flow from ``noise`` (t = 0) to t = 1 with ``steps`` Euler steps;
    ``velocity(x, t)`` returns dx/dt. Works on NumPy arrays and torch tensors alike."""
    times = flow_times(steps)
    x = noise
    for t0, t1 in itertools.pairwise(times):
        x = x + (t1 - t0) * velocity(x, float(t0))
    return x


#: Seed of the mouth channels' noise, whatever the generation's seed (:func:`chunk_noise`).
MOUTH_NOISE_SEED = 0x4C495053
#: Scale of the mouth channels' noise (:func:`chunk_noise`): 0 starts the lips and jaw at the noise's
#: mean, so they come out as the sound and phones decide them, with no sampled variation. Measured
#: on the held-out voices with the shipped model (model card): 0 against 1 closes more p/b/m
#: (0.894 against 0.873, no transcript) and follows the reference more closely (r 0.912 against
#: 0.904; 0.947 against 0.941 with a transcript), and two seeds then close the same bilabials.
MOUTH_TEMPERATURE = 0.0


def chunk_noise(seed: int, index: int, chunk: int, *, mouth_temperature: float = MOUTH_TEMPERATURE) -> np.ndarray:
    """The noise (C, 74) float32 of chunk ``index`` of a generation with ``seed``.

    The seed draws the noise of the channels speech does not decide (head, brows, eyes, the rest
    of the face). The mouth and jaw channels (``LOSS_GROUPS["mouth"]``) take theirs, scaled by
    ``mouth_temperature``, from :data:`MOUTH_NOISE_SEED` — so another seed gives another head
    motion and the same lip sync; at the default temperature 0 the mouth's noise is 0."""
    if not (math.isfinite(mouth_temperature) and mouth_temperature >= 0.0):
        raise ValueError(f"mouth_temperature must be a finite number ≥ 0, got {mouth_temperature!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]))
    noise = rng.standard_normal((chunk, NUM_CHANNELS), dtype=np.float32)
    mouth = np.random.default_rng(np.random.SeedSequence([MOUTH_NOISE_SEED, int(index)]))
    noise[:, _MOUTH] = np.float32(mouth_temperature) * mouth.standard_normal((chunk, len(_MOUTH)), dtype=np.float32)
    return noise
