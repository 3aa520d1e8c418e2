"""The faster network copies that compare_explainers runs its passes on.

A copy (BatchNorm folded, in-place ReLUs, channels-last on the CPU) must give
the module's outputs and, for every explainer that does not read inner
layers, the module's explanations; it must never change the caller's module,
and must be refused for modules that cannot take it.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance._inference import inference_copy, is_channels_last
from sklearn_relevance.datasets import make_lesion_images
from sklearn_relevance.evaluation import compare_explainers
from sklearn_relevance.explainers import get_explainer
from sklearn_relevance.modules import ImageCNN, SpectrumCNN


def _with_statistics(module, seed=0):
    """Eval-mode module whose BatchNorms hold non-trivial statistics."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return module.eval()


CASES = {
    "1d": (lambda: SpectrumCNN(60, 3), (60,)),
    "2d": (lambda: ImageCNN((2, 24, 24), 3), (2, 24, 24)),
    "3d": (lambda: ImageCNN((1, 16, 16, 16), 3), (1, 16, 16, 16)),
}


def _case(name):
    make, shape = CASES[name]
    torch.manual_seed(0)
    module = _with_statistics(make())
    X = torch.randn(5, *shape)
    return module, X, torch.tensor([0, 1, 2, 0, 1])


@pytest.mark.parametrize("name", list(CASES))
def test_copy_gives_the_same_outputs_and_leaves_the_module_alone(name):
    module, X, _ = _case(name)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    layers = [type(m) for m in module.modules()]
    fast = inference_copy(module, X)
    assert fast is not module
    with torch.no_grad():
        torch.testing.assert_close(fast(X), module(X), rtol=1e-4, atol=1e-5)
    # the caller's module: same layers, same values, same memory layout
    assert [type(m) for m in module.modules()] == layers
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]) and v.stride() == before[k].stride()
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in module.modules())
    # the copy: BatchNorms folded away, channels-last convolutions for images
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fast.modules())
    assert is_channels_last(fast) == (name != "1d")
    assert not is_channels_last(module)


EXPLAINERS = ["gradient", "gradient_x_input", "ig", "smoothgrad", "guided_backprop",
              "occlusion", "lrp_epsilon", "lrp_alpha1_beta0", "lrp_epsilon_plus"]


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("explainer", EXPLAINERS)
def test_explanations_on_the_copy_equal_the_module(name, explainer):
    module, X, target = _case(name)
    fast = inference_copy(module, X)
    e = get_explainer(explainer)
    assert e.uses_layers is False
    params = e.get_params()
    if "random_state" in params:
        e.set_params(random_state=0)
    if "window" in params:
        e.set_params(window=4)
    want = e.explain(module, X, target)
    got = e.explain(fast, X, target)
    scale = want.abs().max()
    torch.testing.assert_close(got, want, rtol=0, atol=2e-4 * float(scale))


def test_layer_reading_explainers_say_so():
    assert get_explainer("gradcam").uses_layers is True
    assert get_explainer("smoothgrad").set_params(explainer="gradcam").uses_layers is True
    assert get_explainer("xrai").uses_layers is False
    assert get_explainer("xrai").set_params(explainer="gradcam").uses_layers is True


class _ViewNet(nn.Module):
    """Flattens with .view, which channels-last activations refuse."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.shape[0], -1))


def test_modules_that_cannot_take_the_copy_are_returned_as_they_are():
    module = _ViewNet().eval()
    assert inference_copy(module, torch.randn(3, 2, 8, 8)) is module
    # nothing to gain: no convolution of the input's dimensionality, no BatchNorm
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval()
    assert inference_copy(mlp, torch.randn(3, 1, 4, 4)) is mlp
    # dict inputs: only folding applies
    assert inference_copy(mlp, {"x": torch.randn(3, 1, 4, 4)}) is mlp


def test_copy_pickles():
    module, X, _ = _case("2d")
    fast = pickle.loads(pickle.dumps(inference_copy(module, X)))
    assert is_channels_last(fast)
    with torch.no_grad():
        torch.testing.assert_close(fast(X), module(X), rtol=1e-4, atol=1e-5)


def test_compare_explainers_matches_explanations_of_the_module_itself():
    # the table's scores come from the copy for input-level explainers and
    # from the module for Grad-CAM; both must equal explaining the module
    X, y, masks = make_lesion_images(12, shape=(24, 24), random_state=0)
    torch.manual_seed(0)
    module = _with_statistics(ImageCNN((1, 24, 24), 2))
    layers = [type(m) for m in module.modules()]
    explainers = {"gradient": get_explainer("gradient"), "gradcam": get_explainer("gradcam"),
                  "occlusion": get_explainer("occlusion").set_params(window=4)}
    table = compare_explainers(module, X, y, masks=masks, explainers=explainers,
                               metrics=["mask_roc_auc", "sparseness"], n_bootstrap=0)
    from sklearn_relevance.metrics import mask_roc_auc, sparseness

    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for label, e in explainers.items():
        rel = e.explain(module, Xt, yt).detach().numpy()
        np.testing.assert_allclose(table.loc[label, "sparseness"],
                                   np.mean(sparseness(np.abs(rel))), rtol=1e-4)
        np.testing.assert_allclose(table.loc[label, "mask_roc_auc"],
                                   np.nanmean(mask_roc_auc(np.abs(rel), masks)), rtol=1e-4)
    assert [type(m) for m in module.modules()] == layers  # the module itself untouched
