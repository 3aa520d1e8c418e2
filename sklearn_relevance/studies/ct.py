"""CT study: which importance estimator, and do fidelity and masks agree?

The CT seed compared importance estimators on a CT classifier by fidelity
(pixel flipping, most against least important first) and by agreement with
expert masks, and found that the two kinds of metric disagree. Here every
estimator of that comparison the library ships (SmoothGrad squared and
VarGrad included) is scored on synthetic lesion images with known masks
(:func:`~sklearn_relevance.datasets.make_lesion_images`), for several
*training seeds* of the same network on the same data, so that a ranking is
reported with its stability:

* per explainer and metric, the mean over seeds with a Student-t 95%
  interval over seeds, and the mean rank (1 = best) with its spread;
* per metric, the stability of the ranking: Spearman correlation of the
  explainers' scores between every pair of seeds;
* "fidelity and mask metrics disagree" as a statistic: per seed, the
  Spearman correlation across explainers of fidelity with mask ROC-AUC and
  with mask Dice; mean and 95% interval over seeds;
* the chance level of every metric (a ``chance`` row of the explainers'
  table, :func:`chance_levels`), from the test images alone.

Run ``python -m sklearn_relevance.studies ct [--quick] [--out DIR]``.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from ._common import (
    begin,
    command,
    correlation_interval,
    interval_text,
    read_table,
    save_figure,
    spearman,
    t_interval,
    write_table,
    write_text,
)

EXPLAINERS = ["gradient", "gradient_x_input", "integrated_gradients", "smoothgrad",
              "smoothgrad_squared", "vargrad", "guided_backprop", "gradcam", "occlusion",
              "lrp_epsilon_plus", "xrai"]
METRICS = ["fidelity", "mask_roc_auc", "mask_dice", "sparseness"]
MASK_METRICS = ["mask_roc_auc", "mask_dice"]
#: Label of the chance row of the explainers' table.
CHANCE = "chance (uniform random map)"
_CHANCE_NOTE = (" Chance row: the metrics of uniform random maps (20 draws per test image, "
                "seed 0) on the same test images and masks; fidelity of a random order is "
                "0 in expectation exactly (the LIF order of a uniformly random ranking is "
                "its MIF order reversed, itself uniformly random).")


def settings(quick):
    if quick:
        return dict(shape=(16, 16), n_train=160, n_test=12, epochs=2, seeds=(0, 1),
                    explainers=EXPLAINERS, steps=8, n_bootstrap=50)
    return dict(shape=(32, 32), n_train=1200, n_test=128, epochs=20, seeds=(0, 1, 2, 3, 4),
                explainers=EXPLAINERS, steps=10, n_bootstrap=1000)


def _test_data(cfg):
    from sklearn_relevance.datasets import make_lesion_images

    n = cfg["n_train"] + cfg["n_test"]
    X, y, masks = make_lesion_images(n, shape=cfg["shape"], random_state=0)
    return X, y, masks


def chance_levels(masks, *, n_draws=20, random_state=0):
    """Chance level of each metric of the study, from the masks alone.

    Mask ROC-AUC, mask Dice and sparseness are the metrics (as
    :func:`~sklearn_relevance.evaluation.compare_explainers` scores them:
    mean over the images with a non-empty mask) of ``n_draws`` uniform random
    maps per image, averaged over the draws; the expectations are 0.5, the
    mean mask fraction and about 1/3. Fidelity of a random order is 0 in
    expectation exactly, so no network is needed.
    """
    from sklearn_relevance.metrics import mask_dice, mask_roc_auc, sparseness

    m = np.asarray(masks, bool)
    flat = m.reshape(len(m), -1)
    keep = flat.any(1) & ~flat.all(1)
    m = np.repeat(m[keep], n_draws, axis=0)
    maps = np.random.default_rng(random_state).random(m.shape)
    return {"fidelity": 0.0, "mask_roc_auc": float(mask_roc_auc(maps, m).mean()),
            "mask_dice": float(mask_dice(maps, m).mean()),
            "sparseness": float(sparseness(maps).mean()),
            "mask fraction": float(flat[keep].mean())}


def write_chance_levels(out, *, quick=False):
    """Add the chance row to ``ct_explainers`` and its line to ``ct_findings`` in ``out``.

    Regenerates the study's test images (data seed 0; no training) and
    rewrites the table from its CSV, so existing numbers are kept; running it
    again replaces the chance row and line. ``run`` ends with it.
    """
    cfg = settings(quick)
    masks = _test_data(cfg)[2][cfg["n_train"]:]
    chance = chance_levels(masks)
    out = Path(out)
    frame, caption, prov = read_table(out, "ct_explainers")
    frame = frame[frame["explainer"] != CHANCE]
    row = {c: "" for c in frame.columns}
    row["explainer"] = CHANCE
    row.update({m: f"{chance[m]:.3f}" for m in METRICS})
    frame = _append_row(frame, row)
    if _CHANCE_NOTE not in prov:
        prov += _CHANCE_NOTE
    write_table(out, "ct_explainers", frame, caption=caption, provenance=prov)
    lines = [ln for ln in (out / "ct_findings.inc").read_text(encoding="utf-8").splitlines()
             if not ln.startswith("* Chance levels")]
    lines.append(f"* Chance levels (uniform random maps on the same test images): mask "
                 f"ROC-AUC {chance['mask_roc_auc']:.3f}, mask Dice {chance['mask_dice']:.3f} "
                 f"(mean mask fraction {chance['mask fraction']:.3f}), sparseness "
                 f"{chance['sparseness']:.3f}, fidelity 0 (random order).")
    write_text(out, "ct_findings", lines)
    return chance


def _append_row(frame, row):
    import pandas as pd

    return pd.concat([frame, pd.DataFrame([row])], ignore_index=True)


def _fit(X, y, epochs, seed):
    from sklearn_relevance import RelevanceNetClassifier

    clf = RelevanceNetClassifier(max_epochs=epochs, lr=3e-3, batch_size=32, random_state=seed,
                                 module__channels=(8, 16, 32), module__hidden_units=64)
    return clf.fit(X, y)


def run(out, *, quick=False, verbose=True):
    """Run the study; write its tables and figures under ``out``; return the tables."""
    import pandas as pd

    from sklearn_relevance import compare_explainers

    out, cfg, log = begin("ct", out, quick, verbose, settings)
    X, y, masks = _test_data(cfg)
    Xtr, ytr = X[:cfg["n_train"]], y[:cfg["n_train"]]
    Xte, yte, mte = X[cfg["n_train"]:], y[cfg["n_train"]:], masks[cfg["n_train"]:]
    tables, accuracy, first = {}, {}, None
    for seed in cfg["seeds"]:
        clf = _fit(Xtr, ytr, cfg["epochs"], seed)
        accuracy[seed] = float(clf.score(Xte, yte))
        log(f"training seed {seed}: test accuracy {accuracy[seed]:.3f}; comparing "
            f"{len(cfg['explainers'])} explainers")
        tables[seed] = compare_explainers(
            clf, Xte, yte, masks=mte, explainers=cfg["explainers"], metrics=METRICS,
            metric_params={"fidelity": {"steps": cfg["steps"]}},
            n_bootstrap=cfg["n_bootstrap"], random_state=seed, verbose=int(verbose))
        if first is None:
            first = clf
    seeds = list(cfg["seeds"])
    prov = (f"Synthetic lesions {cfg['shape'][0]}x{cfg['shape'][1]}, data seed 0, "
            f"{cfg['n_train']} training / {cfg['n_test']} test images, {cfg['epochs']} "
            f"epochs; training seeds {seeds}; intervals: Student-t 95% over the training "
            f"seeds. Command: ``{command('ct', quick)}``.")

    # ---- per explainer: mean over seeds with interval, mean rank -------------
    names = list(cfg["explainers"])
    scores = {m: np.array([[tables[s].loc[e, m] for e in names] for s in seeds])
              for m in METRICS}  # (seeds, explainers)
    ranks = {m: np.array([pd.Series(row).rank(ascending=False).to_numpy()
                          for row in scores[m]]) for m in METRICS}
    rows = []
    for j, e in enumerate(names):
        row = {"explainer": e}
        for m in METRICS:
            row[m] = interval_text(*t_interval(scores[m][:, j]), digits=3)
            row[f"{m} rank"] = f"{np.nanmean(ranks[m][:, j]):.1f} ± {np.nanstd(ranks[m][:, j]):.1f}"
        rows.append(row)
    main = pd.DataFrame(rows)
    write_table(out, "ct_explainers", main,
                caption="Explainers on lesion images: mean over training seeds [95% interval]"
                        " and mean rank ± sd (1 = best; sparseness: higher = sparser)",
                provenance=prov)

    # ---- stability of the rankings across seeds --------------------------------
    stab = []
    for m in METRICS:
        rho = [spearman(scores[m][a], scores[m][b]) for a, b in combinations(range(len(seeds)), 2)]
        rho = np.asarray(rho, float)
        stab.append({"metric": m, "pairs of seeds": len(rho),
                     "mean Spearman": float(np.nanmean(rho)) if rho.size else np.nan,
                     "min": float(np.nanmin(rho)) if rho.size else np.nan,
                     "max": float(np.nanmax(rho)) if rho.size else np.nan})
    stab = pd.DataFrame(stab)
    write_table(out, "ct_stability", stab,
                caption="Stability of the explainer ranking: Spearman correlation of the "
                        "explainers' scores between pairs of training seeds",
                provenance=prov, digits=2)

    # ---- fidelity against the mask metrics --------------------------------------
    dis = []
    for m in MASK_METRICS:
        per_seed = [spearman(scores["fidelity"][k], scores[m][k]) for k in range(len(seeds))]
        mean, lo, hi = correlation_interval(per_seed)
        dis.append({"pair": f"fidelity vs {m}",
                    "Spearman per seed": " ".join(f"{v:.2f}" for v in per_seed),
                    "mean": mean, "ci_low": lo, "ci_high": hi})
    dis = pd.DataFrame(dis)
    write_table(out, "ct_disagreement", dis,
                caption="Do fidelity and the mask metrics rank the explainers alike? "
                        "Spearman correlation across explainers, per training seed",
                provenance=prov + " Mean and interval through Fisher's z over the seeds.",
                digits=2)

    # ---- findings with their numbers (generated) --------------------------------
    def mean_rank(m, e):
        return float(np.nanmean(ranks[m][:, names.index(e)]))

    lines = [f"*{prov}*", "",
             "* Test accuracy per training seed: "
             + ", ".join(f"{accuracy[s]:.3f}" for s in seeds) + "."]
    if "smoothgrad_squared" in names:
        lines.append(f"* SmoothGrad squared: mean rank {mean_rank('mask_roc_auc', 'smoothgrad_squared'):.1f}"
                     f" of {len(names)} on mask ROC-AUC, {mean_rank('fidelity', 'smoothgrad_squared'):.1f}"
                     " on fidelity.")
    for m in METRICS:
        best = names[int(np.nanargmin(np.nanmean(ranks[m], 0)))]
        lines.append(f"* Best mean rank on {m}: {best} ({mean_rank(m, best):.1f}).")
    for r in dis.itertuples(index=False):
        verdict = ("disagree (interval below 0)" if r.ci_high < 0 else
                   "agree (interval above 0)" if r.ci_low > 0 else
                   "are not shown to agree or disagree (interval contains 0)")
        lines.append(f"* {r.pair}: mean Spearman {interval_text(r.mean, r.ci_low, r.ci_high)}"
                     f" over seeds: the two {verdict}.")
    seed0 = tables[seeds[0]]
    for e in ("integrated_gradients", "gradient"):
        if e in names:
            lines.append(f"* Training seed {seeds[0]}: fidelity of {e} "
                         f"{interval_text(seed0.loc[e, 'fidelity'], seed0.loc[e, 'fidelity_ci_low'], seed0.loc[e, 'fidelity_ci_high'], 3)}"
                         " (bootstrap over test images).")
    write_text(out, "ct_findings", lines)
    chance = write_chance_levels(out, quick=quick)

    # ---- figures -------------------------------------------------------------------
    import matplotlib

    matplotlib.use("Agg")
    from sklearn_relevance.plotting import plot_attributions, plot_comparison

    fig = plot_comparison(seed0, ncols=2, figsize=(8, 0.3 * len(names) * 2 + 2))
    save_figure(fig, out, "ct_comparison_seed0")
    idx = np.flatnonzero(yte == 1)[:3]
    shown = ["gradient", "integrated_gradients", "smoothgrad_squared", "gradcam",
             "lrp_epsilon_plus"]
    maps = {e: first.explain(Xte[idx], yte[idx], explainer=e, target="true") for e in shown}
    fig = plot_attributions(Xte[idx], maps, masks=mte[idx], n_images=len(idx),
                            shared_scale=True)
    save_figure(fig, out, "ct_maps_seed0")
    log(f"tables and figures written to {out}")
    return {"explainers": main, "stability": stab, "disagreement": dis, "per_seed": tables,
            "chance": chance}
