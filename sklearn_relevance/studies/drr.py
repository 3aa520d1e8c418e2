"""DRR study: where does deep relevance regularisation help on an unseen lab, and why?

The IMS seed (deep relevance regularisation, DRR) trains a network on
spectra from several labs with a penalty on its relevance and tests on a lab
it never saw. Here every lab is held out in turn, over **data seeds x
network seeds**, and DRR is compared with what a user would try instead
(:mod:`._drr_methods`): L1 or L2 weight penalties, dropout, input noise,
peak picking, ANOVA feature selection, and an oracle that removes the
simulator's lab-specific bins (the ceiling, not available to a user).

Settings of the simulators (:mod:`sklearn_relevance.ims.simulate`):

* ``MALDI, unlinked preparation peaks``:
  :func:`~sklearn_relevance.ims.make_maldi_multilab_spectra` with its
  defaults (published inter-lab variation; matrix and preparation peaks at
  the scale of the class peaks, unrelated to the class);
* ``MALDI, class-linked preparation peaks``: the same with
  ``preparation_effect=0.5`` (tumour types prepared apart: a batch effect
  that predicts the class inside each lab);
* ``large class-linked confounders``:
  :func:`~sklearn_relevance.ims.make_multilab_spectra` with its defaults
  (confounders 12 times the class peaks, absent from the unseen lab: the
  setting that favours a penalty by construction).

Every cell (data seed, unseen lab, network seed) trains every method on the
other labs; the paired difference (method minus the plain network, same
cell) is averaged over the labs and network seeds of a data seed, and the
Student-t 95% interval is taken over the data seeds (the independent
replicates). Chance: the majority-class share of the unseen lab. Why: the
share of the network's |relevance| on the class peaks' bins and on the
lab-specific bins.

Run ``python -m sklearn_relevance.studies drr [--quick] [--out DIR]``.
"""

from __future__ import annotations

import numpy as np

from ._common import begin, command, interval_text, save_figure, t_interval, write_table
from ._drr_methods import METHODS, make_method, selected
from ._figures import interval_panels
from ._findings import fact, interval_finding, write_findings

SETTINGS = {
    "MALDI, unlinked preparation peaks": ("maldi", {}),
    "MALDI, class-linked preparation peaks": ("maldi", {"preparation_effect": 0.5}),
    "large class-linked confounders": ("legacy", {}),
}
#: Column of the chance level.
CHANCE = "chance (majority class)"


def settings(quick):
    """Sizes, seeds and the methods' fixed hyperparameters."""
    common = dict(drr_penalty=0.1, weight_l1=1e-4, weight_l2=1e-2, dropout=0.3,
                  input_noise=0.5, k_features=30)
    if quick:
        return dict(common, n_samples=120, n_labs=3, n_mz=300, n_bins=60, epochs=2,
                    data_seeds=(0, 1), net_seeds=(0,), methods=tuple(METHODS),
                    k_features=15)
    return dict(common, n_samples=400, n_labs=4, n_mz=1000, n_bins=200, epochs=15,
                data_seeds=(101, 102, 103, 104, 105), net_seeds=(0, 1, 2),
                methods=tuple(METHODS))


def _data(setting, data_seed, cfg):
    from sklearn_relevance.ims import make_maldi_multilab_spectra, make_multilab_spectra

    kind, options = SETTINGS[setting]
    make = make_maldi_multilab_spectra if kind == "maldi" else make_multilab_spectra
    return make(cfg["n_samples"], cfg["n_labs"], n_mz=cfg["n_mz"], return_info=True,
                random_state=data_seed, **options)


def majority_share(y, labs, lab):
    """Share of the most frequent class among the labels of ``lab`` (chance accuracy)."""
    sub = np.asarray(y)[np.asarray(labs) == lab]
    if sub.size == 0:
        raise ValueError(f"The lab {lab!r} holds no spectra.")
    return float(np.unique(sub, return_counts=True)[1].max() / sub.size)


def _bins(mask, mz, mz_out):
    """Resampled bins that hold a point of ``mask`` on the input axis ``mz``."""
    edges = np.r_[mz_out[0] - (mz_out[1] - mz_out[0]) / 2,
                  (mz_out[1:] + mz_out[:-1]) / 2, mz_out[-1] + (mz_out[-1] - mz_out[-2]) / 2]
    k = np.clip(np.searchsorted(edges, mz[np.asarray(mask, bool)]) - 1, 0, mz_out.size - 1)
    out = np.zeros(mz_out.size, bool)
    out[k] = True
    return out


