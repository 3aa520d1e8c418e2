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

The patient output is explained for every subject with the propagation
started from p(patient) (:func:`patient_start`): started from the patient
logit, negative for most controls, alpha1-beta0 leaves the controls no
positive relevance and the gain undefined. Five seeds (seed s draws cohort
s and trains with ``random_state=s``); mean ranks of the six atrophied
regions with 95% intervals beside their chance level.

Run ``python -m sklearn_relevance.studies mri [--quick] [--out DIR]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import (
    begin,
    bounded_interval_text,
    command,
    data_dir,
    save_figure,
    t_interval,
    write_table,
)
from ._findings import Finding, fact, rank_finding, write_findings

ATROPHY = {41: "L_Hippocampus", 42: "R_Hippocampus", 43: "L_Parahippocampal_gyrus",
           44: "R_Parahippocampal_gyrus", 45: "L_Amygdala", 46: "R_Amygdala"}
SCALINGS = ("unit", "standardised")


def settings(quick):
    if quick:
        return dict(step=6, n_train=48, n_test=16, epochs=2, seeds=(0, 1))
    return dict(step=3, n_train=100, n_test=60, epochs=8, seeds=(0, 1, 2, 3, 4))


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


def _ci(values, digits, low=0.0, high=np.inf):
    """Mean over the seeds with its 95% Student-t interval clipped to [low, high]."""
    return bounded_interval_text(values, low, high, digits)


def _versus(ranks, chance):
    """Where mean ranks stand against chance (rank 1 = most relevant), in words."""
    ranks, chance = np.asarray(ranks, float), np.asarray(chance, float)
    _, low, high = t_interval(ranks)
    above = int(np.sum(ranks < chance))
    if np.isfinite(high) and high < chance.mean():
        verdict = "ranked above chance, the whole interval"
    elif np.isfinite(low) and low > chance.mean():
        verdict = "ranked below chance, the whole interval"
    else:
        verdict = "not distinguishable from chance"
    return f"{verdict}; above chance in {above} of {len(ranks)} seeds"


