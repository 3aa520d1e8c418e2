"""The checks of :func:`~sklearn_relevance.evaluation.compare_explainers`.

Everything is validated before any explanation runs: the explainers
(resolved by name, each applying to X's dimensionality), the metrics
(names of the registry or callables, with their parameters), the masks
(binary, X's shape) and the explained class of every sample, by the
library's one target policy (:mod:`sklearn_relevance._target_policy`).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping

import numpy as np
import torch

from ._evaluation_scores import _compared, _registered
from ._nets import module_and_device
from ._target_policy import predicted_indices
from ._targets import encode_labels
from .explainers import get_explainer


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
                    f"{sorted(_compared())} or callables. Got {spec!r} instead."
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
                f"{sorted(_compared())} or callables. Got {type(spec).__name__} instead."
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
