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
)
from ._figures import interval_panels, map_grid
from ._findings import ABOVE, Finding, fact, interval_finding, interval_verdict, write_findings

EXPLAINERS = ["gradient", "gradient_x_input", "integrated_gradients", "smoothgrad",
              "smoothgrad_squared", "vargrad", "guided_backprop", "gradcam", "occlusion",
              "lrp_epsilon_plus", "xrai"]
METRICS = ["fidelity", "mask_roc_auc", "mask_dice", "sparseness"]
#: The seed's XRAI Dice (XRAI regions grown from every map; the full study only).
XRAI_DICE = "xrai_dice"
#: Axis labels with units.
UNITS = {"fidelity": "fidelity ((LIF - MIF area) / f(x), unitless)",
         "mask_roc_auc": "mask ROC-AUC (unitless, chance 0.5)",
         "mask_dice": "mask Dice of the top pixels (unitless)",
         "sparseness": "sparseness (Gini index, unitless)",
         XRAI_DICE: "XRAI Dice (unitless)"}
MASK_METRICS = ["mask_roc_auc", "mask_dice"]
#: Label of the chance row of the explainers' table.
CHANCE = "chance (uniform random map)"
_CHANCE_NOTE = (" Chance row: the metrics of uniform random maps (20 draws per test image, "
                "seed 0) on the same test images and masks; fidelity of a random order is "
                "0 in expectation exactly (the LIF order of a uniformly random ranking is "
                "its MIF order reversed, itself uniformly random).")


def settings(quick):
    """Sizes and seeds: every (data seed, training seed) pair is one cell."""
    if quick:
        return dict(shape=(16, 16), n_train=160, n_test=12, epochs=2, data_seeds=(0, 1),
                    seeds=(0, 1), explainers=EXPLAINERS, metrics=METRICS, steps=8,
                    n_bootstrap=20)
    return dict(shape=(32, 32), n_train=1200, n_test=128, epochs=20, data_seeds=(0, 1, 2),
                seeds=(0, 1, 2, 3, 4), explainers=EXPLAINERS, metrics=METRICS + [XRAI_DICE],
                steps=10, n_bootstrap=100)


