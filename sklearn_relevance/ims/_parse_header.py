"""The header of an imzML file, as pyimzML reports it (:mod:`._parser`).

``imzmldict``, the m/z and intensity parameter groups and their precisions,
polarity and spectrum mode, and pyimzML's repair of offsets written as
signed 32-bit integers.
"""

from __future__ import annotations

import warnings

import numpy as np
from pyimzml.ImzMLParser import _get_cv_param
from pyimzml.metadata import SpectrumData

_NS = "{http://psi.hupo.org/ms/mzml}"
_PRECISIONS = {"32-bit float": "f", "64-bit float": "d", "32-bit integer": "i",
               "64-bit integer": "l"}


def _imzmldict(root):
    """pyimzML's ``imzmldict`` (``ImzMLParser.__readimzmlmeta``) from the header."""
    d = {}
    sections = (
        ("scanSettingsList", (
            ("max count of pixels x", "IMS:1000042"), ("max count of pixels y", "IMS:1000043"),
            ("max dimension x", "IMS:1000044"), ("max dimension y", "IMS:1000045"),
            ("pixel size x", "IMS:1000046"), ("pixel size y", "IMS:1000047"),
            ("matrix solution concentration", "MS:1000835"))),
        ("instrumentConfigurationList", (
            ("wavelength", "MS:1000843"), ("focus diameter x", "MS:1000844"),
            ("focus diameter y", "MS:1000845"), ("pulse energy", "MS:1000846"),
            ("pulse duration", "MS:1000847"), ("attenuation", "MS:1000848"))),
    )
    for section, params in sections:
        elem = root.find(_NS + section)
        for name, accession in params:
            try:
                val = _get_cv_param(elem, accession, deep=True, convert=True)
                if val is not None:
                    d[name] = val
            except ValueError:
                warnings.warn(Warning(f'Wrong data type in XML file. Skipped attribute "{name}"'),
                              stacklevel=2)
    return d


def _groups(metadata):
    """pyimzML's choice of the m/z and intensity groups and their precisions."""
    mz_id = int_id = mz_prec = int_prec = None
    for param_id, group in metadata.referenceable_param_groups.items():
        if "m/z array" in group.param_by_name:
            mz_id = param_id
            for name, code in _PRECISIONS.items():
                if name in group.param_by_name:
                    mz_prec = code
        if "intensity array" in group.param_by_name:
            int_id = param_id
            for name, code in _PRECISIONS.items():
                if name in group.param_by_name:
                    int_prec = code
    return mz_id, int_id, mz_prec, int_prec


def _mode_and_polarity(metadata, spectrum):
    groups = metadata.referenceable_param_groups
    first = SpectrumData(spectrum, groups)

    def has(term):
        return any(term in g for g in groups.values()) or term in first

    pos, neg = has("positive scan"), has("negative scan")
    polarity = "mixed" if pos and neg else "positive" if pos else "negative" if neg else None
    mode = "profile" if has("profile spectrum") else \
        "centroid" if has("centroid spectrum") else None
    return polarity, mode


def _fix_offsets(values):
    """pyimzML's repair of offsets written as signed 32-bit integers."""
    v = np.asarray(values, np.int64)
    if v.size < 2 or not np.any(v < 0):
        return v
    wrap = np.zeros(v.size, np.int64)
    wrap[1:] = (v[1:] < 0) & (v[:-1] >= 0)
    return v + np.cumsum(wrap) * 2**32

