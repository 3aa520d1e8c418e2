"""Real 3D data: LRP alpha1-beta0 on AdrenalMNIST3D, relevance per region.

AdrenalMNIST3D (MedMNIST v2) holds 28 x 28 x 28 binary shape volumes of
adrenal glands segmented from abdominal CT, labelled normal (0) or mass (1);
1188 training, 98 validation and 298 test volumes, about 22% masses. This
script

* trains the library's 3D ``ImageCNN`` (``module=None``) through
  ``RelevanceNetClassifier`` on the training split, with a class-weighted
  cross-entropy (``criterion__weight``, inverse class frequency) against the 78/22
  imbalance, keeping the epoch with the best balanced accuracy on the
  validation split;
* reports accuracy and balanced accuracy on the test split beside the
  majority-class baseline;
* explains every test volume for its true class with
  ``explainer="lrp_alpha1_beta0"`` and keeps the positive relevance (the
  evidence for its diagnosis). The volumes are binary (gland = 1), and LRP
  reads relevance off as input x modified gradient, so all relevance lies
  on the gland's own voxels;
* reduces the relevance per region with ``RegionRelevance``. The data set
  has no atlas, so two label volumes stand in for one: a **population shape
  atlas** built from the training volumes (voxels that belong to the gland
  in >= 50% of them: ``core``; 10-50%: ``rim``; 1-10%: ``outer``; < 1%:
  ``background``) and an **octant grid** (the volume cut in half along each
  axis). Per region: share of each volume's relevance, density (relevance
  per atlas voxel) and the gain (masses' mean density over the normals').

Run ``python examples/adrenal_lrp_3d.py [--quick] [--seed S] [--output DIR]
[--tables DIR]``; ``--tables docs/_generated_studies/adrenal`` writes the
tables and findings that ``docs/ct_mri.rst`` includes (each with the command
and seed that made it).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.datasets import load_medmnist_npz
from sklearn_relevance.metrics import region_relevance
from sklearn_relevance.transformers import RegionRelevance

DATA = Path(os.environ.get("SKLEARN_RELEVANCE_DATA", Path(__file__).resolve().parents[1].parent
                           / "shared" / "data"))
EPOCHS, EPOCHS_QUICK, LR = 15, 4, 1e-3
MASS_SURF, NORMAL_SURF = "masses' relevance on the surface", "normals' relevance on the surface"
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
    """Per region: share of each map's relevance, density and gain (mass / normal).

    ``gain`` compares the raw densities (it carries the masses' smaller total
    relevance); ``gain_normalised`` compares the densities of maps scaled to
    sum 1, i.e. *where* the relevance lies whatever its amount. Maps without
    positive relevance (explained logit < 0) are left out of shares and the
    normalised gain.
    """
    ids = sorted(names)
    R = R[:, 0]  # one channel: maps of the atlas' shape
    sums = RegionRelevance(atlas, statistic="sum", labels=ids).fit_transform(R)
    density = RegionRelevance(atlas, statistic="density", labels=ids).fit_transform(R)
    nan = np.full(len(ids), np.nan)

    def gain_of(maps, labels):
        if not (np.any(labels == 1) and np.any(labels == 0)):
            return nan  # a group without maps: no gain
        return region_relevance(maps[labels == 1], atlas, statistic="gain",
                                reference=maps[labels == 0], labels=ids).mean(0)

    def group_mean(values, mask):
        return values[mask].mean(0) if mask.any() else nan

    gain = gain_of(R, y)
    total = R.reshape(len(R), -1).sum(1)
    live = total > 0
    share = sums[live] / total[live, None]
    yl = y[live]
    gain_n = gain_of(R[live] / total[live, None, None, None], yl)
    return {
        "region": [names[i] for i in ids],
        "voxels": np.array([(atlas == i).sum() for i in ids]),
        "share_mass": group_mean(share, yl == 1),
        "share_normal": group_mean(share, yl == 0),
        "density_mass": group_mean(density, y == 1),
        "density_normal": group_mean(density, y == 0),
        "gain": gain,
        "gain_normalised": gain_n,
        "n_maps": (int((yl == 1).sum()), int((yl == 0).sum())),
    }


def print_table(title, table):
    n_mass, n_normal = table["n_maps"]
    print(f"\n## {title}\n")
    print(f"(shares and normalised gain over the {n_mass} mass and {n_normal} normal maps "
          "with positive relevance)\n")
    print("| region | voxels | share of relevance, mass | share, normal | density, mass "
          "| density, normal | gain mass / normal | gain, normalised maps |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for i, name in enumerate(table["region"]):
        print(f"| {name} | {table['voxels'][i]} | {table['share_mass'][i]:.1%} | "
              f"{table['share_normal'][i]:.1%} | {table['density_mass'][i]:.3g} | "
              f"{table['density_normal'][i]:.3g} | {table['gain'][i]:.2f} | "
              f"{table['gain_normalised'][i]:.2f} |")


def _command(argv, args):
    """The command line that made the tables (for their provenance)."""
    import sys

    words = list(sys.argv[1:] if argv is None else argv)
    if "--seed" not in words:
        words += ["--seed", str(args.seed)]
    return " ".join(["python examples/adrenal_lrp_3d.py", *words])


def write_tables(out, facts, shape_table, oct_table, cmd, seed):
    """Write the run's facts, both region tables and its findings for the docs."""
    import pandas as pd

    from sklearn_relevance.studies._common import write_table, write_text

    quick = "--quick" in cmd.split()
    prov = (f"AdrenalMNIST3D, {facts['training volumes']} training / "
            f"{facts['test volumes']} test volumes, {facts['epochs']} epochs, training "
            f"seed (random_state) {seed}, one run"
            + (" (smoke size: not meaningful)" if quick else "")
            + f". Command: ``{cmd}``.")
    rows = [{"quantity": k, "value": (f"{v:.3f}" if isinstance(v, float) else str(v))}
            for k, v in facts.items()]
    write_table(out, "adrenal_run", pd.DataFrame(rows), provenance=prov,
                caption="The run: data, training, test scores and where the relevance lies")
    for name, table, caption in (
            ("adrenal_shape_atlas", shape_table, "Population shape atlas (from the training "
             "volumes), positive LRP alpha1-beta0 relevance for the true class"),
            ("adrenal_octants", oct_table, "Octant grid (axis-0 half D/U, axis-1 half P/A, "
             "axis-2 half L/R; positions in the array, not anatomical directions)")):
        n_mass, n_normal = table["n_maps"]
        frame = pd.DataFrame({
            "region": table["region"], "voxels": table["voxels"],
            "share, masses": table["share_mass"], "share, normals": table["share_normal"],
            "gain, raw maps": table["gain"],
            "gain, maps scaled to sum 1": table["gain_normalised"]})
        write_table(out, name, frame, provenance=prov, digits=3,
                    caption=f"{caption}; shares and normalised gains over the {n_mass} "
                            f"mass and {n_normal} normal maps with positive relevance")
    f = facts
    write_text(out, "adrenal_findings", [
        f"*{prov}*", "",
        f"* Data: {f['training volumes']} training volumes ({f['training masses']} masses), "
        f"{f['validation volumes']} validation and {f['test volumes']} test volumes "
        f"({f['test masses']} masses); the test split's majority class scores "
        f"{f['majority class']:.3f}.",
        f"* Training: class weights {f['class weights']}; best validation epoch "
        f"{f['best epoch']} of {f['epochs']} (balanced accuracy "
        f"{f['validation balanced accuracy']:.3f} there); 3D ImageCNN with "
        f"{f['parameters']:,} parameters; the whole script took {f['seconds']:.0f} s "
        "on a shared 2-core CPU.",
        f"* Test: accuracy {f['test accuracy']:.3f} against {f['majority class']:.3f} for the "
        f"majority class, balanced accuracy {f['test balanced accuracy']:.3f} "
        f"({f['normals recognised']:.0%} of the normals and {f['masses recognised']:.0%} of "
        "the masses recognised).",
        f"* Relevance: {f['positive relevance on the gland']:.1%} of the positive relevance "
        f"lies on the gland's own voxels (the gland is {f['gland share of the voxels']:.1%} "
        f"of the volume); {f['maps with negative relevance']:.0%} of the maps hold negative "
        "relevance (true-class logit below 0), so only "
        f"{f['masses with positive relevance']} of the {f['test masses']} masses and "
        f"{f['normals with positive relevance']} of the "
        f"{f['test volumes'] - f['test masses']} normals enter the shares and normalised "
        "gains.",
        f"* Surface (gland voxels with a background neighbour): "
        f"{f[MASS_SURF]:.0%} of the masses' relevance on surface voxels, which are "
        f"{f['masses' + chr(39) + ' surface voxels']:.0%} of their voxels; "
        f"{f[NORMAL_SURF]:.0%} of the normals' "
        f"({f['normals' + chr(39) + ' surface voxels']:.0%} of theirs).",
    ])


