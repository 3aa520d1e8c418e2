"""Training with expert masks: validation, routing of masks wherever samples go."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
import torch
from skorch.dataset import ValidSplit
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    LeaveOneGroupOut,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_relevance import RelevanceNetClassifier, RelevanceNetRegressor
from sklearn_relevance.callbacks import RelevanceScoring
from sklearn_relevance.metrics import make_relevance_scorer, relevance_mass_accuracy
from sklearn_relevance.penalties import RelevancePenalty, RightReasonsPenalty

N, F = 40, 6


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, F)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def _id_masks(n=N, f=F):
    """Masks whose value names the sample: row i holds (i + 1) / (n + 1)."""
    return np.repeat(((np.arange(n) + 1) / (n + 1))[:, None], f, 1).astype("float32")


def _ids(mask):
    m = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    return np.rint(m.reshape(len(m), -1)[:, 0] * (N + 1) - 1).astype(int)


CALLS = []


class RecordingPenalty(RelevancePenalty):
    """A user subclass: records which samples' masks each call receives."""

    def __call__(self, module, X, y_pred, y_true=None, *, mask=None, **kwargs):
        CALLS.append((kwargs.get("create_graph", True),
                      None if mask is None else _ids(mask)))
        return super().__call__(module, X, y_pred, y_true, mask=mask, **kwargs)


FITS = []


class RecordingClassifier(RelevanceNetClassifier):
    def fit(self, X, y, relevance_mask=None, **fit_params):
        FITS.append(None if relevance_mask is None else _ids(relevance_mask))
        return super().fit(X, y, relevance_mask=relevance_mask, **fit_params)


def _weights(net):
    return torch.cat([p.detach().reshape(-1) for p in net.module_.parameters()])


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    FITS.clear()
    yield
    sklearn.set_config(enable_metadata_routing=False)


# ------------------------------------------------------------ same as before
# Unmasked training must stay what it was before masks existed: a training
# step's gradient is that of ``loss + relevance_penalty * penalty`` computed
# literally in float64 on a copy of the network (the same weights and batch).
# A float64 reference, not numbers one CPU produced: float32 rounding differs
# between CPUs (AVX-512 moved trained weights by 4.8% from hard-coded values).
def _reference_configs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 6)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    Xi = rng.normal(size=(24, 1, 8, 8)).astype("float32")
    yi = (Xi[:, 0, :4].mean((1, 2)) > 0).astype(int)
    return {
        "plain": (RelevanceNetClassifier(batch_size=16, random_state=0), X, y),
        "gxi": (RelevanceNetClassifier(relevance_penalty=0.1, batch_size=16,
                                       random_state=0), X, y),
        "ig": (RelevanceNetClassifier(
            relevance_penalty=0.1, relevance_explainer="ig", relevance_explainer__n_steps=4,
            relevance_target="all", batch_size=16, random_state=0), X, y),
        "grad_l2_img": (RelevanceNetClassifier(
            relevance_penalty=0.1, relevance_explainer="gradient", relevance_norm="l2",
            module__dropout=0.0, batch_size=8, random_state=0), Xi, yi),
        "reg": (RelevanceNetRegressor(relevance_penalty=0.1, batch_size=16, random_state=0),
                X, X[:, 0] - X[:, 2]),
    }


@pytest.mark.parametrize("name", sorted(_reference_configs()))
def test_unmasked_training_unchanged(name):
    import copy

    net, X, y = _reference_configs()[name]
    net.set_params(max_epochs=1).fit(X, y)  # trained weights, not the initial ones
    Xb = torch.as_tensor(X[:16])
    yb = torch.as_tensor(y[:16] if net._is_regressor else net._encode_targets(y[:16], 16))
    if net._is_regressor:
        yb = yb.float().reshape(-1, 1)
    reference = copy.deepcopy(net.module_).double().train()
    net.module_.zero_grad()
    net.train_step_single((Xb, yb))
    got = [p.grad.double() for p in net.module_.parameters()]

    x = Xb.double().requires_grad_(True)
    out = reference(x)
    loss = copy.deepcopy(net.criterion_)(out, yb.double() if net._is_regressor else yb)
    if net.relevance_penalty > 0:
        rel = net._penalty()(reference, x, out, yb.double() if net._is_regressor else yb,
                             create_graph=True, regression=net._is_regressor)
        loss = loss + net.relevance_penalty * rel
    want = torch.autograd.grad(loss, list(reference.parameters()))
    scale = max(float(w.abs().max()) for w in want)  # of the whole gradient
    assert scale > 0
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5 * scale)


