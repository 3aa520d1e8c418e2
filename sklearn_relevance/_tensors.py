"""Tensor and dict-of-tensor helpers shared by explainers, penalties and metrics.

The ground floor of the package: an input batch ``X`` is a floating tensor or
a dict of floating tensors (the module is then called as ``module(**X)``, as
skorch does). These helpers walk that structure, call a module on it, pick
one output per sample and take gradients with respect to the inputs, with
the library's error messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch

from ._targets import check_target
from ._module_calls import in_place_input_errors, single_output

__all__ = [
    "check_inputs",
    "check_module_input",
    "close_to_scale",
    "flatten_inputs",
    "forward",
    "gradient_wrt_inputs",
    "input_gradient",
    "map_inputs",
    "module_errors",
    "no_dependence_error",
    "select_output",
]


def flatten_inputs(X):
    """Return ``(tensors, rebuild)`` for a tensor or a dict of tensors."""
    if isinstance(X, Mapping):
        keys = list(X.keys())

        def rebuild(parts):
            return dict(zip(keys, parts))

        return [X[k] for k in keys], rebuild
    return [X], lambda parts: parts[0]


def map_inputs(fn, *Xs):
    """Apply ``fn`` leaf-wise over tensors or dicts of tensors of one structure."""
    if isinstance(Xs[0], Mapping):
        return {k: fn(*(X[k] for X in Xs)) for k in Xs[0]}
    return fn(*Xs)


def forward(module, X):
    """Call ``module`` on a tensor, or on a dict of tensors as keyword arguments."""
    if isinstance(X, Mapping):
        return module(**X)
    return module(X)


def close_to_scale(got, want, rtol):
    """Whether two tensors have one shape and differ by at most ``rtol`` of
    ``want``'s largest magnitude (how rewritten copies of a network are
    checked against it: float rounding differs, not more)."""
    if not (torch.is_tensor(got) and torch.is_tensor(want) and got.shape == want.shape):
        return False
    scale = float(want.abs().max()) if want.numel() else 0.0
    return bool(torch.allclose(got, want, rtol=0.0, atol=rtol * max(scale, 1e-12)))


def select_output(out, target):
    """Pick one output per sample: ``out[i, target[i]]``.

    Parameters
    ----------
    out : Tensor of shape (n,) or (n, k)
        Module output (logits). A tuple output uses its first element.
    target : None, int or LongTensor of shape (n,)
        Output column per sample. ``None`` is allowed for single-output
        modules (regression) only.

    Returns
    -------
    Tensor of shape (n,)
    """
    out = single_output(out)  # a tuple's first element; dict, list: TypeError
    n = out.shape[0]
    target = check_target(target, n)
    if out.ndim == 1:
        if not (target is None or (isinstance(target, int) and target == 0) or (
            torch.is_tensor(target) and bool((target == 0).all())
        )):
            raise ValueError(
                "The 'target' parameter must be None or 0 for a module with a "
                f"single output. Got {_describe(target)} instead."
            )
        return out
    out = out.reshape(n, -1)
    k = out.shape[1]
    if target is None:
        if k == 1:
            return out[:, 0]
        raise ValueError(
            f"The 'target' parameter is required for a module with {k} outputs "
            "(an int or one class index per sample). Got None instead."
        )
    if isinstance(target, int):
        t = target
        if not -k <= t < k:
            raise ValueError(
                f"The 'target' parameter must be a class index in [0, {k}). "
                f"Got {t} instead."
            )
        return out[:, t]
    target = target.to(out.device)
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= k):
        raise ValueError(
            f"The 'target' parameter must hold class indices in [0, {k}). "
            f"Got values in [{int(target.min())}, {int(target.max())}] instead."
        )
    return out.gather(1, target[:, None])[:, 0]


def _describe(value):
    if torch.is_tensor(value):
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)

def check_inputs(X, name: str = "X"):
    """Validate that X is a floating tensor (or a dict of them) and return it."""
    if isinstance(X, Mapping):
        if not X:
            raise ValueError(f"The '{name}' parameter must not be an empty dict.")
        lengths = {k: v.shape[0] for k, v in X.items() if torch.is_tensor(v)}
        for key, value in X.items():
            check_inputs(value, name=f"{name}[{key!r}]")
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"All modalities of '{name}' must hold the same number of samples. "
                f"Got {lengths} instead."
            )
        return X
    if not torch.is_tensor(X):
        raise ValueError(
            f"The '{name}' parameter must be a torch.Tensor. Got "
            f"{type(X).__name__} instead."
        )
    if not torch.is_floating_point(X):
        raise ValueError(
            f"The '{name}' parameter must be a floating point tensor. Got dtype "
            f"{X.dtype} instead."
        )
    if X.ndim < 2:
        raise ValueError(
            f"The '{name}' parameter must have a batch axis and at least one "
            f"feature axis. Got shape {tuple(X.shape)} instead."
        )
    return X


def input_gradient(module, X, target=None, *, create_graph=False):
    """Gradient of the selected output with respect to the input(s).

    Parameters
    ----------
    module : torch.nn.Module
    X : Tensor or dict of Tensors
        Input batch. A tensor that already requires grad is differentiated
        as is (so the result stays connected to its graph); others are
        detached and made to require grad.
    target : None, int or LongTensor
        See :func:`select_output`.
    create_graph : bool, default=False
        Keep the graph of the gradient so it can itself be differentiated
        (double backpropagation).

    Returns
    -------
    Tensor or dict of Tensors, the structure of ``X``.
    """
    tensors, rebuild = flatten_inputs(X)
    tensors = [t if t.requires_grad else t.detach().requires_grad_(True) for t in tensors]
    with torch.enable_grad():
        out = forward(module, rebuild(tensors))
        score = select_output(out, target).sum()
        grads = gradient_wrt_inputs(score, tensors, module, create_graph=create_graph)
    return rebuild(grads)


def no_dependence_error(module):
    """The error for a module whose output is not differentiable in ``X``."""
    name = "the module" if module is None else type(module).__name__
    return ValueError(
        f"The output of {name} does not depend on X through "
        "autograd (a detach(), an argmax or an integer cast in its forward?): "
        "every gradient with respect to X is missing, so the relevance would be "
        "all zero (and a relevance penalty 0). Explain a module whose output is "
        "differentiable with respect to X."
    )


def gradient_wrt_inputs(score, tensors, module, *, create_graph=False,
                        retain_graph=None):
    """Gradients of a scalar ``score`` with respect to input ``tensors``.

    Raises ``ValueError`` when ``score`` is not connected to any of the
    tensors (the module's output does not depend on ``X``), instead of
    returning all-zero relevance. A tensor the score does not reach (one
    unused modality) gets zeros.

    Parameters
    ----------
    score : Tensor
        Scalar output.
    tensors : list of Tensor
        Inputs that require grad.
    module : torch.nn.Module
        Named in the error message.
    create_graph, retain_graph : bool
        As ``torch.autograd.grad``.

    Returns
    -------
    list of Tensor
    """
    if not score.requires_grad:
        raise no_dependence_error(module)
    grads = torch.autograd.grad(score, tensors, create_graph=create_graph,
                                retain_graph=retain_graph, allow_unused=True)
    if all(g is None for g in grads):
        raise no_dependence_error(module)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, tensors)]

# substrings of torch's messages for inputs whose shape does not fit a layer
_SHAPE_ERRORS = (
    "shape", "size", "mat1 and mat2", "Expected", "expected input", "channels",
    "must match", "dimension",
)


def check_module_input(module, X):
    """Compare ``X`` with a module's declared ``input_shape`` (library modules)."""
    expected = getattr(module, "input_shape", None)
    if expected is None:
        return
    if isinstance(X, Mapping) != isinstance(expected, Mapping):
        got = f"a dict with keys {sorted(X)}" if isinstance(X, Mapping) else "a tensor"
        raise ValueError(
            f"The 'X' parameter does not match the module {type(module).__name__}, "
            f"which takes input_shape={expected!r}. Got {got} instead."
        )
    tensors, _ = flatten_inputs(X)
    shapes = [tuple(t.shape[1:]) for t in tensors]
    want = list(expected.values()) if isinstance(expected, Mapping) else [expected]
    if [tuple(s) for s in want] != shapes:
        got = shapes[0] if len(shapes) == 1 else shapes
        raise ValueError(
            f"The 'X' parameter does not match the module {type(module).__name__}, "
            f"which takes samples of shape {expected!r}. Got samples of shape "
            f"{got} instead."
        )


@contextlib.contextmanager
def module_errors(X):
    """Report a module that cannot take ``X`` as a ``ValueError`` naming ``X``."""
    try:
        with in_place_input_errors(None):
            yield
    except RuntimeError as exc:
        msg = str(exc)
        if not any(s in msg for s in _SHAPE_ERRORS) or "backward" in msg:
            raise
        tensors, _ = flatten_inputs(X)
        shapes = [tuple(t.shape) for t in tensors]
        raise ValueError(
            "The 'X' parameter does not match the module. Got X of shape "
            f"{shapes[0] if len(shapes) == 1 else shapes}; the module raised: {msg}"
        ) from exc
