"""Float32 precision of the fast paths: flip rate and error against captum float32.

Issue 22's goal: the error against a float64 reference at most 1.5x captum
float32's own, max and mean. On ReLU / max-pooling networks a float32
explanation differs from float64 by rounding (tiny) and, where a
pre-activation or two pooled values lie within rounding of each other, by a
*flip*: a gate or pooling winner that moves a whole gradient value. Which
samples flip is redrawn by any change of rounding order (BatchNorm folding,
the split input layer, channels-last convolutions, captum's own batch size),
so the largest error of a few samples is a lottery; the flip *rate* and the
mean error over many samples are what a speed-up can make worse.

This prints, per network and path, over ``--n`` samples (integrated
gradients, ``--steps`` steps; the reference is captum in float64 on the
float64 network): the number of samples with a flip (max relative error
above 1e-4), the mean relative error, the largest, and their ratios to
captum float32's. Paths: ``estimator.explain`` (integrated gradients only;
the inference copy it uses), the default copy, the copy without its split
input layer, and copies with the two rewrites that are off by default
(BatchNorm folding, channels-last) asked for (``sklearn_relevance.inference``).

It ends with the rounding of single convolutions in both memory layouts
(``--convs-only`` prints that table alone, in seconds).

Run ``python benchmarks/bench_float32_precision.py`` (about 5 minutes on 2
CPU cores); ``--cases generated resnet32``, ``--n``; ``--method smoothgrad``
for SmoothGrad (``--steps`` noise samples; the peer is captum's ``Saliency``
on the noise ours draws, the reference the same in float64).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FLIP = 1e-4


def _generated(n, seed=0):
    """A small BatchNorm / max-pooling CNN with drawn statistics, 3 x 32 x 32."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    def bn(c):
        b = nn.BatchNorm2d(c)
        with torch.no_grad():
            b.running_mean.uniform_(-0.5, 0.5, generator=gen)
            b.running_var.uniform_(0.5, 2.0, generator=gen)
            b.weight.uniform_(0.5, 1.5, generator=gen)
            b.bias.uniform_(-0.3, 0.3, generator=gen)
        return b

    net = nn.Sequential(
        nn.Conv2d(3, 16, 5, padding=2), bn(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), bn(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), bn(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2)).eval()
    X = torch.rand(n, 3, 32, 32, generator=gen)
    return "generated BatchNorm / max-pooling CNN, 3 x 32 x 32", net, X, torch.arange(n) % 2


def _case(name, n):
    if name == "generated":
        return _generated(n)
    from bench_clinical_sizes import make_case

    label, _, module, X, t, _ = make_case(name, n, "cpu")
    return label, module.eval(), X, t


def _estimator_explain(module, X, t, explainer):
    from sklearn_relevance import RelevanceNetClassifier

    est = RelevanceNetClassifier(copy.deepcopy(module), max_epochs=0, random_state=0)
    est.fit(X[:2].numpy(), np.array([0, 1]))
    est.module_.load_state_dict(module.state_dict())
    est.module_.eval()
    return torch.as_tensor(est.explain(X.numpy(), target=t.numpy(), explainer=explainer))


