"""Per-sample relevance norms, summed or averaged over the input features.

The summed norms (``"l1"``, ``"l2"``) grow with the number of input features:
a penalty weight that keeps a 64-feature spectrum model accurate drops a
32^3 volume model to chance. The ``*_mean`` norms divide by the number of
features of the sample (for dict inputs each modality by its own count; their
means add up), so the weight is per feature; the benchmark
``benchmarks/bench_penalty_scale.py`` measures how far this equalises the
useful range across spectra, images and volumes.
"""

from __future__ import annotations

__all__ = ["feature_norm"]


def feature_norm(r, norm):
    """Norm of each row of ``r`` (shape ``(n, d)``) named by ``norm``.

    Parameters
    ----------
    r : Tensor of shape (n, d)
    norm : {"l1", "l2", "l1_mean", "l2_mean"}

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance._penalty_scale import feature_norm
    >>> feature_norm(torch.tensor([[1.0, -3.0]]), "l1_mean")
    tensor([2.])
    """
    if norm.startswith("l1"):
        out = r.abs().sum(1)
    else:
        out = r.pow(2).sum(1)
    if norm.endswith("_mean"):
        out = out / r.shape[1]
    return out
