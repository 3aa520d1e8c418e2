"""BatchNorm merging and gates of LRP on networks built the way clinical
libraries build them: a BatchNorm opening a nested Sequential (MONAI's
``Convolution(conv, ADN(N, A))``), Sequential subclasses with their own
forward, and squeeze-and-excitation gates on 1 x 1 x 1 feature maps."""

import pytest
import torch
from torch import nn

from sklearn_relevance.explainers import LRP
from sklearn_relevance.explainers.lrp import MergeBatchNorm
from sklearn_relevance.inference import no_inference_copy


def _random_batchnorm(bn, gen):
    # trained-looking statistics and affine part: a shift far from zero is
    # what makes an unmerged BatchNorm's identity rule divide by the wrong z
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=gen, dtype=torch.float64) + 0.05)
        bn.weight.copy_(torch.randn(bn.num_features, generator=gen, dtype=torch.float64))
        bn.bias.copy_(torch.randn(bn.num_features, generator=gen, dtype=torch.float64))
    return bn


def _pair(seed, dims):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    conv = getattr(nn, f"Conv{dims}d")(2, 4, 3, padding=1, bias=False).double()
    bn = _random_batchnorm(getattr(nn, f"BatchNorm{dims}d")(4).double(), gen)
    head = nn.Linear(4 * 5 ** dims, 2).double()
    nested = nn.Sequential(nn.Sequential(conv, nn.Sequential(bn, nn.ReLU())),
                           nn.Flatten(), head).eval()
    flat = nn.Sequential(conv, bn, nn.ReLU(), nn.Flatten(), head).eval()
    X = torch.randn(3, 2, *([5] * dims), generator=gen, dtype=torch.float64)
    return nested, flat, X


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_batchnorm_opening_a_nested_sequential_is_merged(seed, dims):
    nested, flat, X = _pair(seed, dims)
    (pair,) = MergeBatchNorm.find_pairs(nested)
    assert isinstance(pair[0], nn.modules.conv._ConvNd)
    assert isinstance(pair[1], nn.modules.batchnorm._BatchNorm)
    with no_inference_copy():  # the module as it is: LRP's own canonizer
        R_nested = LRP(composite="epsilon", epsilon=1e-9).explain(nested, X, 0)
        R_flat = LRP(composite="epsilon", epsilon=1e-9).explain(flat, X, 0)
    torch.testing.assert_close(R_nested, R_flat, rtol=1e-10, atol=1e-12)


def test_sequential_with_its_own_forward_is_never_paired():
    class Reordered(nn.Sequential):
        def forward(self, x):  # the BatchNorm does not follow the convolution
            return self[0](self[1](x))

    net = Reordered(nn.Conv1d(2, 2, 1), nn.BatchNorm1d(2)).eval()
    assert MergeBatchNorm.find_pairs(net) == []
    outer = nn.Sequential(nn.Conv1d(2, 2, 1), Reordered(nn.BatchNorm1d(2), nn.ReLU()))
    assert MergeBatchNorm.find_pairs(outer) == []


class _SE(nn.Module):
    """A squeeze-and-excitation block as MONAI writes it (``x * y`` after a view)."""

    def __init__(self, channels=4):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, channels), nn.Sigmoid())

    def forward(self, x):
        b, c = x.shape[:2]
        y = self.fc(x.mean(tuple(range(2, x.ndim)))).view([b, c] + [1] * (x.ndim - 2))
        return x * y


class _GatedNet(nn.Module):
    def __init__(self, side, detach_gate=False):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.se = _SE()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(4, 2)
        self.side, self.detach_gate = side, detach_gate

    def forward(self, x):
        h = torch.relu(self.conv(x))
        if self.side == 1:
            h = self.pool(h)  # the gate now has the feature map's shape
        if self.detach_gate:
            b, c = h.shape[:2]
            g = self.se.fc(h.mean(tuple(range(2, h.ndim)))).view([b, c] + [1] * (h.ndim - 2))
            h = h * g.detach()
        else:
            h = self.se(h)
        return self.head(h.flatten(2).mean(2))


@pytest.mark.parametrize("side", [1, 4])
@pytest.mark.parametrize("composite", ["epsilon", "epsilon_plus", "alpha1_beta0"])
def test_se_gate_is_a_constant_whatever_the_feature_map_size(side, composite):
    # the same gate, once as the network computes it and once detached by
    # hand: LRP must treat both alike, also when the feature map is 1 x 1 x 1
    # and the gate no longer broadcasts
    torch.manual_seed(side)
    net = _GatedNet(side).double().eval()
    ref = _GatedNet(side, detach_gate=True).double().eval()
    ref.load_state_dict(net.state_dict())
    X = torch.randn(3, 1, 4, 4, 4, dtype=torch.float64)
    lrp = LRP(composite=composite, epsilon=1e-9, conservation="off")
    with no_inference_copy():
        torch.testing.assert_close(lrp.explain(net, X, 1), lrp.explain(ref, X, 1),
                                   rtol=1e-10, atol=1e-12)
