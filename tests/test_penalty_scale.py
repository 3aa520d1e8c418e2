"""Mean relevance norms: the penalty weight per input feature."""

import numpy as np
import pytest
import torch

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.penalties import relevance_norm


@pytest.mark.parametrize("shape", [(4, 7), (3, 1, 5, 6), (2, 1, 3, 4, 5)])
@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_mean_norm_is_the_sum_over_the_number_of_features(shape, norm):
    r = torch.randn(*shape, dtype=torch.float64)
    d = int(np.prod(shape[1:]))
    torch.testing.assert_close(relevance_norm(r, f"{norm}_mean"),
                               relevance_norm(r, norm) / d)


def test_mean_norm_of_a_dict_averages_each_modality():
    r = {"a": torch.ones(2, 4), "b": torch.full((2, 2), 3.0)}
    torch.testing.assert_close(relevance_norm(r, "l1_mean"), torch.tensor(4.0))


def test_estimator_trains_with_a_mean_norm_and_rejects_unknown_norms():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 6)).astype(np.float32)
    y = np.arange(20) % 2
    net = RelevanceNetClassifier(relevance_penalty=1.0, relevance_norm="l1_mean",
                                 max_epochs=1, random_state=0).fit(X, y)
    assert np.isfinite(net.history_[-1, "train_relevance"])
    with pytest.raises(ValueError, match="relevance_norm"):
        RelevanceNetClassifier(relevance_norm="mean", max_epochs=1).fit(X, y)