def test_zero_masks_are_drr_and_ones_remove_the_penalty(data):
    X, y = data
    kw = dict(relevance_penalty=0.3, max_epochs=3, batch_size=16, random_state=0)
    drr = RelevanceNetClassifier(**kw).fit(X, y)
    zeros = RelevanceNetClassifier(**kw).fit(X, y, relevance_mask=np.zeros_like(X))
    torch.testing.assert_close(_weights(drr), _weights(zeros), rtol=1e-6, atol=1e-7)
    ones = RelevanceNetClassifier(**kw).fit(X, y, relevance_mask=np.ones_like(X))
    plain = RelevanceNetClassifier(**{**kw, "relevance_penalty": 0.0}).fit(X, y)
    assert np.allclose(ones.history[:, "train_relevance"], 0.0)
    torch.testing.assert_close(_weights(ones), _weights(plain), rtol=1e-5, atol=1e-6)


def test_permuted_masks_change_the_result(data):
    X, y = data
    masks = np.zeros_like(X)
    masks[:, :2] = 1
    masks[::2, :2] = 0
    masks[::2, 3:] = 1
    kw = dict(relevance_penalty=1.0, max_epochs=3, batch_size=16, random_state=0)
    a = RelevanceNetClassifier(**kw).fit(X, y, relevance_mask=masks)
    b = RelevanceNetClassifier(**kw).fit(X, y, relevance_mask=masks)
    c = RelevanceNetClassifier(**kw).fit(
        X, y, relevance_mask=masks[np.random.default_rng(1).permutation(N)])
    assert torch.equal(_weights(a), _weights(b))
    assert not torch.allclose(_weights(a), _weights(c))


def test_masked_penalty_counts_only_relevance_outside_the_masks():
    module = torch.nn.Linear(4, 2)
    X = torch.randn(6, 4, requires_grad=True)
    out = module(X)
    y = torch.zeros(6, dtype=torch.long)
    pen = RelevancePenalty(norm="l1").resolved()
    rel = X * module.weight[0]  # gradient x input of class 0
    mask = torch.zeros(6, 4)
    mask[:, :2] = 1
    got = pen(module, X, out, y, mask=mask)
    expected = rel[:, 2:].abs().sum(1).mean()
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("unannotated", ["skip", "drr"])
def test_unannotated_samples(unannotated):
    module = torch.nn.Linear(4, 2)
    X = torch.randn(6, 4, requires_grad=True)
    out = module(X)
    y = torch.zeros(6, dtype=torch.long)
    mask = torch.zeros(6, 4)
    mask[:, 0] = 1
    mask[:3] = float("nan")
    pen = RelevancePenalty(unannotated=unannotated).resolved()
    per_sample = (X * module.weight[0]).abs()
    annotated = per_sample[3:, 1:].sum(1)
    if unannotated == "skip":
        expected = annotated.sum() / 6
    else:
        expected = (per_sample[:3].sum(1).sum() + annotated.sum()) / 6
    torch.testing.assert_close(pen(module, X, out, y, mask=mask), expected)


def test_nan_masks_train_like_the_plain_loss_when_skipped(data):
    X, y = data
    kw = dict(relevance_penalty=0.5, max_epochs=2, batch_size=16, random_state=0)
    nan = RelevanceNetClassifier(**kw).fit(X, y, relevance_mask=np.full_like(X, np.nan))
    plain = RelevanceNetClassifier(**{**kw, "relevance_penalty": 0.0}).fit(X, y)
    torch.testing.assert_close(_weights(nan), _weights(plain), rtol=1e-5, atol=1e-6)


def test_broadcast_masks_equal_full_masks():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 1, 6, 6)).astype("float32")
    y = (X[:, 0, :3].mean((1, 2)) > 0).astype(int)
    m = (rng.random((16, 6, 6)) > 0.5).astype("float32")
    kw = dict(relevance_penalty=0.5, max_epochs=2, batch_size=8, random_state=0,
              relevance_explainer="gradient")
    a = RelevanceNetClassifier(**kw).fit(X, y, relevance_mask=m)
    b = RelevanceNetClassifier(**kw).fit(X, y, relevance_mask=m[:, None])
    assert torch.equal(_weights(a), _weights(b))


