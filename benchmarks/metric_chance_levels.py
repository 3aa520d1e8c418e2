"""Chance levels of the metric families: what a random map scores.

Run as ``python benchmarks/metric_chance_levels.py [--seeds 0 1 2 3 4]``. A
small CNN (the estimators' default ``ImageCNN``) is trained once on
``make_lesion_images(600, shape=(24, 24), random_state=0)`` (20 epochs,
``random_state=0``); on 32 held-out images every per-sample metric below
scores three maps per seed:

- ``random``: Gaussian noise, a fixed map per seed (the same map whatever
  the network or input: a map unrelated to the model);
- ``gradient`` and ``gradient_x_input`` of the trained network.

For each seed the metric's mean over the images is taken; the table gives
the mean over seeds and a 95% t-interval over seeds (seeds vary the random
map and every random draw of the metrics). The output is the table of
docs/metrics.rst ("What a random map scores").
"""

from __future__ import annotations

import argparse
import inspect
import pathlib
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout

from sklearn_relevance import RelevanceNetClassifier  # noqa: E402
from sklearn_relevance import metrics as M  # noqa: E402
from sklearn_relevance.datasets import make_lesion_images  # noqa: E402
from sklearn_relevance.explainers import Gradient  # noqa: E402


class RandomMap(Gradient):
    """A fixed Gaussian map per seed, whatever the network and input."""

    uses_layers = False

    def __init__(self, *, seed=0):
        self.seed = seed

    def _explain(self, module, X, target, *, create_graph):
        g = torch.Generator().manual_seed(self.seed)
        return torch.randn(X.shape[1:], generator=g).expand(X.shape).to(X.device).clone()


#: (name, function, keyword arguments), in the order of docs/metrics.rst
METRICS = [
    ("faithfulness_correlation", M.faithfulness_correlation, dict(n_runs=50, subset_size=58)),
    ("faithfulness_estimate", M.faithfulness_estimate, dict(features_in_step=24)),
    ("monotonicity_arya", M.monotonicity_arya, dict(features_in_step=24)),
    ("monotonicity_nguyen", M.monotonicity_nguyen, dict(features_in_step=48, n_samples=5)),
    ("sensitivity_n", M.sensitivity_n, dict(n_runs=20)),
    ("infidelity", M.infidelity, dict(patch_sizes=[4])),
    ("selectivity", M.selectivity, dict(patch_size=4)),
    ("road_morf", M.road, dict(order="morf", percentages=list(range(5, 100, 10)))),
    ("road_lerf", M.road, dict(order="lerf", percentages=list(range(5, 100, 10)))),
    ("irof", M.irof, dict(baseline="mean")),
    ("completeness", M.completeness, dict()),
    ("non_sensitivity", M.non_sensitivity, dict(features_in_step=8)),
    ("max_sensitivity", M.max_sensitivity, dict(n_samples=10, explains=True)),
    ("avg_sensitivity", M.avg_sensitivity, dict(n_samples=10, explains=True)),
    ("local_lipschitz_estimate", M.local_lipschitz_estimate,
     dict(n_samples=10, explains=True)),
    ("relative_input_stability", M.relative_input_stability,
     dict(n_samples=10, nan_on_change=False, explains=True)),
    ("mprt (spearman, whole network)", M.model_parameter_randomisation, dict(explains=True)),
    ("mprt_pass", None, dict(explains=True)),
    ("efficient_mprt", M.efficient_model_parameter_randomisation, dict(explains=True)),
    ("random_logit (ssim)", M.random_logit, dict(explains=True)),
    ("random_logit_pass", None, dict(explains=True)),
]


def score(name, fn, kw, net, X, t, rel, explainer, seed):
    kw = dict(kw)
    explains = kw.pop("explains", False)
    if explains:
        kw["explainer"] = explainer
    if fn is not None and "random_state" in inspect.signature(fn).parameters:
        kw["random_state"] = seed
    if name == "mprt_pass":
        return M.model_parameter_randomisation(net, X, rel, target=t, explainer=explainer,
                                               return_verdict=True, random_state=seed)[1]
    if name == "random_logit_pass":
        return M.random_logit(net, X, rel, target=t, explainer=explainer,
                              return_verdict=True, random_state=seed)[1]
    return fn(net, X, rel, target=t, **kw)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, y, _ = make_lesion_images(600, shape=(24, 24), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = RelevanceNetClassifier(max_epochs=20, verbose=0, random_state=0).fit(X[:568],
                                                                                    y[:568])
    net = clf.module_.eval()
    Xt = torch.as_tensor(X[568:])
    t = net(Xt).argmax(1).detach()
    acc = float((clf.predict(X[568:]) == y[568:]).mean())
    maps = {"random": lambda s: RandomMap(seed=s), "gradient": lambda s: "gradient",
            "gradient_x_input": lambda s: "gradient_x_input"}
    from sklearn_relevance.explainers import get_explainer

    table = {}
    for seed in args.seeds:
        for label, make in maps.items():
            explainer = get_explainer(make(seed))
            rel = explainer.explain(net, Xt, t).detach()
            for name, fn, kw in METRICS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    v = score(name, fn, kw, net, Xt, t, rel, explainer, seed)
                table.setdefault(name, {}).setdefault(label, []).append(float(np.nanmean(v)))
        print(f"seed {seed} done", file=sys.stderr, flush=True)
    from scipy.stats import t as student

    k = len(args.seeds)
    half = student.ppf(0.975, k - 1) / np.sqrt(k) if k > 1 else float("nan")
    print(f"held-out accuracy {acc:.3f}; seeds {args.seeds}; mean over seeds "
          f"[95% t-interval]\n")
    print("| metric | " + " | ".join(maps) + " |")
    print("|---|" + "---:|" * len(maps))
    for name, cols in table.items():
        cells = []
        for label in maps:
            v = np.asarray(cols[label])
            h = half * v.std(ddof=1) if k > 1 else float("nan")
            cells.append(f"{v.mean():.3g} [{v.mean() - h:.3g}, {v.mean() + h:.3g}]")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