def conv_rounding():
    """Mean |error| / max |value| of one float32 convolution against float64,
    forward and input backward, in (N, C, ...) and channels-last layouts
    (ResNet-18's 2D shapes and 3D shapes of a deep 3D CNN, 4 images)."""
    torch.manual_seed(0)
    print("\n## one convolution, float32 against float64 (mean |error| / max |value|)\n")
    print("| convolution | input | forward, contiguous | channels-last | ratio "
          "| input backward, contiguous | channels-last | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for dims, cin, cout, k, side in [
            (2, 3, 64, 7, 112), (2, 64, 64, 3, 56), (2, 128, 128, 3, 28),
            (2, 256, 256, 3, 14), (2, 512, 512, 3, 7), (2, 64, 128, 1, 56),
            (3, 1, 32, 3, 32), (3, 32, 32, 3, 32), (3, 64, 64, 3, 16),
            (3, 128, 128, 3, 8), (3, 256, 256, 3, 4)]:
        conv = getattr(nn, f"Conv{dims}d")(cin, cout, k, padding=k // 2).eval()
        fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
        f64 = getattr(nn.functional, f"conv{dims}d")
        x = torch.randn(4, cin, *([side] * dims))
        x64 = x.double().requires_grad_(True)
        exact = f64(x64, conv.weight.double(), conv.bias.double(), padding=k // 2)
        g = torch.randn_like(exact).float()
        (exact_g,) = torch.autograd.grad(exact, x64, g.double())
        errors = []
        for layout in (None, fmt):
            net = conv if layout is None else conv.to(memory_format=layout)
            xi = (x if layout is None else x.contiguous(memory_format=layout)).requires_grad_(True)
            out = net(xi)
            (gi,) = torch.autograd.grad(out, xi, g if layout is None
                                        else g.contiguous(memory_format=layout))
            errors.append((float((out.double() - exact).abs().mean() / exact.abs().max()),
                           float((gi.double() - exact_g).abs().mean() / exact_g.abs().max())))
        (fa, ba), (fb, bb) = errors
        shape = " x ".join([str(cin)] + [str(side)] * dims)
        print(f"| {cin} -> {cout}, {k}^{dims} | 4 x {shape} | {fa:.2e} | {fb:.2e} | "
              f"{fb / fa:.2f}x | {ba:.2e} | {bb:.2e} | {bb / ba:.2f}x |")


def main(argv=None):
    from captum.attr import IntegratedGradients as CaptumIG

    from bench_clinical_sizes import noise_stdev, saliency_on_our_noise

    from sklearn_relevance.explainers import IntegratedGradients, SmoothGrad
    from sklearn_relevance.inference import inference_copy, no_inference_copy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=["generated", "resnet32"])
    parser.add_argument("--n", type=int, nargs="*", default=[2000, 600],
                        help="samples per case (one value for all, or one per case)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--method", choices=["ig", "smoothgrad"], default="ig",
                        help="integrated gradients (--steps) or SmoothGrad (--steps noise "
                             "samples, 15%% of the range; captum's Saliency on the same noise)")
    parser.add_argument("--convs-only", action="store_true",
                        help="only the one-convolution rounding table")
    args = parser.parse_args(argv)
    if args.convs_only:
        return conv_rounding()
    sizes = args.n * len(args.cases) if len(args.n) == 1 else args.n
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); command: python "
          f"benchmarks/bench_float32_precision.py {' '.join(argv or sys.argv[1:])}")
    for name, n in zip(args.cases, sizes):
        label, module, X, t = _case(name, n)
        if args.method == "ig":
            def peer(net, x):
                return CaptumIG(net).attribute(x, target=t, n_steps=args.steps)

            def explainer():
                return IntegratedGradients(n_steps=args.steps)
        else:
            stdev = noise_stdev(X)

            def peer(net, x):  # on the float32 noise ours draws
                return saliency_on_our_noise(net, x, t, args.steps, stdev, noise_like=X)

            def explainer():
                return SmoothGrad(n_samples=args.steps, stdevs=stdev, random_state=0)
        exact = peer(copy.deepcopy(module).double(), X.double())
        scale = exact.abs().amax(dim=tuple(range(1, X.ndim)), keepdim=True)

        def stats(got):
            d = ((got.detach().double() - exact).abs() / scale).flatten(1)
            return int((d.amax(1) > FLIP).sum()), float(d.mean()), float(d.max())

        rows = {"captum float32": stats(peer(module, X))}
        if args.method == "ig":  # (the estimator draws SmoothGrad's noise its own way)
            rows["estimator.explain (its default copy)"] = stats(
                _estimator_explain(module, X, t, explainer()))
        variants = {"copy, default (BatchNorm kept, contiguous, input layer split)": {},
                    "copy without the split input layer": dict(split_stem=False),
                    "copy with BatchNorm folding": dict(fold_batchnorms=True),
                    "copy with channels-last": dict(channels_last=True),
                    "copy with both (the default before)": dict(channels_last=True,
                                                                fold_batchnorms=True)}
        with no_inference_copy():
            for key, options in variants.items():
                fast = inference_copy(module, X, **options)
                rows[key] = stats(explainer().explain(fast, X, t))
            rows["module as it is (no copy)"] = stats(explainer().explain(module, X, t))
        pf, pm, px = rows["captum float32"]
        what = (f"integrated gradients ({args.steps} steps)" if args.method == "ig"
                else f"SmoothGrad ({args.steps} noise samples)")
        print(f"\n## {label}, {n} samples, {what}\n")
        print("| path | samples with a flip | mean error | max error |")
        print("|---|---:|---:|---:|")
        for key, (f, m, x) in rows.items():
            print(f"| {key} | {f} ({f / max(pf, 1):.2f}x) | {m:.2e} ({m / pm:.2f}x) | "
                  f"{x:.1e} ({x / px:.2f}x) |")
    conv_rounding()


if __name__ == "__main__":
    main()
