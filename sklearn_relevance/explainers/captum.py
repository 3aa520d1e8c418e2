"""Any captum attribution method behind the explainer interface (optional)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from numbers import Real

import torch

from .._optional import require
from .._tensors import (
    check_module_input,
    forward,
    module_errors,
    no_dependence_error,
    select_output,
)
from ._base import BaseExplainer
from .cam import find_layer, upsample_to_input

__all__ = ["CaptumExplainer"]

# torch's messages for outputs that autograd cannot trace back to the inputs
_NO_GRAPH = ("does not require grad", "appears to not have been used in the graph")


def _import_captum_attr():
    return require("captum.attr", owner="CaptumExplainer")


class CaptumExplainer(BaseExplainer):
    """Wrap a captum attribution method as an explainer.

    captum is imported on first use; an ``ImportError`` naming the package is
    raised when it is missing.

    Parameters
    ----------
    attribution_class : str, class or callable
        A captum attribution class or its name in ``captum.attr`` (e.g.
        ``"DeepLift"``, ``"LayerGradCam"``), or any callable taking the
        forward function and returning an object with ``attribute`` (e.g.
        ``lambda f: NoiseTunnel(Saliency(f))``).
    **kwargs
        Keyword arguments for the class's constructor (those its
        ``__init__`` accepts, e.g. ``layer`` given as a dotted name or a
        submodule) and the rest for ``attribute`` (e.g. ``n_steps``,
        ``baselines``, ``nt_type``). They are parameters of this object
        (``get_params`` / ``set_params`` / ``clone``).

    Notes
    -----
    The wrapped attribution is rebuilt at every call and is not
    differentiable (captum issue #361): ``CaptumExplainer`` cannot be a
    training penalty's explainer. A layer attribution of shape
    ``(n, c, *spatial)`` is upsampled to the input like :class:`GradCAM`
    (``interpolate_mode`` picks the mode, default ``"auto"``).

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import CaptumExplainer
    >>> module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
    ...                              torch.nn.Linear(4, 2))
    >>> explainer = CaptumExplainer("IntegratedGradients", n_steps=16)
    >>> explainer.explain(module, torch.randn(5, 3), target=1).shape
    torch.Size([5, 3])
    >>> explainer.get_params()["n_steps"]
    16
    """

    differentiable = False

    def __init__(self, attribution_class, **kwargs):
        self.attribution_class = attribution_class
        self._kwarg_names = sorted(kwargs)
        for key, value in kwargs.items():
            setattr(self, key, value)

    def get_params(self, deep=True):
        """Parameters: ``attribution_class`` and the keyword arguments.

        Parameters
        ----------
        deep : bool, default=True
            Unused (kept for scikit-learn's signature).

        Returns
        -------
        dict
        """
        params = {"attribution_class": self.attribution_class}
        params.update({k: getattr(self, k) for k in self._kwarg_names})
        return params

    def _resolve_class(self):
        cls = self.attribution_class
        if isinstance(cls, str):
            captum_attr = _import_captum_attr()
            if not hasattr(captum_attr, cls):
                raise ValueError(
                    "The 'attribution_class' parameter of CaptumExplainer must name a "
                    f"class of captum.attr. Got {cls!r} instead."
                )
            return getattr(captum_attr, cls)
        if not callable(cls):
            raise ValueError(
                "The 'attribution_class' parameter of CaptumExplainer must be a str, "
                f"a class or a callable. Got {type(cls).__name__} instead."
            )
        _import_captum_attr()
        return cls

    def _split_kwargs(self, cls, module):
        kwargs = {k: getattr(self, k) for k in self._kwarg_names}
        mode = kwargs.pop("interpolate_mode", "auto")
        try:
            init_names = set(inspect.signature(cls).parameters)
        except (TypeError, ValueError):
            init_names = set()
        init = {k: kwargs.pop(k) for k in list(kwargs) if k in init_names}
        if "layer" in init and not isinstance(init["layer"], (list, tuple)):
            init["layer"] = find_layer(module, init["layer"])[1]
        return init, kwargs, mode

    def _explain(self, module, X, target, *, create_graph):
        cls = self._resolve_class()
        check_module_input(module, X)
        if isinstance(X, Mapping):
            keys = list(X)
            inputs = tuple(X[k] for k in keys)

            def forward_func(*tensors):
                return module(**dict(zip(keys, tensors)))
        else:
            inputs = X
            forward_func = module
        with torch.no_grad(), module_errors(X):  # validates the target, cheaply
            probe = {k: v[:1] for k, v in X.items()} if isinstance(X, Mapping) else X[:1]
            out = forward(module, probe)
        if torch.is_tensor(target) and target.ndim >= 1:
            select_output(out.expand(len(target), *out.shape[1:]), target.to(out.device))
        else:
            select_output(out, target)
        init, attribute_kwargs, mode = self._split_kwargs(cls, module)
        _check_finite_baselines(attribute_kwargs.get("baselines"))
        method = cls(forward_func, **init)
        try:
            with module_errors(X):
                attr = method.attribute(inputs, target=target, **attribute_kwargs)
        except RuntimeError as exc:
            if any(s in str(exc) for s in _NO_GRAPH):
                raise no_dependence_error(module) from exc
            raise
        if isinstance(attr, tuple) and len(attr) == 2 and attribute_kwargs.get(
                "return_convergence_delta"):
            attr = attr[0]
        if isinstance(X, Mapping):
            return dict(zip(keys, attr))
        if tuple(attr.shape) != tuple(X.shape) and attr.ndim == X.ndim:
            attr = upsample_to_input(attr, X, mode)
        return attr.detach()


def _check_finite_baselines(baselines):
    """Refuse captum ``baselines`` (a number, a tensor or a tuple) with NaN or inf."""
    parts = baselines if isinstance(baselines, tuple) else (baselines,)
    for part in parts:
        if isinstance(part, Real) and not isinstance(part, bool):
            values = torch.as_tensor(float(part))
        elif torch.is_tensor(part) and part.is_floating_point():
            values = part.detach()
        else:
            continue
        if not bool(torch.isfinite(values).all()):
            got = "NaN" if bool(torch.isnan(values).any()) else "infinity"
            raise ValueError(
                "The 'baselines' parameter of CaptumExplainer must hold finite values. "
                f"Got a baseline containing {got} instead."
            )
