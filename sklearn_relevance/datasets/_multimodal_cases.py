"""Multimodal cases with known decision functions (the validation platform of
:mod:`sklearn_relevance.multimodal`)."""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
from sklearn.utils import check_random_state

from .._validation import check_int
from ._medical import get_data_dir


# --------------------------------------------------------------------------
# multimodal cases: eight cases with known decision functions (the
# validation platform of sklearn_relevance.multimodal)
# --------------------------------------------------------------------------
#: The modalities of the cases, in the order of their ground truth.
MODALITIES = ("ct", "clinical", "lab")

#: case -> (description, {modality: (term, weight)}); weights are the ground truth.
CASES = {
    1: ("CT only, linear", {"ct": ("brightness", 1.0)}),
    2: ("clinical only, linear", {"clinical": ("linear", 1.0)}),
    3: ("CT + clinical, linear", {"ct": ("brightness", 0.5), "clinical": ("linear", 0.5)}),
    4: ("clinical + lab, linear", {"clinical": ("linear", 0.7), "lab": ("linear", 0.3)}),
    5: ("all modalities, equal", {"ct": ("brightness", 1 / 3), "clinical": ("linear", 1 / 3),
                                  "lab": ("linear", 1 / 3)}),
    6: ("all modalities, unequal", {"ct": ("brightness", 0.5), "clinical": ("linear", 0.3),
                                    "lab": ("linear", 0.2)}),
    7: ("CT + clinical, non-linear", {"ct": ("interaction", 0.6),
                                      "clinical": ("interaction", 0.4)}),
    8: ("all modalities, non-linear", {"ct": ("contrast", 0.2), "clinical": ("interaction", 0.3),
                                       "lab": ("square", 0.5)}),
}

_N_TABULAR = {"clinical": 5, "lab": 4}
_LINEAR_WEIGHTS = {"clinical": np.array([1.0, -0.8, 0.6, 0.0, 0.0]),
                   "lab": np.array([0.0, 1.0, 1.0, 0.0])}
_MEDMNIST_FILE = Path("medmnist") / "pneumoniamnist_balanced.npz"


def _standardize(v):
    v = v - v.mean()
    sd = v.std()
    return v / sd if sd > 0 else v


def _load_images(images, data_dir):
    """Real images in [0, 1] of shape (N, H, W), and where they came from."""
    if images in ("auto", "medmnist"):
        root = get_data_dir(data_dir)
        path = None if root is None else root / _MEDMNIST_FILE
        if path is not None and path.is_file():
            with np.load(path) as f:
                arr = np.concatenate([f[f"{s}_images"] for s in ("train", "val", "test")])
            return arr.astype(np.float32) / 255.0, "medmnist"
        if images == "medmnist":
            raise ValueError(
                "The 'images' parameter of make_multimodal_cases is 'medmnist' but "
                f"{_MEDMNIST_FILE} was not found under data_dir={data_dir!r}, "
                "$SKLEARN_RELEVANCE_DATA or ../shared/data."
            )
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.float32) / 16.0, "digits"


def _correlated_gaussian(rng, n, k, rho):
    """``n`` draws of a k-variate Gaussian with AR(1) correlation ``rho**|i-j|``."""
    idx = np.arange(k)
    cov = rho ** np.abs(idx[:, None] - idx[None, :])
    return rng.standard_normal((n, k)) @ np.linalg.cholesky(cov).T


