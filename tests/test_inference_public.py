"""The public inference module: the copy, its cache, channels-last, the
context that explains a network as given, and the budgets table."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from sklearn_relevance.explainers import IntegratedGradients
from sklearn_relevance.inference import (
    cached_inference_copy,
    clear_inference_copies,
    inference_copy,
    is_channels_last,
    memory_budgets,
    no_inference_copy,
)


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    return net.eval()


class _Parameters(TorchFunctionMode):
    """Records the parameters every torch function of a call reads."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        for a in list(args) + list((kwargs or {}).values()):
            if isinstance(a, nn.Parameter):
                self.seen.add(id(a))
        return func(*args, **(kwargs or {}))


def _parameters_read(net, X):
    mode = _Parameters()
    with mode:
        IntegratedGradients(n_steps=50).explain(net, X, target=0)
    return mode.seen


def test_no_inference_copy_explains_the_network_as_given():
    net, X = _net(), torch.randn(8, 3, 32, 32)
    own = {id(p) for p in net.parameters()}
    clear_inference_copies()
    # a call this large runs on the copy (parameters of its own) ...
    assert _parameters_read(net, X) - own
    # ... but not inside the context, where every parameter read is the net's
    with no_inference_copy():
        assert _parameters_read(net, X) <= own
    # the setting ends with the block
    assert _parameters_read(net, X) - own


def test_the_copy_equals_the_network_and_leaves_it_unchanged():
    net, X = _net(), torch.randn(4, 3, 16, 16)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    X0 = X.clone()
    fast = inference_copy(net, X, channels_last=True, fold_batchnorms=True)
    assert fast is not net and is_channels_last(fast) and not is_channels_last(net)
    net64 = _net().double()
    fast64 = inference_copy(net64, X.double(), channels_last=True, fold_batchnorms=True)
    with torch.no_grad():
        torch.testing.assert_close(fast64(X.double()), net64(X.double()), rtol=1e-12,
                                   atol=1e-12)
    assert torch.equal(X, X0)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    # by default neither rewrite that rounds differently is made: BatchNorms
    # stay, the layout stays (float32 results then round like the network's)
    default = inference_copy(net, X)
    assert not is_channels_last(default)
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in default.modules())
    kinds = {type(m) for m in inference_copy(net, X, fold_batchnorms=True).modules()}
    assert not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds)


def test_cached_copy_is_reused_until_the_network_changes():
    net, X = _net(), torch.randn(2, 3, 16, 16)
    fast = cached_inference_copy(net, X)
    assert cached_inference_copy(net, X) is fast
    with torch.no_grad():
        net[0].weight.mul_(2.0)
    assert cached_inference_copy(net, X) is not fast
    again = cached_inference_copy(net, X)
    clear_inference_copies()
    assert cached_inference_copy(net, X) is not again


def test_a_training_mode_network_is_returned_as_it_is():
    net = _net().train()
    assert inference_copy(net, torch.randn(2, 3, 8, 8)) is net


@pytest.mark.parametrize("call, match", [
    (lambda: inference_copy("net", torch.zeros(2, 3)), "'module' parameter of inference_copy"),
    (lambda: cached_inference_copy(None, torch.zeros(2, 3)),
     "'module' parameter of cached_inference_copy"),
    (lambda: is_channels_last(3), "'module' parameter of is_channels_last"),
    (lambda: inference_copy(nn.Linear(3, 2), torch.zeros(2, 3), channels_last=1),
     "'channels_last' parameter of inference_copy"),
    (lambda: inference_copy(nn.Linear(3, 2), torch.zeros(2, 3), fold_batchnorms="no"),
     "'fold_batchnorms' parameter of inference_copy"),
])
def test_bad_arguments_raise_type_errors(call, match):
    with pytest.raises(TypeError, match=match):
        call()


@pytest.mark.parametrize("kwargs, match", [
    (dict(X=torch.zeros(2, 3, dtype=torch.int64)), "floating point"),
    (dict(X=torch.zeros(0, 3)), "0 samples"),
    (dict(X=[[1.0, 2.0, 3.0]]), "must be a torch.Tensor"),
    (dict(X=torch.zeros(2, 3), rtol=0.0), "'rtol' parameter of inference_copy"),
])
def test_bad_values_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        inference_copy(nn.Linear(3, 2).eval(), **kwargs)


def test_memory_budgets_are_read_only():
    budgets = memory_budgets()
    assert budgets["pass_activations_cpu"] > 0
    with pytest.raises(TypeError):
        budgets["pass_activations_cpu"] = 1