@pytest.mark.parametrize("mask, message", [
    (np.ones((N - 1, F)), "one mask per sample of X \\(40\\). Got 39 masks"),
    (np.ones((N, F + 1)), "broadcastable to X's sample shape \\(6,\\). Got masks of shape \\(7,\\)"),
    (np.full((N, F), 2.0), "values in \\[0, 1\\]"),
    (np.where(np.eye(N, F) > 0, np.nan, 1.0), "all NaN for an unannotated sample"),
    ({"a": np.ones((N, F))}, "be an array of masks for array input X"),
    (np.array(0.5), "Got a scalar instead"),
])
def test_bad_masks_are_refused_before_training(data, mask, message):
    X, y = data
    clf = RelevanceNetClassifier(relevance_penalty=0.1, max_epochs=1)
    with pytest.raises(ValueError, match=f"The 'relevance_mask' parameter of "
                       f"RelevanceNetClassifier must .*{message}"):
        clf.fit(X, y, relevance_mask=mask)
    assert not clf.initialized_


def test_dict_masks():
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(size=(12, 3)).astype("float32"),
         "b": rng.normal(size=(12, 2)).astype("float32")}
    with pytest.raises(ValueError, match="keys among X's modalities"):
        RelevanceNetClassifier().fit(X, np.arange(12) % 2, relevance_mask={"c": np.ones((12, 3))})
    with pytest.raises(ValueError, match="dict of masks for dict input"):
        RelevanceNetClassifier().fit(X, np.arange(12) % 2, relevance_mask=np.ones((12, 3)))
    module = torch.nn.Bilinear(3, 2, 2)

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = module

        def forward(self, a, b):
            return self.m(a, b)

    Xt = {k: torch.as_tensor(v, dtype=torch.float32).requires_grad_() for k, v in X.items()}
    out = Two()(**Xt)
    y = torch.zeros(12, dtype=torch.long)
    pen = RelevancePenalty(explainer="gradient").resolved()
    rel = {k: torch.autograd.grad(out[:, 0].sum(), v, retain_graph=True)[0] for k, v in Xt.items()}
    mask = {"a": torch.ones(12, 3)}  # "b" has no mask: penalised everywhere
    got = pen(Two(), Xt, out, y, mask=mask)
    torch.testing.assert_close(got, rel["b"].abs().sum(1).mean())


# ------------------------------------------------------------------ routing
def _penalised(**kw):
    return dict(relevance_penalty=0.1, relevance_term=RecordingPenalty(), max_epochs=1,
                batch_size=-1, random_state=0, **kw)


def test_valid_split_uses_validation_masks(data):
    X, y = data
    clf = RelevanceNetClassifier(**_penalised(train_split=ValidSplit(4)))
    clf.fit(X, y, relevance_mask=_id_masks())
    train = [ids for graph, ids in CALLS if graph]
    valid = [ids for graph, ids in CALLS if not graph]
    assert len(train) == 1 and len(valid) == 1
    assert set(train[0]).isdisjoint(valid[0])
    assert sorted(np.concatenate([train[0], valid[0]])) == list(range(N))
    # the validation samples are skorch's split of X: their masks came with them
    ds_train, ds_valid = clf.get_split_datasets(X, y)
    assert len(valid[0]) == len(ds_valid)


def test_grid_search_slices_masks_per_fold_as_fit_params(data):
    X, y = data
    cv = KFold(3, shuffle=True, random_state=0)
    GridSearchCV(RecordingClassifier(**_penalised()), {"relevance_penalty": [0.1]},
                 cv=cv, refit=False).fit(X, y, relevance_mask=_id_masks())
    expected = [sorted(train) for train, _ in cv.split(X, y)]
    assert [sorted(f) for f in FITS] == expected
    # and the penalty saw them in training
    assert [sorted(ids) for _, ids in CALLS] == expected


def test_cross_validate_with_metadata_routing_and_groups(data):
    X, y = data
    sklearn.set_config(enable_metadata_routing=True)
    groups = np.arange(N) % 4
    clf = RecordingClassifier(**_penalised()).set_fit_request(relevance_mask=True)
    cross_validate(clf, X, y, cv=LeaveOneGroupOut(),
                   params={"relevance_mask": _id_masks(), "groups": groups})
    assert [sorted(f) for f in FITS] == [
        list(np.flatnonzero(groups != g)) for g in range(4)]


def test_unrequested_masks_are_refused_under_routing(data):
    X, y = data
    sklearn.set_config(enable_metadata_routing=True)
    with pytest.raises(Exception, match="relevance_mask"):
        cross_validate(RelevanceNetClassifier(**_penalised()), X, y, cv=2,
                       params={"relevance_mask": _id_masks()})


