"""upsample, resizeBilinear, cropResize, sequenceRepeat against NumPy / PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, rank5_builder, run

RNG = np.random.default_rng(19)
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)


def _bilinear_reference(x, gh, gw):
    # direct per-point evaluation from the definition
    out = np.zeros(x.shape[:-2] + (len(gh), len(gw)))
    for i, g in enumerate(gh):
        for j, k in enumerate(gw):
            h0, w0 = int(np.floor(g)), int(np.floor(k))
            h1, w1 = min(h0 + 1, x.shape[-2] - 1), min(w0 + 1, x.shape[-1] - 1)
            fh, fw = g - h0, k - w0
            out[..., i, j] = ((1 - fh) * (1 - fw) * x[..., h0, w0] + (1 - fh) * fw * x[..., h0, w1]
                              + fh * (1 - fw) * x[..., h1, w0] + fh * fw * x[..., h1, w1])
    return out


def test_upsample_nearest_and_bilinear():
    torch = pytest.importorskip("torch")
    b = rank5_builder({"x": (3, 4, 5)}, outputs=("nn", "ac", "af"))
    b.add_upsample("nn", 2, 3, "x", "nn", mode="NN")
    b.add_upsample("ac", 2, 2, "x", "ac", mode="BILINEAR", linear_upsample_mode="ALIGN_CORNERS_TRUE")
    b.add_upsample("af", 2, 2, "x", "af", mode="BILINEAR", linear_upsample_mode="ALIGN_CORNERS_FALSE")
    nn, ac, af = run(b, {"x": X}, outputs=("nn", "ac", "af"))
    close(nn[:, 0], X.repeat(2, axis=2).repeat(3, axis=3))
    t = torch.from_numpy(X.astype(np.float64))
    close(ac[:, 0], torch.nn.functional.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True).numpy())
    close(af[:, 0], torch.nn.functional.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False).numpy())


@pytest.mark.parametrize("mode", ["STRICT_ALIGN_ENDPOINTS_MODE", "ALIGN_ENDPOINTS_MODE", "UPSAMPLE_MODE", "ROI_ALIGN_MODE"])
def test_resize_bilinear(mode):
    b = rank5_builder({"x": (3, 4, 5)})
    b.add_resize_bilinear("r", "x", "y", target_height=7, target_width=3, mode=mode)
    (y,) = run(b, {"x": X})

    def grid(size, n):  # from SamplingMode's comments
        if mode == "STRICT_ALIGN_ENDPOINTS_MODE" or (mode == "ALIGN_ENDPOINTS_MODE" and n > 1):
            return np.linspace(0, size - 1, n)
        if mode == "UPSAMPLE_MODE":
            return np.minimum(size - 1, np.linspace(0, size - size / n, n))
        spacing = max(1, size - 1) / n
        return np.minimum(size - 1, np.linspace(0.5 * spacing, 0.5 * spacing + (n - 1) * spacing, n))

    close(y[:, 0], _bilinear_reference(X.astype(np.float64), grid(4, 7), grid(5, 3)))


def test_crop_resize_corners():
    boxes = np.array([[[0, 0, 3, 4], [1, 2, 2, 4]]], np.float32)  # h0, w0, h1, w1
    b = rank5_builder({"x": (3, 4, 5)})
    b.add_crop_resize("c", ["x", "boxes"], "y", target_height=3, target_width=2,
                      mode="STRICT_ALIGN_ENDPOINTS_MODE", box_indices_mode="CORNERS_HEIGHT_FIRST")
    spec = b.spec
    roi = spec.description.input.add()
    roi.name = "boxes"
    roi.type.multiArrayType.shape.extend([2, 1, 4, 1, 1])
    roi.type.multiArrayType.dataType = 65568
    x = X[:1]
    model = __import__("nn_helpers").load(spec)
    blobs = model.run_layers(model.to_blobs({"x": x, "boxes": boxes.reshape(1, 2, 1, 4, 1, 1)}))
    y = blobs["y"]
    assert y.shape == (1, 2, 3, 3, 2)
    for r, (h0, w0, h1, w1) in enumerate(boxes[0]):
        close(y[0, r], _bilinear_reference(x[0].astype(np.float64), np.linspace(h0, h1, 3), np.linspace(w0, w1, 2)))


def test_sequence_repeat():
    b = rank5_builder({"x": (3, 4, 5)})
    b.add_sequence_repeat("s", 3, "x", "y")
    (y,) = run(b, {"x": X})
    close(y, np.tile(X[:, None], (1, 3, 1, 1, 1)))


def test_upsample_bilinear_default_grid_and_fractional():
    torch = pytest.importorskip("torch")
    b = rank5_builder({"x": (3, 4, 5)}, outputs=("d", "f"))
    b.add_upsample("d", 2, 3, "x", "d", mode="BILINEAR")  # linearUpsampleMode DEFAULT
    b.add_upsample("f", 1.5, 2.5, "x", "f", mode="BILINEAR", linear_upsample_mode="ALIGN_CORNERS_FALSE")
    d, f = run(b, {"x": X}, outputs=("d", "f"))

    def grid(size, n):  # DEFAULT: spacing = (X - X / N) / (N - 1), clipped to [0, X - 1]
        return np.clip(np.arange(n) * (size - size / n) / (n - 1), 0, size - 1)

    close(d[:, 0], _bilinear_reference(X.astype(np.float64), grid(4, 8), grid(5, 15)))
    ref = torch.nn.functional.interpolate(torch.from_numpy(X.astype(np.float64)), size=(6, 12), mode="bilinear",
                                          align_corners=False)
    close(f[:, 0], ref.numpy())