def run_cell(setting, data_seed, test_lab, net_seed, cfg, data=None):
    """Every method on one cell; one row per method."""
    import warnings

    from sklearn_relevance.ims import MzResampler
    from sklearn_relevance.metrics import sparseness

    X, y, labs, info = data if data is not None else _data(setting, data_seed, cfg)
    train, test = labs != test_lab, labs == test_lab
    mz_out = MzResampler(mz=info["mz"], n_bins=cfg["n_bins"]).fit(X[:2]).mz_out_
    cls_bins = _bins(info["class_mask"], info["mz"], mz_out)
    conf_bins = _bins(info["confounder_mask"], info["mz"], mz_out) & ~cls_bins
    rows = []
    for method in cfg["methods"]:
        model = make_method(method, info["mz"], cfg, net_seed, confounder_bins=conf_bins)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[train], y[train])
            acc = float(model.score(X[test], y[test]))
            rel = np.abs(model[-1].explain(model[:-1].transform(X[test])))
            sp = float(np.nanmean(sparseness(rel)))
        full = np.zeros((rel.shape[0], mz_out.size))
        idx = selected(model)
        full[:, slice(None) if idx is None else idx] = rel
        total = full.sum(1)
        ok = total > 0
        share = (lambda b: float(np.mean(full[ok][:, b].sum(1) / total[ok])) if ok.any()
                 else np.nan)
        rows.append({"setting": setting, "data seed": data_seed, "unseen lab": test_lab,
                     "network seed": net_seed, "method": method, "accuracy": acc,
                     CHANCE: majority_share(y, labs, test_lab), "sparseness": sp,
                     "relevance on class peaks": share(cls_bins),
                     "relevance on lab-specific peaks": share(conf_bins)})
    return rows


def run(out, *, quick=False, verbose=True):
    """Run the study; write its tables, findings and figures under ``out``."""
    import pandas as pd

    out, cfg, log = begin("drr", out, quick, verbose, settings)
    rows = []
    for setting in SETTINGS:
        for ds in cfg["data_seeds"]:
            data = _data(setting, ds, cfg)
            for lab in sorted(set(data[2].tolist())):
                for ns in cfg["net_seeds"]:
                    rows += run_cell(setting, ds, lab, ns, cfg, data)
                    acc = {r["method"]: r["accuracy"] for r in rows[-len(cfg["methods"]):]}
                    log(f"{setting}, data seed {ds}, unseen {lab}, network seed {ns}: "
                        + ", ".join(f"{m} {a:.2f}" for m, a in acc.items()))
    cells = pd.DataFrame(rows)
    hyper = ", ".join(f"{k} {cfg[k]:g}" for k in ("drr_penalty", "weight_l1", "weight_l2",
                                                  "dropout", "input_noise", "k_features"))
    prov = (f"{cfg['n_samples']} simulated spectra from {cfg['n_labs']} labs (every lab held "
            f"out in turn), {cfg['n_mz']} m/z values resampled to {cfg['n_bins']} bins, MLP, "
            f"{cfg['epochs']} epochs; data seeds {list(cfg['data_seeds'])} x network seeds "
            f"{list(cfg['net_seeds'])}; fixed hyperparameters ({hyper}). Intervals: "
            f"Student-t 95% over the data seeds of the per-data-seed mean (over unseen labs "
            f"and network seeds). Command: ``{command('drr', quick)}``.")
    write_table(out, "drr_cells", cells, provenance=prov,
                caption="Every cell (data seed, unseen lab, network seed) and method")
    summary, diffs = _summary(cells, cfg)
    write_table(out, "drr_summary", summary.drop(columns=["_mean", "_low", "_high"]),
                provenance=prov, caption="Unseen-lab accuracy per method: mean, paired "
                "difference against the plain network [95% interval], and where the "
                "relevance lies")
    findings = drr_findings(cells, summary, diffs, cfg)
    write_findings(out, "drr_findings", findings, header=[f"*{prov}*", ""])
    figures = {"drr_differences": differences_figure(summary, diffs, cfg),
               "drr_accuracy": accuracy_figure(cells, cfg)}
    for name, fig in figures.items():
        save_figure(fig, out, name)
    log(f"tables and figures written to {out}")
    return {"cells": cells, "summary": summary, "findings": findings, "figures": figures}


def _per_seed(cells, column, method, setting, base="none"):
    """Per data seed: mean over labs and network seeds of (method - base) in ``column``."""
    sub = cells[cells.setting == setting]
    a = sub[sub.method == method].set_index(["data seed", "unseen lab", "network seed"])[column]
    b = sub[sub.method == base].set_index(["data seed", "unseen lab", "network seed"])[column]
    d = (a - b).dropna()
    return d.groupby(level=0).mean().to_numpy(), d.to_numpy()


def _summary(cells, cfg):
    import pandas as pd

    rows, diffs = [], {}
    for setting in SETTINGS:
        sub = cells[cells.setting == setting]
        for method in cfg["methods"]:
            s = sub[sub.method == method]
            per_seed, per_cell = _per_seed(cells, "accuracy", method, setting)
            m, lo, hi = t_interval(per_seed) if method != "none" else (np.nan,) * 3
            diffs[(setting, method)] = per_seed
            rows.append({
                "setting": setting, "method": method, "accuracy": float(s.accuracy.mean()),
                CHANCE: float(s[CHANCE].mean()),
                "difference vs none [95% CI]": "" if method == "none"
                else interval_text(m, lo, hi, 3),
                "better / equal / worse cells": "" if method == "none" else
                f"{(per_cell > 0).sum()} / {(per_cell == 0).sum()} / {(per_cell < 0).sum()}",
                "relevance on class peaks": float(s["relevance on class peaks"].mean()),
                "relevance on lab-specific peaks":
                    float(s["relevance on lab-specific peaks"].mean()),
                "_mean": m, "_low": lo, "_high": hi})
    return pd.DataFrame(rows), diffs


