"""``pippin.recommend``: item-item similarity recommenders, exported as Core ML models."""

from .errors import RecommendError
from .evaluate import coverage, evaluate, leave_last_out, map_at_k, ndcg_at_k, precision_at_k, random_holdout, recall_at_k
from .model import ItemSimilarityRecommender
from .similarity import SIMILARITIES, item_similarity

__all__ = [
    "ItemSimilarityRecommender",
    "RecommendError",
    "SIMILARITIES",
    "item_similarity",
    "evaluate",
    "precision_at_k",
    "recall_at_k",
    "map_at_k",
    "ndcg_at_k",
    "coverage",
    "random_holdout",
    "leave_last_out",
]
