"""Multimodal study: modality importance against ground truth, beside chance.

The multimodal seed scores modality-importance estimators on simulated
cases whose ground-truth importances are known (rank-biased overlap of the
modality rankings, RMSE of the importances). With three modalities the
extrapolated RBO (p = 0.9) is compressed: a *random* importance vector
scores about 0.90 and a perfect one 1.0, so an RBO means something only
beside its chance levels. This study runs
:func:`~sklearn_relevance.multimodal.evaluate_importance` for several seeds
and reports every metric beside the random (uniform on the simplex) and
uniform (1/3 each) estimators; ties in the ground truth are averaged over
their orders (no estimate can win them), and test images are disjoint
from training images.

Run ``python -m sklearn_relevance.studies multimodal [--quick] [--out DIR]``.
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
    write_table,
)
from ._findings import fact, interval_finding, write_findings

METHODS = ("gradient", "permutation", "integrated_gradients")
#: The RMSE the multimodal seed reports (about 0.13), discussed against chance.
SEED_RMSE = 0.13
#: Range of each metric: a Student-t interval is clipped to it.
RANGES = {"rbo": (0.0, 1.0), "rmse": (0.0, np.inf)}


def _ci(values, metric):
    """Mean over the seeds with its 95% interval clipped to the metric's range."""
    return bounded_interval_text(values, *RANGES[metric], digits=3)


def settings(quick):
    if quick:
        return dict(cases=[1, 5], n_samples=240, seeds=(0, 1), epochs=2, images="digits")
    return dict(cases=None, n_samples=1500, seeds=(0, 1, 2, 3, 4), epochs=15, images="auto")


def run(out, *, quick=False, verbose=True):
    """Run the study; write its tables under ``out``; return the tables."""
    import pandas as pd
    import torch

    from sklearn_relevance import RelevanceNetClassifier
    from sklearn_relevance.multimodal import evaluate_importance

    out, cfg, log = begin("multimodal", out, quick, verbose, settings)
    frames = []
    for seed in cfg["seeds"]:
        est = RelevanceNetClassifier(max_epochs=cfg["epochs"], lr=0.005, batch_size=64,
                                     optimizer=torch.optim.AdamW,
                                     optimizer__weight_decay=0.01, random_state=seed)
        res = evaluate_importance(est, cfg["cases"], methods=METHODS,
                                  n_samples=cfg["n_samples"], random_state=seed,
                                  data_dir=data_dir(), images=cfg["images"],
                                  verbose=int(verbose))
        t = pd.DataFrame({k: v for k, v in res.table.items()
                          if k not in ("importance", "truth")})
        t["seed"] = seed
        t["importance"] = [" ".join(f"{v:.2f}" for v in imp.values())
                           for imp in res.table["importance"]]
        t["truth"] = [" ".join(f"{v:.2f}" for v in tr.values()) for tr in res.table["truth"]]
        frames.append(t)
        log(f"seed {seed}: " + ", ".join(f"{m} RBO {res.summary[m]['rbo']:.3f}"
                                          for m in (*METHODS, "random", "uniform")))
        # every finished seed is kept (a re-render needs no retraining)
        write_table(out, "multimodal_long", pd.concat(frames, ignore_index=True),
                    provenance=f"Seeds {[int(f['seed'].iloc[0]) for f in frames]}. Command: "
                               f"``{command('multimodal', quick)}``.",
                    caption="Every seed, case and method", digits=4)
    long = pd.concat(frames, ignore_index=True)
    return tables(out, long, cfg, quick, log)


def refresh(out, *, quick=False, verbose=True):
    """Re-render the tables, findings and figure of ``out`` from its
    ``multimodal_long.csv`` (every seed's results): no training."""
    import pandas as pd

    from ._common import Log

    long = pd.read_csv(Path(out) / "multimodal_long.csv")
    return tables(out, long, settings(quick), quick, Log("multimodal", verbose))


