"""Synthetic images with ground-truth masks, and loaders for medical images.

* :func:`make_lesion_images`: 2D or 3D images where class 1 holds a lesion
  (a bright disk / ball) and both classes hold ring-shaped distractors, a
  smooth background and noise; the lesion masks are the ground truth of
  localisation metrics.
* :func:`make_decoy_images`: digits whose class is also written into a
  decoy patch in the training split (random in the test split), with the
  decoy masks, for training with annotations ("right for the right
  reasons").
* :func:`load_medmnist_npz`: the MedMNIST ``.npz`` files (2D and 3D).
* :func:`load_ct_organs`: CT slices with expert organ masks (PNG folders laid
  out as SAM-Med2D's ``data_demo``).
* :func:`load_mri_volume`: an MRI volume with its lesion mask (``.npz``).
* :func:`load_atlas`: a NIfTI template with a labelled atlas on the same grid
  (MNI152 + AAL), read with nibabel (optional extra ``nifti``).
* :func:`make_multimodal_cases`: image + tabular cases with known per-modality
  importance (the validation platform of :mod:`sklearn_relevance.multimodal`).
"""

from ._medical import (
    get_data_dir,
    load_atlas,
    load_ct_organs,
    load_medmnist_npz,
    load_mri_volume,
)
from ._multimodal_cases import CASES, MODALITIES, make_multimodal_cases
from ._synthetic import make_decoy_images, make_lesion_images


__all__ = [
    "make_lesion_images",
    "make_decoy_images",
    "load_medmnist_npz",
    "load_ct_organs",
    "load_mri_volume",
    "load_atlas",
    "make_multimodal_cases",
    "get_data_dir",
]
