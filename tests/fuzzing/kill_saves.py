"""Kill -9 saves of a 40 MB model mid-write, and check what is left (issue 12.8).

    python tests/fuzzing/kill_saves.py --kills 200 --json

Each round starts a child that saves a 40 MB model over the current one with
``pippin.spec.io.write_atomically``, waits until the child is about to write, then kills
it with SIGKILL at a random moment inside the save (0 to 1.3 times a measured save).
After every kill the model file must be the old or the new complete model (compared
by SHA-256), never anything else; the next save removes the temp files killed saves
left; the file's 0644 mode survives every save. Prints the counts; exits 1 on any bad file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import sys
from pippin.spec.io import write_atomically
data = open(sys.argv[1], "rb").read()
sys.stdout.write("go\\n"); sys.stdout.flush()
write_atomically(sys.argv[2], data)
"""


def _model_bytes(fill: float, n_values: int) -> bytes:
    import numpy as np

    from pippin.spec import Model, dumps

    m = Model()
    m.specificationVersion = 4
    f = m.description.input.add()
    f.name = "x"
    f.type.multiArrayType.shape.append(n_values // 4)
    f.type.multiArrayType.dataType = 65568
    o = m.description.output.add()
    o.name = "y"
    o.type.multiArrayType.shape.append(4)
    o.type.multiArrayType.dataType = 65568
    layer = m.neuralNetwork.layers.add()
    layer.name, layer.input[:], layer.output[:] = "fc", ["x"], ["y"]
    layer.innerProduct.inputChannels, layer.innerProduct.outputChannels = n_values // 4, 4
    layer.innerProduct.weights.floatValue.extend(np.full(n_values, fill, np.float32))
    return dumps(m)


def _temps(folder: Path, name: str) -> list[str]:
    return [p for p in os.listdir(folder) if p.startswith(f".{name}.") and p.endswith(".tmp")]


def run(kills: int, *, seed: int = 0, megabytes: int = 40, log=None) -> dict:
    from pippin.spec.io import write_atomically

    rng = random.Random(seed)
    n_values = megabytes * (1 << 20) // 4
    with tempfile.TemporaryDirectory(prefix="pippin-kills-") as tmp:
        folder = Path(tmp)
        versions = {"old": _model_bytes(0.25, n_values), "new": _model_bytes(0.5, n_values)}
        digests = {hashlib.sha256(v).hexdigest(): k for k, v in versions.items()}
        sources = {}
        for k, v in versions.items():
            sources[k] = folder / f"{k}.bin"
            sources[k].write_bytes(v)
        path = folder / "model.mlmodel"
        start = time.perf_counter()
        write_atomically(path, versions["old"])
        save_seconds = time.perf_counter() - start
        os.chmod(path, 0o644)
        counts = {"old": 0, "new": 0, "bad": 0}
        max_temps, killed_mid_save, completed = 0, 0, 0
        for i in range(kills):
            which = "new" if i % 2 == 0 else "old"
            child = subprocess.Popen([sys.executable, "-c", _CHILD, str(sources[which]), str(path)],
                                     stdout=subprocess.PIPE)
            child.stdout.readline()  # about to write
            time.sleep(rng.uniform(0.0, 1.3 * save_seconds))
            child.send_signal(signal.SIGKILL)
            status = child.wait()
            child.stdout.close()
            if status == -signal.SIGKILL:
                killed_mid_save += 1
            else:
                completed += 1
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
            outcome = digests.get(digest, "bad")
            counts[outcome] += 1
            max_temps = max(max_temps, len(_temps(folder, path.name)))
            if outcome == "bad" and log is not None:
                log(f"kill {i}: the model file is neither the old nor the new model")
        before_final = len(_temps(folder, path.name))
        write_atomically(path, versions["old"])
        after_final = len(_temps(folder, path.name))
        mode = oct(os.stat(path).st_mode & 0o777)
    return {"kills": kills, "megabytes": megabytes, "save_seconds": round(save_seconds, 3),
            "killed_mid_save": killed_mid_save, "completed_before_kill": completed, "file_is": counts,
            "max_temp_files_seen": max_temps, "temp_files_before_last_save": before_final,
            "temp_files_after_last_save": after_final, "mode_after": mode,
            "ok": counts["bad"] == 0 and after_final == 0 and mode == oct(0o644)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--megabytes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args.kills, seed=args.seed, megabytes=args.megabytes,
                 log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(report, indent=1) if args.json else report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
