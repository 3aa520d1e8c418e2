"""Modality importance for fusion networks, and a validation platform with ground truth.

* :func:`modality_importance` estimates how much each modality of a fitted
  multimodal network matters: the gradient of the class probability with
  respect to the post-fusion features, averaged in absolute value over
  samples, summed per modality and normalised (plus modality-level
  permutation importance and integrated gradients for comparison).
* :func:`~sklearn_relevance.datasets.make_multimodal_cases` (in
  :mod:`sklearn_relevance.datasets`, re-exported here) simulates eight
  classification cases over real images and correlated Gaussian "clinical"
  and "lab" variables whose decision functions, and hence ground-truth
  modality importances, are known.
* :func:`evaluate_importance` fits an estimator on each case and scores the
  estimated importances against ground truth (rank-biased overlap and RMSE).
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import Bunch, check_random_state

from ._batching import chunk_size_for, index_batch, iter_slices, sample_nbytes
from ._module_access import eval_mode
from ._nets import module_and_device
from ._validation import check_input, check_int, check_real, check_sample_shape
from .datasets import CASES, MODALITIES, make_multimodal_cases

__all__ = ["modality_importance", "make_multimodal_cases", "evaluate_importance"]
# make_multimodal_cases, CASES and MODALITIES live in datasets.py

METHODS = ("gradient", "permutation", "integrated_gradients")

#: Activation memory of the encoders relative to their inputs, used to size chunks.
_ENCODER_MULTIPLIER = 16


# --------------------------------------------------------------------------
# modality importance
# --------------------------------------------------------------------------
def modality_importance(estimator, X, *, method="gradient", target=None, normalize=True,
                        n_repeats=5, n_steps=32, batch_size=None, random_state=None):
    """How much each modality of a fitted fusion network drives its predictions.

    ``method="gradient"`` is the hybrid-fusion importance: the gradient of the
    explained class probability with respect to the post-fusion features
    (``module.fuse(**X)``), averaged in absolute value over samples, summed
    over each modality's columns (``module.feature_slices``) and normalised to
    sum to one. ``"integrated_gradients"`` replaces the gradient by integrated
    gradients along the straight path from the mean post-fusion features
    (zero, after the encoders' standardisation) to each sample's.
    ``"permutation"`` shuffles one modality across samples at a time and
    averages the absolute change of the explained class probability.

    All three encode the samples once, in chunks bounded by a memory budget,
    and then work on the post-fusion features with the head only; there is no
    per-sample loop.

    Parameters
    ----------
    estimator : fitted estimator or torch.nn.Module
        A fitted estimator whose ``module_`` is a fusion network, or the
        network itself: a module with ``fuse(**X)``, ``head`` and
        ``feature_slices`` (such as :class:`~sklearn_relevance.modules.FusionNet`).
    X : dict of str to array-like of shape (n_samples, ...)
        One array per modality, with the keys the network was built for.
    method : {"gradient", "permutation", "integrated_gradients"}, default="gradient"
    target : None, int or array-like of shape (n_samples,), default=None
        Class explained per sample: ``None`` explains the predicted class
        (for a fitted estimator, the class its ``predict`` returns).
        For a single-output network the output itself is explained.
    normalize : bool, default=True
        Divide by the total so that the importances sum to one.
    n_repeats : int, default=5
        Permutations per modality (``method="permutation"``).
    n_steps : int, default=32
        Integration steps (``method="integrated_gradients"``).
    batch_size : int or None, default=None
        Rows per forward pass; ``None`` sizes chunks by a memory budget.
    random_state : int, RandomState instance or None, default=None
        Seeds the permutations.

    Returns
    -------
    dict of str to float
        Importance per modality, in the order of the network's modalities.
        Should every score be zero (a constant network), each modality gets
        ``1 / n_modalities`` when normalised.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules.fusion import FusionNet
    >>> from sklearn_relevance.multimodal import modality_importance
    >>> net = FusionNet({"ct": (1, 8, 8), "clinical": (3,)}, 2).eval()
    >>> X = {"ct": torch.rand(50, 1, 8, 8), "clinical": torch.randn(50, 3)}
    >>> imp = modality_importance(net, X)
    >>> sorted(imp), round(sum(imp.values()), 6)
    (['clinical', 'ct'], 1.0)
    """
    if method not in METHODS:
        raise ValueError(
            "The 'method' parameter of modality_importance must be a str among "
            f"{set(METHODS)}. Got {method!r} instead."
        )
    owner = "modality_importance"
    n_repeats = check_int(n_repeats, "n_repeats", owner)
    n_steps = check_int(n_steps, "n_steps", owner)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", owner)
    module, device = module_and_device(estimator)
    if not (hasattr(module, "fuse") and hasattr(module, "head")
            and isinstance(getattr(module, "feature_slices", None), Mapping)):
        raise TypeError(
            "modality_importance needs a fusion network with fuse(**X), head and "
            f"feature_slices (such as FusionNet). Got {type(module).__name__} instead."
        )
    if not isinstance(X, Mapping):
        raise ValueError(
            "The 'X' parameter of modality_importance must be a dict of modalities. "
            f"Got {type(X).__name__} instead."
        )
    X = _check_modalities(X)
    if target is None and callable(getattr(estimator, "_predicted_indices", None)):
        # a fitted estimator: the class its predict returns (the library's one
        # target policy), not an arg-max of this function's own forward
        target = estimator._predicted_indices(X)
    expected = getattr(module, "input_shape", None)
    if isinstance(expected, Mapping):
        check_sample_shape(X, expected, name="X", owner=type(module).__name__)
    X = {k: torch.as_tensor(v, device=device) for k, v in X.items()}

    with eval_mode(module, no_grad=False):
        fused = _encode(module, X, batch_size)
        target = _resolve_target(module, fused, target, batch_size)
        if method == "permutation":
            scores = _permutation_scores(module, fused, target, n_repeats, batch_size,
                                         check_random_state(random_state))
        else:
            steps = 1 if method == "gradient" else n_steps
            per_feature = _path_gradient_scores(module, fused, target, steps, batch_size)
            scores = {k: float(per_feature[s].sum()) for k, s in module.feature_slices.items()}
    if normalize:
        total = sum(scores.values())
        if total > 0:
            scores = {k: v / total for k, v in scores.items()}
        else:
            scores = {k: 1.0 / len(scores) for k in scores}
    return scores


def _check_modalities(X):
    """Validate a dict of modalities, naming the key of an empty one."""
    for key, value in X.items():
        shape = tuple(getattr(value, "shape", np.shape(value)))
        if len(shape) < 2 or 0 in shape:
            raise ValueError(
                f"Modality {key!r} of 'X' must be a non-empty array of shape "
                f"(n_samples, ...). Got shape {shape} instead."
            )
    return check_input(X, name="X")


@torch.no_grad()
def _encode(module, X, batch_size):
    """Post-fusion features of every sample, computed chunk by chunk."""
    n = len(next(iter(X.values())))
    chunk = batch_size or chunk_size_for(sample_nbytes(X), _ENCODER_MULTIPLIER)
    return torch.cat([module.fuse(**index_batch(X, sl)) for sl in iter_slices(n, chunk)])


def _head_chunks(fused, multiplier, batch_size):
    return iter_slices(len(fused), chunk_size_for(
        fused[:1].numel() * fused.element_size(), multiplier, batch_size=batch_size))


def _probability(module, fused):
    """Class probabilities (softmax) or, for one output, the output itself."""
    out = module.head(fused)
    if out.ndim == 1:
        return out[:, None]
    return out.softmax(dim=1) if out.shape[1] > 1 else out


@torch.no_grad()
def _resolve_target(module, fused, target, batch_size):
    n = len(fused)
    if target is None:
        parts = [_probability(module, fused[sl]).argmax(dim=1)
                 for sl in _head_chunks(fused, 1, batch_size)]
        return torch.cat(parts)
    k = _probability(module, fused[:1]).shape[1]
    target = torch.as_tensor(np.asarray(target), device=fused.device).long().reshape(-1)
    if target.numel() == 1:
        target = target.expand(n)
    if target.numel() != n:
        raise ValueError(
            "The 'target' parameter of modality_importance must be None, an int or "
            f"one class index per sample ({n}). Got {target.numel()} indices instead."
        )
    if int(target.min()) < 0 or int(target.max()) >= k:
        raise ValueError(
            "The 'target' parameter of modality_importance must hold class indices in "
            f"[0, {k}). Got values in [{int(target.min())}, {int(target.max())}] instead."
        )
    return target


def _path_gradient_scores(module, fused, target, n_steps, batch_size):
    """Mean |attribution| per post-fusion feature: gradient (1 step) or IG."""
    total = torch.zeros(fused.shape[1], device=fused.device)
    for sl in _head_chunks(fused, n_steps, batch_size):
        h, t = fused[sl], target[sl]
        if n_steps == 1:
            path = h.detach().requires_grad_(True)
        else:
            # Riemann midpoints between the zero baseline and h, stacked step-major.
            alphas = (torch.arange(n_steps, device=h.device, dtype=h.dtype) + 0.5) / n_steps
            path = (alphas[:, None, None] * h[None]).reshape(-1, h.shape[1])
            path = path.detach().requires_grad_(True)
            t = t.repeat(n_steps)
        with torch.enable_grad():
            prob = _probability(module, path).gather(1, t[:, None]).sum()
            (grad,) = torch.autograd.grad(prob, path)
        if n_steps > 1:
            grad = grad.reshape(n_steps, len(h), -1).mean(0) * h
        total += grad.abs().sum(0)
    return (total / len(fused)).cpu().numpy()


@torch.no_grad()
def _permutation_scores(module, fused, target, n_repeats, batch_size, rng):
    """Mean |p(x) - p(x with one modality's post-fusion block shuffled)|."""
    n = len(fused)
    names = list(module.feature_slices)
    slices = list(module.feature_slices.values())
    perms = torch.as_tensor(
        np.stack([rng.permutation(n) for _ in range(n_repeats)]), device=fused.device
    )
    totals = torch.zeros(len(names), device=fused.device)
    copies = len(names) * n_repeats
    for sl in _head_chunks(fused, copies + 1, batch_size):
        h, t = fused[sl], target[sl]
        # every (modality, repeat) variant of the chunk, in one forward pass
        variants = h[None].repeat(copies, 1, 1)
        shuffled = fused[perms[:, sl]]  # (n_repeats, chunk, n_fused)
        for m, cols in enumerate(slices):
            variants[m * n_repeats:(m + 1) * n_repeats, :, cols] = shuffled[:, :, cols]
        p0 = _probability(module, h).gather(1, t[:, None])[:, 0]
        p = _probability(module, variants.reshape(-1, h.shape[1]))
        p = p.gather(1, t.repeat(copies)[:, None]).reshape(len(names), n_repeats, -1)
        totals += (p - p0).abs().mean(1).sum(1)
    return {k: float(v) / n for k, v in zip(names, totals.cpu())}


# --------------------------------------------------------------------------
# evaluation against ground truth
# --------------------------------------------------------------------------
def _tie_orders(values):
    """Every ranking (most important first) consistent with ``values`` and its ties."""
    from itertools import permutations, product

    values = np.asarray(values, float)
    groups = [np.flatnonzero(values == v) for v in sorted(set(values.tolist()), reverse=True)]
    per_group = [list(permutations(g.tolist())) for g in groups]
    return np.array([sum(combo, ()) for combo in product(*per_group)], dtype=np.int64)


def _rbo(orders_a, orders_b, p):
    from .metrics import rank_biased_overlap

    a = np.repeat(orders_a, len(orders_b), axis=0)
    b = np.tile(orders_b, (len(orders_a), 1))
    return float(np.mean(rank_biased_overlap(a, b, p=p)))


def _agreement(importance, truth, p):
    """RBO of the rankings and RMSE of the values, for two importance vectors.

    Ties cannot be won: where the ground truth (or the estimate) ties
    modalities, the RBO is the mean over every order of the tied modalities,
    so an estimate scores on a tie what any ordering of it would score.
    """
    est, ref = np.asarray(importance, float), np.asarray(truth, float)
    rmse = float(np.sqrt(np.mean((est - ref) ** 2)))
    return _rbo(_tie_orders(est), _tie_orders(ref), p), rmse


#: Random importance vectors drawn per case for the chance level.
_N_CHANCE = 2000


def _chance_levels(truth, p, rng):
    """Mean RBO / RMSE of random (flat Dirichlet) and of uniform importance vectors."""
    k = len(truth)
    draws = rng.dirichlet(np.ones(k), size=_N_CHANCE)
    ref = np.asarray(truth, float)
    order_ref = _tie_orders(ref)
    order_est = np.argsort(-draws, axis=1, kind="stable")  # no ties (continuous draws)
    rbo_random = _rbo(order_est, order_ref, p)  # mean over draws and truth's tie orders
    rmse_random = float(np.mean(np.sqrt(np.mean((draws - ref) ** 2, axis=1))))
    rbo_uniform, rmse_uniform = _agreement(np.full(k, 1.0 / k), ref, p)
    return {"rbo_random": rbo_random, "rmse_random": rmse_random,
            "rbo_uniform": rbo_uniform, "rmse_uniform": rmse_uniform}


def _default_estimator(random_state):
    from .estimators import RelevanceNetClassifier

    return RelevanceNetClassifier(
        max_epochs=15, lr=0.005, batch_size=64, optimizer=torch.optim.AdamW,
        optimizer__weight_decay=0.01, random_state=random_state,
    )


def evaluate_importance(estimator=None, cases=None, *, methods="gradient", n_samples=3000,
                        test_size=1 / 3, p=0.9, random_state=0, data_dir=None,
                        images="auto", batch_size=None, verbose=0):
    """Score modality importances against the ground truth of the simulated cases.

    For each case of :func:`make_multimodal_cases`, a clone of ``estimator``
    is fitted on the first ``1 - test_size`` of the samples; each method of
    :func:`modality_importance` is run on the held-out samples and compared
    with the ground truth by rank-biased overlap (RBO, of the rankings of the
    modalities) and by the root-mean-square error of the importances. The
    held-out samples' images are disjoint from the training images
    (``make_multimodal_cases(..., test_size=test_size)``).

    Ties cannot be won: where the ground truth ties modalities (case 5 ties
    all three, cases 1-4 and 7 tie the absent ones at 0), the RBO is the
    mean over every order of the tied modalities. Beside every score stand
    two chance levels of the same case: a *random* estimator (importance
    vectors drawn uniformly from the simplex, mean over 2,000 draws) and
    the *uniform* estimator (``1 / 3`` each). A method is informative on a
    case only where it beats both; case 5 gives every estimator the same
    RBO.

    Parameters
    ----------
    estimator : classifier accepting dict inputs, default=None
        ``None`` uses a :class:`~sklearn_relevance.RelevanceNetClassifier`
        (a :class:`~sklearn_relevance.modules.FusionNet`, 15 epochs of AdamW
        with ``lr=0.005`` and weight decay 0.01).
    cases : int or iterable of int, default=None
        Cases to run (1 to 8); ``None`` runs all eight.
    methods : str or iterable of str, default="gradient"
        Methods of :func:`modality_importance`.
    n_samples : int, default=3000
        Samples simulated per case.
    test_size : float in (0, 1), default=1/3
        Fraction of the samples held out for the importances.
    p : float in (0, 1), default=0.9
        Persistence of the rank-biased overlap.
    random_state : int, RandomState instance or None, default=0
        Seeds the simulations, the default estimator and the permutations.
    data_dir, images
        Passed to :func:`make_multimodal_cases`.
    batch_size : int or None, default=None
        Passed to :func:`modality_importance`.
    verbose : int, default=0
        ``1`` shows a progress bar over the cases (tqdm, on stderr).

    Returns
    -------
    Bunch
        ``table``: a dict of columns (``case``, ``rule``, ``method``,
        ``accuracy``, ``rbo``, ``rmse``, ``rbo_random``, ``rmse_random``,
        ``rbo_uniform``, ``rmse_uniform``, ``importance``, ``truth``), one
        row per case and method (``pandas.DataFrame(result.table)`` shows
        it); ``summary``: ``{name: {"rbo": mean, "rmse": mean}}`` over the
        cases, for every method and for the chance levels ``"random"`` and
        ``"uniform"``.

    Examples
    --------
    >>> from sklearn_relevance.multimodal import evaluate_importance
    >>> res = evaluate_importance(cases=[1], n_samples=300, images="digits")
    >>> sorted(res.summary["gradient"]), sorted(res.summary)
    (['rbo', 'rmse'], ['gradient', 'random', 'uniform'])
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    for m in methods:
        if m not in METHODS:
            raise ValueError(
                "The 'methods' parameter of evaluate_importance must hold methods among "
                f"{set(METHODS)}. Got {m!r} instead."
            )
    cases = list(CASES) if cases is None else (
        [cases] if isinstance(cases, Integral) else list(cases))
    for c in cases:
        if isinstance(c, bool) or not isinstance(c, Integral) or c not in CASES:
            raise ValueError(
                "The 'cases' parameter of evaluate_importance must hold ints in "
                f"[1, {len(CASES)}]. Got {c!r} instead."
            )
    check_real(test_size, "test_size", "evaluate_importance", low=0, high=1,
               closed="neither")
    check_real(p, "p", "evaluate_importance", low=0, high=1, closed="neither")
    check_int(verbose, "verbose", "evaluate_importance", low=0)
    from tqdm.auto import tqdm

    rng = check_random_state(random_state)
    seeds = rng.randint(2**31 - 1, size=len(CASES))
    if estimator is None:
        estimator = _default_estimator(int(seeds[0]))
    chance_keys = ("rbo_random", "rmse_random", "rbo_uniform", "rmse_uniform")
    table = {k: [] for k in ("case", "rule", "method", "accuracy", "rbo", "rmse",
                             *chance_keys, "importance", "truth")}
    for case in tqdm(cases, desc="evaluate_importance", unit="case", disable=not verbose):
        seed = int(seeds[case - 1])
        X, y, truth = make_multimodal_cases(case, n_samples, random_state=seed,
                                            data_dir=data_dir, images=images,
                                            test_size=test_size)
        n_train = n_samples - int(round(n_samples * test_size))
        train, test = slice(0, n_train), slice(n_train, n_samples)
        X_test = index_batch(X, test)
        model = clone(estimator).fit(index_batch(X, train), y[train])
        accuracy = float(model.score(X_test, y[test]))
        chance = _chance_levels(list(truth.values()), p, np.random.RandomState(seed))
        for method in methods:
            imp = modality_importance(model, X_test, method=method, random_state=seed,
                                      batch_size=batch_size)
            rbo, rmse = _agreement([imp[m] for m in truth], list(truth.values()), p)
            for key, value in (("case", case), ("rule", CASES[case][0]), ("method", method),
                               ("accuracy", accuracy), ("rbo", rbo), ("rmse", rmse),
                               *chance.items(), ("importance", imp), ("truth", truth)):
                table[key].append(value)
    summary = {}
    for method in methods:
        rows = [i for i, m in enumerate(table["method"]) if m == method]
        summary[method] = {k: float(np.mean([table[k][i] for i in rows]))
                           for k in ("rbo", "rmse")}
    first = [table["method"].index(methods[0], i) for i in range(0, len(table["case"]),
                                                                  len(methods))]
    for name in ("random", "uniform"):
        summary[name] = {k: float(np.mean([table[f"{k}_{name}"][i] for i in first]))
                         for k in ("rbo", "rmse")}
    return Bunch(table=table, summary=summary)
