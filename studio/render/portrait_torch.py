"""The torch backend of the portrait renderer: the same pictures as :class:`PortraitRenderer`,
with the per-pixel work on a torch device (CUDA when it really works, else the CPU).

Shared with the OpenCV backend (:mod:`studio.render.portrait`): the geometry, the triangle raster
(ids drawn with OpenCV on the CPU, on the grid of :meth:`PortraitRenderer.grid`), the eye edit and
the mouth picture. Done here, on the device:

* **the map**: each grid sample's photo coordinates from the affine map of its triangle (gathered
  by id, float64 like the OpenCV backend, then float32); at step 2 doubled with
  ``F.interpolate(bilinear, align_corners=False)``, which has ``cv2.resize`` ``INTER_LINEAR``'s
  half-pixel convention, and cut to the working region as ``PortraitRenderer._map`` does;
* **the lookup**: ``F.grid_sample`` (bilinear; ``align_corners=True``, so normalized ±1 are the
  centres of the first and last pixels and pixel centres sit on integer coordinates, as in
  ``cv2.remap``; ``padding_mode="border"`` is ``BORDER_REPLICATE``), rounded as this OpenCV's
  ``remap`` rounds: OpenCV 5 interpolates in float and rounds halves to even; OpenCV 4 snaps
  coordinates to 1/32 pixel and rounds halves up (asked of cv2 once, see ``_remap_is_fixed_point``);
* **the mouth compositing**: the interior picture (``MouthPainter.picture``, on the CPU) blended
  over the warp with ``MouthPainter.paint``'s arithmetic.

The backends agree exactly but for ±1 grey level on at most about 1 value in 10⁴ (rounding ties).
The photo is uploaded once; per frame only the triangle ids and maps (and, while the gaze edits
them, the eye boxes) go to the device, and only the working region (with the mouth) comes back.

:func:`create_renderer` picks a backend by name; torch is imported only for ``"torch"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from studio.render.face_fit import FaceFit
from studio.render.portrait import PortraitRenderer

if TYPE_CHECKING:  # pragma: no cover
    import torch

BACKENDS = ("opencv", "torch")
#: OpenCV 4's cv2.remap snaps coordinates to 1/32 pixel (INTER_BITS = 5); OpenCV 5's does not.
_REMAP_SUBPIXELS = 32
_fixed_point: bool | None = None


def create_renderer(image: np.ndarray, fit: FaceFit, backend: str = "opencv", device: str = "auto") -> PortraitRenderer:
    """A portrait renderer of the named backend: ``"opencv"`` (CPU; ``device`` must be ``"auto"``
    or ``"cpu"``) or ``"torch"`` (``device``: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``).
    Only the torch backend imports torch."""
    if backend == "opencv":
        if str(device) not in ("auto", "cpu"):
            raise ValueError(f"the opencv backend runs on the CPU only, not on device {device!r}")
        return PortraitRenderer(image, fit)
    if backend == "torch":
        return TorchPortraitRenderer(image, fit, device=device)
    raise ValueError(f"unknown renderer backend {backend!r}: expected one of {', '.join(BACKENDS)}")


def resolve_device(device: Any = "auto") -> torch.device:
    """The torch device for a name: ``"auto"`` is CUDA when it is available and a small tensor
    operation on it really works, else the CPU."""
    import torch

    if isinstance(device, str) and device == "auto":
        return torch.device("cuda") if _cuda_works() else torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}: expected 'auto', 'cpu' or 'cuda'") from exc
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}: expected 'auto', 'cpu' or 'cuda'")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested, but CUDA is not available to torch")
    return resolved


def _cuda_works() -> bool:
    import torch

    try:
        if not torch.cuda.is_available():
            return False
        probe = torch.arange(4, dtype=torch.float32, device="cuda")
        return float((probe * 2.0).sum().item()) == 12.0
    except Exception:  # noqa: BLE001 - a broken driver or a busy device: fall back to the CPU
        return False


def _remap_is_fixed_point() -> bool:
    """Whether this OpenCV's ``cv2.remap`` (INTER_LINEAR, uint8) works in fixed point — coordinates
    snapped to 1/32 pixel, weights in 1/1024, halves rounded up (OpenCV 4) — or in float with
    halves rounded to even (OpenCV 5). Asked of cv2 itself, once."""
    global _fixed_point
    if _fixed_point is None:
        import cv2

        step = np.zeros((2, 2), np.uint8)
        step[:, 1] = 255
        at = np.float32([[0.01]])  # 2.55 grey in float; 0 when snapped to 1/32 pixel
        _fixed_point = int(cv2.remap(step, at, np.zeros_like(at), cv2.INTER_LINEAR)[0, 0]) == 0
    return _fixed_point


class TorchPortraitRenderer(PortraitRenderer):
    """:class:`PortraitRenderer` with the map, the lookup and the mouth compositing in torch."""

    backend = "torch"

    def __init__(self, image: np.ndarray, fit: FaceFit, device: Any = "auto"):
        import torch

        super().__init__(image, fit)
        self.device = resolve_device(device)
        photo = torch.from_numpy(self.image).to(self.device)
        self._photo = photo  # (H, W, 3) uint8, the base of every picture
        # The photo as float32 (1, 3, H, W) for grid_sample; eye edits are written into it.
        self._source = photo.permute(2, 0, 1).unsqueeze(0).to(torch.float32).contiguous()
        H, W = self.image.shape[:2]
        self._to_grid = (2.0 / max(W - 1, 1), 2.0 / max(H - 1, 1))  # align_corners=True: ±1 = end pixels
        self._grid_key = None  # the map's sampling grid (PortraitRenderer.grid) and its coordinates
        self._xs = self._ys = None
        self._eyes_edited = False

    # --- pixels ----------------------------------------------------------------------------------

    def render(self, frame: np.ndarray) -> np.ndarray:
        """One motion frame (74,) → an H × W × 3 uint8 RGB picture (as the OpenCV backend)."""
        import torch

        frame = np.asarray(frame, dtype=np.float64)
        vertices = self._vertices(frame[None])[0]
        ids, affine = self.raster(vertices)
        with torch.inference_mode():
            self._upload_eyes(frame)
            warped = self._warp(ids, affine)  # (rh, rw, 3) uint8
            x0, y0, x1, y1 = self.mesh.region
            box = (x0, y0, x1, y1)
            mouth = self._mouth(vertices)
            if mouth is not None:
                mx0, my0 = mouth[2]
                mh, mw = mouth[1].shape
                box = (min(x0, mx0), min(y0, my0), max(x1, mx0 + mw), max(y1, my0 + mh))
            bx0, by0, bx1, by1 = box
            if box == (x0, y0, x1, y1):
                patch = warped
            else:
                patch = self._photo[by0:by1, bx0:bx1].clone()
                patch[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0] = warped
            if mouth is not None:
                self._composite(patch, mouth, (bx0, by0))
            out = self.image.copy()
            out[by0:by1, bx0:bx1] = patch.cpu().numpy()
        return out

    def _upload_eyes(self, frame: np.ndarray) -> None:
        """Brings the device's copy of the photo up to date with the frame's gaze edit."""
        import torch

        source = self.eyes.edit(frame)
        edited = self.eyes.edited
        boxes = self.eyes.boxes if (edited or self._eyes_edited) else []  # edited now, or restored now
        for x0, y0, x1, y1 in boxes:
            patch = torch.from_numpy(np.ascontiguousarray(source[y0:y1, x0:x1])).to(self.device)
            self._source[0, :, y0:y1, x0:x1] = patch.permute(2, 0, 1).to(torch.float32)
        self._eyes_edited = edited

    def _map_torch(self, ids: np.ndarray, affine: np.ndarray) -> torch.Tensor:
        """Photo coordinates (rh, rw, 2) float32 of every working-region pixel, on the device: the
        OpenCV backend's ``_map`` (float64 affine, float32 maps, ×2 linear upsampling)."""
        import torch
        import torch.nn.functional as F

        grid = self.grid()
        if grid != self._grid_key:
            ox, oy, step, h, w = grid
            self._xs = (ox + torch.arange(w, dtype=torch.float64, device=self.device) * step)[None, :]
            self._ys = (oy + torch.arange(h, dtype=torch.float64, device=self.device) * step)[:, None]
            self._grid_key = grid
        table = np.empty((len(affine) + 1, 6), np.float64)  # the last row (id −1): the identity
        table[:-1] = affine.reshape(-1, 6)
        table[-1] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        a = torch.from_numpy(table).to(self.device)[torch.from_numpy(ids).to(self.device).long()]  # (h, w, 6)
        xs, ys = self._xs, self._ys
        map_x = a[..., 0] * xs + a[..., 1] * ys + a[..., 2]
        map_y = a[..., 3] * xs + a[..., 4] * ys + a[..., 5]
        maps = torch.stack([map_x, map_y], 0).to(torch.float32)  # (2, h, w)
        step = grid[2]
        if step > 1:
            # cv2.resize INTER_LINEAR's convention (fine pixel i samples coarse (i + ½) / step − ½),
            # then the cut of PortraitRenderer._map: fine pixel i is photo pixel x0 + i − 2.
            x0, y0, x1, y1 = self.mesh.region
            maps = F.interpolate(maps[None], scale_factor=float(step), mode="bilinear",
                                 align_corners=False)[0, :, 2:2 + y1 - y0, 2:2 + x1 - x0]
        return maps.permute(1, 2, 0)

    def _warp(self, ids: np.ndarray, affine: np.ndarray) -> torch.Tensor:
        """The working region (rh, rw, 3) uint8 looked up in the (eye-edited) photo, as cv2.remap
        (INTER_LINEAR, BORDER_REPLICATE) does it."""
        import torch
        import torch.nn.functional as F

        maps = self._map_torch(ids, affine)
        fixed = _remap_is_fixed_point()
        if fixed:  # OpenCV 4: coordinates snapped to 1/32 pixel
            maps = torch.round(maps * _REMAP_SUBPIXELS) / _REMAP_SUBPIXELS
        grid = maps * maps.new_tensor(self._to_grid) - 1.0
        values = F.grid_sample(self._source, grid[None], mode="bilinear", padding_mode="border",
                               align_corners=True)[0]  # (3, rh, rw)
        if fixed:
            # The exact value is a multiple of 1/1024: snap to it, then round halves up.
            values = torch.floor((torch.round(values * 1024.0) + 512.0) / 1024.0)
        else:  # OpenCV 5 interpolates in float and rounds halves to even
            values = torch.round(values)
        return values.clamp_(0.0, 255.0).to(torch.uint8).permute(1, 2, 0)

    def _mouth(self, vertices: np.ndarray):
        """The frame's mouth interior (picture, coverage × opacity, corner) or None."""
        alpha = self.mouth.opacity(vertices)
        if alpha <= 0.0:
            return None
        interior, mask, corner = self.mouth.picture(vertices, self.image.shape[:2])
        if mask is None:
            return None
        return interior, mask * alpha, corner

    def _composite(self, patch: torch.Tensor, mouth, origin: tuple[int, int]) -> None:
        """Blends the mouth interior over ``patch`` (h, w, 3) uint8 whose top-left is ``origin``."""
        import torch

        interior, coverage, (mx0, my0) = mouth
        mh, mw = coverage.shape
        x, y = mx0 - origin[0], my0 - origin[1]
        region = patch[y:y + mh, x:x + mw].to(torch.float32)
        a = torch.from_numpy(np.ascontiguousarray(coverage, dtype=np.float32)).to(self.device)[..., None]
        colour = torch.from_numpy(np.ascontiguousarray(interior, dtype=np.float32)).to(self.device)
        blended = region * (1.0 - a) + colour * a + 0.5
        patch[y:y + mh, x:x + mw] = blended.clamp_(0.0, 255.0).to(torch.uint8)
