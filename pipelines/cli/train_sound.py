"""``pippin train sound DATA -o MODEL``: train a sound classifier and export it as a Core ML pipeline."""

from __future__ import annotations

import re
from pathlib import Path

from ...audio.defaults import DEFAULTS, FEATURE_EXTRACTORS
from .exit_codes import HELP_EPILOG
from .output import Result, info, warn


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "sound", parents=parents, help="train a sound classifier from labelled audio",
        description="Train a sound classifier and export it as a Core ML 3 pipeline: with --feature-extractor "
                    "sounds or speech, a pretrained frozen backbone + a small updatable head (backbone layers -> "
                    "NeuralNetworkClassifier), which learns from a few clips per label; auto (default) picks the "
                    "backbone whose head cross-validates best on DATA; scratch trains the VGGish log-mel front "
                    "end + a small CNN from scratch (SoundAnalysisPreprocessing -> NeuralNetworkClassifier).",
        epilog="DATA is a folder with one sub-folder per label, or a CSV/TSV table with columns path,label "
               "(relative paths resolved from the table's folder). " + HELP_EPILOG,
    )
    parser.add_argument("data", metavar="DATA", help="labelled audio folder or path,label table")
    parser.add_argument("--label-from-name", metavar="REGEX", default=None,
                        help="DATA is a folder of files whose names carry the label: the regex's group 'label', "
                             "else its first group, else the whole match (re.search on the file name); other "
                             "files are left out, e.g. FSDD: '^(\\d)_' ")
    parser.add_argument("-o", "--output", metavar="MODEL", required=True, help="the .mlmodel file to write")
    parser.add_argument("--feature-extractor", choices=FEATURE_EXTRACTORS, default="auto",
                        help="auto: the backbone whose head cross-validates best on DATA (default); sounds: "
                             "pretrained general-sounds backbone; speech: pretrained speech backbone; scratch: "
                             "log-mel CNN trained from scratch (needs thousands of clips)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="maximum epochs (default: the extractor's, " + _defaults("epochs") + ")")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="mini-batch size (default: " + _defaults("batch_size") + ")")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="Adam learning rate (default: " + _defaults("learning_rate") + ")")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--validation-fraction", type=float, default=None,
                        help="share of each label's files held out for early stopping (default: "
                             + _defaults("validation_fraction") + ")")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs (default: 5)")
    parser.add_argument("--overlap", type=float, default=0.5, help="window overlap in [0, 1) (default: 0.5)")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="train on the patches as they are (default: random time shifts and masks)")
    parser.set_defaults(handler=run)
    return parser


def _defaults(name: str) -> str:
    return ", ".join(f"{extractor} {values[name]:g}" for extractor, values in DEFAULTS.items())


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


# SoundClassifier parameter -> the flag that sets it, so errors name what the user typed
FLAGS = {"epochs": "--epochs", "batch_size": "--batch-size", "learning_rate": "--learning-rate",
         "validation_fraction": "--validation-fraction", "early_stopping_patience": "--patience",
         "overlap": "--overlap", "feature_extractor": "--feature-extractor", "random_state": "--seed"}


def flag_error(exc, flags: dict = FLAGS):
    """A trainer's ``param=value, expected ...`` error re-worded for the flag that set it (or None)."""
    match = re.match(r"^(\w+)=(.*?), (expected .*)$", exc.message)
    if not match or match[1] not in flags:
        return None
    return type(exc)(f"{flags[match[1]]} {match[2]}; {match[3]}", hint=exc.hint)


def sound_data(args):
    """DATA as a dataset: with --label-from-name, the files of a flat folder labelled by their names."""
    if not getattr(args, "label_from_name", None):
        return args.data
    from ...datasets.sound import load_sound_named

    data = load_sound_named(args.data, args.label_from_name)
    if data.extra.get("unmatched"):
        n = data.extra["unmatched"]
        info(f"{plural(n, 'audio file')} {'does' if n == 1 else 'do'} not match --label-from-name and "
             f"{'is' if n == 1 else 'are'} left out")
    return data


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def run(args) -> Result:
    from ...audio.classifier import SoundClassifier  # the trainer is loaded only for this command
    from ...datasets.sound import load_sound_dataset
    from ...spec.errors import PippinError
    from ...spec.io import check_output_path

    check_output_path(args.output)  # before the training run, not after it (issue 12.8)
    show = getattr(args, "show_lines", True)

    def on_epoch(row: dict) -> None:
        if show:
            info(f"epoch {row.get('epoch')}: loss {_fmt(row.get('loss'))}, "
                 f"train accuracy {_fmt(row.get('train_accuracy'))}, "
                 f"validation loss {_fmt(row.get('val_loss'))}, validation accuracy {_fmt(row.get('val_accuracy'))}")

    classifier = SoundClassifier(
        feature_extractor=args.feature_extractor, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        validation_fraction=args.validation_fraction, early_stopping_patience=args.patience,
        overlap=args.overlap, augment=args.augment, random_state=args.seed, progress=args.show_progress,
    )
    try:
        data = load_sound_dataset(sound_data(args))
        if show and len(data.classes) > 1:
            info(f"training a sound classifier ({args.feature_extractor}) on {plural(len(data), 'file')} "
                 f"with {plural(len(data.classes), 'label')}: reading the audio, then one line per epoch")
        classifier.fit(data, on_epoch=on_epoch)
    except PippinError as exc:
        raise (flag_error(exc) or exc) from None
    for skipped in classifier.skipped_:
        warn(f"skipped {skipped['path']}: {skipped['reason']}")  # the same line the reader logged: printed once
    path = classifier.export(args.output)
    summary = classifier.training_summary_
    history = classifier.history_rows_
    payload = {
        "model": str(Path(path)),
        "labels": [str(x) for x in classifier.classes_],
        "training_data": summary,
        "history": history,
        "skipped": classifier.skipped_,
    }
    last = history[-1] if history else {}
    text = (f"wrote {path}: {len(payload['labels'])} labels, {summary['n_files']} files "
            f"({summary['n_windows']} windows), {plural(len(history), 'epoch')}; "
            f"final train accuracy {_fmt(last.get('train_accuracy'))}, "
            f"validation accuracy {_fmt(last.get('val_accuracy'))}")
    return Result(payload, text)
