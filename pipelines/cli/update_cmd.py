"""``pippin update MODEL DATA -o OUT``: train an updatable model further on new labelled examples.

DATA is an NPZ file (one array per training input, examples first), a CSV/TSV/
Parquet table (one column per training input; a multiArray input spread over
``NAME_0``, ``NAME_1``, ...), or, for a sound classifier, a folder with one
sub-folder per label (or a ``path,label`` table) of audio files, cut into the
model's 975 ms windows. A k-NN classifier appends the examples; a neural network
trains its updatable layers (Core ML 3 semantics); a pipeline runs its frozen
stages and updates the last one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from ...spec import io as spec_io
from ..errors import PipelineError
from ..runtime.model import load
from . import gc_hold
from .audio_ahead import ReadAhead, SpecView, small_pages
from .audio_prefix import frozen_examples
from .training_data import load_training_data, n_examples, training_inputs
from .exit_codes import HELP_EPILOG
from .output import Result, info

EXAMPLES_KEY = "pippin.examples_seen"


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "update", parents=parents, help="update an updatable model with new labelled examples",
        description=__doc__.splitlines()[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("model", metavar="MODEL", help="an updatable .mlmodel file")
    parser.add_argument("data", metavar="DATA", help="NPZ file, CSV/Parquet table, or labelled audio folder/table")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the updated model")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the model's own setting)")
    parser.add_argument("--learning-rate", type=float, default=None, help="override the optimizer's learning rate")
    parser.add_argument("--batch-size", type=int, default=None, help="override the mini-batch size")
    parser.add_argument("--overlap", type=float, default=0.5, help="audio window overlap in [0, 1) (default: 0.5)")
    parser.set_defaults(handler=run)
    return parser


def is_audio_data(path: Path, model) -> bool:
    """Whether DATA should be read as labelled audio for this model."""
    if not _audio_input(model):
        return False
    if path.is_dir():
        return True
    if path.suffix.lower() in (".csv", ".tsv", ".tab"):
        header = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()[:1]
        return bool(header) and "path" in [c.strip() for c in header[0].replace("\t", ",").replace(";", ",").split(",")]
    return False


def _audio_input(model) -> str | None:
    """The model's audio input name, or None when it takes no audio windows."""
    from ...audio.errors import AudioError
    from ...audio.inference import audio_input

    try:
        return audio_input(model)[0]
    except AudioError:
        return None


def read_labelled_windows(source, model, *, overlap: float = 0.5, ahead=None):
    """(windows [shape=(n_windows, window_samples)], labels [shape=(n_windows,)], n_files) of labelled audio.

    Windows are cut as the model's audio input takes them (its length and sample rate,
    ``pippin.audio.inference.audio_input``); every window of a file gets the file's label.
    ``ahead``: an ``audio_ahead.ReadAhead`` whose child read these files first (``first=source``),
    whose windows are then taken instead of reading them here (the same bytes).
    """
    from ...audio.inference import audio_input, window_align
    from ...audio.io import read_windows  # lazy: the CLI may use the audio layer
    from ...datasets import load_sound_dataset

    _, window, rate = audio_input(model)
    dataset = (ahead.listing(source, first=True) if ahead is not None else None) or load_sound_dataset(source)
    info(f"reading {len(dataset)} audio file{'s' if len(dataset) != 1 else ''} from {dataset.source or source}")
    align = window_align(model)
    got = ahead.take_first(dataset.paths, (overlap, window, rate, align)) if ahead is not None else None
    if got is not None:  # read by the read-ahead child while the model loaded
        windows, counts = got
        return windows, [label for label, count in zip(dataset.labels, counts) for _ in range(count)], len(dataset)

    def read(path):
        return read_windows(path, overlap=overlap, warn_short=False, sample_rate=rate, window=window, align=align)[1]

    # one file after another: a short recording decodes and resamples in ~0.3 ms, and threads doing such small
    # calls queue for the GIL (2,727 FSDD files: 0.6-0.75 s here, 1.9-2.1 s and twice the CPU on a 2-thread
    # pool); forked readers lose the gain again sending the windows back (0.98-1.01 s)
    parts = [read(p) for p in dataset.paths]
    windows, labels = [], []
    for w, label in zip(parts, dataset.labels):
        windows.append(w)
        labels.extend([label] * len(w))
    return np.concatenate(windows), labels, len(dataset)


def label_input(spec, *, exclude: str) -> str:
    """The training input that carries the label (the one that is not ``exclude``)."""
    names = [f.name for f in training_inputs(spec) if f.name != exclude]
    if spec.description.predictedFeatureName in names:
        return spec.description.predictedFeatureName
    if not names:
        raise PipelineError("the model declares no label training input", where="description.trainingInput")
    return names[0]


def load_audio_examples(source, model, *, overlap: float = 0.5) -> tuple[dict[str, Any], int]:
    """(training data, n_files) from labelled audio: every window of a file gets its label."""
    audio = _audio_input(model)
    windows, labels, n_files = read_labelled_windows(source, model, overlap=overlap)
    label_name = label_input(model.spec, exclude=audio)
    return {audio: windows, label_name: np.array(labels, dtype=object)}, n_files