def _test_data(cfg, data_seed=0):
    from sklearn_relevance.datasets import make_lesion_images

    n = cfg["n_train"] + cfg["n_test"]
    X, y, masks = make_lesion_images(n, shape=cfg["shape"], random_state=data_seed)
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
    """Add the chance row to ``ct_explainers`` in ``out`` (no training).

    The chance of each metric is averaged over the study's data seeds (the
    test images of each). The table is rewritten from its CSV, so existing
    numbers are kept; running it again replaces the chance row. ``run`` ends
    with it. Returns the chance levels.
    """
    cfg = settings(quick)
    per = [chance_levels(_test_data(cfg, d)[2][cfg["n_train"]:])
           for d in cfg.get("data_seeds", (0,))]
    chance = {k: float(np.mean([c[k] for c in per])) for k in per[0]}
    out = Path(out)
    frame, caption, prov = read_table(out, "ct_explainers")
    frame = frame[frame["explainer"] != CHANCE]
    row = {c: "" for c in frame.columns}
    row["explainer"] = CHANCE
    row.update({m: f"{chance[m]:.3f}" for m in METRICS if m in frame.columns})
    frame = _append_row(frame, row)
    if _CHANCE_NOTE not in prov:
        prov += _CHANCE_NOTE
    write_table(out, "ct_explainers", frame, caption=caption, provenance=prov)
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
    """Run the study; write its tables, findings and figures under ``out``.

    Every (data seed, training seed) pair is a cell: the lesion images of
    the data seed, a network trained with the training seed. Intervals are
    Student-t over all cells. Returns the tables and the figures.
    """
    import pandas as pd

    from sklearn_relevance import compare_explainers

    out, cfg, log = begin("ct", out, quick, verbose, settings)
    metrics = list(cfg["metrics"])
    tables, accuracy, first, cells = {}, {}, None, []
    for ds in cfg["data_seeds"]:
        X, y, masks = _test_data(cfg, ds)
        Xtr, ytr = X[:cfg["n_train"]], y[:cfg["n_train"]]
        Xte, yte, mte = X[cfg["n_train"]:], y[cfg["n_train"]:], masks[cfg["n_train"]:]
        for seed in cfg["seeds"]:
            clf = _fit(Xtr, ytr, cfg["epochs"], seed)
            cell = (ds, seed)
            accuracy[cell] = float(clf.score(Xte, yte))
            log(f"data seed {ds}, training seed {seed}: test accuracy {accuracy[cell]:.3f}; "
                f"comparing {len(cfg['explainers'])} explainers")
            tables[cell] = compare_explainers(
                clf, Xte, yte, masks=mte, explainers=cfg["explainers"], metrics=metrics,
                metric_params={"fidelity": {"steps": cfg["steps"]}},
                n_bootstrap=cfg["n_bootstrap"], random_state=seed, verbose=int(verbose))
            cells.append(cell)
            if first is None:
                first = (clf, Xte, yte, mte)
    prov = (f"Synthetic lesions {cfg['shape'][0]}x{cfg['shape'][1]}, {cfg['n_train']} "
            f"training / {cfg['n_test']} test images, {cfg['epochs']} epochs; data seeds "
            f"{list(cfg['data_seeds'])} x training seeds {list(cfg['seeds'])} "
            f"({len(cells)} networks); intervals: Student-t 95% over all "
            f"{len(cells)} networks. Command: ``{command('ct', quick)}``.")

    # ---- per explainer: mean over cells with interval, mean rank --------------
    names = list(cfg["explainers"])
    scores = {m: np.array([[tables[c].loc[e, m] for e in names] for c in cells], float)
              for m in metrics}  # (cells, explainers)
    ranks = {m: np.array([pd.Series(row).rank(ascending=False).to_numpy()
                          for row in scores[m]]) for m in metrics}
    rows = []
    for j, e in enumerate(names):
        row = {"explainer": e}
        for m in metrics:
            row[m] = interval_text(*t_interval(scores[m][:, j]), digits=3)
            row[f"{m} rank"] = f"{np.nanmean(ranks[m][:, j]):.1f} ± {np.nanstd(ranks[m][:, j]):.1f}"
        rows.append(row)
    main = pd.DataFrame(rows)
    write_table(out, "ct_explainers", main,
                caption="Explainers on lesion images: mean over networks [95% interval]"
                        " and mean rank ± sd (1 = best; sparseness: higher = sparser)",
                provenance=prov)
    chance = write_chance_levels(out, quick=quick)

    # ---- stability of the rankings across networks ----------------------------
    stab = []
    for m in metrics:
        rho = np.asarray([spearman(scores[m][a], scores[m][b])
                          for a, b in combinations(range(len(cells)), 2)], float)
        ok = rho[np.isfinite(rho)]
        stab.append({"metric": m, "pairs of networks": len(rho),
                     "mean Spearman": float(ok.mean()) if ok.size else np.nan,
                     "min": float(ok.min()) if ok.size else np.nan,
                     "max": float(ok.max()) if ok.size else np.nan})
    stab = pd.DataFrame(stab)
    write_table(out, "ct_stability", stab,
                caption="Stability of the explainer ranking: Spearman correlation of the "
                        "explainers' scores between pairs of networks",
                provenance=prov, digits=2)

    # ---- fidelity against the mask metrics --------------------------------------
    dis = []
    for m in [m for m in metrics if m in MASK_METRICS + [XRAI_DICE]]:
        per_cell = [spearman(scores["fidelity"][k], scores[m][k]) for k in range(len(cells))]
        mean, lo, hi = correlation_interval(per_cell)
        dis.append({"pair": f"fidelity vs {m}",
                    "Spearman per network": " ".join(f"{v:.2f}" for v in per_cell),
                    "mean": mean, "ci_low": lo, "ci_high": hi})
    dis = pd.DataFrame(dis)
    write_table(out, "ct_disagreement", dis,
                caption="Do fidelity and the mask metrics rank the explainers alike? "
                        "Spearman correlation across explainers, per network",
                provenance=prov + " Mean and interval through Fisher's z over the networks.",
                digits=2)
    findings = ct_findings(names, metrics, scores, ranks, stab, dis, accuracy, chance,
                           len(cells))
    write_findings(out, "ct_findings", findings, header=[f"*{prov}*", ""])

    # ---- figures -------------------------------------------------------------------
    figures = {"ct_comparison": comparison_figure(names, metrics, scores, chance, len(cells))}
    clf, Xte, yte, mte = first
    idx = np.flatnonzero(yte == 1)[:3]
    shown = ["gradient", "integrated_gradients", "smoothgrad_squared", "gradcam",
             "lrp_epsilon_plus"]
    maps = {e: clf.explain(Xte[idx], yte[idx], explainer=e, target="true") for e in shown}
    figures["ct_maps_seed0"] = map_grid(
        Xte[idx], maps, masks=mte[idx], mask_label="lesion mask (truth)",
        col_titles=[f"test image {i} (lesion)" for i in idx],
        image_label="intensity (a.u.)", relevance_unit="a.u.")
    for name, fig in figures.items():
        save_figure(fig, out, name)
    log(f"tables and figures written to {out}")
    return {"explainers": main, "stability": stab, "disagreement": dis, "per_cell": tables,
            "chance": chance, "findings": findings, "figures": figures}


