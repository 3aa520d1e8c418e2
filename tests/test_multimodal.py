"""Modality importance, the simulated cases with ground truth, and their evaluation."""

import numpy as np
import pytest
import torch
from sklearn.utils import check_random_state
from torch import nn

from sklearn_relevance.modules.fusion import FusionNet
from sklearn_relevance.multimodal import (
    CASES,
    evaluate_importance,
    make_multimodal_cases,
    modality_importance,
)

SHAPES = {"ct": (1, 8, 8), "clinical": (5,), "lab": (4,)}


def _batch(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(n, *s, generator=g) for k, s in SHAPES.items()}


def _linear_head_net(n_outputs=1, seed=0):
    """FusionNet whose head is one linear layer: importances have closed forms."""
    torch.manual_seed(seed)
    net = FusionNet(SHAPES, n_outputs, head_hidden=(), dropout=0.0)
    net.train()
    with torch.no_grad():  # populate BatchNorm running statistics
        for s in range(5):
            net.fuse(**_batch(64, seed=100 + s))
    return net.eval()


def _per_modality(net, per_feature):
    return {k: float(per_feature[s].sum()) for k, s in net.feature_slices.items()}


def _normalised(d):
    total = sum(d.values())
    return {k: v / total for k, v in d.items()}


def _assert_dict_close(a, b, **kw):
    assert list(a) == list(b)
    np.testing.assert_allclose([a[k] for k in a], [b[k] for k in b], **kw)


# --------------------------------------------------------------------------
# modality_importance against closed forms and literal references
# --------------------------------------------------------------------------
def test_gradient_on_linear_head_is_sum_of_abs_weights():
    net = _linear_head_net()
    w = net.head[-1].weight[0].detach().numpy()
    got = modality_importance(net, _batch())
    _assert_dict_close(got, _normalised(_per_modality(net, np.abs(w))), rtol=1e-5)


def test_integrated_gradients_on_linear_head_is_abs_weight_times_features():
    net = _linear_head_net()
    X = _batch()
    w = net.head[-1].weight[0].detach().numpy()
    h = net.fuse(**X).detach().numpy()
    ref = _per_modality(net, np.abs(w * h).mean(0))
    got = modality_importance(net, X, method="integrated_gradients", n_steps=4,
                              normalize=False)
    _assert_dict_close(got, ref, rtol=1e-5)


def test_permutation_on_linear_head_matches_manual_shuffles():
    net = _linear_head_net()
    X = _batch(n=30)
    w = net.head[-1].weight[0].detach().numpy()
    h = net.fuse(**X).detach().numpy()
    rng = check_random_state(7)
    perms = [rng.permutation(30) for _ in range(3)]
    ref = {}
    for name, cols in net.feature_slices.items():
        diffs = [np.abs((h[:, cols] - h[p][:, cols]) @ w[cols]).mean() for p in perms]
        ref[name] = float(np.mean(diffs))
    got = modality_importance(net, X, method="permutation", n_repeats=3,
                              random_state=7, normalize=False, batch_size=8)
    _assert_dict_close(got, ref, rtol=1e-5, atol=1e-7)


def _reference_gradient(net, X):
    """Literal per-sample loop: |d softmax_c / d fused| for the predicted class."""
    fused = net.fuse(**X).detach()
    total = torch.zeros(fused.shape[1])
    for h in fused:
        h = h[None].clone().requires_grad_(True)
        prob = net.head(h).softmax(1)[0]
        prob[prob.argmax()].backward()
        total += h.grad[0].abs()
    return _normalised(_per_modality(net, (total / len(fused)).numpy()))


@pytest.mark.parametrize("batch_size", [None, 7])
def test_gradient_matches_per_sample_reference(batch_size):
    torch.manual_seed(1)
    net = FusionNet(SHAPES, 3).eval()
    X = _batch(n=25)
    got = modality_importance(net, X, batch_size=batch_size)
    _assert_dict_close(got, _reference_gradient(net, X), rtol=1e-5)


def test_integrated_gradients_match_per_sample_reference():
    torch.manual_seed(5)
    net = FusionNet(SHAPES, 3).eval()
    X = _batch(n=12)
    fused = net.fuse(**X).detach()
    n_steps = 6
    total = torch.zeros(fused.shape[1])
    for h in fused:
        c = net.head(h[None]).argmax()
        grads = []
        for k in range(n_steps):  # Riemann midpoints from the zero baseline
            point = (((k + 0.5) / n_steps) * h)[None].requires_grad_(True)
            net.head(point).softmax(1)[0, c].backward()
            grads.append(point.grad[0])
        total += (torch.stack(grads).mean(0) * h).abs()
    ref = _normalised(_per_modality(net, (total / len(fused)).numpy()))
    got = modality_importance(net, X, method="integrated_gradients", n_steps=n_steps,
                              batch_size=20)
    _assert_dict_close(got, ref, rtol=1e-5)


