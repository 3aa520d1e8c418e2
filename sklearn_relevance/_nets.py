"""Reach the network behind an estimator, a Pipeline or a module.

The one place that looks through a scikit-learn Pipeline to its final
estimator and from an estimator to its torch module: metrics, scorers,
studies and :func:`~sklearn_relevance.explain` call these helpers.
"""

from __future__ import annotations

import torch
from sklearn.exceptions import NotFittedError


__all__ = ["final_input", "final_step", "float_dtype", "input_dtype", "is_pipeline",
           "module_and_device"]


def is_pipeline(estimator):
    """Whether ``estimator`` is a scikit-learn Pipeline (or quacks like one)."""
    return hasattr(estimator, "steps") and hasattr(estimator, "_final_estimator")


def final_step(estimator):
    """``(final_estimator, transform)`` where ``transform(X)`` runs the earlier steps.

    ``transform`` is None for anything but a Pipeline with more than one step.
    """
    if is_pipeline(estimator):
        final = estimator.steps[-1][1]
        return final, (estimator[:-1].transform if len(estimator.steps) > 1 else None)
    return estimator, None


def final_input(estimator, X):
    """``(final_estimator, X)`` with X transformed through a Pipeline's head."""
    final, transform = final_step(estimator)
    if transform is not None:
        X = transform(X)
    return final, X


def module_and_device(model):
    """Return ``(module, device)`` for a fitted estimator or a ``torch.nn.Module``.

    Parameters
    ----------
    model : fitted RelevanceNet estimator (anything with ``module_``), a
        scikit-learn Pipeline ending in one, or a ``torch.nn.Module``.

    Returns
    -------
    module : torch.nn.Module
        The network returning logits (classification) or predictions.
    device : torch.device
        Device of the module's first parameter (CPU for parameter-free modules).
    """
    model, _ = final_step(model)
    if isinstance(model, torch.nn.Module):
        module = model
    else:
        module = getattr(model, "module_", None)
        if not isinstance(module, torch.nn.Module):
            raise NotFittedError(
                f"This {type(model).__name__} instance is not fitted yet (or holds no "
                "torch module). Call 'fit' with appropriate arguments first, or pass a "
                "torch.nn.Module."
            )
    try:
        device = next(module.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    return module, device


def float_dtype(module):
    """The floating dtype of ``module``'s first floating parameter, or None."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def input_dtype(module):
    """The dtype the metrics feed ``module``: float64 for a float64 network
    (a float32 batch would fail in its first layer), else float32."""
    return torch.float64 if float_dtype(module) == torch.float64 else torch.float32
