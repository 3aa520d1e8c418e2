"""Out-of-core training input: row sources that estimators stream batch by batch.

An object with a true ``_streams_rows`` attribute, ``shape``, ``dtype``,
``ndim``, ``__len__`` and ``read(rows) -> ndarray`` (for example the lazy
``X`` of :func:`~sklearn_relevance.ims.read_imzml` with ``lazy=True``) is
accepted by ``fit``, ``partial_fit`` and ``predict`` in place of an array:
validation checks its shape and dtype without reading it, and training
reads one batch of rows at a time (:class:`StreamBatches`), so X is never
materialised. Batches are drawn by the same samplers as in-memory tensors,
so the same seed gives the same batches and the same weights.
"""

from __future__ import annotations

import numpy as np
import torch


def is_streamed(X):
    """True for row sources that estimators read batch by batch."""
    return bool(getattr(type(X), "_streams_rows", False))


def check_streamed(X, *, name="X", min_ndim=2):
    """Validate a row source's shape and dtype (nothing is read); return it."""
    shape = tuple(X.shape)
    if len(shape) < min_ndim:
        raise ValueError(
            f"Expected a {min_ndim}D array or more for '{name}' (n_samples, ...), "
            f"got a {len(shape)}D array of shape {shape} instead."
        )
    if shape[0] < 1 or any(s < 1 for s in shape[1:]):
        raise ValueError(
            f"Found array with shape {shape} for '{name}': at least one sample and "
            "one feature are required."
        )
    if np.dtype(X.dtype).kind != "f":
        raise ValueError(
            f"The '{name}' parameter must hold floating-point values. Got dtype "
            f"{np.dtype(X.dtype)} instead."
        )
    return X


def read_batch(X, rows, *, name="X"):
    """Rows of a row source as a float32 tensor; NaN or infinity raise."""
    batch = np.asarray(X.read(rows), dtype=np.float32)
    expected = (len(np.atleast_1d(rows)),) + tuple(X.shape[1:])
    if batch.shape != expected:
        # a short read would pair predictions or labels with the wrong rows
        raise ValueError(
            f"The row source '{name}' ({type(X).__name__}) returned an array of shape "
            f"{batch.shape} from read() for {expected[0]} rows; expected shape "
            f"{expected}. Its read(rows) must return exactly one row per index."
        )
    if not np.isfinite(batch).all():
        bad = int(np.flatnonzero(~np.isfinite(batch).reshape(len(batch), -1).all(1))[0])
        raise ValueError(
            f"Input '{name}' contains NaN or infinity (row {int(np.asarray(rows)[bad])} "
            "of the streamed input)."
        )
    if not batch.flags.writeable:
        batch = batch.copy()
    return torch.from_numpy(np.ascontiguousarray(batch))


class StreamBatches(torch.utils.data.Dataset):
    """Batches of a row source and its targets, one ``read`` per batch.

    Indexed with a whole list of row positions at a time (a ``BatchSampler``),
    like the in-memory tensor batches of the estimators.
    """

    def __init__(self, X, y=None, indices=None):
        self.X, self.y = X, y
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)

    def __len__(self):
        return len(self.indices) if self.indices is not None else len(self.X)

    def __getitem__(self, idx):
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        if self.indices is not None:
            idx = self.indices[idx]
        Xi = read_batch(self.X, idx)
        if self.y is None:
            return Xi, torch.zeros(len(idx))
        return Xi, self.y[torch.as_tensor(idx, dtype=torch.long)]