@pytest.mark.parametrize("method", ["gradient", "permutation", "integrated_gradients"])
def test_chunking_does_not_change_results(method):
    torch.manual_seed(2)
    net = FusionNet(SHAPES, 2).eval()
    X = _batch(n=33)
    a = modality_importance(net, X, method=method, random_state=0)
    b = modality_importance(net, X, method=method, random_state=0, batch_size=10)
    _assert_dict_close(a, b, rtol=1e-5)
    assert sum(a.values()) == pytest.approx(1.0)


def test_irrelevant_modality_gets_no_importance():
    net = _linear_head_net()
    with torch.no_grad():
        net.head[-1].weight[:, net.feature_slices["lab"]] = 0.0
    X = _batch()
    for method in ("gradient", "permutation", "integrated_gradients"):
        assert modality_importance(net, X, method=method, random_state=0)["lab"] == 0.0


def test_target_selects_the_explained_class():
    torch.manual_seed(3)
    net = FusionNet(SHAPES, 3).eval()
    X = _batch(n=20)
    pred = net(**X).argmax(1)
    _assert_dict_close(modality_importance(net, X),
                       modality_importance(net, X, target=pred.numpy()), rtol=1e-6)
    a = modality_importance(net, X, target=0)
    b = modality_importance(net, X, target=2)
    assert not np.allclose(list(a.values()), list(b.values()))


def test_numpy_input_restores_training_mode_and_is_seeded():
    torch.manual_seed(4)
    net = FusionNet(SHAPES, 2).train()
    X = {k: v.numpy().astype(np.float64) for k, v in _batch().items()}
    a = modality_importance(net, X, method="permutation", random_state=3)
    assert net.training
    b = modality_importance(net, X, method="permutation", random_state=3)
    assert a == b


@pytest.mark.parametrize("change, match", [
    (lambda X: {k: v for k, v in X.items() if k != "lab"}, "lab"),
    (lambda X: {**X, "genes": X["lab"]}, "genes"),
    (lambda X: {**X, "lab": X["lab"][:5]}, "lab"),
    (lambda X: {**X, "lab": X["lab"][:, :0]}, "lab"),
    (lambda X: {**X, "clinical": X["clinical"][:, :3]}, "clinical"),
])
def test_bad_modalities_raise_naming_the_key(change, match):
    net = FusionNet(SHAPES, 2).eval()
    with pytest.raises(ValueError, match=match):
        modality_importance(net, change(_batch()))


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "shap"}, "'method'"),
    ({"n_repeats": 0}, "'n_repeats'"),
    ({"n_steps": 1.5}, "'n_steps'"),
    ({"batch_size": 0}, "'batch_size'"),
    ({"target": 5}, "'target'"),
    ({"target": [0, 1]}, "'target'"),
])
def test_bad_parameters_raise(kwargs, match):
    net = FusionNet(SHAPES, 2).eval()
    with pytest.raises(ValueError, match=match):
        modality_importance(net, _batch(), **kwargs)


def test_non_fusion_module_and_array_input_are_refused():
    with pytest.raises(TypeError, match="fuse"):
        modality_importance(nn.Linear(3, 2), {"a": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="dict"):
        modality_importance(FusionNet(SHAPES, 2), torch.zeros(4, 5))


# --------------------------------------------------------------------------
# the simulated cases
# --------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_cases_shapes_balance_and_truth(case):
    X, y, truth = make_multimodal_cases(case, 300, random_state=case, images="digits")
    assert {k: v.shape for k, v in X.items()} == {
        "ct": (300, 1, 8, 8), "clinical": (300, 5), "lab": (300, 4)}
    assert all(v.dtype == np.float32 for v in X.values())
    assert y.sum() == 150
    assert sum(truth.values()) == pytest.approx(1.0)
    assert {m for m, w in truth.items() if w > 0} == set(CASES[case][1])


def test_cases_are_reproducible_and_seed_dependent():
    a = make_multimodal_cases(8, 200, random_state=1, images="digits")
    b = make_multimodal_cases(8, 200, random_state=1, images="digits")
    c = make_multimodal_cases(8, 200, random_state=2, images="digits")
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0]["clinical"], c[0]["clinical"])


