"""pippin.datasets."""

from .drums import DRUM_CLASSES, load_drumkits
from .errors import DatasetError
from .interaction_demo import make_demo_interactions
from .interactions import load_interactions, read_table
from .movielens import load_movielens, load_movielens_titles
from .sound import SoundDataset, load_fsdd, load_sound_dataset, load_sound_folder, load_sound_table
from .sound_demo import make_demo_sounds

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