def drr_findings(cells, summary, diffs, cfg):
    """Where DRR helps, where the alternatives do, and why: each by its rule."""
    over = f"{len(cfg['data_seeds'])} data seeds"
    out = []
    s = summary.set_index(["setting", "method"])
    for setting in SETTINGS:
        chance = s.loc[(setting, "none"), CHANCE]
        out.append(fact(f"{setting}: plain", f"{setting}: the plain network scores "
                        f"{s.loc[(setting, 'none'), 'accuracy']:.3f} on the unseen lab "
                        f"(chance {chance:.3f}), with "
                        f"{s.loc[(setting, 'none'), 'relevance on lab-specific peaks']:.2f} of "
                        "its |relevance| on the lab-specific peaks and "
                        f"{s.loc[(setting, 'none'), 'relevance on class peaks']:.2f} on the "
                        "class peaks."))
        for method in cfg["methods"]:
            if method == "none":
                continue
            r = s.loc[(setting, method)]
            out.append(interval_finding(
                f"{setting}: {method}", f"{setting}, {method} minus the plain network, "
                "unseen-lab accuracy", r["_mean"], r["_low"], r["_high"], digits=3, over=over,
                above="it helps", below="it hurts", not_shown="no effect shown"))
        if "DRR" in cfg["methods"]:
            per_seed, _ = _per_seed(cells, "relevance on lab-specific peaks", "DRR", setting)
            out.append(interval_finding(
                f"{setting}: why DRR (relevance)", f"{setting}, why: DRR minus the plain "
                "network, share of |relevance| on the lab-specific peaks", *t_interval(per_seed),
                over=over, above="DRR moves relevance onto them",
                below="DRR moves relevance off them",
                not_shown="DRR does not shift relevance off them measurably"))
        if "oracle" in cfg["methods"]:
            r = s.loc[(setting, "oracle")]
            out.append(interval_finding(
                f"{setting}: why DRR (ceiling)", f"{setting}, why: removing the lab-specific "
                "bins (oracle) minus the plain network", r["_mean"], r["_low"], r["_high"],
                digits=3, over=over,
                above="the lab-specific peaks cost the plain network accuracy: there is "
                      "something for a relevance penalty to remove",
                below="the lab-specific bins carry useful signal",
                not_shown="the lab-specific peaks are not shown to cost accuracy: little "
                          "for a relevance penalty to remove"))
        if {"DRR", "oracle"} <= set(cfg["methods"]):
            d = diffs[(setting, "DRR")] - diffs[(setting, "oracle")]
            out.append(interval_finding(
                f"{setting}: DRR vs oracle", f"{setting}, DRR minus the oracle",
                *t_interval(d), digits=3, over=over, above="DRR beats the oracle",
                below="DRR falls short of the oracle",
                not_shown="DRR not shown to differ from the oracle"))
    return out


def differences_figure(summary, diffs, cfg):
    """Paired accuracy difference against the plain network, per setting and method."""
    methods = [m for m in cfg["methods"] if m != "none"]
    panels = []
    for setting in SETTINGS:
        s = summary[summary.setting == setting].set_index("method").loc[methods]
        values = np.array([diffs[(setting, m)] for m in methods]).T
        panels.append({"values": values, "mean": s["_mean"].to_numpy(float),
                       "low": s["_low"].to_numpy(float), "high": s["_high"].to_numpy(float),
                       "xlabel": f"{setting}:\nunseen-lab accuracy minus plain network's "
                                 "(fraction)",
                       "ylabel": "method", "chance": 0.0, "range": (-1.0, 1.0),
                       "chance_label": "no difference from the plain network"})
    return interval_panels(panels, names=methods, replicates="one data seed (mean over "
                           "unseen labs and network seeds)")


def accuracy_figure(cells, cfg):
    """Unseen-lab accuracy per method and setting, beside the chance level."""
    methods = list(cfg["methods"])
    panels = []
    for setting in SETTINGS:
        sub = cells[cells.setting == setting]
        per = sub.groupby(["data seed", "method"])["accuracy"].mean().unstack()[methods]
        stats = np.array([t_interval(per[m]) for m in methods])
        panels.append({"values": per.to_numpy(), "mean": stats[:, 0], "low": stats[:, 1],
                       "high": stats[:, 2], "ylabel": "method", "range": (0.0, 1.0),
                       "xlabel": f"{setting}:\nunseen-lab accuracy (fraction)",
                       "chance": float(sub[CHANCE].mean()),
                       "chance_label": "chance (majority class of the unseen lab)"})
    return interval_panels(panels, names=methods, replicates="one data seed (mean over "
                           "unseen labs and network seeds)")
