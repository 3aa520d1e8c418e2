"""Spectral preprocessing for mass spectra as scikit-learn transformers.

The usual MALDI chain, each step vectorised over all spectra of a batch:
variance stabilisation (:class:`VarianceStabilizer`), baseline removal
(:class:`BaselineRemover`), total-ion-current normalisation
(:class:`TICNormalizer`) and resampling onto one m/z axis
(:class:`MzResampler`). All are stateless apart from the output axis of
:class:`MzResampler`, so they are safe inside cross-validation.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy import ndimage
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from ._resample import resample, uniform_edges

__all__ = ["BaselineRemover", "MzResampler", "TICNormalizer", "VarianceStabilizer"]


class _Stateless(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """A row-wise transformer: ``fit`` only checks X and records its width."""

    _positive = False

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check ``X`` and record ``n_features_in_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_mz)
        y : ignored

        Returns
        -------
        self
        """
        X = validate_data(self, X, dtype=(np.float64, np.float32))
        if self._positive:
            check_non_negative(X, f"{type(self).__name__} (input X)")
        return self

    def transform(self, X):
        """Transform every spectrum (row) of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_mz)

        Returns
        -------
        ndarray of shape (n_samples, n_mz)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False, copy=True)
        if self._positive:
            check_non_negative(X, f"{type(self).__name__} (input X)")
        return self._transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = self._positive
        tags.requires_fit = False
        return tags


class TICNormalizer(_Stateless):
    """Divide every spectrum by its total ion current (sum of intensities).

    Removes differences in overall signal between pixels, sections and
    laboratories (matrix, laser energy, detector gain). Spectra whose TIC is
    zero are left unchanged. Intensities must be non-negative (a signed sum
    is no ion current: ``[1, 2, -2.9]`` would be scaled tenfold), else
    ``ValueError``.

    Parameters
    ----------
    scale : float, default=1.0
        Sum of every normalised spectrum (e.g. the number of m/z bins to keep
        intensities near one).

    Attributes
    ----------
    n_features_in_ : int

    See Also
    --------
    sklearn.preprocessing.Normalizer : the same with ``norm="l1"`` for
        non-negative data, without a scale.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.ims import TICNormalizer
    >>> TICNormalizer().fit_transform(np.array([[1.0, 3.0], [2.0, 2.0]]))
    array([[0.25, 0.75],
           [0.5 , 0.5 ]])
    """

    _parameter_constraints = {"scale": [Interval(Real, 0, None, closed="neither")]}
    _positive = True

    def __init__(self, *, scale=1.0):
        self.scale = scale

    def _transform(self, X):
        tic = X.sum(axis=1, keepdims=True)
        tic[tic == 0] = 1.0
        X /= tic
        X *= self.scale
        return X


class VarianceStabilizer(_Stateless):
    """Square-root or log transform of intensities.

    Counts of ions are roughly Poisson distributed: their variance grows with
    the intensity. ``sqrt`` makes it nearly constant (the MALDIquant default),
    ``log1p`` compresses large peaks more strongly.

    Parameters
    ----------
    method : {"sqrt", "log1p"}, default="sqrt"

    Attributes
    ----------
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.ims import VarianceStabilizer
    >>> VarianceStabilizer().fit_transform(np.array([[0.0, 4.0, 9.0]]))
    array([[0., 2., 3.]])
    """

    _parameter_constraints = {"method": [StrOptions({"sqrt", "log1p"})]}
    _positive = True

    def __init__(self, *, method="sqrt"):
        self.method = method

    def _transform(self, X):
        return np.sqrt(X, out=X) if self.method == "sqrt" else np.log1p(X, out=X)


def snip_baseline(X, n_iter):
    """SNIP baseline (Ryan et al. 1988) of every row of ``X``, vectorised.

    At window ``k = 1 .. n_iter`` every point is replaced by the smaller of
    itself and the mean of its neighbours ``k`` bins away; peaks narrower
    than the final window are clipped away, the slowly varying background
    remains.
    """
    base = np.array(X, dtype=np.float64, copy=True)
    L = base.shape[1]
    for k in range(1, min(int(n_iter), (L - 1) // 2) + 1):
        mean = (base[:, : L - 2 * k] + base[:, 2 * k:]) / 2
        np.minimum(base[:, k: L - k], mean, out=base[:, k: L - k])
    return base


class BaselineRemover(_Stateless):
    """Subtract the slowly varying background (chemical noise) of every spectrum.

    Parameters
    ----------
    method : {"snip", "tophat"}, default="snip"
        ``"snip"``: statistics-sensitive non-linear iterative peak clipping
        (as MALDIquant's default); ``"tophat"``: the morphological top-hat
        (spectrum minus its grey opening).
    half_window : int, default=20
        Half width, in bins, of the widest structure still considered a peak
        (SNIP iterations, or the top-hat's structuring element).

    Attributes
    ----------
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.ims import BaselineRemover
    >>> x = np.linspace(5, 1, 101)   # a falling baseline
    >>> x[50] += 3.0                 # one sharp peak
    >>> out = BaselineRemover(half_window=10).fit_transform(x[None])
    >>> round(float(out[0, 50]), 2), round(float(np.abs(np.delete(out[0], 50)).max()), 2)
    (3.0, 0.0)
    """

    _parameter_constraints = {
        "method": [StrOptions({"snip", "tophat"})],
        "half_window": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, *, method="snip", half_window=20):
        self.method = method
        self.half_window = half_window

    def _transform(self, X):
        if self.method == "snip":
            base = snip_baseline(X, self.half_window)
        else:
            base = ndimage.grey_opening(X, size=(1, 2 * int(self.half_window) + 1),
                                        mode="nearest")
        X -= base.astype(X.dtype, copy=False)
        return X


class MzResampler(TransformerMixin, BaseEstimator):
    """Put spectra on one m/z axis: fewer bins, or a common axis across instruments.

    ``fit`` settles the output axis (``mz_out_``) from the input axis ``mz``
    and the options; ``transform`` maps every spectrum onto it. Spectra
    measured on other axes (another instrument, another calibration) go
    through ``transform(X, mz=their_axis)``, with one axis for all rows or
    one per row.

    Parameters
    ----------
    mz : array-like of shape (n_mz,) or None
        m/z value of every input column (strictly increasing); None numbers
        the columns ``0 .. n_mz - 1``.
    n_bins : int or None
        Number of equal output bins over ``mz_range`` (or the input axis).
    bin_width : float or None
        Width of the output bins instead of their number.
    target_mz : array-like of shape (n_out,) or None
        An explicit output axis (e.g. another data set's ``mz``).
    mz_range : (float, float) or None
        Range of the output axis when binning.
    method : {"sum", "linear"}, default="sum"
        ``"sum"`` adds the intensities falling in each output bin (keeps the
        total ion current, the choice for downsampling); ``"linear"``
        interpolates the spectrum at the output m/z values (keeps peak
        heights; the choice for re-calibrated axes of similar density).

    Attributes
    ----------
    mz_out_ : ndarray of shape (n_out,)
        The output axis.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.ims import MzResampler
    >>> X = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> res = MzResampler(mz=[100, 101, 102, 103], n_bins=2).fit(X)
    >>> res.mz_out_, res.transform(X)
    (array([100.75, 102.25]), array([[3., 7.]]))
    >>> MzResampler(target_mz=[100.5, 101.5], method="linear").fit(X).transform(
    ...     X, mz=[100, 101, 102, 103])
    array([[1.5, 2.5]])
    """

    _parameter_constraints = {
        "mz": ["array-like", None],
        "n_bins": [Interval(Integral, 1, None, closed="left"), None],
        "bin_width": [Interval(Real, 0, None, closed="neither"), None],
        "target_mz": ["array-like", None],
        "mz_range": [tuple, list, None],
        "method": [StrOptions({"sum", "linear"})],
    }

    def __init__(self, *, mz=None, n_bins=None, bin_width=None, target_mz=None,
                 mz_range=None, method="sum"):
        self.mz = mz
        self.n_bins = n_bins
        self.bin_width = bin_width
        self.target_mz = target_mz
        self.mz_range = mz_range
        self.method = method

    def _input_axis(self, n_features, mz=None, n_samples=None):
        name = "mz"
        if mz is None:
            mz = self.mz
        if mz is None:
            return np.arange(n_features, dtype=np.float64)
        mz = np.asarray(mz, dtype=np.float64)
        shapes = [(n_features,)] + ([(n_samples, n_features)] if n_samples else [])
        if mz.shape not in shapes or not np.all(np.isfinite(mz)) \
                or not np.all(np.diff(mz, axis=-1) > 0):
            raise ValueError(
                f"The '{name}' parameter of MzResampler must be a strictly increasing, "
                f"finite m/z axis of shape {' or '.join(map(str, shapes))} (one value "
                f"per column of X). Got shape {mz.shape} instead."
            )
        return mz

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Settle the output axis ``mz_out_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_mz)
        y : ignored

        Returns
        -------
        self
        """
        X = validate_data(self, X, dtype=(np.float64, np.float32))
        mz = self._input_axis(X.shape[1])
        given = [k for k in ("n_bins", "bin_width", "target_mz")
                 if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                "Pass at most one of 'n_bins', 'bin_width' and 'target_mz' to "
                f"MzResampler. Got {given} instead."
            )
        lo, hi = mz[0], mz[-1]
        if self.mz_range is not None:
            lo, hi = (float(v) for v in self.mz_range)
            if not lo < hi or hi < mz[0] or lo > mz[-1]:
                raise ValueError(
                    "The 'mz_range' parameter of MzResampler must be (low, high) with "
                    f"low < high overlapping the input axis [{mz[0]:g}, {mz[-1]:g}]. "
                    f"Got {self.mz_range!r} instead."
                )
        if self.target_mz is not None:
            out = np.asarray(self.target_mz, dtype=np.float64)
            if out.ndim != 1 or out.size < 1 or not np.all(np.diff(out) > 0):
                raise ValueError(
                    "The 'target_mz' parameter of MzResampler must be a strictly "
                    f"increasing 1D axis. Got shape {out.shape} instead."
                )
        elif self.n_bins is not None or self.bin_width is not None:
            edges = uniform_edges(lo, hi, n_bins=self.n_bins, bin_width=self.bin_width)
            out = (edges[:-1] + edges[1:]) / 2
        else:
            out = mz[(mz >= lo) & (mz <= hi)]
        self.mz_out_ = out
        return self

    def transform(self, X, mz=None):
        """Resample every spectrum onto ``mz_out_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_mz)
        mz : array-like of shape (n_mz,) or (n_samples, n_mz), or None
            Axis of X's columns when it differs from the fitted ``mz``
            (one per row for spectra from different instruments).

        Returns
        -------
        ndarray of shape (n_samples, len(mz_out_))
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        axis = self._input_axis(X.shape[1], mz, n_samples=X.shape[0])
        return resample(X, axis, self.mz_out_, self.method).astype(X.dtype, copy=False)

    def get_feature_names_out(self, input_features=None):
        """Output feature names, ``"mz_<value>"``."""
        check_is_fitted(self)
        return np.asarray([f"mz_{v:.6g}" for v in self.mz_out_], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
