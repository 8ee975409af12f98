"""`pippin update` and `pippin personalize --head` on FSDD at 1 and 2 cores, interleaved: wall, CPU/wall, speed-up.

Issue 18's last check: both commands show the training engine's 2-core speed-up. Each run
is the real CLI in a child process whose CPU affinity is 1 core (the first CPU this
process may use) or 2 cores; Pippin sizes every process pool from the affinity (``taskset``
does the same from a shell). Runs alternate 1 core, 2 cores, then 2, 1 on the next repeat,
so load from other processes falls on both sides; the speed-up is reported as the ratio of
the median walls and as the median of each repeat's paired ratio, and again over the quiet
pairs only (other processes used under ``QUIET`` of a core, on the run's own CPUs, during both
runs: from /proc/stat's per-CPU lines minus the run's own CPU time). The load average is
read before and after each run; ``--wait-idle S`` first waits (up to S seconds) until the
CPUs are idle, since on a busy machine the kernel's fair share (autogroups) gives one
session about one core whatever it asks for. Every output model is hashed: the same seed must give
the same bytes on 1 and 2 cores (and on every repeat).

Data (made once in a temporary folder, not timed), from the FSDD recordings
(``{digit}_{speaker}_{take}.wav``):

- update: a scratch sound classifier trained (``pippin train sound --feature-extractor scratch
  --epochs 2 --seed 0``) on takes 0-1 (120 files), then ``pippin update base.mlmodel
  upd.csv -o OUT -q`` with takes 5-49 of every digit (2,700 files, the model's 3 epochs);
- personalize: a scratch classifier of digits 0-7 (takes 0-4, 240 files), then
  ``pippin personalize p8.mlmodel new --head --base-examples old.csv -o OUT -q`` with digits 8
  and 9, takes 5-14 (120 files) as the new sounds and digits 0-7, takes 5-49 (2,160 files)
  as the old-class recordings.

``--size small`` uses takes 5-14 only for the update (600 files) and the old recordings (480
files); ``--size large`` lists takes 5-49 twice in both tables (5,400 and 4,320 rows: the
files are read and run twice), so the speed-up is seen at other file counts too.

    python benchmarks/bench_update.py [--data ../shared/datasets/fsdd] [--repeats 3]
        [--commands update,personalize] [--size small|medium|large] [--wait-idle S] [--keep DIR]
        [--bytecode compiled|source] [--json]

``--bytecode compiled`` (the default) byte-compiles Pippin's modules first, as ``pip install``
does for an installed wheel, so the runs start as a user's install starts; an editable install
under ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile ~0.1 s of sources in every run
(``--bytecode source`` measures that).
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fsdd"
#: a pair of runs counts as quiet when other processes used under this many of the run's cores during each run
QUIET = 0.15
#: the ``pippin`` console script beside this Python (what users run: it picks BLAS threads by command),
#: else the same entry point through ``-c``
_SCRIPT = Path(sys.executable).parent / "pippin"
PIPPIN = ([str(_SCRIPT)] if _SCRIPT.exists() else
          [sys.executable, "-c", "import sys; from pippin.pipelines.cli import main; sys.exit(main())"])


def _parse(path: Path):
    digit, speaker, take = path.stem.split("_")
    return digit, speaker, int(take)


def _table(path: Path, files) -> Path:
    path.write_text("path,label\n" + "".join(f"{f},{_parse(f)[0]}\n" for f in files))
    return path


#: the update/old-recordings tables per ``--size``: (last take + 1, times listed)
SIZES = {"small": (15, 1), "medium": (50, 1), "large": (50, 2)}


def prepare(recordings: Path, work: Path, log, size: str = "medium") -> dict:
    """The models, tables and folder the timed commands read (see the module docstring)."""
    files = sorted(recordings.glob("*.wav"))
    if not files:
        raise SystemExit(f"no .wav files in {recordings}")
    take = {f: _parse(f) for f in files}
    end, times = SIZES[size]
    suffix = "" if size == "medium" else f"_{size}"
    _table(work / "base.csv", [f for f in files if take[f][2] < 2])
    _table(work / f"upd{suffix}.csv", [f for f in files if 5 <= take[f][2] < end] * times)
    _table(work / "p8.csv", [f for f in files if take[f][2] < 5 and take[f][0] not in "89"])
    _table(work / f"old{suffix}.csv", [f for f in files if 5 <= take[f][2] < end and take[f][0] not in "89"] * times)
    for f in files:
        if take[f][0] in "89" and 5 <= take[f][2] < 15:
            (work / "new" / take[f][0]).mkdir(parents=True, exist_ok=True)
            target = work / "new" / take[f][0] / f.name
            if not target.exists():
                target.symlink_to(f)
    for name in ("base", "p8"):
        if not (work / f"{name}.mlmodel").exists():
            log(f"training {name}.mlmodel")
            subprocess.run(PIPPIN + ["train", "sound", str(work / f"{name}.csv"), "-o", str(work / f"{name}.mlmodel"),
                                     "--feature-extractor", "scratch", "--epochs", "2", "--seed", "0", "-q"],
                           check=True, stderr=subprocess.DEVNULL)
    return {
        "update": lambda out: ["update", str(work / "base.mlmodel"), str(work / f"upd{suffix}.csv"), "-o", out, "-q"],
        "personalize": lambda out: ["personalize", str(work / "p8.mlmodel"), str(work / "new"), "--head",
                                    "--base-examples", str(work / f"old{suffix}.csv"), "-o", out, "-q"],
    }


def load() -> float:
    return os.getloadavg()[0]


def cpu_sample(cpus=None) -> tuple[int, int]:
    """(idle + iowait, total) clock ticks of every CPU, or of ``cpus`` only, from /proc/stat."""
    idle = total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if (name == "cpu" and cpus is None) or (cpus is not None and name[3:].isdigit() and int(name[3:]) in cpus):
            values = [int(x) for x in fields]
            idle, total = idle + values[3] + values[4], total + sum(values)
    return idle, total


def busy_fraction(seconds: float = 0.5) -> float:
    """The share of every CPU's time spent busy over ``seconds`` (this process sleeps meanwhile)."""
    sample = cpu_sample
    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_idle(limit_s: float, *, threshold: float = 0.15) -> float:
    """Wait (at most ``limit_s``) until other processes leave the CPUs idle; returns the last busy share seen."""
    deadline = time.monotonic() + limit_s
    busy = busy_fraction()
    while busy > threshold and time.monotonic() < deadline:
        busy = busy_fraction()
    return busy