def test_labels_follow_the_documented_rules():
    # case 1: CT brightness alone decides; case 2: a linear clinical score
    # (class 1 is the upper half of the score; repeated digits tie in brightness)
    X, y, _ = make_multimodal_cases(1, 400, random_state=0, images="digits")
    bright = X["ct"].mean(axis=(1, 2, 3))
    assert bright[y == 1].min() >= bright[y == 0].max()
    X, y, _ = make_multimodal_cases(2, 400, random_state=0, images="digits")
    s = X["clinical"].astype(float) @ [1.0, -0.8, 0.6, 0.0, 0.0]
    np.testing.assert_array_equal(y, s > np.median(s))
    # case 4: clinical and lab both matter, CT does not
    X, y, _ = make_multimodal_cases(4, 4000, random_state=0, images="digits")
    s_c = X["clinical"].astype(float) @ [1.0, -0.8, 0.6, 0.0, 0.0]
    s_l = X["lab"].astype(float) @ [0.0, 1.0, 1.0, 0.0]
    score = 0.7 * s_c / s_c.std() + 0.3 * s_l / s_l.std()
    assert np.mean(y == (score > np.median(score))) > 0.99
    assert abs(np.corrcoef(X["ct"].mean(axis=(1, 2, 3)), y)[0, 1]) < 0.05


def test_clinical_variables_are_ar1_correlated():
    X, _, _ = make_multimodal_cases(5, 20000, random_state=0, images="digits")
    corr = np.corrcoef(X["clinical"].T)
    idx = np.arange(5)
    np.testing.assert_allclose(corr, 0.5 ** np.abs(idx[:, None] - idx[None]), atol=0.03)
    corr = np.corrcoef(X["lab"].T)
    np.testing.assert_allclose(corr, 0.3 ** np.abs(np.arange(4)[:, None] - np.arange(4)),
                               atol=0.03)


def test_medmnist_images_come_from_the_shared_file(shared_data):
    path = shared_data / "medmnist" / "pneumoniamnist_balanced.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    X, _, _ = make_multimodal_cases(3, 50, random_state=0, data_dir=shared_data,
                                    images="medmnist")
    assert X["ct"].shape == (50, 1, 28, 28)
    with np.load(path) as f:
        pool = np.concatenate([f[f"{s}_images"] for s in ("train", "val", "test")])
    real = {row.tobytes() for row in pool.reshape(len(pool), -1)}
    # every simulated image is one of the real ones
    rows = np.rint(X["ct"].reshape(50, -1) * 255).astype(np.uint8)
    assert all(row.tobytes() in real for row in rows)


def test_missing_medmnist_raises(tmp_path):
    with pytest.raises(ValueError, match="medmnist"):
        make_multimodal_cases(1, 10, data_dir=tmp_path, images="medmnist")


