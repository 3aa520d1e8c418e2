"""The affine input layer split off for integrated gradients and SmoothGrad.

The split must give the whole network's results (up to rounding), be found
only where it is exact, and actually save the stem's work per step.
"""

import pytest
import torch
from torch import nn

from sklearn_relevance._inference import inference_copy
from sklearn_relevance._input_stem import input_stem, split_input_stem
from sklearn_relevance.explainers import IntegratedGradients, SmoothGrad


def _net(ndim, channels=2):
    """An eval-mode float64 network whose first layer is affine, for 1D-3D inputs."""
    torch.manual_seed(0)
    if ndim == 0:
        layers = [nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)]
        shape = (6,)
    else:
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[ndim]
        bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[ndim]
        pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[ndim]
        layers = [conv(channels, 4, 3, padding=1), bn(4), nn.ReLU(), conv(4, 4, 3, padding=1),
                  nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(4, 3)]
        shape = (channels,) + (6,) * ndim
    net = nn.Sequential(*layers).double()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval(), shape


def _copy_with_stem(net, X):
    fast = inference_copy(net, X)
    assert fast is not net
    assert input_stem(fast) is not None
    return fast


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("ndim", [0, 1, 2, 3])
def test_split_network_equals_the_network(ndim):
    net, shape = _net(ndim)
    X = torch.randn(5, *shape, dtype=torch.float64)
    split = split_input_stem(net, X)
    assert split is not None
    assert torch.allclose(split.trunk(split.stem(X)), net(X))
    # the caller's module keeps its layers and has no hooks left
    assert isinstance(net[0], (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    assert not any(m._forward_pre_hooks for m in net.modules())
    # the trunk shares the parameters
    trunk_params = {id(p) for p in split.trunk.parameters()}
    assert all(id(p) in trunk_params for n, p in net.named_parameters()
               if not n.startswith("0."))


@pytest.mark.parametrize("ndim", [0, 1, 2, 3])
@pytest.mark.parametrize("params", [
    {}, {"method": "riemann_trapezoid", "n_steps": 5}, {"multiply_by_inputs": False},
    {"baselines": 0.3}, {"internal_batch_size": 3},
])
def test_integrated_gradients_through_the_split_equal_the_network(ndim, params):
    net, shape = _net(ndim)
    X = torch.randn(7, *shape, dtype=torch.float64)
    target = torch.arange(7) % 3
    fast = _copy_with_stem(net, X)
    ig = IntegratedGradients(n_steps=params.pop("n_steps", 12), **params)
    assert _rel(ig.explain(fast, X, target), ig.explain(net, X, target)) < 1e-10


@pytest.mark.parametrize("ndim", [0, 1, 2, 3])
@pytest.mark.parametrize("internal_batch_size", [None, 3])  # 3: slices of the samples
def test_smoothgrad_through_the_split_equals_the_network(ndim, internal_batch_size):
    net, shape = _net(ndim)
    X = torch.randn(4, *shape, dtype=torch.float64)
    fast = _copy_with_stem(net, X)
    sg = SmoothGrad(n_samples=6, random_state=0, internal_batch_size=internal_batch_size)
    assert _rel(sg.explain(fast, X, 1), sg.explain(net, X, 1)) < 1e-10
    # squared and absolute variants do not go through the split, and agree too
    sq = SmoothGrad(n_samples=6, squared=True, random_state=0)
    assert _rel(sq.explain(fast, X, 1), sq.explain(net, X, 1)) < 1e-10


def _count_stem_rows(split):
    rows = []
    split.stem.register_forward_hook(lambda m, args, out: rows.append(len(args[0])))
    return rows


def test_integrated_gradients_run_the_stem_once_per_sample_not_per_step():
    net, shape = _net(2)
    X = torch.randn(3, *shape, dtype=torch.float64)
    fast = _copy_with_stem(net, X)
    IntegratedGradients(n_steps=20).explain(fast, X, 0)  # the one-row pass-size probe
    rows = _count_stem_rows(input_stem(fast))
    IntegratedGradients(n_steps=20).explain(fast, X, 0)
    # the baseline's forward and one transpose (the path's difference goes
    # through the stem's weights directly): 2 x 3 rows instead of 20 x 3
    assert 0 < sum(rows) <= 3 * len(X)


def test_smoothgrad_runs_the_stem_backward_once_per_sample():
    net, shape = _net(2)
    X = torch.randn(3, *shape, dtype=torch.float64)
    fast = _copy_with_stem(net, X)
    split = input_stem(fast)
    backward_rows = []
    split.stem.register_full_backward_hook(
        lambda m, gin, gout: backward_rows.append(len(gout[0])))
    SmoothGrad(n_samples=10, random_state=0).explain(fast, X, 0)
    assert sum(backward_rows) == len(X)


class _ReadsInputTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3))) + x.mean((1, 2, 3))[:, None]


