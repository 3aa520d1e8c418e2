"""LRP.layer_relevance: per-layer relevance in and out, for conservation audits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sklearn_relevance.explainers import LRP


def _net(ndim, bias):
    torch.manual_seed(0)
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[ndim]
    return nn.Sequential(conv(2, 3, 3, bias=bias), nn.ReLU(), nn.Flatten(),
                         nn.LazyLinear(2, bias=bias)).double().eval()


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_bias_free_layers_conserve_and_the_ends_match(ndim):
    net = _net(ndim, bias=False)
    X = torch.rand(4, 2, *[5] * ndim, dtype=torch.float64)
    out = net(X)
    lrp = LRP(composite="epsilon", epsilon=1e-12, conservation="off")
    sums = lrp.layer_relevance(net, X, target=1)
    assert set(sums) == {"0", "1", "2", "3"}
    for r_in, r_out in sums.values():
        assert r_in.shape == (4,) and r_in.dtype == torch.float64
        torch.testing.assert_close(r_in, r_out, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(sums["3"][1], out[:, 1].detach())
    R = lrp.explain(net, X, target=1)
    torch.testing.assert_close(sums["0"][0], R.reshape(4, -1).sum(1))


def test_biases_absorb_what_the_audit_shows():
    net = _net(2, bias=True)
    X = torch.rand(3, 2, 5, 5, dtype=torch.float64)
    out = net(X)
    sums = LRP(composite="epsilon", epsilon=1e-12,
               conservation="off").layer_relevance(net, X, target=0)
    absorbed = sum(r_out - r_in for name, (r_in, r_out) in sums.items()
                   if name in ("0", "3"))
    R = LRP(composite="epsilon", epsilon=1e-12, conservation="off").explain(net, X, 0)
    # the output's relevance = what reached the input + what the layers absorbed
    torch.testing.assert_close(R.reshape(3, -1).sum(1) + absorbed, out[:, 0].detach())
    assert float(absorbed.abs().max()) > 1e-6


def test_layer_relevance_checks_its_inputs():
    net = _net(2, bias=False)
    with pytest.raises(ValueError, match="floating point"):
        LRP().layer_relevance(net, torch.zeros(2, 2, 5, 5, dtype=torch.int64), 0)
    with pytest.raises(ValueError, match="'conservation' parameter of LRP"):
        LRP(conservation="maybe").layer_relevance(net, torch.rand(2, 2, 5, 5,
                                                                   dtype=torch.float64))
