"""MRI study: LRP alpha1-beta0 relevance per atlas region, with two input scalings.

The MRI seed (LRP for Alzheimer's classification, Böhle et al. 2019) trains a
3D CNN on brain MRI, explains the Alzheimer's (patient) output with LRP
alpha1-beta0 for patients *and* controls, and compares them per atlas
region: *relevance gain* is the patients' mean relevance density over the
controls' mean density. Without ADNI scans, the cohort here is built on the
real MNI152 template and AAL atlas (``../shared/data/atlas``): each subject
is the template with per-region intensity jitter, a global scale and noise;
patients lose 30-60% of the signal in the hippocampus, parahippocampal gyrus
and amygdala (AAL 41-46).

The same network is trained twice, on two scalings of the same volumes:

* ``"unit"``: intensities in [0, 1] (template over its maximum);
* ``"standardised"``: every voxel standardised by the training subjects'
  mean and standard deviation (zero-variance voxels set to 0).

alpha1-beta0 relevance is input times positive weight (propagated): on
[0, 1] inputs, *missing* signal (atrophy) is a small input and cannot
receive much positive relevance; standardised, atrophy is a large negative
deviation that can. The tables show both.

Run ``python -m sklearn_relevance.studies mri [--quick] [--out DIR]``.
"""

from __future__ import annotations

import numpy as np

from ._common import begin, command, data_dir, save_figure, write_table, write_text

ATROPHY = {41: "L_Hippocampus", 42: "R_Hippocampus", 43: "L_Parahippocampal_gyrus",
           44: "R_Parahippocampal_gyrus", 45: "L_Amygdala", 46: "R_Amygdala"}
SCALINGS = ("unit", "standardised")


def settings(quick):
    if quick:
        return dict(step=6, n_train=48, n_test=16, epochs=2, seed=0)
    return dict(step=3, n_train=200, n_test=80, epochs=15, seed=0)


def make_cohort(aal, n, *, step=2, random_state=0):
    """Template-based volumes in [0, 1]; y = 1 (patient) with AAL 41-46 atrophy."""
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


def _standardise(Xtr, Xte):
    mean, sd = Xtr.mean(0, keepdims=True), Xtr.std(0, keepdims=True)
    safe = np.where(sd > 0, sd, 1.0)
    return [np.where(sd > 0, (A - mean) / safe, 0.0).astype(np.float32) for A in (Xtr, Xte)]


def _ranks(values, ids):
    """Rank (1 = highest) of every region id; ties share their mean rank, NaN stays NaN."""
    import pandas as pd

    ranks = pd.Series(np.asarray(values, float)).rank(ascending=False, method="average")
    return {int(k): float(r) for k, r in zip(ids, ranks)}


