"""compare_explainers: the table against direct computation, intervals, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from sklearn_relevance.datasets import make_lesion_images
from sklearn_relevance.evaluation import available_metrics, compare_explainers
from sklearn_relevance.explainers import get_explainer


class Counting(nn.Module):
    """A small CNN that counts its forward calls (to prove no work was done)."""

    def __init__(self, dim=2, channels=1):
        super().__init__()
        conv = nn.Conv2d if dim == 2 else nn.Conv3d
        pool = nn.AdaptiveAvgPool2d(2) if dim == 2 else nn.AdaptiveAvgPool3d(2)
        self.features = nn.Sequential(conv(channels, 4, 3, padding=1), nn.ReLU(), pool)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 2**dim, 2))
        self.calls = 0

    def forward(self, X):
        self.calls += 1
        return self.head(self.features(X))


@pytest.fixture(scope="module")
def lesions():
    return make_lesion_images(24, shape=(12, 12), random_state=0)


@pytest.fixture
def module():
    torch.manual_seed(0)
    return Counting()


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


def test_table_equals_direct_computation(module, lesions):
    from sklearn_relevance.metrics import fidelity_score, mask_roc_auc, sparseness

    X, y, masks = lesions
    names = ["gradient", "gradient_x_input"]
    table, scores = _quiet(
        compare_explainers, module, X, y, masks=masks, explainers=names, target="true",
        metrics=["fidelity", "mask_roc_auc", "sparseness"],
        metric_params={"fidelity": {"steps": 8}}, return_scores=True, random_state=0,
    )
    assert list(table.index) == names and table.index.name == "explainer"
    assert list(table.columns) == [
        f"{m}{s}" for m in ("fidelity", "mask_roc_auc", "sparseness")
        for s in ("", "_ci_low", "_ci_high")
    ]
    Xt, target = torch.as_tensor(X), torch.as_tensor(y)
    lesion = y == 1
    for name in names:
        rel = get_explainer(name).explain(module.eval(), Xt, target).detach()
        fid = _quiet(fidelity_score, module, Xt, None, rel, target=y, steps=8)
        # scored only where the explained (true) class is the predicted one
        fid[module(Xt).argmax(1).numpy() != y] = np.nan
        auc = mask_roc_auc(rel.abs()[lesion], masks[lesion])
        spa = _quiet(sparseness, rel)
        got = scores[scores.explainer == name]
        np.testing.assert_allclose(got.fidelity, fid, rtol=1e-5)
        assert table.attrs["n_scored"][name]["fidelity"] == np.isfinite(fid).sum()
        np.testing.assert_allclose(got.mask_roc_auc[lesion], auc, rtol=1e-6)
        assert got.mask_roc_auc[~lesion].isna().all()  # class 0: no lesion, no score
        np.testing.assert_allclose(got.sparseness, spa, rtol=1e-6)
        np.testing.assert_allclose(table.loc[name, "mask_roc_auc"], auc.mean(), rtol=1e-6)
        # the mean of per-sample scores of both signs may be near 0: its
        # tolerance is that of the scores (rounding differs between CPUs)
        np.testing.assert_allclose(table.loc[name, "fidelity"], np.nanmean(fid), rtol=1e-5,
                                   atol=1e-5 * np.nanmax(np.abs(fid)))
        row = table.loc[name]
        for m in ("fidelity", "mask_roc_auc", "sparseness"):
            assert row[f"{m}_ci_low"] <= row[m] <= row[f"{m}_ci_high"]


def _fixed_scores(values):
    def metric(relevance, *, module, X, target, masks):
        return torch.as_tensor(values[: X.shape[0]])

    return metric


def test_normal_interval_is_mean_plus_minus_z_sem(module):
    rng = np.random.default_rng(0)
    values = rng.normal(2.0, 1.5, 60)
    X = rng.normal(size=(60, 1, 6, 6)).astype(np.float32)
    table = compare_explainers(module, X, np.zeros(60, int), explainers=["gradient"],
                               metrics={"m": _fixed_scores(values)}, n_bootstrap=0,
                               confidence=0.9)
    half = norm.ppf(0.95) * values.std(ddof=1) / np.sqrt(60)
    row = table.loc["gradient"]
    np.testing.assert_allclose(row["m"], values.mean())
    np.testing.assert_allclose([row["m_ci_low"], row["m_ci_high"]],
                               [values.mean() - half, values.mean() + half])


def test_bootstrap_interval_matches_theory_and_is_reproducible(module):
    rng = np.random.default_rng(1)
    values = rng.exponential(1.0, 400)
    X = rng.normal(size=(400, 1, 4, 4)).astype(np.float32)
    kw = dict(explainers={"a": "gradient", "b": "smoothgrad"},
              metrics={"m": _fixed_scores(values)}, n_bootstrap=2000, random_state=3)
    table = compare_explainers(module, X, np.zeros(400, int), **kw)
    sem = values.std(ddof=1) / np.sqrt(400)
    low, high = table.loc["a", ["m_ci_low", "m_ci_high"]]
    # percentile bootstrap of a mean ~ normal interval for n = 400
    np.testing.assert_allclose([low, high], values.mean() + np.array([-1, 1]) * 1.96 * sem,
                               atol=0.25 * sem)
    # paired resamples: same scores -> same interval for every explainer
    np.testing.assert_allclose(table.loc["a"], table.loc["b"])
    again = compare_explainers(module, X, np.zeros(400, int), **kw)
    assert table.equals(again)


def test_same_random_state_same_table_with_stochastic_explainer(module, lesions):
    X, y, masks = lesions
    kw = dict(masks=masks, explainers=["smoothgrad"], metrics=["mask_roc_auc"],
              n_bootstrap=50)
    a = compare_explainers(module, X, y, random_state=7, **kw)
    b = compare_explainers(module, X, y, random_state=7, **kw)
    c = compare_explainers(module, X, y, random_state=8, **kw)
    assert a.equals(b)
    assert not a.equals(c)


def test_targets_masks_layouts_and_module_state(module, lesions):
    X, y, masks = lesions
    seen = {}

    def spy(relevance, *, module, X, target, masks):
        seen["target"], seen["device"] = target.clone(), relevance.device
        seen["masks"] = masks
        return relevance.flatten(1).abs().sum(1)

    module.train()
    compare_explainers(module, X, y, masks=masks[:, 0], explainers=["gradient"],
                       metrics={"s": spy}, n_bootstrap=0, target="true")
    assert module.training  # restored
    assert torch.equal(seen["target"], torch.as_tensor(y))
    assert seen["masks"].shape == X.shape and seen["masks"].dtype == torch.bool
    compare_explainers(module, X, None, explainers=["gradient"], metrics={"s": spy},
                       n_bootstrap=0)
    with torch.no_grad():
        predicted = module.eval()(torch.as_tensor(X)).argmax(1)
    assert torch.equal(seen["target"], predicted)
    compare_explainers(module, X, y, target=1, explainers=["gradient"],
                       metrics={"s": spy}, n_bootstrap=0)
    assert (seen["target"] == 1).all()


def test_batch_size_does_not_change_the_table(module, lesions):
    X, y, masks = lesions
    kw = dict(masks=masks, explainers=["ig", "occlusion"],
              metrics=["mask_roc_auc", "mask_dice"], random_state=0)
    a = compare_explainers(module, X, y, batch_size=5, **kw)
    b = compare_explainers(module, X, y, **kw)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5)


def test_with_fitted_estimator_and_string_labels(lesions):
    try:
        from sklearn_relevance import RelevanceNetClassifier
    except ImportError:  # pragma: no cover - the estimator lands separately
        pytest.skip("RelevanceNetClassifier is not importable")
    X, y, masks = lesions
    labels = np.array(["healthy", "lesion"])[y]
    clf = RelevanceNetClassifier(max_epochs=1, batch_size=8, random_state=0).fit(X, labels)
    table = _quiet(compare_explainers, clf, X, labels, masks=masks,
                   explainers=["gradient"], metric_params={"fidelity": {"steps": 4}},
                   n_bootstrap=20, random_state=0)
    assert list(table.columns[::3]) == ["fidelity", "mask_roc_auc", "mask_dice", "sparseness"]
    assert np.isfinite(table[["mask_roc_auc", "mask_dice"]].to_numpy()).all()
    with pytest.raises(ValueError, match="classes"):
        compare_explainers(clf, X, np.array(["a", "b"])[y], explainers=["gradient"])


def test_xrai_dice_uses_xrai_regions(module, lesions):
    from sklearn_relevance.explainers import XRAI
    from sklearn_relevance.metrics import mask_dice

    X, y, masks = lesions
    X, y, masks = X[y == 1][:2], y[y == 1][:2], masks[y == 1][:2]
    _, scores = _quiet(compare_explainers, module, X, y, masks=masks,
                           explainers=["gradient_x_input"], metrics=["xrai_dice"],
                           return_scores=True, n_bootstrap=0)
    Xt = torch.as_tensor(X)
    rel = get_explainer("gradient_x_input").explain(module, Xt, torch.as_tensor(y))
    regions = XRAI().explain(module, Xt, torch.as_tensor(y), base_attribution=rel.abs())
    np.testing.assert_allclose(scores.xrai_dice, mask_dice(regions, masks), rtol=1e-6)


# --------------------------------------------------------------------------
# bad input: ValueError before any forward pass
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"masks": np.ones((24, 1, 12, 11), bool)}, "masks"),
        ({"masks": np.ones((23, 12, 12), bool)}, "masks"),
        ({"masks": np.full((24, 1, 12, 12), 0.5)}, "binary"),
        ({"metrics": ["mask_roc_auc"], "masks": None}, "masks"),
        ({"metrics": ["accuracy"]}, "metrics"),
        ({"metrics": [], "masks": None}, "metrics"),
        ({"metric_params": {"dice": {}}}, "metric_params"),
        ({"explainers": ["no_such"]}, "explainers"),
        ({"explainers": ["gradient", "gradient"]}, "twice"),
        ({"y": np.zeros(5, int)}, "'y'"),
        ({"y": np.full(24, 7)}, "classes"),
        ({"target": "best"}, "target"),
        ({"target": 2}, "target"),
        ({"n_bootstrap": -1}, "n_bootstrap"),
        ({"confidence": 1.5}, "confidence"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_input_raises_before_any_work(module, lesions, kwargs, match):
    X, y, masks = lesions
    call = {"y": y, "masks": masks, "explainers": ["gradient"], "metrics": None, **kwargs}
    y_arg = call.pop("y")
    with pytest.raises(ValueError, match=match):
        compare_explainers(module, X, y_arg, **call)
    # at most the single probe forward that reads the number of outputs
    assert module.calls <= 1


def test_explainers_and_metrics_that_do_not_apply_to_3d():
    module = Counting(dim=3)
    X, y, masks = make_lesion_images(4, shape=(8, 8, 8), random_state=0)
    with pytest.raises(ValueError, match="spatial axes"):
        compare_explainers(module, X, y, masks=masks, explainers=["gradient", "xrai"])
    with pytest.raises(ValueError, match="xrai_dice"):
        compare_explainers(module, X, y, masks=masks, explainers=["gradient"],
                           metrics=["xrai_dice"])
    assert module.calls == 0
    with pytest.raises(ValueError, match="dict"):
        compare_explainers(module, {"a": X}, y)


def test_available_metrics():
    assert {"fidelity", "mask_roc_auc", "mask_dice", "xrai_dice", "sparseness"} <= set(
        available_metrics())


# --------------------------------------------------------------------------
# plotting
# --------------------------------------------------------------------------
def test_plot_comparison_points_intervals_and_highlight():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from sklearn_relevance.plotting import plot_comparison

    table = pd.DataFrame(
        {"fid": [0.2, 0.5, 0.1], "fid_ci_low": [0.1, 0.45, 0.0],
         "fid_ci_high": [0.3, 0.6, 0.15],
         "auc": [0.95, 0.93, 0.97], "auc_ci_low": [0.93, 0.91, 0.94],
         "auc_ci_high": [0.97, 0.95, 0.99]},
        index=["a", "b", "c"])
    fig = plot_comparison(table, metrics=["fid", "auc"])
    assert fig.dpi >= 150
    fid_ax, auc_ax = fig.axes
    points = fid_ax.collections[-1]
    np.testing.assert_allclose(points.get_offsets()[:, 0], [0.2, 0.5, 0.1])
    colours = [tuple(c) for c in points.get_facecolors()]
    assert colours[1] != colours[0] == colours[2]  # b's interval is apart: highlighted
    # c has the highest AUC but its interval overlaps a's: no highlight
    auc_colours = {tuple(c) for c in auc_ax.collections[-1].get_facecolors()}
    assert len(auc_colours) == 1
    # the intervals are drawn, and the axis spans them, not 0..max
    lo, hi = auc_ax.get_xlim()
    assert 0.85 < lo < 0.91 and 0.99 < hi < 1.02
    segments = fid_ax.collections[0].get_segments()
    np.testing.assert_allclose(sorted(s[:, 0].min() for s in segments), [0.0, 0.1, 0.45])
    with pytest.raises(ValueError, match="metrics"):
        plot_comparison(table, metrics=["dice"])
    matplotlib.pyplot.close("all")


def test_plot_attributions_and_regions():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from sklearn_relevance.plotting import plot_attributions, plot_region_relevance

    X, _, masks = make_lesion_images(3, shape=(8, 10, 12), random_state=0)
    fig = plot_attributions(X, {"x": X, "-x": -X}, masks=masks[:, 0], n_images=2,
                            colorbar=False)
    assert len(fig.axes) == 2 * 3
    assert fig.dpi >= 150
    assert fig.axes[0].images[0].get_array().shape == (10, 12)  # middle slice
    with pytest.raises(ValueError, match="relevances"):
        plot_attributions(X, {"x": X[:, :, :4]})
    # one colour scale per explainer column, with its colour bar
    Xs = np.stack([X[0], 3 * X[0]])
    fig = plot_attributions(Xs, {"x": Xs}, shared_scale=True)
    assert len(fig.axes) == 2 * 2 + 1
    lims = [fig.axes[k].images[0].get_clim() for k in (1, 3)]
    assert lims[0] == lims[1]
    np.testing.assert_allclose(lims[0][1], np.abs(Xs[1, 0, 4]).max())
    fig = plot_attributions(Xs, {"x": Xs})  # per-map scales differ
    assert fig.axes[1].images[0].get_clim() != fig.axes[3].images[0].get_clim()
    ax = plot_region_relevance([1.0, np.nan, 3.0, 2.0], list("abcd"), top=3)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "d", "a"]
    with pytest.raises(ValueError, match="names"):
        plot_region_relevance([1.0], ["a", "b"])
    matplotlib.pyplot.close("all")


def test_pipeline_explains_the_final_step_on_transformed_input(module, lesions):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y, masks = lesions
    try:
        from sklearn_relevance import RelevanceNetClassifier
    except ImportError:  # pragma: no cover - the estimator lands separately
        pytest.skip("RelevanceNetClassifier is not importable")
    pipe = make_pipeline(FunctionTransformer(lambda Z: 2.0 * Z),
                         RelevanceNetClassifier(max_epochs=1, batch_size=8, random_state=0))
    pipe.fit(X, y)
    kw = dict(masks=masks, explainers=["gradient_x_input"], metrics=["mask_roc_auc"],
              n_bootstrap=0)
    direct = compare_explainers(pipe[-1], 2.0 * X, y, **kw)
    np.testing.assert_allclose(compare_explainers(pipe, X, y, **kw), direct)


def test_atlas_must_match_the_relevance_grid(shared_data):
    from sklearn_relevance.datasets import load_atlas
    from sklearn_relevance.metrics import region_relevance

    aal = load_atlas(shared_data / "atlas")
    labels = aal.labels[::3, ::3, ::3]
    rel = np.random.default_rng(0).random((2, 1, *labels.shape))
    with pytest.raises(ValueError, match="atlas"):
        region_relevance(rel, aal.labels)  # full 2 mm atlas, 6 mm relevance
    sums = region_relevance(rel, labels, labels=[41, 42])
    expected = [[r[0][labels == k].sum() for k in (41, 42)] for r in rel]
    np.testing.assert_allclose(sums, expected)


def test_fidelity_column_is_not_dominated_by_near_zero_denominators(lesions):
    """A misclassified sample's tiny true-class probability once made the mean explode."""
    X, y, _ = lesions
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(X[0].size, 2))
    with torch.no_grad():  # confidently wrong on every class-1 sample
        module[1].weight.zero_()
        module[1].bias.copy_(torch.tensor([12.0, -12.0]))
        module[1].weight.normal_(0.0, 0.5)
    table = _quiet(compare_explainers, module, X, y, explainers=["gradient_x_input"],
                   metrics=["fidelity"], random_state=0, target="true")
    row = table.loc["gradient_x_input"]
    assert abs(row["fidelity"]) <= 2.0 and abs(row["fidelity_ci_high"]) <= 2.0
    assert table.attrs["n_scored"]["gradient_x_input"]["fidelity"] == (y == 0).sum()
    # following the predicted class scores every sample, bounded as well
    table = _quiet(compare_explainers, module, X, y, explainers=["gradient_x_input"],
                   metrics=["fidelity"], target="predicted", random_state=0)
    assert table.attrs["n_scored"]["gradient_x_input"]["fidelity"] == len(y)
    assert abs(table.loc["gradient_x_input", "fidelity"]) <= 2.0


