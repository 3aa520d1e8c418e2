"""Compare attribution methods on one model: the CT evaluation study in one call.

:func:`compare_explainers` explains a batch with several explainers and scores
every map with several attribution-quality metrics (faithfulness to the model,
agreement with expert masks, sparseness), returning one row per explainer with
the mean of each metric and a bootstrap 95% interval.
"""

from __future__ import annotations

import functools
import numbers
import time
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._batching import chunk_size_for, sample_nbytes
from ._inference import inference_copy
from ._module_access import eval_mode, module_access
from ._nets import final_input, module_and_device
from ._request import ExplainRequest, resolve_explainer
from ._target_policy import predicted_indices
from ._targets import encode_labels
from ._validation import check_input, check_int, check_real
from .explainers import get_explainer
from .metrics import registered_metrics
from .metrics.sanity import check_sanity, sanity_columns

__all__ = ["compare_explainers", "DEFAULT_EXPLAINERS", "available_metrics"]

#: Explainers compared by default (the CT study's set, plus occlusion).
DEFAULT_EXPLAINERS = (
    "gradient",
    "gradient_x_input",
    "integrated_gradients",
    "smoothgrad",
    "guided_backprop",
    "gradcam",
    "occlusion",
)


_PREDICTED_ONLY = ("fidelity",)
"""Metrics scored only where the explained class is the predicted one.

Fidelity divides by the followed class's unperturbed response: where the
explained class is not the predicted one (a misclassified sample under
``target="true"``) that response can be near 0 and one sample dominates the
mean; those samples are left out (NaN), so every denominator is at least
``1 / n_classes``.
"""


def _registered(entry, params):
    """``(relevance, ctx) -> scores`` for a metric of the registry."""

    def metric(rel, ctx):
        if ctx["absolute"] and "masks" in entry.needs:
            rel = rel.abs()
        target = ctx["target"]  # class indices as numpy, whatever the device
        supplied = {"estimator": ctx["module"], "X": ctx["X"], "y": None,
                    "relevance": rel, "masks": ctx["masks"],
                    "explainer": ctx.get("explainer"),
                    "target": None if target is None else target.detach().cpu().numpy()}
        scores = entry.call(supplied, **params)
        predicted = ctx.get("predicted")
        if (entry.name in _PREDICTED_ONLY and predicted is not None
                and torch.is_tensor(target) and target.ndim):
            other = (target != predicted).detach().cpu().numpy()
            scores = np.where(other, np.nan, _as_scores(scores, rel.shape[0]))
        return scores

    return metric


def _compared():
    """``{name: RegisteredMetric}`` of the registry's metrics compared here."""
    return {m.name: m for m in registered_metrics() if m.compared}


def available_metrics():
    """Names of the metrics :func:`compare_explainers` accepts as strings.

    The metrics of :func:`~sklearn_relevance.metrics.registered_metrics`
    marked ``compared``.

    Examples
    --------
    >>> from sklearn_relevance.evaluation import available_metrics
    >>> "fidelity" in available_metrics()
    True
    """
    return sorted(_compared())


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------
def _resolve_explainers(explainers, n_spatial):
    if isinstance(explainers, (str, bytes)) or not isinstance(explainers, (Mapping, list, tuple)):
        explainers = [explainers]
    items = explainers.items() if isinstance(explainers, Mapping) else [
        (e if isinstance(e, str) else type(e).__name__, e) for e in explainers
    ]
    resolved = {}
    for label, spec in items:
        explainer = get_explainer(spec, param_name="explainers")
        ndims = getattr(explainer, "input_ndims", None)
        if ndims is not None and n_spatial not in ndims:
            raise ValueError(
                f"The explainer {label!r} ({type(explainer).__name__}) applies to inputs "
                f"with {' or '.join(map(str, ndims))} spatial axes; X has {n_spatial}. "
                "Remove it from 'explainers'."
            )
        if label in resolved:
            raise ValueError(
                f"The 'explainers' parameter of compare_explainers holds {label!r} "
                "twice; pass a dict {label: explainer} to compare variants."
            )
        resolved[str(label)] = explainer
    if not resolved:
        raise ValueError("The 'explainers' parameter of compare_explainers must not be empty.")
    return resolved


