"""Base class and the registry of explainers.

Every explainer is a small scikit-learn-style object: its ``__init__`` only
stores parameters (so ``get_params`` / ``set_params`` / ``clone`` work, and an
estimator can be tuned with ``set_params(relevance_explainer__n_steps=64)``),
and :meth:`BaseExplainer.explain` maps ``(module, X, target)`` to a tensor of
``X``'s shape. ``X`` is a floating tensor or a dict of floating tensors (the
module is then called as ``module(**X)``, as skorch does); the result has the
same structure.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import torch
from sklearn.base import BaseEstimator

from .._batching import batch_len, index_batch, iter_slices
from .._module_access import module_access, shares_module
from .._module_calls import check_not_empty
from .._targets import check_target
from .._tensors import check_inputs, check_module_input, module_errors
from .._validation import check_finite_tensor
from .._which_network import network_decided, network_for

__all__ = [
    "BaseExplainer",
    "available_explainers",
    "get_explainer",
    "predicted_classes",
    "register_explainer",
    "wrapped_shares_module",
    "wrapped_uses_layers",
]


def predicted_classes(infer, X, module):
    """The class of largest output per sample, in passes within the memory budget.

    The forward passes hold at most as many rows as an explainer's
    forward-only pass (``MEMORY_BUDGETS["forward_pass_input"]``, sized by the
    network's activations like every explainer pass), whatever the number of
    samples explained at once. Estimators use it for ``explain(target=None)``.

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

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import predicted_classes
    >>> net = torch.nn.Linear(3, 2)
    >>> X = torch.randn(5, 3)
    >>> bool((predicted_classes(net, X, net) == net(X).argmax(1)).all())
    True
    """
    from ._engine import max_rows_for

    rows = max_rows_for(X, None, "forward_pass_input", module=module)
    parts = []
    with torch.no_grad():
        for sl in iter_slices(batch_len(X), rows):
            out = infer(index_batch(X, sl))
            out = out[0] if isinstance(out, tuple) else out
            parts.append(out.reshape(out.shape[0], -1).argmax(1))
    return torch.cat(parts)


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
        (:mod:`sklearn_relevance.inference`).
    ``copy_options``
        Rewrites that round differently which the method allows in that
        copy (keywords of :func:`~sklearn_relevance.inference.inference_copy`);
        empty by default. LRP with its default canonizers merges every
        BatchNorm into the layer before it anyway, so it allows
        ``fold_batchnorms``.
    ``shares_module``
        Whether the method only calls the network (no hooks, no change of
        it while it runs), so that calls from several threads on one module
        may run side by side; others run one at a time on a module (see
        :func:`~sklearn_relevance._module_access.module_access`).
    """

    differentiable = True
    supports_dict = True
    input_ndims = None
    uses_layers = True
    copy_options: dict = {}
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
        check_not_empty(X)
        self._check_explain(X, create_graph)
        check_module_input(module, X)
        target = check_target(target, batch_len(X))
        shared = shares_module(self)
        with module_access(module, shared=shared), module_errors(X):
            # the network is decided once, at the outermost call: the
            # inference copy where it applies (as for the estimators), the
            # module otherwise; nested explainers run on what they are given
            net = network_for(module, X, self, create_graph=create_graph)
            with network_decided():
                if net is module:
                    return self._explain(module, X, target, create_graph=create_graph)
                with module_access(net, shared=shared):
                    return self._explain(net, X, target, create_graph=create_graph)

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