def test_progress_bar_is_off_by_default(module, lesions, capsys):
    X, y, _ = lesions
    _quiet(compare_explainers, module, X[:4], y[:4], explainers=["gradient"],
           metrics=["sparseness"], n_bootstrap=0)
    assert "compare_explainers" not in capsys.readouterr().err
    _quiet(compare_explainers, module, X[:4], y[:4], explainers=["gradient"],
           metrics=["sparseness"], n_bootstrap=0, verbose=1)
    assert "compare_explainers" in capsys.readouterr().err


def test_same_random_state_same_table_with_random_metrics_and_sanity(module, lesions):
    # a stochastic explainer without a seed, a metric with random draws and a
    # randomisation test that explains again: one random_state, one table
    from sklearn_relevance.explainers import SmoothGrad

    X, y, masks = lesions
    sg = SmoothGrad(n_samples=3)
    runs = [_quiet(compare_explainers, module, X, y, masks=masks, explainers={"sg": sg},
                   metrics=["mask_roc_auc", "max_sensitivity"], n_bootstrap=10,
                   random_state=0, sanity=["mprt"]) for _ in range(2)]
    assert runs[0].equals(runs[1])
    assert sg.random_state is None  # the caller's explainer is not changed
    other = _quiet(compare_explainers, module, X, y, masks=masks, explainers={"sg": sg},
                   metrics=["max_sensitivity"], n_bootstrap=10, random_state=1)
    assert other["max_sensitivity"].iloc[0] != runs[0]["max_sensitivity"].iloc[0]
