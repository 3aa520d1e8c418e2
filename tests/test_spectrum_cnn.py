"""The IsotopeNet-like SpectrumCNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance.modules import SpectrumCNN
from sklearn_relevance.modules.spectrum import Add, LocallyConnected1d, ResidualBlock1d


def test_accepts_flat_and_channel_batches():
    net = SpectrumCNN((200,), 3).eval()
    x = torch.randn(5, 200)
    out = net(x)
    assert out.shape == (5, 3)
    torch.testing.assert_close(out, net(x[:, None, :]))
    assert SpectrumCNN((1, 200), 3).input_shape == (1, 200)
    assert net.input_shape == (200,)  # the shape it was built for, as callers pass it


def test_isotopenet_layout_strides_and_lrp_friendly_structure():
    net = SpectrumCNN((1, 1000), 2)
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock1d)]
    assert [b.main[0].stride[0] for b in blocks] == [5, 3]
    # every block sums its branches through an explicit Add child
    assert all(isinstance(b.add, Add) for b in blocks)
    assert sum(isinstance(m, Add) for m in net.modules()) == 2
    # the locally connected layer sees 1000 / 5 / 3 -> 67 positions
    lc = net.local[0]
    assert isinstance(lc, LocallyConnected1d) and lc.length == 67
    assert lc.conv.groups == 67
    # every ordinary convolution is directly followed by its BatchNorm in a Sequential
    n_conv = 0
    for seq in (m for m in net.modules() if isinstance(m, nn.Sequential)):
        kids = list(seq)
        for i, kid in enumerate(kids):
            if isinstance(kid, nn.Conv1d):
                n_conv += 1
                assert isinstance(kids[i + 1], nn.BatchNorm1d), seq
    convs = [m for m in net.modules() if isinstance(m, nn.Conv1d)]
    assert n_conv == len(convs) - 1  # all but the locally connected (grouped) one
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in net.classifier)
    assert isinstance(net.classifier[-1], nn.Linear)


def test_locally_connected_matches_literal_per_position_maps():
    torch.manual_seed(0)
    c_in, c_out, L = 3, 2, 7
    lc = LocallyConnected1d(c_in, c_out, L)
    x = torch.randn(4, c_in, L)
    w = lc.conv.weight.detach().reshape(L, c_out, c_in)  # group p: c_in -> c_out
    b = lc.conv.bias.detach().reshape(L, c_out)
    ref = torch.stack([x[:, :, p] @ w[p].T + b[p] for p in range(L)], dim=2)
    torch.testing.assert_close(lc(x), ref)
    # weights are not shared: the same input at two positions gives different outputs
    same = torch.ones(1, c_in, L)
    out = lc(same)[0]
    assert not torch.allclose(out[:, 0], out[:, 1])
    with pytest.raises(ValueError, match="LocallyConnected1d expects"):
        lc(torch.zeros(1, c_in, L + 1))


def test_double_backprop_reaches_every_weight():
    torch.manual_seed(0)
    net = SpectrumCNN((1, 120), 2, hidden_units=8)
    x = torch.randn(6, 120, requires_grad=True)
    out = net(x)
    (g,) = torch.autograd.grad(out[:, 1].sum(), x, create_graph=True)
    (g * x).abs().sum().backward()  # an L1 gradient-x-input penalty
    for name, p in net.named_parameters():
        if name.endswith("weight") and p.ndim > 1:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kwargs, match", [
    ({"input_shape": (1, 2, 50)}, "'input_shape' parameter of SpectrumCNN"),
    ({"channels": (8, 16), "strides": (5,)}, "same, non-zero length"),
    ({"dropout": 1.0}, "'dropout' parameter"),
])
def test_bad_parameters(kwargs, match):
    args = {"input_shape": (1, 50), "n_outputs": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SpectrumCNN(**args)


def test_without_local_layer_and_with_hidden_layer():
    net = SpectrumCNN((1, 90), 4, local_channels=None, hidden_units=16)
    assert len(net.local) == 0
    assert net(torch.zeros(2, 90)).shape == (2, 4)


def test_learns_a_peak_through_the_estimator():
    from sklearn_relevance import RelevanceNetClassifier

    rng = np.random.default_rng(0)
    n, L = 120, 90
    y = np.arange(n) % 2
    X = rng.normal(0, 0.3, (n, 1, L)).astype(np.float32)
    X[y == 1, 0, 40:43] += 2.0  # class 1 carries a peak
    clf = RelevanceNetClassifier(max_epochs=10, lr=0.01, batch_size=16, random_state=0,
                                 module__channels=(4, 8), module__stem_channels=4)
    clf.fit(X[:90], y[:90])
    assert isinstance(clf.module_, SpectrumCNN)  # (n, c, L) input picks the CNN
    assert clf.score(X[90:], y[90:]) >= 0.9
    R = np.abs(clf.explain(X[90:][y[90:] == 1], target=1)).sum(axis=(0, 1))
    assert R[36:47].sum() > 0.3 * R.sum()  # relevance sits on the peak (11 of 90 bins)
