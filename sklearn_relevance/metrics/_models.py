"""Former home of the helpers that reach the network behind an estimator.

They live on the package's ground floor now (``sklearn_relevance._nets``,
``_module_access``, ``_targets``); this module re-exports the name that
``metrics/_scorer.py`` still imports from here.
"""

from __future__ import annotations

from .._nets import final_input

__all__ = ["final_input"]
