"""``pipelines.runtime._malloc``: loading a neural network keeps freed memory in the heap (glibc).

Each case runs in a fresh interpreter: the setting is process-wide and set once.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt thresholds are glibc's")

_SCRIPT = r"""
import resource, numpy as np
from pippin.pipelines.build.network import NetworkBuilder
from pippin.pipelines.runtime import _malloc

def faults_of_fresh_arrays():
    big = [np.ones(1 << 20, np.float32) for _ in range(12)]  # 48 MiB of 4 MiB blocks
    del big
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        arrays = [np.ones(1 << 20, np.float32) for _ in range(12)]
        del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

plain = faults_of_fresh_arrays()
b = NetworkBuilder(inputs=[("x", (4,))], outputs=["y"])
b.add_dense("fc", "x", "y", n_out=2)
import pippin.pipelines as pp
pp.load(b.spec)
print(_malloc.keep_freed_memory(), plain, faults_of_fresh_arrays())
"""


def _run(**env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "PIPPIN_KEEP"))}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=full, capture_output=True, text=True, check=True)
    applied, plain, after = out.stdout.split()
    return applied == "True", int(plain), int(after)


def test_loading_a_network_keeps_freed_blocks_mapped():
    applied, plain, after = _run()
    assert applied
    assert plain > 5 * 12 * 1024 // 4  # glibc's defaults: fresh 4 MiB blocks fault their pages again
    assert after < plain // 20  # after the first load: reused from the heap


@pytest.mark.parametrize("env", [{"PIPPIN_KEEP_FREED_MEMORY": "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"}])
def test_opt_out_and_user_settings_win(env):
    applied, plain, after = _run(**env)
    assert not applied
