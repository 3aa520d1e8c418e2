"""Native LRP against captum's LRP (epsilon rules), and LRP composites on the
library's networks.

Run ``python benchmarks/bench_lrp.py``. Prints the best wall time of a few
repeats per case and, where captum has an equivalent, the ratio ours/captum
measured in the same run (captum's LRP supports Linear, Conv2d and pooling
layers, not nn.Flatten, Conv1d or Conv3d, so it is compared on a 2D CNN that
flattens in ``forward``).
"""

from __future__ import annotations

import time
import warnings

import torch
from torch import nn

from sklearn_relevance.explainers.lrp import LRP
from sklearn_relevance.modules import ImageCNN, SpectrumCNN


class CNN2d(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.r1, self.p1 = nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.c2, self.r2, self.p2 = nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.c3, self.r3, self.p3 = nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.fc1, self.r4, self.fc2 = nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10)

    def forward(self, x):
        x = self.p1(self.r1(self.c1(x)))
        x = self.p2(self.r2(self.c2(x)))
        x = self.p3(self.r3(self.c3(x)))
        return self.fc2(self.r4(self.fc1(x.reshape(len(x), -1))))


def timeit(fn, repeats=7):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)  # the least disturbed run on a shared machine


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rows = []
    net = CNN2d().eval()
    X = torch.randn(32, 1, 64, 64)
    target = torch.arange(32) % 10
    ours = timeit(lambda: LRP(composite="epsilon", epsilon=1e-9).explain(net, X, target))
    try:
        from captum.attr import LRP as CaptumLRP

        def captum_run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                CaptumLRP(net).attribute(X.clone(), target=target)

        theirs = timeit(captum_run)
    except ImportError:
        theirs = float("nan")
    rows.append(("epsilon, 2D CNN 32x1x64x64", ours, theirs))
    grad = timeit(lambda: LRP(composite="epsilon").explain(
        net, X, target, create_graph=True).abs().sum().backward(), repeats=3)
    rows.append(("epsilon + create_graph + backward, same CNN", grad, float("nan")))

    mri = ImageCNN((1, 32, 32, 32), 2).eval()
    V = torch.rand(8, 1, 32, 32, 32)
    rows.append(("alpha1_beta0, ImageCNN 3D 8x1x32^3 (BatchNorm merged)",
                 timeit(lambda: LRP(composite="alpha1_beta0").explain(mri, V, 1), 3),
                 float("nan")))
    plain = timeit(lambda: mri(V.requires_grad_()).sum().backward(), 3)
    rows.append(("  forward + backward of the same network (reference)", plain,
                 float("nan")))
    spec = SpectrumCNN((1, 1000), 2).eval()
    S = torch.rand(64, 1, 1000)
    rows.append(("epsilon_plus, SpectrumCNN 64x1x1000 (residual)",
                 timeit(lambda: LRP().explain(spec, S, 1)), float("nan")))

    print(f"{'case':58s} {'ours (s)':>9s} {'captum (s)':>10s} {'ratio':>6s}")
    for name, a, b in rows:
        ratio = a / b if b == b else float("nan")
        bs = f"{b:10.4f}" if b == b else f"{'-':>10s}"
        rs = f"{ratio:6.2f}" if ratio == ratio else f"{'-':>6s}"
        print(f"{name:58s} {a:9.4f} {bs} {rs}")


if __name__ == "__main__":
    main()
