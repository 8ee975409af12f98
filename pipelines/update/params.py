"""Reading ``NetworkUpdateParameters`` and checking overrides against their allowed values."""

from __future__ import annotations

from ..errors import PipelineError

__all__ = ["resolve_parameters"]

_SNAKE = {"learning_rate": "learningRate", "mini_batch_size": "miniBatchSize", "batch_size": "miniBatchSize"}
_OPTIMIZER_FIELDS = {"sgd": ("learningRate", "miniBatchSize", "momentum"),
                     "adam": ("learningRate", "miniBatchSize", "beta1", "beta2", "eps")}
# Core ML's defaults when a spec leaves a field unset (0 would make no sense)
_DEFAULTS = {"learningRate": 0.01, "miniBatchSize": 16, "momentum": 0.0, "beta1": 0.9, "beta2": 0.999,
             "eps": 1e-8, "epochs": 1}


def _allowed(param) -> str:
    which = param.WhichOneof("AllowedValues")
    if which == "range":
        return f"[{param.range.minValue}, {param.range.maxValue}]"
    if which == "set":
        return "{" + ", ".join(str(v) for v in param.set.values) + "}"
    return "any value"


def _check(name, param, value, where):
    which = param.WhichOneof("AllowedValues")
    ok = True
    if which == "range":
        ok = param.range.minValue <= value <= param.range.maxValue
    elif which == "set":
        ok = value in set(param.set.values)
    if not ok:
        raise PipelineError(f"{name}={value!r} is outside its allowed values {_allowed(param)}",
                            where=f"{where}: updateParams.{name}")


def resolve_parameters(update_params, overrides: dict, *, where: str) -> dict:
    """The hyper-parameters of one update: spec defaults, then checked overrides.

    Returns a dict with ``optimizer`` ("sgd" | "adam"), its fields
    (``learningRate``, ``miniBatchSize``, ``momentum`` or ``beta1``/``beta2``/``eps``),
    ``epochs``, ``shuffle`` and ``seed``.
    """
    kind = update_params.optimizer.WhichOneof("OptimizerType")
    if kind is None:
        raise PipelineError("the updatable model declares no optimizer", where=f"{where}: updateParams.optimizer")
    opt_name = "sgd" if kind == "sgdOptimizer" else "adam"
    opt = getattr(update_params.optimizer, kind)
    params = {f: getattr(opt, f) for f in _OPTIMIZER_FIELDS[opt_name]}
    params["epochs"] = update_params.epochs
    out = {"optimizer": opt_name}
    for name, p in params.items():
        out[name] = p.defaultValue or _DEFAULTS[name]
    out["shuffle"] = bool(update_params.shuffle.defaultValue)
    out["seed"] = int(update_params.seed.defaultValue)
    for key, value in overrides.items():
        name = _SNAKE.get(key, key)
        if name in ("shuffle", "seed"):
            out[name] = bool(value) if name == "shuffle" else int(value)
            continue
        if name not in params:
            raise PipelineError(
                f"{key!r} cannot be overridden for this model; allowed: "
                f"{', '.join(sorted(list(params) + ['shuffle', 'seed']))}",
                where=f"{where}: updateParams",
            )
        if name in ("miniBatchSize", "epochs"):
            if int(value) != value or int(value) < 1:
                raise PipelineError(f"{name}={value!r}, expected a positive integer", where=f"{where}: updateParams")
            value = int(value)
        else:
            value = float(value)
        _check(name, params[name], value, where)
        out[name] = value
    out["miniBatchSize"] = int(out["miniBatchSize"])
    out["epochs"] = int(out["epochs"])
    return out
