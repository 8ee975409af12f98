"""Interaction-table flags shared by ``train recommender``, ``recommend`` and ``evaluate``.

``--sep`` and ``--columns`` read header-less files such as MovieLens' ``u.data``
(``--sep '\\t' --columns user_id,item_id,rating,ts``). A model trained by Pippin records
its training columns in its metadata; ``rating_default`` makes the recorded rating
column the default ``--rating-col`` of a table that has it, so a model trained on
ratings is scored on ratings without repeating the flag.
"""

from __future__ import annotations

__all__ = ["add_table_options", "table_options", "load_table", "recorded_rating", "add_split_options", "split"]


def add_table_options(parser) -> None:
    """Add ``--sep`` and ``--columns`` to ``parser`` (or an argument group)."""
    parser.add_argument("--sep", default=None, metavar="SEP",
                        help="field separator of the table(s): a character, or '\\t'/tab, space, whitespace "
                             "(default: from the extension: .tsv/.data tab, else comma)")
    parser.add_argument("--columns", default=None, metavar="A,B,...",
                        help="column names of a header-less table, in file order, e.g. "
                             "user_id,item_id,rating,ts (its first line is then data)")


def table_options(args) -> dict:
    """``sep`` and ``columns`` keywords for ``load_interactions`` from the parsed flags."""
    from ...spec.errors import PippinError

    columns = None
    if getattr(args, "columns", None):
        columns = [c.strip() for c in args.columns.split(",")]
        if any(not c for c in columns) or len(set(columns)) != len(columns):
            raise PippinError(f"--columns {args.columns!r}; expected distinct names separated by commas",
                              where="--columns")
    return {"sep": getattr(args, "sep", None), "columns": columns}


def load_table(args, path, *, rating: str | None, rating_default: str | None = None):
    """``load_interactions`` with the flags; ``rating_default`` is used when ``rating`` is None
    and the table has that column. Returns ``(table, rating_column_used)``."""
    from ...datasets.errors import DatasetError
    from ...datasets.interactions import load_interactions

    options = table_options(args)
    if rating is None and rating_default:
        try:
            return load_interactions(path, user=args.user_col, item=args.item_col, rating=rating_default,
                                     **options), rating_default
        except DatasetError as exc:
            if not exc.message.startswith(f"no rating column {rating_default!r}"):
                raise
    return load_interactions(path, user=args.user_col, item=args.item_col, rating=rating, **options), rating


def recorded_rating(spec) -> str | None:
    """The rating column a Pippin recommender was trained with (None without ratings or record)."""
    return spec.description.metadata.userDefined.get("rating_column") or None


def add_split_options(parser) -> None:
    """``--holdout-fraction`` and ``--seed``: the per-user random split of ``random_holdout``."""
    parser.add_argument("--holdout-fraction", type=float, default=None, metavar="F",
                        help="hold out a random share F of each user's interactions (pippin.recommend."
                             "random_holdout); train and evaluate with the same F and --seed make the same split")
    parser.add_argument("--seed", type=int, default=0, help="seed of --holdout-fraction's split (default: 0)")


def split(args, table):
    """``(train, held_out)`` of ``table`` under ``--holdout-fraction``/``--seed`` (held_out None without)."""
    from ...recommend.evaluate import random_holdout
    from ...spec.errors import PippinError

    fraction = getattr(args, "holdout_fraction", None)
    if fraction is None:
        return table, None
    if not 0 < fraction < 1:
        raise PippinError(f"--holdout-fraction {fraction:g}; expected a number in (0, 1)")
    train, test = random_holdout(table, user=args.user_col, fraction=fraction, seed=args.seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)
