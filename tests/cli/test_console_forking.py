"""The ``pippin`` console script running ``update`` / ``personalize`` (``FORKING_COMMANDS``): the garbage
collector held until the model is loaded (``gc_hold``), and the process ending without Python's module
teardown once the command is done (``_exit_without_teardown``): output, exit code and ``atexit``
handlers as usual, the same model bytes on 1 and 2 cores. Other commands and programs are left alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import pytest

import pippin.pipelines.cli as cli

TWO_CPUS = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2


def _python(code: str, *, cpus=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)


def _console(argv, *, extra: str = "", cpus=None):
    """The console script's entry (``pippin.pipelines.cli:main``) with ``sys.argv = argv``."""
    return _python(f"import sys; sys.argv = {argv!r}\n{extra}\nfrom pippin.pipelines.cli import main\nmain()",
                   cpus=cpus)


@pytest.mark.parametrize("argv, held", [(["/venv/bin/pippin", "update", "m.mlmodel"], True),
                                        (["/venv/bin/pippin", "personalize", "m.mlmodel"], True),
                                        (["/venv/bin/pippin", "predict", "m.mlmodel"], False),
                                        (["/venv/bin/other", "update"], False)])
def test_the_collector_waits_for_the_model_only_in_forking_commands(argv, held):
    code = (f"import sys, gc; sys.argv = {argv!r}; import pippin.pipelines.cli; a = gc.isenabled()\n"
            "from pippin.pipelines.cli import gc_hold; gc_hold.release(); gc_hold.release()\n"
            "print(a, gc.isenabled(), gc.get_freeze_count() > 0)")
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ([str(not held), "True", str(held)])


def test_a_forking_command_exits_with_its_code_output_and_atexit_handlers(tmp_path):
    out = _console(["/venv/bin/pippin", "update", str(tmp_path / "missing.mlmodel"), str(tmp_path / "d.csv"),
                    "-o", str(tmp_path / "o.mlmodel"), "--json"],
                   extra="import atexit; atexit.register(lambda: print('handler ran', flush=True))")
    assert out.returncode == 2, out.stderr
    assert '"ok": false' in out.stdout and out.stdout.rstrip().endswith("handler ran")
    other = _console(["/venv/bin/pippin", "inspect", str(tmp_path / "missing.mlmodel")])
    assert other.returncode == 2  # other commands: the usual exit


def test_the_fast_exit_steps_aside_while_other_threads_run(monkeypatch):
    def refuse(code):
        raise AssertionError("would have ended the test process")

    monkeypatch.setattr(cli._os, "_exit", refuse)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert cli._exit_without_teardown(0) is None  # returned: the normal exit follows
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not TWO_CPUS, reason="needs 2 CPUs in this process's affinity")
def test_console_personalize_head_same_bytes_on_1_and_2_cores(tmp_path_factory):
    """Through the console script (read-ahead of the new and old recordings, the held collector, the fast
    exit): exit 0, the result line, and the same model on 1 and 2 cores."""
    from pippin.audio import SoundClassifier
    from pippin.datasets import make_demo_sounds

    root = tmp_path_factory.mktemp("console")
    data = make_demo_sounds(root / "all", clips_per_kind=6, seconds=1.5, seed=7)
    for path, label in zip(data.paths, data.labels):
        i = int(path.stem.rsplit("_", 1)[1])
        part = "train" if i < 3 else ("old" if label != "noise" else "new")
        (root / part / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / part / label / path.name)
    shutil.rmtree(root / "train" / "noise", ignore_errors=True)  # the new label: never seen in training
    model = SoundClassifier(feature_extractor="scratch", epochs=1, random_state=0, progress=False,
                            validation_fraction=0.0).fit(root / "train").export(root / "m.mlmodel")
    allowed = sorted(os.sched_getaffinity(0))
    outs = []
    for cpus in ({allowed[0]}, set(allowed[:2])):
        out = root / f"p{len(cpus)}.mlmodel"
        run = _console(["/venv/bin/pippin", "personalize", str(model), str(root / "new"), "--head", "--epochs", "2",
                        "--base-examples", str(root / "old"), "-o", str(out), "-q"], cpus=cpus)
        assert run.returncode == 0, run.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
