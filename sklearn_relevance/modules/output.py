"""Pick one output of a network that returns several."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["SelectOutput", "select_module_output"]


def select_module_output(out, output, owner="SelectOutput"):
    """The tensor ``output`` names in a network's output.

    Parameters
    ----------
    out : Tensor, tuple, list or dict
        What the network returned.
    output : int, str or callable
        An index into a tuple / list, a key of a dict (or an attribute name
        of an output object such as ``transformers``' ``ModelOutput``), or a
        callable taking ``out`` and returning the tensor.
    owner : str
        Who asks (for error messages).

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules import select_module_output
    >>> select_module_output((torch.ones(2, 3), [torch.zeros(2)]), 0).shape
    torch.Size([2, 3])
    """
    if callable(output):
        got = output(out)
    elif isinstance(output, str):
        if isinstance(out, Mapping) and output in out:
            got = out[output]
        elif not isinstance(out, Mapping) and hasattr(out, output):
            got = getattr(out, output)
        else:
            keys = list(out) if isinstance(out, Mapping) else type(out).__name__
            raise ValueError(
                f"The 'output' parameter of {owner} must name an output of the "
                f"network (its keys: {keys}). Got {output!r} instead."
            )
    elif isinstance(output, int) and not isinstance(output, bool):
        if not isinstance(out, (tuple, list)) or not -len(out) <= output < len(out):
            n = len(out) if isinstance(out, (tuple, list)) else "not a tuple"
            raise ValueError(
                f"The 'output' parameter of {owner} must index the network's "
                f"tuple of outputs (length {n}). Got {output!r} instead."
            )
        got = out[output]
    else:
        raise ValueError(
            f"The 'output' parameter of {owner} must be an int, a str or a "
            f"callable. Got {type(output).__name__} instead."
        )
    if not torch.is_tensor(got):
        raise ValueError(
            f"The 'output' parameter of {owner} must select a tensor. Got "
            f"{type(got).__name__} from {output!r} instead."
        )
    return got


class SelectOutput(nn.Module):
    """A network that returns one tensor of another's tuple or dict output.

    Transformers and some MONAI networks return ``(logits, hidden_states)``
    or a dict. Wrapped, the network gives the loss, ``predict`` and every
    explainer (gradient family, IG, SmoothGrad, Grad-CAM, LRP, ...) the
    selected tensor, the classification token's logits for a ViT.

    Parameters
    ----------
    module : torch.nn.Module or class
        The network, or its class: a class is constructed with ``**kwargs``
        (so an estimator's ``module__*`` parameters reach it:
        ``module=SelectOutput, module__module=ViT, module__in_channels=1``).
    output : int, str or callable, default=0
        Which output: an index into a tuple / list, a key of a dict (or an
        attribute of an output object), or a callable ``out -> Tensor``.
    **kwargs
        Constructor arguments of ``module`` when it is a class.

    Notes
    -----
    The wrapped network's layers are named ``module.<name>`` (e.g. for
    ``GradCAM(layer="module.features.norm5")`` or LRP composites by name).

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules import SelectOutput
    >>> class TwoOutputs(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         h = self.fc(x)
    ...         return h, [h.detach()]
    >>> SelectOutput(TwoOutputs(), output=0)(torch.randn(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(self, module, output=0, **kwargs):
        super().__init__()
        if isinstance(module, type) and issubclass(module, nn.Module):
            module = module(**kwargs)
        elif kwargs:
            raise ValueError(
                "SelectOutput takes constructor arguments only with a module class. "
                f"Got an instance of {type(module).__name__} and {sorted(kwargs)}."
            )
        if not isinstance(module, nn.Module):
            raise ValueError(
                "The 'module' parameter of SelectOutput must be a torch.nn.Module "
                f"or a subclass of it. Got {type(module).__name__} instead."
            )
        if not (callable(output) or isinstance(output, (int, str))) or isinstance(
            output, bool
        ):
            raise ValueError(
                "The 'output' parameter of SelectOutput must be an int, a str or a "
                f"callable. Got {type(output).__name__} instead."
            )
        self.module = module
        self.output = output

    def forward(self, *args, **kwargs):
        return select_module_output(self.module(*args, **kwargs), self.output)
