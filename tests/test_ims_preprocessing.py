"""Spectral preprocessing transformers, against literal references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.base import clone
from sklearn.preprocessing import Normalizer

from sklearn_relevance.ims import (
    BaselineRemover,
    MzResampler,
    TICNormalizer,
    VarianceStabilizer,
)


@pytest.fixture
def spectra(rng):
    return rng.gamma(2.0, 1.0, size=(6, 40))


def test_tic_normalizer_matches_l1_normalizer(spectra):
    out = TICNormalizer(scale=40).fit_transform(spectra)
    np.testing.assert_allclose(out.sum(axis=1), 40)
    np.testing.assert_allclose(out, 40 * Normalizer(norm="l1").fit_transform(spectra))
    zero = np.zeros((1, 40))
    np.testing.assert_array_equal(TICNormalizer().fit(spectra).transform(zero), zero)
    assert out.dtype == np.float64
    assert TICNormalizer().fit_transform(spectra.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="'scale' parameter of TICNormalizer"):
        TICNormalizer(scale=0).fit(spectra)


def test_tic_normalizer_refuses_negative_intensities(spectra):
    # a signed sum is no ion current: [1, 2, -2.9, 0] used to become [10, 20, -29, 0]
    bad = np.array([[1.0, 2.0, -2.9, 0.0]])
    with pytest.raises(ValueError, match="Negative values.*TICNormalizer"):
        TICNormalizer().fit(bad)
    fitted = TICNormalizer().fit(np.abs(bad))
    with pytest.raises(ValueError, match="Negative values.*TICNormalizer"):
        fitted.transform(bad)
    with pytest.raises(ValueError, match="Negative values.*TICNormalizer"):
        TICNormalizer().fit(spectra).transform(spectra - spectra.mean())


@pytest.mark.parametrize("method, ref", [("sqrt", np.sqrt), ("log1p", np.log1p)])
def test_variance_stabilizer(spectra, method, ref):
    np.testing.assert_allclose(VarianceStabilizer(method=method).fit_transform(spectra),
                               ref(spectra))
    with pytest.raises(ValueError, match="Negative values"):
        VarianceStabilizer().fit(-spectra)


def _snip_literal(x, n_iter):
    """SNIP as written in Ryan et al. (1988): one spectrum, point by point."""
    y = np.array(x, dtype=float)
    L = len(y)
    for k in range(1, n_iter + 1):
        new = y.copy()
        for i in range(k, L - k):
            new[i] = min(y[i], (y[i - k] + y[i + k]) / 2)
        y = new
    return y


def test_snip_matches_literal_implementation(spectra):
    out = BaselineRemover(half_window=5).fit_transform(spectra)
    ref = np.array([x - _snip_literal(x, 5) for x in spectra])
    np.testing.assert_allclose(out, ref, atol=1e-12)
    assert (out >= -1e-12).all()  # the baseline never exceeds the spectrum


def test_tophat_matches_scipy_white_tophat(spectra):
    out = BaselineRemover(method="tophat", half_window=3).fit_transform(spectra)
    ref = np.array([ndimage.white_tophat(x, size=7, mode="nearest") for x in spectra])
    np.testing.assert_allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("method", ["snip", "tophat"])
def test_baseline_removal_recovers_peaks_on_a_sloped_background(method):
    mz = np.arange(300.0)
    peaks = 2.0 * np.exp(-0.5 * ((mz - 100) / 1.5) ** 2) + np.exp(
        -0.5 * ((mz - 220) / 1.5) ** 2)
    background = 5.0 * np.exp(-mz / 150) + 1.0
    out = BaselineRemover(method=method, half_window=10).fit_transform(
        (peaks + background)[None])[0]
    assert abs(out[100] - 2.0) < 0.1 and abs(out[220] - 1.0) < 0.1
    flat = np.abs(peaks) < 1e-3
    flat[:10] = False  # the top-hat's structuring element overhangs the first bins
    assert np.abs(out[flat]).max() < 0.1


def test_resampler_sum_matches_histogram_and_keeps_tic(spectra):
    mz = np.linspace(100, 200, 40)
    res = MzResampler(mz=mz, n_bins=7).fit(spectra)
    out = res.transform(spectra)
    edges = np.linspace(100, 200, 8)
    ref = np.array([np.histogram(mz, edges, weights=x)[0] for x in spectra])
    np.testing.assert_allclose(out, ref)
    np.testing.assert_allclose(out.sum(axis=1), spectra.sum(axis=1))
    np.testing.assert_allclose(res.mz_out_, (edges[:-1] + edges[1:]) / 2)
    assert res.get_feature_names_out().shape == (7,)
    # bin_width gives the same axis
    np.testing.assert_allclose(
        MzResampler(mz=mz, bin_width=100 / 7).fit(spectra).mz_out_, res.mz_out_)


def test_resampler_linear_matches_np_interp_with_per_row_axes(spectra, rng):
    n, m = spectra.shape
    target = np.linspace(95, 205, 33)
    axes = np.linspace(100, 200, m)[None] + rng.normal(0, 2, (n, 1))  # shifted calibrations
    res = MzResampler(target_mz=target, method="linear").fit(spectra)
    out = res.transform(spectra, mz=axes)
    ref = np.array([np.interp(target, a, x, left=0.0, right=0.0)
                    for a, x in zip(axes, spectra)])
    np.testing.assert_allclose(out, ref, atol=1e-12)
    # one axis for all rows
    out1 = res.transform(spectra, mz=axes[0])
    ref1 = np.array([np.interp(target, axes[0], x, left=0.0, right=0.0) for x in spectra])
    np.testing.assert_allclose(out1, ref1, atol=1e-12)


def test_resampler_sum_with_per_row_axes_matches_histogram(spectra, rng):
    n, m = spectra.shape
    axes = np.sort(rng.uniform(100, 200, (n, m)), axis=1)
    res = MzResampler(target_mz=np.arange(100.5, 200, 5.0)).fit(spectra)
    edges = np.arange(98.0, 203.0, 5.0)
    ref = np.array([np.histogram(a, edges, weights=x)[0] for a, x in zip(axes, spectra)])
    np.testing.assert_allclose(res.transform(spectra, mz=axes), ref)


def test_resampler_puts_recalibrated_spectra_on_one_axis():
    # the same peak measured on two axes lands in the same output column
    axis_a = np.linspace(1000, 1100, 201)
    axis_b = axis_a + 0.3
    peak = np.exp(-0.5 * ((axis_a - 1050) / 2) ** 2)
    X = np.stack([peak, peak])
    res = MzResampler(mz=axis_a, n_bins=20, mz_range=(1000, 1100)).fit(X)
    out = res.transform(X, mz=np.stack([axis_a, axis_b]))
    assert out[0].argmax() == out[1].argmax()
    np.testing.assert_allclose(out[0].sum(), out[1].sum(), rtol=1e-6)


def test_resampler_default_keeps_the_axis_and_is_clonable(spectra):
    res = MzResampler().fit(spectra)
    np.testing.assert_array_equal(res.transform(spectra), spectra)
    assert clone(res).get_params() == res.get_params()


@pytest.mark.parametrize("kwargs, match", [
    ({"mz": np.arange(5.0)}, "'mz' parameter of MzResampler"),
    ({"mz": np.arange(40.0)[::-1]}, "strictly increasing"),
    ({"n_bins": 3, "bin_width": 1.0}, "at most one"),
    ({"n_bins": 0}, "'n_bins' parameter of MzResampler"),
    ({"method": "cubic"}, "'method' parameter of MzResampler"),
    ({"mz_range": (50, 10)}, "'mz_range' parameter of MzResampler"),
    ({"target_mz": [3.0, 1.0]}, "'target_mz' parameter"),
])
def test_resampler_bad_parameters(spectra, kwargs, match):
    with pytest.raises(ValueError, match=match):
        MzResampler(**kwargs).fit(spectra)


def test_resampler_transform_checks_axis_and_width(spectra):
    res = MzResampler(n_bins=4).fit(spectra)
    with pytest.raises(ValueError, match="'mz' parameter of MzResampler"):
        res.transform(spectra, mz=np.arange(3.0))
    with pytest.raises(ValueError, match="features"):
        res.transform(spectra[:, :10])
