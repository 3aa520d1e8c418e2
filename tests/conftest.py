"""Shared fixtures: the real-data folder, deterministic torch, one thread."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SKLEARN_RELEVANCE_DATA", ROOT.parent / "shared" / "data"))

# 2-core CI: one torch thread. Small tensor work runs 5-10x slower with two
# threads on a busy 2-core machine, and joblib workers need the other core.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data (real files made by others); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
