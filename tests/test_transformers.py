"""RelevanceTransformer and RegionRelevance."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline

from sklearn_relevance.metrics import region_relevance
from sklearn_relevance.transformers import RegionRelevance, RelevanceTransformer

estimators = pytest.importorskip("sklearn_relevance.estimators")


@pytest.fixture(scope="module")
def tabular():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    net = estimators.RelevanceNetClassifier(max_epochs=2, random_state=0).fit(X, y)
    return X, y, net


def test_transform_equals_explain_and_pandas_output(tabular):
    pd = pytest.importorskip("pandas")
    X, y, net = tabular
    tr = RelevanceTransformer(net, explainer="gradient").fit(X)
    out = tr.transform(X)
    np.testing.assert_allclose(out, net.explain(X, explainer="gradient"))
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    tr_pd = RelevanceTransformer(net, explainer="gradient").set_output(transform="pandas")
    with pytest.warns(UserWarning, match="fitted without feature names"):
        res = tr_pd.fit(df).transform(df)  # scikit-learn's warning: net fitted on arrays
    assert list(res.columns) == ["relevance_a", "relevance_b", "relevance_c", "relevance_d"]
    np.testing.assert_allclose(res.to_numpy(), out, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="X has 3 features"):
        tr.transform(X[:, :3])


def test_prefit_false_fits_a_clone_and_images_keep_shape(rng):
    X = rng.normal(size=(30, 1, 8, 8)).astype(np.float32)
    y = (X[:, 0, :4].mean((1, 2)) > 0).astype(int)
    est = estimators.RelevanceNetClassifier(max_epochs=1, random_state=0)
    tr = RelevanceTransformer(est, prefit=False, target=1).fit(X, y)
    assert not hasattr(est, "module_") and hasattr(tr.estimator_, "module_")
    out = tr.transform(X)
    assert out.shape == X.shape
    np.testing.assert_allclose(out, tr.estimator_.explain(X, target=1))
    with pytest.raises(ValueError, match="2D inputs"):
        tr.get_feature_names_out()


def test_relevance_transformer_errors(tabular):
    X, y, net = tabular
    with pytest.raises(NotFittedError):
        RelevanceTransformer(clone(net)).fit(X)
    with pytest.raises(ValueError, match="'target' parameter of RelevanceTransformer"):
        RelevanceTransformer(net, target="true").fit(X)
    with pytest.raises(ValueError, match="'prefit' parameter"):
        RelevanceTransformer(net, prefit="yes").fit(X)


def test_region_relevance_transformer(rng):
    atlas = rng.integers(0, 4, size=(6, 5))
    maps = rng.normal(size=(10, 6, 5))
    names = {1: "hippocampus", 2: "amygdala", 3: "insula"}
    rr = RegionRelevance(atlas, statistic="density", labels=names).fit(maps)
    np.testing.assert_allclose(rr.transform(maps),
                               region_relevance(maps, atlas, statistic="density"))
    assert list(rr.get_feature_names_out()) == ["hippocampus", "amygdala", "insula"]
    # gain: fit on the reference group, transform another group
    controls, patients = np.abs(maps[:5]) + 0.1, np.abs(maps[5:]) + 0.1
    gain = RegionRelevance(atlas, statistic="gain").fit(controls).transform(patients)
    ref = region_relevance(patients, atlas, statistic="gain", reference=controls)
    np.testing.assert_allclose(gain, ref)
    np.testing.assert_allclose(
        gain.mean(0),
        region_relevance(patients, atlas, statistic="density").mean(0)
        / region_relevance(controls, atlas, statistic="density").mean(0))
    with pytest.raises(ValueError, match="'statistic' parameter of RegionRelevance"):
        RegionRelevance(atlas, statistic="max").fit(maps)
    with pytest.raises(ValueError, match="atlas"):
        RegionRelevance(atlas).fit(maps[:, :4])


def test_region_relevance_on_real_atlas(shared_data):
    nib = pytest.importorskip("nibabel")
    path = shared_data / "atlas" / "AAL_space-MNI152NLin6_res-2x2x2.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    atlas = np.asarray(nib.load(path).dataobj).astype(np.int64)
    rng = np.random.default_rng(0)
    maps = rng.random((2, *atlas.shape)).astype(np.float32)
    out = RegionRelevance(atlas, statistic="sum").fit_transform(maps)
    assert out.shape == (2, len(np.unique(atlas)) - 1)
    # every non-background voxel is counted exactly once
    np.testing.assert_allclose(out.sum(1), (maps * (atlas > 0)).reshape(2, -1).sum(1),
                               rtol=1e-6)


def test_pipeline_of_transformers(tabular):
    X, y, net = tabular
    atlas = np.array([1, 1, 2, 2])
    pipe = make_pipeline(RelevanceTransformer(net), RegionRelevance(atlas))
    out = pipe.fit_transform(X)
    rel = net.explain(X)
    np.testing.assert_allclose(out, np.c_[rel[:, :2].sum(1), rel[:, 2:].sum(1)], rtol=1e-5)
