"""The error ``pippin.recommend`` raises for bad user input."""

from ..spec.errors import PippinError

__all__ = ["RecommendError"]


class RecommendError(PippinError, ValueError):
    """An interaction table or recommender argument is unusable."""
