"""What a module's call must give and must not do, checked with clear errors.

- :func:`single_output`: the one output tensor explainers attribute. A
  tuple gives its first element (the library's convention); a dict, a list
  or anything else is refused with a ``TypeError`` that says what was got
  (explain a module that returns one tensor, e.g. a wrapper that picks the
  output). This is the one place where an output's structure is read, so
  that a documented way of selecting one output can be added here.
- :func:`check_not_empty`: a batch of 0 samples is refused before any work.
- :func:`in_place_input_errors`: a module that writes into its input
  (``x.mul_(2)``) cannot be differentiated with respect to that input;
  torch's "a leaf Variable that requires grad is being used in an in-place
  operation" becomes a ``ValueError`` that says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch

__all__ = ["check_not_empty", "in_place_input_errors", "single_output"]

_IN_PLACE = "a leaf Variable that requires grad is being used in an in-place operation"


def single_output(out):
    """The output tensor of a module call (first element of a tuple)."""
    if torch.is_tensor(out):
        return out
    if isinstance(out, tuple) and out and torch.is_tensor(out[0]):
        return out[0]
    if isinstance(out, Mapping):
        got = f"a dict with keys {sorted(map(str, out))}"
    elif isinstance(out, (list, tuple)):
        got = f"a {type(out).__name__} of {len(out)} element(s)"
    else:
        got = f"an object of type {type(out).__name__}"
    raise TypeError(
        "Explainers attribute one output tensor of shape (n_samples,) or "
        f"(n_samples, n_outputs), but the module returned {got}. Explain a module "
        "that returns one tensor (e.g. wrap it in a module whose forward returns "
        "the logits you want explained)."
    )


def check_not_empty(X, *, name="X"):
    """Raise ``ValueError`` for a batch of 0 samples (a tensor or a dict of them)."""
    tensors = list(X.values()) if isinstance(X, Mapping) else [X]
    for t in tensors:
        if torch.is_tensor(t) and t.ndim >= 1 and t.shape[0] == 0:
            raise ValueError(
                f"Found a batch of 0 samples (shape={tuple(t.shape)}) while a minimum "
                f"of 1 is required for '{name}'."
            )


@contextlib.contextmanager
def in_place_input_errors(module):
    """Translate torch's error for a module that writes into its input."""
    try:
        yield
    except RuntimeError as exc:
        if _IN_PLACE not in str(exc):
            raise
        name = type(module).__name__ if module is not None else "The module"
        raise ValueError(
            f"{name} writes into its input in forward (an in-place operation such as "
            "x.mul_(2) on X); relevance is a gradient with respect to the input, "
            "which torch cannot take through such a write. Use the out-of-place form "
            "(x = x * 2) in forward."
        ) from exc
