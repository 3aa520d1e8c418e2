"""Perturbation curves and fidelity: quantus parity, axioms, faithful vs noise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance.explainers import GradientXInput
from sklearn_relevance.metrics import (
    deletion_auc,
    fidelity_score,
    insertion_auc,
    perturbation_curve,
)


def _cnn(channels=1, side=8, n_classes=3):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * (side // 2) ** 2, n_classes),
    )
    return net.eval()


@pytest.fixture
def images(rng):
    x = rng.normal(size=(10, 1, 8, 8)).astype(np.float32)
    a = rng.normal(size=(10, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    return x, a, y


@pytest.mark.parametrize("softmax", [True, False])
def test_curve_equals_quantus_pixel_flipping(images, softmax):
    quantus = pytest.importorskip("quantus")
    x, a, y = images
    net = _cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = quantus.PixelFlipping(features_in_step=4, perturb_baseline=0.0,
                                       disable_warnings=True)
        ref = np.asarray(metric(model=net, x_batch=x, y_batch=y, a_batch=a.copy(),
                                softmax=softmax, device="cpu", batch_size=4))
    fr, curves = perturbation_curve(net, x, a, y=y, steps=16, baseline=0.0, target="true",
                                    response="proba" if softmax else "logit")
    np.testing.assert_allclose(fr, np.arange(17) / 16)
    np.testing.assert_allclose(curves[:, 1:], ref, atol=1e-5)
    assert net.training is False


def test_curve_axioms_and_chunking(images):
    x, a, y = images
    net = _cnn()
    xt = torch.as_tensor(x)
    full = net(xt).softmax(1)[np.arange(10), y].detach().numpy()
    base = net(torch.zeros_like(xt)).softmax(1)[np.arange(10), y].detach().numpy()
    _, dele = perturbation_curve(net, x, a, y=y, target="true", steps=8, response="proba")
    _, ins = perturbation_curve(net, x, a, y=y, target="true", steps=8, response="proba", kind="insertion")
    np.testing.assert_allclose(dele[:, 0], full, atol=1e-6)
    np.testing.assert_allclose(dele[:, -1], base, atol=1e-6)
    np.testing.assert_allclose(ins[:, 0], base, atol=1e-6)
    np.testing.assert_allclose(ins[:, -1], full, atol=1e-6)
    _, small = perturbation_curve(net, x, a, y=y, target="true", steps=8, response="proba", batch_size=5)
    np.testing.assert_allclose(small, dele, atol=1e-6)
    # a train-mode module is evaluated in eval mode and left in train mode
    net.train()
    _, again = perturbation_curve(net, x, a, y=y, target="true", steps=8, response="proba")
    assert net.training
    np.testing.assert_allclose(again, dele, atol=1e-6)


def test_channel_broadcast_equals_tiled_relevance(rng):
    x = rng.normal(size=(4, 3, 8, 8)).astype(np.float32)
    a = rng.normal(size=(4, 1, 8, 8)).astype(np.float32)
    net = _cnn(channels=3)
    _, one = perturbation_curve(net, x, a, steps=16, target=1)
    _, tiled = perturbation_curve(net, x, np.repeat(a, 3, axis=1), steps=16, target=1)
    np.testing.assert_allclose(one, tiled, atol=1e-6)


def test_random_order_is_seeded(images):
    x, a, y = images
    net = _cnn()
    c1 = perturbation_curve(net, x, a, y=y, order="random", steps=8, random_state=0)[1]
    c2 = perturbation_curve(net, x, a, y=y, order="random", steps=8, random_state=0)[1]
    c3 = perturbation_curve(net, x, a, y=y, order="random", steps=8, random_state=1)[1]
    np.testing.assert_array_equal(c1, c2)
    assert not np.allclose(c1, c3)


@pytest.mark.parametrize("baseline", ["mean", "blur", 0.5])
def test_baselines_reach_the_last_step(images, baseline):
    x, a, _ = images
    net = _cnn()
    _, curves = perturbation_curve(net, x, a, steps=4, baseline=baseline, target=0)
    from sklearn_relevance._baselines import resolve_baselines

    xt = torch.as_tensor(x)
    ref = net(resolve_baselines(baseline, xt))[:, 0].detach().numpy()
    np.testing.assert_allclose(curves[:, -1], ref, atol=1e-5)


@pytest.fixture(scope="module")
def trained_mlp():
    """An MLP trained on 3 informative of 12 features."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 12)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] - X[:, 2] > 0).astype(np.int64)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: extra threads only contend
    try:
        for _ in range(150):
            opt.zero_grad()
            nn.functional.cross_entropy(net(Xt), yt).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    return net, X[:100], y[:100]


