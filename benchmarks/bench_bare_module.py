"""An explainer called on a bare module against the estimator path and captum.

``get_explainer("integrated_gradients", n_steps=20).explain(module, X, target)``
(a captum user's own path) now decides the network once, like
``estimator.explain``: the cached inference copy where it applies
(``sklearn_relevance.inference``). This times, interleaved, on the
networks of ``bench_clinical_sizes.py`` (ResNet-18-like at 3 x S x S,
BatchNorm statistics set away from the identity; a 3D CNN at 1 x S^3):

* the bare-module call of integrated gradients (``--steps``, default 20)
  and of SmoothGrad (``--samples``, default 20);
* ``estimator.explain`` with the same explainer;
* captum's ``IntegratedGradients`` at the best of a few
  ``internal_batch_size`` values, and ``NoiseTunnel(Saliency)`` at the best
  of a few ``nt_samples_batch_size`` values (the peer; each setting timed
  once, its best joins the repeats),

and prints each best-of-``--repeat`` time, the ratios to captum's best and
the largest difference of the bare call from captum's map, relative to its
largest value (IG; captum's SmoothGrad draws its own noise). Run ``python benchmarks/bench_bare_module.py`` (``--cases
resnet224 cnn3d64`` for the issue's sizes; the default, ``resnet112``, takes
about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import best_of  # noqa: E402
from bench_clinical_sizes import make_case, noise_stdev  # noqa: E402


def main(argv=None):
    from sklearn_relevance.explainers import get_explainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=["resnet112"])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--only", nargs="*", default=None, help="IG and / or SmoothGrad")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), best of "
          f"{args.repeat}, load average {os.getloadavg()[0]:.1f}; command: python "
          f"benchmarks/bench_bare_module.py {' '.join(argv or sys.argv[1:])}")
    for name in args.cases:
        label, est, module, X, t, _ = make_case(name, args.n, "cpu")
        module.eval()
        X_np, t_np = X.numpy(), t.numpy()
        n = len(X)
        stdev = noise_stdev(X)
        print(f"\n{label}")
        for method, explainer, peers in (
                (f"IG ({args.steps} steps)",
                 get_explainer("integrated_gradients", n_steps=args.steps),
                 {f"internal_batch_size={r}": _captum_ig(module, X, t, args.steps, r)
                  for r in sorted({n, 2 * n, 5 * n, 10 * n}) if r <= n * args.steps}),
                (f"SmoothGrad ({args.samples} samples)",
                 get_explainer("smoothgrad", n_samples=args.samples, stdevs=stdev,
                               random_state=0),
                 {f"nt_samples_batch_size={p}": _captum_sg(module, X, t, args.samples,
                                                           stdev, p)
                  for p in (1, 2, 5, args.samples) if p <= args.samples})):
            if args.only and method.split()[0] not in args.only:
                continue

            def bare(explainer=explainer):
                return explainer.explain(module, X, t)

            def estimator(explainer=explainer):
                return est.explain(X_np, explainer=explainer, target=t_np, batch_size=-1)

            bare()  # the first call makes and checks the cached copy
            # each of captum's settings once; its best then joins the repeats
            times = {key: best_of(fn, 1)[0] for key, fn in peers.items()}
            peer = min(peers, key=times.get)
            fns = {"bare module": bare, "estimator.explain": estimator, peer: peers[peer]}
            times.update({"bare module": float("inf"), "estimator.explain": float("inf")})
            for _ in range(args.repeat):  # interleaved: the machine's load hits all alike
                for key, fn in fns.items():
                    times[key] = min(times[key], best_of(fn, 1)[0])
            with torch.no_grad():
                ref = peers[peer]() if method.startswith("IG") else None
            got = bare().detach()
            print(f"  {method}")
            for key, value in times.items():
                print(f"    {key:<28} {value:8.3f} s   {value / times[peer]:5.2f}x captum best")
            if ref is not None:
                diff = float((got - ref).abs().max() / ref.abs().max())
                print(f"    captum best: {peer}; bare vs captum max |diff| / max |value| "
                      f"{diff:.1e}")
            else:
                print(f"    captum best: {peer} (captum draws its own noise: no value "
                      f"comparison here; bench_clinical_sizes.py compares on our noise)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


def _captum_ig(module, X, t, steps, ibs):
    from captum.attr import IntegratedGradients as CaptumIG

    return lambda: CaptumIG(module).attribute(X, target=t, n_steps=steps,
                                              internal_batch_size=ibs)


def _captum_sg(module, X, t, samples, stdev, per_pass):
    from captum.attr import NoiseTunnel, Saliency

    return lambda: NoiseTunnel(Saliency(module)).attribute(
        X, nt_samples=samples, stdevs=stdev, target=t, abs=False,
        nt_samples_batch_size=per_pass)

if __name__ == "__main__":
    main()
