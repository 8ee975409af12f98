"""``pippin evaluate MODEL DATA``: a sound classifier's accuracy on labelled audio (called by evaluate_cmd)."""

from __future__ import annotations

from ...spec.errors import SpecError
from .output import Result, info
from .predict_cmd import model_overlap
from .train_sound import sound_data


def run(args, spec) -> Result:
    from ...audio.classifier import evaluate_model
    from ..runtime.model import load

    if not args.data:
        raise SpecError("a sound classifier needs DATA: a labelled audio folder or a path,label table",
                        where=args.model)
    model = load(args.model)
    data = sound_data(args)
    if getattr(args, "show_lines", True):
        n = f"{len(data)} files" if hasattr(data, "paths") else args.data
        info(f"classifying {n}")
    report = evaluate_model(model, data, overlap=model_overlap(model, args.overlap),
                            progress=args.show_progress)
    if args.plot:
        from ...audio.plot import plot_confusion_matrix

        report["plot"] = str(plot_confusion_matrix(report, args.plot, title=f"{args.model} on {args.data}"))
    lines = [f"accuracy {report['accuracy']:.4f} on {report['n_clips']} clips"
             + (f" ({len(report['skipped'])} skipped)" if report["skipped"] else "")]
    width = max(len(label) for label in report["labels"])
    lines.append(f"{'label':<{width}}  precision  recall     f1  support")
    for label, m in report["per_class"].items():
        lines.append(f"{label:<{width}}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:5.4f}  {m['support']:7d}")
    for s in report["skipped"]:
        lines.append(f"skipped {s['path']}: {s['reason']}")
    if args.plot:
        lines.append(f"wrote {report['plot']}")
    return Result(report, "\n".join(lines))
