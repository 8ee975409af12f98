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
    "scratch": {"epochs": 25, "batch_size": 32, "learning_rate": 3e-3, "weight_decay": 0.0,
                "validation_fraction": 0.05},
    # drums with whole kits held out: 0.85-0.86 over seeds with 4 changed copies of each clip, 0.76-0.79 without
    "sounds": {"epochs": 20, "batch_size": 32, "learning_rate": 1e-3, "weight_decay": 1e-2,
               "validation_fraction": 0.0, "hidden": 0, "copies": 4},
    # FSDD, one speaker held out: k=5 0.96, k=20 0.97 (1.5 s windows, short clips centred)
    "speech": {"epochs": 60, "batch_size": 32, "learning_rate": 3e-3, "weight_decay": 1e-3,
               "validation_fraction": 0.0, "hidden": 0, "copies": 0},
}
