"""Checks around an estimator's training: before any work, during, after a failure.

- :func:`check_fit_params`: the extra keywords of ``fit`` / ``partial_fit``
  (skorch hands them to the module's ``forward``) are checked against
  ``forward``'s signature before any work, so a typo (``relevance_masks``)
  or a keyword the network does not take (``sample_weight``) is a clear
  error, not a ``TypeError`` from inside the first batch.
- :func:`check_step_finite` and :func:`check_parameters_finite`: training
  that diverged (a non-finite loss or weights, e.g. a learning rate far too
  large or a penalty that returns NaN) raises, naming the epoch, as
  scikit-learn's ``MLPClassifier`` does, instead of ending ``fit`` with NaN
  weights.
- :func:`forget_fit`: a fit that fails part way leaves the estimator
  unfitted (``predict`` raises ``NotFittedError``) rather than half trained.
"""

from __future__ import annotations

import difflib
import inspect
import math

import torch

__all__ = ["check_fit_params", "check_parameters_finite", "check_step_finite",
           "forget_fit"]

#: attributes a fit makes that ``predict`` and ``explain`` use
_FITTED = ("module_", "optimizer_", "criterion_", "_fit_random")


def _forward_keywords(module):
    """(names ``forward`` takes by keyword besides the input, takes **kwargs)."""
    if isinstance(module, torch.nn.Module):
        forward, bound = module.forward, True
    elif isinstance(module, type) and hasattr(module, "forward"):
        forward, bound = module.forward, False
    else:  # a callable building the module: nothing to check before it runs
        return set(), True
    try:
        params = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        return set(), True
    if not bound and params:
        params = params[1:]  # self
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return set(), True
    positional = [p for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    taken = set(p.name for p in positional[:1])  # the input X
    names = {p.name for p in params
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - taken
    return names, False


def check_fit_params(owner, module, fit_params, *, method="fit"):
    """Raise ``TypeError`` for a keyword of ``fit`` that ``module.forward`` refuses.

    Parameters
    ----------
    owner : estimator
        For the message.
    module : torch.nn.Module instance or class
        The network (or its class) that receives the keywords.
    fit_params : dict
        The extra keywords given to ``fit``.
    method : str
        ``"fit"`` or ``"partial_fit"``, for the message.
    """
    if not fit_params:
        return
    names, any_name = _forward_keywords(module)
    if any_name:
        return
    unknown = sorted(k for k in fit_params if k not in names)
    if not unknown:
        return
    name = type(owner).__name__
    known = ["relevance_mask", *sorted(names)]
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    net = getattr(module, "__name__", type(module).__name__)
    takes = (f"which takes {', '.join(repr(n) for n in sorted(names))}" if names
             else "which takes no keyword besides the input")
    raise TypeError(
        f"{name}.{method}() got unexpected keyword argument(s) {', '.join(hints)}. "
        f"{name}.{method} takes X, y and relevance_mask; other keywords go to the "
        f"module's forward ({net}.forward, {takes}). Sample weights are not supported."
    )


def _diverged(owner, epoch, what):
    return ValueError(
        f"Training of {type(owner).__name__} diverged in epoch {epoch}: {what}. "
        "The learning rate ('lr') may be too large, the input may need scaling, or "
        "the relevance penalty returned a non-finite value. The estimator is left "
        "unfitted."
    )


def _epoch(owner):
    history = getattr(owner, "history_", None)
    return len(history) if history else 1


def check_step_finite(owner, loss):
    """Raise when a training step's loss is NaN or infinite."""
    value = float(loss.detach()) if torch.is_tensor(loss) else float(loss)
    if not math.isfinite(value):
        history = getattr(owner, "history_", None)
        batch = len(history[-1]["batches"]) + 1 if history else 1
        raise _diverged(owner, _epoch(owner),
                        f"the training loss of batch {batch} is {value}")


def check_parameters_finite(owner):
    """Raise when a weight of the network is NaN or infinite (end of an epoch)."""
    module = getattr(owner, "module_", None)
    if not isinstance(module, torch.nn.Module):
        return
    for name, p in module.named_parameters():
        if p.is_floating_point() and not bool(torch.isfinite(p.detach()).all()):
            raise _diverged(owner, _epoch(owner),
                            f"the weights {name!r} hold non-finite values")


def forget_fit(owner):
    """Leave ``owner`` unfitted after a failed fit (nothing half trained is kept)."""
    state = vars(owner)
    for key in _FITTED:
        state.pop(key, None)
    state.pop("initialized_", None)  # back to the class default, False
