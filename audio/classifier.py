"""``SoundClassifier``: train a sound classifier from labelled audio and export it as a Core ML pipeline.

Training computes every window's log-mel patch once (``pippin.audio.features``),
splits the *files* into training and validation sets (stratified, seeded, so
windows of one file never land on both sides), and trains the CNN of
``pippin.audio.network`` with ``pippin.pipelines.update.fit_network`` (Adam,
cosine learning-rate schedule, early stopping on validation loss). The model it
exports (and predicts with) is the spec-v4 pipeline SoundAnalysisPreprocessing ->
NeuralNetworkClassifier.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..datasets.sound import SoundDataset, load_sound_dataset
from ..pipelines.update.estimator import ParamsMixin
from ..spec import io as spec_io
from .augment import PatchAugmenter
from .backbones import get_backbone
from .choose import choose_backbone
from .defaults import DEFAULTS, FEATURE_EXTRACTORS
from .embeddings import embed_copies, embed_files
from .errors import AudioError
from .features import ClipFeatures, featurize_files
from .inference import classify_files
from .metrics import classification_report
from .memory import MEMORY_KEY, memory_entry
from .head import export_backbone_pipeline, head_for
from .network import build_network, export_pipeline
from .wave_augment import WaveAugmenter

__all__ = ["SoundClassifier"]

logger = logging.getLogger(__name__)


class SoundClassifier(ParamsMixin):
    """A sound classifier exported as a Core ML 3 pipeline: a front end or frozen backbone, then a trained network.

    Parameters
    ----------
    feature_extractor : {"scratch", "sounds", "speech", "auto"}
        ``"auto"`` (default): the backbone whose head cross-validates best on the data
        (``pippin.audio.choose``); the choice is in ``feature_extractor_``. It won or tied
        every measured case (README: drum kits, FSDD few-shot and full), in less time
        than scratch needs. ``"sounds"`` / ``"speech"``: a pretrained, frozen backbone
        (``pippin.audio.backbones``) and a small head trained on its embeddings,
        computed once per clip (a few examples per class are enough; exported as
        backbone layers -> head). ``"scratch"``: VGGish log-mel patches and a small CNN
        trained from scratch (needs thousands of clips; exported as
        SoundAnalysisPreprocessing -> CNN).
    epochs : int > 0 or None
        Maximum training epochs (early stopping may end sooner); None: the
        extractor's default (``pippin.audio.defaults.DEFAULTS``).
    batch_size : int > 0 or None
    learning_rate : float > 0 or None
        Adam's initial learning rate; a cosine schedule decays it over ``epochs``.
    validation_fraction : float in [0, 1) or None
        Share of each label's files held out for validation and early stopping
        (0: no validation, no early stopping); None: the extractor's default
        (0.05 for scratch; 0 for the backbones, whose few clips are all needed).
    early_stopping_patience : int > 0
        Epochs without a better validation loss before training stops (the best
        epoch's weights are kept).
    overlap : float in [0, 1)
        Window overlap when cutting clips into 975 ms windows.
    augment : bool
        Scratch: shift each training patch by up to 40 ms and hide a few frames and mel
        bands (``pippin.audio.augment.PatchAugmenter``); measured on FSDD, it turns a
        memorising CNN into one that generalises (see the README's benchmark).
        Backbones: add the extractor's number of changed copies of each training clip
        (``pippin.audio.wave_augment.WaveAugmenter``; "sounds": 4, "speech": none).
    random_state : int or None
        Seeds the split, weight initialisation and shuffling; the same seed gives the same model bytes.
    progress : bool
        Draw tqdm progress bars on stderr.
    """

    _param_error = AudioError

    def __init__(self, *, feature_extractor: str = "auto", epochs: int | None = None,
                 batch_size: int | None = None, learning_rate: float | None = None,
                 validation_fraction: float | None = None, early_stopping_patience: int = 5, overlap: float = 0.5,
                 augment: bool = True, random_state: int | None = None, progress: bool = True):
        self.feature_extractor = feature_extractor
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.overlap = overlap
        self.augment = augment
        self.random_state = random_state
        self.progress = progress

    # -- training ---------------------------------------------------------------
    def _settings(self, extractor: str) -> dict:
        """The checked hyper-parameters, with ``extractor``'s defaults where a parameter is None."""
        if self.feature_extractor not in FEATURE_EXTRACTORS:
            raise AudioError(f"feature_extractor={self.feature_extractor!r}, expected one of "
                             f"{list(FEATURE_EXTRACTORS)}", where="SoundClassifier")
        settings = dict(DEFAULTS[extractor])
        settings.update({k: getattr(self, k) for k in ("epochs", "batch_size", "learning_rate", "validation_fraction")
                         if getattr(self, k) is not None})
        checks = [
            ("epochs", isinstance(settings["epochs"], (int, np.integer)) and settings["epochs"] >= 1, "an int >= 1"),
            ("batch_size", isinstance(settings["batch_size"], (int, np.integer)) and settings["batch_size"] >= 1,
             "an int >= 1"),
            ("learning_rate", isinstance(settings["learning_rate"], (int, float))
             and 0 < settings["learning_rate"] <= 1, "in (0, 1]"),
            ("validation_fraction", isinstance(settings["validation_fraction"], (int, float))
             and 0 <= settings["validation_fraction"] < 1, "in [0, 1)"),
            ("early_stopping_patience", isinstance(self.early_stopping_patience, (int, np.integer))
             and self.early_stopping_patience >= 1, "an int >= 1"),
            ("overlap", isinstance(self.overlap, (int, float)) and 0 <= self.overlap < 1, "in [0, 1)"),
            ("augment", isinstance(self.augment, (bool, np.bool_)), "True or False"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise AudioError(f"{name}={settings.get(name, getattr(self, name))!r}, expected {expected}",
                                 where="SoundClassifier")
        return settings

    def fit(self, dataset, *, on_epoch=None, features: ClipFeatures | None = None) -> "SoundClassifier":
        """Train from scratch on a labelled sound dataset; returns ``self``.

        Parameters
        ----------
        dataset : path-like or SoundDataset
            A folder with one sub-folder per label, a ``path,label`` CSV/TSV table,
            or a ``pippin.datasets.SoundDataset``.
        on_epoch : callable, optional
            Called after each epoch with a dict (``epoch``, ``loss``, ``train_accuracy``,
            ``val_loss``, ``val_accuracy``, ...).
        features : ClipFeatures, optional
            The dataset's features computed elsewhere (``pippin.audio.spark.featurize``,
            one entry of ``used`` per file of ``dataset``) instead of here: the same
            arrays give the same model. Needs an explicit ``feature_extractor``.

        Raises
        ------
        AudioError
            A label has no usable file, fewer than two labels, or bad parameters.
        DatasetError
            The dataset folder or table is malformed.
        """
        extractor = self.feature_extractor
        settings = self._settings("speech" if extractor == "auto" else extractor)  # checks before any work
        data = load_sound_dataset(dataset)
        if len(data.classes) < 2:  # before any audio is read
            raise AudioError(f"need at least two labels to train a classifier, found {data.classes}",
                             where=data.source or None)
        if features is not None and (extractor == "auto" or len(features.used) != len(data.paths)):
            raise AudioError(f"precomputed features need feature_extractor='scratch', 'sounds' or 'speech' (got "
                             f"{extractor!r}) and one entry per file ({len(features.used)} for {len(data.paths)})",
                             where="SoundClassifier.fit")
        rng = np.random.default_rng(self.random_state)
        self.selection_ = None
        if extractor == "auto":
            extractor, features, scores = choose_backbone(data.paths, data.labels, overlap=self.overlap,
                                                          seed=int(rng.integers(0, 2**31 - 1)),
                                                          progress=self.progress)
            self.selection_ = {"rule": "cross-validated head accuracy", "scores": scores, "chosen": extractor}
            settings = self._settings(extractor)
        self.feature_extractor_ = extractor
        backbone = None if extractor == "scratch" else get_backbone(extractor)
        if features is None and backbone is None:
            features = featurize_files(data.paths, overlap=self.overlap, progress=self.progress,
                                       description="features")
        elif features is None and self.selection_ is None:
            features = embed_files(data.paths, backbone, overlap=self.overlap, progress=self.progress)
        self.skipped_ = features.skipped
        classes = self._check_labels(data, features)
        clip_targets = np.searchsorted(classes, np.asarray(data.labels, dtype=object).astype(str))
        is_val_clip = self._split(clip_targets, features.used, rng, settings["validation_fraction"])
        window_targets = clip_targets[features.clip_index]
        val_windows = is_val_clip[features.clip_index]
        seed = int(rng.integers(0, 2**31 - 1))
        epochs, batch_size, learning_rate = settings["epochs"], settings["batch_size"], settings["learning_rate"]
        if backbone is None:
            network = build_network(list(classes), seed=seed, learning_rate=learning_rate, batch_size=batch_size,
                                    epochs=epochs)
            augmenter = PatchAugmenter() if self.augment else None
        else:
            network = head_for(backbone, list(classes), settings, seed=seed)
            augmenter = None  # a backbone's clips are augmented as audio, before embedding (copies below)
        from ..pipelines.update import fit_network  # the trainer of the runtime's networks

        reporter = _EpochReporter(int(epochs), on_epoch=on_epoch, bar=self.progress)
        validation = None
        if val_windows.any():
            validation = (features.patches[val_windows], window_targets[val_windows])
        train_x, train_y = features.patches[~val_windows], window_targets[~val_windows]
        copies = settings.get("copies", 0) if self.augment and backbone is not None else 0
        if copies:  # changed copies of the training clips, embedded once each (pippin.audio.wave_augment)
            wave_augmenter = WaveAugmenter()
            train_clips = np.flatnonzero(features.used & ~is_val_clip)
            extra = embed_copies([data.paths[i] for i in train_clips], backbone, copies=copies,
                                 augmenter=wave_augmenter, seed=seed, overlap=self.overlap, progress=self.progress)
            train_x = np.concatenate([train_x, extra.patches])
            train_y = np.concatenate([train_y, clip_targets[train_clips][extra.clip_index]])
        trained, history = fit_network(
            network, train_x, train_y,
            epochs=int(epochs), batch_size=int(batch_size), optimizer="adam",
            learning_rate=float(learning_rate), lr_schedule="cosine", validation=validation,
            weight_decay=float(settings["weight_decay"]),
            early_stopping_patience=int(self.early_stopping_patience) if validation is not None else None,
            random_state=seed, progress=reporter, augment=augmenter,
        )
        reporter.close()
        self.classes_ = np.asarray(classes, dtype=object)
        self.network_spec_ = trained
        self.history_ = history
        self.history_rows_ = reporter.rows
        self.training_summary_ = self._summary(data, features, is_val_clip)
        training = {"epochs_run": int(history["epochs_run"]), "best_epoch": history["best_epoch"],
                    "batch_size": int(batch_size), "learning_rate": float(learning_rate), "optimizer": "adam",
                    "lr_schedule": "cosine", "random_state": self.random_state,
                    "augmentation": None if augmenter is None else augmenter.describe()}
        metadata = {"training_data": self.training_summary_, "overlap": float(self.overlap), "training": training}
        memory = memory_entry(trained, features.patches, window_targets)  # personalization's old classes
        if memory is not None:
            metadata[MEMORY_KEY] = memory
        if backbone is None:
            self.spec_ = export_pipeline(trained, metadata=metadata)
        else:
            training.update({"hidden": settings["hidden"],
                             "weight_decay": float(settings["weight_decay"]),
                             "copies": None if not copies else {"n": copies, **wave_augmenter.describe()}})
            metadata["align"] = backbone.align
            if self.selection_ is not None:
                metadata["feature_extractor_selection"] = self.selection_
            self.spec_ = export_backbone_pipeline(trained, backbone, metadata=metadata)
        return self

    def train(self, dataset, *, on_epoch=None) -> "SoundClassifier":
        """Deprecated alias of ``fit`` (every Pippin estimator's verb); kept for one release."""
        warnings.warn("SoundClassifier.train() is deprecated; use fit()", DeprecationWarning, stacklevel=2)
        return self.fit(dataset, on_epoch=on_epoch)

    def _check_labels(self, data: SoundDataset, features: ClipFeatures) -> np.ndarray:
        classes = np.asarray(data.classes, dtype=object).astype(str)
        usable = {str(label): 0 for label in classes}
        for label, used in zip(data.labels, features.used):
            usable[label] += bool(used)
        empty = [label for label, n in usable.items() if n == 0]
        if empty:
            skipped = [s["path"] for s in features.skipped if Path(s["path"]) in
                       {p for p, l in zip(data.paths, data.labels) if l == empty[0]}]
            raise AudioError(
                f"label {empty[0]!r} has no usable audio file ({len(skipped)} unreadable: "
                f"{', '.join(skipped[:3]) or 'none listed'})",
                where=data.source or None,
                hint="fix or remove the files, or drop the label",
            )
        if len(classes) < 2:
            raise AudioError(f"need at least two labels to train a classifier, found {[str(c) for c in classes]}",
                             where=data.source or None)
        return classes

    def _split(self, clip_targets: np.ndarray, used: np.ndarray, rng, fraction: float) -> np.ndarray:
        """Stratified by label: a ``fraction`` share of each label's usable files (at least one
        when the label has two or more)."""
        is_val = np.zeros(len(clip_targets), dtype=bool)
        if fraction <= 0:
            return is_val
        for target in np.unique(clip_targets[used]):
            members = np.flatnonzero(used & (clip_targets == target))
            if len(members) < 2:
                continue
            n_val = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
            is_val[rng.permutation(members)[:n_val]] = True
        return is_val

    def _summary(self, data: SoundDataset, features: ClipFeatures, is_val_clip: np.ndarray) -> dict:
        used_labels = [label for label, u in zip(data.labels, features.used) if u]
        return {
            "source": data.source,
            # absolute, so a personalization from another working directory finds the folder
            "source_path": str(Path(data.source).resolve()) if data.source and Path(data.source).exists() else None,
            # a flat folder labelled by file names (--label-from-name): how to read it again
            **({"label_from_name": data.extra["label_from_name"]} if data.extra.get("label_from_name") else {}),
            "n_files": int(features.used.sum()),
            "n_windows": int(len(features.clip_index)),
            "n_validation_files": int(is_val_clip.sum()),
            "n_skipped": len(features.skipped),
            "n_padded": int(features.n_padded),
            "files_per_label": {label: used_labels.count(label) for label in data.classes},
        }

    # -- using the model ------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "spec_"):
            raise AudioError("this SoundClassifier is not fitted; call train() first")

    def model(self):
        """The exported pipeline, loaded in Pippin's runtime."""
        self._check_fitted()
        from ..pipelines import load

        return load(self.spec_)

    def predict(self, files, *, overlap: float | None = None) -> list[dict]:
        """Classify audio files: per-window rows and a clip label from the mean window probabilities.

        Parameters
        ----------
        files : path-like or list of path-like [shape=(n_files,)]
        overlap : float in [0, 1), optional
            Default: the training overlap.

        Returns
        -------
        results : list of dict
            One per file: ``path``, ``label``, ``probability``, ``probabilities``,
            ``windows`` (``start``, ``end`` in seconds, ``label``, ``probability``);
            an unreadable file gives ``{"path", "error"}`` instead.
        """
        self._check_fitted()
        files = [files] if isinstance(files, (str, os.PathLike)) else list(files)
        results, skipped = classify_files(self.model(), files, overlap=self.overlap if overlap is None else overlap,
                                          progress=self.progress)
        by_path = {r["path"]: r for r in results}
        by_path.update({s["path"]: {"path": s["path"], "error": s["reason"]} for s in skipped})
        return [by_path[str(Path(f))] for f in files]

    def evaluate(self, dataset, *, overlap: float | None = None) -> dict:
        """Accuracy, per-class precision/recall/F1 and the confusion matrix on a labelled dataset.

        Returns
        -------
        report : dict
            ``accuracy``, ``labels``, ``per_class``, ``confusion_matrix`` (rows: true,
            columns: predicted), ``n_clips``, ``skipped`` (unreadable files).
        """
        self._check_fitted()
        return evaluate_model(self.model(), dataset, overlap=self.overlap if overlap is None else overlap,
                              progress=self.progress)

    def export(self, path: str | os.PathLike) -> Path:
        """Write the Core ML pipeline atomically; returns the path."""
        self._check_fitted()
        return spec_io.save(self.spec_, path)


def evaluate_model(model, dataset, *, overlap: float = 0.5, progress: bool = False) -> dict:
    """Score a loaded sound-classifier model on a labelled dataset (see ``SoundClassifier.evaluate``)."""
    data = load_sound_dataset(dataset)
    results, skipped = classify_files(model, data.paths, overlap=overlap, progress=progress)
    truth = {str(p): label for p, label in zip(data.paths, data.labels)}
    report = classification_report([truth[r["path"]] for r in results], [r["label"] for r in results],
                                   labels=[str(x) for x in model.class_labels])
    report["skipped"] = skipped
    return report


class _EpochReporter:
    """fit_network's per-epoch callback: a tqdm bar over epochs and ``on_epoch`` rows (epochs from 1)."""

    def __init__(self, epochs: int, *, on_epoch=None, bar: bool = True):
        self.on_epoch = on_epoch
        self.rows: list[dict] = []
        self.bar = None
        if bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs, desc="training", unit="epoch", leave=False, disable=None)

    def __call__(self, event: dict) -> None:
        row = {"epoch": int(event["epoch"]) + 1, "loss": event.get("loss"),
               "train_accuracy": event.get("accuracy"), "val_loss": event.get("val_loss"),
               "val_accuracy": event.get("val_accuracy"), "learning_rate": event.get("learning_rate")}
        self.rows.append(row)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{row['loss']:.4f}")
        if self.on_epoch is not None:
            self.on_epoch(row)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
