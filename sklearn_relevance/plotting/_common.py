"""What the figures share: matplotlib's pyplot as an optional import (extra
``plot``) and arrays from tensors."""

from __future__ import annotations

import numpy as np

from .._optional import require


def _pyplot(owner):
    return require("matplotlib.pyplot", owner=owner, package="matplotlib", extra="plot")


def _to_numpy(a):
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)
