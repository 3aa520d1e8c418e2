"""GridSearchCV over relevance_penalty on a dask cluster bound to 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_relevance import RelevanceNetClassifier

distributed = pytest.importorskip("distributed", reason="extra 'dask' not installed")


def test_gridsearch_on_local_dask_cluster():
    import joblib

    X, y = make_classification(n_samples=100, n_features=6, random_state=0)
    pipe = make_pipeline(StandardScaler(), RelevanceNetClassifier(max_epochs=2, random_state=0))
    grid = GridSearchCV(
        pipe, {"relevancenetclassifier__relevance_penalty": [0.0, 0.1]}, cv=2, n_jobs=2
    )
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
    ) as cluster, distributed.Client(cluster) as client:
        with joblib.parallel_backend("dask"):
            grid.fit(X, y)
        workers = client.scheduler_info()["workers"]
        assert all(addr.startswith("tcp://127.0.0.1") for addr in workers)
    serial = GridSearchCV(
        pipe, {"relevancenetclassifier__relevance_penalty": [0.0, 0.1]}, cv=2, n_jobs=1
    ).fit(X, y)
    # same seeds, same folds: the cluster reproduces the serial search
    np.testing.assert_allclose(
        grid.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