def compile_pippin() -> list[str]:
    """Byte-compile every ``pippin.*`` folder (what pip does on install); returns the folders."""
    folders = []
    for name in ("spec", "audio", "recommend", "pipelines", "datasets"):
        spec = importlib.util.find_spec(f"pippin.{name}")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            if not compileall.compile_dir(folder, quiet=1):
                raise SystemExit(f"could not byte-compile {folder}")
            folders.append(folder)
    return folders


def run_once(argv, cpus: set) -> dict:
    """One CLI run pinned to ``cpus``: wall seconds, CPU seconds (user + sys of the process tree)."""
    before = os.times()
    load_before = load()
    idle0, total0 = cpu_sample(cpus)
    start = time.perf_counter()
    subprocess.run(PIPPIN + argv, check=True, stdout=subprocess.DEVNULL,
                   preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    wall = time.perf_counter() - start
    idle1, total1 = cpu_sample(cpus)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    tick = os.sysconf("SC_CLK_TCK")
    busy = ((total1 - total0) - (idle1 - idle0)) / tick  # every process's CPU seconds on our CPUs meanwhile
    return {"wall_s": wall, "cpu_s": cpu, "cpu_per_wall": cpu / wall, "load_before": load_before,
            "load_after": load(), "others_cores": max(busy - cpu, 0.0) / wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FSDD folder (with recordings/)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--commands", default="update,personalize")
    parser.add_argument("--size", choices=sorted(SIZES), default="medium",
                        help="file counts: small (600 / 480 files), medium (2,700 / 2,160), large (each listed twice)")
    parser.add_argument("--keep", type=Path, default=None, help="work folder kept between runs (default: temporary)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="before each run, wait up to S seconds for the CPUs to be idle (others' load)")
    parser.add_argument("--bytecode", choices=("compiled", "source"), default="compiled",
                        help="compiled (default): byte-compile Pippin first, as an installed wheel is; "
                             "source: leave it as it is")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise SystemExit("needs at least 2 CPUs in this process's affinity")
    cores = {1: {allowed[0]}, 2: set(allowed[:2])}
    if args.bytecode == "compiled":
        compile_pippin()
    recordings = args.data / "recordings" if (args.data / "recordings").is_dir() else args.data
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        commands = prepare(recordings, work, log, args.size)
        results = {}
        for name in args.commands.split(","):
            runs = {1: [], 2: []}
            digests = {1: set(), 2: set()}
            for r in range(args.repeats):
                for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                    out = str(work / f"{name}_{n}.mlmodel")
                    busy = wait_idle(args.wait_idle) if args.wait_idle else None
                    run = run_once(commands[name](out), cores[n])
                    run["busy_before"] = busy
                    digests[n].add(hashlib.sha256(Path(out).read_bytes()).hexdigest())
                    runs[n].append(run)
                    log(f"{name} {n} core{'s' if n > 1 else ''}: {run['wall_s']:.2f} s wall, CPU/wall "
                        f"{run['cpu_per_wall']:.2f} (load {run['load_before']:.2f} -> {run['load_after']:.2f}"
                        + (f", CPUs {busy:.0%} busy before" if busy is not None else "")
                        + f", others used {run['others_cores']:.2f} of its cores meanwhile)")
            med = {n: statistics.median(x["wall_s"] for x in runs[n]) for n in runs}
            results[name] = {
                "command": "pippin " + " ".join(commands[name]("OUT")),
                "runs": {str(n): runs[n] for n in runs},
                "median_wall_s": {str(n): med[n] for n in med},
                "median_cpu_per_wall": {str(n): statistics.median(x["cpu_per_wall"] for x in runs[n]) for n in runs},
                "speedup_2_vs_1": med[1] / med[2],
                "paired_speedup_median": statistics.median(a["wall_s"] / b["wall_s"] for a, b in zip(runs[1], runs[2])),
                "same_bytes_1_and_2_cores": len(digests[1] | digests[2]) == 1,
            }
            quiet = [(a, b) for a, b in zip(runs[1], runs[2]) if max(a["others_cores"], b["others_cores"]) < QUIET]
            if quiet:  # pairs during which other processes used under QUIET of a core
                results[name]["quiet_pairs"] = len(quiet)
                results[name]["quiet_paired_speedup_median"] = statistics.median(a["wall_s"] / b["wall_s"]
                                                                                 for a, b in quiet)
                results[name]["quiet_cpu_per_wall_2_cores"] = statistics.median(b["cpu_per_wall"] for _, b in quiet)
    report = {"benchmark": "update_personalize_cores", "python": platform.python_version(),
              "machine": platform.machine(), "cpus": len(allowed), "repeats": args.repeats, "size": args.size,
              "bytecode": args.bytecode,
              "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"\n{'command':<12} {'1 core s':>9} {'2 cores s':>9} {'CPU/wall 1':>10} {'CPU/wall 2':>10} "
              f"{'2 vs 1':>7} {'paired':>7}  same bytes")
        for name, res in results.items():
            m, c = res["median_wall_s"], res["median_cpu_per_wall"]
            print(f"{name:<12} {m['1']:>9.2f} {m['2']:>9.2f} {c['1']:>10.2f} {c['2']:>10.2f} "
                  f"{res['speedup_2_vs_1']:>6.2f}x {res['paired_speedup_median']:>6.2f}x  {res['same_bytes_1_and_2_cores']}")
            if "quiet_pairs" in res:
                print(f"{'':<12} quiet pairs {res['quiet_pairs']}: paired speed-up {res['quiet_paired_speedup_median']:.2f}x,"
                      f" CPU/wall at 2 cores {res['quiet_cpu_per_wall_2_cores']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