def _resolve_metrics(metrics, has_masks, n_spatial, metric_params):
    if metrics is None:
        metrics = (["fidelity", "mask_roc_auc", "mask_dice", "sparseness"] if has_masks
                   else ["fidelity", "sparseness"])
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    items = metrics.items() if isinstance(metrics, Mapping) else [
        (m if isinstance(m, str) else getattr(m, "__name__", type(m).__name__), m)
        for m in metrics
    ]
    table = _compared()
    metric_params = {} if metric_params is None else dict(metric_params)
    labels = [str(label) for label, _ in items]
    unknown = sorted(set(metric_params) - set(labels))
    if unknown or not all(isinstance(v, Mapping) for v in metric_params.values()):
        raise ValueError(
            "The 'metric_params' parameter of compare_explainers must map metric "
            f"labels among {sorted(set(labels))} to dicts of keyword arguments. Got "
            f"{metric_params!r} instead."
        )
    resolved = {}
    for label, spec in items:
        params = dict(metric_params.get(str(label), {}))
        if isinstance(spec, str):
            if spec not in table:
                raise ValueError(
                    "The 'metrics' parameter of compare_explainers must hold names among "
                    f"{available_metrics()} or callables. Got {spec!r} instead."
                )
            entry = table[spec]
            if entry.input_ndims is not None and n_spatial not in entry.input_ndims:
                raise ValueError(
                    f"The metric {spec!r} applies to inputs with "
                    f"{' or '.join(map(str, entry.input_ndims))} spatial axes; X has "
                    f"{n_spatial}. Remove it from 'metrics'."
                )
            fn, needs_masks = _registered(entry, params), "masks" in entry.needs
        elif callable(spec):
            fn, needs_masks = functools.partial(_custom_metric(spec), **params), False
        else:
            raise ValueError(
                "The 'metrics' parameter of compare_explainers must hold names among "
                f"{available_metrics()} or callables. Got {type(spec).__name__} instead."
            )
        if needs_masks and not has_masks:
            raise ValueError(
                f"The metric {label!r} compares relevance with masks: pass "
                "'masks' to compare_explainers, or drop the metric."
            )
        resolved[str(label)] = (fn, needs_masks)
    if not resolved:
        raise ValueError("The 'metrics' parameter of compare_explainers must not be empty.")
    return resolved


def _custom_metric(fn):
    def metric(rel, ctx, **params):
        return fn(rel, module=ctx["module"], X=ctx["X"], target=ctx["target"],
                  masks=ctx["masks"], **params)

    return metric


def _check_masks(masks, X):
    if masks is None:
        return None
    masks = np.asarray(masks.detach().cpu() if torch.is_tensor(masks) else masks)
    if masks.dtype != bool:
        if not np.isin(masks, (0, 1)).all():
            raise ValueError(
                "The 'masks' parameter of compare_explainers must be binary (bool or "
                "0/1). Got other values instead."
            )
        masks = masks.astype(bool)
    if masks.shape == X.shape[:1] + X.shape[2:]:  # (n, *spatial): add the channel axis
        masks = masks[:, None]
    if masks.ndim != X.ndim or masks.shape[0] != X.shape[0] or any(
        m not in (1, x) for m, x in zip(masks.shape[1:], X.shape[1:])
    ) or masks.shape[2:] != X.shape[2:]:
        raise ValueError(
            "The 'masks' parameter of compare_explainers must have X's shape "
            f"{X.shape} (or {X.shape[:1] + X.shape[2:]}). Got {masks.shape} instead."
        )
    return np.broadcast_to(masks, X.shape)


