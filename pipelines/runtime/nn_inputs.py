"""Neural-network inputs and outputs: declared features <-> the runtime's blob layout.

Multi-array inputs map to blobs as the ``pipelines.layers`` package docstring
defines (legacy rank-5 ``[N, S, C, H, W]`` or exact ``[N, *shape]``), through
``pipelines.layers.network.array_to_blob``, the conversion training uses too. Image inputs
become float32 ``[N, 1, C, H, W]`` (rank-5 image mapping) or ``[N, C, H, W]``
(rank-4 image mapping) with pixel values 0..255 in the spec's channel order, then
the network's preprocessing (image scaler, mean image) is applied as Core ML does:
``scaler``: ``y = channelScale * x + bias[c]``; ``meanImage``: ``y = x - mean``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import PipelineError
from .features import MULTIARRAY_DTYPES, feature_kind

__all__ = ["blob_to_output", "output_facts", "images_to_blob", "preprocess", "image_size"]

GRAYSCALE, RGB, BGR, GRAYSCALE_FLOAT16 = 10, 20, 30, 40


def output_facts(description: Any) -> tuple:
    """What ``blob_to_output`` reads from an output's description, as plain values (a runtime reads
    them once: the protobuf reads cost tens of microseconds per call on a cold cache)."""
    kind = feature_kind(description)
    if kind in ("doubleType", "int64Type"):
        return kind, None, ()
    array = description.type.multiArrayType
    return kind, MULTIARRAY_DTYPES.get(array.dataType, np.float32), tuple(int(d) for d in array.shape)


def blob_to_output(description: Any, blob: np.ndarray, *, exact_shapes: bool, facts: tuple | None = None) -> np.ndarray:
    """An output blob as the declared feature's batch value [shape=(n_examples, *declared)]
    (``facts``: ``output_facts(description)``, when the caller keeps them)."""
    kind, dtype, declared = facts or output_facts(description)
    n = blob.shape[0]
    if kind == "doubleType":
        return blob.reshape(n, -1)[:, 0].astype(np.float64)
    if kind == "int64Type":
        return blob.reshape(n, -1)[:, 0].astype(np.int64)
    if declared and math.prod(declared) == blob[0].size:  # math.prod: np.prod of a tuple costs ~5 us
        return blob.reshape(n, *declared).astype(dtype, copy=False)
    if not exact_shapes and blob.ndim == 5:
        out = blob[:, 0] if blob.shape[1] == 1 else blob
        if out.ndim == 4 and out.shape[-2:] == (1, 1):
            out = out[:, :, 0, 0]
        return out.astype(dtype, copy=False)
    return blob.astype(dtype, copy=False)


def image_size(image_type: Any) -> tuple[int, int]:
    """The declared (height, width) of an ``ImageFeatureType``."""
    return int(image_type.height), int(image_type.width)


def _allowed_size(image_type: Any, height: int, width: int) -> tuple[int, int] | None:
    """The size an image of (height, width) runs at, or None when the spec does not allow it.

    Fixed size: only the declared size. Flexible: an allowed size runs as is; any other
    is resized to the nearest allowed one (clamped into a range, or the closest
    enumerated size).
    """
    which = image_type.WhichOneof("SizeFlexibility")
    if which == "enumeratedSizes" and image_type.enumeratedSizes.sizes:
        sizes = [(int(s.height), int(s.width)) for s in image_type.enumeratedSizes.sizes]
        if (height, width) in sizes:
            return height, width
        return min(sizes, key=lambda s: abs(s[0] - height) + abs(s[1] - width))
    if which == "imageSizeRange":
        def clamp(value, size_range):
            upper = size_range.upperBound if size_range.upperBound >= 0 else value
            return int(min(max(value, size_range.lowerBound), upper))
        rng = image_type.imageSizeRange
        return clamp(height, rng.heightRange), clamp(width, rng.widthRange)
    if (height, width) == image_size(image_type):
        return height, width
    return None


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of one image [shape=(H, W, C)] (scipy.ndimage, align-corners)."""
    from scipy import ndimage

    factors = (height / image.shape[0], width / image.shape[1], 1)
    return ndimage.zoom(image.astype(np.float32), factors, order=1, mode="nearest", grid_mode=False)[:height, :width]


