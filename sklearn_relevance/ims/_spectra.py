"""Shared pieces of the spectrum simulators: a real peptide template, Gaussian
peaks integrated over m/z bins, peak placement and the measurement step."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

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


def _measured(signal, mz, base_amp, base_decay, noise_lab, scale, labs_idx, n_labs, rng):
    """Spectra as measured: ``signal`` plus each spectrum's exponential baseline,
    intensity-dependent noise of each lab, the spectrum's scale, clipped at 0, as
    float32; and the lab names of the rows."""
    clean = signal + base_amp[:, None] * np.exp(-(mz[None, :] - mz[0]) / base_decay[:, None])
    noisy = clean + rng.normal(size=clean.shape) * noise_lab[:, None] * np.sqrt(
        clean / clean.max(axis=1, keepdims=True) + 0.05)
    X = np.clip(noisy * scale[:, None], 0.0, None).astype(np.float32)
    labs = np.array([f"lab{k}" for k in range(n_labs)])[labs_idx]
    return X, labs
