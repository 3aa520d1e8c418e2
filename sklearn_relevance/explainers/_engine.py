"""Private machinery shared by the gradient-family and perturbation explainers.

* :func:`expanded_chunks` splits an expanded batch (``k`` copies of ``n``
  samples: IG steps, SmoothGrad samples, occlusion windows) into chunks of at
  most ``max_rows`` rows, copies outermost, so that every chunk is a block of
  ``(copies, samples)`` evaluated in one forward / backward pass.
* :func:`max_rows_for` turns ``internal_batch_size`` (or the memory budget of
  :mod:`sklearn_relevance._batching`) into that row bound.
* :func:`slice_target` (with ``_base.repeat_target``) index per-sample targets the
  same way the rows are laid out.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .._batching import sample_nbytes
from .._inference import cpu_pass_budget

#: Default budget, in bytes, for the *inputs* of one expanded pass of an
#: explainer. Activations kept for the backward pass of a CNN take tens of
#: times more, so this is smaller than the batching module's general budget.
EXPLAIN_MEMORY_BUDGET = 8 * 2**20

#: On the CPU, passes are fastest when their activations stay in cache: for a
#: 64 x 64 CNN, 64-row passes ran IG 1.45x and occlusion 2.3x faster than
#: 2,048-row ones (one thread; ``benchmarks/bench_explainers.py``).
CPU_EXPLAIN_BUDGET = 2**20


def max_rows_for(X, internal_batch_size, budget=EXPLAIN_MEMORY_BUDGET, module=None) -> int:
    """Rows of one expanded pass: ``internal_batch_size``, else from a budget.

    ``budget`` applies on accelerators; on the CPU the smaller
    :data:`CPU_EXPLAIN_BUDGET` does, whatever ``budget`` says, or
    :data:`~sklearn_relevance._inference.CHANNELS_LAST_CPU_BUDGET` for a
    ``module`` with channels-last convolutions.
    """
    if internal_batch_size is not None:
        return max(int(internal_batch_size), 1)
    tensors = list(X.values()) if isinstance(X, Mapping) else [X]
    if all(t.device.type == "cpu" for t in tensors):
        budget = cpu_pass_budget(module, min(budget, CPU_EXPLAIN_BUDGET))
    return max(budget // max(sample_nbytes(X), 1), 1)


def expanded_chunks(n: int, k: int, max_rows: int):
    """Yield ``(copies, samples)`` slice pairs covering ``k`` copies of ``n`` samples.

    Copies are the outer loop: when all ``n`` samples fit, a chunk holds
    ``max_rows // n`` whole copies of the batch; otherwise one copy of
    ``max_rows`` samples. Each chunk has at most ``max(max_rows, 1)`` rows.
    """
    if n <= max_rows:
        step = max(max_rows // n, 1)
        for c0 in range(0, k, step):
            yield slice(c0, min(c0 + step, k)), slice(0, n)
    else:
        for c0 in range(k):
            for s0 in range(0, n, max_rows):
                yield slice(c0, c0 + 1), slice(s0, min(s0 + max_rows, n))


def slice_target(target, samples: slice):
    """The part of a per-sample target for a slice of the samples."""
    if torch.is_tensor(target) and target.ndim >= 1:
        return target[samples]
    if isinstance(target, (list, tuple)):
        return torch.as_tensor(target)[samples]
    return target


def stack_rows(parts):
    """``(copies, n, ...)`` -> ``(copies * n, ...)`` for a tensor or a dict."""
    if isinstance(parts, Mapping):
        return {k: v.reshape(-1, *v.shape[2:]) for k, v in parts.items()}
    return parts.reshape(-1, *parts.shape[2:])


def unstack_rows(rows, copies: int):
    """``(copies * n, ...)`` -> ``(copies, n, ...)`` for a tensor or a dict."""
    if isinstance(rows, Mapping):
        return {k: v.reshape(copies, -1, *v.shape[1:]) for k, v in rows.items()}
    return rows.reshape(copies, -1, *rows.shape[1:])
