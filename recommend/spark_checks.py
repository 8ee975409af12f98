"""Parameter and data checks of ``pippin.recommend.spark``'s fit, as Spark column expressions.

The data rules are the single-machine ones (``datasets.interactions``): integer id columns
(and integer-valued float columns) are int64 ids, anything else text; an id must be
non-empty, a rating finite. ``id_checks`` gives each role's column and its failure test;
the staged and multi-tile plans sum the failures in one aggregation (``validated``), the
single-tile plan checks nulls of integer ids and non-finite ratings in its only task and
ships the other checks (text and float ids: ``jvm_checked``) as one bit field per row
(``bad_bits``), only when there are any (an int column costs time through Arrow).
Either way a failure is one ``RecommendError`` naming the column (``raise_bad``).
"""

from __future__ import annotations

import numpy as np

from ..datasets.spark import check_columns
from .errors import RecommendError
from .similarity import SIMILARITIES

__all__ = ["check_params", "id_checks", "jvm_checked", "bad_bits", "raise_bad", "validated", "ROLES"]

#: the checked roles, in the order their failures are reported (and their bit in ``bad_bits``: 1, 2, 4)
ROLES = ("user", "item", "rating")


def check_params(similarity, top_k, threshold, cap) -> None:
    if similarity not in SIMILARITIES:
        raise RecommendError(f"similarity={similarity!r}; expected one of {sorted(SIMILARITIES)}", where="similarity",
                             hint="EASE solves one item x item system: fit it on one machine")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise RecommendError(f"top_k={top_k!r}; expected a positive integer or None", where="top_k")
    if not np.isfinite(float(threshold)):
        raise RecommendError(f"threshold={threshold!r}; expected a finite number", where="threshold")
    if cap is not None and (not isinstance(cap, (int, np.integer)) or cap < 1):
        raise RecommendError(f"degree_approximation_threshold={cap!r}; expected a positive integer or None",
                             where="degree_approximation_threshold")


def _id_column(df, name: str):
    """(column expression, kind) following ``datasets.interactions``: integers -> long, else string."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    dtype = df.schema[name].dataType
    if isinstance(dtype, T.IntegralType):
        return F.col(name).cast("long"), "long"
    if isinstance(dtype, (T.FloatType, T.DoubleType, T.DecimalType)):
        return F.col(name).try_cast("long"), "float"
    return F.col(name).cast("string"), "string"


def id_checks(df, user: str, item: str, rating: str | None):
    """``(cols, bad)``: per role the column expression (``rating``: 1.0 without a rating column)
    and the boolean expression of a failed check (absent for a missing rating column).

    Raises ``RecommendError`` when a column is missing.
    """
    from pyspark.sql import functions as F

    check_columns(df, {"user": user, "item": item, "rating": rating}, where="df", error=RecommendError)
    cols, bad = {}, {}
    for role, name in (("user", user), ("item", item)):
        expr, kind = _id_column(df, name)
        cols[role] = expr
        failed = F.col(name).isNull()
        if kind == "string":
            failed = failed | (F.trim(F.col(name).cast("string")) == "")
        elif kind == "float":
            failed = failed | F.isnan(F.col(name)) | (F.col(name) != F.floor(F.col(name))) | expr.isNull()
        bad[role] = failed
    cols["rating"] = F.col(rating).try_cast("double") if rating else F.lit(1.0)
    if rating:
        r = cols["rating"]
        bad["rating"] = r.isNull() | F.isnan(r) | (F.abs(r) == float("inf"))
    return cols, bad


def jvm_checked(df, user: str, item: str) -> tuple[str, ...]:
    """The id roles whose checks need Spark (text and float ids: trimming, integer-valued
    floats); an integer id fails only when null, which the task sees itself (as a rating
    fails only when not finite once cast to double)."""
    return tuple(role for role, name in (("user", user), ("item", item)) if _id_column(df, name)[1] != "long")


def bad_bits(bad: dict):
    """One int column: bit ``1 << k`` set when the check of ``ROLES[k]`` fails on the row."""
    from pyspark.sql import functions as F

    bits = F.lit(0)
    for k, role in enumerate(ROLES):
        if role in bad:
            bits = bits + F.when(bad[role], F.lit(1 << k)).otherwise(F.lit(0))
    return bits.cast("int")


def raise_bad(failures: dict, names: dict) -> None:
    """Raise for the first role (``ROLES`` order) with failed rows; ``failures``: role -> rows."""
    for role in ROLES:
        n_bad = int(failures.get(role) or 0)
        if n_bad:
            what = "a finite number" if role == "rating" else "a non-empty integer or string id"
            name = names[role]
            raise RecommendError(f"{n_bad} rows have a value that is not {what} in column {name!r}",
                                 where=f"df: column {name!r}")


def validated(df, user: str, item: str, rating: str | None, *, count_items: bool = True):
    """``(u, i, r, seq)``, n_users, n_items (None unless ``count_items``), n_rows, from one
    aggregation checking ids and ratings; raises ``RecommendError``."""
    from pyspark.sql import functions as F

    cols, bad = id_checks(df, user, item, rating)
    checks = [F.sum(failed.cast("long")).alias(role) for role, failed in bad.items()]
    checks += [F.countDistinct(cols["user"]).alias("n_users"), F.count(F.lit(1)).alias("n_rows")]
    if count_items:
        checks.append(F.countDistinct(cols["item"]).alias("n_items"))
    counts = df.agg(*checks).collect()[0].asDict()
    n_users, n_rows = int(counts.pop("n_users")), int(counts.pop("n_rows"))
    n_items = int(counts.pop("n_items")) if count_items else None
    raise_bad(counts, {"user": user, "item": item, "rating": rating})
    data = df.select(cols["user"].alias("u"), cols["item"].alias("i"), cols["rating"].alias("r"),
                     F.monotonically_increasing_id().alias("seq"))
    return data, n_users, n_items, n_rows