@pytest.mark.parametrize("kwargs, match", [
    ({"case": 0}, "'case'"), ({"case": 9}, "'case'"), ({"case": "1"}, "'case'"),
    ({"n_samples": 1}, "'n_samples'"), ({"images": "cifar"}, "'images'"),
])
def test_bad_case_parameters(kwargs, match):
    kwargs = {"case": 1, "n_samples": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_multimodal_cases(**kwargs)


# --------------------------------------------------------------------------
# evaluation against ground truth
# --------------------------------------------------------------------------
def _small_estimator(epochs=10):
    est = pytest.importorskip("sklearn_relevance.estimators")
    return est.RelevanceNetClassifier(
        max_epochs=epochs, lr=0.005, optimizer=torch.optim.AdamW,
        optimizer__weight_decay=0.01, random_state=0)


def test_evaluate_importance_recovers_two_cases():
    res = evaluate_importance(_small_estimator(8), cases=[2, 4], n_samples=600,
                              methods=("gradient", "permutation"), images="digits")
    t = res.table
    assert t["case"] == [2, 2, 4, 4] and t["method"] == ["gradient", "permutation"] * 2
    for i in range(4):
        imp, truth = t["importance"][i], t["truth"][i]
        assert max(imp, key=imp.get) == "clinical"
        assert imp["ct"] < 0.25
        np.testing.assert_allclose(
            t["rmse"][i], np.sqrt(np.mean([(imp[k] - truth[k]) ** 2 for k in truth])))
    assert res.summary["gradient"]["rbo"] >= 0.9
    assert res.summary["gradient"]["rmse"] <= 0.2
    assert min(t["accuracy"]) > 0.8


@pytest.mark.parametrize("kwargs, match", [
    ({"methods": "shap"}, "'methods'"), ({"cases": [0]}, "'cases'"),
    ({"test_size": 1.0}, "'test_size'"), ({"p": 1.0}, "'p'"),
])
def test_evaluate_importance_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate_importance(object(), **kwargs)


@pytest.mark.slow
def test_gradient_method_meets_the_target_on_all_eight_cases():
    res = evaluate_importance(methods="gradient")
    assert res.summary["gradient"]["rbo"] >= 0.9
    assert res.summary["gradient"]["rmse"] <= 0.13


# --------------------------------------------------------------------------
# statistically honest scores: ties, chance levels, disjoint images
# --------------------------------------------------------------------------
def test_ties_in_the_truth_cannot_be_won_by_the_estimate():
    from sklearn_relevance.multimodal import _agreement

    equal = [1 / 3] * 3
    # case 5: every estimate scores the same RBO (the old code gave 1.0 to any)
    scores = {_agreement(est, equal, 0.9)[0] for est in
              ([0.1, 0.5, 0.4], [0.8, 0.1, 0.1], [1 / 3] * 3, [0.2, 0.3, 0.5])}
    assert len({round(v, 12) for v in scores}) == 1 and scores.pop() < 0.95
    # tied absent modalities: their order in the estimate does not matter
    a = _agreement([0.9, 0.06, 0.04], [1.0, 0.0, 0.0], 0.9)[0]
    b = _agreement([0.9, 0.04, 0.06], [1.0, 0.0, 0.0], 0.9)[0]
    assert a == pytest.approx(b)
    # an estimate's own ties are averaged too: a uniform estimate is no ranking
    u = _agreement([1 / 3] * 3, [0.5, 0.3, 0.2], 0.9)[0]
    right = _agreement([0.5, 0.3, 0.2], [0.5, 0.3, 0.2], 0.9)[0]
    assert u < right == pytest.approx(1.0)


def test_chance_levels_are_reported_beside_every_score():
    res = evaluate_importance(_small_estimator(3), cases=[1, 5], n_samples=300,
                              images="digits")
    t = res.table
    for key in ("rbo_random", "rmse_random", "rbo_uniform", "rmse_uniform"):
        assert len(t[key]) == 2 and np.isfinite(t[key]).all()
    # RBO of three modalities is compressed: chance sits near 0.90
    assert 0.88 < t["rbo_random"][0] < 0.92
    assert t["rmse_uniform"][1] == pytest.approx(0.0)  # case 5: uniform is the truth
    assert t["rbo"][1] == pytest.approx(t["rbo_uniform"][1])  # ...and no RBO can win it
    assert set(res.summary) == {"gradient", "random", "uniform"}


def test_no_image_crosses_the_train_test_split():
    n = 1500  # most of the 1,797 digits: the old draw (with replacement) shared images
    X, _, _ = make_multimodal_cases(3, n, random_state=0, images="digits",
                                    test_size=1 / 3)
    rows = X["ct"].reshape(n, -1)
    n_train = n - 500
    train = {r.tobytes() for r in rows[:n_train]}
    assert not any(r.tobytes() in train for r in rows[n_train:])
    # more samples than images: repeats only within a part
    X, _, _ = make_multimodal_cases(3, 2400, random_state=0, images="digits",
                                    test_size=0.25)
    rows = X["ct"].reshape(2400, -1)
    train = {r.tobytes() for r in rows[:1800]}
    assert not any(r.tobytes() in train for r in rows[1800:])
    with pytest.raises(ValueError, match="'test_size'"):
        make_multimodal_cases(3, 100, images="digits", test_size=1.5)


def test_evaluate_importance_progress_bar_is_off_by_default(capsys):
    evaluate_importance(_small_estimator(1), cases=[2], n_samples=120, images="digits")
    assert "evaluate_importance" not in capsys.readouterr().err
    evaluate_importance(_small_estimator(1), cases=[2], n_samples=120, images="digits",
                        verbose=1)
    assert "evaluate_importance" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'verbose'"):
        evaluate_importance(object(), verbose=-1)


def test_modality_importance_explains_the_class_predict_returns(monkeypatch):
    # target=None on a fitted estimator is the class predict returns (the one
    # target policy), not an arg-max of the function's own fuse / head forward
    from sklearn_relevance import RelevanceNetClassifier

    X = {k: v.numpy() for k, v in _batch(60, seed=3).items()}
    y = np.arange(60) % 3
    est = RelevanceNetClassifier(FusionNet, module__head_hidden=(), max_epochs=1,
                                 random_state=0).fit(X, y)
    forced = np.full(60, 2, dtype=np.int64)  # what "predict" says, here forced
    monkeypatch.setattr(est, "_predicted_indices", lambda X_, **kw: forced)
    got = modality_importance(est, X)
    want = modality_importance(est, X, target=forced)
    _assert_dict_close(got, want, rtol=0, atol=0)
    assert got != modality_importance(est, X, target=np.zeros(60, dtype=np.int64))
