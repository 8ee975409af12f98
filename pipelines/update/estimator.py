"""scikit-learn's parameter conventions for Pippin's estimators, without importing sklearn.

``get_params``/``set_params``/``repr`` come from the constructor's signature, so
``__init__`` only stores its keyword arguments (no ``*args``/``**kwargs``) and
``set_params`` behaves exactly like the constructor. Each estimator names the
error it raises for an unknown parameter in ``_param_error``.
"""

from __future__ import annotations

import inspect

from ...spec.errors import PippinError


class ParamsMixin:
    """``get_params``, ``set_params`` and ``__repr__`` from ``__init__``'s signature."""

    _param_error: type[PippinError] = PippinError

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's parameters and their current values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters; returns self. An unknown name raises ``_param_error``."""
        names = self._param_names()
        for name, value in params.items():
            if name not in names:
                raise self._param_error(f"unknown parameter {name!r}; {type(self).__name__} takes {names}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
