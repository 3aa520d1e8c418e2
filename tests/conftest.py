"""Shared fixtures: the real-data folder, deterministic torch, one thread."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SKLEARN_RELEVANCE_DATA", ROOT.parent / "shared" / "data"))



def _stub_torchvision():
    """Give zennit the two torchvision classes it imports, when torchvision is absent.

    zennit (a test-only LRP reference, installed with ``--no-deps``) imports
    ``torchvision.models.resnet.BasicBlock`` and ``Bottleneck`` at import time, and
    quantus imports zennit whenever it is installed. torchvision itself is never
    installed here (its wheels pull a multi-GB CUDA torch), so the tests register a
    stub with those two classes before anything imports zennit. The package never
    imports zennit or torchvision.
    """
    if importlib.util.find_spec("torchvision") is not None:
        return
    resnet = types.ModuleType("torchvision.models.resnet")

    class BasicBlock(torch.nn.Module):  # only used by zennit's isinstance checks
        expansion = 1

    class Bottleneck(torch.nn.Module):
        expansion = 4

    resnet.BasicBlock, resnet.Bottleneck = BasicBlock, Bottleneck
    models = types.ModuleType("torchvision.models")
    models.resnet = resnet
    torchvision = types.ModuleType("torchvision")
    torchvision.models = models
    torchvision.__stub__ = True
    sys.modules.update({"torchvision": torchvision, "torchvision.models": models,
                        "torchvision.models.resnet": resnet})


_stub_torchvision()


def zennit_residual_sums(block_type):
    """A zennit canonizer that makes the addition of ``block_type`` a ``Sum`` layer.

    ``block_type`` computes ``self.out(self.body(x) + self.shortcut(x))``
    (the residual blocks of ``tests/test_lrp_zennit.py`` and
    ``benchmarks/bench_clinical_sizes.py``). zennit hands both summands of a
    plain ``+`` the whole relevance; its own ResNet canonizer, which needs
    torchvision's blocks, stacks them into a ``Sum`` for the Norm rule
    instead, as this does. Imports zennit: call it only where zennit is
    installed.
    """
    from zennit.canonizers import AttributeCanonizer
    from zennit.layer import Sum

    class ResidualSums(AttributeCanonizer):
        def __init__(self):
            super().__init__(self._attribute_map)

        @classmethod
        def _attribute_map(cls, name, module):
            if isinstance(module, block_type):
                return {"forward": cls.forward.__get__(module), "canonizer_sum": Sum()}
            return None

        @staticmethod
        def forward(self, x):
            both = torch.stack([self.body(x), self.shortcut(x)], dim=-1)
            return self.out(self.canonizer_sum(both))

    return ResidualSums()

# 2-core CI: one torch thread. Small tensor work runs 5-10x slower with two
# threads on a busy 2-core machine, and joblib workers need the other core.
torch.set_num_threads(1)


#: The imzML files in ``../shared/data/imzml`` (see its SOURCES.md).
SHARED_IMZML = [
    "Example_Continuous.imzML",
    "Example_Processed.imzML",
    "m2aia_peptide_5x4.imzML",
    "rmsi_processed_6px.imzML",
    "i2nca/pc.imzML",
    "i2nca/cc.imzML",
    "i2nca/combined_pc.imzML",
]
#: The ones ``read_imzml`` reads: ``i2nca/cc.imzML`` declares continuous mode
#: with spectra of different lengths, which is refused.
READABLE_IMZML = [name for name in SHARED_IMZML if name != "i2nca/cc.imzML"]


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
