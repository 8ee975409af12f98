"""The Spark driver's memory at two or more input sizes: is it bounded independent of the
number of interactions (issue 15)?

    python benchmarks/bench_spark_driver.py [--scales 0.015,0.15] [--blocks default,2] [--repeats 2]

One warm ``local[2]`` session; for each generated set (``--scale`` is the fraction of
bench_similarity's 138,000 users: 0.015 gives about 290k interactions, 0.15 about 3M),
``fit_item_similarity`` (cosine, top 64) reads the set from Parquet with the default plan
(one tile on a local master) and with ``n_blocks=2``. Printed per fit: seconds, the Spark
stage split, and the Python driver's peak RSS (absolute and above its RSS before the fit),
sampled every 5 ms. Nothing else runs in this process, so the peak is the fit's: unlike
``bench_spark.py``, no single-machine fit in the same process raises the high-water mark first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_similarity import generate, measure  # noqa: E402
from bench_spark import _table  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="0.015,0.15")
    parser.add_argument("--blocks", default="default,2", help="comma list of n_blocks; 'default' is the automatic plan")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from pippin.datasets.spark import spark_session
    from pippin.recommend.spark import fit_item_similarity

    spark = spark_session(args.master)
    spark.range(1).count()
    blocks = [None if b == "default" else int(b) for b in args.blocks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for scale in (float(s) for s in args.scales.split(",")):
            X = generate(n_users=int(138_000 * scale))
            paths[X.nnz] = Path(tmp) / f"g{X.nnz}.parquet"
            _table(X, False).to_parquet(paths[X.nnz], index=False)
            del X
        for rep in range(args.repeats):
            for nnz, path in paths.items():
                for n_blocks in blocks:
                    box = {}

                    def fit():
                        box["m"] = fit_item_similarity(spark.read.parquet(str(path)), user="user_id", item="item_id",
                                                       similarity="cosine", top_k=64, n_blocks=n_blocks)

                    seconds, peak, extra = measure(fit)
                    print(json.dumps({"rep": rep, "interactions": nnz, "blocks": box["m"].spark_blocks_,
                                      "seconds": round(seconds, 2), "stages": box["m"].spark_seconds_,
                                      "driver_peak_mb": round(peak / 2**20), "driver_extra_mb": round(extra / 2**20),
                                      "load": round(os.getloadavg()[0], 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
