"""What a user would try instead of deep relevance regularisation (DRR).

Each method is a pipeline ``TICNormalizer -> MzResampler -> [selection] ->
network`` with one change against the plain network; :func:`make_method`
builds it. The hyperparameters are fixed a priori (one value each, stated in
the study's provenance), not tuned on the unseen lab.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from sklearn_relevance import RelevanceNetClassifier

#: The methods and their one change against the plain network.
METHODS = {
    "none": "plain network (no regularisation)",
    "DRR": "relevance penalty (gradient x input, L1)",
    "L1 weights": "L1 penalty on the weights",
    "L2 weights": "L2 weight decay",
    "dropout": "dropout in the hidden layers",
    "input noise": "Gaussian noise on the training inputs",
    "peak picking": "the strongest local maxima of the mean training spectrum",
    "feature selection": "ANOVA F-test, k best bins",
    "oracle": "the simulator's preparation/confounder bins removed (not available "
              "to a user; the ceiling)",
}


class RegularisedNet(RelevanceNetClassifier):
    """:class:`~sklearn_relevance.RelevanceNetClassifier` with an L1 weight
    penalty (``weight_l1``) and Gaussian input noise during training
    (``input_noise``, in units of the inputs)."""

    def __init__(self, module=None, *, weight_l1=0.0, input_noise=0.0, **kwargs):
        super().__init__(module, **kwargs)
        self.weight_l1 = weight_l1
        self.input_noise = input_noise

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        if training and self.weight_l1:
            loss = loss + self.weight_l1 * sum(
                p.abs().sum() for n, p in self.module_.named_parameters()
                if n.endswith("weight"))
        return loss

    def infer(self, x, **fit_params):
        import torch

        if self.input_noise and self.module_.training and torch.is_tensor(x):
            x = x + self.input_noise * torch.randn_like(x)
        return super().infer(x, **fit_params)


class PeakPicking(TransformerMixin, BaseEstimator):
    """Keep the ``k`` strongest local maxima of the mean training spectrum."""

    def __init__(self, k=40):
        self.k = k

    def fit(self, X, y=None):
        m = np.asarray(X, float).mean(0)
        peak = np.r_[False, (m[1:-1] > m[:-2]) & (m[1:-1] >= m[2:]), False]
        idx = np.flatnonzero(peak)
        self.indices_ = np.sort(idx[np.argsort(m[idx])[::-1][:self.k]])
        return self

    def transform(self, X):
        return np.asarray(X)[:, self.indices_]


class KeepBins(TransformerMixin, BaseEstimator):
    """Keep the bins where ``keep`` is True (the oracle)."""

    def __init__(self, keep=None):
        self.keep = keep

    def fit(self, X, y=None):
        self.indices_ = np.flatnonzero(np.asarray(self.keep, bool))
        return self

    def transform(self, X):
        return np.asarray(X)[:, self.indices_]


def selected(model):
    """Indices of the resampled bins the network sees (all when no selection)."""
    step = model.named_steps.get("select")
    if step is None:
        return None
    return step.get_support(indices=True) if hasattr(step, "get_support") else step.indices_


def make_method(name, mz, cfg, seed, *, confounder_bins=None):
    """The pipeline of method ``name`` (see :data:`METHODS`)."""
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.pipeline import Pipeline

    from sklearn_relevance.ims import MzResampler, TICNormalizer
    from sklearn_relevance.modules import MLP

    if name not in METHODS:
        raise ValueError(f"The 'name' parameter of make_method must be one of "
                         f"{sorted(METHODS)}. Got {name!r} instead.")
    net = dict(max_epochs=cfg["epochs"], lr=0.003, batch_size=32, random_state=seed)
    extra = {"DRR": dict(relevance_penalty=cfg["drr_penalty"]),
             "L1 weights": dict(weight_l1=cfg["weight_l1"]),
             "L2 weights": dict(optimizer__weight_decay=cfg["weight_l2"]),
             "dropout": dict(module__dropout=cfg["dropout"]),
             "input noise": dict(input_noise=cfg["input_noise"])}.get(name, {})
    steps = [("tic", TICNormalizer(scale=float(cfg["n_bins"]))),
             ("resample", MzResampler(mz=mz, n_bins=cfg["n_bins"]))]
    if name == "peak picking":
        steps.append(("select", PeakPicking(k=cfg["k_features"])))
    elif name == "feature selection":
        steps.append(("select", SelectKBest(f_classif, k=cfg["k_features"])))
    elif name == "oracle":
        steps.append(("select", KeepBins(keep=~np.asarray(confounder_bins, bool))))
    steps.append(("net", RegularisedNet(MLP, **net, **extra)))
    return Pipeline(steps)
