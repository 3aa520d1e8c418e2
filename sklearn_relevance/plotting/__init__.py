"""Matplotlib figures of attribution studies (optional extra ``plot``).

* :func:`plot_comparison`: the table of :func:`~sklearn_relevance.evaluation.compare_explainers`
  as one bar panel per metric, with its intervals.
* :func:`plot_attributions`: images beside their relevance maps, with mask
  outlines (2D, or a slice of 3D volumes).
* :func:`plot_region_relevance`: per-region relevance (atlas regions) as bars.
* :func:`plot_orthogonal_slices`: axial, coronal and sagittal slices of 3D
  relevance over its scan, for one map or a grid of explainers.
"""

from ._charts import plot_attributions, plot_comparison, plot_region_relevance
from ._slices import plot_orthogonal_slices

__all__ = ["plot_comparison", "plot_attributions", "plot_region_relevance",
           "plot_orthogonal_slices"]
