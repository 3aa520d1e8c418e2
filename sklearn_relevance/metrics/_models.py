"""Reach the network, the final input and class indices behind an estimator.

Metrics and scorers accept a fitted RelevanceNet estimator, a scikit-learn
Pipeline ending in one, or a plain ``torch.nn.Module``. For a Pipeline, ``X``
is transformed by every step but the last, so the network sees (and the
relevance refers to) the final estimator's input.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from .._nets import module_and_device


def final_step(estimator):
    """``(final_estimator, transform)`` where ``transform(X)`` runs the earlier steps."""
    if hasattr(estimator, "steps") and hasattr(estimator, "_final_estimator"):
        head = estimator[:-1]
        return estimator._final_estimator, head.transform
    return estimator, None


def final_input(estimator, X):
    """``(final_estimator, X)`` with X transformed through a Pipeline's head."""
    final, transform = final_step(estimator)
    if transform is not None:
        X = transform(X)
    return final, X


def class_indices(estimator, y, n):
    """Column index of each label in ``y`` (estimator's ``classes_`` or ints)."""
    y = np.asarray(y.detach().cpu() if torch.is_tensor(y) else y).ravel()
    if y.shape[0] != n:
        raise ValueError(f"y must hold one label per sample ({n}). Got {y.shape[0]} labels.")
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                "With a torch module, y must hold class indices (ints). Got dtype "
                f"{y.dtype} instead."
            )
        return y.astype(np.int64)
    idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    unknown = classes[idx] != y
    if np.any(unknown):
        raise ValueError(f"y contains labels unknown to the estimator: "
                         f"{np.unique(y[unknown]).tolist()}")
    return idx.astype(np.int64)


@contextmanager
def eval_mode(module):
    """Put ``module`` in eval mode (and no-grad) and restore its mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


__all__ = ["module_and_device", "final_step", "final_input", "class_indices", "eval_mode"]
