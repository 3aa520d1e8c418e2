"""The inference copy, as a supported tool for performance work.

Explanations of an eval-mode network run on a faster copy of it where that
pays (``estimator.explain``, :func:`sklearn_relevance.explain`, explainers
called on a bare module): in-place ReLUs after Conv / Linear layers and the
affine input layer split off for integrated gradients and SmoothGrad (and,
asked for by name or by an explainer's ``copy_options``, BatchNorm folding
and channels-last convolutions, which are faster but round worse). Every
rewrite is exact by construction and made only where the forward's graph
proves it (:doc:`/design_notes`, "The explanation pipeline"); where nothing
can be proved, the network runs as it is.

This module lets a user (or a benchmark) work with that copy directly:

* :func:`inference_copy` builds one (with switches to measure each rewrite);
* :func:`cached_inference_copy` is the copy the explainers use, made once
  per network and input layout and kept while nothing that can change the
  forward has changed; :func:`clear_inference_copies` forgets them all;
* :func:`is_channels_last` says whether a network's convolutions are
  channels-last;
* :func:`no_inference_copy` runs every explanation started inside it on the
  network exactly as given (no copy decided, none made);
* :func:`memory_budgets` shows the read-only table of byte budgets by which
  passes are sized.
"""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn

from . import _inference
from ._batching import MEMORY_BUDGETS
from ._module_calls import check_not_empty
from ._tensors import check_inputs
from ._validation import check_real
from ._which_network import network_decided

__all__ = ["inference_copy", "cached_inference_copy", "clear_inference_copies",
           "is_channels_last", "no_inference_copy", "memory_budgets"]


def _check_module(module, owner):
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"The 'module' parameter of {owner} must be an instance of "
            f"torch.nn.Module. Got {type(module).__name__} instead."
        )


def _check_X(X):
    check_inputs(X)
    check_not_empty(X)


def _check_flag(value, name, owner):
    if not isinstance(value, bool):
        raise TypeError(
            f"The {name!r} parameter of {owner} must be an instance of 'bool'. "
            f"Got {value!r} instead."
        )


def inference_copy(module, X, *, rtol=1e-4, split_stem=True, trunk_rewrites=True,
                   channels_last=False, fold_batchnorms=False):
    """A faster copy of an eval-mode network for passes on inputs like ``X``.

    Each rewrite is exact by construction for every input and is made only
    where the forward's ``torch.fx`` graph (and one forward of a copy of
    two samples of ``X``) proves it: in-place ReLUs after Conv / Linear
    layers, and the affine input layer split off (used by integrated
    gradients and SmoothGrad). Two rewrites that are exact in real numbers
    but round differently are off by default and can be asked for:
    BatchNorm layers in eval mode folded into the Conv / Linear layer that
    alone feeds them (``fold_batchnorms=True``; the folded weights, rounded
    once, move every output systematically) and channels-last convolution
    weights for a 4D / 5D ``X`` on the CPU (``channels_last=True``; oneDNN's
    channels-last 3 x 3 kernels accumulate with 1.3-4.4x the error of the
    default layout's, growing with the channels). Together they made IG
    and SmoothGrad on a ResNet-18-like network 10-15% faster and their
    error against float64 about 2-2.6x captum's (``docs/benchmarks.md``,
    "Float32 precision"). ``module`` itself is returned where no proof
    is possible: a submodule in training mode, a hook on any submodule or a
    global module hook, a forward that does not trace or reads strides,
    storage or values of tensors. As a last guard the copy's outputs on the
    two samples must equal ``module``'s to ``rtol`` of their largest
    magnitude.

    The copy is new on every call (see :func:`cached_inference_copy` for
    the one the explainers reuse). ``module`` and ``X`` are never changed.
    Layers keep their names; a folded BatchNorm's name then holds
    ``nn.Identity``.

    Parameters
    ----------
    module : torch.nn.Module
        The network, in the mode it will be used in (normally ``eval()``).
    X : Tensor or dict of Tensors
        Inputs as they will be passed (dtype, device, shape of a sample);
        only the first two samples are read (copied, never written).
    rtol : float, default=1e-4
        Tolerance of the last guard, relative to the largest output.
    split_stem : bool, default=True
        Whether the affine input layer may be split off.
    trunk_rewrites : bool, default=True
        Whether the network after a split input layer may pool before its
        ReLUs where that is exact (off only to measure what it gains).
    channels_last : bool, default=False
        Whether CPU convolution weights may become channels-last (faster,
        rounds worse: ``benchmarks/bench_channels_last.py``).
    fold_batchnorms : bool, default=False
        Whether eval-mode BatchNorm layers may be folded into the layer
        before them (faster, rounds worse:
        ``benchmarks/bench_float32_precision.py``).

    Returns
    -------
    torch.nn.Module
        The copy, or ``module`` itself where no rewrite applies.

    Raises
    ------
    TypeError
        When ``module`` is not a ``torch.nn.Module`` or a switch is not a bool.
    ValueError
        When ``X`` is not a floating point tensor (or dict of them) with a
        batch axis and at least one sample, or ``rtol`` is not positive.

    See Also
    --------
    cached_inference_copy : the copy the explainers use, made once.
    no_inference_copy : explain a network exactly as given.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.inference import inference_copy, is_channels_last
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
    ...                           torch.nn.ReLU(), torch.nn.Flatten()).eval()
    >>> X = torch.randn(2, 3, 8, 8)
    >>> fast = inference_copy(net, X)
    >>> fast is net, type(fast[1]).__name__, is_channels_last(fast)
    (False, 'BatchNorm2d', False)
    >>> faster = inference_copy(net, X, channels_last=True, fold_batchnorms=True)
    >>> type(faster[1]).__name__, is_channels_last(faster)
    ('Identity', True)
    >>> torch.allclose(faster(X), net(X), atol=1e-5)
    True
    """
    owner = "inference_copy"
    _check_module(module, owner)
    _check_X(X)
    rtol = check_real(rtol, "rtol", owner, low=0, closed="neither")
    for name, value in (("split_stem", split_stem), ("trunk_rewrites", trunk_rewrites),
                        ("channels_last", channels_last),
                        ("fold_batchnorms", fold_batchnorms)):
        _check_flag(value, name, owner)
    return _inference.inference_copy(module, X, rtol=rtol, split_stem=split_stem,
                                     trunk_rewrites=trunk_rewrites,
                                     channels_last=channels_last,
                                     fold_batchnorms=fold_batchnorms)


