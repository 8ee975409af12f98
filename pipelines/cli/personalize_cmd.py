"""``pippin personalize SOUND_MODEL EXAMPLES -o OUT``: teach a sound classifier new sounds from a few recordings.

EXAMPLES is a folder with one sub-folder per label (or a ``path,label`` table) of
the user's recordings: new labels, or more examples of old ones. By default the
model becomes ``preprocessing -> embedding network -> updatable k-NN``; the k-NN
remembers the old classes from ``--base-examples``, by default from the embedding
memory the model carries (written by ``pippin train sound``, so the result does not
depend on the working directory or on the training folder still existing), else
from the training data the metadata records (its absolute path, or the recorded path
relative to the model file, then to the working directory). ``--head`` instead grows
the dense head by the new labels and updates it (Core ML 3 update) on the examples
plus the old classes' recordings (``--base-examples`` or the recorded training data).
When no old-class examples are found the command stops (exit 2, naming the paths
tried) unless ``--without-old-examples`` is given. The personalization's example
count (its windows) is added to the ``pippin.examples_seen`` metadata, which
``pippin diff`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...spec import io as spec_io
from ..errors import PipelineError
from ..runtime.model import load
from .audio_ahead import ReadAhead, small_pages
from . import gc_hold
from .audio_prefix import FileBlobs
from .exit_codes import HELP_EPILOG
from .output import Result, info, warn
from .update_cmd import ProgressReporter, read_labelled_windows


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "personalize", parents=parents, help="teach a sound classifier new sounds from a few recordings",
        description=__doc__.splitlines()[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("model", metavar="SOUND_MODEL", help="a sound classifier from 'pippin train sound'")
    parser.add_argument("examples", metavar="EXAMPLES", help="folder with one sub-folder per label, or path,label table")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the personalized model")
    parser.add_argument("--base-examples", metavar="DATA", default=None,
                        help="old-class recordings to remember (default: the model's training data, if present)")
    parser.add_argument("--without-old-examples", action="store_true",
                        help="go on when no old-class recordings (and, for the k-NN, no embedding memory) are found: "
                             "the k-NN remembers old classes by synthesized prototypes, --head forgets them")
    parser.add_argument("--head", action="store_true", help="grow and update the dense head instead of a k-NN")
    knn = parser.add_argument_group("k-NN (default)")
    knn.add_argument("--neighbors", type=int, default=3, help="k (default: 3)")
    knn.add_argument("--weighting", choices=("inverse_distance", "uniform"), default="inverse_distance")
    parser.add_argument("--max-per-class", type=int, default=None,
                        help="old-class memory per class: k-NN centroids (default: 20; the model's embedding memory "
                             "holds at most 20, --base-examples gives more), or --head training windows (default: 100)")
    head = parser.add_argument_group("--head")
    head.add_argument("--epochs", type=int, default=None, help="update epochs (default: the model's own)")
    head.add_argument("--learning-rate", type=float, default=None, help="override the learning rate")
    parser.add_argument("--overlap", type=float, default=0.5, help="audio window overlap in [0, 1) (default: 0.5)")
    parser.set_defaults(handler=run)
    return parser


def training_sources(spec, model_path) -> tuple[Path | None, list[str]]:
    """The training data folder/table a sound model's metadata records: (the first that exists, every path tried).

    Tried in order: the absolute path recorded at training (``source_path``), then the
    recorded ``source`` (and the folder after " in "/" of " in a described source) as
    given, relative to the model file's own folder, then relative to the working directory.
    """
    summary = _training_summary(spec)
    if summary is None:
        return None, []
    source = str(summary.get("source") or "")
    recorded = summary.get("source_path")
    names = [source] + [source.rsplit(sep, 1)[1] for sep in (" in ", " of ") if sep in source]
    candidates = [Path(recorded)] if recorded else []
    for name in filter(None, names):
        path = Path(name)
        candidates += [path] if path.is_absolute() else [Path(model_path).resolve().parent / path, path.resolve()]
    tried = list(dict.fromkeys(str(c) for c in candidates))
    return next((Path(c) for c in tried if Path(c).exists()), None), tried


def _old_examples(args, spec, model):
    """(old-class windows and labels or None, where they came from) for the personalization; refuses when
    the old classes would be remembered by nothing real without the user asking for it."""
    source, base_from = _old_source(args, spec)
    if source is None:
        return None, base_from
    windows, labels, _ = read_labelled_windows(source, model, overlap=args.overlap)
    return (windows, labels), base_from


def _old_source(args, spec):
    """(the old-class recordings to read (a path or a dataset) or None, where they come from); see ``_old_examples``."""
    if args.base_examples:
        if not Path(args.base_examples).exists():
            raise PipelineError("no such file or folder", where=args.base_examples)
        path = Path(args.base_examples)
    else:
        from ..personalize.memory import memory_of

        if not args.head and memory_of(spec, where=args.model) is not None:
            return None, "the model's embedding memory"
        path, tried = training_sources(spec, args.model)
        if path is None:
            if args.without_old_examples:
                if not args.head:  # (personalize_head logs its own warning)
                    warn("no old-class recordings: old classes are remembered by synthesized prototypes only, "
                         "and may lose accuracy")
                return None, None
            missing = ", ".join(repr(t) for t in tried) or "none recorded"
            raise PipelineError(
                f"the old classes' training recordings are not found (tried {missing})"
                + ("" if args.head else " and the model carries no valid embedding memory"),
                where=args.model,
                hint="give them with --base-examples DIR, or pass --without-old-examples to go on without them "
                     "(old-class accuracy may drop)")
    source = path
    pattern = _recorded_label_pattern(spec) if not args.base_examples else None
    if pattern and path.is_dir():  # trained with --label-from-name: the same files, labelled the same way
        from ...datasets.sound import load_sound_named

        source = load_sound_named(path, pattern)
    return source, str(path)


def _old_files(args, spec, model, examples, source, ahead):
    """``(old-class examples, the grown model, the new windows' frozen blobs or None)`` for ``--head``.

    The old recordings (``source``, from ``_old_source``; None: none) are read on every core
    (``audio_prefix.FileBlobs`` of the original ``model``, whose frozen layers are the grown
    model's), then the windows the head trains on (``old_picks``) and the new windows run
    through the frozen layers together, spread over the processes; the new windows'
    embeddings (for the imprinted rows) come from their blobs. Without them, the old
    recordings are read as windows. The caller closes a ``FileBlobs``.
    """
    from ..personalize.head import embeddings_of_blobs, grown_head, old_picks
    from ..personalize.sound import sound_parts

    files = FileBlobs.of(source, model, overlap=args.overlap, ahead=ahead) if source is not None else None
    string_labels = sound_parts(spec)[1].neuralNetworkClassifier.WhichOneof("ClassLabels") == "stringClassLabels"
    if files is None or not string_labels:
        if files is not None:
            files.close()
        grown = grown_head(spec, examples)  # (names a model without string labels)
        if source is None:
            return None, grown, None
        windows, labels, _ = read_labelled_windows(source, model, overlap=args.overlap)
        return (windows, labels), grown, None
    try:
        windows = np.asarray(examples[0], dtype=np.float32)
        picks = (old_picks(spec, examples[1], files.labels, max_per_class=args.max_per_class or 100)
                 if args.epochs != 0 else np.zeros(0, dtype=np.int64))
        _, mine = files.blobs(picks, extra=windows)  # kept: personalize_head asks for the same picks
        files.finish()  # the forked processes exit while the head grows and trains
        embeddings = embeddings_of_blobs(spec, files.prefix, mine)
        return files, grown_head(spec, examples, embeddings=embeddings), mine
    except BaseException:
        files.close()
        raise


def _training_summary(spec) -> dict | None:
    """The training summary in the model's metadata (``training_data``): {} when absent, None when unreadable."""
    raw = spec.description.metadata.userDefined.get("training_data")
    try:
        summary = json.loads(raw) if raw else {}
    except ValueError:
        return None
    return summary if isinstance(summary, dict) else None


def _recorded_label_pattern(spec) -> str | None:
    """The ``--label-from-name`` regex the model was trained with (training summary), if any."""
    pattern = (_training_summary(spec) or {}).get("label_from_name")
    return pattern if isinstance(pattern, str) and pattern else None


def run(args):
    spec_io.check_output_path(args.output)  # before the work, not after it (issue 12.8)
    small_pages()  # each process's first chunk of layers faults its memory in 4 kB pages: see audio_ahead
    spec = spec_io.load(args.model)
    ahead = None
    if args.head:  # on 2+ CPUs a child reads the recordings while the model, layers and kernels load
        try:
            source, _ = _old_source(args, spec)
        except PipelineError:  # raised again below, after the model's own checks
            source = None
        ahead = (ReadAhead.of(source, spec, overlap=args.overlap, where=args.model, first=args.examples)
                 if source is not None else None)  # the user's recordings first, then the old ones
    try:
        return _run(args, spec, ahead)
    finally:
        if ahead is not None:
            ahead.close()


def _run(args, spec, ahead):
    from ..personalize.head import personalize_head
    from ..personalize.sound import personalize_knn, sound_parts

    sound_parts(spec)  # fail early, naming the model, if it is not a sound classifier
    old = [str(x) for x in load(sound_parts(spec)[1]).class_labels]
    model = load(spec)
    windows, labels, n_files = read_labelled_windows(args.examples, model, overlap=args.overlap, ahead=ahead)
    new_blobs = None
    if args.head:  # the old recordings' frozen blobs on every core, for the windows the head trains on
        source, base_from = _old_source(args, spec)
        base, grown, new_blobs = _old_files(args, spec, model, (windows, labels), source, ahead)
    else:
        base, base_from = _old_examples(args, spec, model)
    gc_hold.release()  # (done earlier, before the readers fork, when the old recordings went to FileBlobs)
    new = sorted(set(labels) - set(old))
    payload = {"model": None, "mode": "head" if args.head else "knn", "old_labels": old, "new_labels": new,
               "n_files": n_files, "n_windows": len(windows), "n_examples": len(windows),
               "base_examples": base_from}
    n_old = None if base is None else len(base.labels) if hasattr(base, "labels") else len(base[0])
    if args.head:  # the head trains on the class-balanced windows only (see personalize_head)
        info(f"personalizing (head): {len(windows)} new" + (f" and {n_old} old" if base is not None else "")
             + f" windows; the head trains on a class-balanced subset (up to {args.max_per_class or 100} windows"
             " per old label), one line per epoch")
    else:
        info(f"personalizing (knn): running {len(windows)} new" + (f" and {n_old} old" if base is not None else "")
             + " windows through the network")
    if args.head:
        overrides = {"learning_rate": args.learning_rate} if args.learning_rate is not None else {}
        reporter = ProgressReporter(show=args.show_progress, total_epochs=args.epochs)
        try:
            out_spec = personalize_head(spec, (windows, labels), base_examples=base, epochs=args.epochs,
                                        progress=reporter, max_per_class=args.max_per_class or 100, grown=grown,
                                        new_blobs=new_blobs, **overrides)
        finally:
            reporter.close()
            if hasattr(base, "close"):
                base.close()
        payload["losses"] = reporter.epoch_losses
    else:
        explicit = "prototypes" if base is None and base_from is None else base  # the user chose them
        out_spec = personalize_knn(spec, (windows, labels), base_examples=explicit, k=args.neighbors,
                                   weighting=args.weighting, max_per_class=args.max_per_class or 20)
        payload["memory"] = out_spec.description.metadata.userDefined["personalized"]
    out = spec_io.save(out_spec, args.output)
    payload["model"] = str(out)
    text = (f"personalized ({payload['mode']}): {len(old)} old labels + new {new} from {n_files} recordings"
            f" ({len(windows)} windows); old classes from "
            f"{base_from or ('nothing: new examples only' if args.head else 'synthesized prototypes')}\nwrote {out}")
    return Result(payload, text)