def tables(out, long, cfg, quick, log):
    """Write the study's tables and findings from its per-seed results ``long``."""
    import pandas as pd

    images = "MedMNIST PneumoniaMNIST (28x28)" if cfg["images"] == "auto" else "digits (8x8)"
    prov = (f"{cfg['n_samples']} samples per case (one third held out, images disjoint), "
            f"images: {images} when present, FusionNet {cfg['epochs']} epochs; seeds "
            f"{list(cfg['seeds'])}. Command: ``{command('multimodal', quick)}``.")
    # per case: every method's mean over seeds beside the chance levels
    rows = []
    for case, sub in long.groupby("case"):
        row = {"case": case, "rule": sub["rule"].iloc[0], "truth (ct clinical lab)":
               sub["truth"].iloc[0], "accuracy": sub["accuracy"].mean()}
        first = sub[sub.method == METHODS[0]]  # one row per seed for the chance levels
        for metric in ("rbo", "rmse"):
            for m in METHODS:
                row[f"{metric.upper()} {m}"] = _ci(sub[sub.method == m][metric], metric)
            for chance in ("random", "uniform"):
                row[f"{metric.upper()} {chance}"] = _ci(first[f"{metric}_{chance}"], metric)
        rows.append(row)
    cases = pd.DataFrame(rows)
    write_table(out, "multimodal_cases", cases, provenance=prov,
                caption="Per case: RBO (higher is better) and RMSE (lower is better) of each "
                        "method, mean over seeds [95% Student-t interval, clipped to the "
                        "metric's range], beside the random and uniform estimators")
    summ = []
    names = (*METHODS, "random", "uniform")
    for name in names:
        per_seed = {"rbo": [], "rmse": []}
        for seed, sub in long.groupby("seed"):
            if name in METHODS:
                s = sub[sub.method == name]
                per_seed["rbo"].append(s["rbo"].mean())
                per_seed["rmse"].append(s["rmse"].mean())
            else:
                s = sub[sub.method == METHODS[0]]
                per_seed["rbo"].append(s[f"rbo_{name}"].mean())
                per_seed["rmse"].append(s[f"rmse_{name}"].mean())
        summ.append({"estimator": name,
                     "mean RBO [95% CI]": _ci(per_seed["rbo"], "rbo"),
                     "mean RMSE [95% CI]": _ci(per_seed["rmse"], "rmse"),
                     "_rbo": np.mean(per_seed["rbo"]), "_rmse": np.mean(per_seed["rmse"])})
    summ = pd.DataFrame(summ)
    write_table(out, "multimodal_summary", summ.drop(columns=["_rbo", "_rmse"]),
                provenance=prov + " Interval: Student-t over the seeds, clipped to the "
                                  "metric's range.",
                caption="Over the cases: methods beside the chance levels")
    findings = multimodal_findings(long, summ)
    write_findings(out, "multimodal_findings", findings, header=[f"*{prov}*", ""])
    figures = {"multimodal_summary": summary_figure(long)}
    for name, fig in figures.items():
        save_figure(fig, out, name)
    log(f"tables and figures written to {out}")
    return {"cases": cases, "summary": summ.drop(columns=["_rbo", "_rmse"]), "long": long,
            "findings": findings, "figures": figures}


def _per_seed(long, name, metric):
    """Per seed: the mean of ``metric`` over the cases for a method or a chance level."""
    if name in METHODS:
        return long[long.method == name].groupby("seed")[metric].mean().to_numpy()
    return long[long.method == METHODS[0]].groupby("seed")[f"{metric}_{name}"].mean().to_numpy()


