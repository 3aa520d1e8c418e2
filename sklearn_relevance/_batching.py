"""Chunking helpers shared by explainers, metrics and estimators.

Hot paths (integrated-gradient steps, SmoothGrad samples, perturbation steps)
expand a batch ``k``-fold. These helpers pick chunk sizes from a memory budget
so that the expanded batch never exceeds it, and iterate over slices of a
batch, never over single samples.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping

_MiB = 2**20

#: Every memory budget of the library, in bytes, in one table (read-only; the
#: modules that use a budget name it here, and their comments say how it was
#: measured). Explicit ``batch_size`` / ``internal_batch_size`` arguments
#: override the budgets call by call.
_BUDGET_TABLE = {
    # array work outside network passes: imzML chunks and lazy reads, and the
    # default of ``chunk_size_for``
    "array_work": 256 * _MiB,
    # working set of one vectorised imzML binning pass (stays in cache)
    "binning_pass": 8 * _MiB,
    # the largest image ``IMSData.image`` allocates (a malformed coordinate of
    # 10^9 is refused before allocating): 16,384^2 float32 pixels
    "ims_image": 1024 * _MiB,
    # float64 work arrays of XRAI's greedy region selection, per chunk
    "xrai_work": 64 * _MiB,
    # inputs of one expanded explainer pass (caps dense networks, whose
    # activations are small next to their input)
    "explain_pass_input": 8 * _MiB,
    # inputs of one forward-only pass (occlusion, the predicted-class pass):
    # no activations are kept for a backward
    "forward_pass_input": 32 * _MiB,
    # inputs of one explainer pass on the CPU where activations cannot be
    # measured (modules in training mode, a failed probe)
    "explain_pass_input_cpu": 1 * _MiB,
    # activations (plus gradients in flight) of one explainer pass
    "pass_activations_cpu": 128 * _MiB,
    "pass_activations_accelerator": 1024 * _MiB,
    # the most one gradient pass may take so that it holds activations of at
    # least ``WEIGHT_SHARE`` times the network's weights (explainers/_engine)
    "pass_activations_weights": 512 * _MiB,
    # inputs of one perturbation-curve forward on the CPU
    "curve_pass_input_cpu": 1 * _MiB,
    # inputs of one CPU pass through a channels-last inference copy
    "channels_last_pass_input_cpu": _MiB // 4,
    # activations of an ``explain`` call from which estimators explain on
    # their inference copy
    "inference_copy_min_activations": 8 * _MiB,
}
MEMORY_BUDGETS = types.MappingProxyType(_BUDGET_TABLE)

#: Default memory budget, in bytes, for array work (``MEMORY_BUDGETS["array_work"]``).
DEFAULT_MEMORY_BUDGET = MEMORY_BUDGETS["array_work"]


def budget_bytes(budget) -> int:
    """Bytes of a budget given by its name in :data:`MEMORY_BUDGETS` (read at
    call time) or as a number of bytes."""
    if isinstance(budget, str):
        return int(_BUDGET_TABLE[budget])
    return int(budget)


def pass_rows(input_row_bytes, input_budget, *, multiplier=1, internal_batch_size=None,
              row_bytes=None, pass_budget=None, wanted_rows=None,
              wanted_budget=None) -> int:
    """The one sizing rule: rows (samples before a ``multiplier``-fold
    expansion) of one pass.

    * ``internal_batch_size`` given: that many expanded rows (captum's
      meaning), ``internal_batch_size // multiplier`` samples;
    * else at most ``input_budget`` bytes of inputs (``input_row_bytes`` a
      row) and, where the pass's memory per row was measured
      (``row_bytes``), at most ``pass_budget`` bytes of it; at least
      ``min(wanted_rows, wanted_budget // row_bytes)`` rows where asked (a
      gradient pass that should use its weights well), within the input
      budget;
    * never fewer than one.

    Budgets are names of :data:`MEMORY_BUDGETS` or numbers of bytes.
    """
    multiplier = max(int(multiplier), 1)
    if internal_batch_size is not None:
        return max(int(internal_batch_size) // multiplier, 1)
    cap = budget_bytes(input_budget) // max(int(input_row_bytes), 1)
    rows = cap
    if row_bytes is not None:
        row = max(int(row_bytes), 1)
        rows = min(budget_bytes(pass_budget) // row, cap)
        if wanted_rows is not None:
            rows = max(rows, min(int(wanted_rows), budget_bytes(wanted_budget) // row, cap))
    return max(max(rows, 1) // multiplier, 1)


def chunk_size_for(sample_nbytes: int, multiplier: int = 1, *, batch_size=None,
                   budget="array_work") -> int:
    """Number of samples per chunk so that ``multiplier`` copies fit the budget.

    Parameters
    ----------
    sample_nbytes : int
        Bytes taken by one sample of the input.
    multiplier : int, default=1
        How many expanded copies of each sample one forward pass holds (the
        number of IG steps, SmoothGrad samples, ...).
    batch_size : int or None
        Explicit upper bound on the number of *expanded* rows of one forward
        pass (captum's ``internal_batch_size``). ``None`` uses the budget.
    budget : str or int
        Memory budget when ``batch_size`` is None: a name of
        :data:`MEMORY_BUDGETS` or bytes.

    Returns
    -------
    int
        Samples (before expansion) per chunk, at least 1 (:func:`pass_rows`
        without a measured pass).
    """
    return pass_rows(sample_nbytes, budget, multiplier=multiplier,
                     internal_batch_size=batch_size)


def iter_slices(n: int, chunk: int) -> Iterator[slice]:
    """Yield consecutive slices covering ``range(n)`` in steps of ``chunk``."""
    chunk = max(int(chunk), 1)
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def sample_nbytes(X) -> int:
    """Bytes of one sample of a tensor or of a dict of tensors."""
    if isinstance(X, Mapping):
        return sum(sample_nbytes(v) for v in X.values())
    n = X.shape[0]
    return X.element_size() * (X.numel() // max(n, 1))


def index_batch(X, idx):
    """Index a tensor or every tensor of a dict along the first axis."""
    if isinstance(X, Mapping):
        return {k: v[idx] for k, v in X.items()}
    return X[idx]


def batch_len(X) -> int:
    """Number of samples of a tensor, an array or a dict of them."""
    if isinstance(X, Mapping):
        return len(next(iter(X.values())))
    return len(X)