def _lead(key, metric, scores, names, subject_names, *, over, seed_claim=None):
    """Do ``subject_names`` score above every other explainer? Paired over the
    networks: the lowest of the subjects minus the highest of the others."""
    idx = [names.index(e) for e in subject_names]
    rest = [j for j in range(len(names)) if j not in idx]
    diff = np.nanmin(scores[metric][:, idx], 1) - np.nanmax(scores[metric][:, rest], 1)
    who = " and ".join(subject_names)
    tail = "" if seed_claim is None else f"; the seed's claim ({seed_claim})"
    return interval_finding(
        key, f"{metric}: {who} minus the best other explainer, paired per network,",
        *t_interval(diff), digits=3, over=over,
        above=f"{who} on top{tail + ' reproduced' if seed_claim else ''}",
        below=f"{who} not on top, another explainer scores higher"
              f"{tail + ' contradicted' if seed_claim else ''}",
        not_shown=f"{who} not shown to lead{tail + ' not shown' if seed_claim else ''}")


def ct_findings(names, metrics, scores, ranks, stab, dis, accuracy, chance, n_cells):
    """The CT study's findings, each generated by its rule from the numbers."""
    over = f"{n_cells} networks"
    acc = np.array(list(accuracy.values()))
    out = [fact("accuracy", f"Test accuracy over the {n_cells} networks: mean "
                            f"{acc.mean():.3f}, range {acc.min():.3f} to {acc.max():.3f}.")]
    for r in dis.itertuples(index=False):
        out.append(interval_finding(
            r.pair, f"{r.pair}: mean Spearman across explainers", r.mean, r.ci_low, r.ci_high,
            over=over,
            above="the two agree, so the seed's disagreement is not reproduced",
            below="the two disagree, as the seed found",
            not_shown="neither agreement nor the seed's disagreement is shown"))
    s = stab.set_index("metric")["mean Spearman"]
    if s.notna().any():
        lo, hi = s.idxmin(), s.idxmax()
        out.append(fact("stability", f"Ranking stability between networks (mean Spearman "
                                     f"over pairs): least stable {lo} ({s[lo]:.2f}), most "
                                     f"stable {hi} ({s[hi]:.2f}); a ranking from one network "
                                     "is as reliable as this number says."))
    for m in metrics:
        mean_rank = np.nanmean(ranks[m], 0)
        best = names[int(np.nanargmin(mean_rank))]
        out.append(fact(f"best {m}", f"Best mean rank on {m}: {best} "
                                     f"({mean_rank[names.index(best)]:.1f} of {len(names)})."))
        out.append(_lead(f"lead {m}", m, scores, names, [best], over=over))
    if "smoothgrad_squared" in names:
        j = names.index("smoothgrad_squared")
        out.append(fact("smoothgrad_squared", "SmoothGrad squared: mean rank "
                        + ", ".join(f"{np.nanmean(ranks[m][:, j]):.1f} on {m}" for m in metrics)
                        + f" (of {len(names)})."))
    if XRAI_DICE in metrics and {"integrated_gradients", "smoothgrad"} <= set(names):
        out.append(_lead("xrai_dice IG and SmoothGrad on top", XRAI_DICE, scores, names,
                         ["integrated_gradients", "smoothgrad"], over=over,
                         seed_claim="IG and SmoothGrad on top by XRAI Dice"))
    for m in MASK_METRICS:
        if m in metrics and np.isfinite(chance.get(m, np.nan)):
            above = [e for j, e in enumerate(names)
                     if interval_verdict(*t_interval(scores[m][:, j] - chance[m])[1:]) == ABOVE]
            f = fact(f"above chance {m}", f"{m}: {len(above)} of {len(names)} explainers "
                                          f"above chance ({chance[m]:.3f}; 95% interval over "
                                          f"{over} above it).")
            out.append(Finding(f.key, f"{len(above)}/{len(names)}", f.text,
                               "the count of explainers whose interval lies above chance"))
    out.append(fact("chance", f"Chance levels (uniform random maps on the same test images, "
                              f"averaged over the data seeds): mask ROC-AUC "
                              f"{chance['mask_roc_auc']:.3f}, mask Dice {chance['mask_dice']:.3f}"
                              f" (mean mask fraction {chance['mask fraction']:.3f}), sparseness "
                              f"{chance['sparseness']:.3f}, fidelity 0 (random order)."))
    return out


def comparison_figure(names, metrics, scores, chance, n_cells):
    """Every metric per explainer: networks as points, mean and interval, chance."""
    panels = []
    for m in metrics:
        stats = np.array([t_interval(scores[m][:, j]) for j in range(len(names))])
        panels.append({"values": scores[m], "mean": stats[:, 0], "low": stats[:, 1],
                       "high": stats[:, 2], "xlabel": UNITS.get(m, m),
                       "chance": chance.get(m), "chance_label": "chance (uniform random map)"})
    return interval_panels(panels, names=names,
                           replicates=f"one network ({n_cells}: data seed x training seed)")
