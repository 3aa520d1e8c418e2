"""Base class, shared autograd helpers and the registry of explainers.

Every explainer is a small scikit-learn-style object: its ``__init__`` only
stores parameters (so ``get_params`` / ``set_params`` / ``clone`` work, and an
estimator can be tuned with ``set_params(relevance_explainer__n_steps=64)``),
and :meth:`BaseExplainer.explain` maps ``(module, X, target)`` to a tensor of
``X``'s shape. ``X`` is a floating tensor or a dict of floating tensors (the
module is then called as ``module(**X)``, as skorch does); the result has the
same structure.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator

from .._batching import batch_len, index_batch, iter_slices
from .._validation import check_finite_tensor
from ._locking import frozen_batchnorm_stats, module_access, shares_module

__all__ = [
    "BaseExplainer",
    "available_explainers",
    "check_target",
    "frozen_batchnorm_stats",
    "gradient_wrt_inputs",
    "module_access",
    "predicted_classes",
    "shares_module",
    "forward",
    "get_explainer",
    "input_gradient",
    "register_explainer",
    "select_output",
]


# --------------------------------------------------------------------------
# structure helpers: a tensor or a dict of tensors
# --------------------------------------------------------------------------
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
    if isinstance(out, tuple):
        out = out[0]
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


def _target_error(got):
    return ValueError(
        "The 'target' parameter must be None, an int or integer class indices of "
        f"shape (n_samples,). Got {got} instead."
    )


def check_target(target, n=None):
    """Validate a target; return None, an int or a LongTensor of shape (n,).

    Floats, bools and arrays of more than one axis are refused, never
    truncated or flattened into class indices.

    Parameters
    ----------
    target : None, int or integer array-like of shape (n,)
    n : int or None
        The number of samples the target must cover (not checked when None).

    Returns
    -------
    None, int or LongTensor
    """
    if target is None:
        return None
    if isinstance(target, (bool, np.bool_)):
        raise _target_error(f"the bool {target!r}")
    if isinstance(target, Integral):
        return int(target)
    if isinstance(target, Real):
        raise _target_error(f"the float {target!r}")
    if not torch.is_tensor(target):
        try:
            arr = np.asarray(target)
        except (TypeError, ValueError):
            arr = np.asarray(None)
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise _target_error(f"{type(target).__name__} of dtype {arr.dtype}")
        target = torch.as_tensor(arr)
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise _target_error(f"a tensor of dtype {target.dtype}")
    if target.ndim == 0:
        return int(target)
    if target.ndim != 1:
        raise _target_error(f"an array of shape {tuple(target.shape)}")
    if n is not None and target.shape[0] != n:
        raise ValueError(
            f"The 'target' parameter must hold one class index per sample ({n}). "
            f"Got {target.shape[0]} indices instead."
        )
    return target.long()


def _describe(value):
    if torch.is_tensor(value):
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)


def repeat_target(target, copies: int):
    """Repeat a per-sample target for ``copies`` stacked copies of a batch.

    The copies are stacked copy-major, i.e. copy ``r`` of sample ``i`` sits
    at row ``r * n + i``. ``None`` and a single class index apply to every
    row and are returned unchanged; a sequence is converted to a tensor.
    """
    target = check_target(target)
    if target is None or isinstance(target, int):
        return target
    return target.repeat(copies)


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


def predicted_classes(infer, X, module):
    """The class of largest output per sample, in passes within the memory budget.

    The forward passes hold at most as many rows as an explainer's
    forward-only pass (:func:`~sklearn_relevance.explainers._engine.max_rows_for`
    with the occlusion budget), whatever the number of samples explained at
    once.

    Parameters
    ----------
    infer : callable
        Maps a batch (tensor or dict) to the module's output (logits).
    X : Tensor or dict of Tensors
    module : torch.nn.Module
        The network (its memory layout picks the CPU budget).

    Returns
    -------
    LongTensor of shape (n,)
    """
    from ._engine import EXPLAIN_MEMORY_BUDGET, max_rows_for

    rows = max_rows_for(X, None, 4 * EXPLAIN_MEMORY_BUDGET, module=module)
    parts = []
    with torch.no_grad():
        for sl in iter_slices(batch_len(X), rows):
            out = infer(index_batch(X, sl))
            out = out[0] if isinstance(out, tuple) else out
            parts.append(out.reshape(out.shape[0], -1).argmax(1))
    return torch.cat(parts)


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


# --------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------
def wrapped_uses_layers(explainer):
    """``uses_layers`` of an explainer given by name or object (for wrappers
    such as SmoothGrad and XRAI); True when it cannot be resolved."""
    try:
        return bool(getattr(get_explainer(explainer), "uses_layers", True))
    except (TypeError, ValueError):
        return True


def wrapped_shares_module(explainer):
    """``shares_module`` of an explainer given by name or object (for
    wrappers); False when it cannot be resolved."""
    try:
        return shares_module(get_explainer(explainer))
    except (TypeError, ValueError):
        return False


class BaseExplainer(BaseEstimator):
    """Base class of all attribution methods.

    Subclasses implement :meth:`_explain`. Class attributes describe what a
    method can do:

    ``differentiable``
        Whether ``create_graph=True`` yields relevance that can be trained on
        (refused as a ``relevance_explainer`` otherwise).
    ``supports_dict``
        Whether dict inputs (multimodal) are handled.
    ``input_ndims``
        The numbers of spatial axes (after batch and channel) accepted, or
        ``None`` for any input.
    ``uses_layers``
        Whether the method reads the network's inner layers (by name or by
        their activations, as Grad-CAM does). Methods that only need the
        network's input-output function and gradient say ``False``, so that
        studies (:func:`~sklearn_relevance.evaluation.compare_explainers`)
        may run them on an equivalent, faster copy of the network
        (BatchNorm folded, channels-last on the CPU).
    ``shares_module``
        Whether the method only calls the network (no hooks, no change of
        it while it runs), so that calls from several threads on one module
        may run side by side; others run one at a time on a module (see
        :func:`~sklearn_relevance.explainers._locking.module_access`).
    """

    differentiable = True
    supports_dict = True
    input_ndims = None
    uses_layers = True
    shares_module = False
    _parameter_constraints: dict = {}

    def explain(self, module, X, target=None, *, create_graph=False):
        """Attribute the selected output of ``module`` to the input ``X``.

        Parameters
        ----------
        module : torch.nn.Module
            The network; called as ``module(X)`` or ``module(**X)``.
        X : Tensor or dict of Tensors
            Floating point input batch on the module's device.
        target : None, int or LongTensor of shape (n,)
            Output column to explain, per sample.
        create_graph : bool, default=False
            Keep the graph so the relevance can be differentiated with
            respect to the module's parameters (training penalties).

        Returns
        -------
        Tensor or dict of Tensors
            Relevance of ``X``'s shape and structure.
        """
        self._validate_params()
        self._check_explain(X, create_graph)
        check_module_input(module, X)
        target = check_target(target, batch_len(X))
        with module_access(module, shared=shares_module(self)), module_errors(X):
            return self._explain(module, X, target, create_graph=create_graph)

    def _check_explain(self, X, create_graph=False):
        """Check ``X`` and ``create_graph`` against what the method supports.

        Raises ``ValueError`` before any work for non-float or mis-shaped
        input, dict input to a method without dict support, a number of
        spatial axes the method does not handle, and ``create_graph=True`` on
        a non-differentiable method.
        """
        check_inputs(X)
        check_finite_tensor(X, owner=type(self).__name__)
        if isinstance(X, Mapping) and not self.supports_dict:
            raise ValueError(
                f"{type(self).__name__} does not support dict (multimodal) inputs. "
                f"Got a dict with keys {list(X)}."
            )
        if self.input_ndims is not None and not isinstance(X, Mapping):
            spatial = X.ndim - 2
            if spatial not in self.input_ndims:
                shapes = {1: "(n, channels, L)", 2: "(n, channels, H, W)",
                          3: "(n, channels, D, H, W)"}
                accepted = " or ".join(
                    f"{k}D inputs of shape {shapes.get(k, '...')}" for k in self.input_ndims
                )
                raise ValueError(
                    f"{type(self).__name__} applies to {accepted}. Got X of shape "
                    f"{tuple(X.shape)} instead."
                )
        if create_graph and not self.differentiable:
            raise ValueError(
                f"{type(self).__name__} is not differentiable and cannot be used "
                "with create_graph=True (e.g. as a relevance_explainer for training)."
            )

    def _explain(self, module, X, target, *, create_graph):  # pragma: no cover
        raise NotImplementedError


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------
# name -> (module path relative to this package, class name, keyword arguments)
_REGISTRY: dict[str, tuple[str, str, dict]] = {
    "gradient": (".gradient", "Gradient", {}),
    "saliency": (".gradient", "Gradient", {"absolute": True}),
    "gradient_x_input": (".gradient", "GradientXInput", {}),
    "integrated_gradients": (".gradient", "IntegratedGradients", {}),
    "ig": (".gradient", "IntegratedGradients", {}),
    "smoothgrad": (".gradient", "SmoothGrad", {}),
    "smoothgrad_squared": (".gradient", "SmoothGrad", {"squared": True}),
    "vargrad": (".gradient", "SmoothGrad", {"var": True}),
    "guided_backprop": (".guided", "GuidedBackprop", {}),
    "gradcam": (".cam", "GradCAM", {}),
    "occlusion": (".perturbation", "Occlusion", {}),
    "lrp": (".lrp", "LRP", {}),
    "lrp_epsilon": (".lrp", "LRP", {"composite": "epsilon"}),
    "lrp_alpha1_beta0": (".lrp", "LRP", {"composite": "alpha1_beta0"}),
    "lrp_epsilon_plus": (".lrp", "LRP", {"composite": "epsilon_plus"}),
    "xrai": (".xrai", "XRAI", {}),
}


def register_explainer(name: str, cls, **kwargs) -> None:
    """Register ``cls(**kwargs)`` under ``name`` for :func:`get_explainer`.

    Parameters
    ----------
    name : str
        The string name users pass, e.g. as ``relevance_explainer``.
    cls : type or str
        An explainer class, or ``"package.module:ClassName"``.
    **kwargs
        Parameters the name stands for.
    """
    if isinstance(cls, str):
        mod, _, clsname = cls.partition(":")
        _REGISTRY[name] = (mod, clsname, dict(kwargs))
    else:
        _REGISTRY[name] = (cls.__module__, cls.__name__, dict(kwargs))


def available_explainers() -> list[str]:
    """Sorted list of the names :func:`get_explainer` accepts."""
    return sorted(_REGISTRY)


def get_explainer(explainer, *, param_name: str = "explainer", **params):
    """Return an explainer instance from a name or an instance.

    Parameters
    ----------
    explainer : str or explainer object
        A registered name (see :func:`available_explainers`) or an object
        with an ``explain(module, X, target, *, create_graph=False)`` method,
        which is returned unchanged when no ``params`` are given (a clone
        with ``params`` set otherwise).
    param_name : str
        Name used in error messages.
    **params
        Parameters of the explainer by name, e.g.
        ``get_explainer("integrated_gradients", n_steps=64)``; they override
        the ones a name stands for. An unknown name raises ``ValueError``
        naming it and the valid ones.

    Returns
    -------
    BaseExplainer

    Examples
    --------
    >>> from sklearn_relevance.explainers import get_explainer
    >>> get_explainer("gradient_x_input")
    GradientXInput()
    >>> get_explainer("ig", n_steps=64)
    IntegratedGradients(n_steps=64)
    """
    if isinstance(explainer, str):
        try:
            mod, clsname, kwargs = _REGISTRY[explainer]
        except KeyError:
            raise ValueError(
                f"The '{param_name}' parameter must be one of "
                f"{available_explainers()} or an explainer object. "
                f"Got {explainer!r} instead."
            ) from None
        package = __name__.rsplit(".", 1)[0] if mod.startswith(".") else None
        cls = getattr(importlib.import_module(mod, package), clsname)
        if params:
            _check_explainer_params(cls, params, repr(explainer))
        return cls(**{**kwargs, **params})
    if callable(getattr(explainer, "explain", None)):
        if not params:
            return explainer
        if not hasattr(explainer, "get_params"):
            raise ValueError(
                f"Explainer parameters {sorted(params)} were given for a "
                f"{type(explainer).__name__}, which has no get_params/set_params; "
                "set them on the object instead."
            )
        from sklearn.base import clone

        _check_explainer_params(type(explainer), params, "object")
        return clone(explainer).set_params(**params)
    raise ValueError(
        f"The '{param_name}' parameter must be a str among {available_explainers()} "
        f"or an object with an 'explain' method. Got {type(explainer).__name__} instead."
    )


def _check_explainer_params(cls, params, what):
    """Raise ``ValueError`` naming each parameter ``cls`` does not take."""
    valid = cls._get_param_names() if hasattr(cls, "_get_param_names") else []
    unknown = sorted(set(params) - set(valid))
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise ValueError(
            f"Unknown parameter {names} for the explainer {what} ({cls.__name__}). "
            f"Valid parameters are: {sorted(valid)}."
        )
