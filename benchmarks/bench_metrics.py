"""Attribution metrics against quantus 0.6 on the same inputs.

Run as ``python benchmarks/bench_metrics.py [--repeats 3] [--threads 1]``.
Prints a markdown table: our time, quantus' time (best of ``repeats``), the
speed ratio (quantus / ours, > 1 means we are faster) and the largest
difference between the two results.

- perturbation curves: ``perturbation_curve`` against ``quantus.PixelFlipping``
  on 128 random images 1 x 28 x 28, a LeNet-style CNN, baseline 0, softmax
  response, ``features_in_step`` 28 (28 steps) and 7 (112 steps);
- ``mask_roc_auc`` against ``quantus.AUC`` on 256 images 1 x 64 x 64;
- ``relevance_rank_accuracy``, ``pointing_game``, ``sparseness`` against their
  quantus counterparts on the same 256 images.

``--figure PATH`` instead draws the perturbation-curve figure of
docs/metrics.rst (docs/_static/metrics_perturbation_curves.png).

``--families`` instead times the randomisation, robustness and further
faithfulness metrics against their quantus peers on 64 images 1 x 64 x 64
and 8 volumes 1 x 32^3 through a small CNN (``benchmarks/_metric_families.py``
says what each case runs); ``--quick`` runs fewer noisy copies (10 instead
of 50) and ROAD percentages (10 instead of 50) and skips non-sensitivity
(4096 steps); ``--only NAME ...`` runs the cases whose label holds a name;
``--quantus-repeats N`` times quantus as best of N calls too (default one).
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import sys
import warnings

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout

from sklearn_relevance.metrics import (  # noqa: E402
    mask_roc_auc,
    perturbation_curve,
    pointing_game,
    relevance_rank_accuracy,
    sparseness,
)

from _timing import best_of  # noqa: E402  (benchmarks/ is on the path)


def lenet():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    ).eval()


def quantus_call(metric, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(metric(**kwargs), dtype=np.float64)


def figure(path):
    """MIF / LIF / random deletion curves: gradient x input against noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklearn_relevance import RelevanceNetClassifier
    from sklearn_relevance.datasets import make_lesion_images
    from sklearn_relevance.metrics import fidelity_score

    X, y, _ = make_lesion_images(400, shape=(24, 24), random_state=0)
    clf = RelevanceNetClassifier(max_epochs=15, random_state=0).fit(X[:300], y[:300])
    Xt = X[300:]
    rel = clf.explain(Xt, explainer="gradient_x_input")
    noise = np.random.default_rng(0).normal(size=rel.shape)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for ax, (title, r) in zip(axes, [("gradient x input", rel), ("random noise", noise)]):
        for order, style in [("mif", "-"), ("lif", "--"), ("random", ":")]:
            fr, c = perturbation_curve(clf, Xt, r, order=order, response="proba",
                                       random_state=0)
            ax.plot(fr, c.mean(0), style,
                    label=order.upper() if order != "random" else "random order")
        fid = np.nanmean(fidelity_score(clf, Xt, None, r, target="predicted"))
        ax.set_title(f"{title}: fidelity {fid:.2f}")
        ax.set_xlabel("fraction of pixels set to 0")
    axes[0].set_ylabel("probability of the predicted class")
    axes[0].legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--figure", default=None, help="draw the docs figure to this path")
    parser.add_argument("--families", action="store_true",
                        help="the randomisation, robustness and faithfulness families")
    parser.add_argument("--quick", action="store_true", help="smaller --families settings")
    parser.add_argument("--only", nargs="*", default=None, help="--families cases to run")
    parser.add_argument("--quantus-repeats", type=int, default=1,
                        help="--families: best of this many quantus calls (default one)")
    parser.add_argument("--floor", action="store_true",
                        help="--families: also time the network passes each metric makes, "
                             "replayed alone (what bounds any implementation's speed-up)")
    args = parser.parse_args(argv)
    if args.families:
        import _metric_families as fam

        torch.set_num_threads(args.threads)
        import quantus

        rows, costs = fam.run(quantus, args.repeats, args.quick, args.only, args.floor,
                              args.quantus_repeats)
        print(f"machine: {platform.processor() or platform.machine()}, torch "
              f"{torch.__version__} ({args.threads} thread(s)), quantus "
              f"{getattr(quantus, '__version__', '?')}, ours best of {args.repeats}, "
              f"quantus best of {args.quantus_repeats}{', --quick' if args.quick else ''}\n")
        fam.report(rows, costs)
        return None
    if args.figure:
        torch.set_num_threads(args.threads)
        return figure(args.figure)
    import quantus

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []

    # ---------------------------------------------------- perturbation curves
    net = lenet()
    x = rng.normal(size=(128, 1, 28, 28)).astype(np.float32)
    a = rng.normal(size=(128, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    for fis in (28, 7):
        steps = 784 // fis
        pf = quantus.PixelFlipping(features_in_step=fis, perturb_baseline=0.0,
                                   disable_warnings=True)
        tq, ref = best_of(lambda: quantus_call(
            pf, model=net, x_batch=x, y_batch=y, a_batch=a.copy(), softmax=True,
            device="cpu", batch_size=64), args.repeats)
        to, (_, ours) = best_of(lambda: perturbation_curve(
            net, x, a, y=y, steps=steps, baseline=0.0, response="proba"), args.repeats)
        rows.append((f"perturbation_curve, 128 x 1x28x28, {steps} steps",
                     "PixelFlipping", to, tq, np.abs(ours[:, 1:] - ref).max()))

    # ---------------------------------------------------- localisation, complexity
    xa = rng.normal(size=(256, 1, 64, 64)).astype(np.float32)
    aa = rng.normal(size=(256, 1, 64, 64)).astype(np.float32)
    sa = np.zeros((256, 1, 64, 64), np.float32)
    cy, cx = rng.integers(12, 52, (2, 256))
    yy, xx = np.mgrid[:64, :64]
    sa[:, 0] = ((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2) < 100
    ya = np.zeros(256, int)
    cases = [
        ("mask_roc_auc", mask_roc_auc, quantus.AUC, True),
        ("relevance_rank_accuracy", relevance_rank_accuracy, quantus.RelevanceRankAccuracy, True),
        ("pointing_game", pointing_game, quantus.PointingGame, True),
        ("sparseness", sparseness, quantus.Sparseness, False),
    ]
    for name, ours_fn, q_cls, needs_mask in cases:
        metric = q_cls(disable_warnings=True)
        kw = dict(model=None, x_batch=xa, y_batch=ya, a_batch=None,
                  s_batch=sa if needs_mask else None)
        tq, ref = best_of(lambda: quantus_call(metric, **{**kw, "a_batch": aa.copy()}),
                          args.repeats)
        to, ours = best_of(lambda: ours_fn(aa, sa) if needs_mask else ours_fn(aa),
                           args.repeats)
        rows.append((f"{name}, 256 x 1x64x64", q_cls.__name__, to, tq,
                     np.abs(ours - ref).max()))

    print(f"machine: {platform.processor() or platform.machine()}, torch "
          f"{torch.__version__} ({args.threads} thread(s)), quantus "
          f"{getattr(quantus, '__version__', '?')}, best of {args.repeats}\n")
    print("| case | quantus peer | ours (s) | quantus (s) | speed-up | max abs diff |")
    print("|---|---|---:|---:|---:|---:|")
    for case, peer, to, tq, diff in rows:
        print(f"| {case} | {peer} | {to:.3f} | {tq:.3f} | {tq / to:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
