"""Rewrites that plain input gradients cannot tell apart, for a split trunk.

The trunk of an :class:`~sklearn_relevance._input_stem.InputStem` serves
integrated gradients and SmoothGrad's mean of plain gradients only: no
hooks, no rules per layer. Two rewrites leave its outputs and its input
gradients unchanged (they are exact, not rounded), while they would change
what explainers that act per layer see, so they are made on the trunk and
never on the shared inference copy:

* **Max pooling before a ReLU.** ``relu(maxpool(x)) == maxpool(relu(x))``
  (the ReLU is monotone), and so are the gradients: both send a window's
  gradient to its largest element, which is the same element wherever the
  window's maximum is positive; where it is not, the ReLU's gradient is
  zero in both orders. The ReLU then works on the pooled tensor, in place:
  a quarter of the elements after 2 x 2 pooling, an eighth in 3D.
  (Guided backpropagation, by contrast, gates the sum of overlapping
  windows' gradients, and LRP's rules read the activations the pooling
  sees.)
* **In-place ReLUs on residual sums.** A ``ReLU`` module whose every call
  takes the fresh result of an out-of-place addition used by nothing else
  (the ``out(body(x) + shortcut(x))`` of a residual block) works in place:
  the addition keeps nothing for its backward pass, so no gradient
  changes, and the block allocates one activation tensor less.

What they gain is measured by ``python benchmarks/bench_clinical_sizes.py
--ablation`` (``docs/benchmarks.md``): most on a 3D CNN whose first ReLU
runs on full-resolution volumes before 2 x 2 x 2 pooling.
"""

from __future__ import annotations

import operator

import torch
from torch import nn

__all__ = ["rewrite_trunk", "pool_before_relu", "inplace_relu_after_sum"]

_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)

# out-of-place additions: their result is a new tensor that the addition's
# backward does not keep
_SUMS = {operator.add, torch.add}


def _registrations(module):
    """How often each submodule is registered in ``module`` (by identity)."""
    counts = {}
    for _, m in module.named_modules(remove_duplicate=False):
        counts[id(m)] = counts.get(id(m), 0) + 1
    return counts


def _hooked(module):
    """Whether hooks of its own could see or change what ``module`` passes on."""
    return bool(module._forward_hooks or module._forward_pre_hooks
                or module._backward_hooks or getattr(module, "_backward_pre_hooks", None))


def pool_before_relu(module):
    """Swap each ``ReLU`` followed by a max pooling layer in a Sequential.

    The ReLU then follows the pooling and works in place, unless it is
    registered more than once. Only exactly ``nn.ReLU`` and
    ``nn.MaxPool1d/2d/3d`` without hooks are swapped (a subclass may
    compute something else); pooling layers that return indices are left
    alone. Changes ``module`` in place.

    Returns
    -------
    int
        The number of pairs swapped.
    """
    counts = _registrations(module)
    swapped = 0
    for seq in list(module.modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        i = 0
        while i < len(names) - 1:
            relu, pool = seq._modules[names[i]], seq._modules[names[i + 1]]
            if (type(relu) is nn.ReLU and type(pool) in _MAX_POOLS
                    and not pool.return_indices and not _hooked(relu)
                    and not _hooked(pool)):
                seq._modules[names[i]], seq._modules[names[i + 1]] = pool, relu
                if counts.get(id(relu)) == 1:
                    relu.inplace = True
                swapped += 1
                i += 2
            else:
                i += 1
    return swapped


def _sum_of_one_use(node):
    """Whether an fx node is an addition whose result one node uses."""
    if not isinstance(node, torch.fx.Node) or len(node.users) != 1:
        return False
    return ((node.op == "call_function" and node.target in _SUMS)
            or (node.op == "call_method" and node.target == "add"))


def _relus_after_one_use_sums(module):
    """ReLU modules of ``module`` (registered once, out of place) whose every
    call in the traced forward takes an addition used by nothing else."""
    graph = torch.fx.Tracer().trace(module)
    counts = _registrations(module)
    relus, refused = {}, set()
    for node in graph.nodes:
        if node.op != "call_module":
            continue
        sub = module.get_submodule(node.target)
        if type(sub) is not nn.ReLU or sub.inplace or _hooked(sub):
            continue
        relus[id(sub)] = sub
        if not (len(node.args) == 1 and not node.kwargs and _sum_of_one_use(node.args[0])
                and counts.get(id(sub)) == 1):
            refused.add(id(sub))
    return [sub for key, sub in relus.items() if key not in refused]


def _fresh_sum(x):
    """Whether ``x`` is the untouched result of an out-of-place addition.

    An in-place ``a += b`` traces like ``a + b``, but it writes into ``a``
    (which others may hold) and raises its version counter.
    """
    return (torch.is_tensor(x) and x._version == 0
            and type(x.grad_fn).__name__ in ("AddBackward0", "AddBackward1"))


def inplace_relu_after_sum(module, example):
    """Make ``ReLU`` modules that only ever take a fresh sum work in place.

    A ReLU qualifies when it is registered once, every call of it in the
    forward traced symbolically (``torch.fx``) takes an addition that
    nothing else uses, and in a forward of ``example`` every call takes the
    untouched result of an out-of-place addition (``a + b``, ``torch.add``,
    ``a.add(b)``; an in-place ``a += b`` traces the same way, so this is
    checked on the tensors themselves). A forward that cannot be traced or
    run leaves the module as it is. Changes ``module`` in place.

    Parameters
    ----------
    module : torch.nn.Module
    example : Tensor
        An input of ``module`` (its gradient is taken, so that additions
        record their backward).

    Returns
    -------
    int
        The number of ReLUs made in-place.
    """
    try:
        candidates = _relus_after_one_use_sums(module)
    except Exception:  # noqa: BLE001 - data-dependent control flow and the like
        return 0
    if not candidates:
        return 0
    fresh = {}

    def record(relu, args):
        fresh[id(relu)] = fresh.get(id(relu), True) and len(args) == 1 and _fresh_sum(args[0])

    handles = [relu.register_forward_pre_hook(record) for relu in candidates]
    try:
        with torch.enable_grad():
            module(example.detach().requires_grad_(True))
    except Exception:  # noqa: BLE001 - the split's own check reports nothing
        return 0
    finally:
        for handle in handles:
            handle.remove()
    changed = 0
    for relu in candidates:
        if fresh.get(id(relu)):  # called, and always on a fresh sum
            relu.inplace = True
            changed += 1
    return changed


def rewrite_trunk(module, example):
    """Both rewrites of this module on ``module`` (in place), for inputs
    like ``example``; returns the number of changes."""
    return pool_before_relu(module) + inplace_relu_after_sum(module, example)
