"""``pippin train WHAT ...``: one sub-command per trainer.

Each trainer module (``train_sound``, ``train_recommender``) defines
``add_parser(subparsers, parents)`` for its own flags and sets ``handler``.
"""

from __future__ import annotations

import importlib

from .exit_codes import HELP_EPILOG

# Trainer modules in this package; add new ones here.
TRAINER_MODULES: tuple[str, ...] = ("train_recommender", "train_sound")


def add_parser(subparsers, parents, *, only: str | None = None):
    """Register ``train`` and its trainers (``only``: just ``train_<only>``, when that module exists)."""
    parser = subparsers.add_parser(
        "train", help="train a model from data and export it as .mlmodel",
        description="Train a model from data and export it as a Core ML file.", epilog=HELP_EPILOG,
    )
    trainers = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    names = [n for n in TRAINER_MODULES if n == f"train_{only}"] or TRAINER_MODULES
    for name in names:
        importlib.import_module(f"{__package__}.{name}").add_parser(trainers, parents)
    return parser
