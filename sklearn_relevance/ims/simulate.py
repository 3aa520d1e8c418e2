"""Labelled MALDI spectra from several laboratories, with lab confounders.

The simulator reproduces the failure that relevance regularisation is meant
to fix: two tumour types differ by a few sharp peptide peaks, while every
laboratory adds its own effects (m/z calibration shift, intensity scale,
baseline, noise) and a large lab-specific *confounder* whose height follows
the class inside that lab only. A network free to use anything learns the
confounders, which are absent in a lab it never saw.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.special import ndtr
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

__all__ = ["make_maldi_multilab_spectra", "make_multilab_spectra"]

# Peptide peaks of a real MALDI tissue spectrum (m2aia test crop, m/z 2,000-10,000;
# see ../shared/data/SOURCES.md): position and relative height of the 40 most
# prominent peaks of its mean spectrum, after baseline removal.
_TEMPLATE_MZ = np.array([
    2026.3, 2042.0, 2093.7, 2154.4, 2169.1, 2180.9, 2208.6, 2235.4, 2259.4, 2270.9,
    2284.0, 2307.2, 2447.0, 2468.4, 2495.2, 2521.6, 2548.7, 2576.4, 2603.3, 2625.4,
    2755.6, 2798.9, 2859.5, 2941.9, 2991.3, 3043.5, 3257.8, 3833.8, 3852.8, 4715.5,
    4899.5, 4963.4, 4979.0, 5099.9, 5442.3, 5458.7, 6572.4, 6719.2, 7534.6, 8565.4,
])
_TEMPLATE_HEIGHT = np.array([
    0.178, 0.161, 0.159, 0.243, 0.179, 0.371, 0.431, 0.295, 0.197, 0.188,
    0.241, 0.163, 0.201, 0.251, 0.416, 0.577, 0.556, 0.389, 0.228, 0.186,
    0.146, 0.136, 0.135, 0.218, 0.164, 0.177, 0.170, 0.127, 0.139, 0.129,
    0.225, 1.000, 0.577, 0.164, 0.292, 0.171, 0.170, 0.228, 0.126, 0.126,
])
#: Resolving power m / FWHM of the simulated (linear TOF) instrument.
_RESOLUTION = 600.0
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def _free_positions(rng, lo, hi, taken, k, min_gap):
    """``k`` m/z positions in (lo, hi), at least ``min_gap`` from ``taken`` and each other."""
    out = []
    taken = np.asarray(taken, dtype=np.float64).ravel()
    if k * min_gap < hi - lo:
        for _ in range(100 * k + 100):  # draws until k positions fit (a few per peak)
            p = rng.uniform(lo, hi)
            if taken.size == 0 or np.abs(taken - p).min() >= min_gap:
                out.append(p)
                taken = np.append(taken, p)
                if len(out) == k:
                    return np.array(out)
    raise ValueError(
        f"Cannot place {k} more peaks {min_gap:g} apart in the m/z range "
        f"({lo:g}, {hi:g}); use fewer labs or class peaks, or a wider range."
    )


def _peaks(mz, centres, heights, widths):
    """Gaussian peaks integrated over the bins of ``mz`` -> (n, len(mz)).

    ``centres``, ``heights`` and ``widths`` (sigma) have shape (n, k). A peak
    wider than a bin keeps its height; a narrower one keeps its area, so a
    sharp peak never falls between two grid points.
    """
    step = mz[1] - mz[0]
    left, right = mz - step / 2, mz + step / 2
    out = np.zeros((centres.shape[0], mz.size))
    for j in range(centres.shape[1]):  # a loop over peaks (few), never over spectra
        c, w = centres[:, j:j + 1], widths[:, j:j + 1]
        mass = ndtr((right[None, :] - c) / w) - ndtr((left[None, :] - c) / w)
        out += heights[:, j:j + 1] * np.sqrt(2 * np.pi) * w / step * mass
    return out


@validate_params(
    {
        "n_samples": [Interval(Integral, 2, None, closed="left")],
        "n_labs": [Interval(Integral, 1, None, closed="left")],
        "n_mz": [Interval(Integral, 10, None, closed="left")],
        "mz_range": [tuple, list],
        "n_class_peaks": [Interval(Integral, 1, None, closed="left")],
        "class_effect": [Interval(Real, 0, None, closed="left")],
        "confounder_effect": [Interval(Real, 0, 1, closed="left")],
        "confounder_height": [Interval(Real, 0, None, closed="left")],
        "confounder_corr": [Interval(Real, 0, 1, closed="both")],
        "confounder_scope": [StrOptions({"lab", "all"})],
        "shift_ppm": [Interval(Real, 0, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "return_info": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_multilab_spectra(n_samples=600, n_labs=4, *, n_mz=1000, mz_range=(2000.0, 10000.0),
                          n_class_peaks=3, class_effect=0.25, confounder_effect=0.3,
                          confounder_height=3.0, confounder_corr=0.9, confounder_scope="lab",
                          shift_ppm=300.0, noise=0.08, return_info=False, random_state=None):
    """Simulate tumour-typing MALDI spectra measured in several laboratories.

    Every spectrum is a peptide-range profile (the 40 strongest peaks of a
    real MALDI tissue spectrum, with biological variation) on which:

    - **class peaks**: each of the two tumour types raises its own
      ``n_class_peaks`` sharp peaks (``class_effect`` of the strongest
      template peak) -- the real, lab-independent signal;
    - **lab effects**: each lab shifts the m/z calibration (``shift_ppm``),
      scales intensities, adds its own exponential baseline and noise level;
    - **confounders**: each lab adds a large peak cluster of its own shape
      (a singlet, doublet or triplet at a lab-specific m/z, ``confounder_height``
      times the strongest template peak) whose height is raised or lowered by
      ``confounder_effect`` according to the class, in a direction drawn per
      lab, for a fraction ``confounder_corr`` of the lab's samples. Outside
      the lab the cluster is absent (``confounder_scope="lab"``), so its link
      to the class holds inside a lab only.

    The defaults favour a relevance penalty by construction: confounders 12
    times the class peaks, linked to the class, and absent where the model
    is tested. ``confounder_height`` about ``class_effect`` gives small
    confounders; ``confounder_effect=0`` (or ``confounder_corr=0``) gives
    class-independent ones; ``confounder_scope="all"`` puts every lab's
    cluster into every spectrum (at its mean height outside its own lab).

    Parameters
    ----------
    n_samples : int, default=600
        Number of spectra, split evenly across labs and (within a lab) classes.
    n_labs : int, default=4
    n_mz : int, default=1000
        Number of points of the (nominal, shared) m/z axis.
    mz_range : (float, float), default=(2000, 10000)
    n_class_peaks : int, default=3
        Peaks per tumour type.
    class_effect : float, default=0.25
        Height of the class peaks relative to the strongest template peak.
    confounder_effect : float, default=0.3
        Relative change of a confounder's height with the class (0 to 1).
    confounder_height : float, default=3.0
        Height of the confounders relative to the strongest template peak.
    confounder_corr : float in [0, 1], default=0.9
        Fraction of a lab's spectra whose confounder follows their class; the
        others get a random state, so the confounder agrees with the class in
        a fraction ``(1 + confounder_corr) / 2`` of the lab's spectra (0:
        unrelated to the class; 1: perfectly linked).
    confounder_scope : {"lab", "all"}, default="lab"
        ``"lab"``: a lab's cluster is absent from other labs' spectra;
        ``"all"``: present in every spectrum, at its mean height (no class
        link) outside its own lab.
    shift_ppm : float, default=300
        Standard deviation of the labs' calibration shifts, in ppm.
    noise : float, default=0.08
        Noise level (relative to the strongest template peak; labs vary it
        by up to a factor 2, and it grows with the square root of the signal).
    return_info : bool, default=False
        Also return a dict with the m/z axis and where the peaks are.
    random_state : int, RandomState instance or None
        Seeds everything: same value, same data.

    Returns
    -------
    X : ndarray of shape (n_samples, n_mz), float32
        Non-negative spectra.
    y : ndarray of shape (n_samples,)
        Tumour type, 0 or 1.
    labs : ndarray of shape (n_samples,)
        Laboratory of every spectrum, ``"lab0"``, ``"lab1"``, ...
    info : dict, only when ``return_info``
        ``mz`` (n_mz,), ``class_peaks`` (dict class -> m/z array),
        ``confounders`` (dict lab -> m/z array of its cluster),
        ``class_mask`` (n_mz,) bool, True within 2 widths of a class peak,
        ``confounder_mask`` (n_mz,) bool, likewise for all confounders.

    Examples
    --------
    >>> from sklearn_relevance.ims import make_multilab_spectra
    >>> X, y, labs, info = make_multilab_spectra(80, 4, n_mz=300, return_info=True,
    ...                                          random_state=0)
    >>> X.shape, sorted(set(labs.tolist())), info["mz"].shape
    ((80, 300), ['lab0', 'lab1', 'lab2', 'lab3'], (300,))
    """
    rng = check_random_state(random_state)
    lo, hi = (float(v) for v in mz_range)
    if not 0 < lo < hi:
        raise ValueError(
            "The 'mz_range' parameter of make_multilab_spectra must be (low, high) with "
            f"0 < low < high. Got {mz_range!r} instead."
        )
    mz = np.linspace(lo, hi, n_mz)
    step = mz[1] - mz[0]
    ref = float(np.clip((lo + hi) / 2, lo, hi))
    min_gap = max(4 * ref / _RESOLUTION, 3 * step)

    # template peaks inside the range; spread over the range if none fall in it
    inside = (_TEMPLATE_MZ > lo) & (_TEMPLATE_MZ < hi)
    if inside.sum() >= 5:
        t_mz, t_h = _TEMPLATE_MZ[inside], _TEMPLATE_HEIGHT[inside]
    else:
        t_mz = lo + (hi - lo) * (_TEMPLATE_MZ - 2000.0) / 8000.0
        t_h = _TEMPLATE_HEIGHT
    t_h = t_h / t_h.max()
    class_mz = _free_positions(rng, lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo),
                               t_mz, 2 * n_class_peaks, min_gap).reshape(2, n_class_peaks)
    shapes = ([0.0], [-0.5, 0.5], [-1.0, 0.0, 1.0])
    conf_centre = _free_positions(rng, lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo),
                                  np.concatenate([t_mz, class_mz.ravel()]), n_labs,
                                  3 * min_gap)
    conf_mz = {}
    for lab in range(n_labs):
        offsets = np.array(shapes[lab % 3]) * 2.0 * conf_centre[lab] / _RESOLUTION
        conf_mz[f"lab{lab}"] = conf_centre[lab] + offsets

    # samples: balanced labs, balanced classes inside each lab
    labs_idx = np.sort(np.arange(n_samples) % n_labs)
    y = np.empty(n_samples, dtype=np.int64)
    for lab in range(n_labs):  # a loop over labs, never over spectra
        members = np.flatnonzero(labs_idx == lab)
        y[members] = rng.permutation(np.arange(members.size) % 2)
    n = n_samples

    # lab effects
    shift = rng.normal(0.0, shift_ppm * 1e-6, n_labs)[labs_idx]
    scale = np.exp(rng.normal(0.0, 0.4, n_labs))[labs_idx]
    base_amp = rng.uniform(0.2, 1.0, n_labs)[labs_idx] * np.exp(rng.normal(0, 0.1, n))
    base_decay = rng.uniform(0.15, 0.4, n_labs)[labs_idx] * (hi - lo)
    noise_lab = noise * rng.uniform(1.0, 2.0, n_labs)[labs_idx]
    direction = rng.choice([-1.0, 1.0], n_labs)[labs_idx]

    def centres(p):
        return np.broadcast_to(p, (n, len(p))) * (1.0 + shift[:, None])

    def widths(c):
        return c / _RESOLUTION * _FWHM_TO_SIGMA

    # biology: template with variation, plus the class peaks of each sample's class
    c = centres(t_mz)
    signal = _peaks(mz, c, t_h * np.exp(rng.normal(0, 0.25, (n, t_mz.size))), widths(c))
    all_class = class_mz.ravel()
    own = np.repeat(np.arange(2), n_class_peaks)[None, :] == y[:, None]
    heights = class_effect * own * np.exp(rng.normal(0, 0.25, (n, all_class.size)))
    c = centres(all_class)
    signal += _peaks(mz, c, heights, widths(c))

    # confounders: present in their own lab only, height follows the class there
    follows = rng.random_sample(n) < confounder_corr
    state = np.where(follows, y, rng.randint(0, 2, n)) * 2.0 - 1.0
    for lab in range(n_labs):
        rows = labs_idx == lab
        cm = conf_mz[f"lab{lab}"]
        h = confounder_height / len(cm) * (1 + confounder_effect * direction[rows] * state[rows])
        h = h[:, None] * np.exp(rng.normal(0, 0.05, (rows.sum(), len(cm))))
        c = np.broadcast_to(cm, (rows.sum(), len(cm))) * (1 + shift[rows, None])
        signal[rows] += _peaks(mz, c, h, widths(c) * 1.5)
        if confounder_scope == "all":  # elsewhere at its mean height, unlinked
            rest = ~rows
            h = confounder_height / len(cm) * np.exp(rng.normal(0, 0.05, (rest.sum(), len(cm))))
            c = np.broadcast_to(cm, (rest.sum(), len(cm))) * (1 + shift[rest, None])
            signal[rest] += _peaks(mz, c, h, widths(c) * 1.5)

    baseline = base_amp[:, None] * np.exp(-(mz[None, :] - lo) / base_decay[:, None])
    clean = signal + baseline
    noisy = clean + rng.normal(size=clean.shape) * noise_lab[:, None] * np.sqrt(
        clean / clean.max(axis=1, keepdims=True) + 0.05)
    X = np.clip(noisy * scale[:, None], 0.0, None).astype(np.float32)
    labs = np.array([f"lab{k}" for k in range(n_labs)])[labs_idx]
    if not return_info:
        return X, y, labs

    def near(points):
        p = np.asarray(points, dtype=np.float64).ravel()
        if p.size == 0:
            return np.zeros(n_mz, bool)
        return (np.abs(mz[:, None] - p[None, :]) <= 2 * widths(p)[None, :] + step).any(1)

    info = {
        "mz": mz,
        "class_peaks": {0: class_mz[0], 1: class_mz[1]},
        "confounders": conf_mz,
        "class_mask": near(all_class),
        "confounder_mask": near(np.concatenate(list(conf_mz.values()))),
    }
    return X, y, labs, info


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
    base = base_amp[:, None] * np.exp(-(mz[None, :] - lo) / base_decay[:, None])
    clean = signal + base
    noisy = clean + rng.normal(size=clean.shape) * noise_lab[:, None] * np.sqrt(
        clean / clean.max(axis=1, keepdims=True) + 0.05)
    X = np.clip(noisy * scale[:, None], 0.0, None).astype(np.float32)
    labs = np.array([f"lab{k}" for k in range(n_labs)])[labs_idx]
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
