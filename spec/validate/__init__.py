"""``pippin.spec.validate``: the rules Core ML's compiler enforces, checked on Linux.

``validate(model)`` returns a list of ``Problem`` (field path, message, rule id);
an empty list means the model is valid for the kinds Pippin supports.
"""

from ._report import Problem
from .core import validate
from .versions import NEWEST_VERSION, OS_RELEASES

__all__ = ["validate", "Problem", "OS_RELEASES", "NEWEST_VERSION"]
