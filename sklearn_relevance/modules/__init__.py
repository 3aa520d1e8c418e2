"""Plain ``torch.nn.Module`` networks used as defaults by the estimators.

Every default network takes ``input_shape`` (one sample's shape, or a dict of
shapes for :class:`FusionNet`) and ``n_outputs``; the estimators fill both in
at ``fit``.
"""

from ._select import default_module
from .fusion import FusionNet
from .image import ImageCNN
from .mlp import MLP
from .output import SelectOutput, select_module_output
from .spectrum import SpectrumCNN

__all__ = ["MLP", "SpectrumCNN", "ImageCNN", "FusionNet", "default_module",
           "SelectOutput", "select_module_output"]
