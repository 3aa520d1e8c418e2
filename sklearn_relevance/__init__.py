"""sklearn-relevance: neural networks trained to look at the right things.

scikit-learn estimators wrapping PyTorch networks (through skorch) that can
be regularised by their own relevance (deep relevance regularization),
explained by a batched, differentiable attribution engine, and scored on what
they look at.

Submodules are imported on first use, so ``import sklearn_relevance`` stays
light; every public name below is reachable from the package root.
"""

from ._lazy import attach

__version__ = "0.1.0"

_LAZY = {
    # estimators
    "RelevanceNetClassifier": ".estimators",
    "RelevanceNetRegressor": ".estimators",
    "RelevancePenalty": ".penalties",
    "RightReasonsPenalty": ".penalties",
    "explain": "._explain",
    # explainers
    "get_explainer": ".explainers",
    "available_explainers": ".explainers",
    # transformers and callbacks
    "RelevanceTransformer": ".transformers",
    "RegionRelevance": ".transformers",
    "RelevanceScoring": ".callbacks",
    # scorers
    "make_relevance_scorer": ".metrics",
    "get_relevance_scorer": ".metrics",
    "available_relevance_scorers": ".metrics",
    # imaging mass spectrometry
    "read_imzml": ".ims",
    "write_imzml": ".ims",
    "make_multilab_spectra": ".ims",
    "make_maldi_multilab_spectra": ".ims",
    # model selection
    "LeaveOneLabOut": ".model_selection",
    "CrossLabSplit": ".model_selection",
    # multimodal
    "modality_importance": ".multimodal",
    "make_multimodal_cases": ".datasets",
    "evaluate_importance": ".multimodal",
    # evaluation, data, figures
    "compare_explainers": ".evaluation",
    "make_lesion_images": ".datasets",
    "make_decoy_images": ".datasets",
    "plot_comparison": ".plotting",
    "plot_orthogonal_slices": ".plotting",
    # scans in, relevance out, public files
    "Volume": ".volumes",
    "read_nifti": ".volumes",
    "read_dicom_series": ".volumes",
    "ResampleToGrid": ".resampling",
    "resample_to_grid": ".resampling",
    "write_relevance_nifti": ".relevance_io",
    "write_relevance_imzml": ".relevance_io",
    "write_ion_images": ".relevance_io",
    "get_data_home": ".fetchers",
    "fetch_dataset": ".fetchers",
}

_SUBMODULES = [
    "explainers",
    "metrics",
    "ims",
    "modules",
    "datasets",
    "multimodal",
    "evaluation",
    "model_selection",
    "transformers",
    "callbacks",
    "plotting",
    "penalties",
    "estimators",
    "volumes",
    "resampling",
    "relevance_io",
    "fetchers",
    "inference",
    "checks",
]

_LAZY.update({name: f".{name}" for name in _SUBMODULES})
__getattr__, _dir = attach(__name__, _LAZY)

__all__ = ["__version__", *_LAZY]


def __dir__():
    return sorted(__all__)
