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
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._spectra import (
    _FWHM_TO_SIGMA,
    _RESOLUTION,
    _TEMPLATE_HEIGHT,
    _TEMPLATE_MZ,
    _free_positions,
    _measured,
    _peaks,
)
from ._maldi_simulate import make_maldi_multilab_spectra

__all__ = ["make_maldi_multilab_spectra", "make_multilab_spectra"]


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

    X, labs = _measured(signal, mz, base_amp, base_decay, noise_lab, scale, labs_idx,
                        n_labs, rng)
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