class _TransformsFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(2 * x).mean((2, 3))


class _SameLayerTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(torch.relu(self.lin(x)))


class _BranchesOnChannels(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 1)

    def forward(self, x):
        if x.shape[1] == 1:
            return self.conv(x).sum(2)
        return -x.sum(2)


@pytest.mark.parametrize("net, shape", [
    (_ReadsInputTwice(), (1, 5, 5)),
    (_TransformsFirst(), (1, 5, 5)),
    (_SameLayerTwice(), (4,)),
    (nn.Sequential(nn.ReLU(), nn.Linear(4, 2)), (4,)),
    # reads the shape of its input: the trunk would take the other branch
    (_BranchesOnChannels(), (1, 4)),
])
def test_no_split_where_it_would_not_be_exact(net, shape):
    net = net.double().eval()
    X = torch.randn(3, *shape, dtype=torch.float64)
    assert split_input_stem(net, X) is None


def test_no_split_for_dict_inputs_or_training_mode():
    net, shape = _net(2)
    X = torch.randn(3, *shape, dtype=torch.float64)
    assert split_input_stem(net, {"x": X}) is None
    assert split_input_stem(net.train(), X) is None


def test_gradients_of_the_split_are_not_used_for_training_penalties():
    net, shape = _net(2)
    X = torch.randn(3, *shape, dtype=torch.float64)
    fast = _copy_with_stem(net, X)
    ig = IntegratedGradients(n_steps=4)
    attr = ig.explain(fast, X, 0, create_graph=True)
    assert _rel(attr.detach(), ig.explain(net, X, 0)) < 1e-10
    # differentiable in the first layer's weights: the whole network was used
    attr.pow(2).sum().backward()
    assert fast[0].weight.grad is not None and fast[0].weight.grad.abs().sum() > 0


def test_stand_in_copies_only_where_a_later_layer_could_write_into_it():
    from sklearn_relevance._input_stem import _StemOutput

    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.Flatten(),
                        nn.Linear(48, 2)).double().eval()
    X = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    split = split_input_stem(seq, X)
    # a Sequential: the stem's place takes a pass-through, and the in-place
    # ReLU after it works out of place in the trunk only
    assert type(split.trunk[0]) is nn.Identity
    assert split.trunk[1].inplace is False and seq[1].inplace is True

    class Block(nn.Module):  # its forward could do anything with the output
        def __init__(self):
            super().__init__()
            self.conv, self.head = nn.Conv2d(1, 3, 3), nn.Linear(48, 2)

        def forward(self, x):
            return self.head(torch.relu_(self.conv(x)).flatten(1))

    block = Block().double().eval()
    split = split_input_stem(block, X)
    assert isinstance(split.trunk.conv, _StemOutput)
    for net in (seq, block):
        split = split_input_stem(net, X)
        h = split.stem(X).detach().requires_grad_(True)
        split.trunk(h)[:, 0].sum().backward()  # no in-place write into h
        torch.testing.assert_close(split.transpose(h.grad, X), _input_grad(net, X))


def _input_grad(net, X):
    x = X.detach().clone().requires_grad_(True)
    net(x)[:, 0].sum().backward()
    return x.grad
