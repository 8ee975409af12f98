"""A fitted ``ItemSimilarityRecommender`` as a native Core ML model (spec v4, Core ML 3).

Inputs: ``items`` (dictionary item -> double: the user's ratings; the runtime also
takes a plain item list), optional ``k`` (int64, number of recommendations; all
items when absent), optional ``restrict`` and ``exclude`` (sequences of items; an
``exclude`` input replaces the default exclusion of the user's own items).
Outputs: ``recommendations`` (sequence of items, best first) and ``scores``
(dictionary item -> double). Items are ``itemStringIds`` or ``itemInt64Ids`` in the
model's sorted order; ``SimilarItems`` ``i`` lists ``sim(i -> k)`` best first and
carries ``shift_i`` as ``itemScoreAdjustment``.

Metadata (``userDefined``): ``similarity``, ``top_k``, ``threshold``; the training
table's column names (``user_column``, ``item_column``, ``rating_column``, the last
empty without ratings), which ``pippin evaluate``/``recommend`` use as defaults; and
``item_popularity``: each item's number of training interactions, in item order, from
which Pippin's runtime recommends the most popular items to a user with no known item
(Core ML itself ranks such a user's all-zero scores in item order).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..pipelines.runtime.item_similarity import POPULARITY_KEY
from ..spec import Model
from ..spec import io as spec_io

__all__ = ["build_spec", "export", "SPEC_VERSION"]

# fact: apple/coremltools:mlmodel/format/Model.proto (itemSimilarityRecommender = 101, Core ML 3 = spec 4)
SPEC_VERSION = 4


def _set_key_type(feature_type, string_ids: bool) -> None:
    if string_ids:
        feature_type.stringKeyType.SetInParent()
    else:
        feature_type.int64KeyType.SetInParent()


def _set_sequence(feature, string_ids: bool) -> None:
    seq = feature.type.sequenceType
    if string_ids:
        seq.stringType.SetInParent()
    else:
        seq.int64Type.SetInParent()
    seq.sizeRange.lowerBound = 0
    seq.sizeRange.upperBound = -1


def build_spec(model, *, short_description: str | None = None) -> Model:
    """The ``Model`` message of a fitted recommender (see the module docstring for its interface)."""
    string_ids = model.item_ids_.dtype == object
    spec = Model()
    spec.specificationVersion = SPEC_VERSION
    desc = spec.description
    items = desc.input.add()
    items.name = "items"
    items.shortDescription = "the user's items and ratings (item -> rating; 1.0 for a plain interaction)"
    _set_key_type(items.type.dictionaryType, string_ids)
    k = desc.input.add()
    k.name = "k"
    k.shortDescription = "number of recommendations (default: all items)"
    k.type.int64Type.SetInParent()
    k.type.isOptional = True
    for name, text in (("restrict", "only recommend these items"),
                       ("exclude", "never recommend these items (default: the input items)")):
        feature = desc.input.add()
        feature.name = name
        feature.shortDescription = text
        _set_sequence(feature, string_ids)
        feature.type.isOptional = True
    recs = desc.output.add()
    recs.name = "recommendations"
    recs.shortDescription = "recommended items, best first"
    _set_sequence(recs, string_ids)
    scores = desc.output.add()
    scores.name = "scores"
    scores.shortDescription = "score of each recommended item"
    _set_key_type(scores.type.dictionaryType, string_ids)
    desc.metadata.shortDescription = short_description or (
        f"Item-similarity recommender ({model.similarity}, top_k={model.top_k}, "
        f"threshold={model.threshold}) trained by pippin")
    desc.metadata.userDefined["similarity"] = str(model.similarity)
    desc.metadata.userDefined["top_k"] = str(model.top_k)
    desc.metadata.userDefined["threshold"] = repr(float(model.threshold))
    if getattr(model, "l2_", None) is not None:  # similarity="ease": the ridge penalty used
        desc.metadata.userDefined["l2"] = repr(float(model.l2_))
        desc.metadata.userDefined["popularity_exponent"] = repr(float(model.popularity_exponent))
        for name in ("user_weight_exponent", "history_popularity_exponent"):
            desc.metadata.userDefined[name] = repr(float(getattr(model, name, 0.0)))
    columns = getattr(model, "columns_", None) or {}
    for role in ("user", "item", "rating"):
        if columns.get(role) is not None or role == "rating":
            desc.metadata.userDefined[f"{role}_column"] = str(columns.get(role) or "")
    popularity = getattr(model, "popularity_", None)
    if popularity is None:
        popularity = np.diff(model.interactions_.tocsc().indptr)
    desc.metadata.userDefined[POPULARITY_KEY] = ",".join(map(str, np.asarray(popularity, dtype=np.int64).tolist()))

    isr = spec.itemSimilarityRecommender
    if string_ids:
        isr.itemStringIds.vector.extend(str(v) for v in model.item_ids_)
    else:
        isr.itemInt64Ids.vector.extend(int(v) for v in model.item_ids_)
    S = model.similarity_
    indptr, indices, data = S.indptr, S.indices, S.data
    for i in range(model.n_items_):  # one protobuf message per item: protobuf has no bulk setter
        entry = isr.itemItemSimilarities.add()
        entry.itemId = i
        lo, hi = indptr[i], indptr[i + 1]
        for j, s in zip(indices[lo:hi].tolist(), data[lo:hi].tolist()):
            connected = entry.similarItemList.add()
            connected.itemId = j
            connected.similarityScore = s
        if model.shift_[i] != 0:
            entry.itemScoreAdjustment = float(model.shift_[i])
    isr.itemInputFeatureName = "items"
    isr.numRecommendationsInputFeatureName = "k"
    isr.itemRestrictionInputFeatureName = "restrict"
    isr.itemExclusionInputFeatureName = "exclude"
    isr.recommendedItemListOutputFeatureName = "recommendations"
    isr.recommendedItemScoreOutputFeatureName = "scores"
    return spec


def export(model, path: str | os.PathLike, **options) -> Path:
    """Write ``build_spec(model, **options)`` to ``path`` atomically."""
    return spec_io.save(build_spec(model, **options), path)

