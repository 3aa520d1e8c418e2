"""Benchmark: native explainers against captum on a 32 x 1 x 64 x 64 CNN.

Run ``python benchmarks/bench_explainers.py`` (about 2-3 minutes on 2 CPU
cores). Prints a table of the best of ``--repeat`` wall-clock times of each
method and captum's peer, measured in the same run and interleaved (ours,
captum, ours, ...) so that load from other processes hits both alike, their
ratio, and the peak resident memory of integrated gradients with and without
``internal_batch_size`` (each in a fresh subprocess: the rise of the peak
resident set size, VmHWM, over the process after set-up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import torch

warnings.filterwarnings("ignore")

SHAPE = (32, 1, 64, 64)


def _setup(seed=0):
    from sklearn_relevance.modules import ImageCNN

    torch.manual_seed(seed)
    net = ImageCNN(SHAPE[1:], 2).eval()
    X = torch.randn(*SHAPE)
    target = torch.arange(SHAPE[0]) % 2
    return net, X, target


def _seconds(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _best_pair(ours, theirs, repeat):
    """Best times of two functions, run alternately ``repeat`` times each."""
    a, b = [], []
    for _ in range(repeat):
        a.append(_seconds(ours))
        b.append(_seconds(theirs))
    return min(a), min(b)


def _peak_rss_mib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _pairs(net, X, t):
    from captum.attr import IntegratedGradients as CaptumIG
    from captum.attr import NoiseTunnel, Saliency
    from captum.attr import Occlusion as CaptumOcclusion

    from sklearn_relevance.explainers import IntegratedGradients, Occlusion, SmoothGrad

    stdev = 0.15 * float(X.amax() - X.amin())
    return [
        ("IG, 50 steps",
         lambda: IntegratedGradients(n_steps=50).explain(net, X, t),
         lambda: CaptumIG(net).attribute(X, target=t, n_steps=50)),
        ("IG, 50 steps, internal_batch_size=400",
         lambda: IntegratedGradients(n_steps=50, internal_batch_size=400).explain(
             net, X, t),
         lambda: CaptumIG(net).attribute(X, target=t, n_steps=50,
                                         internal_batch_size=400)),
        ("SmoothGrad, 50 samples",
         lambda: SmoothGrad(n_samples=50, stdevs=stdev, random_state=0).explain(
             net, X, t),
         lambda: NoiseTunnel(Saliency(net)).attribute(
             X, nt_samples=50, stdevs=stdev, target=t, abs=False)),
        ("Occlusion 8x8, stride 4 (captum default: 1 window per pass)",
         lambda: Occlusion(8, stride=4).explain(net, X, t),
         lambda: CaptumOcclusion(net).attribute(
             X, sliding_window_shapes=(1, 8, 8), strides=(1, 4, 4), target=t)),
        ("Occlusion 8x8, stride 4, 32 windows per pass (both)",
         lambda: Occlusion(8, stride=4, internal_batch_size=32 * 32).explain(net, X, t),
         lambda: CaptumOcclusion(net).attribute(
             X, sliding_window_shapes=(1, 8, 8), strides=(1, 4, 4), target=t,
             perturbations_per_eval=32)),
    ]


def _memory_child(which, ibs):
    """Peak RSS increase (MiB) of one IG call, in this (fresh) process."""
    net, X, t = _setup()
    net(X[:2])  # warm up allocator and kernels before the reference point
    before = _peak_rss_mib()
    ibs = None if ibs == "None" else int(ibs)
    if which == "ours":
        from sklearn_relevance.explainers import IntegratedGradients

        IntegratedGradients(n_steps=50, internal_batch_size=ibs).explain(net, X, t)
    else:
        from captum.attr import IntegratedGradients as CaptumIG

        CaptumIG(net).attribute(X, target=t, n_steps=50, internal_batch_size=ibs)
    print(json.dumps({"peak_mib": _peak_rss_mib() - before}))


def _memory(which, ibs):
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", which, str(ibs)],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        return _memory_child(*args.memory_child)

    net, X, t = _setup()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"input {SHAPE}, ImageCNN (eval), load average {os.getloadavg()[0]:.1f}")
    print(f"{'method':58s} {'ours [s]':>9s} {'captum [s]':>11s} {'ratio':>6s}")
    net(X)  # warm-up
    for name, ours, theirs in _pairs(net, X, t):
        # captum's one-window-per-pass occlusion is slow: time it once
        repeat = 1 if "default" in name else args.repeat
        a, b = _best_pair(ours, theirs, repeat)
        print(f"{name:58s} {a:9.3f} {b:11.3f} {a / b:6.2f}", flush=True)
    print()
    print(f"{'peak memory of IG (50 steps), RSS increase':58s} {'ours MiB':>9s} "
          f"{'captum MiB':>11s}")
    for ibs in ("None", 160):
        a, b = _memory("ours", ibs), _memory("captum", ibs)
        print(f"{'internal_batch_size=' + str(ibs):58s} {a:9.0f} {b:11.0f}")


if __name__ == "__main__":
    main()
