"""Complexity of relevance maps: how concentrated the relevance is."""

from __future__ import annotations

import numpy as np
import torch

from .._validation import as_batch
from ._checks import nan_where, to_numpy

__all__ = ["sparseness"]


def sparseness(relevance):
    r"""Gini index of the absolute relevance, per sample.

    Chalasani et al. (2020), "Concise explanations of neural networks using
    adversarial training", as ``quantus.Sparseness``: with
    :math:`a_{(1)} \le \dots \le a_{(F)}` the sorted :math:`|R_i|`,

    .. math:: G = \frac{\sum_{i=1}^{F} (2i - F - 1)\, a_{(i)}}{F \sum_i a_{(i)}}

    1 when all relevance sits on one feature, 0 when it is spread evenly
    (a constant map). Higher is sparser; use it to check that relevance
    regularisation concentrates attributions.

    Parameters
    ----------
    relevance : array-like or Tensor of shape (n_samples, ...)
        Relevance maps; the sign is ignored.

    Returns
    -------
    ndarray of shape (n_samples,)
        Gini index in [0, 1 - 1/F]; NaN (with a warning) for all-zero maps.
        quantus adds 1e-7 to every value and so returns about 0 there; values
        otherwise agree with it to about 1e-7.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.metrics import sparseness
    >>> sparseness(np.array([[0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    array([0.75, 0.  ])
    """
    a = as_batch(relevance, "relevance")
    a = a.reshape(a.shape[0], -1).abs().to(torch.float64)
    F = a.shape[1]
    s = torch.from_numpy(np.sort(a.numpy(), axis=1)) if a.device.type == "cpu" else (
        torch.sort(a, dim=1).values)
    w = 2 * torch.arange(1, F + 1, device=a.device, dtype=a.dtype) - F - 1
    total = s.sum(1)
    zero = (total == 0).cpu().numpy()
    gini = (s * w).sum(1) / (F * torch.where(total == 0, 1.0, total))
    return nan_where(to_numpy(gini), zero, "sparseness", "relevance is zero everywhere")
