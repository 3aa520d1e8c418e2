"""Channels-last in the inference copy: time and error, both settings in one run.

On the CPU the inference copy (``sklearn_relevance.inference.inference_copy``)
may, when asked, fold BatchNorms and turn 2D / 3D convolution weights
channels-last (both off by default: they round worse). This times integrated
gradients (``--steps``, default 20) and SmoothGrad (``--samples``, default
20) on three copies of the networks of ``bench_clinical_sizes.py`` (ResNet-18-
like at 4 x 3 x 224 x 224, a 3D CNN at 4 x 1 x 64^3): the default copy
(input layer split off), with BatchNorm folded, and with both (the default
before), against captum at the best of a few ``internal_batch_size`` /
``nt_samples_batch_size`` values (each timed once; the best joins the
repeats), interleaved (copy A, copy B, captum
options, ...; best of ``--repeat``), so the machine's load hits all alike.

The error lines give, for each copy and for captum in float32, the max and
mean |difference| / max |value| against the float64 result: IG with 10
steps; SmoothGrad with 5 noise samples, captum's ``Saliency`` on the very
noisy inputs ours draws (the float64 reference on the same float32 noise).
Issue 22's goals: time at most 0.7x captum's best, error at most 1.5x
captum float32's own (max and mean).

Run ``python benchmarks/bench_channels_last.py`` (about 10 minutes on 2
loaded CPU cores; ``--cases resnet224`` or ``cnn3d64`` for one network).
``--floor`` adds, per copy, the time of its convolutions alone (forward and
input backward, one profiled run): the part of ours that no rewrite removes,
against captum's best.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import best_of  # noqa: E402
from bench_clinical_sizes import (  # noqa: E402
    convolution_seconds,
    make_case,
    noise_stdev,
    saliency_on_our_noise,
)


def _errors(got, exact):
    got, exact = torch.as_tensor(got).double(), exact.double()
    scale = float(exact.abs().max())
    return (float((got - exact).abs().max()) / scale,
            float((got - exact).abs().mean()) / scale)


def main(argv=None):
    from captum.attr import IntegratedGradients as CaptumIG
    from captum.attr import NoiseTunnel, Saliency

    from sklearn_relevance.explainers import IntegratedGradients, SmoothGrad
    from sklearn_relevance.inference import inference_copy, is_channels_last
    from sklearn_relevance.inference import no_inference_copy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=["resnet224", "cnn3d64"])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--floor", action="store_true",
                        help="also profile one run of ours: the time of its convolutions alone")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), cpu, best of "
          f"{args.repeat}, load average {load:.1f}; command: python "
          f"benchmarks/bench_channels_last.py {' '.join(argv or sys.argv[1:])}")
    for name in args.cases:
        label, _, module, X, t, _ = make_case(name, args.n, "cpu")
        module.eval()
        copies = {"default": inference_copy(module, X),
                  "folded": inference_copy(module, X, fold_batchnorms=True),
                  "folded, CL": inference_copy(module, X, channels_last=True,
                                               fold_batchnorms=True)}
        assert is_channels_last(copies["folded, CL"]), name  # noqa: S101 (benchmark)
        assert not is_channels_last(copies["default"]), name  # noqa: S101
        print(f"\n## {label}")

        # error against float64 (4 samples)
        X2, t2 = X[:4], t[:4]
        m64, X64 = copy.deepcopy(module).double(), X[:4].double()
        exact_ig = CaptumIG(m64).attribute(X64, target=t2, n_steps=10)
        stdev = noise_stdev(X2)
        exact_sg = saliency_on_our_noise(m64, X64, t2, 5, stdev, noise_like=X2)
        rows = {"IG": [], "SmoothGrad": []}
        with no_inference_copy():
            for key, net in copies.items():
                ig = IntegratedGradients(n_steps=10).explain(net, X2, t2)
                sg = SmoothGrad(n_samples=5, stdevs=stdev, random_state=0).explain(net, X2, t2)
                rows["IG"].append((key, _errors(ig.detach(), exact_ig)))
                rows["SmoothGrad"].append((key, _errors(sg.detach(), exact_sg)))
        rows["IG"].append(("captum float32", _errors(
            CaptumIG(module).attribute(X2, target=t2, n_steps=10), exact_ig)))
        rows["SmoothGrad"].append(("captum float32", _errors(
            saliency_on_our_noise(module, X2, t2, 5, stdev), exact_sg)))
        for method, found in rows.items():
            cm, ca = found[-1][1]
            text = "; ".join(f"{k} {m:.1e} / {a:.1e} ({m / cm:.2f}x / {a / ca:.2f}x)"
                             for k, (m, a) in found[:-1])
            print(f"{method} error vs float64 (max / mean, ratio to captum float32's): {text}; "
                  f"captum float32 {cm:.1e} / {ca:.1e}")

        # time, interleaved
        n = len(X)
        stdev = noise_stdev(X)
        ig = IntegratedGradients(n_steps=args.steps)
        sg = SmoothGrad(n_samples=args.samples, stdevs=stdev, random_state=0)

        def ours(explainer, net):
            def run():
                with no_inference_copy():
                    return explainer.explain(net, X, t)
            return run

        def captum_ig(ibs):
            return lambda: CaptumIG(module).attribute(X, target=t, n_steps=args.steps,
                                                      internal_batch_size=ibs)

        def captum_sg(per_pass):
            return lambda: NoiseTunnel(Saliency(module)).attribute(
                X, nt_samples=args.samples, stdevs=stdev, target=t, abs=False,
                nt_samples_batch_size=per_pass)

        for method, explainer, peers in (
                (f"IG ({args.steps} steps)", ig,
                 {f"internal_batch_size={r}": captum_ig(r)
                  for r in sorted({n, 2 * n, 5 * n, 10 * n}) if r <= n * args.steps}),
                (f"SmoothGrad ({args.samples} samples)", sg,
                 {f"nt_samples_batch_size={p}": captum_sg(p)
                  for p in (1, 2, 5, args.samples) if p <= args.samples})):
            fns = {f"ours, {key}": ours(explainer, net) for key, net in copies.items()}
            for fn in fns.values():
                fn()  # warm-up
            # each of captum's settings once; its best then joins the repeats
            times = {key: best_of(fn, 1)[0] for key, fn in peers.items()}
            peer = min(peers, key=times.get)
            fns[peer] = peers[peer]
            times.update({k: float("inf") for k in fns if k != peer})
            for _ in range(args.repeat):
                for key, fn in fns.items():
                    times[key] = min(times[key], best_of(fn, 1)[0])
            print(f"{method}, captum best: {peer} {times[peer]:.2f} s")
            for key in list(copies):
                value = times[f"ours, {key}"]
                print(f"  ours, {key:<14} {value:7.2f} s  {value / times[peer]:5.2f}x captum best")
            if args.floor:
                for key, net in copies.items():
                    # the work no rewrite of the network removes
                    conv, _ = convolution_seconds(ours(explainer, net))
                    print(f"  floor, {key:<13} {conv:7.2f} s  {conv / times[peer]:5.2f}x captum best"
                          " (its convolutions alone: forward and input backward, profiled)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
