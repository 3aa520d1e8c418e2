"""A rewrite that plain input gradients cannot tell apart, for a split trunk.

The trunk of an :class:`~sklearn_relevance._input_stem.InputStem` serves
integrated gradients and SmoothGrad's mean of plain gradients only: no
hooks, no rules per layer. One rewrite leaves its outputs and its input
gradients unchanged (exact, not rounded), while it would change what
explainers that act per layer see, so it is made on the trunk and never on
the shared inference copy:

* **Max pooling before a ReLU.** ``relu(maxpool(x)) == maxpool(relu(x))``
  (the ReLU is monotone), and so are the gradients: both send a window's
  gradient to its largest element, which is the same element wherever the
  window's maximum is positive; where it is not, the ReLU's gradient is
  zero in both orders. The ReLU then works on the pooled tensor, in place:
  a quarter of the elements after 2 x 2 pooling, an eighth in 3D.
  (Guided backpropagation, by contrast, gates the sum of overlapping
  windows' gradients, and LRP's rules read the activations the pooling
  sees.)

A pair is swapped only where the forward's graph proves the swap exact
(:meth:`sklearn_relevance._copy_proof.GraphFacts.pool_relu_swaps`: the ReLU
feeds the pooling and nothing else, both exact ``torch.nn`` types,
registered and called once, no hooks anywhere). An earlier second rewrite,
in-place ReLUs on residual sums, was dropped: its exactness rested on a
check of one forward's tensors (an in-place ``a += b`` traces like
``a + b``), and it saved no measurable time
(``python benchmarks/bench_clinical_sizes.py --ablation``).

What the swap gains is measured by ``python benchmarks/bench_clinical_sizes.py
--ablation`` (``docs/benchmarks.md``): most on a 3D CNN whose first ReLU
runs on full-resolution volumes before 2 x 2 x 2 pooling.
"""

from __future__ import annotations

from torch import nn

from ._copy_proof import GraphFacts, hooks_anywhere
from ._private_trace import trace_graph

__all__ = ["rewrite_trunk", "pool_before_relu"]


def pool_before_relu(module, example=None, *, swaps=None):
    """Swap each ``ReLU`` followed by a max pooling layer in a Sequential,
    where the forward's graph proves the swap exact.

    The ReLU then follows the pooling and works in place. Changes ``module``
    in place.

    Parameters
    ----------
    module : torch.nn.Module
    example : Tensor, optional
        An input of ``module`` (needed to trace it when ``swaps`` is not
        given; only copies of its first rows are run).
    swaps : list of (str, int), optional
        ``(Sequential name, index of the ReLU)`` pairs proved by
        :meth:`~sklearn_relevance._copy_proof.GraphFacts.pool_relu_swaps`
        for ``module`` or a network it was copied from (same names); by
        default, traced and proved here (none where ``module`` has hooks
        or does not trace).

    Returns
    -------
    int
        The number of pairs swapped.
    """
    if swaps is None:
        if example is None or hooks_anywhere(module):
            return 0
        graph = trace_graph(module, example)
        if graph is None:
            return 0
        swaps = GraphFacts(module, graph).pool_relu_swaps()
    for seq_name, i in swaps:
        seq = module.get_submodule(seq_name) if seq_name else module
        names = list(seq._modules)
        relu, pool = seq._modules[names[i]], seq._modules[names[i + 1]]
        if type(relu) is not nn.ReLU:  # pragma: no cover - the proof names a ReLU
            raise RuntimeError(f"expected a ReLU at {seq_name}.{i}, got {type(relu)}")
        seq._modules[names[i]], seq._modules[names[i + 1]] = pool, relu
        relu.inplace = True
    return len(swaps)


def rewrite_trunk(module, swaps):
    """The trunk rewrite of this module on ``module`` (in place), for the
    proved ``swaps``; returns the number of changes."""
    return pool_before_relu(module, swaps=swaps)
