"""Fits that hold: one random stream per fit, divergence, failed fits, early errors.

Each case here was a silent wrong result or a raw traceback (issue 23).
"""

from __future__ import annotations

import copy
import io
import pickle
import threading

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_relevance import RelevanceNetClassifier, RelevanceNetRegressor
from sklearn_relevance.explainers import get_explainer
from sklearn_relevance.penalties import RelevancePenalty


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 6)
    return X, (X[:, 0] + X[:, 1] > 1).astype(int)


def _weights(net):
    return torch.cat([p.detach().reshape(-1) for p in net.module_.parameters()])


def _in_threads(fn, n=2):
    out, errors = [None] * n, []

    def run(i):
        try:
            out[i] = fn()
        except Exception as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return out


# ------------------------------------------------------ one stream per fit
@pytest.mark.parametrize("kw", [
    dict(module__dropout=0.3),  # dropout: a draw in every training step
    dict(relevance_penalty=0.1, relevance_explainer="smoothgrad",
         relevance_explainer__n_samples=3),  # noise of the penalty's explainer
    dict(),  # initialisation and shuffling only
], ids=["dropout", "smoothgrad-penalty", "plain"])
def test_fits_in_threads_equal_a_serial_fit(data, kw):
    X, y = data

    def fit():
        return _weights(RelevanceNetClassifier(max_epochs=4, batch_size=8,
                                               random_state=5, **kw).fit(X, y))

    serial = fit()
    for got in _in_threads(fit, 3):
        assert torch.equal(got, serial)


def test_unseeded_global_draws_do_not_change_a_seeded_fit(data):
    X, y = data
    kw = dict(max_epochs=3, batch_size=8, random_state=3, module__dropout=0.5,
              relevance_penalty=0.1, relevance_explainer="smoothgrad",
              relevance_explainer__n_samples=2)
    a = _weights(RelevanceNetClassifier(**kw).fit(X, y))
    torch.rand(5)
    np.random.rand(5)
    b = _weights(RelevanceNetClassifier(**kw).fit(X, y))
    assert torch.equal(a, b)


