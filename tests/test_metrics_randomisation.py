"""Sanity checks (randomisation tests) against quantus 0.6 and their contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sklearn_relevance.explainers import Gradient
from sklearn_relevance.metrics import (
    efficient_model_parameter_randomisation,
    model_parameter_randomisation,
    random_logit,
    randomised_layers,
)

quantus = pytest.importorskip("quantus")


def cnn(ndim, seed=0, classes=3):
    torch.manual_seed(seed)
    conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[ndim]
    return torch.nn.Sequential(conv(1, 3, 3), torch.nn.ReLU(), conv(3, 4, 3), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.LazyLinear(classes))


def data(ndim, n=6, seed=1, side=None):
    side = side or {1: 24, 2: 10, 3: 6}[ndim]
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, *([side] * ndim), generator=g)


def built(ndim, **kw):
    net = cnn(ndim, **kw)
    X = data(ndim)
    net(X)  # materialise the lazy layer
    return net.eval(), X


def explain_func(model, inputs, targets, **kwargs):
    return Gradient().explain(model, torch.as_tensor(inputs),
                              torch.as_tensor(np.asarray(targets))).detach().numpy()


def targets(net, X):
    with torch.no_grad():
        return net(X).argmax(1).numpy()


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("order,q_order", [("cascading", "top_down"),
                                           ("independent", "independent"),
                                           ("bottom_up", "bottom_up")])
@pytest.mark.parametrize("similarity", ["spearman", "pearson"])
def test_mprt_equals_quantus(ndim, order, q_order, similarity):
    net, X = built(ndim)
    y = targets(net, X)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ours = model_parameter_randomisation(net, X, target=y, order=order, similarity=similarity,
                                         layers="all", random_state=7)
    for k, v in net.state_dict().items():  # the caller's network is untouched
        assert torch.equal(v, before[k])
    func = {"spearman": quantus.similarity_func.correlation_spearman,
            "pearson": quantus.similarity_func.correlation_pearson}[similarity]
    q = quantus.MPRT(similarity_func=func, layer_order=q_order, seed=7,
                     disable_warnings=True)(
        model=net, x_batch=X.numpy(), y_batch=y, a_batch=None, explain_func=explain_func,
        channel_first=True)
    q.pop("original")
    assert list(q) == list(ours)
    for name in q:
        np.testing.assert_allclose(ours[name], q[name], atol=1e-5)
    mean = model_parameter_randomisation(net, X, target=y, order=order, similarity=similarity,
                                         layers="mean", random_state=7)
    np.testing.assert_allclose(mean, np.mean([q[k] for k in q], 0), atol=1e-5)


def test_mprt_ssim_equals_quantus_unnormalised():
    # quantus normalises by the batch's largest value; SSIM is not scale free,
    # so both run without normalisation here
    net, X = built(2)
    y = targets(net, X)
    ours = model_parameter_randomisation(net, X, target=y, similarity="ssim",
                                         normalise=False, random_state=3)
    def q_ssim(a, b, **kwargs):  # quantus' MPRT calls .tolist() on ssim's list
        return np.asarray(quantus.similarity_func.ssim(a, b, **kwargs))

    q = quantus.MPRT(similarity_func=q_ssim, seed=3, normalise=False,
                     return_last_correlation=True, disable_warnings=True)(
        model=net, x_batch=X.numpy(), y_batch=y, explain_func=explain_func,
        channel_first=True)
    np.testing.assert_allclose(ours, q, atol=1e-5)


def test_random_logit_equals_quantus():
    net, X = built(2, classes=5)
    y = targets(net, X)
    for similarity, func in [("ssim", quantus.similarity_func.ssim),
                             ("spearman", quantus.similarity_func.correlation_spearman)]:
        ours = random_logit(net, X, target=y, similarity=similarity, normalise=False,
                            random_state=11)
        q = quantus.RandomLogit(similarity_func=func, num_classes=5, seed=11, normalise=False,
                                disable_warnings=True)(
            model=net, x_batch=X.numpy(), y_batch=y, explain_func=explain_func,
            channel_first=True)
        np.testing.assert_allclose(ours, q, atol=1e-5)


def test_efficient_mprt_equals_quantus():
    net, X = built(2)
    y = targets(net, X)
    ours = efficient_model_parameter_randomisation(net, X, target=y, n_bins=20,
                                                   random_state=5)
    q = quantus.EfficientMPRT(seed=5, complexity_func_kwargs={"n_bins": 20},
                              disable_warnings=True)(
        model=net, x_batch=X.numpy(), y_batch=y, explain_func=explain_func,
        channel_first=True)
    np.testing.assert_allclose(ours, q, atol=1e-5)


def test_smooth_mprt_with_one_sample_is_mprt_and_noise_seeded():
    net, X = built(2)
    plain = model_parameter_randomisation(net, X, random_state=1)
    np.testing.assert_allclose(model_parameter_randomisation(net, X, smooth_samples=1,
                                                             random_state=1), plain)
    a = model_parameter_randomisation(net, X, smooth_samples=6, random_state=2)
    b = model_parameter_randomisation(net, X, smooth_samples=6, random_state=2,
                                      internal_batch_size=7)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_smooth_mprt_equals_quantus_on_the_same_noise(monkeypatch):
    """quantus draws its noise with np.random.randn: hand it ours."""

    net, X = built(2)
    y = targets(net, X)
    k, seed = 4, 9
    draws = []
    real = torch.randn

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        draws.append(out.clone())
        return out

    monkeypatch.setattr(torch, "randn", recording)
    ours = model_parameter_randomisation(net, X, target=y, smooth_samples=k,
                                         noise_magnitude=0.2, random_state=seed,
                                         internal_batch_size=X.shape[0])
    monkeypatch.setattr(torch, "randn", real)
    # one draw per noisy copy per explained network (original, randomised);
    # quantus explains the original twice (its a_batch, then "original")
    assert len(draws) == 2 * (k - 1)
    mine = [d.numpy().astype(np.float64) for d in draws]
    queue = mine[:k - 1] + mine
    monkeypatch.setattr(np.random, "randn", lambda *shape: queue.pop(0))

    def q_explain(model, inputs, targets, **kwargs):
        return explain_func(model, np.asarray(inputs, dtype=np.float32), targets)

    monkeypatch.setattr(quantus, "explain", q_explain)
    q = quantus.SmoothMPRT(seed=seed, nr_samples=k, noise_magnitude=0.2,
                           layer_order="top_down", return_last_correlation=True,
                           skip_layers=True, disable_warnings=True)(
        model=net, x_batch=X.numpy(), y_batch=y, explain_func=explain_func,
        explain_func_kwargs={}, channel_first=True)
    assert not queue
    np.testing.assert_allclose(ours, q, atol=1e-5)


def test_randomised_layers_leave_the_network_and_global_rng():
    net, X = built(3)
    state = torch.random.get_rng_state()
    names = [name for name, copy in randomised_layers(net)]
    assert names == ["5", "2", "0"]
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_random_map_explainer_fails_and_gradient_passes(ndim):
    """A map unrelated to the network (the input itself) fails MPRT; the
    gradient of a network passes."""
    net, X = built(ndim)

    class InputMap(Gradient):
        def _explain(self, module, X, target, *, create_graph):
            return X.clone()

    _, fail = model_parameter_randomisation(net, X, explainer=InputMap(), return_verdict=True)
    assert (fail == 0).all()
    _, ok = model_parameter_randomisation(net, X, explainer="gradient", return_verdict=True)
    assert ok.mean() > 0.5


def test_errors_name_the_parameter():
    net, X = built(2)
    with pytest.raises(ValueError, match="'similarity' parameter of model_parameter"):
        model_parameter_randomisation(net, X, similarity="nope")
    with pytest.raises(ValueError, match="'order' parameter"):
        model_parameter_randomisation(net, X, order="sideways")
    with pytest.raises(ValueError, match="'threshold' parameter"):
        model_parameter_randomisation(net, X, similarity="euclidean", return_verdict=True)
    with pytest.raises(ValueError, match="several outputs"):
        random_logit(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(100, 1)), X)


def test_data_randomisation_refits_a_clone_only():
    import warnings

    from sklearn_relevance import RelevanceNetClassifier
    from sklearn_relevance.metrics import data_randomisation

    rng = np.random.RandomState(0)
    X = rng.randn(40, 1, 6, 6).astype(np.float32)
    y = (X[:, 0, :3].sum((1, 2)) > 0).astype(int)
    clf = RelevanceNetClassifier(
        module=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 8), torch.nn.ReLU(),
                                   torch.nn.Linear(8, 2)),
        max_epochs=2, verbose=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
        before = {k: v.clone() for k, v in clf.module_.state_dict().items()}
        a, va = data_randomisation(clf, X[:8], y[:8], X_fit=X, y_fit=y, random_state=1,
                                   return_verdict=True)
        b = data_randomisation(clf, X[:8], y[:8], X_fit=X, y_fit=y, random_state=1)
    for k, v in clf.module_.state_dict().items():
        assert torch.equal(v, before[k])
    np.testing.assert_allclose(a, b, atol=1e-6)  # seeded permutation and clone seed
    assert set(np.unique(va)) <= {0.0, 1.0} and np.all((a >= -1) & (a <= 1))
    with pytest.raises(ValueError, match="'estimator' parameter of data_randomisation"):
        data_randomisation(clf.module_, X[:4], y[:4])
    with pytest.raises(ValueError, match="'y_fit' parameter"):
        data_randomisation(clf, X[:4], y[:4], X_fit=X, y_fit=y[:5])


@pytest.mark.parametrize("name", ["spearman", "abs_spearman", "pearson", "abs_pearson",
                                  "ssim", "cosine", "euclidean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_similarity_to_a_fixed_map_equals_the_similarity(name, dtype):
    # the randomisation tests rank / centre the original maps once and compare
    # them with every randomised network's maps: the values must be the same
    # as comparing each pair afresh (ties, zero maps and both signs included)
    from sklearn_relevance.metrics._similarity import similarity, similarity_to

    gen = torch.Generator().manual_seed(0)
    a = torch.randint(-3, 4, (6, 50), generator=gen).to(dtype)
    a[0] = 0
    b = torch.randn(6, 50, generator=gen, dtype=torch.float64).to(dtype)
    b[1] = torch.round(b[1])
    want = similarity(name, "test")(a, b)
    got = similarity_to(name, a, "test")(b)
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_average_ranks_equal_scipy_with_ties_signed_zeros_and_extremes(dtype):
    from scipy.stats import rankdata

    from sklearn_relevance.metrics._similarity import average_ranks

    gen = torch.Generator().manual_seed(1)
    a = torch.randn(5, 300, generator=gen, dtype=torch.float64).to(dtype)
    a[:, :40] = 0.0
    a[:, 40:60] = -0.0  # ties with 0.0
    a[1, 60:70] = torch.finfo(dtype).max
    a[1, 70:80] = -torch.finfo(dtype).max
    a[2, 80:90] = torch.finfo(dtype).tiny  # smallest normal: above both zeros
    a[2, 90:100] = -torch.finfo(dtype).tiny
    a[3] = torch.round(a[3] * 3)  # many ties
    want = rankdata(a.double().numpy(), axis=1)
    np.testing.assert_array_equal(average_ranks(a).numpy(), want)
    # non-finite maps take the float path: NaN sorted last, as before
    a[4, 0] = float("inf")
    np.testing.assert_array_equal(average_ranks(a).numpy()[:4], want[:4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_histogram_entropy_bins_as_numpy_even_on_the_edges(dtype):
    """eMPRT's entropy uses numpy.histogram's bins (quantus' discrete_entropy):
    values lying exactly on numpy's edges (computed in the maps' dtype), just
    above them, and constant rows fall in numpy's bin."""
    import scipy.stats

    from sklearn_relevance.metrics.randomisation import _histogram_entropy

    rng = np.random.default_rng(0)
    for trial in range(30):
        n_bins = int(rng.choice([3, 10, 100, 256]))
        a = (rng.normal(size=(3, 400)) * 10.0 ** rng.integers(-6, 6)).astype(dtype)
        for r in range(3):
            _, edges = np.histogram(a[r], bins=n_bins)
            pick = rng.integers(0, n_bins + 1, 100)
            a[r, :100] = edges[pick].astype(dtype)
            a[r, 100:110] = np.nextafter(edges[pick[:10]].astype(dtype), dtype(np.inf))
        if trial % 5 == 0:
            a[0] = a[0, 0]
        ref = [scipy.stats.entropy(np.histogram(row, bins=n_bins)[0]) for row in a]
        np.testing.assert_allclose(_histogram_entropy(torch.from_numpy(a), n_bins).numpy(),
                                   ref, rtol=0, atol=1e-12)
