"""Private machinery shared by the gradient-family and perturbation explainers.

* :func:`expanded_chunks` splits an expanded batch (``k`` copies of ``n``
  samples: IG steps, SmoothGrad samples, occlusion windows) into chunks of at
  most ``max_rows`` rows, copies outermost, so that every chunk is a block of
  ``(copies, samples)`` evaluated in one forward / backward pass.
* :func:`max_rows_for` turns ``internal_batch_size``, or the memory a pass of
  the network needs per row (:func:`pass_row_bytes`, from
  :func:`~sklearn_relevance._inference.activation_bytes`, a probe forward of
  one row) and the budgets of ``_batching.MEMORY_BUDGETS``, into that row
  bound by the one sizing rule (``_batching.pass_rows``).
* :func:`slice_target` (with ``_targets.repeat_target``) index per-sample targets the
  same way the rows are laid out.
* :func:`_accumulate` and :func:`_sum_over_samples` add up the chunks' results
  per block of samples and join the blocks in sample order (integrated
  gradients, SmoothGrad).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .._batching import budget_bytes, pass_rows, sample_nbytes
from .._inference import activation_bytes, cpu_pass_budget

# Budgets are read from the one table, ``_batching.MEMORY_BUDGETS``, by
# name at call time (no module-level copies):
#
# * ``explain_pass_input`` (8 MiB): the *inputs* of one expanded pass of an
#   explainer. It caps the rows of a pass for networks whose activations are
#   small next to their input (dense networks); the activations set the
#   size of a pass otherwise.
# * ``forward_pass_input`` (32 MiB): inputs of forward-only passes
#   (occlusion, the predicted-class pass), which keep no activations for a
#   backward.
# * ``explain_pass_input_cpu`` (1 MiB): on the CPU, passes are fastest when
#   their activations stay in cache: for a 64 x 64 CNN, 64-row passes ran IG
#   1.45x and occlusion 2.3x faster than 2,048-row ones (one thread;
#   ``benchmarks/bench_explainers.py``). Used only where the activations
#   cannot be measured (modules in training mode, a failed probe).
# * ``pass_activations_cpu`` / ``pass_activations_accelerator`` (128 MiB /
#   1 GiB): one pass of an explainer, the activations it keeps for its
#   backward plus the gradients in flight, as measured per row by
#   :func:`pass_row_bytes`. On the CPU: passes of a few rows of a 224 x 224
#   ResNet or a 64^3 volume (larger passes ran no faster, and keep the
#   working set near the caches).
# * ``pass_activations_weights`` (512 MiB): a gradient pass reads every
#   weight at least twice (forward and backward) whatever its rows. Where
#   one row's activations are small next to the weights (a ResNet-18: 45 MB
#   of weights, 16 MB of activations per 224 x 224 image) a pass holds at
#   least enough rows for its activations to be ``WEIGHT_SHARE`` times the
#   weights, up to this budget: 11 rows of that ResNet instead of the 5 of
#   the activation budget alone. On 2 CPU threads integrated gradients ran
#   about 1.2x faster in 10-20-row passes than in 5-row ones there; a 64^3 3D
#   CNN, whose weights are small, keeps its 4-row passes (larger ones ran
#   1.2x slower there). The input budget still caps such passes: dense
#   networks, whose passes of about a hundred rows already use their weights
#   well, keep them (a 20,000-feature spectrum MLP gained 3% from 6,000-row
#   passes of 500 MiB).
WEIGHT_SHARE = 4


def _pass_budget(cpu):
    return "pass_activations_cpu" if cpu else "pass_activations_accelerator"


def weight_bytes(module):
    """Bytes of ``module``'s parameters (``parameters()`` gives each shared
    tensor once)."""
    return sum(p.numel() * p.element_size() for p in module.parameters())


def pass_row_bytes(module, X, *, backward=True):
    """Bytes one row of ``X`` takes in a pass of ``module``, or None.

    A gradient pass keeps its activations and holds gradients of about
    twice the largest activation in flight: ``input + kept + 2 * largest``.
    A forward-only pass holds about two consecutive activations on an
    accelerator (``input + 2 * largest``); on the CPU it is sized like a
    gradient pass, whose smaller passes stay nearer the caches.
    """
    measured = activation_bytes(module, X)
    if measured is None:
        return None
    kept, largest = measured
    row = sample_nbytes(X) + 2 * largest
    if backward or _on_cpu(X):
        row += kept
    return row


def _on_cpu(X):
    tensors = list(X.values()) if isinstance(X, Mapping) else [X]
    return all(t.device.type == "cpu" for t in tensors)


def max_rows_for(X, internal_batch_size, budget="explain_pass_input", module=None,
                 extra_row_bytes=0) -> int:
    """Rows of one expanded pass: ``internal_batch_size``, else from the budgets.

    With ``module`` given (in eval mode), a pass holds as many rows as fit
    the pass budget (``MEMORY_BUDGETS["pass_activations_cpu"]`` or
    ``["pass_activations_accelerator"]``) by :func:`pass_row_bytes`, and at
    most ``budget`` (a name of ``MEMORY_BUDGETS`` or bytes) of inputs.
    Passes run under ``torch.no_grad()`` (occlusion) are sized as
    forward-only passes. Without a measurement the input rule applies:
    ``budget`` on accelerators, ``MEMORY_BUDGETS["explain_pass_input_cpu"]``
    on the CPU (or ``["channels_last_pass_input_cpu"]`` for a channels-last
    ``module``). ``extra_row_bytes`` adds what an explainer keeps per row
    beyond the pass itself (the stem outputs of
    :mod:`sklearn_relevance._input_stem`). The arithmetic is the one sizing
    rule, :func:`~sklearn_relevance._batching.pass_rows`.
    """
    if internal_batch_size is not None:
        return pass_rows(1, budget, internal_batch_size=internal_batch_size)
    per_input = max(sample_nbytes(X), 1)
    cpu = _on_cpu(X)
    row = None if module is None else pass_row_bytes(
        module, X, backward=torch.is_grad_enabled())
    if row is None:
        if cpu:
            budget = cpu_pass_budget(module, min(budget_bytes(budget),
                                                 budget_bytes("explain_pass_input_cpu")))
        return pass_rows(per_input, budget)
    row += int(extra_row_bytes)
    wanted = None
    if torch.is_grad_enabled():
        kept = activation_bytes(module, X)[0]
        wanted = -(-WEIGHT_SHARE * weight_bytes(module) // max(kept, 1))
    rows = pass_rows(per_input, budget, row_bytes=row, pass_budget=_pass_budget(cpu),
                     wanted_rows=wanted, wanted_budget="pass_activations_weights")
    if rows == 1 and row <= budget_bytes(_pass_budget(cpu)) and _one_row_is_slow(module, X):
        return 2
    return rows


def _one_row_is_slow(module, X):
    """Whether one-row passes would put ``module``'s Conv3d layers on ATen's
    native CPU kernel: for a float32 batch of one row with few channels,
    ATen's ``use_mkldnn`` heuristic (``N * C * D * H > 20480``, written for
    2D inputs) picks its im2col convolution, about 5x slower per row than
    oneDNN's, which it picks from two rows on (a 3D CNN at 64^3: IG as slow
    as captum's). Two rows then make the pass, where one row fits the budget."""
    return (torch.is_tensor(X) and X.ndim == 5 and X.device.type == "cpu"
            and X.dtype == torch.float32
            and any(isinstance(m, torch.nn.Conv3d) for m in module.modules()))


def row_fits_budget(module, X, extra_row_bytes=0) -> bool:
    """Whether one row of a gradient pass, plus ``extra_row_bytes``, fits
    the pass budget (False where it cannot be measured).

    Explainers that could keep more per row to save time (the stem outputs
    of :mod:`sklearn_relevance._input_stem`) do so only when it fits: where a
    single row already takes the whole budget (a 128^3 volume), memory is
    what limits, and they keep to the plain passes.
    """
    row = pass_row_bytes(module, X)
    if row is None:
        return False
    return row + int(extra_row_bytes) <= budget_bytes(_pass_budget(_on_cpu(X)))


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


def _sum_over_samples(parts):
    """Concatenate per-sample-slice accumulators in sample order."""
    keys = sorted(parts)
    n_leaves = len(parts[keys[0]])
    return [torch.cat([parts[k][i] for k in keys]) for i in range(n_leaves)]


def _accumulate(parts, key, values):
    old = parts.get(key)
    parts[key] = values if old is None else [a + b for a, b in zip(old, values)]
