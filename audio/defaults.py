"""The sound classifier's per-extractor training defaults (a leaf module: the CLI reads it for --help).

``scratch``: measured on FSDD (see ``audio/network.py`` and the README's benchmark).
``sounds`` / ``speech``: the heads and settings chosen on the few-shot benchmark
(``benchmarks/bench_fewshot.py``; README "Few examples: pretrained backbones").
"""

from __future__ import annotations

from .backbones import FEATURE_EXTRACTORS

__all__ = ["DEFAULTS", "FEATURE_EXTRACTORS"]

#: per feature extractor: the value a ``SoundClassifier`` parameter left at None takes, and the head's shape
DEFAULTS = {
    "scratch": {"epochs": 25, "batch_size": 32, "learning_rate": 3e-3, "weight_decay": 0.0},
    "sounds": {"epochs": 60, "batch_size": 32, "learning_rate": 1e-3, "weight_decay": 1e-3,
               "head": "pool", "hidden": 0, "channels": 128, "noise": 0.5},
    "speech": {"epochs": 60, "batch_size": 32, "learning_rate": 3e-3, "weight_decay": 1e-3,
               "head": "conv", "hidden": 0, "channels": 64, "noise": 0.0},
}
