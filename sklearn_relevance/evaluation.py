"""Compare attribution methods on one model: the CT evaluation study in one call.

:func:`compare_explainers` explains a batch with several explainers and scores
every map with several attribution-quality metrics (faithfulness to the model,
agreement with expert masks, sparseness), returning one row per explainer with
the mean of each metric and a bootstrap 95% interval.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._batching import chunk_size_for, sample_nbytes
from ._evaluation_checks import (
    _check_masks,
    _resolve_explainers,
    _resolve_metrics,
    _target_indices,
)
from ._evaluation_scores import (
    _compared,
    _explain,
    _explainer_params,
    _scores_on_valid,
    _summarise,
)
from ._inference import inference_copy
from ._module_access import eval_mode, module_access
from ._nets import final_input, module_and_device
from ._request import resolve_explainer
from ._validation import check_input, check_int, check_real
from .explainers import get_explainer
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
        Seeds the bootstrap, stochastic explainers without their own seed
        (SmoothGrad; also where a metric or a sanity test explains again)
        and metrics with random draws that are not given a ``random_state``
        in ``metric_params`` (one seed for every explainer, so their draws
        are paired); the same seed gives the same table.
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
    # metrics with random draws (perturbations, noise) get one seed derived
    # from random_state without drawing from it again (earlier draws unchanged)
    ctx = {"module": work, "X": Xt, "target": target_t, "masks": masks_t,
           "absolute": bool(absolute), "batch_size": batch_size, "predicted": predicted,
           "metric_seed": (explainer_seed + 1) % np.iinfo(np.int32).max}

    # ---- explain and score ---------------------------------------------------
    names = list(metric_fns)
    per_explainer, times = {}, {}
    from tqdm.auto import tqdm

    for label, explainer in tqdm(resolved.items(), desc="compare_explainers",
                                 unit="explainer", disable=not verbose):
        start = time.perf_counter()
        # one request per explainer: the network it runs on (the module or
        # its inference copy) is decided once, inside
        # a stochastic explainer without a seed is seeded once (a clone: the
        # caller's object is never changed); the maps, the metrics and the
        # sanity tests that explain again all use that one explainer
        params = _explainer_params(explainer, explainer_seed)
        explainer = resolve_explainer(explainer, params) if params else explainer
        rel = _explain(final, module, explainer, X, Xt, target_idx, chunk, {})
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