def test_grid_search_with_threads_equals_serial(data):
    X, y = data
    net = RelevanceNetClassifier(max_epochs=4, batch_size=8, random_state=0,
                                 module__dropout=0.2)
    grid = {"relevance_penalty": [0.0, 0.1], "lr": [0.01, 0.02]}
    serial = GridSearchCV(net, grid, cv=KFold(2), n_jobs=1).fit(X, y)
    with joblib.parallel_backend("threading", n_jobs=2):
        threaded = GridSearchCV(net, grid, cv=KFold(2), n_jobs=2).fit(X, y)
    for key in ("split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(serial.cv_results_[key], threaded.cv_results_[key])
    assert torch.equal(_weights(serial.best_estimator_), _weights(threaded.best_estimator_))


def test_dropout_masks_come_from_the_fits_generator():
    from sklearn_relevance._fit_random import FitRandomness

    x = torch.ones(1000)

    def masks():
        F = torch.nn.functional
        with FitRandomness(7):
            return (F.dropout(x, 0.5, training=True), torch.dropout(x, 0.5, True),
                    torch.rand(3), torch.nn.Linear(4, 3).weight.detach(),
                    # no generator argument: the global stream, seeded from the fit's
                    F.dropout2d(x.reshape(1, 10, 10, 10), 0.5, training=True),
                    F.rrelu(-x, training=True))

    first = masks()
    torch.manual_seed(123)  # the global stream plays no part
    for got in _in_threads(masks, 3):
        for a, b in zip(got, first):
            assert torch.equal(a, b)
    kept = first[0] != 0
    assert 400 < int(kept.sum()) < 600  # p = 0.5
    torch.testing.assert_close(first[0][kept], torch.full_like(first[0][kept], 2.0))


# --------------------------------------------------------------- divergence
def test_divergent_learning_rate_raises_naming_the_epoch(data):
    X, _ = data
    net = RelevanceNetRegressor(lr=1e6, max_epochs=20, random_state=0)
    with pytest.raises(ValueError, match=r"diverged in epoch \d+"):
        net.fit(X * 100, X[:, 0] * 1e3)
    with pytest.raises(NotFittedError):
        net.predict(X)


class NaNPenalty(RelevancePenalty):
    def __call__(self, *args, **kwargs):
        return super().__call__(*args, **kwargs) * float("nan")


def test_a_penalty_returning_nan_raises(data):
    X, y = data
    net = RelevanceNetClassifier(relevance_penalty=0.1, relevance_term=NaNPenalty(),
                                 max_epochs=2, random_state=0)
    with pytest.raises(ValueError, match="diverged in epoch 1"):
        net.fit(X, y)
    assert not hasattr(net, "module_")


class Rows:
    """A minimal row source (the protocol of sklearn_relevance._stream)."""

    _streams_rows = True

    def __init__(self, X, short=False):
        self.X, self.short = np.asarray(X, dtype=np.float32), short
        self.shape, self.dtype, self.ndim = self.X.shape, self.X.dtype, self.X.ndim

    def __len__(self):
        return len(self.X)

    def read(self, rows):
        out = self.X[np.asarray(rows)]
        return out[:-1] if self.short and len(out) > 1 else out


def test_failed_fit_leaves_the_estimator_unfitted(data):
    X, y = data
    net = RelevanceNetClassifier(max_epochs=3, batch_size=8, random_state=0).fit(X, y)
    bad = X.copy()
    bad[30, 2] = np.nan  # found only when its batch is read
    with pytest.raises(ValueError, match="NaN"):
        net.fit(Rows(bad), y)
    with pytest.raises(NotFittedError):
        net.predict(X)


def test_a_short_read_of_a_row_source_raises(data):
    X, y = data
    net = RelevanceNetClassifier(max_epochs=1, batch_size=16, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="one row per index"):
        net.predict(Rows(X, short=True))
    with pytest.raises(ValueError, match="one row per index"):
        RelevanceNetClassifier(max_epochs=1).fit(Rows(X, short=True), y)


# ------------------------------------------------------------ early errors
def test_numpy_integers_are_ints(data):
    X, y = data
    net = RelevanceNetClassifier(batch_size=np.int64(8), max_epochs=np.int64(2),
                                 module__hidden_units=(np.int64(4),), random_state=0)
    net.fit(X, y).predict(X)
    net.explain(X, batch_size=np.int32(16))
    search = GridSearchCV(RelevanceNetClassifier(max_epochs=1, random_state=0),
                          {"batch_size": np.array([8, 16])}, cv=2, error_score="raise")
    search.fit(X, y)
    assert search.best_estimator_.batch_size in (8, 16)


@pytest.mark.parametrize("key, hint", [("sample_weight", "Sample weights"),
                                       ("relevance_masks", "did you mean 'relevance_mask'")])
def test_unknown_fit_keywords_raise_before_work(data, key, hint):
    X, y = data
    net = RelevanceNetClassifier(max_epochs=1)
    with pytest.raises(TypeError, match=hint):
        net.fit(X, y, **{key: np.ones(len(X))})
    assert not hasattr(net, "module_")
    search = GridSearchCV(net, {"lr": [0.01]}, cv=2, error_score="raise")
    with pytest.raises(TypeError, match=key):
        search.fit(X, y, **{key: np.ones(len(X))})


def test_meta_device_and_device_changed_after_fit(data):
    X, y = data
    with pytest.raises(ValueError, match="'device' parameter.*meta"):
        RelevanceNetClassifier(device="meta", max_epochs=1).fit(X, y)
    net = RelevanceNetClassifier(max_epochs=1).fit(X, y)
    net.set_params(device="meta")
    for call in (net.predict, net.explain, lambda X: net.partial_fit(X, y)):
        with pytest.raises(ValueError, match="'device' parameter.*meta"):
            call(X)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_tensors_are_cast(data, dtype):
    X, y = data
    Xh = torch.as_tensor(X).to(dtype)
    X32 = Xh.float().numpy()
    kw = dict(max_epochs=2, random_state=0)
    a = RelevanceNetClassifier(**kw).fit(Xh, y)
    b = RelevanceNetClassifier(**kw).fit(X32, y)
    assert torch.equal(_weights(a), _weights(b))
    np.testing.assert_array_equal(a.predict_proba(Xh), b.predict_proba(X32))
    np.testing.assert_array_equal(a.explain(Xh), b.explain(X32))


def test_pickle_while_other_threads_explain_with_hooks():
    rng = np.random.RandomState(0)
    X = rng.rand(16, 1, 8, 8).astype("float32")
    net = RelevanceNetClassifier(max_epochs=1, random_state=0).fit(X, (X[:, 0, 0, 0] > .5))
    training = net.module_.training
    stop, errors = threading.Event(), []

    def explain(name):
        while not stop.is_set():
            try:
                net.explain(X, explainer=name)
            except Exception as exc:  # reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=explain, args=(n,))
               for n in ("lrp", "gradcam", "guided_backprop")]
    for t in threads:
        t.start()
    try:
        for _ in range(4):
            copies = [pickle.loads(pickle.dumps(net)), copy.deepcopy(net)]
            buf = io.BytesIO()
            joblib.dump(net, buf)
            buf.seek(0)
            copies.append(joblib.load(buf))
            for c in copies:
                assert c.module_.training == training
                assert not any(m._forward_hooks for m in c.module_.modules())
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors


def test_predict_with_an_extra_axis_names_both_shapes(data):
    X, y = data
    net = RelevanceNetClassifier(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match=r"shape \(6, 1\).*shape \(6,\)"):
        net.predict(X[:, :, None])


class DictOut(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 2)

    def forward(self, x):
        return {"logits": self.lin(x)}


class ListOut(DictOut):
    def forward(self, x):
        return [self.lin(x)]


class InPlace(DictOut):
    def forward(self, x):
        return self.lin(x.mul_(2))


@pytest.mark.parametrize("name", ["gradient", "integrated_gradients", "smoothgrad",
                                  "guided_backprop", "lrp"])
def test_explainers_on_bad_modules_raise_clearly(name):
    X = torch.rand(4, 6)
    exp = get_explainer(name)
    with pytest.raises(TypeError, match="returned a dict with keys"):
        exp.explain(DictOut(), X, 0)
    with pytest.raises(TypeError, match="returned a list"):
        exp.explain(ListOut(), X, 0)
    with pytest.raises(ValueError, match="writes into its input"):
        exp.explain(InPlace(), X.clone(), 0)
    with pytest.raises(ValueError, match="0 samples"):
        exp.explain(torch.nn.Linear(6, 2), torch.rand(0, 6), 0)


def test_in_place_module_in_a_penalised_fit(data):
    X, y = data
    net = RelevanceNetClassifier(InPlace, relevance_penalty=0.1, max_epochs=1)
    with pytest.raises(ValueError, match="writes into its input"):
        net.fit(X, y)


# ------------------------------------------------------------ mask alignment
def test_mask_dataframe_columns_must_match_x(data):
    X, y = data
    cols = list("abcdef")
    masks = np.zeros_like(X)
    masks[:, :2] = 1
    net = RelevanceNetClassifier(relevance_penalty=0.1, max_epochs=1, random_state=0)
    Xdf = pd.DataFrame(X, columns=cols)
    net.fit(Xdf, y, relevance_mask=pd.DataFrame(masks, columns=cols))
    with pytest.raises(ValueError, match="another order"):
        net.fit(Xdf, y, relevance_mask=pd.DataFrame(masks, columns=cols[::-1]))
    with pytest.raises(ValueError, match="missing"):
        net.fit(Xdf, y, relevance_mask=pd.DataFrame(masks, columns=list("abcdeg")))
    with pytest.raises(ValueError, match="no feature names"):
        net.fit(X, y, relevance_mask=pd.DataFrame(masks, columns=cols))


@pytest.mark.parametrize("step, what", [
    (PCA(6), "makes other features"),
    (ColumnTransformer([("s", StandardScaler(), [3, 4, 5]),
                        ("p", "passthrough", [0, 1, 2])]), "reorders"),
])
def test_pipeline_masks_outside_the_final_steps_space_raise(data, step, what):
    X, y = data
    masks = np.zeros_like(X)
    masks[:, :2] = 1
    net = RelevanceNetClassifier(relevance_penalty=0.1, max_epochs=1, random_state=0)
    with pytest.raises(ValueError, match=what):
        make_pipeline(step, net).fit(X, y, relevancenetclassifier__relevance_mask=masks)
    # steps that keep X's features in order are fine
    make_pipeline(StandardScaler(), net).fit(
        X, y, relevancenetclassifier__relevance_mask=masks)
    make_pipeline(ColumnTransformer([("s", StandardScaler(), [0, 1, 2])],
                                    remainder="passthrough"), net).fit(
        X, y, relevancenetclassifier__relevance_mask=masks)