def _mean(values):
    """Mean over the regions where the value is defined (NaN if none)."""
    v = np.asarray(values, float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else np.nan


def patient_start(R_logit, logit, proba):
    """Rescale LRP relevance of the patient logit to a start at p(patient).

    LRP's backward pass is linear in the relevance it starts from (the rules'
    ratios depend on the forward pass only), so the map of any per-subject
    start ``s`` is the logit's map times ``s / logit``. Starting from the
    patient probability keeps the sign of the evidence for every subject:
    with alpha1-beta0, a negative logit (most controls) gives a map with
    only negative values, a positive start gives only non-negative ones.
    A subject whose logit is 0 has no defined rescaling: NaN map.
    """
    logit = np.asarray(logit, float)
    scale = np.divide(np.asarray(proba, float), logit,
                      out=np.full(logit.shape, np.nan), where=logit != 0)
    return (R_logit * scale.reshape((-1,) + (1,) * (R_logit.ndim - 1))).astype(np.float32)


def _one_seed(aal, ids, cfg, seed, log):
    """Both scalings for one seed: the per-seed row, region rows and figure inputs."""
    from sklearn_relevance import RegionRelevance, RelevanceNetClassifier
    from sklearn_relevance.metrics import region_relevance

    n = cfg["n_train"] + cfg["n_test"]
    X, y, labels = make_cohort(aal, n, step=cfg["step"], random_state=seed)
    Xtr_u, Xte_u = X[:cfg["n_train"]], X[cfg["n_train"]:]
    ytr, yte = y[:cfg["n_train"]], y[cfg["n_train"]:]
    inputs = {"unit": (Xtr_u, Xte_u), "standardised": _standardise(Xtr_u, Xte_u)}
    per_seed, regions, keep = [], [], {}
    for scaling in SCALINGS:
        Xtr, Xte = inputs[scaling]
        clf = RelevanceNetClassifier(max_epochs=cfg["epochs"], lr=1e-3, batch_size=16,
                                     random_state=seed).fit(Xtr, ytr)
        acc = float(clf.score(Xte, yte))
        # the seed explains the patient (Alzheimer's) output for patients and
        # controls alike; the propagation starts from p(patient) (see patient_start)
        R_logit = clf.explain(Xte, explainer="lrp_alpha1_beta0", target=1)
        logit = clf.forward_output(Xte)[:, 1]
        proba = clf.predict_proba(Xte)[:, 1]
        R = np.clip(patient_start(R_logit, logit, proba), 0.0, None)
        R_pos_logit = np.clip(R_logit, 0.0, None)
        pat, ctl = R[yte == 1], R[yte == 0]
        density = RegionRelevance(labels, statistic="density", labels=ids).fit_transform(R)
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = region_relevance(pat, labels, statistic="gain", reference=ctl,
                                    labels=ids).mean(0)
        pat_density = density[yte == 1].mean(0)
        rk_gain, rk_pat = _ranks(gain, ids), _ranks(pat_density, ids)
        m_gain, m_pat = int(np.isfinite(gain).sum()), int(np.isfinite(pat_density).sum())
        per_seed.append({
            "seed": seed, "inputs": scaling, "test accuracy": acc,
            "density rank": _mean([rk_pat[k] for k in ATROPHY]),
            "density regions": m_pat, "density chance": (m_pat + 1) / 2,
            "gain rank": _mean([rk_gain[k] for k in ATROPHY]),
            "gain regions": m_gain, "gain chance": (m_gain + 1) / 2,
            "controls / patients": float(np.nansum(ctl) / max(np.nansum(pat), 1e-30)),
            "controls / patients, logit start": float(
                R_pos_logit[yte == 0].sum() / max(R_pos_logit[yte == 1].sum(), 1e-30)),
            "controls' mean p(patient)": float(proba[yte == 0].mean()),
            "patients' mean p(patient)": float(proba[yte == 1].mean())})
        for label, region in ATROPHY.items():
            j = ids.index(label)
            regions.append({"seed": seed, "inputs": scaling, "region": region,
                            "gain": float(gain[j]), "gain rank": rk_gain[label],
                            "density rank": rk_pat[label]})
        log(f"seed {seed}, {scaling} inputs: test accuracy {acc:.3f}, mean rank of the six "
            f"by density {per_seed[-1]['density rank']:.1f} of {m_pat}, by gain "
            f"{per_seed[-1]['gain rank']:.1f} of {m_gain}")
        keep[scaling] = (Xte, yte, R, pat_density, labels)
    return per_seed, regions, keep


def run(out, *, quick=False, verbose=True):
    """Run the study; write its tables and figures under ``out``; return the tables."""
    import pandas as pd

    from sklearn_relevance.datasets import load_atlas

    import time

    started = time.perf_counter()
    out, cfg, log = begin("mri", out, quick, verbose, settings)
    atlas_dir = data_dir() / "atlas"
    if not atlas_dir.is_dir():
        raise FileNotFoundError(
            f"The MRI study needs the MNI152 template and AAL atlas in {atlas_dir} "
            "(set $SKLEARN_RELEVANCE_DATA to the shared data folder).")
    aal = load_atlas(atlas_dir)
    names = dict(zip(aal.region_ids.tolist(), aal.region_names))
    ids = sorted(names)
    per_seed, regions, first = [], [], None
    densities = {scaling: [] for scaling in SCALINGS}
    for seed in cfg["seeds"]:
        rows, region_rows, keep = _one_seed(aal, ids, cfg, seed, log)
        for scaling in SCALINGS:
            densities[scaling].append(keep[scaling][3])
        per_seed += rows
        regions += region_rows
        first = keep if first is None else first
        # every finished seed is kept (a re-render needs no retraining)
        write_table(out, "mri_per_seed", pd.DataFrame(per_seed), digits=4,
                    provenance=_provenance(cfg, quick, aal),
                    caption="Every seed and scaling")
        write_table(out, "mri_region_seeds", pd.DataFrame(regions), digits=4,
                    provenance=_provenance(cfg, quick, aal),
                    caption="Every seed, scaling and atrophied region")
    tables = _tables(out, pd.DataFrame(per_seed), pd.DataFrame(regions), cfg, quick, aal,
                     minutes=(time.perf_counter() - started) / 60)
    tables["figures"] = _figures(out, first, names, ids, densities)
    log(f"tables and figures written to {out}")
    return tables


def refresh(out, *, quick=False):
    """Re-render the summary, region table and findings of ``out`` from its
    per-seed CSVs (``mri_per_seed``, ``mri_region_seeds``): no training, no
    figures (those need the maps)."""
    import pandas as pd

    from sklearn_relevance.datasets import load_atlas

    import re

    out = Path(out)
    aal = load_atlas(data_dir() / "atlas")
    per_seed = pd.read_csv(out / "mri_per_seed.csv")
    regions = pd.read_csv(out / "mri_region_seeds.csv")
    old = (out / "mri_findings.inc").read_text(encoding="utf-8") \
        if (out / "mri_findings.inc").is_file() else ""
    took = re.search(r"took (\d+) minutes of wall time", old)  # the run's time, kept
    return _tables(out, per_seed, regions, settings(quick), quick, aal,
                   minutes=float(took.group(1)) if took else None)


def _provenance(cfg, quick, aal):
    shape = tuple(len(range(0, s, cfg["step"])) for s in aal.labels.shape)
    return (f"Synthetic cohort on MNI152 + AAL ({2 * cfg['step']} mm voxels, {shape}), "
            f"{cfg['n_train']} training / {cfg['n_test']} test subjects, {cfg['epochs']} "
            f"epochs; seeds {list(cfg['seeds'])} (seed s draws cohort s and trains with "
            "random_state s); LRP alpha1-beta0 of the patient output for every subject, "
            "started from p(patient). Intervals: 95% Student-t over the seeds. Command: "
            f"``{command('mri', quick)}``.")


def _tables(out, per_seed, regions, cfg, quick, aal, minutes=None):
    """Write the summary, region table and findings from the per-seed results."""
    import pandas as pd

    prov = _provenance(cfg, quick, aal)
    rank_range = (1.0, float(len(aal.region_ids)))  # a mean rank lies in [1, regions]
    summary = []
    for scaling in SCALINGS:
        s = per_seed[per_seed["inputs"] == scaling]
        summary.append({
            "inputs": scaling,
            "test accuracy": _ci(s["test accuracy"], 3, high=1.0),
            "mean rank of the 6: patients' density": _ci(s["density rank"], 1, *rank_range),
            "chance (density)": _ci(s["density chance"], 1, *rank_range),
            "mean rank of the 6: gain": _ci(s["gain rank"], 1, *rank_range),
            "chance (gain)": _ci(s["gain chance"], 1, *rank_range),
            "controls' relevance / patients'": _ci(s["controls / patients"], 3),
            "same, logit start": _ci(s["controls / patients, logit start"], 3)})
    summary = pd.DataFrame(summary)
    write_table(out, "mri_summary", summary, provenance=prov,
                caption="Both input scalings: mean rank (1 = highest) of the six atrophied "
                        "regions among the AAL regions where the statistic is defined, "
                        "beside the chance level (expected mean rank of six random regions, "
                        "(m + 1) / 2 for m defined regions)")
    rows = []
    for (scaling, region), s in regions.groupby(["inputs", "region"], sort=False):
        rows.append({"inputs": scaling, "region": region,
                     "gain": _ci(s["gain"], 2),
                     "gain rank": _ci(s["gain rank"], 1, *rank_range),
                     "patients' density rank": _ci(s["density rank"], 1, *rank_range),
                     "seeds with a gain": int(np.isfinite(s["gain"]).sum())})
    regions_table = pd.DataFrame(rows)
    write_table(out, "mri_regions", regions_table, provenance=prov,
                caption="Atrophied regions: relevance gain (patients' mean density over "
                        "controls', patient output explained for both, started from "
                        "p(patient)) and ranks among the 116 AAL regions (1 = highest; ties "
                        "share their mean rank; empty: undefined), mean over seeds")
    lines = [f"*{prov}*", "", "Mean ranks are over the regions where the statistic is "
             "defined (a region absent at the study's resolution has none); the chance "
             "level is the expected mean rank of six regions drawn at random among them."
             + ("" if minutes is None else
                f" The run (all seeds, both scalings) took {minutes:.0f} minutes of wall "
                "time."), ""]
    findings = []
    for scaling in SCALINGS:
        s = per_seed[per_seed["inputs"] == scaling]
        n = len(s)
        findings.append(fact(f"{scaling}: accuracy", f"{scaling} inputs: test accuracy "
                             f"{_ci(s['test accuracy'], 3, high=1.0)} over {n} seeds."))
        for stat, what in (("density", "patients' relevance density"), ("gain", "gain")):
            m, lo, hi = t_interval(s[f"{stat} rank"])
            lo, hi = (max(lo, rank_range[0]), min(hi, rank_range[1])) if np.isfinite(lo) \
                else (lo, hi)
            chance = float(s[f"{stat} chance"].mean())
            f = rank_finding(
                f"{scaling}: {stat} rank", f"{scaling} inputs: mean rank of the six atrophied "
                f"regions by {what}", m, lo, hi, chance, over=f"{n} seeds",
                above="ranked above chance (the seed's picture: the disease's regions among "
                      "the more relevant)",
                below="ranked below chance (the disease's regions among the less relevant)",
                not_shown="not distinguishable from chance")
            k = int(np.sum(s[f"{stat} rank"] < s[f"{stat} chance"]))
            findings.append(Finding(f.key, f.verdict, f"{f.text} Above chance in {k} of {n} "
                                    "seeds.", f.rule))
        findings.append(fact(f"{scaling}: controls", f"{scaling} inputs: the controls carry "
                             f"{_ci(s['controls / patients'], 3)} times the patients' relevance "
                             "for the patient output started from p(patient) "
                             f"({_ci(s['controls / patients, logit start'], 3)} times with the "
                             "propagation started from the patient logit, negative for most "
                             "controls)."))
    write_findings(out, "mri_findings", findings, header=lines)
    return {"summary": summary, "regions": regions_table, "per_seed": per_seed}


def _figures(out, keep, names, ids, densities):
    """Region densities over the seeds and sagittal slices of the first seed."""
    from ._figures import interval_panels, map_grid

    figures = {}
    for scaling in SCALINGS:
        Xte, yte, R, _first_density, labels = keep[scaling]
        d = np.asarray(densities[scaling], float)  # (seeds, regions)
        top = list(np.argsort(-np.nan_to_num(np.nanmean(d, 0), nan=-np.inf))[:15])
        top += [ids.index(k) for k in ATROPHY if ids.index(k) not in top]
        stats = np.array([t_interval(d[:, j]) for j in top])
        shown = [names[ids[j]] + (" *" if ids[j] in ATROPHY else "") for j in top]
        figures[f"mri_region_density_{scaling}"] = interval_panels(
            [{"values": d[:, top], "mean": stats[:, 0], "low": stats[:, 1],
              "high": stats[:, 2], "chance": float(np.nanmean(d)), "range": (0.0, np.inf),
              "chance_label": "chance (mean density over all regions)",
              "xlabel": f"patients' relevance density ({scaling} inputs; LRP relevance "
                        "per voxel, a.u.)",
              "ylabel": "AAL region (15 highest, then the atrophied; * atrophied)"}],
            names=shown, replicates="one seed", figsize=(5.5, 6.2))
        x_hip = int(np.argmax(np.isin(labels, list(ATROPHY)).sum(axis=(1, 2))))
        pick = np.r_[np.flatnonzero(yte == 1)[:2], np.flatnonzero(yte == 0)[:2]]
        atrophy = np.isin(labels, list(ATROPHY))[None, None].repeat(len(pick), 0)
        figures[f"mri_slices_{scaling}"] = map_grid(
            Xte[pick], {f"LRP a1b0, {scaling}": R[pick]}, masks=atrophy,
            slice_index=x_hip, mask_label="atrophied regions (AAL 41-46)",
            col_titles=["patient" if yte[i] == 1 else "control" for i in pick],
            image_label=f"input ({scaling})", relevance_unit="a.u., from p(patient)")
    for name, fig in figures.items():
        save_figure(fig, out, name)
    return figures