def _image_terms(img):
    """Standardised image features: brightness, centre contrast, their product."""
    h, w = img.shape[1:]
    centre = img[:, h // 4: h - h // 4, w // 4: w - w // 4].mean(axis=(1, 2))
    bright = _standardize(img.mean(axis=(1, 2)))
    contrast = _standardize(centre - img.mean(axis=(1, 2)))
    return {"brightness": bright, "contrast": contrast,
            "interaction": _standardize(bright * contrast)}


def _tabular_terms(z, name):
    return {"linear": _standardize(z @ _LINEAR_WEIGHTS[name]),
            "interaction": _standardize(z[:, 0] * z[:, 1]),
            "square": _standardize(z[:, 1] ** 2)}


def _image_indices(rng, n_pool, n_samples, test_size):
    """Pool rows per sample; train and test rows from disjoint parts of the pool."""
    if test_size is None:
        return rng.choice(n_pool, n_samples, replace=n_samples > n_pool)
    n_test = int(round(n_samples * test_size))
    n_train = n_samples - n_test
    if min(n_train, n_test) < 1 or n_pool < 2:
        raise ValueError(
            f"make_multimodal_cases cannot split {n_samples} samples with "
            f"test_size={test_size} into two non-empty parts of a pool of {n_pool} images."
        )
    order = rng.permutation(n_pool)
    # pool rows shared in proportion to the parts (at least one each)
    cut = min(max(int(round(n_pool * n_train / n_samples)), 1), n_pool - 1)
    parts = []
    for rows, k in ((order[:cut], n_train), (order[cut:], n_test)):
        parts.append(rows[rng.choice(len(rows), k, replace=k > len(rows))])
    return np.concatenate(parts)


def make_multimodal_cases(case, n_samples=1000, *, random_state=None, data_dir=None,
                          images="auto", test_size=None):
    """Simulated multimodal classification cases with known modality importances.

    Every case has three modalities: ``"ct"``, real images of shape
    ``(n_samples, 1, H, W)`` (MedMNIST chest X-rays, 28 x 28, when the shared
    data are present; scikit-learn's 8 x 8 digits otherwise), ``"clinical"``
    (5 variables) and ``"lab"`` (4 variables), each a correlated Gaussian
    (AR(1) correlation 0.5 and 0.3). The label is ``y = 1`` when the decision
    score ``s = sum_m w_m t_m`` is in the upper half of the scores, where each ``t_m`` is a
    standardised term of modality ``m`` alone (image brightness, centre
    contrast, a linear combination of the variables, an interaction or a
    square) and ``w_m`` its weight. The ground-truth importance of modality
    ``m`` is ``w_m / sum(w)``: its share of the decision score.

    ====  ===========================  =====================================
    case  rule                          ground truth (ct, clinical, lab)
    ====  ===========================  =====================================
    1     CT only, linear              1, 0, 0
    2     clinical only, linear        0, 1, 0
    3     CT + clinical, linear        0.5, 0.5, 0
    4     clinical + lab, linear       0, 0.7, 0.3
    5     all modalities, equal        1/3, 1/3, 1/3
    6     all modalities, unequal      0.5, 0.3, 0.2
    7     CT + clinical, non-linear    0.6, 0.4, 0
    8     all modalities, non-linear   0.2, 0.3, 0.5
    ====  ===========================  =====================================

    Parameters
    ----------
    case : int in 1..8
    n_samples : int, default=1000
        Images are drawn from the real set without replacement (with
        replacement only when ``n_samples`` exceeds the set, or a split part
        exceeds its share of the set).
    random_state : int, RandomState instance or None, default=None
    data_dir : str or path-like, default=None
        Folder holding ``medmnist/pneumoniamnist_balanced.npz``; defaults to
        ``$SKLEARN_RELEVANCE_DATA``, else ``../shared/data`` when it exists.
    images : {"auto", "medmnist", "digits"}, default="auto"
        ``"auto"`` uses MedMNIST when found and the digits otherwise.
    test_size : float in (0, 1) or None, default=None
        The last ``round(n_samples * test_size)`` samples form a test part
        whose images come from a part of the real set disjoint from the
        training images': no image is in both parts, even when images must
        repeat (split the samples in order, as
        :func:`evaluate_importance` does). ``None``: one pool.

    Returns
    -------
    X : dict of str to ndarray of float32
        ``{"ct": (n, 1, H, W), "clinical": (n, 5), "lab": (n, 4)}``.
    y : ndarray of shape (n_samples,), int64
    importances : dict of str to float
        Ground-truth importance per modality, summing to one.

    Examples
    --------
    >>> from sklearn_relevance.datasets import make_multimodal_cases
    >>> X, y, truth = make_multimodal_cases(6, 200, random_state=0, images="digits")
    >>> {k: v.shape for k, v in X.items()}
    {'ct': (200, 1, 8, 8), 'clinical': (200, 5), 'lab': (200, 4)}
    >>> truth
    {'ct': 0.5, 'clinical': 0.3, 'lab': 0.2}
    >>> int(y.sum())
    100
    """
    if isinstance(case, bool) or not isinstance(case, numbers.Integral) or case not in CASES:
        raise ValueError(
            "The 'case' parameter of make_multimodal_cases must be an int in "
            f"[1, {len(CASES)}]. Got {case!r} instead."
        )
    n_samples = check_int(n_samples, "n_samples", "make_multimodal_cases", low=2)
    if images not in ("auto", "medmnist", "digits"):
        raise ValueError(
            "The 'images' parameter of make_multimodal_cases must be 'auto', "
            f"'medmnist' or 'digits'. Got {images!r} instead."
        )
    if test_size is not None and not (isinstance(test_size, numbers.Real)
                                      and not isinstance(test_size, bool)
                                      and 0 < test_size < 1):
        raise ValueError(
            "The 'test_size' parameter of make_multimodal_cases must be None or a "
            f"float in (0, 1). Got {test_size!r} instead."
        )
    rng = check_random_state(random_state)
    pool, _ = _load_images(images, data_dir)
    img = pool[_image_indices(rng, len(pool), n_samples, test_size)]
    clinical = _correlated_gaussian(rng, n_samples, _N_TABULAR["clinical"], 0.5)
    lab = _correlated_gaussian(rng, n_samples, _N_TABULAR["lab"], 0.3)
    terms = {"ct": _image_terms(img), "clinical": _tabular_terms(clinical, "clinical"),
             "lab": _tabular_terms(lab, "lab")}
    rule = CASES[case][1]
    score = sum(w * terms[m][term] for m, (term, w) in rule.items())
    # the upper half of the scores is class 1 (ties, e.g. repeated images, by order)
    y = np.zeros(n_samples, dtype=np.int64)
    y[np.argsort(score, kind="stable")[n_samples - n_samples // 2:]] = 1
    total = sum(w for _, w in rule.values())
    truth = {m: float(rule[m][1] / total) if m in rule else 0.0 for m in MODALITIES}
    X = {"ct": img[:, None].astype(np.float32), "clinical": clinical.astype(np.float32),
         "lab": lab.astype(np.float32)}
    return X, y, truth


