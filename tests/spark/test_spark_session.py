"""``pippin.datasets.spark``: a local session's class-data sharing archive (dumped once, then mapped)."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

pytest.importorskip("pyspark", reason='PySpark is not installed (pip install "pippin[spark]")')


def test_first_session_dumps_the_classes_later_ones_share_them(tmp_path, monkeypatch):
    from pippin.datasets.spark import _class_sharing

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("PIPPIN_SPARK_CDS", raising=False)
    options, dump = _class_sharing(sys.prefix)
    partial, final = dump
    assert options[0] == f"-XX:ArchiveClassesAtExit={partial}" and "-Xlog:cds=off" in options
    assert partial.parent == final.parent == tmp_path / "pippin" / "spark-cds" and not final.exists()
    final.write_bytes(b"archive")
    options, dump = _class_sharing(sys.prefix)
    assert options[0] == f"-XX:SharedArchiveFile={final}" and dump is None
    monkeypatch.setenv("PIPPIN_SPARK_CDS", "0")
    assert _class_sharing(sys.prefix) == ([], None)


@pytest.mark.parametrize("code, published", [(0, True), (3, False)])
def test_the_archive_is_published_only_after_the_jvm_exits_cleanly(tmp_path, code, published):
    from pippin.datasets.spark import _keep_class_archive

    partial, final = tmp_path / "a.123.tmp", tmp_path / "a.jsa"
    # a stand-in for the JVM: it writes the archive when its stdin closes, then exits with ``code``
    jvm = subprocess.Popen([sys.executable, "-c", f"import sys; sys.stdin.read(); "
                                                  f"open({str(partial)!r}, 'w').write('x'); sys.exit({code})"],
                           stdin=subprocess.PIPE)
    _keep_class_archive(SimpleNamespace(proc=jvm), partial, final)
    assert jvm.returncode == code and final.exists() == published and not partial.exists()


def test_relative_paths_follow_the_current_folder(spark, tmp_path, monkeypatch):
    import pandas as pd

    from pippin.datasets.spark import spark_session

    monkeypatch.chdir(tmp_path)  # the session's JVM started elsewhere
    pd.DataFrame({"user_id": [1, 2, 3], "item_id": [4, 5, 6]}).to_parquet("t.parquet")
    session = spark_session()
    assert session.read.parquet("t.parquet").count() == 3
    session.range(2).write.parquet("out.parquet")
    assert (tmp_path / "out.parquet").is_dir()
    monkeypatch.undo()
    spark_session()  # the shared session follows the folder the tests run in again
