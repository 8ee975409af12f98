"""Rules for ``itemSimilarityRecommender``.

fact: apple/coremltools:mlmodel/src/ItemSimilarityRecommenderCommon.cpp
(constructAndValidateItemSimilarityRecommenderFromSpec: id lists vs item indices,
unique ids, input/output feature names and types).
"""

from __future__ import annotations

from collections import Counter

from ._report import Report, feature_type_name

__all__ = ["check_recommender"]

_PATH = "itemSimilarityRecommender"


def _feature(features, name):
    for i, feature in enumerate(features):
        if feature.name == name:
            return i, feature
    return None, None


def _check_named(desc, field, prop, name, allowed, report):
    features = getattr(desc, field)
    i, feature = _feature(features, name)
    if feature is None:
        report.add(f"{_PATH}.{prop}", f"{prop} {name!r} is not a model {field}; "
                   f"{field}s are {[f.name for f in features]}", "recommender-io")
        return
    got = feature_type_name(feature.type)
    if got not in allowed:
        report.add(f"description.{field}[{i}]", f"{field} {name!r} ({prop}) is {got}, expected "
                   f"{' or '.join(allowed)}", "recommender-io")
    if prop == "itemInputFeatureName" and feature.type.isOptional:  # every prediction starts from it
        report.add(f"description.{field}[{i}]", f"input {name!r} (itemInputFeatureName) is optional, "
                   "expected a required input", "recommender-io")


def _check_ids(rec, report):
    max_item = -1
    for i, entry in enumerate(rec.itemItemSimilarities):
        max_item = max(max_item, entry.itemId, *(c.itemId for c in entry.similarItemList))
    int_ids = list(rec.itemInt64Ids.vector)
    str_ids = list(rec.itemStringIds.vector)
    if int_ids and str_ids:
        report.add(_PATH, f"both itemInt64Ids ({len(int_ids)}) and itemStringIds ({len(str_ids)}) "
                   "are given, expected only one", "recommender-ids")
        return
    ids, field = (int_ids, "itemInt64Ids") if int_ids else (str_ids, "itemStringIds")
    if not ids:
        return
    if len(ids) <= max_item:
        report.add(f"{_PATH}.{field}", f"{len(ids)} item ids, but item index {max_item} is used; "
                   f"expected at least {max_item + 1} ids", "recommender-ids")
    if len(set(ids)) != len(ids):
        dupes = sorted((x for x, n in Counter(ids).items() if n > 1), key=str)[:5]
        report.add(f"{_PATH}.{field}", f"item ids are not unique: {dupes}", "recommender-ids")


def check_recommender(model, report: Report) -> None:
    """All item-similarity recommender rules."""
    rec = model.itemSimilarityRecommender
    desc = model.description
    _check_ids(rec, report)
    item_input = rec.itemInputFeatureName
    if not item_input:
        if len(desc.input) != 1:
            report.add(f"{_PATH}.itemInputFeatureName", "itemInputFeatureName is empty and the model "
                       f"has {len(desc.input)} inputs, expected it set or exactly one input",
                       "recommender-io")
        else:
            item_input = desc.input[0].name
    if item_input:
        _check_named(desc, "input", "itemInputFeatureName", item_input,
                     ("dictionaryType", "sequenceType", "multiArrayType"), report)
    if rec.numRecommendationsInputFeatureName:
        _check_named(desc, "input", "numRecommendationsInputFeatureName",
                     rec.numRecommendationsInputFeatureName, ("int64Type",), report)
    for prop in ("itemRestrictionInputFeatureName", "itemExclusionInputFeatureName"):
        if getattr(rec, prop):
            _check_named(desc, "input", prop, getattr(rec, prop), ("sequenceType", "multiArrayType"), report)
    outputs = 0
    if rec.recommendedItemScoreOutputFeatureName:
        outputs += 1
        _check_named(desc, "output", "recommendedItemScoreOutputFeatureName",
                     rec.recommendedItemScoreOutputFeatureName, ("dictionaryType",), report)
    if rec.recommendedItemListOutputFeatureName:
        outputs += 1
        _check_named(desc, "output", "recommendedItemListOutputFeatureName",
                     rec.recommendedItemListOutputFeatureName, ("sequenceType",), report)
    if not outputs:
        report.add(_PATH, "no output named, expected recommendedItemListOutputFeatureName and/or "
                   "recommendedItemScoreOutputFeatureName", "recommender-io")
