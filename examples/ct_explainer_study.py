"""Which explainer should I trust on my images? The CT evaluation study, repeated.

The CT seed compared importance estimators on a CT classifier by *fidelity*
(does removing the most important pixels first destroy the prediction faster
than removing the least important first?) and by agreement with expert masks
(pixel ROC-AUC, and Dice of XRAI regions grown from each map), and found the
two kinds of metric disagree. This script repeats the study in two settings:

1. **Synthetic lesions** (``make_lesion_images``): class-1 images hold a
   lesion, both classes hold ring-shaped distractors. The lesion mask is the
   ground truth, so every metric applies: fidelity, mask ROC-AUC, XRAI Dice,
   Dice of the top pixels, sparseness.
2. **BreastMNIST** (real ultrasound, ``../shared/data/medmnist``): MedMNIST
   ships no masks, so only the model-side metrics apply (fidelity, sparseness).

Run ``python examples/ct_explainer_study.py [--quick] [--output DIR]``; the
tables are printed as markdown and the figures written to ``DIR``
(``docs/_static`` makes the figures of ``docs/ct_mri.rst``).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from sklearn_relevance import RelevanceNetClassifier, compare_explainers
from sklearn_relevance.datasets import load_medmnist_npz, make_lesion_images

DATA = Path(os.environ.get("SKLEARN_RELEVANCE_DATA", Path(__file__).resolve().parents[1].parent
                           / "shared" / "data"))
EXPLAINERS = ["gradient", "gradient_x_input", "integrated_gradients", "smoothgrad",
              "guided_backprop", "gradcam", "occlusion", "lrp_epsilon_plus", "xrai"]
METRIC_ORDER = ["fidelity", "mask_roc_auc", "xrai_dice", "mask_dice", "sparseness"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def markdown(table, digits=3):
    metrics = [c for c in table.columns if not c.endswith(("_ci_low", "_ci_high"))]
    lines = ["| explainer | " + " | ".join(metrics) + " |",
             "|---|" + "---:|" * len(metrics)]
    for name, row in table.iterrows():
        cells = [f"{row[m]:.{digits}f} [{row[m + '_ci_low']:.2f}, {row[m + '_ci_high']:.2f}]"
                 for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fit(X, y, epochs, seed=0):
    clf = RelevanceNetClassifier(max_epochs=epochs, lr=3e-3, batch_size=32,
                                 random_state=seed,
                                 module__channels=(8, 16, 32), module__hidden_units=64)
    return clf.fit(X, y)


def lesion_study(args):
    n_train, n_test = (400, 48) if args.quick else (1200, 128)
    X, y, masks = make_lesion_images(n_train + n_test, shape=(32, 32), random_state=0)
    log(f"synthetic lesions: training on {n_train} images 1x32x32")
    clf = fit(X[:n_train], y[:n_train], 8 if args.quick else 20)
    Xte, yte, mte = X[n_train:], y[n_train:], masks[n_train:]
    log(f"test accuracy {clf.score(Xte, yte):.3f}")
    table = compare_explainers(clf, Xte, yte, masks=mte, explainers=EXPLAINERS,
                               metrics=METRIC_ORDER, random_state=0)
    return clf, (Xte, yte, mte), table


def breast_study(args):
    path = DATA / "medmnist" / "breastmnist.npz"
    if not path.is_file():
        log(f"{path} not found: BreastMNIST part skipped")
        return None, None
    Xtr, ytr = load_medmnist_npz(path, "train")
    Xte, yte = load_medmnist_npz(path, "test")
    if args.quick:
        Xte, yte = Xte[:48], yte[:48]
    log(f"BreastMNIST: training on {len(Xtr)} ultrasound images 1x28x28")
    clf = fit(Xtr, ytr, 8 if args.quick else 25)
    log(f"test accuracy {clf.score(Xte, yte):.3f} (majority class "
        f"{max(np.mean(yte), 1 - np.mean(yte)):.3f})")
    table = compare_explainers(clf, Xte, yte, explainers=EXPLAINERS,
                               metrics=["fidelity", "sparseness"], random_state=0)
    return clf, table


def figures(clf, data, table, breast_table, output):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklearn_relevance.plotting import plot_attributions, plot_comparison

    output.mkdir(parents=True, exist_ok=True)
    fig = plot_comparison(table, ncols=3, figsize=(9, 6))
    fig.savefig(output / "ct_lesions_comparison.png", dpi=90)
    X, y, masks = data
    idx = np.flatnonzero(y == 1)[:4]
    shown = ["gradient", "integrated_gradients", "smoothgrad", "gradcam", "lrp_epsilon_plus",
             "xrai"]
    maps = {name: clf.explain(X[idx], y[idx], explainer=name, target="true")
            for name in shown}
    fig = plot_attributions(X[idx], maps, masks=masks[idx], n_images=4)
    fig.savefig(output / "ct_lesions_maps.png", dpi=90)
    if breast_table is not None:
        fig = plot_comparison(breast_table, figsize=(6, 3.6))
        fig.savefig(output / "ct_breastmnist_comparison.png", dpi=90)
    plt.close("all")
    log(f"figures written to {output}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (tests, smoke)")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the figures (none written by default)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small convolutions; threads only add contention
    warnings.filterwarnings("ignore", category=UserWarning)  # NaN notes of the metrics
    clf, data, table = lesion_study(args)
    print("\n## Synthetic lesions (mean [95% bootstrap interval])\n")
    print(markdown(table))
    print("\nseconds per explainer:", {k: round(v, 1) for k, v in table.attrs["time_s"].items()})
    _, breast_table = breast_study(args)
    if breast_table is not None:
        print("\n## BreastMNIST (no masks: model-side metrics only)\n")
        print(markdown(breast_table))
    if args.output is not None:
        figures(clf, data, table, breast_table, args.output)


if __name__ == "__main__":
    main()
