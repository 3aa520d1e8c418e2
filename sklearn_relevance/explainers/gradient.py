"""Gradient-family explainers: gradient (saliency), gradient x input,
integrated gradients and SmoothGrad (with SmoothGrad squared and VarGrad).

Integrated gradients and SmoothGrad expand the batch (steps or noise samples
x samples) and evaluate it in chunks of at most ``internal_batch_size`` rows,
one forward / backward pass per chunk, never a Python loop per step.
"""

from __future__ import annotations

# The explainers live in one module each; this module keeps their public
# import path (``sklearn_relevance.explainers.gradient``) and the names the
# explainer registry resolves here.
from ._integrated_gradients import IntegratedGradients, integration_steps
from ._saliency import Gradient, GradientXInput
from ._smoothgrad import SmoothGrad

__all__ = ["Gradient", "GradientXInput", "IntegratedGradients", "SmoothGrad",
           "integration_steps"]
