"""``pippin predict MODEL FILE...``: classify audio files with a sound-classifier model.

Each file is cut into 975 ms windows; the output has, per file, the clip label
(the arg-max of the mean window probabilities), its probability, and one row per
window with its start and end in seconds.
"""

from __future__ import annotations

from . import exit_codes
from .exit_codes import HELP_EPILOG
from .output import Result, info, terminal_safe


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "predict", parents=parents, help="classify audio files with a sound classifier",
        description=__doc__.split("\n\n")[0],
        epilog="Unreadable files are reported (stderr, or 'skipped' under --json) and the others still run; "
               "exit code 2 if any file was skipped. " + HELP_EPILOG,
    )
    parser.add_argument("model", metavar="MODEL", help="a sound-classifier .mlmodel")
    parser.add_argument("files", metavar="FILE", nargs="+", help="audio files (wav, flac, ogg, mp3, ...)")
    parser.add_argument("--overlap", type=float, default=None,
                        help="window overlap in [0, 1) (default: the model's, else 0.5)")
    parser.set_defaults(handler=run)
    return parser


def model_overlap(model, override: float | None) -> float:
    """The overlap to use (``pippin.audio.inference.model_overlap``: the override, the model's, else 0.5)."""
    from ...audio.inference import model_overlap as overlap_of

    return overlap_of(model, override)


def run(args) -> Result:
    from ...audio.inference import classify_files
    from ..runtime.model import load

    model = load(args.model)
    if getattr(args, "show_lines", True) and len(args.files) > 1:
        info(f"classifying {len(args.files)} files")
    results, skipped = classify_files(model, args.files, overlap=model_overlap(model, args.overlap),
                                      progress=args.show_progress)
    lines = []
    for r in results:
        lines.append(f"{r['path']}: {r['label']} ({r['probability']:.3f})")
        if args.verbose > 0 or len(r["windows"]) > 1:
            lines.extend(f"  {w['start']:8.3f}-{w['end']:8.3f} s  {w['label']} ({w['probability']:.3f})"
                         for w in r["windows"])
    for s in skipped:
        lines.append(f"pippin: warning: skipped {s['path']}: {s['reason']}")
    code = exit_codes.ERROR if skipped else exit_codes.OK
    if skipped and not args.json:
        import sys

        for s in skipped:
            sys.stderr.write(terminal_safe(f"pippin: error: {s['path']}: {s['reason']}", one_line=True) + "\n")
        lines = [line for line in lines if not line.startswith("pippin: warning")]
    return Result({"predictions": results, "skipped": skipped}, "\n".join(lines), code)
