"""Float32 precision of the fast paths against captum in float32 (issue 22, defect 7).

A float32 explanation of a ReLU / max-pooling network differs from its
float64 value in two ways: rounding everywhere (tiny), and, where a
pre-activation or two pooled values lie within rounding of each other, a
gate or a pooling winner that flips and moves a whole gradient value
(large, at one place). Which samples flip is a lottery that any change of
rounding order redraws (BatchNorm folding, the split input layer, a
channels-last convolution, a different batch size), so the largest error over
a handful of samples says little. What a speed-up must not change is the
*rate* of such flips and the mean error: both are measured here over many
samples of a generated network with BatchNorm and max pooling, against
captum's own float32 result on the same inputs, with a float64 reference.

The bound is 1.5x captum float32's (the issue's goal) plus a Poisson margin
on the flip count, so that the test never rests on one favourable draw; a
path that computed in lower precision, or skipped a BatchNorm's shift, fails
it by orders of magnitude (checked below with a deliberately degraded path).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.explainers import IntegratedGradients, SmoothGrad
from sklearn_relevance.inference import inference_copy, no_inference_copy

captum_attr = pytest.importorskip("captum.attr")

N, STEPS, FLIP = 512, 8, 1e-4


def _batchnorm(c, gen):
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5, generator=gen)
        bn.running_var.uniform_(0.5, 2.0, generator=gen)
        bn.weight.uniform_(0.5, 1.5, generator=gen)
        bn.bias.uniform_(-0.3, 0.3, generator=gen)
    return bn


def _network(seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 5, padding=2), _batchnorm(16, gen), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), _batchnorm(32, gen), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), _batchnorm(32, gen), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2))
    X = torch.rand(N, 3, 32, 32, generator=gen)
    return net.eval(), X, torch.arange(N) % 2


def _errors(got, exact):
    """Per-sample max |error| / max |exact|, and the mean over all values."""
    got = torch.as_tensor(np.asarray(got) if not torch.is_tensor(got) else got.detach())
    scale = exact.abs().amax(dim=(1, 2, 3), keepdim=True)
    d = ((got.double() - exact).abs() / scale).flatten(1)
    return d.amax(1), float(d.mean())


def _within(ours, peer):
    (ours_max, ours_mean), (peer_max, peer_mean) = ours, peer
    flips, peer_flips = int((ours_max > FLIP).sum()), int((peer_max > FLIP).sum())
    margin = 3.0 * np.sqrt(max(peer_flips, 1)) + 3
    assert flips <= 1.5 * peer_flips + margin, (flips, peer_flips)
    # the mean is dominated by flips too: the same Poisson margin, relative
    assert ours_mean <= (1.5 + margin / max(peer_flips, 1)) * peer_mean, (ours_mean, peer_mean)


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_integrated_gradients_flip_no_more_often_than_captum_float32(seed):
    net, X, t = _network(seed)
    exact = captum_attr.IntegratedGradients(copy.deepcopy(net).double()).attribute(
        X.double(), target=t, n_steps=STEPS)
    peer = _errors(captum_attr.IntegratedGradients(net).attribute(
        X, target=t, n_steps=STEPS), exact)
    # every path: the estimator, a bare module (its own copy), the copy itself
    est = RelevanceNetClassifier(copy.deepcopy(net), max_epochs=0, random_state=0)
    est.fit(X[:2].numpy(), np.array([0, 1]))
    est.module_.load_state_dict(net.state_dict())
    est.module_.eval()
    paths = {
        "estimator": est.explain(X.numpy(), target=t.numpy(),
                                 explainer="integrated_gradients", n_steps=STEPS),
        "bare module": IntegratedGradients(n_steps=STEPS).explain(net, X, t),
    }
    with no_inference_copy():
        paths["copy"] = IntegratedGradients(n_steps=STEPS).explain(inference_copy(net, X), X, t)
        fast = inference_copy(net, X, channels_last=True, fold_batchnorms=True)
        paths["folded, channels-last copy"] = IntegratedGradients(n_steps=STEPS).explain(
            fast, X, t)
    assert inference_copy(net, X) is not net  # the copy was made: split
    for name, attribution in paths.items():
        _within(_errors(attribution, exact), peer)


def test_smoothgrad_flip_no_more_often_than_captum_float32():
    net, X, t = _network(2)
    sg = SmoothGrad(n_samples=4, stdevs=0.1, random_state=0)
    noisy = [X + 0.1 * sg.standard_noise(X, j) for j in range(4)]
    net64 = copy.deepcopy(net).double()
    exact = sum(captum_attr.Saliency(net64).attribute(x.double(), target=t, abs=False)
                for x in noisy) / 4
    peer = _errors(sum(captum_attr.Saliency(net).attribute(x, target=t, abs=False)
                       for x in noisy) / 4, exact)
    _within(_errors(sg.explain(net, X, t), exact), peer)


def test_the_bound_catches_a_degraded_path():
    # the test above can fail: the same network in bfloat16 (a path that lost
    # precision) flips far more often than captum in float32
    net, X, t = _network(0)
    exact = captum_attr.IntegratedGradients(copy.deepcopy(net).double()).attribute(
        X.double(), target=t, n_steps=STEPS)
    peer = _errors(captum_attr.IntegratedGradients(net).attribute(
        X, target=t, n_steps=STEPS), exact)
    low = copy.deepcopy(net).to(torch.bfloat16)
    with no_inference_copy():
        worse = IntegratedGradients(n_steps=STEPS).explain(low, X.to(torch.bfloat16), t)
    with pytest.raises(AssertionError):
        _within(_errors(worse.float(), exact), peer)