def test_pipeline_routes_masks_to_the_network(data):
    X, y = data
    pipe = make_pipeline(FunctionTransformer(), RecordingClassifier(**_penalised()))
    pipe.fit(X, y, recordingclassifier__relevance_mask=_id_masks())
    assert sorted(FITS[0]) == list(range(N))
    FITS.clear()
    cv = KFold(2)
    GridSearchCV(pipe, {"recordingclassifier__relevance_penalty": [0.1]}, cv=cv,
                 refit=False).fit(X, y, recordingclassifier__relevance_mask=_id_masks())
    assert [sorted(f) for f in FITS] == [sorted(tr) for tr, _ in cv.split(X)]


def test_partial_fit_takes_masks(data):
    X, y = data
    clf = RelevanceNetClassifier(**_penalised()).fit(X, y, relevance_mask=_id_masks())
    CALLS.clear()
    clf.partial_fit(X[:10], y[:10], relevance_mask=_id_masks()[:10])
    assert sorted(CALLS[0][1]) == list(range(10))
    with pytest.raises(ValueError, match="one mask per sample"):
        clf.partial_fit(X[:10], y[:10], relevance_mask=_id_masks()[:9])


def test_search_trains_and_scores_with_the_same_masks(data):
    X, y = data
    sklearn.set_config(enable_metadata_routing=True)
    seen = []

    def inside(relevance, masks):
        seen.append(_ids(masks))
        inside_first = np.zeros(masks.shape)
        inside_first[:, 0] = 1
        return relevance_mass_accuracy(np.abs(relevance), inside_first)

    scorer = make_relevance_scorer(inside).set_score_request(masks=True)
    clf = RecordingClassifier(**_penalised()).set_fit_request(relevance_mask=True)
    cv = KFold(2, shuffle=True, random_state=0)
    masks = _id_masks()
    GridSearchCV(clf, {"relevance_penalty": [0.1]}, scoring=scorer, cv=cv,
                 refit=False).fit(X, y, relevance_mask=masks, masks=masks)
    folds = list(cv.split(X))
    assert [sorted(f) for f in FITS] == [sorted(tr) for tr, _ in folds]
    assert [sorted(s) for s in seen] == [sorted(te) for _, te in folds]


def test_relevance_scoring_callback_uses_the_split_masks(data):
    X, y = data
    masks = np.zeros_like(X)
    masks[:, :2] = 1
    masks[:5] = np.nan
    cb = RelevanceScoring("relevance_mass_accuracy", explainer="saliency")
    clf = RelevanceNetClassifier(relevance_penalty=0.1, max_epochs=1, random_state=0,
                                 train_split=ValidSplit(4), callbacks=[cb])
    with pytest.warns(UserWarning):  # the unannotated samples are empty masks
        clf.fit(X, y, relevance_mask=masks)
    _, ds_valid = clf.get_split_datasets(X, y)
    idx = np.asarray(ds_valid.indices)
    rel = np.abs(clf.explain(X[idx], explainer="saliency"))
    keep = idx >= 5
    expected = np.mean(relevance_mass_accuracy(rel[keep], masks[idx][keep]))
    assert clf.history[-1, "valid_relevance_mass_accuracy"] == pytest.approx(expected)


# --------------------------------------------------------- pluggable penalty
def test_relevance_term_is_validated(data):
    X, y = data
    with pytest.raises(ValueError, match="'relevance_term' parameter of "
                       "RelevanceNetClassifier must be None or an instance of"):
        RelevanceNetClassifier(relevance_term="rrr").fit(X, y)
    with pytest.raises(ValueError, match="'relevance_term' parameter .* differentiable"):
        RelevanceNetClassifier(relevance_penalty=0.1,
                               relevance_term=RelevancePenalty("occlusion")).fit(X, y)


def test_right_reasons_penalty_is_ross_et_al():
    module = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    X = torch.randn(7, 4, requires_grad=True)
    out = module(X)
    mask = (torch.rand(7, 4) > 0.5).float()
    got = RightReasonsPenalty()(module, X, out, mask=mask)
    grad = torch.autograd.grad(torch.log_softmax(module(X), 1).sum(), X)[0]
    expected = ((1 - mask) * grad).pow(2).sum(1).mean()
    torch.testing.assert_close(got, expected)
    # the same through an explainer without a fast path (its own forward)
    from sklearn_relevance.explainers import IntegratedGradients

    slow = RightReasonsPenalty(explainer=IntegratedGradients(n_steps=2))(
        module, X, out, mask=mask)
    assert torch.isfinite(slow) and slow > 0


