"""Where does a 3D CNN look? LRP alpha1-beta0 relevance per atlas region.

The MRI seed (LRP for Alzheimer's classification, Böhle et al. 2019) trains
a 3D CNN on brain MRI, explains it with LRP alpha1-beta0, and compares the
relevance of patients and controls region by region on an atlas: the
relevance *sum*, the size-corrected *density*, and the *gain* (patients'
mean density over the controls'). We have no ADNI scans here, so this
script builds a cohort with a known answer on the real MNI152 template and
AAL atlas (``../shared/data/atlas``):

* every subject is the template with per-region intensity jitter (all 116
  AAL regions), a global intensity scale and voxel noise;
* "patients" additionally lose 30-60% of the signal in the hippocampus,
  parahippocampal gyrus and amygdala (AAL 41-46) -- the atrophy the network
  must find.

It then trains the library's 3D ``ImageCNN`` (the seed's four Conv3d / BN /
ReLU / MaxPool blocks with 8/16/32/64 filters, dropout, two dense layers)
through ``RelevanceNetClassifier``, explains the held-out subjects with
``lrp_alpha1_beta0`` for the patient class, keeps the positive relevance
(evidence for the patient class), and ranks the regions by relevance gain with ``RegionRelevance``. A good explainer puts the six
atrophied regions on top.

Run ``python examples/mri_lrp_regions.py [--quick] [--output DIR]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from sklearn_relevance import RegionRelevance, RelevanceNetClassifier
from sklearn_relevance.datasets import load_atlas
from sklearn_relevance.metrics import fingerprint_similarity, region_relevance

DATA = Path(os.environ.get("SKLEARN_RELEVANCE_DATA", Path(__file__).resolve().parents[1].parent
                           / "shared" / "data"))
ATROPHY = {41: "L_Hippocampus", 42: "R_Hippocampus", 43: "L_Parahippocampal_gyrus",
           44: "R_Parahippocampal_gyrus", 45: "L_Amygdala", 46: "R_Amygdala"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_cohort(aal, n, *, step=2, random_state=0):
    """Template-based volumes; y = 1 (patient) with hippocampus/amygdala atrophy."""
    rng = np.random.default_rng(random_state)
    template = aal.template[::step, ::step, ::step]
    labels = aal.labels[::step, ::step, ::step]
    template = template / template.max()
    y = rng.permutation(np.arange(n) % 2)
    n_labels = int(labels.max()) + 1
    jitter = rng.normal(0.0, 0.05, (n, n_labels)).astype(np.float32)
    jitter[:, 0] = 0.0
    severity = rng.uniform(0.3, 0.6, n).astype(np.float32)
    for label in ATROPHY:
        jitter[:, label] -= severity * y
    scale = rng.uniform(0.9, 1.1, (n, 1, 1, 1)).astype(np.float32)
    X = template[None] * (1.0 + jitter[:, labels]) * scale
    X += rng.normal(0.0, 0.03, X.shape).astype(np.float32)
    return X[:, None].astype(np.float32), y, labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    parser.add_argument("--output", type=Path, default=None, help="folder for figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)

    aal = load_atlas(DATA / "atlas")
    step = 3  # 6 mm voxels: the 2 mm grid down-sampled, to keep CPU training short
    n_train, n_test = (96, 32) if args.quick else (240, 80)
    X, y, labels = make_cohort(aal, n_train + n_test, step=step, random_state=0)
    names = dict(zip(aal.region_ids.tolist(), aal.region_names))
    log(f"cohort: {len(X)} volumes of {X.shape[2:]} ({step * 2} mm), "
        f"{int(y.sum())} patients")

    clf = RelevanceNetClassifier(max_epochs=15 if args.quick else 20, lr=1e-3, batch_size=16,
                                 random_state=0)
    clf.fit(X[:n_train], y[:n_train])
    Xte, yte = X[n_train:], y[n_train:]
    log(f"3D ImageCNN ({sum(p.numel() for p in clf.module_.parameters()):,} parameters): "
        f"test accuracy {clf.score(Xte, yte):.3f}")

    # LRP alpha1-beta0 for each subject's true class, positive part: the
    # evidence for the diagnosis (a control's patient logit is negative, and
    # alpha1-beta0 relevance of a negative output is all negative)
    R = clf.explain(Xte, yte, explainer="lrp_alpha1_beta0", target="true")
    R = np.clip(R, 0.0, None)
    patients, controls = R[yte == 1], R[yte == 0]
    log(f"LRP relevance {R.shape}; positive relevance per subject: patients "
        f"{patients.reshape(len(patients), -1).sum(1).mean():.2f}, controls "
        f"{controls.reshape(len(controls), -1).sum(1).mean():.2f}")

    ids = sorted(names)
    density = RegionRelevance(labels, statistic="density", labels=ids).fit_transform(R)
    sums = region_relevance(R, labels, statistic="sum", labels=ids)
    gain = region_relevance(patients, labels, statistic="gain", reference=controls,
                            labels=ids).mean(0)

    def rank_of(values):
        order = np.asarray(ids)[np.argsort(-np.nan_to_num(values, nan=-np.inf))]
        return [int(np.flatnonzero(order == k)[0]) + 1 for k in ATROPHY]

    share = sums / sums.sum(1, keepdims=True)
    print("\n## Atrophied regions, LRP alpha1-beta0 (positive relevance, true class)\n")
    print("| region | gain patients / controls | rank of gain (of 116, highest first) "
          "| density rank, patients | density rank, controls | share of controls' "
          "relevance |")
    print("|---|---:|---:|---:|---:|---:|")
    ranks = {"gain": rank_of(gain), "pat": rank_of(density[yte == 1].mean(0)),
             "ctl": rank_of(density[yte == 0].mean(0))}
    for i, label in enumerate(ATROPHY):
        j = ids.index(label)
        print(f"| {names[label]} | {gain[j]:.2f} | {ranks['gain'][i]} | {ranks['pat'][i]} | "
              f"{ranks['ctl'][i]} | {share[yte == 0, j].mean():.1%} |")
    print(f"\nmedian gain over all regions: {np.nanmedian(gain):.2f}")
    fp = np.asarray(fingerprint_similarity(density[yte == 1]))
    off = fp[~np.eye(len(fp), dtype=bool)] if fp.ndim == 2 else fp
    print(f"patient fingerprints (cosine of region densities): mean {np.mean(off):.3f}")

    if args.output is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from sklearn_relevance.plotting import plot_attributions, plot_region_relevance

        args.output.mkdir(parents=True, exist_ok=True)
        ax = plot_region_relevance(1.0 / gain, [names[i] for i in ids], top=15,
                                   xlabel="relevance gain, controls / patients",
                                   reference=1.0)
        ax.figure.savefig(args.output / "mri_region_gain.png", dpi=90)
        # sagittal slice through the left hippocampus
        x_hip = int(np.round(np.argwhere(labels == 41)[:, 0].mean()))
        pick = np.r_[np.flatnonzero(yte == 1)[:2], np.flatnonzero(yte == 0)[:2]]
        atrophy = np.isin(labels, list(ATROPHY))[None].repeat(len(pick), 0)
        fig = plot_attributions(Xte[pick], {"LRP alpha1-beta0": R[pick]}, masks=atrophy,
                                slice_index=x_hip)
        fig.savefig(args.output / "mri_lrp_slices.png", dpi=90)
        plt.close("all")
        log(f"figures written to {args.output}")


if __name__ == "__main__":
    main()
