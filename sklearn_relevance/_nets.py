"""Reach the torch module and device behind an estimator or a module."""

from __future__ import annotations

import torch
from sklearn.exceptions import NotFittedError


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
    if hasattr(model, "steps") and hasattr(model, "_final_estimator"):
        model = model._final_estimator
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