@pytest.mark.parametrize("explainer", ["gradient", "gradient_x_input", "ig", "gradcam",
                                       "lrp_epsilon"])
def test_masked_penalty_trains_with_each_explainer(explainer):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 1, 8, 8)).astype("float32")
    y = (X[:, 0, :4].mean((1, 2)) > 0).astype(int)
    masks = np.zeros((16, 1, 8, 8), "float32")
    masks[:, :, :4] = 1
    params = {"relevance_explainer__n_steps": 2} if explainer == "ig" else {}
    clf = RelevanceNetClassifier(relevance_penalty=0.5, relevance_explainer=explainer,
                                 max_epochs=1, batch_size=8, random_state=0, **params)
    clf.fit(X, y, relevance_mask=masks)
    rel = clf.history[:, "train_relevance"]
    assert np.isfinite(rel).all() and rel[0] > 0


def test_overridden_get_loss_keeps_the_penalty(data):
    X, y = data

    class NoDataLoss(RelevanceNetClassifier):
        def get_loss(self, y_pred, y_true, X=None, training=False):
            return 0.0 * super().get_loss(y_pred, y_true, X=X, training=training)

    masks = np.zeros_like(X)
    clf = NoDataLoss(relevance_penalty=2.0, max_epochs=1, batch_size=-1, random_state=0)
    clf.fit(X, y, relevance_mask=masks)
    h = clf.history[-1]
    assert h["train_relevance"] > 0
    assert h["train_loss"] == pytest.approx(2.0 * h["train_relevance"], rel=1e-5)


def test_explainer_params_and_search_over_the_weight_still_work(data):
    X, y = data
    clf = RelevanceNetClassifier(relevance_penalty=0.1, relevance_explainer="ig",
                                 max_epochs=1, random_state=0)
    clf.set_params(relevance_explainer__n_steps=3).fit(X, y, relevance_mask=_id_masks())
    assert clf._penalty().explainer.n_steps == 3
    clf = RelevanceNetClassifier(relevance_term=RightReasonsPenalty(), max_epochs=1,
                                 random_state=0)
    clf.set_params(relevance_term__norm="l1")
    assert clf.relevance_term.norm == "l1"
    search = GridSearchCV(clf, {"relevance_penalty": [0.0, 1.0]}, cv=2).fit(
        X, y, relevance_mask=_id_masks())
    assert set(search.cv_results_["param_relevance_penalty"]) == {0.0, 1.0}


def test_regressor_takes_masks(data):
    X, _ = data
    yr = X[:, 0] - X[:, 1]
    masks = np.zeros_like(X)
    masks[:, :2] = 1
    reg = RelevanceNetRegressor(relevance_penalty=1.0, max_epochs=2, random_state=0)
    reg.fit(X, yr, relevance_mask=masks)
    assert np.isfinite(reg.predict(X)).all()
    with pytest.raises(ValueError, match="log_prob_sum"):
        RelevanceNetRegressor(relevance_penalty=1.0, max_epochs=1,
                              relevance_term=RightReasonsPenalty()).fit(X, yr)


def test_masked_estimator_pickles_and_clones(data):
    import pickle

    from sklearn.base import clone

    X, y = data
    clf = RelevanceNetClassifier(relevance_penalty=0.1, relevance_term=RightReasonsPenalty(),
                                 max_epochs=1, random_state=0)
    clf.fit(X, y, relevance_mask=np.ones_like(X))
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
    assert isinstance(clone(clf).relevance_term, RightReasonsPenalty)


def test_dict_input_trains_with_dict_masks_and_a_split():
    rng = np.random.default_rng(0)
    X = {"img": rng.normal(size=(24, 1, 8, 8)).astype("float32"),
         "tab": rng.normal(size=(24, 3)).astype("float32")}
    y = (X["tab"][:, 0] > 0).astype(int)
    masks = {"tab": np.tile([1.0, 0.0, 0.0], (24, 1)).astype("float32")}
    masks["tab"][:4] = np.nan
    kw = dict(relevance_penalty=0.5, max_epochs=2, random_state=0, train_split=ValidSplit(4))
    a = RelevanceNetClassifier(**kw).fit(X, y, relevance_mask=masks)
    b = RelevanceNetClassifier(**kw).fit(X, y)
    assert np.isfinite(a.history[:, "valid_relevance"]).all()
    # the allowed tabular feature is not penalised: less penalty than without masks
    assert a.history[0, "train_relevance"] < b.history[0, "train_relevance"]