def _one_image(value: Any, *, name: str, where: str) -> np.ndarray:
    """One image (array or PIL image) as uint8/float [shape=(H, W, C)] in RGB or gray."""
    if hasattr(value, "convert") and hasattr(value, "size") and not isinstance(value, np.ndarray):
        mode = "L" if getattr(value, "mode", "") in ("L", "1", "I", "F") else "RGB"
        value = np.asarray(value.convert(mode))
    array = np.asarray(value)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise PipelineError(
            f"image input {name!r} has shape {array.shape}, expected (H, W) gray or (H, W, 3) RGB", where=where
        )
    return array[:, :, :3]


def images_to_blob(description: Any, value: Any, *, rank4: bool, where: str) -> np.ndarray:
    """A batch of images -> float32 blob [shape=(n, 1, C, H, W)] or (n, C, H, W) with rank4.

    ``value`` is a uint8 array [shape=(n, H, W)] or (n, H, W, 3) (RGB), or a list of
    arrays or PIL images. Converted to the declared color space (BGR flips channels,
    gray from RGB uses ITU-R 601 luma).
    """
    image_type = description.type.imageType
    name = description.name
    if isinstance(value, np.ndarray) and value.dtype != object:
        if value.ndim not in (3, 4):
            raise PipelineError(
                f"image input {name!r} has shape {value.shape}, expected (n_examples, H, W) or (n_examples, H, W, 3)",
                where=where,
            )
        items = list(value) if value.ndim == 4 and value.shape[-1] not in (1, 3, 4) else [v for v in value]
    elif isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        items = list(value)
    else:
        items = [value]
    images = [_one_image(item, name=name, where=where) for item in items]
    # one vectorized conversion when every image has the same shape (the usual batch)
    groups = [np.stack(images)] if len({im.shape for im in images}) == 1 else [im[np.newaxis] for im in images]
    out = [_convert(group, image_type, name=name, where=where) for group in groups]
    if len({item.shape[1:] for item in out}) > 1:
        raise PipelineError(f"image input {name!r} holds images of different sizes in one batch", where=where)
    blob = np.ascontiguousarray(np.concatenate(out), dtype=np.float32)
    return blob if rank4 else blob[:, np.newaxis]


def _convert(images: np.ndarray, image_type: Any, *, name: str, where: str) -> np.ndarray:
    """Images of one size [shape=(k, H, W, 1 or 3)] -> float32 [shape=(k, C, H', W')] in the
    declared color space and an allowed size."""
    images = images.astype(np.float32)
    gray = image_type.colorSpace in (GRAYSCALE, GRAYSCALE_FLOAT16)
    if gray and images.shape[-1] == 3:
        # fact: ITU-R BT.601 luma weights (the usual RGB -> gray conversion)
        images = (images @ np.array([0.299, 0.587, 0.114], np.float32))[..., np.newaxis]
    elif not gray and images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    height, width = images.shape[1:3]
    size = _allowed_size(image_type, height, width)
    if size is None:
        raise PipelineError(
            f"image input {name!r} is {width}x{height} (width x height), "
            f"expected {image_type.width}x{image_type.height}",
            where=where, hint="resize the image; the model declares no flexible sizes",
        )
    if size != (height, width):
        images = np.stack([_resize(image, *size) for image in images])
    if image_type.colorSpace == BGR:
        images = images[..., ::-1]
    return np.transpose(images, (0, 3, 1, 2))


def preprocess(blob: np.ndarray, preprocessing: Any, *, color_space: int, where: str) -> np.ndarray:
    """Apply one ``NeuralNetworkPreprocessing`` to an image blob [shape=(n, ..., C, H, W)]."""
    which = preprocessing.WhichOneof("preprocessor")
    if which == "scaler":
        s = preprocessing.scaler
        if blob.shape[-3] == 1:
            bias = np.array([s.grayBias], np.float32)
        elif color_space == BGR:
            bias = np.array([s.blueBias, s.greenBias, s.redBias], np.float32)
        else:
            bias = np.array([s.redBias, s.greenBias, s.blueBias], np.float32)
        return blob * np.float32(s.channelScale) + bias.reshape(-1, 1, 1)
    if which == "meanImage":
        mean = np.asarray(preprocessing.meanImage.meanImage, dtype=np.float32)
        if mean.size != int(np.prod(blob.shape[-3:])):
            raise PipelineError(
                f"meanImage has {mean.size} values, expected C*H*W = {int(np.prod(blob.shape[-3:]))}",
                where=f"{where}.meanImage",
            )
        return blob - mean.reshape(blob.shape[-3:])
    return blob