def _mean(values):
    """Mean over the regions where the value is defined (NaN if none)."""
    v = np.asarray(values, float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else np.nan


def run(out, *, quick=False, verbose=True):
    """Run the study; write its tables and figures under ``out``; return the tables."""
    import pandas as pd

    from sklearn_relevance import RegionRelevance, RelevanceNetClassifier
    from sklearn_relevance.datasets import load_atlas
    from sklearn_relevance.metrics import region_relevance

    out, cfg, log = begin("mri", out, quick, verbose, settings)
    atlas_dir = data_dir() / "atlas"
    if not atlas_dir.is_dir():
        raise FileNotFoundError(
            f"The MRI study needs the MNI152 template and AAL atlas in {atlas_dir} "
            "(set $SKLEARN_RELEVANCE_DATA to the shared data folder).")
    aal = load_atlas(atlas_dir)
    n = cfg["n_train"] + cfg["n_test"]
    X, y, labels = make_cohort(aal, n, step=cfg["step"], random_state=0)
    names = dict(zip(aal.region_ids.tolist(), aal.region_names))
    ids = sorted(names)
    Xtr_u, Xte_u = X[:cfg["n_train"]], X[cfg["n_train"]:]
    ytr, yte = y[:cfg["n_train"]], y[cfg["n_train"]:]
    inputs = {"unit": (Xtr_u, Xte_u), "standardised": _standardise(Xtr_u, Xte_u)}
    prov = (f"Synthetic cohort on MNI152 + AAL ({2 * cfg['step']} mm voxels, "
            f"{X.shape[2:]}), cohort seed 0, {cfg['n_train']} training / {cfg['n_test']} "
            f"test subjects, {cfg['epochs']} epochs, training seed {cfg['seed']}; LRP "
            "alpha1-beta0 of the patient output for every subject, positive part. "
            f"Command: ``{command('mri', quick)}``.")
    rows, summary, keep = [], [], {}
    for scaling in SCALINGS:
        Xtr, Xte = inputs[scaling]
        clf = RelevanceNetClassifier(max_epochs=cfg["epochs"], lr=1e-3, batch_size=16,
                                     random_state=cfg["seed"]).fit(Xtr, ytr)
        acc = float(clf.score(Xte, yte))
        log(f"{scaling} inputs: test accuracy {acc:.3f}")
        # the seed's definition: the patient (Alzheimer's) output is explained for
        # patients and controls alike; gain = patients' mean density over controls'
        R_signed = clf.explain(Xte, explainer="lrp_alpha1_beta0", target=1)
        R = np.clip(R_signed, 0.0, None)
        pat, ctl = R[yte == 1], R[yte == 0]
        density = RegionRelevance(labels, statistic="density", labels=ids).fit_transform(R)
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = region_relevance(pat, labels, statistic="gain", reference=ctl,
                                    labels=ids).mean(0)
            absR = np.abs(R_signed)
            gain_abs = region_relevance(absR[yte == 1], labels, statistic="gain",
                                        reference=absR[yte == 0], labels=ids).mean(0)
        ctl_share = float(ctl.sum() / max(pat.sum(), 1e-30))
        rk_gain, rk_abs = _ranks(gain, ids), _ranks(gain_abs, ids)
        rk_pat = _ranks(density[yte == 1].mean(0), ids)
        for label, region in ATROPHY.items():
            j = ids.index(label)
            rows.append({"inputs": scaling, "region": region,
                         "gain, positive relevance": float(gain[j]),
                         "rank (positive)": rk_gain[label],
                         "gain, abs. relevance": float(gain_abs[j]),
                         "rank (abs.)": rk_abs[label],
                         "patients' density rank": rk_pat[label]})
        summary.append({"inputs": scaling, "test accuracy": acc,
                        "controls' positive relevance / patients'": ctl_share,
                        "mean rank of the 6: gain, positive": _mean([rk_gain[k] for k in ATROPHY]),
                        "mean rank of the 6: gain, abs. relevance":
                            _mean([rk_abs[k] for k in ATROPHY]),
                        "mean rank of the 6: patients' density":
                            _mean([rk_pat[k] for k in ATROPHY])})
        keep[scaling] = (Xte, R, density[yte == 1].mean(0))
    regions = pd.DataFrame(rows)
    summary = pd.DataFrame(summary)
    write_table(out, "mri_regions", regions, provenance=prov, digits=2,
                caption="Atrophied regions: relevance gain (patients over controls, patient "
                        "output explained for both) and ranks among the 116 AAL regions "
                        "(1 = highest; ties share their mean rank; empty: undefined)")
    write_table(out, "mri_summary", summary, provenance=prov, digits=2,
                caption="Both input scalings: where do the six atrophied regions rank?")
    s = {r["inputs"]: r for r in summary.to_dict("records")}
    lines = [f"*{prov}*", "", "Mean ranks are over the regions where the statistic is "
             "defined (a region absent at the study's resolution has none).", ""]
    for scaling in SCALINGS:
        r = s[scaling]
        pos = r["mean rank of the 6: gain, positive"]
        pos_text = (f"{pos:.1f}" if np.isfinite(pos) else
                    "undefined (the controls carry no positive relevance for the patient "
                    "output in these regions)")
        lines.append(
            f"* {scaling} inputs (test accuracy {r['test accuracy']:.3f}): mean rank of the six "
            f"atrophied regions among {len(ids)} by patients' relevance density "
            f"{r['mean rank of the 6: patients' + chr(39) + ' density']:.1f}; by gain of "
            f"positive relevance {pos_text}; by gain of absolute relevance "
            f"{r['mean rank of the 6: gain, abs. relevance']:.1f}. The controls' positive "
            f"relevance for the patient output is "
            f"{r['controls' + chr(39) + ' positive relevance / patients' + chr(39)]:.2g} "
            "times the patients'.")
    write_text(out, "mri_findings", lines)

    import matplotlib

    matplotlib.use("Agg")
    from sklearn_relevance.plotting import plot_attributions, plot_region_relevance

    for scaling in SCALINGS:
        Xte, R, patients_density = keep[scaling]
        ax = plot_region_relevance(
            patients_density, [names[i] for i in ids], top=15,
            xlabel=f"patients' positive relevance density ({scaling} inputs)")
        ax.figure.set_dpi(150)
        save_figure(ax.figure, out, f"mri_region_density_{scaling}")
        # sagittal slice with the most atrophied-region voxels
        x_hip = int(np.argmax(np.isin(labels, list(ATROPHY)).sum(axis=(1, 2))))
        pick = np.r_[np.flatnonzero(yte == 1)[:2], np.flatnonzero(yte == 0)[:2]]
        atrophy = np.isin(labels, list(ATROPHY))[None].repeat(len(pick), 0)
        fig = plot_attributions(Xte[pick], {f"LRP a1b0 ({scaling})": R[pick]}, masks=atrophy,
                                slice_index=x_hip, shared_scale=True, n_images=len(pick))
        save_figure(fig, out, f"mri_slices_{scaling}")
    log(f"tables and figures written to {out}")
    return {"regions": regions, "summary": summary}
