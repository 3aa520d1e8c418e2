"""Right for the right reasons: training with expert masks, selected by GridSearchCV.

Two studies, each over several seeds:

1. **Decoy digits** (:func:`sklearn_relevance.datasets.make_decoy_images`):
   the class is also written into a corner patch in the training split and
   is random in the test split. Compared: plain training, the same network
   trained on the decoy-free images, deep relevance regularization (DRR,
   penalty chosen by cross-validated accuracy) and masked training
   (:class:`~sklearn_relevance.penalties.RightReasonsPenalty`, penalty
   chosen by ``GridSearchCV`` with the masks routed per fold).
2. **CT organs** (``../shared/data/ct2d``, 4 real slices with expert organ
   masks): too few images for a real training study, so samples are the 4
   slices with intensity jitter and noise; class 1 holds a small bright
   lesion inside one organ, and a corner marker gives the class away in the
   training split only; the default image CNN. Reported: test accuracy, the share of relevance
   inside the organ and the organ-mask ROC-AUC, before and after masked
   training.

Selection recipe. On decoy data, accuracy cross-validated on the training
distribution prefers penalty 0 (the decoy predicts the label in every
training fold), so the search also scores the share of relevance inside the
annotations (``relevance_mass_accuracy`` with the masks as metadata) and
refits with :func:`select_by_annotation`: the best cross-validated accuracy
among the candidates whose relevance share inside the masks is within a
relative ``tolerance`` (5%) of the best share.

Run ``python examples/masked_training.py`` (the numbers of
``docs/masked_training.rst``; ``--output`` writes its table) or with
``--quick`` (a few seconds, as the test suite does).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from scipy import stats
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sklearn_relevance import RelevanceNetClassifier, make_relevance_scorer
from sklearn_relevance.datasets import load_ct_organs, make_decoy_images
from sklearn_relevance.metrics import mask_roc_auc, relevance_mass_accuracy
from sklearn_relevance.penalties import RightReasonsPenalty

DATA = Path(os.environ.get("SKLEARN_RELEVANCE_DATA",
                           Path(__file__).resolve().parent.parent / ".." / "shared" / "data"))
CT_DIR = DATA / "ct2d"  # $SKLEARN_RELEVANCE_DATA/ct2d, as the tests read it


def select_by_annotation(cv_results, *, accuracy="accuracy", inside="inside",
                         tolerance=0.05):
    """Refit rule: best accuracy among candidates that keep to the annotations.

    Parameters
    ----------
    cv_results : dict
        ``GridSearchCV.cv_results_`` with the scorers ``accuracy`` and
        ``inside`` (share of relevance inside the masks).
    tolerance : float, default=0.05
        Candidates whose mean share inside the masks is at least
        ``(1 - tolerance)`` times the best share are eligible.

    Returns
    -------
    int
        Index of the chosen candidate.
    """
    share = np.nan_to_num(np.asarray(cv_results[f"mean_test_{inside}"]), nan=-np.inf)
    acc = np.asarray(cv_results[f"mean_test_{accuracy}"])
    eligible = share >= share.max() * (1 - tolerance)
    return int(np.flatnonzero(eligible)[np.argmax(acc[eligible])])


def _scorers():
    inside = make_relevance_scorer(relevance_mass_accuracy, explainer="saliency")
    return {"accuracy": "accuracy", "inside": inside.set_score_request(masks=True)}


def masked_search(X, y, masks, penalties, seed, **net_params):
    """GridSearchCV over ``relevance_penalty`` of masked training (the recipe)."""
    net = RelevanceNetClassifier(relevance_term=RightReasonsPenalty(),
                                 random_state=seed, **net_params)
    net.set_fit_request(relevance_mask=True)
    search = GridSearchCV(
        net, {"relevance_penalty": penalties}, scoring=_scorers(),
        refit=select_by_annotation, cv=StratifiedKFold(2, shuffle=True, random_state=seed),
    )
    return search.fit(X, y, relevance_mask=masks, masks=masks)


def drr_search(X, y, penalties, seed, **net_params):
    """GridSearchCV over the DRR penalty by cross-validated accuracy (no masks)."""
    net = RelevanceNetClassifier(random_state=seed, **net_params)
    search = GridSearchCV(net, {"relevance_penalty": penalties}, scoring="accuracy",
                          cv=StratifiedKFold(2, shuffle=True, random_state=seed))
    return search.fit(X, y)


def _inside(net, X, allowed):
    rel = np.abs(net.explain(X, explainer="saliency"))
    return float(np.nanmean(relevance_mass_accuracy(rel, allowed)))


def decoy_study(seed, *, epochs, penalties, n_train=None):
    data = make_decoy_images(random_state=seed)
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731  (an MLP on 144 pixels)
    sl = slice(None, n_train)
    Xtr, ytr, Mtr = flat(data.X_train)[sl], data.y_train[sl], flat(data.relevance_mask_train)[sl]
    Xte, yte, Mte = flat(data.X_test), data.y_test, flat(data.relevance_mask_test)
    kw = dict(max_epochs=epochs, lr=0.01, batch_size=128)
    out = {}
    plain = RelevanceNetClassifier(random_state=seed, **kw).fit(Xtr, ytr)
    out["plain"] = (plain.score(Xte, yte), _inside(plain, Xte, Mte), 0.0)
    clean = RelevanceNetClassifier(random_state=seed, **kw).fit(flat(data.X_train_clean)[sl], ytr)
    out["decoy-free"] = (clean.score(Xte, yte), _inside(clean, Xte, Mte), 0.0)
    drr = drr_search(Xtr, ytr, penalties, seed, **kw)
    out["DRR (accuracy CV)"] = (drr.score(Xte, yte), _inside(drr.best_estimator_, Xte, Mte),
                                drr.best_params_["relevance_penalty"])
    masked = masked_search(Xtr, ytr, Mtr, penalties, seed, **kw)
    out["masked (annotation CV)"] = (
        masked.best_estimator_.score(Xte, yte), _inside(masked.best_estimator_, Xte, Mte),
        masked.best_params_["relevance_penalty"])
    return out


def ct_data(seed, n_samples, size=32):
    """Jittered copies of the 4 CT slices; class 1 holds a lesion inside an organ."""
    ct = load_ct_organs(CT_DIR, size=(size, size))
    rng = np.random.default_rng(seed)
    images = ct.images.astype(np.float32)
    images = (images - images.min()) / (images.max() - images.min())
    # per slice, its largest annotated organ holds the lesions
    area = ct.masks.reshape(len(images), ct.masks.shape[1], -1).sum(-1) * ct.has_mask
    organ = ct.masks[np.arange(len(images)), area.argmax(1)][:, None].astype(np.float32)
    s = rng.integers(0, len(images), n_samples)
    y = rng.integers(0, 2, n_samples)
    X = images[s] * rng.uniform(0.8, 1.2, (n_samples, 1, 1, 1)).astype(np.float32)
    X = X + rng.normal(0, 0.05, X.shape).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    for i in np.flatnonzero(y):  # one small disk per lesion sample (vectorised per image)
        pix = np.argwhere(organ[s[i], 0] > 0)
        cy, cx = pix[rng.integers(len(pix))]
        X[i, 0] += 0.6 * ((yy - cy) ** 2 + (xx - cx) ** 2 <= 2.0)
    half = n_samples // 2
    marker = np.where(np.arange(n_samples) < half, y, rng.integers(0, 2, n_samples))
    X[:, 0, :3, :3] = marker[:, None, None].astype(np.float32)  # corner marker
    allowed = organ[s]
    return X[:half], y[:half], allowed[:half], X[half:], y[half:], allowed[half:]


def ct_study(seed, *, epochs, penalties, n_samples):
    """Plain against masked training (the recipe) of the default image CNN."""
    Xtr, ytr, Mtr, Xte, yte, Mte = ct_data(seed, n_samples)
    kw = dict(max_epochs=epochs, lr=0.003, batch_size=64)
    out = {}
    plain = RelevanceNetClassifier(random_state=seed, **kw).fit(Xtr, ytr)
    masked = masked_search(Xtr, ytr, Mtr, penalties, seed, **kw)
    for name, net in (("plain", plain), ("masked (annotation CV)", masked.best_estimator_)):
        rel = np.abs(net.explain(Xte, explainer="saliency"))
        out[name] = (net.score(Xte, yte),
                     float(np.nanmean(relevance_mass_accuracy(rel, Mte))),
                     float(np.nanmean(mask_roc_auc(rel, Mte))))
    out["chosen penalty"] = masked.best_params_["relevance_penalty"]
    return out


def _interval(values):
    values = np.asarray(values, dtype=float)
    m = values.mean()
    if len(values) < 2:
        return m, float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return m, half


def _fmt(values):
    m, h = _interval(values)
    return f"{m:.3f}" if np.isnan(h) else f"{m:.3f} ± {h:.3f}"


def _list_table(caption, headers, rows):
    """reST list-table lines: a caption, a header row, then (name, cells) rows."""
    lines = [caption, "", ".. list-table::", "   :header-rows: 1", ""]
    for first, cells in [(headers[0], headers[1:]), *rows]:
        lines += [f"   * - {first}", *(f"     - {c}" for c in cells)]
    return lines


_CT_SKIPPED = (f"CT part SKIPPED: the real CT slices are not in {CT_DIR} (set "
               "SKLEARN_RELEVANCE_DATA to the shared data folder holding ct2d/); only the "
               "decoy-digits part runs, and the table has no CT rows.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run (seconds)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--penalties", type=float, nargs="+", default=[0.0, 1.0, 10.0])
    parser.add_argument("--ct-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ct-epochs", type=int, default=20)
    parser.add_argument("--ct-penalties", type=float, nargs="+", default=[0.0, 1.0, 10.0])
    parser.add_argument("--output", type=Path, help="write the results table (rst) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sklearn.set_config(enable_metadata_routing=True)
    if args.quick:
        args.seeds, args.ct_seeds, args.epochs = args.seeds[:1], args.ct_seeds[:1], 2
        args.penalties, args.ct_penalties, args.ct_epochs = args.penalties[:2], [0.0, 1.0], 1
    n_train = 120 if args.quick else None
    if not CT_DIR.is_dir():
        print(_CT_SKIPPED)  # said first, so no one waits for a part that will not run
    start = time.perf_counter()
    rows = {}
    for seed in args.seeds:
        res = decoy_study(seed, epochs=args.epochs, penalties=args.penalties, n_train=n_train)
        print(f"decoy seed {seed}: " + ", ".join(
            f"{k}: acc {a:.3f} inside {i:.3f} penalty {p:g}" for k, (a, i, p) in res.items()))
        for k, v in res.items():
            rows.setdefault(k, []).append(v)
    lines = _list_table(
        f"Decoy digits: {len(args.seeds)} seeds ({' '.join(map(str, args.seeds))}), "
        f"{args.epochs} epochs, penalties {args.penalties}; mean ± 95% t-interval.",
        ["training", "test accuracy", "relevance share outside the decoy (test)",
         "penalties chosen"],
        [(k, [_fmt(acc), _fmt(ins), " ".join(f"{p:g}" for p in pen)])
         for k, (acc, ins, pen) in ((k, zip(*v)) for k, v in rows.items())])
    gain = np.array([m[0] for m in rows["masked (annotation CV)"]]) - np.array(
        [p[0] for p in rows["plain"]])
    over = np.array([m[0] for m in rows["masked (annotation CV)"]]) - np.array(
        [c[0] for c in rows["decoy-free"]])
    lines += ["", f"Masked minus plain accuracy: {_fmt(gain)}; masked minus decoy-free: "
              f"{_fmt(over)} (paired over seeds).", ""]
    if CT_DIR.is_dir():
        ct_rows = {}
        chosen = []
        for seed in args.ct_seeds:
            res = ct_study(seed, epochs=args.ct_epochs, penalties=args.ct_penalties,
                           n_samples=40 if args.quick else 400)
            chosen.append(res.pop("chosen penalty"))
            print(f"ct seed {seed}: " + ", ".join(
                f"{k}: acc {a:.3f} inside {i:.3f} auc {u:.3f}" for k, (a, i, u) in res.items()))
            for k, v in res.items():
                ct_rows.setdefault(k, []).append(v)
        lines += _list_table(
            f"CT organs (4 real slices, jittered; lesion inside the largest organ, "
            f"corner marker in training; image CNN, {args.ct_epochs} epochs): "
            f"{len(args.ct_seeds)} seeds ({' '.join(map(str, args.ct_seeds))}), "
            f"penalties {args.ct_penalties}, chosen {' '.join(f'{p:g}' for p in chosen)}.",
            ["training", "test accuracy", "relevance share inside the organ",
             "organ-mask ROC-AUC"],
            [(k, [_fmt(c) for c in zip(*v)]) for k, v in ct_rows.items()])
        lines.append("")
    else:
        print(_CT_SKIPPED)
    table = "\n".join(lines)
    print(table)
    print(f"total {time.perf_counter() - start:.1f} s")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.output.with_name(args.output.name + ".tmp")
        tmp.write_text(
            ".. generated by: python examples/masked_training.py "
            + " ".join(a for a in (argv if argv is not None else sys.argv[1:])) + "\n\n"
            + table + "\n")
        os.replace(tmp, args.output)
    sklearn.set_config(enable_metadata_routing=False)
    return rows


if __name__ == "__main__":
    main()