def balanced_accuracy(y_true, y_pred):
    return float(np.mean([np.mean(y_pred[y_true == k] == k) for k in np.unique(y_true)]))


class KeepBest(Callback):
    """Keep the weights of the epoch with the best validation balanced accuracy.

    The 22% minority class makes single epochs swing between "all normal"
    and "all mass"; the validation split (98 volumes) picks the epoch.
    """

    def __init__(self, X_val, y_val):
        self.X_val, self.y_val = X_val, y_val

    def on_train_begin(self, net, **kwargs):
        self.best_, self.best_epoch_, self.state_ = -np.inf, 0, None

    def on_epoch_end(self, net, **kwargs):
        module = net.module_
        module.eval()
        with torch.no_grad():
            pred = module(torch.as_tensor(self.X_val)).argmax(1).numpy()
        module.train()
        score = balanced_accuracy(self.y_val, pred)
        net.history.record("valid_bacc", score)
        if score > self.best_:
            self.best_, self.best_epoch_ = score, len(net.history)
            self.state_ = copy.deepcopy(module.state_dict())

    def on_train_end(self, net, **kwargs):
        if self.state_ is not None:
            net.module_.load_state_dict(self.state_)


def main(argv=None, *, n_train=None, n_test=None, max_epochs=None):
    """Run the study; returns a dict with the model, relevance and tables.

    ``n_train`` / ``n_test`` cut the splits (first samples) and
    ``max_epochs`` overrides the epochs, for smoke tests.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    parser.add_argument("--output", type=Path, default=None, help="folder for figures")
    parser.add_argument("--data", type=Path, default=DATA / "medmnist" / "adrenalmnist3d.npz")
    parser.add_argument("--seed", type=int, default=0, help="training random_state")
    parser.add_argument("--tables", type=Path, default=None,
                        help="folder for the generated tables the docs include")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    start = time.perf_counter()

    X, y = load_medmnist_npz(args.data, split="train")
    Xval, yval = load_medmnist_npz(args.data, split="val")
    Xte, yte = load_medmnist_npz(args.data, split="test")
    if args.quick:
        n_train = n_train or 400
        n_test = n_test or 96
    X, y, Xte, yte = X[:n_train], y[:n_train], Xte[:n_test], yte[:n_test]
    facts = {"training volumes": len(X), "training masses": int(y.sum()),
             "validation volumes": len(Xval), "test volumes": len(Xte),
             "test masses": int(yte.sum())}
    log(f"AdrenalMNIST3D: {len(X)} training volumes ({int(y.sum())} masses), "
        f"{len(Xte)} test volumes ({int(yte.sum())} masses) of {X.shape[2:]}")

    # class-weighted cross-entropy (inverse class frequency)
    counts = np.bincount(y, minlength=2).astype(np.float32)
    weight = torch.tensor(counts.sum() / (2 * counts), dtype=torch.float32)
    keep = KeepBest(Xval, yval)
    if max_epochs is None:
        max_epochs = EPOCHS_QUICK if args.quick else EPOCHS
    clf = RelevanceNetClassifier(
        max_epochs=max_epochs, lr=LR, batch_size=32, random_state=args.seed,
        criterion__weight=weight,
        callbacks=[("keep_best", keep)])
    clf.fit(X, y)
    log(f"best epoch {keep.best_epoch_} of {max_epochs} "
        f"(validation balanced accuracy {keep.best_:.3f})")
    pred = clf.predict(Xte)
    acc = float(np.mean(pred == yte))
    bacc = balanced_accuracy(yte, pred)
    majority = float(max(np.mean(yte == 0), np.mean(yte == 1)))
    log(f"3D ImageCNN ({sum(p.numel() for p in clf.module_.parameters()):,} parameters), "
        f"class weights {[round(float(w), 2) for w in weight]}: test accuracy {acc:.3f}, "
        f"balanced accuracy {bacc:.3f} (majority class {majority:.3f})")

    # LRP alpha1-beta0 for each volume's true class; the positive part is the
    # evidence for its diagnosis (alpha1-beta0 relevance of a negative logit
    # is all negative)
    R_raw = clf.explain(Xte, yte, explainer="lrp_alpha1_beta0", target="true")
    R = np.clip(R_raw, 0.0, None)
    flat = R.reshape(len(R), -1)
    gland = (Xte[:, 0] > 0.5).reshape(len(Xte), -1)
    live = flat.sum(1) > 0
    in_gland = np.mean((flat * gland)[live].sum(1) / flat[live].sum(1)) if live.any() \
        else np.nan
    neg = np.mean(R_raw.reshape(len(R_raw), -1).min(1) < 0)
    log(f"LRP relevance {R.shape}: {in_gland:.1%} of the positive relevance on the "
        f"gland's own voxels in the {live.sum()} maps that have some (gland = "
        f"{gland.mean():.1%} of the voxels); {neg:.0%} of the maps hold negative "
        "relevance (explained logit < 0)")

    # surface (gland voxels with a background 6-neighbour) against interior
    from scipy.ndimage import binary_erosion

    vol = Xte[:, 0] > 0.5
    surface = vol & ~np.stack([binary_erosion(v) for v in vol])
    on_surface = (R[:, 0] * surface).reshape(len(R), -1).sum(1)[live] / flat[live].sum(1)
    surf_frac = surface.reshape(len(R), -1).sum(1) / np.maximum(vol.reshape(len(R), -1).sum(1), 1)
    for k, name in ((1, "masses"), (0, "normals")):
        sel = yte[live] == k
        if sel.any():
            log(f"{name}: {on_surface[sel].mean():.1%} of the relevance on the gland's surface "
                f"voxels, which are {surf_frac[live][sel].mean():.1%} of its voxels")

    names_shape = SHAPE_REGIONS
    atlas_shape = shape_atlas(X)
    shape_table = region_table(R, yte, atlas_shape, names_shape)
    print_table("Population shape atlas (from the training volumes), positive LRP "
                "alpha1-beta0 relevance for the true class", shape_table)
    atlas_oct = octant_atlas(X.shape[2:])
    oct_table = region_table(R, yte, atlas_oct, octant_names())
    print_table("Octant grid (axis-0 half D/U, axis-1 half P/A, axis-2 half L/R)", oct_table)
    elapsed = time.perf_counter() - start
    log(f"done in {elapsed:.0f} s")
    surf = {k: (float(on_surface[yte[live] == k].mean()) if (yte[live] == k).any() else np.nan,
                float(surf_frac[live][yte[live] == k].mean()) if (yte[live] == k).any()
                else np.nan) for k in (0, 1)}
    facts.update({
        "epochs": max_epochs, "best epoch": keep.best_epoch_,
        "validation balanced accuracy": float(keep.best_),
        "parameters": sum(p.numel() for p in clf.module_.parameters()),
        "class weights": " / ".join(f"{float(w):.2f}" for w in weight),
        "test accuracy": acc, "test balanced accuracy": bacc, "majority class": majority,
        "normals recognised": float(np.mean(pred[yte == 0] == 0)) if (yte == 0).any()
        else np.nan,
        "masses recognised": float(np.mean(pred[yte == 1] == 1)) if (yte == 1).any()
        else np.nan,
        "positive relevance on the gland": float(in_gland),
        "gland share of the voxels": float(gland.mean()),
        "maps with negative relevance": float(neg),
        "masses with positive relevance": int((yte[live] == 1).sum()),
        "normals with positive relevance": int((yte[live] == 0).sum()),
        MASS_SURF: surf[1][0], "masses' surface voxels": surf[1][1],
        NORMAL_SURF: surf[0][0], "normals' surface voxels": surf[0][1],
        "seconds": elapsed})
    if args.tables is not None:
        write_tables(args.tables, facts, shape_table, oct_table,
                     _command(argv, args), args.seed)
        log(f"tables written to {args.tables}")

    if args.output is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        args.output.mkdir(parents=True, exist_ok=True)
        # slices through the gland's centre of two masses and two normals:
        # the most confident correctly classified ones (their true-class
        # logit is positive, so their maps hold relevance)
        proba = clf.predict_proba(Xte)
        p_true = proba[np.arange(len(yte)), yte]
        has = R.reshape(len(R), -1).sum(1) > 0
        pick = []
        for k in (1, 0):
            cand = np.flatnonzero((yte == k) & (pred == yte) & has)
            cand = cand if len(cand) >= 2 else np.flatnonzero(yte == k)
            pick += cand[np.argsort(-p_true[cand])][:2].tolist()
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
                axes[row, 2 * j + 1].set_title("LRP a1b0, true class", fontsize=7)
            axes[row, 0].set_ylabel(f"{'mass' if yte[i] else 'normal'}\n"
                                    f"p(mass)={proba[i, 1]:.2f}",
                                    fontsize=7)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(args.output / "adrenal_lrp_slices.png", dpi=150)

        fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
        for ax, table, title in ((axes[0], shape_table, "shape atlas"),
                                 (axes[1], oct_table, "octants")):
            pos = np.arange(len(table["region"]))[::-1]
            ax.barh(pos + 0.2, table["gain"], height=0.4, color="tab:gray",
                    label="raw maps")
            ax.barh(pos - 0.2, table["gain_normalised"], height=0.4, color="tab:orange",
                    label="maps scaled to sum 1")
            ax.set_yticks(pos, table["region"])
            ax.axvline(1.0, color="k", lw=0.8)
            ax.set_xscale("log")
            ax.set_xlabel("relevance gain, mass / normal")
            ax.set_title(title, fontsize=9)
        fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="upper center",
                   ncol=2, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.92))
        fig.savefig(args.output / "adrenal_region_gain.png", dpi=150)
        plt.close("all")
        log(f"figures written to {args.output}")

    return {"estimator": clf, "X_test": Xte, "y_test": yte, "relevance": R,
            "relevance_raw": R_raw, "accuracy": acc, "balanced_accuracy": bacc,
            "majority": majority, "shape_table": shape_table, "octant_table": oct_table,
            "atlas_shape": atlas_shape, "seconds": elapsed}


if __name__ == "__main__":
    main()
