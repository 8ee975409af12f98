"""Neural-network runtime and training speed: pippin vs PyTorch CPU on the sound classifier's CNN.

The network (the sound-classifier issue's): three 3x3 convolutions (16, 32, 32 channels)
each followed by batchnorm and ReLU, 2x2 max pooling after the first two, global
mean and global max pooling concatenated, dense 32, ReLU, dense 10, softmax; inputs
[1, 96, 64] float32 patches. Both libraries run the same weights on the same data
in this one process, PyTorch with ``torch.set_num_threads(2)``.

- inference: patches/s of ``model.predict_batch`` (pippin's public path, batch
  conversion included) vs ``model(x)`` under ``torch.no_grad()``.
- training: patches/s of one epoch of Adam mini-batch training (forward, loss,
  backward, update; batchnorm in training mode): pippin's ``fit_network`` vs a
  PyTorch loop.

Each is measured at every batch size of a small sweep (median of ``--repeats`` runs
after a warm-up) and compared at each library's fastest batch size.

Usage: ``python benchmarks/bench_nn.py [--n 512] [--repeats 3] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import numpy as np
from timing import median_seconds

INFER_BATCHES = (16, 32, 64, 128)
TRAIN_BATCHES = (16, 32, 64)


def sound_net_spec(seed=0):
    from pippin.pipelines.build.network import NetworkBuilder

    b = NetworkBuilder(inputs=[("x", (1, 96, 64))], outputs=["probs"], mode="classifier",
                       class_labels=[str(i) for i in range(10)], seed=seed)
    prev = "x"
    for i, (c, pool) in enumerate([(16, True), (32, True), (32, False)]):
        b.add_conv(f"conv{i}", prev, f"c{i}", n_out=c, bias=False)
        b.add_batchnorm(f"bn{i}", f"c{i}", f"b{i}")
        b.add_activation(f"relu{i}", f"b{i}", f"r{i}")
        prev = f"r{i}"
        if pool:
            b.add_pooling(f"pool{i}", prev, f"p{i}", type="max")
            prev = f"p{i}"
    b.add_pooling("gavg", prev, "ga", type="average", is_global=True)
    b.add_pooling("gmax", prev, "gm", type="max", is_global=True)
    b.add_concat("cat", ["ga", "gm"], "cat")
    b.add_flatten("flat", "cat", "flat")
    b.add_dense("fc1", "flat", "fc1", n_out=32)
    b.add_activation("relu_fc", "fc1", "rfc")
    b.add_dense("fc2", "rfc", "logits", n_out=10)
    b.add_softmax("sm", "logits", "probs")
    return b.spec


def torch_net(spec):
    import torch

    layers = {layer.name: layer for layer in spec.neuralNetworkClassifier.layers}

    def arr(layer, field, shape):
        p = getattr(layers[layer], layers[layer].WhichOneof("layer"))
        return torch.tensor(np.array(getattr(p, field).floatValue, np.float32).reshape(shape))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            chans = [(1, 16), (16, 32), (32, 32)]
            self.convs = torch.nn.ModuleList(torch.nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in chans)
            self.bns = torch.nn.ModuleList(torch.nn.BatchNorm2d(b) for _, b in chans)
            self.fc1, self.fc2 = torch.nn.Linear(64, 32), torch.nn.Linear(32, 10)
            with torch.no_grad():
                for i, (a, b) in enumerate(chans):
                    self.convs[i].weight.copy_(arr(f"conv{i}", "weights", (b, a, 3, 3)))
                self.fc1.weight.copy_(arr("fc1", "weights", (32, 64)))
                self.fc2.weight.copy_(arr("fc2", "weights", (10, 32)))

        def forward(self, x):
            for i in range(3):
                x = torch.relu(self.bns[i](self.convs[i](x)))
                if i < 2:
                    x = torch.nn.functional.max_pool2d(x, 2)
            x = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
            return self.fc2(torch.relu(self.fc1(x)))

    return Net()


def bench(n=512, repeats=3, seed=0):
    import torch

    import pippin.pipelines as pp
    from pippin.pipelines.update import fit_network

    torch.set_num_threads(2)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 96, 64)).astype(np.float32)
    y = rng.integers(0, 10, n)
    spec = sound_net_spec()
    model = pp.load(spec)
    net = torch_net(spec)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    results = {"inference": {"pippin": {}, "torch": {}}, "training": {"pippin": {}, "torch": {}}}

    for bs in INFER_BATCHES:
        def ours():
            for s in range(0, n, bs):
                model.predict_batch({"x": x[s:s + bs]})

        def theirs():
            net.eval()
            with torch.no_grad():
                for s in range(0, n, bs):
                    torch.softmax(net(xt[s:s + bs]), dim=1)

        results["inference"]["torch"][bs] = n / median_seconds(theirs, repeats)
        results["inference"]["pippin"][bs] = n / median_seconds(ours, repeats)

    for bs in TRAIN_BATCHES:
        def ours_train():
            fit_network(spec, x, y, epochs=1, batch_size=bs, learning_rate=3e-3, lr_schedule=None, random_state=0)

        def theirs_train():
            tnet = torch_net(spec)
            tnet.train()
            opt = torch.optim.Adam(tnet.parameters(), lr=3e-3)
            order = torch.from_numpy(np.random.default_rng(0).permutation(n))
            for s in range(0, n, bs):
                idx = order[s:s + bs]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(tnet(xt[idx]), yt[idx]).backward()
                opt.step()

        results["training"]["torch"][bs] = n / median_seconds(theirs_train, repeats)
        results["training"]["pippin"][bs] = n / median_seconds(ours_train, repeats)

    summary = {}
    for task in ("inference", "training"):
        best = {lib: max(v.items(), key=lambda kv: kv[1]) for lib, v in results[task].items()}
        summary[task] = {
            "pippin_patches_per_s": round(best["pippin"][1], 1), "pippin_batch": best["pippin"][0],
            "torch_patches_per_s": round(best["torch"][1], 1), "torch_batch": best["torch"][0],
            "ratio": round(best["pippin"][1] / best["torch"][1], 3),
        }
    return results, summary


def machine():
    import numpy
    import scipy
    import torch

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": numpy.__version__,
            "scipy": scipy.__version__, "torch": torch.__version__, "torch_threads": 2,
            "load_average": os.getloadavg()[0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="patches per run (default 512)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median; default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results, summary = bench(n=args.n, repeats=args.repeats)
    info = machine()
    if args.json:
        print(json.dumps({"machine": info, "n": args.n, "repeats": args.repeats, "summary": summary,
                          "sweep": results}, default=str))
        return
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(f"{'task':10s} {'batch':>5s} {'pippin/s':>9s} {'torch/s':>9s}")
    for task, libs in results.items():
        for bs in libs["pippin"]:
            print(f"{task:10s} {bs:5d} {libs['pippin'][bs]:9.1f} {libs['torch'][bs]:9.1f}")
    for task, s in summary.items():
        print(f"{task}: pippin {s['pippin_patches_per_s']}/s (batch {s['pippin_batch']}) vs torch "
              f"{s['torch_patches_per_s']}/s (batch {s['torch_batch']}): ratio {s['ratio']}")


if __name__ == "__main__":
    main()