class ProgressReporter:
    """A progress callback for ``update``: draws a tqdm bar (optional) and records losses.

    Accepts events as dicts or objects with ``event``/``epoch``/``batch``/``loss``.
    """

    def __init__(self, *, show: bool, total_epochs: int | None):
        self.losses: list[float] = []
        self.epoch_losses: list[float] = []
        self.n_epochs = 0
        self.bar = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=total_epochs, unit="epoch", file=sys.stderr, desc="update")

    @staticmethod
    def _get(event, key, default=None):
        if isinstance(event, dict):
            return event.get(key, default)
        return getattr(event, key, default)

    def __call__(self, event=None, **kwargs):
        event = kwargs if event is None else event
        kind = str(self._get(event, "event", self._get(event, "kind", "")))
        loss = self._get(event, "loss")
        if loss is not None and np.isfinite(float(loss)):
            self.losses.append(float(loss))
        if "epoch" in kind and "end" in kind:
            if loss is not None:
                self.epoch_losses.append(float(loss))
            self.n_epochs += 1  # one plain line per epoch too (a terminal's bar is redrawn below it; none under -q)
            info(f"epoch {self.n_epochs}: loss " + ("-" if loss is None else f"{float(loss):.4f}"))
            if self.bar is not None:
                self.bar.update(1)
                if loss is not None:
                    self.bar.set_postfix(loss=f"{float(loss):.4f}")
        return None

    def close(self):
        if self.bar is not None:
            self.bar.close()


def record_examples(spec, n: int) -> None:
    """Add ``n`` to the model's ``pippin.examples_seen`` metadata (used by ``pippin diff``/``merge``)."""
    meta = spec.description.metadata.userDefined
    meta[EXAMPLES_KEY] = str(int(meta.get(EXAMPLES_KEY, "0")) + int(n))


def _read_ahead(args):
    """Labelled audio files for an updatable sound pipeline: a child reading them while the model loads
    (``audio_ahead.ReadAhead``; on 2+ CPUs), or None."""
    data_path = Path(args.data)
    if not (data_path.is_dir() or data_path.suffix.lower() in (".csv", ".tsv", ".tab")):
        return None
    try:
        spec = spec_io.load(args.model)
    except Exception:  # the model's own load reports it
        return None
    kind = spec.WhichOneof("Type")
    if kind not in ("pipeline", "pipelineClassifier", "pipelineRegressor") or not spec.isUpdatable:
        return None
    stages = (spec.pipeline if kind == "pipeline" else getattr(spec, kind).pipeline).models
    if not stages or not stages[-1].WhichOneof("Type").startswith("neuralNetwork"):
        return None  # an updatable k-NN appends windows: nothing frozen to run, the files are read as before
    if not is_audio_data(data_path, SpecView(spec, args.model)):
        return None
    small_pages()  # each process's first chunk of frozen layers faults its memory in 4 kB pages: see audio_ahead
    return ReadAhead.of(data_path, spec, overlap=args.overlap, where=args.model)


def run(args):
    spec_io.check_output_path(args.output)  # before the training run, not after it (issue 12.8)
    ahead = _read_ahead(args)  # on 2+ CPUs the files are read while the model, layers and kernels load
    try:
        return _run(args, ahead)
    finally:
        if ahead is not None:
            ahead.close()


def _run(args, ahead):
    model = load(args.model)
    if not model.is_updatable:
        raise PipelineError("the model is not updatable (isUpdatable is false)", where=args.model,
                            hint="see 'pippin personalize' to make a sound classifier updatable")
    data_path = Path(args.data)
    n_files = frozen = None
    if is_audio_data(data_path, model):
        prepared = frozen_examples(data_path, model, overlap=args.overlap, ahead=ahead)  # files to blobs, every core
        if prepared is not None:
            frozen, labels, n_files = prepared
            data = {label_input(model.spec, exclude=_audio_input(model)): np.array(labels, dtype=object)}
        else:
            data, n_files = load_audio_examples(data_path, model, overlap=args.overlap)
    elif data_path.is_dir():
        raise PipelineError("DATA is a folder but the model takes no 975 ms audio input", where=args.data,
                            hint="give an NPZ file or a CSV/Parquet table of the training inputs")
    else:
        data = load_training_data(data_path, model.spec)
    gc_hold.release()  # (done earlier, before the readers fork, when the files went to FileBlobs)
    overrides = {k: v for k, v in (("learning_rate", args.learning_rate), ("mini_batch_size", args.batch_size))
                 if v is not None}
    reporter = ProgressReporter(show=args.show_progress, total_epochs=args.epochs)
    info(f"updating the {model.kind} with {n_examples(data)} examples")
    try:
        if frozen is not None:
            overrides["frozen"] = frozen
        updated = model.update(data, epochs=args.epochs, progress=reporter, **overrides)
    finally:
        reporter.close()
    n = n_examples(data)
    record_examples(updated.spec, n)
    out = spec_io.save(updated.spec, args.output)
    payload = {"model": str(out), "kind": model.kind, "n_examples": n, "losses": reporter.epoch_losses}
    if n_files is not None:
        payload["n_files"] = n_files
    text = f"updated {model.kind} with {n} examples" + (f" from {n_files} files" if n_files else "")
    if reporter.epoch_losses:
        text += f"; loss {reporter.epoch_losses[0]:.4f} -> {reporter.epoch_losses[-1]:.4f}"
    return Result(payload, f"{text}\nwrote {out}")
