"""An explainer called on a bare module against the estimator path and captum.

``get_explainer("integrated_gradients", n_steps=20).explain(module, X, target)``
(a captum user's own path) now decides the network once, like
``estimator.explain``: the cached inference copy where it applies
(``sklearn_relevance._which_network``). This times, interleaved, on the
networks of ``bench_clinical_sizes.py`` (ResNet-18-like at 3 x S x S,
BatchNorm statistics set away from the identity; a 3D CNN at 1 x S^3):

* the bare-module call of integrated gradients (``--steps``, default 20);
* ``estimator.explain`` with the same explainer;
* captum's ``IntegratedGradients`` at the best of a few
  ``internal_batch_size`` values (the peer),

and prints each best-of-``--repeat`` time, the ratios to captum's best and
the largest difference of the bare call from captum's map, relative to its
largest value. Run ``python benchmarks/bench_bare_module.py`` (``--cases
resnet224 cnn3d64`` for the issue's sizes; the default, ``resnet112``, takes
about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import best_of  # noqa: E402
from bench_clinical_sizes import make_case  # noqa: E402


def main(argv=None):
    from captum.attr import IntegratedGradients as CaptumIG

    from sklearn_relevance.explainers import get_explainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=["resnet112"])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), IG "
          f"{args.steps} steps, best of {args.repeat}")
    for name in args.cases:
        label, est, module, X, t, _ = make_case(name, args.n, "cpu")
        module.eval()
        X_np, t_np = X.numpy(), t.numpy()
        ig = get_explainer("integrated_gradients", n_steps=args.steps)

        def bare():
            return ig.explain(module, X, t)

        def estimator():
            return est.explain(X_np, explainer=ig, target=t_np, batch_size=-1)

        def captum(ibs):
            return lambda: CaptumIG(module).attribute(X, target=t, n_steps=args.steps,
                                                      internal_batch_size=ibs)

        bare()  # the first call makes and checks the cached copy
        n = len(X)
        options = {f"internal_batch_size={r}": captum(r)
                   for r in sorted({n, 2 * n, 5 * n, 10 * n}) if r <= n * args.steps}
        times = {"bare module": [], "estimator.explain": []}
        times.update({k: [] for k in options})
        for _ in range(args.repeat):  # interleaved: the machine's load hits all alike
            times["bare module"].append(best_of(bare, 1)[0])
            times["estimator.explain"].append(best_of(estimator, 1)[0])
            for key, fn in options.items():
                times[key].append(best_of(fn, 1)[0])
        best = {k: min(v) for k, v in times.items()}
        peer_key = min(options, key=best.get)
        with torch.no_grad():
            ref = options[peer_key]()
            diff = float((bare().detach() - ref).abs().max() / ref.abs().max())
        print(f"\n{label}")
        for key, value in best.items():
            print(f"  {key:<28} {value:8.3f} s   {value / best[peer_key]:5.2f}x captum best")
        print(f"  captum best: {peer_key}; bare vs captum max |diff| / max |value| "
              f"{diff:.1e}")


if __name__ == "__main__":
    main()
