"""DRR study: does deep relevance regularisation help on an unseen lab, and when?

The IMS seed (deep relevance regularisation) trains a network on spectra
from several labs with a penalty on its relevance, chooses the penalty by
leave-one-lab-out, and tests on a lab it never saw. The demo behind
``python -m sklearn_relevance demo`` does this once; this study repeats the
demo's comparison (its own code, ``sklearn_relevance.studies.demo``) over
**data seeds x network seeds**, as paired differences (accuracy on the
unseen lab of the chosen penalty minus penalty 0, same data, same network
seed), in three simulator settings and at two sizes
(:func:`~sklearn_relevance.ims.make_multilab_spectra`):

* ``default``: confounders 12 times the class peaks, linked to the class in
  their own lab, absent elsewhere (the setting that favours a penalty by
  construction);
* ``small``: confounders as small as the class peaks (``confounder_height=0.25``);
* ``class-independent``: confounders not linked to the class
  (``confounder_effect=0``);
* ``default, demo size``: the default simulator at the demo's size (500
  spectra, 30 epochs, penalties 0, 0.01, 0.03 and 0.1); the other settings
  run smaller for compute (see the table's provenance).

(``confounder_scope="all"``, every lab's confounder in every spectrum, is a
further simulator option, not run here for compute.)

Intervals: the paired differences are averaged over the network seeds of a
data seed, and the Student-t 95% interval is taken over the data seeds (the
independent replicates). Chance: the majority-class share of the unseen
lab's labels, per cell, averaged as the accuracies are
(:func:`write_chance_levels` adds it to written tables without training).

Run ``python -m sklearn_relevance.studies drr [--quick] [--out DIR]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import (
    begin,
    command,
    interval_text,
    save_figure,
    read_table,
    t_interval,
    write_table,
    write_text,
)

SETTINGS = {
    "default": {},
    "small": {"confounder_height": 0.25},
    "class-independent": {"confounder_effect": 0.0},
    "default, demo size": {},
}
#: Settings that run at the size of ``python -m sklearn_relevance demo`` (full mode).
DEMO_SIZE = {"default, demo size": dict(n_samples=500, n_bins=250, epochs=30,
                                        penalties=(0.0, 0.01, 0.03, 0.1))}


def settings(quick):
    if quick:
        return dict(n_samples=120, n_labs=3, n_mz=300, n_bins=60, epochs=3,
                    penalties=(0.0, 0.03), data_seeds=(0, 1), net_seeds=(0,))
    # sized for a shared 2-core CPU: the demo uses 500 spectra, 30 epochs, four penalties
    return dict(n_samples=300, n_labs=5, n_mz=1000, n_bins=200, epochs=15,
                penalties=(0.0, 0.03, 0.1), data_seeds=(0, 1, 2, 3, 4),
                net_seeds=(0, 1, 2))


#: Column of the chance level (cells and summary).
CHANCE = "chance (majority class)"


def _data(setting, data_seed, cfg):
    from sklearn_relevance.ims import make_multilab_spectra

    return make_multilab_spectra(cfg["n_samples"], cfg["n_labs"], n_mz=cfg["n_mz"],
                                 return_info=True, random_state=data_seed,
                                 **SETTINGS[setting])


def majority_share(y, labs, lab):
    """Share of the most frequent class among the labels of ``lab`` (chance accuracy)."""
    sub = np.asarray(y)[np.asarray(labs) == lab]
    if sub.size == 0:
        raise ValueError(f"The lab {lab!r} holds no spectra.")
    return float(np.unique(sub, return_counts=True)[1].max() / sub.size)


def _size(cfg, setting, quick):
    return cfg if quick else {**cfg, **DEMO_SIZE.get(setting, {})}


def _summary_chance(cells):
    """Chance per setting, averaged over its cells as the accuracies are."""
    return {s: float(cells.loc[cells.setting == s, CHANCE].astype(float).mean())
            for s in SETTINGS if (cells.setting == s).any()}


def _chance_line(chance):
    return ("* Chance accuracy on the unseen lab (majority-class share, averaged as the "
            "accuracies): " + "; ".join(f"{s} {v:.3f}" for s, v in chance.items()) + ".")


def write_chance_levels(out, *, quick=False):
    """Add the chance column to ``drr_cells`` and ``drr_summary`` and its line to
    ``drr_findings`` in ``out``, regenerating only the data (no training).

    The tables are rewritten from their CSVs, so existing numbers are kept;
    running it again replaces the column and the line.
    """
    import pandas as pd

    cfg, out = settings(quick), Path(out)
    cells, cap, prov = read_table(out, "drr_cells")
    data, chance = {}, []
    for setting, seed, lab in zip(cells["setting"], cells["data seed"], cells["unseen lab"]):
        key = (setting, int(seed))
        if key not in data:
            _X, y, labs, _info = _data(setting, key[1], _size(cfg, setting, quick))
            data[key] = (y, labs)
        chance.append(majority_share(*data[key], lab))
    cells = cells.drop(columns=[CHANCE], errors="ignore")
    cells.insert(cells.columns.get_loc("accuracy, chosen") + 1, CHANCE,
                 [f"{v:.3f}" for v in chance])
    write_table(out, "drr_cells", cells, caption=cap, provenance=prov)
    per = _summary_chance(pd.DataFrame({"setting": cells.setting, CHANCE: chance}))
    summary, cap, prov = read_table(out, "drr_summary")
    summary = summary.drop(columns=[CHANCE], errors="ignore")
    summary.insert(summary.columns.get_loc("accuracy, chosen") + 1, CHANCE,
                   [f"{per[s]:.3f}" for s in summary.setting])
    write_table(out, "drr_summary", summary, caption=cap, provenance=prov)
    lines = [ln for ln in (out / "drr_findings.inc").read_text(encoding="utf-8").splitlines()
             if not ln.startswith("* Chance accuracy")]
    write_text(out, "drr_findings", lines + [_chance_line(per)])
    return per


def run_cell(setting, data_seed, net_seed, cfg):
    """One paired comparison: penalty 0 and the leave-one-lab-out choice, same data."""
    from .demo import DemoConfig, ProgressLog, fit_and_compare

    X, y, labs, info = _data(setting, data_seed, cfg)
    demo = DemoConfig(output=Path("."), penalties=cfg["penalties"], n_samples=cfg["n_samples"],
                      n_labs=cfg["n_labs"], n_bins=cfg["n_bins"], max_epochs=cfg["epochs"],
                      seed=net_seed, verbose=False)
    rows, _models, chosen, test_lab = fit_and_compare(X, y, labs, info["mz"], demo,
                                                      ProgressLog(False))
    by = {r["penalty"]: r for r in rows}
    base, best = by[0.0], by[chosen]
    return {"setting": setting, "data seed": data_seed, "network seed": net_seed,
            "unseen lab": test_lab, "chosen penalty": chosen,
            "accuracy, penalty 0": base["accuracy"], "accuracy, chosen": best["accuracy"],
            CHANCE: majority_share(y, labs, test_lab),
            "difference": best["accuracy"] - base["accuracy"],
            "sparseness, penalty 0": base["sparseness"], "sparseness, chosen": best["sparseness"]}


def run(out, *, quick=False, verbose=True):
    """Run the study; write its tables and figures under ``out``; return the tables."""
    import pandas as pd

    out, cfg, log = begin("drr", out, quick, verbose, settings)
    cells = []
    for setting in SETTINGS:
        size = _size(cfg, setting, quick)
        for ds in cfg["data_seeds"]:
            for ns in cfg["net_seeds"]:
                cells.append(run_cell(setting, ds, ns, size))
                c = cells[-1]
                log(f"{setting:>17} data seed {ds} network seed {ns}: penalty 0 "
                    f"{c['accuracy, penalty 0']:.3f} -> chosen {c['chosen penalty']:g} "
                    f"{c['accuracy, chosen']:.3f}")
    cells = pd.DataFrame(cells)
    demo = "" if quick else (
        " (\"default, demo size\": 500 spectra, 250 bins, 30 epochs, penalties "
        "[0.0, 0.01, 0.03, 0.1])")
    prov = (f"{cfg['n_samples']} simulated spectra from {cfg['n_labs']} labs, {cfg['n_mz']} m/z "
            f"values resampled to {cfg['n_bins']} bins, MLP, {cfg['epochs']} epochs, penalties "
            f"{list(cfg['penalties'])}{demo} chosen by leave-one-lab-out; data seeds "
            f"{list(cfg['data_seeds'])} x network seeds {list(cfg['net_seeds'])}. "
            f"Command: ``{command('drr', quick)}``.")
    write_table(out, "drr_cells", cells, provenance=prov,
                caption="Every paired comparison (one row per data seed and network seed)")
    summary, chance = [], _summary_chance(cells)
    for setting in SETTINGS:
        sub = cells[cells.setting == setting]
        per_data = sub.groupby("data seed")["difference"].mean().to_numpy()
        mean, lo, hi = t_interval(per_data)
        d = sub["difference"].to_numpy()
        summary.append({
            "setting": setting,
            "accuracy, penalty 0": float(sub["accuracy, penalty 0"].mean()),
            "accuracy, chosen": float(sub["accuracy, chosen"].mean()),
            CHANCE: chance[setting],
            "paired difference [95% CI]": interval_text(mean, lo, hi, 3),
            "better / equal / worse": f"{(d > 0).sum()} / {(d == 0).sum()} / {(d < 0).sum()}",
            "penalty > 0 chosen": f"{int((sub['chosen penalty'] > 0).sum())} of {len(sub)}",
            "ci_mean": mean, "ci_low": lo, "ci_high": hi,
        })
    summary = pd.DataFrame(summary)
    shown = summary.drop(columns=["ci_mean", "ci_low", "ci_high"])
    write_table(out, "drr_summary", shown, provenance=prov + " Interval: Student-t over the "
                "data seeds of the per-data-seed mean difference.",
                caption="Accuracy on the unseen lab: chosen penalty minus penalty 0 (paired)")
    lines = [f"*{prov}*", ""]
    for r in summary.itertuples(index=False):
        if r.ci_low > 0:
            verdict = "the penalty helps (interval above 0)"
        elif r.ci_high < 0:
            verdict = "the penalty hurts (interval below 0)"
        else:
            verdict = "no gain is shown (interval contains 0)"
        lines.append(f"* {r.setting}: paired difference "
                     f"{interval_text(r.ci_mean, r.ci_low, r.ci_high, 3)}; {verdict}.")
    lines.append(_chance_line(chance))
    write_text(out, "drr_findings", lines)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 2.8), dpi=150, constrained_layout=True)
    ypos = np.arange(len(summary))
    for k, setting in enumerate(SETTINGS):
        d = cells[cells.setting == setting]["difference"].to_numpy()
        jitter = np.linspace(-0.15, 0.15, len(d)) if len(d) > 1 else np.zeros(1)
        ax.scatter(d, k + jitter, s=8, color="0.6", zorder=2)
    err = np.vstack([summary.ci_mean - summary.ci_low, summary.ci_high - summary.ci_mean])
    ax.errorbar(summary.ci_mean, ypos, xerr=np.nan_to_num(err), fmt="o", color="C3",
                capsize=3, zorder=3)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_yticks(ypos, list(SETTINGS), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy on the unseen lab: chosen penalty - penalty 0", fontsize=8)
    save_figure(fig, out, "drr_differences")
    log(f"tables and figures written to {out}")
    return {"cells": cells, "summary": shown}