def test_fidelity_separates_faithful_map_from_noise(trained_mlp):
    net, X, y = trained_mlp
    rel = GradientXInput().explain(net, torch.as_tensor(X), torch.as_tensor(y)).detach()
    noise = np.random.default_rng(1).normal(size=X.shape)
    good = fidelity_score(net, X, y, rel, steps=12)
    bad = fidelity_score(net, X, y, noise, steps=12)
    assert good.mean() > 0.3
    assert abs(bad.mean()) < 0.1
    assert (good > bad).mean() > 0.9
    assert deletion_auc(net, X, rel, y=y, steps=12).mean() < deletion_auc(
        net, X, noise, y=y, steps=12).mean() - 0.1
    assert insertion_auc(net, X, rel, y=y, steps=12).mean() > insertion_auc(
        net, X, noise, y=y, steps=12).mean() + 0.1
    acc_good = fidelity_score(net, X, y, rel, steps=12, response="accuracy")
    acc_bad = fidelity_score(net, X, y, noise, steps=12, response="accuracy")
    assert acc_good.mean() > acc_bad.mean() + 0.2


def test_fidelity_literal_linear():
    net = nn.Linear(4, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[4.0, 3.0, 2.0, 1.0]]))
        net.bias.zero_()
    X = torch.ones(1, 4)
    # MIF: 10, 6, 3, 1, 0 -> 3.75; LIF: 10, 9, 7, 4, 0 -> 6.25; (6.25 - 3.75) / 10
    out = fidelity_score(net, X, None, X * net.weight, steps=4, response="logit")
    np.testing.assert_allclose(out, [0.25])


def test_curve_bad_input(images):
    x, a, y = images
    net = _cnn()
    with pytest.raises(ValueError, match="'order' parameter of perturbation_curve"):
        perturbation_curve(net, x, a, order="best")
    with pytest.raises(ValueError, match="'steps' parameter of perturbation_curve"):
        perturbation_curve(net, x, a, steps=65)
    with pytest.raises(ValueError, match="broadcast to it"):
        perturbation_curve(net, x, a[:, :, :4])
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="'X' parameter contains NaN"):
        perturbation_curve(net, bad, a)
    with pytest.raises(ValueError, match="needs a classifier"):
        perturbation_curve(nn.Linear(4, 1), np.ones((2, 4)), np.ones((2, 4)) * [1, 2, 3, 4],
                           response="accuracy", steps=2)
    with pytest.raises(ValueError, match="applies to array inputs"):
        perturbation_curve(net, {"image": x}, {"image": a})
    with pytest.raises(ValueError, match="'baseline' parameter"):
        perturbation_curve(net, x, a, baseline="black")
    const = a.copy()
    const[0] = 1.0
    with pytest.warns(UserWarning, match="constant relevance"):
        _, curves = perturbation_curve(net, x, const, y=y, steps=4)
    assert np.isnan(curves[0]).all() and np.isfinite(curves[1:]).all()


def test_pipeline_estimator_matches_module(rng):
    sr = pytest.importorskip("sklearn_relevance.estimators")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = rng.normal(size=(60, 6)) * 3 + 1
    y = np.where(X[:, 0] > 1, "yes", "no")
    pipe = make_pipeline(StandardScaler(), sr.RelevanceNetClassifier(
        max_epochs=2, random_state=0)).fit(X, y)
    Xt = pipe[0].transform(X)
    rel = pipe[-1].explain(Xt)
    _, ours = perturbation_curve(pipe, X, rel, y=y, steps=6, response="proba")
    module = pipe[-1].module_
    _, ref = perturbation_curve(module, Xt, rel, y=(y == "yes").astype(int), steps=6,
                                response="proba")
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_internal_batch_size_counts_rows_and_batch_size_is_its_deprecated_alias(images):
    x, a, y = images
    net = _cnn()
    _, ref = perturbation_curve(net, x, a, y=y, steps=8)
    for rows in (1, 5, 9, 1000):
        _, got = perturbation_curve(net, x, a, y=y, steps=8, internal_batch_size=rows)
        np.testing.assert_allclose(got, ref, atol=1e-6)
    with pytest.warns(FutureWarning, match="internal_batch_size"):
        _, old = perturbation_curve(net, x, a, y=y, steps=8, batch_size=5)
    np.testing.assert_allclose(old, ref, atol=1e-6)
    with pytest.raises(ValueError, match="only 'internal_batch_size'"):
        perturbation_curve(net, x, a, y=y, steps=8, batch_size=5, internal_batch_size=5)
    with pytest.raises(ValueError, match="'internal_batch_size' parameter of "
                                         "perturbation_curve must be an int"):
        perturbation_curve(net, x, a, y=y, steps=8, internal_batch_size=True)


def test_curve_restores_each_submodules_own_training_flag(images):
    # a train-mode network with one submodule frozen in eval mode keeps that
    # submodule in eval mode (module.train(was) would switch it to train)
    x, a, y = images
    net = _cnn().train()
    net[0].eval()
    perturbation_curve(net, x, a, y=y, steps=4)
    assert net.training and not net[0].training and net[4].training