def multimodal_findings(long, summ):
    """Every method against both chance levels, each sentence by its rule."""
    from ._common import t_interval

    s = summ.set_index("estimator")
    n = long["seed"].nunique()
    over = f"{n} seeds"
    out = []
    for m in METHODS:
        out.append(fact(f"{m}: scores", f"{m}: mean RBO {s.loc[m, 'mean RBO [95% CI]']} and "
                        f"RMSE {s.loc[m, 'mean RMSE [95% CI]']} (95% intervals over {over}), "
                        f"against {s.loc['random', '_rbo']:.3f} / {s.loc['random', '_rmse']:.3f}"
                        f" for random importances and {s.loc['uniform', '_rbo']:.3f} / "
                        f"{s.loc['uniform', '_rmse']:.3f} for uniform ones."))
        for chance in ("random", "uniform"):
            d = _per_seed(long, chance, "rmse") - _per_seed(long, m, "rmse")
            out.append(interval_finding(
                f"{m}: RMSE vs {chance}", f"{m}: RMSE of the {chance} estimator minus the "
                "method's, paired per seed,", *t_interval(d), digits=3, over=over,
                above=f"closer to the truth than {chance} importances",
                below=f"further from the truth than {chance} importances",
                not_shown=f"not shown to differ from {chance} importances"))
        rmse, uni = float(np.mean(_per_seed(long, m, "rmse"))), s.loc["uniform", "_rmse"]
        out.append(fact(f"{m}: RMSE in words", f"{m}: an RMSE of {rmse:.3f} means the "
                        f"estimated share of a modality (the shares sum to 1) is off by about "
                        f"{rmse:.2f} (root mean square over the modalities); guessing one "
                        f"third each is off by {uni:.3f}, so the method "
                        + _against_uniform(rmse, uni) + "."))
        out.append(interval_finding(
            f"{m}: RMSE vs the seed's", f"{m}: RMSE", *t_interval(_per_seed(long, m, "rmse")),
            threshold=SEED_RMSE, digits=3, over=over,
            above=f"higher (worse) than the seed's RMSE of about {SEED_RMSE:g}",
            below=f"lower (better) than the seed's RMSE of about {SEED_RMSE:g}",
            not_shown=f"not distinguishable from the seed's RMSE of about {SEED_RMSE:g}"))
    uni = s.loc["uniform", "_rmse"]
    out.append(fact("seed RMSE in words", f"The seed's RMSE of about {SEED_RMSE:g}, read "
                    f"against this study's chance levels: uniform importances score {uni:.3f} "
                    f"and random ones {s.loc['random', '_rmse']:.3f} on these cases, so an RMSE "
                    f"of {SEED_RMSE:g} " + _against_uniform(SEED_RMSE, uni) + " (the seed's "
                    "cases are not these, so the comparison is of scale only)."))
    if 5 in set(long["case"]):
        c5 = long[(long["case"] == 5) & (long["method"] == "gradient")]
        out.append(fact("case 5", f"Case 5 (all modalities equal): RBO {c5['rbo'].mean():.3f} "
                        f"for the gradient method and {c5['rbo_uniform'].mean():.3f} for the "
                        "uniform estimator: with ties averaged, no estimate can do better than "
                        "chance on this case's ranking; only its RMSE is informative."))
    return out


def _against_uniform(rmse, uniform):
    """The share of the uniform guess's error an RMSE removes (or adds), in words."""
    change = 100 * (1 - rmse / uniform)
    if change >= 0:
        return f"removes {change:.0f}% of the uniform guess's error"
    return f"is {-change:.0f}% further off than the uniform guess"


def summary_figure(long):
    """RBO and RMSE of every method over the seeds, beside both chance levels."""
    from ._common import t_interval
    from ._figures import interval_panels

    names = list(METHODS) + ["uniform"]
    panels = []
    for metric, label in (("rbo", "RBO of the modality ranking (unitless, higher = better)"),
                          ("rmse", "RMSE of the importances (share of the prediction, "
                                   "lower = better)")):
        values = np.array([_per_seed(long, m, metric) for m in names]).T
        stats = np.array([t_interval(v) for v in values.T])
        panels.append({"values": values, "mean": stats[:, 0], "low": stats[:, 1],
                       "high": stats[:, 2], "xlabel": label, "ylabel": "estimator",
                       "range": RANGES[metric],
                       "chance": float(np.mean(_per_seed(long, "random", metric))),
                       "chance_label": "chance (random importances on the simplex)"})
    return interval_panels(panels, names=names, replicates="one seed (mean over the cases)")
