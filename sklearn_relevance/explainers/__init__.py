"""Attribution methods on torch modules (extension point 1).

Every explainer has ``explain(module, X, target, *, create_graph=False)``
returning a tensor of ``X``'s shape; :func:`get_explainer` resolves the string
names used across the library (e.g. ``relevance_explainer="ig"``).
Submodules are imported on first use.
"""

from .._lazy import attach
from ._base import (
    BaseExplainer,
    available_explainers,
    get_explainer,
    predicted_classes,
    register_explainer,
)

_LAZY = {
    "Gradient": ".gradient",
    "GradientXInput": ".gradient",
    "IntegratedGradients": ".gradient",
    "SmoothGrad": ".gradient",
    "GuidedBackprop": ".guided",
    "GradCAM": ".cam",
    "Occlusion": ".perturbation",
    "LRP": ".lrp",
    "XRAI": ".xrai",
    "CaptumExplainer": ".captum",
}

__getattr__, _dir = attach(__name__, _LAZY)

__all__ = [
    "BaseExplainer",
    "available_explainers",
    "get_explainer",
    "predicted_classes",
    "register_explainer",
    *_LAZY,
]


def __dir__():
    return sorted(__all__)
