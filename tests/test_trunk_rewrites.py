"""The rewrite of a split trunk that plain input gradients cannot tell apart.

The swap must leave outputs and input gradients bit for bit as they were
(ties and all-negative pooling windows included), be refused where the
forward's graph does not prove it exact, and be made on the trunk only,
never on the inference copy that other explainers share.
"""

import copy

import pytest
import torch
from torch import nn

from sklearn_relevance._inference import inference_copy
from sklearn_relevance._input_stem import input_stem, split_input_stem
from sklearn_relevance._trunk_rewrites import pool_before_relu
from sklearn_relevance.explainers import IntegratedGradients, SmoothGrad

_POOLS = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def _value_and_grad(net, X, weights):
    x = X.clone().requires_grad_(True)
    out = net(x)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    return out.detach(), grad


def _tied_inputs(shape, seed=0):
    """Integers, mostly not positive: ties among the positive ones, and
    whole windows at or below zero."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-6, 2, shape, generator=g).double()


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("pool", [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},  # overlapping windows (ResNet stem)
    {"kernel_size": 3, "stride": 2, "ceil_mode": True},
    {"kernel_size": 2, "dilation": 2},
])
def test_pool_before_relu_keeps_outputs_and_gradients_exactly(ndim, pool):
    torch.manual_seed(0)
    net = nn.Sequential(nn.ReLU(), _POOLS[ndim](**pool), nn.Flatten()).double()
    X = _tied_inputs((3, 2) + (7,) * ndim)
    rewritten = copy.deepcopy(net)
    assert pool_before_relu(rewritten, X) == 1
    assert isinstance(rewritten[0], _POOLS[ndim]) and type(rewritten[1]) is nn.ReLU
    assert rewritten[1].inplace
    weights = torch.randn(net(X).shape, dtype=torch.float64)
    want, want_grad = _value_and_grad(net, X, weights)
    got, got_grad = _value_and_grad(rewritten, X, weights)
    assert torch.equal(got, want)
    assert torch.equal(got_grad, want_grad)
    # windows whose maximum is not positive were there
    assert (_POOLS[ndim](**pool)(X) <= 0).any()


def test_pool_before_relu_refuses_what_would_not_be_exact():
    leaky = nn.Sequential(nn.LeakyReLU(0.01), nn.MaxPool2d(2))
    indices = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True))
    average = nn.Sequential(nn.ReLU(), nn.AvgPool2d(2))
    pool_first = nn.Sequential(nn.MaxPool2d(2), nn.ReLU())

    class _Pool(nn.MaxPool2d):  # a subclass may pool differently
        pass

    subclass = nn.Sequential(nn.ReLU(), _Pool(2))
    hooked = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))
    hooked[0].register_forward_hook(lambda m, args, out: out * 2)
    X = torch.randn(2, 1, 6, 6)
    for net in (leaky, indices, average, pool_first, subclass, hooked):
        before = [type(m) for m in net]
        assert pool_before_relu(net, X) == 0
        assert [type(m) for m in net] == before
    # a ReLU registered twice (one module used twice) is not moved
    relu = nn.ReLU()
    shared = nn.Sequential(nn.Conv2d(1, 2, 3), relu, nn.MaxPool2d(2), relu)
    assert pool_before_relu(shared, X) == 0
    assert shared[1] is relu and not relu.inplace
    # a ReLU whose output something else reads is not moved either

    class _ReluReadTwice(nn.Module):
        def __init__(self):
            super().__init__()
            self.seq = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))

        def forward(self, x):
            return self.seq(x).sum() + self.seq[0](x).sum()

    assert pool_before_relu(_ReluReadTwice(), X) == 0


def _small_resnet(ndim=2):
    """A float64 ResNet-like network: conv-BN-ReLU-max-pool stem, two blocks."""
    torch.manual_seed(0)
    conv, bn = _CONVS[ndim], {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[ndim]
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[ndim]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(conv(4, 4, 3, padding=1), bn(4), nn.ReLU(inplace=True),
                                      conv(4, 4, 3, padding=1), bn(4))
            self.out = nn.ReLU()

        def forward(self, x):
            return self.out(self.body(x) + x)

    net = nn.Sequential(conv(2, 4, 5, stride=2, padding=2), bn(4), nn.ReLU(),
                        _POOLS[ndim](3, 2, 1), Block(), Block(), pool(1), nn.Flatten(),
                        nn.Linear(4, 3)).double()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval(), (2,) + (12,) * ndim


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_split_trunk_takes_the_rewrites_and_equals_the_network(ndim):
    net, shape = _small_resnet(ndim)
    X = torch.randn(5, *shape, dtype=torch.float64)
    fast = inference_copy(net, X)
    split = input_stem(fast)
    assert split is not None
    trunk = split.trunk
    # the trunk pools first and works in place; the shared copy is as it was
    assert isinstance(trunk[2], _POOLS[ndim])
    assert type(trunk[3]) is nn.ReLU and trunk[3].inplace
    assert type(fast[2]) is nn.ReLU and isinstance(fast[3], _POOLS[ndim])
    assert not fast[4].out.inplace
    target = torch.arange(5) % 3
    ig = IntegratedGradients(n_steps=8)
    sg = SmoothGrad(n_samples=6, random_state=0)
    for explainer in (ig, sg):
        got, want = explainer.explain(fast, X, target), explainer.explain(net, X, target)
        assert float((got - want).abs().max() / want.abs().max()) < 1e-10


def test_the_trunk_relu_runs_on_the_pooled_tensor():
    net, shape = _small_resnet(2)
    X = torch.randn(2, *shape, dtype=torch.float64)
    split = split_input_stem(net, X)
    seen = []
    relu = split.trunk[3]
    assert type(relu) is nn.ReLU
    relu.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    split.trunk(split.stem(X))
    assert seen[-1] == (2, 4, 3, 3)  # after pooling 6 x 6 (not before)


class _ReadsTheReluByPosition(nn.Module):
    """Calls ``seq[2]`` (the ReLU) and reads its output twice: after a swap
    ``seq[2]`` is the pooling, and the swapped ReLU writes into its output."""

    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Identity(), nn.ReLU(),
                                 nn.MaxPool2d(2))
        self.head = nn.Linear(3 * 3 * 3, 2)

    def forward(self, x):
        a = self.seq[2](self.seq[0](x))
        pooled = self.seq[3](a)
        return self.head(pooled.flatten(1)) + a.mean((1, 2, 3)).unsqueeze(1)


def test_a_rewrite_the_graph_does_not_prove_leaves_the_trunk_as_it_was():
    torch.manual_seed(0)
    net = _ReadsTheReluByPosition().double().eval()
    X = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    probe = copy.deepcopy(net)
    # the ReLU's output is read twice: the graph shows it, so no swap
    assert pool_before_relu(probe, X) == 0
    split = split_input_stem(net, X)
    assert split is not None
    assert type(split.trunk.seq[2]) is nn.ReLU
    ig = IntegratedGradients(n_steps=6)
    got = ig.explain(inference_copy(net, X), X, 1)
    want = ig.explain(net, X, 1)
    assert float((got - want).abs().max() / want.abs().max()) < 1e-10


def test_the_split_and_the_rewrites_can_be_left_out_for_measurements():
    net, shape = _small_resnet(2)
    X = torch.randn(3, *shape, dtype=torch.float64)
    assert input_stem(inference_copy(net, X, split_stem=False)) is None
    trunk = input_stem(inference_copy(net, X, trunk_rewrites=False)).trunk
    assert type(trunk[2]) is nn.ReLU and isinstance(trunk[3], nn.MaxPool2d)
