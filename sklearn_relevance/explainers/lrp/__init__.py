"""Native layer-wise relevance propagation (LRP).

Rules (how one layer redistributes relevance), composites (which rule each
layer gets) and canonizers (reversible rewrites such as merging BatchNorm),
implemented as modified gradients so that relevance is batched, runs on the
module's device and can be differentiated (``create_graph=True``).
"""

from ._absorption import BUDGET_KEYS, relevance_budget
from ._conservation import ConservationWarning
from ._functional import UnsupportedOperationError
from ._lrp import LRP
from .canonizers import Canonizer, CanonizerHandle, MergeBatchNorm
from .composites import COMPOSITES, Composite, make_composite
from .rules import (
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Norm,
    Pass,
    Rule,
    WSquare,
    ZBox,
    ZPlus,
)

__all__ = [
    "LRP",
    "ConservationWarning",
    "UnsupportedOperationError",
    "Rule",
    "Epsilon",
    "ZPlus",
    "AlphaBeta",
    "Gamma",
    "Flat",
    "WSquare",
    "ZBox",
    "Pass",
    "Norm",
    "Composite",
    "COMPOSITES",
    "make_composite",
    "Canonizer",
    "CanonizerHandle",
    "MergeBatchNorm",
    "relevance_budget",
    "BUDGET_KEYS",
]
