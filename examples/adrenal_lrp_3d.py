"""Real 3D data: LRP alpha1-beta0 on AdrenalMNIST3D, relevance per region.

AdrenalMNIST3D (MedMNIST v2) holds 28 x 28 x 28 binary shape volumes of
adrenal glands segmented from abdominal CT, labelled normal (0) or mass (1);
1188 training, 98 validation and 298 test volumes, about 22% masses. This
script

* trains the library's 3D ``ImageCNN`` (``module=None``) through
  ``RelevanceNetClassifier`` on the training split, with a class-weighted
  cross-entropy (``criterion__weight``, inverse class frequency) against
  the 78/22 imbalance;
* reports accuracy and balanced accuracy on the test split beside the
  majority-class baseline;
* explains every test volume for the *mass* class with
  ``explainer="lrp_alpha1_beta0"`` and keeps the positive relevance (the
  evidence for "mass");
* reduces the relevance per region with ``RegionRelevance``. The data set
  has no atlas, so two label volumes stand in for one: a **population shape
  atlas** built from the training volumes (voxels that belong to the gland
  in >= 50% of them: ``core``; 10-50%: ``rim``; 1-10%: ``outer``; < 1%:
  ``background``) and an **octant grid** (the volume cut in half along each
  axis). Per region: relevance sum, density and the gain (masses' mean
  density over the normals').

Run ``python examples/adrenal_lrp_3d.py [--quick] [--output DIR]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.datasets import load_medmnist_npz
from sklearn_relevance.metrics import region_relevance
from sklearn_relevance.transformers import RegionRelevance

DATA = Path(os.environ.get("SKLEARN_RELEVANCE_DATA", Path(__file__).resolve().parents[1].parent
                           / "shared" / "data"))
SHAPE_REGIONS = {1: "core", 2: "rim", 3: "outer", 4: "background"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def shape_atlas(X):
    """Population atlas: how often each voxel is gland in the volumes X."""
    freq = (X[:, 0] > 0.5).mean(0)
    atlas = np.full(freq.shape, 4, dtype=np.int64)
    atlas[freq >= 0.01] = 3
    atlas[freq >= 0.10] = 2
    atlas[freq >= 0.50] = 1
    return atlas


def octant_atlas(shape):
    """Label volume 1..8: the volume halved along each axis."""
    idx = np.indices(shape)
    halves = [(idx[a] >= shape[a] // 2).astype(np.int64) for a in range(3)]
    return 1 + 4 * halves[0] + 2 * halves[1] + halves[2]


def octant_names():
    return {1 + 4 * a + 2 * b + c: f"{'DU'[a]}{'PA'[b]}{'LR'[c]}"  # axis0 / axis1 / axis2 halves
            for a in (0, 1) for b in (0, 1) for c in (0, 1)}


def region_table(R, y, atlas, names):
    """Sum share, mean density per class and gain (mass / normal) per region."""
    ids = sorted(names)
    sums = RegionRelevance(atlas, statistic="sum", labels=ids).fit_transform(R)
    density = RegionRelevance(atlas, statistic="density", labels=ids).fit_transform(R)
    gain = region_relevance(R[y == 1], atlas, statistic="gain", reference=R[y == 0],
                            labels=ids).mean(0)
    total = sums.sum(1, keepdims=True)
    share = np.divide(sums, total, out=np.zeros_like(sums), where=total > 0)
    return {
        "region": [names[i] for i in ids],
        "voxels": np.array([(atlas == i).sum() for i in ids]),
        "share_mass": share[y == 1].mean(0),
        "share_normal": share[y == 0].mean(0),
        "density_mass": density[y == 1].mean(0),
        "density_normal": density[y == 0].mean(0),
        "gain": gain,
    }


def print_table(title, table):
    print(f"\n## {title}\n")
    print("| region | voxels | share of relevance, mass | share, normal | density, mass "
          "| density, normal | gain mass / normal |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for i, name in enumerate(table["region"]):
        print(f"| {name} | {table['voxels'][i]} | {table['share_mass'][i]:.1%} | "
              f"{table['share_normal'][i]:.1%} | {table['density_mass'][i]:.3g} | "
              f"{table['density_normal'][i]:.3g} | {table['gain'][i]:.2f} |")


def main(argv=None, *, n_train=None, n_test=None):
    """Run the study; returns a dict with the model, relevance and tables.

    ``n_train`` / ``n_test`` cut the splits (first samples) for smoke tests.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    parser.add_argument("--output", type=Path, default=None, help="folder for figures")
    parser.add_argument("--data", type=Path, default=DATA / "medmnist" / "adrenalmnist3d.npz")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    start = time.perf_counter()

    X, y = load_medmnist_npz(args.data, split="train")
    Xte, yte = load_medmnist_npz(args.data, split="test")
    if args.quick:
        n_train = n_train or 400
        n_test = n_test or 96
    X, y, Xte, yte = X[:n_train], y[:n_train], Xte[:n_test], yte[:n_test]
    log(f"AdrenalMNIST3D: {len(X)} training volumes ({int(y.sum())} masses), "
        f"{len(Xte)} test volumes ({int(yte.sum())} masses) of {X.shape[2:]}")

    counts = np.bincount(y, minlength=2).astype(np.float32)
    weight = torch.tensor(counts.sum() / (2 * counts), dtype=torch.float32)
    clf = RelevanceNetClassifier(
        max_epochs=4 if args.quick else 15, lr=1e-3, batch_size=32, random_state=0,
        criterion__weight=weight)
    clf.fit(X, y)
    pred = clf.predict(Xte)
    acc = float(np.mean(pred == yte))
    bacc = float(np.mean([np.mean(pred[yte == k] == k) for k in (0, 1)]))
    majority = float(max(np.mean(yte == 0), np.mean(yte == 1)))
    log(f"3D ImageCNN ({sum(p.numel() for p in clf.module_.parameters()):,} parameters), "
        f"class weights {weight.numpy().round(2).tolist()}: test accuracy {acc:.3f}, "
        f"balanced accuracy {bacc:.3f} (majority class {majority:.3f})")

    # LRP alpha1-beta0 for the mass class on every test volume; the positive
    # part is the evidence for "mass"
    R_raw = clf.explain(Xte, explainer="lrp_alpha1_beta0", target=1)
    R = np.clip(R_raw, 0.0, None)
    flat = R.reshape(len(R), -1)
    gland = (Xte[:, 0] > 0.5).reshape(len(Xte), -1)
    in_gland = (flat * gland).sum(1) / np.maximum(flat.sum(1), 1e-12)
    log(f"LRP relevance {R.shape}; share of positive relevance on the gland's own voxels: "
        f"{in_gland.mean():.1%} (gland = {gland.mean():.1%} of the voxels)")

    names_shape = SHAPE_REGIONS
    atlas_shape = shape_atlas(X)
    shape_table = region_table(R, yte, atlas_shape, names_shape)
    print_table("Population shape atlas (from the training volumes), positive LRP "
                "relevance for 'mass'", shape_table)
    atlas_oct = octant_atlas(X.shape[2:])
    oct_table = region_table(R, yte, atlas_oct, octant_names())
    print_table("Octant grid (axis-0 half D/U, axis-1 half P/A, axis-2 half L/R)", oct_table)
    elapsed = time.perf_counter() - start
    log(f"done in {elapsed:.0f} s")

    if args.output is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        args.output.mkdir(parents=True, exist_ok=True)
        # central slices of two masses and two normals (correctly classified
        # where possible), volume and relevance side by side
        right = pred == yte
        pick = []
        for k in (1, 0):
            cand = np.flatnonzero((yte == k) & right)
            cand = cand if len(cand) >= 2 else np.flatnonzero(yte == k)
            pick += cand[:2].tolist()
        fig, axes = plt.subplots(len(pick), 4, figsize=(7.2, 1.9 * len(pick)))
        axes = np.atleast_2d(axes)
        for row, i in enumerate(pick):
            vol, rel = Xte[i, 0], R[i, 0]
            # slice through the gland's centre of mass
            c = np.round(np.argwhere(vol > 0.5).mean(0)).astype(int) if vol.max() > 0.5 \
                else np.array(vol.shape) // 2
            vmax = max(rel.max(), 1e-12)
            views = [(vol[c[0]], rel[c[0]], f"axis 0 = {c[0]}"),
                     (vol[:, c[1]], rel[:, c[1]], f"axis 1 = {c[1]}")]
            for j, (v, r, lab) in enumerate(views):
                axes[row, 2 * j].imshow(v, cmap="gray", vmin=0, vmax=1)
                axes[row, 2 * j + 1].imshow(r, cmap="hot", vmin=0, vmax=vmax)
                axes[row, 2 * j + 1].contour(v > 0.5, levels=[0.5], colors="c",
                                             linewidths=0.6)
                axes[row, 2 * j].set_title(f"{lab}", fontsize=7)
                axes[row, 2 * j + 1].set_title("LRP a1b0 (mass)", fontsize=7)
            axes[row, 0].set_ylabel(f"{'mass' if yte[i] else 'normal'}\n"
                                    f"p(mass)={clf.predict_proba(Xte[i:i + 1])[0, 1]:.2f}",
                                    fontsize=7)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(args.output / "adrenal_lrp_slices.png", dpi=80)

        fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
        for ax, table, title in ((axes[0], shape_table, "shape atlas"),
                                 (axes[1], oct_table, "octants")):
            ax.barh(table["region"][::-1], table["gain"][::-1], color="tab:orange")
            ax.axvline(1.0, color="k", lw=0.8)
            ax.set_xlabel("relevance gain, mass / normal")
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(args.output / "adrenal_region_gain.png", dpi=80)
        plt.close("all")
        log(f"figures written to {args.output}")

    return {"estimator": clf, "X_test": Xte, "y_test": yte, "relevance": R,
            "relevance_raw": R_raw, "accuracy": acc, "balanced_accuracy": bacc,
            "majority": majority, "shape_table": shape_table, "octant_table": oct_table,
            "atlas_shape": atlas_shape, "seconds": elapsed}


if __name__ == "__main__":
    main()