def _target_indices(final, target, y, n, n_outputs, X, Xt):
    """The explained output of each sample: None (single output) or int64
    class indices of shape (n,), by the library's one target policy
    (:mod:`sklearn_relevance._target_policy`): ``None`` is the class
    ``predict`` returns, whether or not ``y`` is given."""
    if isinstance(target, str) and target not in ("true", "predicted"):
        raise ValueError(
            "The 'target' parameter of compare_explainers must be None, 'true', "
            f"'predicted' or an int class index. Got {target!r} instead."
        )
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        if not 0 <= target < n_outputs:
            raise ValueError(
                "The 'target' parameter of compare_explainers must be a class index "
                f"in [0, {n_outputs}). Got {target} instead."
            )
        return np.full(n, int(target), dtype=np.int64)
    if target == "true":
        if y is None:
            raise ValueError("target='true' needs 'y'; pass y or target='predicted'.")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n:
            raise ValueError(
                f"The 'y' parameter of compare_explainers must hold one label per "
                f"sample ({n}). Got shape {y.shape} instead."
            )
        if n_outputs == 1:
            return None
        classes = getattr(final, "classes_", None)
        classes = np.arange(n_outputs) if classes is None else np.asarray(classes)
        try:
            return encode_labels(classes, y, n)
        except ValueError:
            raise ValueError(
                "The 'y' parameter of compare_explainers holds labels that are not "
                f"among the model's classes {list(classes)}."
            ) from None
    if y is not None:  # y is checked whenever it is given, even if not followed
        _target_indices(final, "true", y, n, n_outputs, X, Xt)
    if target is not None and target != "predicted":
        raise ValueError(
            "The 'target' parameter of compare_explainers must be None, 'true', "
            f"'predicted' or an int class index. Got {target!r} instead."
        )
    if n_outputs == 1:
        return None
    # the class predict returns: the estimator's own predict path, or the
    # module's arg-max
    model = final if callable(getattr(final, "_predicted_indices", None)) else None
    return predicted_indices(model, X) if model is not None else \
        predicted_indices(module_and_device(final)[0], Xt)


def _explainer_params(explainer, seed):
    """``{"random_state": seed}`` for a stochastic explainer without a seed."""
    params = explainer.get_params(deep=False) if hasattr(explainer, "get_params") else {}
    if "random_state" in params and params["random_state"] is None:
        return {"random_state": int(seed)}
    return {}


def _explain(final, module, explainer, X, Xt, target, chunk, params):
    """The maps of ``explainer`` for every sample, as a tensor on Xt's device.

    One explanation request per explainer: an estimator explains ``X`` as
    given (a DataFrame keeps its column names for the estimator's checks)
    through its own ``explain``; a plain torch module is explained on
    ``Xt`` by an :class:`~sklearn_relevance._request.ExplainRequest` (eval
    mode and the module's lock for the call, the network decided once:
    the module or its inference copy). The target indices are resolved once
    by the caller and shared with the metrics.
    """
    if not isinstance(final, torch.nn.Module):
        rel = final.explain(X, explainer=explainer, target=target, batch_size=chunk,
                            **params)
        return torch.as_tensor(rel, device=Xt.device)
    exp = resolve_explainer(explainer, params)
    request = ExplainRequest(module, Xt, target, exp, chunk, device=Xt.device)
    return request.run(as_numpy=False)


def _scores_on_valid(fn, rel, ctx, valid):
    """Per-sample scores, NaN where the mask is empty or full (undefined)."""
    out = np.full(rel.shape[0], np.nan)
    if valid is None:
        out[:] = _as_scores(fn(rel, ctx), rel.shape[0])
        return out
    if not valid.any():
        return out
    idx = torch.as_tensor(np.flatnonzero(valid), device=rel.device)
    sub = dict(ctx, masks=ctx["masks"][idx], X=ctx["X"][idx])
    sub["target"] = ctx["target"][idx] if torch.is_tensor(ctx["target"]) else ctx["target"]
    out[valid] = _as_scores(fn(rel[idx], sub), int(valid.sum()))
    return out


def _as_scores(values, n):
    if torch.is_tensor(values):
        values = values.detach().cpu().numpy()
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.shape[0] != n:
        raise ValueError(
            f"A metric returned {values.shape[0]} scores for {n} samples; metrics "
            "must return one score per sample."
        )
    return values


def _summarise(scores, n_bootstrap, confidence, rs):
    """Mean and interval per column of ``scores`` (n, k), NaNs ignored."""
    n = scores.shape[0]
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in scores.T])
    alpha = (1.0 - confidence) / 2
    if n_bootstrap:
        idx = rs.randint(0, n, size=(n_bootstrap, n))
        finite = np.isfinite(scores)
        vals = np.where(finite, scores, 0.0)[idx]  # (B, n, k)
        counts = finite[idx].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = vals.sum(1) / counts  # (B, k)
        low = np.array([np.nanquantile(b, alpha) if np.isfinite(b).any() else np.nan
                        for b in boot.T])
        high = np.array([np.nanquantile(b, 1 - alpha) if np.isfinite(b).any() else np.nan
                         for b in boot.T])
        return mean, low, high
    from scipy.stats import norm

    count = np.isfinite(scores).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sem = np.nanstd(scores, axis=0, ddof=1) / np.sqrt(count)
    half = norm.ppf(1 - alpha) * sem
    return mean, mean - half, mean + half


