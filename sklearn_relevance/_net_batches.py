"""Batches of the RelevanceNet estimators: tensors indexed a batch at a time.

The data side of :class:`~sklearn_relevance._base_net._RelevanceNetBase`:
the batch-indexed dataset its training iterator uses (``get_iterator``),
X packed with its relevance masks for skorch and unpacked again in the
steps, and a prediction batch moved to the module's device and dtype.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from skorch.dataset import Dataset, unpack_data
from skorch.utils import to_tensor

from ._batching import batch_len, index_batch
from ._masks import split_masks, with_masks
from ._stream import StreamBatches, is_streamed
from ._validation import as_torch


class _TensorBatches(torch.utils.data.Dataset):
    """A dataset of tensors indexed a whole batch at a time.

    skorch's ``Dataset`` indexes through scikit-learn's ``_safe_indexing``,
    which costs about 80 microseconds per call: more than a small network's
    step. Our estimators hand skorch tensors, so batches can be gathered with
    one tensor index each.
    """

    def __init__(self, X, y, indices=None, masks=None):
        self.X, self.y, self.indices, self.masks = X, y, indices, masks

    @classmethod
    def wrap(cls, dataset):
        """A batch-indexed view of a skorch ``Dataset`` (or a ``Subset`` of one)
        holding tensors, else None."""
        indices = None
        if isinstance(dataset, torch.utils.data.Subset):
            indices = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
            dataset = dataset.dataset
        if type(dataset) is not Dataset:
            return None
        X, masks = split_masks(dataset.X)
        y = dataset.y
        if is_streamed(X):  # out-of-core rows, read one batch at a time
            return StreamBatches(X, y, indices)
        tensors = list(X.values()) if isinstance(X, Mapping) else [X]
        if masks is not None:
            tensors += list(masks.values()) if isinstance(masks, Mapping) else [masks]
        if not all(torch.is_tensor(t) for t in tensors):
            return None
        if y is not None and not torch.is_tensor(y):
            return None
        return cls(X, y, indices, masks)

    def __len__(self):
        if self.indices is not None:
            return len(self.indices)
        return batch_len(self.X)

    def __getitem__(self, idx):
        idx = torch.as_tensor(idx, dtype=torch.long)
        if self.indices is not None:
            idx = self.indices[idx]
        Xi = index_batch(self.X, idx)
        if self.masks is not None:
            Xi = with_masks(Xi, index_batch(self.masks, idx))
        yi = torch.zeros(len(idx)) if self.y is None else self.y[idx]
        return Xi, yi


def _to_float64(out):
    return out.detach().cpu().numpy().astype(np.float64, copy=False)


def _on_device(Xi, device, dtype):
    """A batch (tensor or dict of tensors) on ``device`` in ``dtype``."""
    if isinstance(Xi, Mapping):
        return {k: _on_device(v, device, dtype) for k, v in Xi.items()}
    if not torch.is_tensor(Xi):
        Xi = to_tensor(Xi, device=device)
    if (device is not None and Xi.device != device) or (
            dtype is not None and Xi.dtype != dtype):
        Xi = Xi.to(device=device, dtype=dtype if dtype is not None else Xi.dtype)
    return Xi


def _packed(X, masks):
    """Tensors for skorch: X, or X packed with its masks (split sample-wise)."""
    X = as_torch(X)
    return X if masks is None else with_masks(X, as_torch(masks))


def _unmasked(batch):
    """A batch without the masks packed into it (for skorch's plain steps)."""
    Xi, yi = unpack_data(batch)
    Xi, mask = split_masks(Xi)
    return batch if mask is None else (Xi, yi)

