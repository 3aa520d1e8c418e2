"""Reproducible studies behind the documentation's numbers.

One module per study, each with ``run(out, quick=False, verbose=True)``:

* :mod:`~sklearn_relevance.studies.ct`: importance estimators on lesion
  images over several training seeds (fidelity against mask metrics);
* :mod:`~sklearn_relevance.studies.mri`: LRP alpha1-beta0 relevance per
  atlas region, with two input scalings;
* :mod:`~sklearn_relevance.studies.drr`: deep relevance regularisation
  across labs, paired over data and network seeds, in three simulator
  settings;
* :mod:`~sklearn_relevance.studies.multimodal`: modality importance against
  ground truth, beside chance levels;
* :mod:`~sklearn_relevance.studies.demo`: the cross-lab tumour-typing demo
  behind ``python -m sklearn_relevance demo`` (the DRR study reuses its
  comparison).

Run ``python -m sklearn_relevance.studies ct|mri|drr|multimodal [--quick]
[--out DIR]``. Every table is written as CSV, markdown and an reStructuredText
fragment that says its seeds and the command that made it; the docs include
the fragments and carry no hand-typed numbers. The studies use the library's
public names only, and nothing in the library imports them but the command
line, which runs the demo.
"""

STUDIES = ("ct", "mri", "drr", "multimodal")

__all__ = ["STUDIES"]
