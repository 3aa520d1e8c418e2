"""RelevanceScoring: per-epoch attribution quality in skorch's history."""

from __future__ import annotations

import numpy as np
import pytest
from skorch.dataset import ValidSplit

from sklearn_relevance.callbacks import RelevanceScoring
from sklearn_relevance.metrics import mask_dice, sparseness

estimators = pytest.importorskip("sklearn_relevance.estimators")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6)).astype(np.float32)
    y = np.where(X[:, 0] + X[:, 1] > 0, "pos", "neg")
    return X, y


def test_logs_valid_metric_each_epoch_matching_final_model(data):
    X, y = data
    net = estimators.RelevanceNetClassifier(
        max_epochs=3, random_state=0, train_split=ValidSplit(3),
        callbacks=[RelevanceScoring("sparseness"),
                   RelevanceScoring("fidelity", on_train=True, metric_params={"steps": 6})],
    ).fit(X, y)
    hist = net.history
    assert len(hist[:, "valid_sparseness"]) == 3
    assert len(hist[:, "train_fidelity"]) == 3
    assert hist[0, "valid_sparseness_best"] is True
    # the last epoch's value is the metric on the final model's validation relevance
    _, ds_valid = net.get_split_datasets(X, net._prepare_y(y, X, refit=False))
    idx = np.asarray(ds_valid.indices)
    assert hist[-1, "valid_sparseness"] == pytest.approx(sparseness(net.explain(X[idx])).mean())
    best = np.maximum.accumulate(hist[:, "valid_sparseness"])
    flags = hist[:, "valid_sparseness_best"]
    assert flags == [True] + [bool(b > a) for a, b in zip(best[:-1], hist[1:, "valid_sparseness"])]


def test_fixed_validation_data_with_masks_and_lower_is_better(data):
    X, y = data
    masks = np.zeros_like(X, dtype=bool)
    masks[:, :2] = True
    cb = RelevanceScoring(mask_dice, X_valid=X[:20], y_valid=y[:20], name="dice",
                          lower_is_better=True, metric_params={"masks": masks[:20]})
    net = estimators.RelevanceNetClassifier(max_epochs=2, random_state=0,
                                            callbacks=[cb]).fit(X, y)
    values = net.history[:, "dice"]
    assert len(values) == 2
    assert values[-1] == pytest.approx(mask_dice(net.explain(X[:20]), masks[:20]).mean())
    assert cb.best_score_ == min(values)


def test_bad_metric():
    with pytest.raises(ValueError, match="'metric' parameter of RelevanceScoring"):
        RelevanceScoring("accuracy").initialize()
    with pytest.raises(ValueError, match="'metric' parameter of RelevanceScoring"):
        RelevanceScoring(3).initialize()
