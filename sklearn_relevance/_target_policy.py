"""The one target policy: which output an explanation (and its metric) follows.

``target`` means the same wherever it is accepted (an estimator's
``explain``, :func:`sklearn_relevance.explain`, relevance scorers, the
perturbation metrics, :func:`~sklearn_relevance.evaluation.compare_explainers`,
:class:`~sklearn_relevance.transformers.RelevanceTransformer`):

``None`` (or ``"predicted"``)
    The class ``predict`` returns, for every sample: computed once per call
    by the very code ``predict`` runs (same forward, same batches, same
    dtype), so ``explain(X, target=None)`` and ``predict(X)`` never
    disagree, near-ties included. A single-output network (a regressor) has
    one output to explain: ``None``. For a bare ``torch.nn.Module`` the
    class is the arg-max of its output, in the module's dtype.
``"true"``
    The class of the label ``y`` (classifiers; ``y`` is required).
``int``
    That output index for every sample.
array of ints
    One output index per sample.

:func:`resolve_target` turns any of these into ``None`` (single output), an
``int`` or int64 class indices of shape ``(n,)``; callers that explain and
then score (scorers, ``compare_explainers``) resolve it once and hand the
same indices to both, so the map and its score follow one output.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch

from ._targets import encode_labels

__all__ = ["TARGET_POLICY", "resolve_target", "predicted_indices"]

#: One line for error messages and docs.
TARGET_POLICY = ("None or 'predicted' (the class predict returns), 'true' (the label "
                 "y), an int output index or an array of ints (one per sample)")


def _policy_error(owner, got):
    return ValueError(
        f"The 'target' parameter of {owner} must be {TARGET_POLICY}. Got {got} instead."
    )


def predicted_indices(model, X):
    """Class index ``predict`` returns for each sample of ``X`` (int64, (n,)).

    ``model`` is a fitted estimator of this package (its ``_predicted_indices``:
    the arg-max of ``predict_proba``, the very forward ``predict`` runs) or
    a ``torch.nn.Module`` (arg-max of its output, in passes within the
    forward-pass budget, in eval mode, in the module's dtype).
    """
    own = getattr(model, "_predicted_indices", None)
    if callable(own):
        return np.asarray(own(X), dtype=np.int64)
    if isinstance(model, torch.nn.Module):
        from ._module_access import module_access
        from .explainers import predicted_classes

        with module_access(model, shared=True, eval_mode=True):
            return predicted_classes(model, X, model).cpu().numpy().astype(np.int64)
    if hasattr(model, "predict") and hasattr(model, "classes_"):
        return encode_labels(np.asarray(model.classes_), model.predict(X))
    raise ValueError(
        f"target=None needs the predicted class, which {type(model).__name__} cannot "
        "give (no predict with classes_, not a torch module). Pass target explicitly."
    )


def resolve_target(target, *, n, n_outputs, y=None, classes=None, predicted=None,
                   regression=False, owner="explain"):
    """Apply the target policy; return ``None``, an ``int`` or int64 indices ``(n,)``.

    Parameters
    ----------
    target : None, "predicted", "true", int or array-like of int
    n : int
        Number of samples explained.
    n_outputs : int
        Outputs of the network (classes).
    y : array-like or None
        Labels, for ``"true"``.
    classes : ndarray or None
        A classifier's ``classes_`` (``None``: ``y`` holds class indices).
    predicted : callable or None
        ``() -> int64 indices (n,)``, called only when the predicted class
        is needed (at most once).
    regression : bool
        A regressor has no classes: ``None`` explains its output(s) as
        they are and ``"true"`` is refused.
    owner : str
        The caller's name, for error messages.
    """
    k = int(n_outputs)
    if target is None or (isinstance(target, str) and target == "predicted"):
        if k == 1 or regression:
            return None
        if predicted is None:
            raise ValueError(f"{owner} cannot compute the predicted class here; pass target.")
        out = np.asarray(predicted(), dtype=np.int64).reshape(-1)
        if out.shape[0] != n:
            raise ValueError(f"{owner}: {out.shape[0]} predicted classes for {n} samples.")
        return out
    if isinstance(target, str):
        if target != "true":
            raise _policy_error(owner, repr(target))
        if regression:
            raise ValueError(
                f"target='true' of {owner} applies to classifiers only (a regressor has "
                "no classes); use None for its output."
            )
        if y is None:
            raise ValueError(f"target='true' needs the true labels: pass y to {owner}.")
        if k == 1:
            return None
        idx = encode_labels(classes, y, n)
        if idx.size and (idx.min() < 0 or idx.max() >= k):
            raise ValueError(
                f"The 'y' passed to {owner} holds class indices outside [0, {k})."
            )
        return idx
    if isinstance(target, (bool, np.bool_)):
        raise _policy_error(owner, f"the bool {target!r}")
    if isinstance(target, (Integral, np.integer)):
        if not -k <= int(target) < k:
            raise ValueError(
                f"The 'target' parameter of {owner} must be an output index in "
                f"[0, {k}). Got {int(target)} instead."
            )
        return int(target) % k
    arr = np.asarray(target.detach().cpu() if torch.is_tensor(target) else target)
    if arr.ndim != 1 or arr.shape[0] != n or not np.issubdtype(arr.dtype, np.integer):
        raise _policy_error(owner, f"{type(target).__name__} of shape {arr.shape} "
                                   f"and dtype {arr.dtype} for {n} samples")
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        raise ValueError(
            f"The 'target' parameter of {owner} must hold indices in [0, {k}). "
            f"Got values in [{arr.min()}, {arr.max()}]."
        )
    return arr.astype(np.int64)
