"""FusionNet: per-modality encoders, post-fusion features, head; estimator with dict X."""

import numpy as np
import pytest
import torch

from sklearn_relevance.modules import default_module
from sklearn_relevance.modules.fusion import FusionNet

SHAPES = {"ct": (1, 12, 12), "clinical": (5,)}


def _batch(n=6, shapes=SHAPES, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(n, *s, generator=g) for k, s in shapes.items()}


def test_default_module_picks_fusionnet_for_dict_shapes():
    assert default_module(SHAPES) is FusionNet


@pytest.mark.parametrize("shapes", [
    SHAPES,
    {"mri": (1, 8, 8, 8), "clinical": (3,), "lab": (4,)},
    {"a": (2, 10, 10), "b": (1, 6, 6)},
])
def test_forward_is_head_of_fused_features(shapes):
    net = FusionNet(shapes, 3).eval()
    X = _batch(shapes=shapes)
    fused = net.fuse(**X)
    assert fused.shape == (6, net.n_fused)
    torch.testing.assert_close(net(**X), net.head(fused))
    # slices tile the fused vector in the order of input_shape
    stops = [s.stop for s in net.feature_slices.values()]
    starts = [s.start for s in net.feature_slices.values()]
    assert list(net.feature_slices) == list(shapes)
    assert starts == [0, *stops[:-1]] and stops[-1] == net.n_fused
    # each slice holds exactly that modality's encoding
    for name, cols in net.feature_slices.items():
        torch.testing.assert_close(fused[:, cols], net.encoders[name](X[name]))


def test_changing_one_modality_changes_only_its_slice():
    net = FusionNet(SHAPES, 2).eval()
    X = _batch()
    X2 = dict(X, clinical=X["clinical"] + 1.0)
    a, b = net.fuse(**X), net.fuse(**X2)
    cols = net.feature_slices["clinical"]
    torch.testing.assert_close(a[:, net.feature_slices["ct"]], b[:, net.feature_slices["ct"]])
    assert (a[:, cols] - b[:, cols]).abs().max() > 1e-3


def test_fused_features_are_standardised_in_training():
    net = FusionNet(SHAPES, 2).train()
    fused = net.fuse(**_batch(n=64))
    torch.testing.assert_close(fused.mean(0), torch.zeros(net.n_fused), atol=1e-5, rtol=0)
    torch.testing.assert_close(fused.var(0, unbiased=False), torch.ones(net.n_fused),
                               atol=5e-3, rtol=0)


def test_raw_tabular_encoder_keeps_values():
    net = FusionNet(SHAPES, 2, tabular_encoder="raw", n_features=7).eval()
    assert net.feature_slices == {"ct": slice(0, 7), "clinical": slice(7, 12)}
    X = _batch()
    fused = net.fuse(**X)
    # fresh BatchNorm running stats are mean 0, var 1: raw values pass through
    torch.testing.assert_close(fused[:, 7:], X["clinical"] / np.sqrt(1 + 1e-5))


def test_same_seed_same_network():
    torch.manual_seed(3)
    a = FusionNet(SHAPES, 2)
    torch.manual_seed(3)
    b = FusionNet(SHAPES, 2)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb)


def test_gradients_reach_every_encoder():
    net = FusionNet({"ct": (1, 8, 8), "clinical": (3,), "lab": (2,)}, 2)
    X = _batch(n=8, shapes={"ct": (1, 8, 8), "clinical": (3,), "lab": (2,)})
    net(**X).sum().backward()
    for name, enc in net.encoders.items():
        grads = [p.grad for p in enc.parameters()]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), name


@pytest.mark.parametrize("kwargs, match", [
    ({"input_shape": (1, 28, 28)}, "non-empty dict"),
    ({"input_shape": {}}, "non-empty dict"),
    ({"input_shape": {"bad.name": (3,)}}, "identifiers"),
    ({"input_shape": {"seq": (2, 30)}}, "'seq'"),
    ({"input_shape": {"x": (0,)}}, r"input_shape\['x'\]"),
    ({"input_shape": SHAPES, "tabular_encoder": "linear"}, "tabular_encoder"),
    ({"input_shape": SHAPES, "n_features": 0}, "n_features"),
    ({"input_shape": SHAPES, "n_features": True}, "'n_features' parameter of FusionNet"),
    ({"input_shape": SHAPES, "dropout": 1.0}, "dropout"),
    ({"input_shape": SHAPES, "n_outputs": 0}, "n_outputs"),
])
def test_bad_construction_raises(kwargs, match):
    kwargs = {"n_outputs": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        FusionNet(**kwargs)


def test_missing_or_extra_modality_is_named():
    net = FusionNet(SHAPES, 2)
    X = _batch()
    with pytest.raises(ValueError, match=r"missing \['clinical'\]"):
        net(ct=X["ct"])
    with pytest.raises(ValueError, match=r"unexpected \['lab'\]"):
        net(**X, lab=X["clinical"])


# --------------------------------------------------------------------------
# through the estimator (dict X)
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    est_mod = pytest.importorskip("sklearn_relevance.estimators")
    rng = np.random.default_rng(0)
    X = {"ct": rng.random((80, 1, 8, 8)), "clinical": rng.standard_normal((80, 3))}
    y = (X["clinical"][:, 0] + X["ct"].mean(axis=(1, 2, 3)) > 0.5).astype(int)
    clf = est_mod.RelevanceNetClassifier(max_epochs=2, batch_size=32, random_state=0)
    return clf.fit(X, y), X, y


def test_estimator_builds_fusionnet_and_explains_dicts(fitted):
    clf, X, _ = fitted
    assert isinstance(clf.module_, FusionNet)
    assert clf.module_.input_shape == {"ct": (1, 8, 8), "clinical": (3,)}
    rel = clf.explain(X)
    assert isinstance(rel, dict) and set(rel) == set(X)
    assert all(rel[k].shape == X[k].shape for k in X)
    assert clf.predict_proba(X).shape == (80, 2)


def test_estimator_rejects_other_keys_and_lengths(fitted):
    clf, X, _ = fitted
    with pytest.raises(ValueError, match="clinical"):
        clf.predict({"ct": X["ct"]})
    with pytest.raises(ValueError, match="lab"):
        clf.predict({**X, "lab": X["clinical"]})
    with pytest.raises(ValueError, match="clinical"):
        clf.predict({"ct": X["ct"], "clinical": X["clinical"][:10]})


def test_estimator_names_empty_modality(fitted):
    clf, X, _ = fitted
    with pytest.raises(ValueError, match="clinical"):
        clf.predict({"ct": X["ct"], "clinical": X["clinical"][:, :0]})


def test_grid_search_over_dict_input_with_slicedict():
    # scikit-learn's splitters index X by rows: a plain dict has len() = number of
    # modalities, so dict X goes through skorch's SliceDict (a dict sliced by rows)
    est_mod = pytest.importorskip("sklearn_relevance.estimators")
    from sklearn.model_selection import GridSearchCV
    from skorch.helper import SliceDict

    rng = np.random.default_rng(1)
    X = SliceDict(ct=rng.random((60, 1, 6, 6), dtype=np.float32),
                  clinical=rng.standard_normal((60, 3), dtype=np.float32))
    y = (X["clinical"][:, 0] > 0).astype(int)
    gs = GridSearchCV(est_mod.RelevanceNetClassifier(max_epochs=1, random_state=0),
                      {"lr": [0.01, 0.001]}, cv=2).fit(X, y)
    assert isinstance(gs.best_estimator_.module_, FusionNet)
    assert gs.predict(X).shape == (60,)
