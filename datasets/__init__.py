"""pippin.datasets.

The interaction loaders (and pandas under them, ~0.3 s to import) load on first use, so
the sound commands (``pippin update``, ``personalize``, ``train sound``) do not pay for them.
"""

from .drums import DRUM_CLASSES, load_drumkits
from .errors import DatasetError
from .sound import SoundDataset, load_fsdd, load_sound_dataset, load_sound_folder, load_sound_table
from .sound_demo import make_demo_sounds

_LAZY = {"make_demo_interactions": "interaction_demo", "load_interactions": "interactions",
         "read_table": "interactions", "load_movielens": "movielens", "load_movielens_titles": "movielens"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "DatasetError",
    "DRUM_CLASSES",
    "load_drumkits",
    "load_interactions",
    "load_movielens",
    "load_movielens_titles",
    "make_demo_interactions",
    "read_table",
    "SoundDataset",
    "load_fsdd",
    "load_sound_dataset",
    "load_sound_folder",
    "load_sound_table",
    "make_demo_sounds",
]
