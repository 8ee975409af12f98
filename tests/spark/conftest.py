"""One local Spark session (``local[2,2]``, 1 GB) for the whole test session; Spark tests skip without PySpark."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark", reason='PySpark is not installed (pip install "pippin[spark]")')
    from pippin.datasets.spark import spark_session

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # PySpark 4.3 about pandas 3: see pippin.datasets.spark
        # local[2,2]: two task slots, and a failed task is tried twice (as spark.task.maxFailures on a cluster)
        session = spark_session("local[2,2]", memory="1g", shuffle_partitions=2, app_name="pippin-tests")
    yield session
    session.stop()
