"""``pippin personalize SOUND_MODEL EXAMPLES -o OUT``: teach a sound classifier new sounds from a few recordings.

EXAMPLES is a folder with one sub-folder per label (or a ``path,label`` table) of
the user's recordings: new labels, or more examples of old ones. By default the
model becomes ``preprocessing -> embedding network -> updatable k-NN``; the k-NN
remembers the old classes from ``--base-examples`` (default: the training data
recorded in the model's metadata, when that folder still exists), or else from
synthesized prototypes (weaker). ``--head`` instead grows the dense head by the
new labels and updates it (Core ML 3 update) on the examples.
"""

from __future__ import annotations

import json
from pathlib import Path


from ...spec import io as spec_io
from ..personalize.sound import personalize_head, personalize_knn, sound_parts
from ..runtime.model import load
from .exit_codes import HELP_EPILOG
from .output import Result, warn
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
    parser.add_argument("--head", action="store_true", help="grow and update the dense head instead of a k-NN")
    knn = parser.add_argument_group("k-NN (default)")
    knn.add_argument("--neighbors", type=int, default=3, help="k (default: 3)")
    knn.add_argument("--weighting", choices=("inverse_distance", "uniform"), default="inverse_distance")
    parser.add_argument("--max-per-class", type=int, default=None,
                        help="old-class memory per class: k-NN centroids (default: 20), or --head training windows "
                             "(default: 100)")
    head = parser.add_argument_group("--head")
    head.add_argument("--epochs", type=int, default=None, help="update epochs (default: the model's own)")
    head.add_argument("--learning-rate", type=float, default=None, help="override the learning rate")
    parser.add_argument("--overlap", type=float, default=0.5, help="audio window overlap in [0, 1) (default: 0.5)")
    parser.set_defaults(handler=run)
    return parser


def training_source(spec) -> Path | None:
    """The training data folder/table a sound model's metadata records, if it still exists."""
    raw = spec.description.metadata.userDefined.get("training_data")
    try:
        source = json.loads(raw).get("source", "") if raw else ""
    except (ValueError, AttributeError):
        return None
    candidates = [source] + ([source.rsplit(" in ", 1)[1]] if " in " in source else [])
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def run(args):
    spec = spec_io.load(args.model)
    sound_parts(spec)  # fail early, naming the model, if it is not a sound classifier
    old = [str(x) for x in load(sound_parts(spec)[1]).class_labels]
    model = load(spec)
    windows, labels, n_files = read_labelled_windows(args.examples, model, overlap=args.overlap)
    base_path = Path(args.base_examples) if args.base_examples else training_source(spec)
    base = None
    if base_path is not None:
        base_windows, base_labels, _ = read_labelled_windows(base_path, model, overlap=args.overlap)
        base = (base_windows, base_labels)
    elif not args.head:
        warn("no old-class recordings (--base-examples) found: old classes are remembered by synthesized "
             "prototypes only, and may lose accuracy")
    new = sorted(set(labels) - set(old))
    payload = {"model": None, "mode": "head" if args.head else "knn", "old_labels": old, "new_labels": new,
               "n_files": n_files, "n_windows": len(windows),
               "base_examples": str(base_path) if base_path else None}
    if args.head:
        overrides = {"learning_rate": args.learning_rate} if args.learning_rate is not None else {}
        reporter = ProgressReporter(show=args.show_progress, total_epochs=args.epochs)
        try:
            out_spec = personalize_head(spec, (windows, labels), base_examples=base, epochs=args.epochs,
                                        progress=reporter, max_per_class=args.max_per_class or 100, **overrides)
        finally:
            reporter.close()
        payload["losses"] = reporter.epoch_losses
    else:
        out_spec = personalize_knn(spec, (windows, labels), base_examples=base, k=args.neighbors,
                                   weighting=args.weighting, max_per_class=args.max_per_class or 20)
        payload["memory"] = out_spec.description.metadata.userDefined["personalized"]
    out = spec_io.save(out_spec, args.output)
    payload["model"] = str(out)
    text = (f"personalized ({payload['mode']}): {len(old)} old labels + new {new} from {n_files} recordings"
            f" ({len(windows)} windows)\nwrote {out}")
    return Result(payload, text)
