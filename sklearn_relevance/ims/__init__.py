"""Imaging mass spectrometry: imzML input/output, preprocessing, simulation.

From imzML files to spectra on a common m/z axis (:func:`read_imzml`,
:func:`iter_imzml`), spectral preprocessing as scikit-learn transformers
(:class:`TICNormalizer`, :class:`MzResampler`, :class:`BaselineRemover`,
:class:`VarianceStabilizer`), labelled multi-laboratory spectra with lab
confounders (:func:`make_multilab_spectra`), and relevance ion images back
to imzML (:func:`write_imzml`).
"""

from .._lazy import attach

_LAZY = {
    "IMSData": ".io",
    "LazySpectra": "._lazy",
    "read_imzml": ".io",
    "iter_imzml": ".io",
    "write_imzml": ".io",
    "TICNormalizer": ".preprocessing",
    "MzResampler": ".preprocessing",
    "BaselineRemover": ".preprocessing",
    "VarianceStabilizer": ".preprocessing",
    "make_maldi_multilab_spectra": ".simulate",
    "make_multilab_spectra": ".simulate",
    "scan_imzml": ".scan",
    "ImzMLScan": ".scan",
    "parse_imzml_metadata": ".scan",
    "ImzMLMetadata": ".scan",
}

__getattr__, _dir = attach(__name__, _LAZY)
__all__ = list(_LAZY)


def __dir__():
    return sorted(__all__)
