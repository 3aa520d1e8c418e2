"""Multi-laboratory MALDI spectra modelled on published inter-laboratory
variation (see :func:`make_maldi_multilab_spectra`); re-exported by
:mod:`sklearn_relevance.ims.simulate`."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from ._spectra import (
    _FWHM_TO_SIGMA,
    _TEMPLATE_HEIGHT,
    _TEMPLATE_MZ,
    _free_positions,
    _measured,
    _peaks,
)

__all__ = ["make_maldi_multilab_spectra"]


@validate_params(
    {
        "n_samples": [Interval(Integral, 2, None, closed="left")],
        "n_labs": [Interval(Integral, 1, None, closed="left")],
        "n_mz": [Interval(Integral, 10, None, closed="left")],
        "mz_range": [tuple, list],
        "n_class_peaks": [Interval(Integral, 1, None, closed="left")],
        "class_effect": [Interval(Real, 0, None, closed="neither")],
        "n_preparation_peaks": [Interval(Integral, 0, None, closed="left")],
        "preparation_height": [Interval(Real, 0, None, closed="left")],
        "preparation_effect": [Interval(Real, 0, 1, closed="left")],
        "preparation_corr": [Interval(Real, 0, 1, closed="both")],
        "shift_ppm": [Interval(Real, 0, None, closed="left")],
        "pixel_shift_ppm": [Interval(Real, 0, None, closed="left")],
        "resolution": [tuple, list],
        "baseline": [Interval(Real, 0, None, closed="left")],
        "lab_scale_sd": [Interval(Real, 0, None, closed="left")],
        "spectrum_scale_sd": [Interval(Real, 0, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "return_info": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_maldi_multilab_spectra(n_samples=600, n_labs=4, *, n_mz=1000,
                                mz_range=(2000.0, 10000.0), n_class_peaks=3,
                                class_effect=0.25, n_preparation_peaks=3,
                                preparation_height=1.0, preparation_effect=0.0,
                                preparation_corr=0.9, shift_ppm=300.0, pixel_shift_ppm=30.0,
                                resolution=(400.0, 800.0), baseline=1.0, lab_scale_sd=0.4,
                                spectrum_scale_sd=0.3, noise=0.08, return_info=False,
                                random_state=None):
    """Tumour-typing MALDI spectra with the inter-laboratory variation reported in the field.

    The same biology as :func:`make_multilab_spectra` (the 40 strongest
    peaks of a real MALDI tissue spectrum with biological variation, and
    ``n_class_peaks`` class peaks per tumour type), measured in ``n_labs``
    laboratories that differ the way multicentre MALDI imaging studies
    report:

    - **mass calibration**: a lab-wide shift (standard deviation
      ``shift_ppm``) plus a spectrum-to-spectrum jitter (``pixel_shift_ppm``);
    - **peak broadening**: each lab's resolving power m/FWHM drawn from
      ``resolution`` (instrument and tune differ between centres);
    - **baseline**: a chemical-noise baseline of lab-specific amplitude and
      decay (``baseline`` scales it; it depends on the matrix);
    - **intensity scaling**: a lab factor (log-normal, ``lab_scale_sd``) and
      a spectrum factor (``spectrum_scale_sd``: matrix crystallisation, ion
      source contamination; what TIC normalisation is meant to remove);
    - **matrix and preparation peaks**: ``n_preparation_peaks`` peaks per
      lab at lab-specific m/z (matrix clusters, trypsin autolysis products
      and other preparation signals), ``preparation_height`` times the class
      peaks' height, so at the scale of the class peaks, not above it.
      ``preparation_effect`` links their height to the class inside the lab
      for a fraction ``preparation_corr`` of its spectra (a batch effect:
      tumour types prepared apart); 0 leaves them unrelated to the class;
    - **pixel-to-pixel noise**: ``noise`` (relative to the strongest
      template peak, growing with the square root of the signal, labs
      differing by up to a factor 2).

    Sources of the variation modelled: Buck et al., "Round robin study of
    formalin-fixed paraffin-embedded tissues in mass spectrometry imaging",
    Anal. Bioanal. Chem. 410 (2018) 5969-5980, doi:10.1007/s00216-018-1216-2
    (four centres, same protocol and similar instruments: centre-to-centre
    technical variation, trypsin autolysis and matrix signals among the most
    influential in its PCA); Römpp et al., "Mass spectrometry imaging of
    biological tissue: an approach for multicenter studies", Anal. Bioanal.
    Chem. 407 (2015) 2329-2335, doi:10.1007/s00216-014-8410-7 (five
    laboratories, different instruments, bin widths and mass spectrometric
    parameters); Deininger et al., "Normalization in MALDI-TOF imaging
    datasets of proteins: practical considerations", Anal. Bioanal. Chem.
    401 (2011) 167-181, doi:10.1007/s00216-011-4929-z (spectrum intensity
    artefacts from matrix crystals and ion-source contamination; TIC,
    median and noise-level normalisation); Fonville et al., "Robust data
    processing and normalization strategy for MALDI mass spectrometric
    imaging", Anal. Chem. 84 (2012) 1310-1319, doi:10.1021/ac201767g (matrix
    peaks in the spectra and their influence on normalisation). The
    defaults are of the order these papers describe for linear-TOF peptide
    and protein imaging, not fitted to any of them.

    Parameters
    ----------
    n_samples : int, default=600
    n_labs : int, default=4
    n_mz : int, default=1000
    mz_range : (float, float), default=(2000, 10000)
    n_class_peaks : int, default=3
    class_effect : float, default=0.25
        Class peak height relative to the strongest template peak.
    n_preparation_peaks : int, default=3
        Matrix and preparation peaks per lab.
    preparation_height : float, default=1.0
        Their height relative to ``class_effect``.
    preparation_effect : float in [0, 1), default=0
        Relative change of their height with the class, inside their lab.
    preparation_corr : float in [0, 1], default=0.9
        Fraction of a lab's spectra whose preparation peaks follow the class.
    shift_ppm : float, default=300
        Standard deviation of the labs' calibration shifts, in ppm.
    pixel_shift_ppm : float, default=30
        Standard deviation of the per-spectrum calibration jitter, in ppm.
    resolution : (float, float), default=(400, 800)
        Range of the labs' resolving power m/FWHM.
    baseline : float, default=1.0
        Scale of the baseline amplitude (0: none).
    lab_scale_sd, spectrum_scale_sd : float, default=0.4, 0.3
        Log-normal standard deviations of the lab and spectrum intensity factors.
    noise : float, default=0.08
    return_info : bool, default=False
    random_state : int, RandomState instance or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_mz), float32
    y : ndarray of shape (n_samples,)
    labs : ndarray of shape (n_samples,)
    info : dict, only when ``return_info``
        ``mz``, ``class_peaks`` (class -> m/z), ``preparation_peaks`` (lab ->
        m/z), ``resolution`` (lab -> m/FWHM), ``class_mask`` and
        ``preparation_mask`` (n_mz,) bool; ``confounders`` and
        ``confounder_mask`` name the preparation peaks too (the keys of
        :func:`make_multilab_spectra`).

    Examples
    --------
    >>> from sklearn_relevance.ims import make_maldi_multilab_spectra
    >>> X, y, labs = make_maldi_multilab_spectra(80, 4, n_mz=300, random_state=0)
    >>> X.shape, sorted(set(labs.tolist()))
    ((80, 300), ['lab0', 'lab1', 'lab2', 'lab3'])
    """
    rng = check_random_state(random_state)
    lo, hi = (float(v) for v in mz_range)
    if not 0 < lo < hi:
        raise ValueError(
            "The 'mz_range' parameter of make_maldi_multilab_spectra must be (low, high) "
            f"with 0 < low < high. Got {mz_range!r} instead.")
    r_lo, r_hi = (float(v) for v in resolution) if len(resolution) == 2 else (0.0, -1.0)
    if not 0 < r_lo <= r_hi:
        raise ValueError(
            "The 'resolution' parameter of make_maldi_multilab_spectra must be (low, high) "
            f"with 0 < low <= high. Got {resolution!r} instead.")
    mz = np.linspace(lo, hi, n_mz)
    step = mz[1] - mz[0]
    min_gap = max(4 * (lo + hi) / 2 / r_lo, 3 * step)
    inside = (_TEMPLATE_MZ > lo) & (_TEMPLATE_MZ < hi)
    if inside.sum() >= 5:
        t_mz, t_h = _TEMPLATE_MZ[inside], _TEMPLATE_HEIGHT[inside]
    else:
        t_mz = lo + (hi - lo) * (_TEMPLATE_MZ - 2000.0) / 8000.0
        t_h = _TEMPLATE_HEIGHT
    t_h = t_h / t_h.max()
    margin = 0.05 * (hi - lo)
    class_mz = _free_positions(rng, lo + margin, hi - margin, t_mz, 2 * n_class_peaks,
                               min_gap).reshape(2, n_class_peaks)
    prep = _free_positions(rng, lo + margin, hi - margin,
                           np.concatenate([t_mz, class_mz.ravel()]),
                           n_labs * n_preparation_peaks, min_gap)
    prep_mz = {f"lab{k}": prep[k * n_preparation_peaks:(k + 1) * n_preparation_peaks]
               for k in range(n_labs)}

    labs_idx = np.sort(np.arange(n_samples) % n_labs)
    y = np.empty(n_samples, dtype=np.int64)
    for lab in range(n_labs):  # a loop over labs, never over spectra
        members = np.flatnonzero(labs_idx == lab)
        y[members] = rng.permutation(np.arange(members.size) % 2)
    n = n_samples
    res_lab = rng.uniform(r_lo, r_hi, n_labs)
    shift = (rng.normal(0.0, shift_ppm * 1e-6, n_labs)[labs_idx]
             + rng.normal(0.0, pixel_shift_ppm * 1e-6, n))
    scale = (np.exp(rng.normal(0.0, lab_scale_sd, n_labs))[labs_idx]
             * np.exp(rng.normal(0.0, spectrum_scale_sd, n)))
    base_amp = baseline * rng.uniform(0.2, 1.0, n_labs)[labs_idx] * np.exp(rng.normal(0, 0.1, n))
    base_decay = rng.uniform(0.15, 0.4, n_labs)[labs_idx] * (hi - lo)
    noise_lab = noise * rng.uniform(1.0, 2.0, n_labs)[labs_idx]
    direction = rng.choice([-1.0, 1.0], n_labs)[labs_idx]

    def centres(p, rows=slice(None)):
        p = np.asarray(p, float)
        return np.broadcast_to(p, (len(shift[rows]), p.size)) * (1.0 + shift[rows, None])

    def widths(c, rows=slice(None)):
        return c / res_lab[labs_idx][rows, None] * _FWHM_TO_SIGMA

    c = centres(t_mz)
    signal = _peaks(mz, c, t_h * np.exp(rng.normal(0, 0.25, (n, t_mz.size))), widths(c))
    all_class = class_mz.ravel()
    own = np.repeat(np.arange(2), n_class_peaks)[None, :] == y[:, None]
    c = centres(all_class)
    signal += _peaks(mz, c, class_effect * own * np.exp(rng.normal(0, 0.25, (n, all_class.size))),
                     widths(c))
    follows = rng.random_sample(n) < preparation_corr
    state = np.where(follows, y, rng.randint(0, 2, n)) * 2.0 - 1.0
    for lab in range(n_labs if n_preparation_peaks else 0):
        rows = np.flatnonzero(labs_idx == lab)
        h = preparation_height * class_effect * (
            1 + preparation_effect * direction[rows] * state[rows])
        h = h[:, None] * np.exp(rng.normal(0, 0.25, (rows.size, n_preparation_peaks)))
        c = centres(prep_mz[f"lab{lab}"], rows)
        signal[rows] += _peaks(mz, c, h, widths(c, rows))
    X, labs = _measured(signal, mz, base_amp, base_decay, noise_lab, scale, labs_idx,
                        n_labs, rng)
    if not return_info:
        return X, y, labs

    def near(points):
        p = np.asarray(points, dtype=np.float64).ravel()
        if p.size == 0:
            return np.zeros(n_mz, bool)
        w = p / r_lo * _FWHM_TO_SIGMA
        return (np.abs(mz[:, None] - p[None, :]) <= 2 * w[None, :] + step
                + p[None, :] * 3 * shift_ppm * 1e-6).any(1)

    prep_all = np.concatenate(list(prep_mz.values())) if n_labs * n_preparation_peaks else []
    info = {"mz": mz, "class_peaks": {0: class_mz[0], 1: class_mz[1]},
            "preparation_peaks": prep_mz,
            "resolution": {f"lab{k}": float(r) for k, r in enumerate(res_lab)},
            "class_mask": near(all_class), "preparation_mask": near(prep_all)}
    info["confounders"], info["confounder_mask"] = prep_mz, info["preparation_mask"]
    return X, y, labs, info
