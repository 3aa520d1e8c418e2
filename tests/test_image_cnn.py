"""ImageCNN: 2D/3D layout (the MRI seed's network), LRP-friendly order, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sklearn_relevance.datasets import make_lesion_images
from sklearn_relevance.modules import ImageCNN


def _types(seq):
    return [type(m) for m in seq]


def test_3d_default_follows_the_mri_seed():
    net = ImageCNN((1, 32, 32, 32), 2)
    expected = []
    for _ in range(4):
        expected += [nn.Conv3d, nn.BatchNorm3d, nn.ReLU, nn.MaxPool3d]
    assert _types(net.features) == expected
    convs = [m for m in net.features if isinstance(m, nn.Conv3d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64]
    assert all(c.kernel_size == (3, 3, 3) for c in convs)
    linears = [m for m in net.classifier if isinstance(m, nn.Linear)]
    assert len(linears) == 2 and linears[-1].out_features == 2
    assert any(isinstance(m, nn.Dropout) for m in net.classifier)
    # 32 -> 2 after four poolings: 64 * 2 ** 3 features enter the head
    assert linears[0].in_features == 64 * 8
    assert net.n_spatial_dims == 3


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 20, 24), (1, 12, 16, 16), (2, 40)])
def test_forward_shapes_and_batchnorm_follows_conv(shape):
    net = ImageCNN(shape, 3).eval()
    out = net(torch.randn(4, *shape))
    assert out.shape == (4, 3)
    layers = list(net.features)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.modules.conv._ConvNd):
            assert isinstance(layers[i + 1], nn.modules.batchnorm._BatchNorm)


def test_small_inputs_skip_pooling_instead_of_failing():
    net = ImageCNN((1, 5, 5), 2)
    pools = [m for m in net.features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 2  # 5 -> 2 -> 1, then no more pooling
    assert net(torch.zeros(2, 1, 5, 5)).shape == (2, 2)


def test_options_change_the_layout():
    net = ImageCNN((1, 16, 16), 2, channels=(4, 6), batchnorm=False, hidden_units=10,
                   dropout=0.0)
    assert _types(net.features) == [nn.Conv2d, nn.ReLU, nn.MaxPool2d] * 2
    assert not any(isinstance(m, nn.Dropout) for m in net.classifier)
    assert [m.out_features for m in net.classifier if isinstance(m, nn.Linear)] == [10, 2]


@pytest.mark.parametrize("shape", [(16,), (1, 2, 3, 4, 5), (1, 0, 4), None])
def test_bad_input_shape(shape):
    with pytest.raises(ValueError, match="input_shape"):
        ImageCNN(shape, 2)


def test_follows_dtype_and_is_deterministic_in_eval():
    net = ImageCNN((1, 16, 16), 2).double().eval()
    X = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    out = net(X)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, net(X))


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: threads only add contention
    yield
    torch.set_num_threads(n)


def test_learns_synthetic_lesions(one_thread):
    torch.manual_seed(0)
    X, y, _ = make_lesion_images(384, shape=(24, 24), random_state=0)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    net = ImageCNN((1, 24, 24), 2, channels=(8, 16), hidden_units=32, dropout=0.1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(10):
        for idx in torch.randperm(256).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(net(Xt[idx]), yt[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(Xt[256:]).argmax(1) == yt[256:]).float().mean().item()
    # a linear model on the pixels reaches ~0.85 on this task (test_datasets)
    assert acc > 0.88, acc
