"""Front-end throughput: Pippin's VGGish log-mel vs a librosa-based equivalent and vs PyTorch CPU.

All three compute the same thing on the same 975 ms windows (16 kHz): 96 frames
of 400 samples every 160, periodic Hann, |512-point rFFT|, 64 HTK mel bands
125-7500 Hz, ln(mel + 0.01). Throughput is audio seconds per wall-clock second
(and per CPU second), median of ``--repeats`` runs after a warm-up, at 1 and 2
threads, measured in the same process; ratios are Pippin / alternative.

    python benchmarks/bench_frontend.py [--windows 400] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pippin.audio.frontend import PATCH_SAMPLES, vggish_log_mel


def _librosa_setup():
    import librosa

    mel = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=125.0, fmax=7500.0, htk=True, norm=None)
    mel[:, 0] = 0.0  # the reference zeroes the DC bin

    def one(window):
        # librosa frames by n_fft (95 frames of 512 from 15,600 samples) and centres the 400-sample
        # window inside each 512 frame; 56 zeros on each side give the reference's 96 frames, whose
        # FFT magnitudes are the same (a shift inside a zero-padded frame only changes the phase).
        padded = np.pad(window, 56)
        spec = np.abs(librosa.stft(padded, n_fft=512, hop_length=160, win_length=400, window="hann",
                                   center=False))
        return np.log(mel @ spec + 0.01).T[np.newaxis]

    return one, librosa.__version__


def librosa_log_mel(windows: np.ndarray, threads: int, one, *, cap_blas: bool = True) -> np.ndarray:
    """librosa per window (stft + mel matrix), over a thread pool when threads > 1.

    BLAS is held to one thread, as in Pippin: multi-threaded BLAS spins on the small
    [64, 257] x [257, 96] product and made this baseline 10-20x slower (measured), which
    would flatter the ratio.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1 if cap_blas else None, user_api="blas"):
        if threads == 1:
            return np.stack([one(w) for w in windows])
        with ThreadPoolExecutor(threads) as pool:
            return np.stack(list(pool.map(one, windows)))


def _torch_setup():
    import torch

    from pippin.audio.frontend import mel_matrix, periodic_hann

    window = torch.from_numpy(np.array(periodic_hann()))
    mel = torch.from_numpy(np.array(mel_matrix()))

    def run(windows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(windows)
            frames = x.unfold(-1, 400, 160) * window
            magnitude = torch.fft.rfft(frames, n=512).abs()
            return torch.log(magnitude @ mel + 0.01).unsqueeze(1).numpy()

    return torch, run


def _measure(fns: dict, repeats: int) -> dict:
    """Median (wall, CPU) seconds per function; runs are interleaved round-robin so that every
    contender sees the same background load (this machine is shared)."""
    for fn in fns.values():
        fn()  # warm-up
    walls = {name: [] for name in fns}
    cpus = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            walls[name].append(time.perf_counter() - w0)
            cpus[name].append(time.process_time() - c0)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in fns}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=400, help="975 ms windows per run (default 400)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    windows = rng.uniform(-1, 1, (args.windows, PATCH_SAMPLES)).astype(np.float32)
    audio_seconds = args.windows * PATCH_SAMPLES / 16000
    one, librosa_version = _librosa_setup()
    torch, torch_run = _torch_setup()
    ours = vggish_log_mel(windows[:8])
    # same computation; librosa's mel weights differ from the reference by up to 4.4e-3 (log: ~1e-2)
    assert np.abs(librosa_log_mel(windows[:8], 1, one) - ours).max() < 2e-2
    assert np.abs(torch_run(windows[:8]) - ours).max() < 1e-3
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        timings = _measure({
            "pippin": lambda: vggish_log_mel(windows, workers=threads),
            "librosa": lambda: librosa_log_mel(windows, threads, one),
            "librosa_default_blas": lambda: librosa_log_mel(windows, threads, one, cap_blas=False),
            "torch": lambda: torch_run(windows),
        }, args.repeats)
        row = {"threads": threads}
        for name, (wall, cpu) in timings.items():
            row[f"{name}_audio_s_per_s"] = audio_seconds / wall
            row[f"{name}_audio_s_per_cpu_s"] = audio_seconds / cpu
        rows.append(row)
    librosa_1 = rows[0]["librosa_audio_s_per_s"]
    for row in rows:
        row["ratio_vs_librosa_same_threads"] = row["pippin_audio_s_per_s"] / row["librosa_audio_s_per_s"]
        row["ratio_vs_librosa_1_thread"] = row["pippin_audio_s_per_s"] / librosa_1
        row["ratio_vs_torch_same_threads"] = row["pippin_audio_s_per_s"] / row["torch_audio_s_per_s"]
        row["ratio_vs_librosa_default_blas_1_thread"] = (row["pippin_audio_s_per_s"]
                                                         / rows[0]["librosa_default_blas_audio_s_per_s"])
    result = {
        "benchmark": "frontend", "windows": args.windows, "audio_seconds": audio_seconds, "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "load_average": os.getloadavg()},
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                     "scipy": __import__("scipy").__version__, "librosa": librosa_version,
                     "torch": torch.__version__},
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.windows} windows ({audio_seconds:.0f} s of audio), median of {args.repeats}; "
          f"load average {result['machine']['load_average'][0]:.2f} on {os.cpu_count()} CPUs")
    print("audio seconds per second (wall); librosa with BLAS capped at 1 thread, and with its default BLAS")
    print("threads  pippin  librosa  librosa(default BLAS)  torch  pippin/librosa(same threads)  "
          "pippin/librosa(1 thread)  pippin/librosa-default(1 thread)  pippin/torch")
    for r in rows:
        print(f"{r['threads']:>7}  {r['pippin_audio_s_per_s']:6.0f}  {r['librosa_audio_s_per_s']:7.0f}  "
              f"{r['librosa_default_blas_audio_s_per_s']:21.0f}  {r['torch_audio_s_per_s']:5.0f}  "
              f"{r['ratio_vs_librosa_same_threads']:28.2f}  {r['ratio_vs_librosa_1_thread']:24.2f}  "
              f"{r['ratio_vs_librosa_default_blas_1_thread']:32.2f}  {r['ratio_vs_torch_same_threads']:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