def compare_explainers(estimator, X, y=None, *, masks=None, explainers=DEFAULT_EXPLAINERS,
                       metrics=None, metric_params=None, target=None, absolute=True,
                       batch_size=None,
                       n_bootstrap=1000, confidence=0.95, return_scores=False,
                       random_state=None, verbose=0, sanity=None):
    """Score several explainers on one model with several metrics.

    Every explainer explains ``X`` (in chunks, on the model's device); every
    map is scored per sample by every metric; the table holds the mean and a
    bootstrap interval of each metric per explainer. All inputs are validated
    before any explanation runs.

    Parameters
    ----------
    estimator : fitted RelevanceNet estimator, Pipeline ending in one, or torch.nn.Module
        The model; a module must return logits (or one regression output).
        For a Pipeline, X goes through all steps but the last and the final
        step's network is explained on the result.
    X : array-like or Tensor of shape ``(n_samples, channels, *spatial)`` or ``(n_samples, n_features)``
        Inputs: images or signals, or tabular data (2D), where every
        explainer and metric applies but those that need spatial axes
        (Grad-CAM, XRAI, ``"xrai_dice"``).
    y : array-like of shape (n_samples,), default=None
        Labels, in the estimator's ``classes_`` (class indices for a module).
    masks : array-like of bool, shape of X or ``(n_samples, *spatial)``, default=None
        Ground-truth regions (lesions, organs) for the localisation metrics.
        Samples whose mask is empty or full get NaN for those metrics (e.g.
        the class-0 images of :func:`~sklearn_relevance.datasets.make_lesion_images`)
        and are left out of their means.
    explainers : list or dict, default=DEFAULT_EXPLAINERS
        Registered names (see :func:`~sklearn_relevance.explainers.available_explainers`),
        explainer objects, or a dict ``{label: name or object}``. An explainer
        that does not apply to X's dimensionality (XRAI on 3D) raises a
        ``ValueError``; the default list leaves those out itself.
    metrics : list, dict or None, default=None
        Names among :func:`available_metrics` or callables
        ``metric(relevance, *, module, X, target, masks) -> (n_samples,)``
        (tensors on the model's device; ``target`` a LongTensor of class
        indices or None). ``None`` means fidelity, mask ROC-AUC, mask Dice and
        sparseness with masks, fidelity and sparseness without. ``"xrai_dice"``
        (2D only) grows XRAI regions from each explainer's map
        (``base_attribution``) and scores their top (as many pixels as the
        mask) with Dice, the CT study's "XRAI Dice".
    metric_params : dict or None, default=None
        Keyword arguments per metric label, e.g. ``{"fidelity": {"steps": 10}}``
        (:func:`~sklearn_relevance.metrics.fidelity_score`), ``{"mask_dice":
        {"fraction": 0.05}}``, ``{"xrai_dice": {...}}`` (XRAI parameters).
    target : None, "true", "predicted" or int, default=None
        Output explained, by the library's one target policy
        (:ref:`target-policy`): ``None`` (or ``"predicted"``) the class
        ``predict`` returns, whether or not ``y`` is given (the class
        ``estimator.explain(X)`` explains); ``"true"`` the label ``y``; or
        one class index for all samples. The indices are resolved once and
        shared by every explainer and metric.
    absolute : bool, default=True
        Score ``|relevance|`` in the mask metrics (ROC-AUC, Dice, mass, rank,
        pointing game), as the CT study did; fidelity ranks signed relevance
        (positive evidence first) and sparseness takes ``|relevance|`` itself.
    batch_size : int or None, default=None
        Samples per explanation chunk and per metric forward pass; ``None``
        picks it from a memory budget.
    n_bootstrap : int, default=1000
        Bootstrap resamples of the samples for the intervals (the same
        resamples for every explainer and metric, so intervals are paired);
        0 gives normal-approximation intervals (mean +- z * sem).
    confidence : float, default=0.95
        Coverage of the intervals.
    return_scores : bool, default=False
        Also return the per-sample scores (long format).
    random_state : int, RandomState instance or None, default=None
        Seeds the bootstrap and stochastic explainers without their own seed
        (SmoothGrad); the same seed gives the same table.
    verbose : int, default=0
        ``1`` shows a progress bar over the explainers (tqdm, on stderr).
    sanity : None, True or list of str, default=None
        Randomisation tests run on every explainer's maps, each a column
        ``sanity_<test>`` holding the pass rate over samples and its
        interval: ``"mprt"`` (model parameter randomisation, cascading),
        ``"random_logit"`` and ``"data_randomisation"`` (a fitted estimator
        refitted on X with permuted y); ``True`` runs those that apply.
        Verdicts and rules: :mod:`sklearn_relevance.metrics.randomisation`.

    Returns
    -------
    table : pandas.DataFrame
        Indexed by explainer label; for every metric ``m`` the columns ``m``,
        ``m_ci_low`` and ``m_ci_high``. ``table.attrs["time_s"]`` holds the
        seconds each explainer took (explanation and metrics);
        ``table.attrs["n_scored"]`` the number of samples behind each mean
        (``{explainer: {metric: count}}``).
    scores : pandas.DataFrame, only if ``return_scores``
        Columns ``explainer``, ``sample`` and one per metric.

    Notes
    -----
    **Fidelity follows the explained class, and only where the model
    predicts it.** :func:`~sklearn_relevance.metrics.fidelity_score`
    normalises by the unperturbed probability of the class it follows. For
    a sample whose explained class is not the predicted one (a misclassified
    sample under ``target="true"``), that
    probability can be near 0 and a single sample would dominate the column
    (means of thousands on a briefly trained network). Such samples get NaN
    fidelity and are left out of its mean and interval; every remaining
    denominator is at least ``1 / n_classes``, so ``|fidelity| <=
    n_classes``. ``table.attrs["n_scored"]`` says how many samples each mean
    holds; the default (``target=None``, the predicted class) scores every
    sample.

    Each explainer runs as one explanation request
    (``sklearn_relevance/_request.py``): the network it runs on (the module
    or its faster inference copy, ``sklearn_relevance/_inference.py``) is
    decided once per explainer; explainers that read inner layers
    (``uses_layers``, e.g. Grad-CAM) and custom ones run on the network
    itself. The metrics' passes run on the inference copy where it gives
    the same outputs. The network passed in is never changed.

    A fitted estimator explains through its own
    :meth:`~sklearn_relevance.RelevanceNetClassifier.explain` (same maps as
    ``estimator.explain(X, y, explainer=..., target=...)``, run on the copy
    where it applies); the metrics are those of
    :func:`~sklearn_relevance.metrics.registered_metrics`.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.datasets import make_lesion_images
    >>> from sklearn_relevance.evaluation import compare_explainers
    >>> X, y, masks = make_lesion_images(8, shape=(16, 16), random_state=0)
    >>> module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2))
    >>> def energy_in_mask(relevance, *, module, X, target, masks):
    ...     r = relevance.abs().flatten(1)
    ...     return (r * masks.flatten(1)).sum(1) / r.sum(1)
    >>> table = compare_explainers(module, X, y, masks=masks,
    ...                            explainers=["gradient", "gradient_x_input"],
    ...                            metrics={"energy": energy_in_mask}, random_state=0)
    >>> list(table.columns)
    ['energy', 'energy_ci_low', 'energy_ci_high']
    """
    import pandas as pd

    # ---- validate everything before any work ------------------------------
    final, X = final_input(estimator, X)  # a Pipeline: its final step, X transformed
    module, device = module_and_device(final)
    X_np = check_input(X, name="X", min_ndim=2)
    if isinstance(X_np, Mapping):
        raise ValueError(
            "compare_explainers compares explainers on images or signals; dict "
            "(multimodal) X is not supported. Use sklearn_relevance.multimodal."
        )
    n = X_np.shape[0]
    masks = _check_masks(masks, X_np)
    if explainers is DEFAULT_EXPLAINERS:  # the defaults that apply to X (tabular: no Grad-CAM)
        explainers = [e for e in explainers if X_np.ndim - 2 in (
            getattr(get_explainer(e), "input_ndims", None) or (X_np.ndim - 2,))]
    resolved = _resolve_explainers(explainers, X_np.ndim - 2)
    metric_fns = _resolve_metrics(metrics, masks is not None, X_np.ndim - 2, metric_params)
    check_int(n_bootstrap, "n_bootstrap", "compare_explainers", low=0)
    check_real(confidence, "confidence", "compare_explainers", low=0, high=1,
               closed="neither")
    if batch_size is not None:
        check_int(batch_size, "batch_size", "compare_explainers", low=1)
    check_int(verbose, "verbose", "compare_explainers", low=0)
    rs = check_random_state(random_state)
    explainer_seed = rs.randint(np.iinfo(np.int32).max)
    sanity_seed = rs.randint(np.iinfo(np.int32).max) if sanity is not None else None
    Xt = torch.as_tensor(X_np, device=device)
    with eval_mode(module):
        out = module(Xt[:1])
    n_outputs = 1 if out.ndim == 1 else int(out.reshape(1, -1).shape[1])
    target_idx = _target_indices(final, target, y, n, n_outputs, X, Xt)
    sanity_tests = check_sanity(sanity, final, n_outputs, y)
    chunk = batch_size or chunk_size_for(sample_nbytes(Xt) * 64)
    predicted = None
    if n_outputs > 1:  # the class predict returns (fidelity's denominators)
        predicted = torch.as_tensor(
            target_idx if target is None or target == "predicted"
            else _target_indices(final, None, None, n, n_outputs, X, Xt), device=device)
    with eval_mode(module):
        # the metrics' thousands of passes on one network: a faster copy
        # (BatchNorm folded, channels-last on the CPU) where it gives the
        # same outputs
        work = inference_copy(module, Xt)
    target_t = None if target_idx is None else torch.as_tensor(target_idx, device=device)
    masks_t = None if masks is None else torch.as_tensor(np.array(masks, copy=True),
                                                         device=device)
    valid = None
    if masks is not None:
        flat = masks.reshape(n, -1)
        valid = flat.any(1) & ~flat.all(1)
    ctx = {"module": work, "X": Xt, "target": target_t, "masks": masks_t,
           "absolute": bool(absolute), "batch_size": batch_size, "predicted": predicted}

    # ---- explain and score ---------------------------------------------------
    names = list(metric_fns)
    per_explainer, times = {}, {}
    from tqdm.auto import tqdm

    for label, explainer in tqdm(resolved.items(), desc="compare_explainers",
                                 unit="explainer", disable=not verbose):
        start = time.perf_counter()
        # one request per explainer: the network it runs on (the module or
        # its inference copy) is decided once, inside
        rel = _explain(final, module, explainer, X, Xt, target_idx, chunk,
                       _explainer_params(explainer, explainer_seed))
        ctx["explainer"] = explainer  # for metrics that explain again
        with module_access(work, eval_mode=True):  # the metrics' passes
            cols = [_scores_on_valid(fn, rel, ctx, valid if needs else None)
                    for fn, needs in metric_fns.values()]
        sane = sanity_columns(sanity_tests, final=final, net=module, X_raw=X, X=Xt, y=y,
                              target=target_t, explainer=explainer, relevance=rel,
                              random_state=sanity_seed)
        cols += list(sane.values())
        per_explainer[label] = np.stack(cols, 1)
        times[label] = time.perf_counter() - start

    names += [f"sanity_{test}" for test in sanity_tests]

    # ---- summarise ------------------------------------------------------------
    all_scores = np.concatenate(list(per_explainer.values()), 1)  # (n, E * M)
    mean, low, high = _summarise(all_scores, n_bootstrap, confidence, rs)
    n_m = len(names)
    rows = {}
    for i, label in enumerate(per_explainer):
        row = {}
        for j, name in enumerate(names):
            c = i * n_m + j
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = mean[c], low[c], high[c]
        rows[label] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "explainer"
    table.attrs["time_s"] = times
    table.attrs["n_scored"] = {
        label: {name: int(np.isfinite(sc[:, j]).sum()) for j, name in enumerate(names)}
        for label, sc in per_explainer.items()}
    if not return_scores:
        return table
    long = pd.concat(
        [pd.DataFrame({"explainer": label, "sample": np.arange(n),
                       **{name: s[:, j] for j, name in enumerate(names)}})
         for label, s in per_explainer.items()],
        ignore_index=True,
    )
    return table, long
