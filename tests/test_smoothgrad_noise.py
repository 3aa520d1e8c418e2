"""SmoothGrad.standard_noise: the very noise explain adds, for references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance.explainers import Gradient, SmoothGrad


class _TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(2, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, spectrum, clinical):
        return self.out(torch.tanh(self.a(spectrum) + self.b(clinical)))


def _module(ndim):
    torch.manual_seed(0)
    if ndim == 1:
        return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.Tanh(), nn.Flatten(),
                         nn.LazyLinear(3)).double()


@pytest.mark.parametrize("shape", [(5, 6), (5, 2, 6, 6)])
@pytest.mark.parametrize("internal_batch_size", [None, 3])
def test_explain_averages_gradients_at_the_noisy_inputs(shape, internal_batch_size):
    module = _module(len(shape) - 1)
    X = torch.randn(shape, dtype=torch.float64)
    module(X)  # materialise the lazy layer
    sg = SmoothGrad(n_samples=6, noise_level=0.2, random_state=3,
                    internal_batch_size=internal_batch_size)
    flat = X.reshape(len(X), -1)
    std = (0.2 * (flat.amax(1) - flat.amin(1))).view(-1, *[1] * (X.ndim - 1))
    target = torch.tensor([0, 1, 2, 0, 1])
    ref = sum(Gradient().explain(module, X + std * sg.standard_noise(X, j), target)
              for j in range(6)) / 6
    torch.testing.assert_close(sg.explain(module, X, target), ref, rtol=1e-10, atol=1e-12)


def test_dict_inputs_get_noise_of_their_structure():
    torch.manual_seed(0)
    module = _TwoInputs().double()
    X = {"spectrum": torch.randn(4, 3, dtype=torch.float64),
         "clinical": torch.randn(4, 2, dtype=torch.float64)}
    sg = SmoothGrad(n_samples=3, stdevs=0.1, random_state=0)
    noise = [sg.standard_noise(X, j) for j in range(3)]
    assert set(noise[0]) == set(X) and noise[0]["clinical"].shape == (4, 2)
    ref = {k: 0 for k in X}
    for e in noise:
        g = Gradient().explain(module, {k: X[k] + 0.1 * e[k] for k in X}, 1)
        ref = {k: ref[k] + g[k] / 3 for k in X}
    got = sg.explain(module, X, 1)
    for k in X:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-10, atol=1e-12)


def test_the_noise_follows_the_dtype_and_is_the_same_in_float64():
    X = torch.randn(3, 4)
    sg = SmoothGrad(n_samples=2, random_state=0)
    e32 = sg.standard_noise(X, 1)
    assert e32.dtype == torch.float32 and e32.shape == X.shape
    assert torch.equal(sg.standard_noise(X, 1), e32)
    assert not torch.equal(sg.standard_noise(X, 0), e32)


@pytest.mark.parametrize("random_state", [None, np.random.RandomState(0), True])
def test_noise_needs_an_int_seed(random_state):
    sg = SmoothGrad(random_state=random_state)
    with pytest.raises(ValueError, match="'random_state' parameter of SmoothGrad must be an int"):
        sg.standard_noise(torch.zeros(2, 3), 0)


@pytest.mark.parametrize("sample", [-1, 4, 1.0, True])
def test_noise_sample_out_of_range(sample):
    sg = SmoothGrad(n_samples=4, random_state=0)
    with pytest.raises(ValueError, match=r"'sample' parameter of standard_noise .*\[0, 3\]"):
        sg.standard_noise(torch.zeros(2, 3), sample)


def test_noise_checks_X():
    with pytest.raises(ValueError, match="floating point"):
        SmoothGrad(random_state=0).standard_noise(torch.zeros(2, 3, dtype=torch.int64), 0)
