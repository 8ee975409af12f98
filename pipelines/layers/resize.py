"""Spatial resampling: upsample, resizeBilinear, cropResize; and sequenceRepeat.

Bilinear sampling evaluates the input at real-valued grid points ``g`` in [0, X - 1]
along H and along W: ``(1 - f) * x[floor(g)] + f * x[floor(g) + 1]``, f = g - floor(g).
The grids follow ``SamplingMode`` / ``LinearUpsampleMode`` in NeuralNetwork.proto.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register

STRICT_ALIGN_ENDPOINTS, ALIGN_ENDPOINTS, UPSAMPLE, ROI_ALIGN = range(4)


def sampling_grid(size: int, n: int, *, mode: int) -> np.ndarray:
    """``n`` grid points on [0, size - 1] for a ``SamplingMode`` method."""
    if mode == STRICT_ALIGN_ENDPOINTS or (mode == ALIGN_ENDPOINTS and n > 1):
        return np.linspace(0, size - 1, n)
    if mode == ALIGN_ENDPOINTS:
        return np.full(n, (size - 1) / 2)
    if mode == UPSAMPLE:
        return np.minimum(size - 1, np.linspace(0, size - size / n, n))
    spacing = max(1, size - 1) / n
    return np.minimum(size - 1, np.linspace(0.5 * spacing, 0.5 * spacing + (n - 1) * spacing, n))


def _interp_weights(grid: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grid = np.clip(grid, 0, size - 1)
    lo = np.floor(grid).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    return lo, hi, (grid - lo)


def bilinear(x: np.ndarray, grid_h: np.ndarray, grid_w: np.ndarray) -> np.ndarray:
    """Sample the last two axes of ``x`` at the grid points (separable bilinear)."""
    lo, hi, f = _interp_weights(grid_h, x.shape[-2])
    rows = x[..., lo, :] * (1 - f)[:, None] + x[..., hi, :] * f[:, None]
    lo, hi, f = _interp_weights(grid_w, x.shape[-1])
    return (rows[..., lo] * (1 - f) + rows[..., hi] * f).astype(np.float32)


def upsample_grid(size: int, n: int, *, mode: int) -> np.ndarray:
    """Grid of ``LinearUpsampleMode`` DEFAULT (0), ALIGN_CORNERS_TRUE (1), ALIGN_CORNERS_FALSE (2)."""
    i = np.arange(n)
    if mode == 0:
        spacing = (size - size / n) / (n - 1) if n > 1 else 0.0
        return np.clip(i * spacing, 0, size - 1)
    if mode == 1:
        spacing = (size - 1) / (n - 1) if n > 1 else 0.0
        return np.clip(i * spacing, 0, size - 1)
    spacing = size / n
    return np.clip(i * spacing + 0.5 * spacing - 0.5, 0, size - 1)


@register
class Upsample(Layer):
    """Scale H and W up by ``scalingFactor`` (or ``fractionalScalingFactor``): nearest
    neighbour, or bilinear on the ``linearUpsampleMode`` grid."""

    kind = "upsample"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.upsample
        if len(p.fractionalScalingFactor):
            self.factors = tuple(float(f) for f in p.fractionalScalingFactor)
        else:
            self.factors = tuple(float(f) for f in p.scalingFactor) or (1.0, 1.0)
        if len(self.factors) != 2:
            raise self.error(f"scaling factor has {len(self.factors)} values, expected 2 (H, W)", "scalingFactor")
        self.bilinear, self.linear_mode = p.mode == 1, int(p.linearUpsampleMode)

    def forward(self, x):
        h, w = x.shape[-2:]
        out_h, out_w = int(np.floor(h * self.factors[0])), int(np.floor(w * self.factors[1]))
        if not self.bilinear:
            rows = np.minimum((np.arange(out_h) / self.factors[0]).astype(np.int64), h - 1)
            cols = np.minimum((np.arange(out_w) / self.factors[1]).astype(np.int64), w - 1)
            return (x[..., rows[:, None], cols[None, :]],)
        return (bilinear(x, upsample_grid(h, out_h, mode=self.linear_mode),
                         upsample_grid(w, out_w, mode=self.linear_mode)),)


@register
class ResizeBilinear(Layer):
    """Bilinear resize of H, W to ``targetSize`` on the ``SamplingMode`` grid."""

    kind = "resizeBilinear"

    def forward(self, x):
        p = self.p
        out_h, out_w = (int(p.targetSize[0]), int(p.targetSize[1])) if len(p.targetSize) == 2 else (1, 1)
        mode = int(p.mode.samplingMethod)
        grid_h, grid_w = sampling_grid(x.shape[-2], out_h, mode=mode), sampling_grid(x.shape[-1], out_w, mode=mode)
        return (bilinear(x, grid_h, grid_w),)


def _box_grid(start: float, end: float, n: int, *, mode: int) -> np.ndarray:
    """Grid points inside one box interval [start, end] (the sampling mode applied to the box)."""
    if mode == STRICT_ALIGN_ENDPOINTS or (mode == ALIGN_ENDPOINTS and n > 1):
        return np.linspace(start, end, n)
    if mode == ALIGN_ENDPOINTS:
        return np.full(n, (start + end) / 2)
    if mode == UPSAMPLE:
        return np.linspace(start, end - (end - start) / n, n)
    spacing = (end - start) / n
    return np.linspace(start + 0.5 * spacing, start + 0.5 * spacing + (n - 1) * spacing, n)


def _corners(box: np.ndarray, mode: int) -> tuple[float, float, float, float]:
    a, b, c, d = (float(v) for v in box)
    if mode == 0:
        return a, c, b, d  # h_start, h_end, w_start, w_end
    if mode == 1:
        return b, d, a, c
    if mode == 2:
        return a - c / 2, a + c / 2, b - d / 2, b + d / 2
    return b - d / 2, b + d / 2, a - c / 2, a + c / 2


@register
class CropResize(Layer):
    """Crop boxes from the feature map [1, C, H, W] (per example) and resize each to
    ``targetSize`` bilinearly. Boxes come per example as [R, 4 or 5, 1, 1] (a leading batch
    id, which must be 0 here, is skipped); the output is [R, C, H_out, W_out] on the
    sequence axis, as Core ML's [R, 1, C, H_out, W_out]."""

    kind = "cropResize"

    def forward(self, x, boxes):
        p = self.p
        out_h, out_w = (int(p.targetSize[0]), int(p.targetSize[1])) if len(p.targetSize) == 2 else (1, 1)
        mode, box_mode = int(p.mode.samplingMethod), int(p.boxIndicesMode.boxMode)
        h, w = x.shape[-2:]
        scale = p.spatialScale or 1.0
        outputs = []
        for n in range(x.shape[0]):  # boxes differ per example and per box: one small resample each
            feature = x[n].reshape(-1, *x.shape[-3:])[0]
            rois = boxes[n if boxes.shape[0] > 1 else 0].reshape(boxes.shape[1], -1)
            crops = []
            for roi in rois:
                h0, h1, w0, w1 = _corners(roi[-4:] * scale, box_mode)
                if p.normalizedCoordinates:
                    h0, h1, w0, w1 = h0 * (h - 1), h1 * (h - 1), w0 * (w - 1), w1 * (w - 1)
                grid_h, grid_w = _box_grid(h0, h1, out_h, mode=mode), _box_grid(w0, w1, out_w, mode=mode)
                crops.append(bilinear(feature, grid_h, grid_w))
            outputs.append(np.stack(crops))
        return (np.stack(outputs).astype(np.float32),)


@register
class SequenceRepeat(Layer):
    """Repeat the whole sequence (axis -5) ``nRepetitions`` times."""

    kind = "sequenceRepeat"

    def forward(self, x):
        reps = int(self.p.nRepetitions) or 1
        tiles = [1] * x.ndim
        tiles[x.ndim - 4] = reps
        return (np.tile(x, tiles),)