def cached_inference_copy(module, X):
    """The inference copy the explainers use, made once and reused.

    The copy (or the verdict that none applies) is kept, weakly keyed by
    ``module``, while nothing that can change ``module``'s forward has
    changed: its parameters and buffers (object, storage, version: an
    optimizer step, ``fit``, ``load_state_dict`` or any in-place change
    through PyTorch makes a new copy), its submodules and their types and
    plain attributes, its hooks and the global module hooks, and the
    layout of ``X`` (sample shape, dtype, device). Writes through
    ``tensor.data`` bypass PyTorch's version counters and are not seen:
    call :func:`clear_inference_copies` after them. The copy is shared by
    every caller and must not be changed. Safe to call from several threads.

    Parameters
    ----------
    module : torch.nn.Module
        The network, in eval mode.
    X : Tensor or dict of Tensors
        Inputs as they will be passed; only two samples are read.

    Returns
    -------
    torch.nn.Module
        The copy, or ``module`` itself where no copy applies.

    See Also
    --------
    inference_copy : a new copy, with switches for each rewrite.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.inference import cached_inference_copy
    >>> net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4),
    ...                           torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()
    >>> X = torch.randn(3, 5)
    >>> fast = cached_inference_copy(net, X)
    >>> fast is not net, cached_inference_copy(net, X) is fast
    (True, True)
    >>> with torch.no_grad():
    ...     _ = net[1].running_mean.add_(1.0)  # a change the cache sees
    >>> cached_inference_copy(net, X) is fast
    False
    """
    _check_module(module, "cached_inference_copy")
    _check_X(X)
    return _inference.cached_inference_copy(module, X)


def clear_inference_copies():
    """Forget every cached inference copy.

    Needed only after a change the cache cannot see, such as a write
    through ``tensor.data``; the next explanation makes a fresh copy.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.inference import (cached_inference_copy,
    ...                                          clear_inference_copies)
    >>> net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4)).eval()
    >>> X = torch.randn(3, 5)
    >>> fast = cached_inference_copy(net, X)
    >>> net[1].running_mean.data += 1.0  # not seen by the cache ...
    >>> clear_inference_copies()  # ... so forget the copies
    >>> cached_inference_copy(net, X) is fast
    False
    """
    _inference.clear_inference_copies()


def is_channels_last(module):
    """Whether a network's 2D / 3D convolutions have channels-last weights.

    Weights with one input channel per group are both contiguous and
    channels-last, so the first convolution with several input channels
    decides; a network without such a convolution is not channels-last.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    bool

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.inference import is_channels_last
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    >>> is_channels_last(net)
    False
    >>> is_channels_last(net.to(memory_format=torch.channels_last))
    True
    """
    _check_module(module, "is_channels_last")
    return _inference.is_channels_last(module)


@contextmanager
def no_inference_copy():
    """Explain networks exactly as given: no inference copy inside.

    Every explanation started inside the ``with`` block (an explainer's
    ``explain`` on a module, ``estimator.explain``, the scorers and
    metrics that explain) runs on the network it is given, without deciding
    on or making an inference copy. Use it to explain a copy you made
    yourself (:func:`inference_copy` with some rewrites off) without a copy
    of that copy, or to measure what the copy gains. The setting is per
    thread and per asyncio task: calls elsewhere are not affected.

    Training penalties always run on the network itself, with or without
    this block.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import IntegratedGradients
    >>> from sklearn_relevance.inference import inference_copy, no_inference_copy
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
    ...                           torch.nn.ReLU(), torch.nn.Flatten()).eval()
    >>> X = torch.randn(2, 3, 8, 8)
    >>> contiguous = inference_copy(net, X, channels_last=False)
    >>> with no_inference_copy():
    ...     relevance = IntegratedGradients(n_steps=8).explain(contiguous, X, target=0)
    >>> relevance.shape
    torch.Size([2, 3, 8, 8])
    """
    with network_decided():
        yield


def memory_budgets():
    """The byte budgets by which explanations and reads size their passes.

    A read-only mapping from a budget's name to its bytes: for example
    ``"pass_activations_cpu"`` (the activations one gradient pass of an
    explainer may keep on the CPU) and ``"pass_activations_accelerator"``
    (the same on a GPU). The explainers' ``internal_batch_size=None``
    derives each pass's rows from these budgets and from the activation
    bytes of one row, measured once per network.

    Returns
    -------
    Mapping of str to int
        Read only (a ``types.MappingProxyType``).

    Examples
    --------
    >>> from sklearn_relevance.inference import memory_budgets
    >>> budgets = memory_budgets()
    >>> budgets["pass_activations_cpu"] // 2**20
    128
    >>> budgets["pass_activations_cpu"] = 0
    Traceback (most recent call last):
    ...
    TypeError: 'mappingproxy' object does not support item assignment
    """
    return MEMORY_BUDGETS
