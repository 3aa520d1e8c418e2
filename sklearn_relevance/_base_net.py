"""Shared machinery of the RelevanceNet estimators (a skorch ``NeuralNet``).

Extends skorch by overriding single steps, never by copying its loops:

- ``fit`` validates parameters and data, infers the network's input shape and
  output size, and trains with a random stream of its own
  (``_fit_random.py``); divergence raises and a failed fit leaves the
  estimator unfitted (``_fit_checks.py``);
- ``get_params_for("module")`` hands the inferred sizes to the module
  (``_net_setup.py``, with ``initialize`` before any fit);
- ``train_step_single`` and ``validation_step`` add the relevance penalty
  (double backpropagation; the validation step re-enables grad for it)
  (``_net_steps.py``, over the batches of ``_net_batches.py``);
- ``explain`` runs an explainer over batches on the module's device
  (``_net_predict.py``, with the predictions).

This module holds the parameters, ``fit``/``partial_fit`` and pickling;
the class composes the mixins above in front of skorch's ``NeuralNet``.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from numbers import Integral, Real

import torch
from sklearn.base import clone
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import _check_feature_names
from skorch import NeuralNet
from skorch.dataset import Dataset
from torch.utils.data import DataLoader

from ._fit_checks import check_fit_params
from ._fit_random import FitRandomness, fit_seed
from ._validation import (
    as_torch,
    check_input,
    check_sample_shape,
    device_problem,
    sample_shape,
)
from ._pickle_guard import settled
from .explainers import available_explainers, get_explainer
from .modules import default_module
from ._mask_alignment import check_mask_names, check_pipeline_space
from ._masks import check_relevance_mask
from ._net_batches import _packed
from ._net_predict import _Prediction
from ._net_setup import _ModuleSetup
from ._net_steps import _TrainingSteps
from .penalties import NORMS, RelevancePenalty
from ._penalty_config import check_training_penalty


class _RelevanceNetBase(_ModuleSetup, _TrainingSteps, _Prediction, NeuralNet):
    """Common base of :class:`RelevanceNetClassifier` and :class:`RelevanceNetRegressor`."""

    # skorch keeps these as instance attributes set in ``__init__``; scikit-learn
    # forbids that. Class-level defaults keep skorch working until ``fit``.
    initialized_ = False
    history_ = None
    virtual_params_ = types.MappingProxyType({})

    prefixes_ = NeuralNet.prefixes_ + ["relevance_explainer"]

    _relevance_targets = ("true", "predicted", "all")

    def __init__(self, module=None, *, relevance_penalty=0.0,
                 relevance_explainer="gradient_x_input", relevance_norm="l1",
                 relevance_target="true", relevance_term=None, criterion=None, optimizer=torch.optim.Adam,
                 lr=0.01, max_epochs=10, batch_size=64, iterator_train=DataLoader,
                 iterator_valid=DataLoader, dataset=Dataset, train_split=None,
                 callbacks=None, predict_nonlinearity="auto", warm_start=False,
                 verbose=0, device="cpu", compile=False, use_caching="auto",
                 torch_load_kwargs=None, random_state=None, **kwargs):
        # assigned through vars(): skorch's __setattr__ refuses torch module
        # instances outside ``initialize`` once ``initialized_`` exists
        vars(self).update(
            module=module, relevance_penalty=relevance_penalty,
            relevance_explainer=relevance_explainer, relevance_norm=relevance_norm,
            relevance_target=relevance_target, relevance_term=relevance_term,
            criterion=criterion, optimizer=optimizer,
            lr=lr, max_epochs=max_epochs, batch_size=batch_size,
            iterator_train=iterator_train, iterator_valid=iterator_valid, dataset=dataset,
            train_split=train_split, callbacks=callbacks,
            predict_nonlinearity=predict_nonlinearity, warm_start=warm_start,
            verbose=verbose, device=device, compile=compile, use_caching=use_caching,
            torch_load_kwargs=torch_load_kwargs, random_state=random_state,
        )
        self._check_deprecated_params(**kwargs)
        self._params_to_validate = set(kwargs)
        vars(self).update(kwargs)

    # ------------------------------------------------------------------ params
    @classmethod
    def _relevance_constraints(cls):
        return {
            "module": [None, type, callable, HasMethods(["forward"])],
            "relevance_penalty": [Interval(Real, 0, None, closed="left")],
            "relevance_explainer": [
                StrOptions(set(available_explainers())),
                HasMethods(["explain"]),
            ],
            "relevance_norm": [StrOptions(set(NORMS))],
            "relevance_target": [StrOptions(set(cls._relevance_targets))],
            "relevance_term": [None, RelevancePenalty],
            "lr": [Interval(Real, 0, None, closed="neither")],
            "max_epochs": [Interval(Integral, 0, None, closed="left")],
            "batch_size": [
                Interval(Integral, 1, None, closed="left"),
                Options(Integral, {-1}),
            ],
            "device": [str, torch.device, None],
            "random_state": ["random_state"],
            "verbose": ["verbose"],
        }

    def _check_relevance_params(self):
        params = {k: getattr(self, k) for k in self._relevance_constraints()}
        validate_parameter_constraints(
            self._relevance_constraints(), params, caller_name=type(self).__name__
        )
        explainer = self._make_explainer(self.relevance_explainer, with_params=True)
        self.relevance_explainer_ = explainer
        if self.relevance_penalty > 0:
            trained = self._penalty().explainer
            if not getattr(trained, "differentiable", True):
                param = ("relevance_term" if self.relevance_term is not None
                         and self.relevance_term.explainer is not None
                         else "relevance_explainer")
                raise ValueError(
                    f"The '{param}' parameter of {type(self).__name__} must use a "
                    "differentiable explainer when relevance_penalty > 0 (its relevance "
                    "is trained on by double backpropagation). Got "
                    f"{type(trained).__name__}, which is not differentiable."
                )
        return explainer

    def _make_explainer(self, explainer, *, with_params=False):
        exp = get_explainer(explainer, param_name="explainer")
        if exp is explainer and hasattr(exp, "get_params"):
            exp = clone(exp)
        if with_params:
            extra = self.get_params_for("relevance_explainer")
            if extra:
                exp.set_params(**extra)
        return exp

    def set_params(self, **params):
        """Set parameters; ``relevance_explainer__<name>`` tunes the explainer.

        Returns
        -------
        self
        """
        if "callbacks" in params:
            # skorch re-initialises callbacks eagerly here; scikit-learn expects
            # set_params only to store. They are initialised at ``fit``.
            self.callbacks = params.pop("callbacks")
        # the explainer and its parameters are stored here and applied to a
        # clone of the explainer at fit and explain (skorch would try to
        # re-initialise a torch component for them on a fitted net). The
        # penalty they configure is resolved at one point, keyed on all of
        # them (_penalty_config.training_penalty): nothing to clear here.
        if "relevance_explainer" in params:
            vars(self)["relevance_explainer"] = params.pop("relevance_explainer")
        for key in [k for k in params if k.startswith("relevance_explainer__")]:
            setattr(self, key, params.pop(key))
            self._params_to_validate.add(key)
        # the penalty object's own parameters, scikit-learn's nested way
        term = {k.split("__", 1)[1]: params.pop(k) for k in list(params)
                if k.startswith("relevance_term__")}
        if "relevance_term" in params:
            self.relevance_term = params.pop("relevance_term")
        if term:
            if self.relevance_term is None:
                raise ValueError(
                    "relevance_term__<name> parameters need a relevance_term object. "
                    f"Got relevance_term=None with {sorted(term)}."
                )
            self.relevance_term.set_params(**term)
        return super().set_params(**params)

    def _get_params_html(self, deep=True, doc_link=""):
        # the HTML repr lists parameters; skorch's deep get_params adds every
        # default callback's parameters (callbacks__<name>__*), which nobody
        # set: keep only those given explicitly
        params = super()._get_params_html(deep=deep, doc_link=doc_link)
        own = set(vars(self))
        for key in [k for k in params if k.startswith("callbacks__") and k not in own]:
            del params[key]
        params.non_default = tuple(k for k in params.non_default if k in params)
        return params

    # ------------------------------------------------------------------- fit
    def fit(self, X, y, relevance_mask=None, **fit_params):
        """Train the network on ``X`` and ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or dict of such arrays
            Training input; float64 is cast to float32. A dict holds one
            array per modality (multimodal networks).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        relevance_mask : array-like of shape (n_samples, ...) or dict, optional
            Expert annotations, one mask per sample broadcastable to X's
            sample shape (a dict of masks, keys among X's, for dict input):
            1 where relevance is allowed, 0 where it must vanish, values in
            between weight the penalty. The penalty becomes
            ``relevance_penalty * norm(relevance * (1 - mask))``; ``None``
            is deep relevance regularization (an empty allowed region). A
            sample whose mask is all NaN has no annotation and gets what the
            term's ``unannotated`` says (no penalty by default). Masks are
            split with the samples (``train_split``: the validation penalty
            uses the validation masks); scikit-learn's searches slice them
            per fold as a fit parameter, also through metadata routing
            (``set_fit_request(relevance_mask=True)``).
        **fit_params
            Passed on to skorch's ``fit`` (and to the module's ``forward``).

        Returns
        -------
        self
        """
        self._check_relevance_params()
        self._check_device_usable()
        self._check_input_names(X, reset=True)
        self._check_mask_space(relevance_mask)
        X = check_input(X)
        y = self._prepare_y(y, X)
        masks = check_relevance_mask(relevance_mask, X, type(self).__name__)
        self.input_shape_ = sample_shape(X)
        if not isinstance(X, Mapping) and X.ndim == 2:
            self.n_features_in_ = X.shape[1]
        elif hasattr(self, "n_features_in_"):
            del self.n_features_in_
        check_fit_params(self, self._forward_owner(), fit_params)
        check_training_penalty(self, X)
        # one random stream per fit, in this thread only (_fit_random.py)
        randomness = FitRandomness(fit_seed(self.random_state))
        with self._fit_guard(randomness):
            # NeuralNet.fit, minus its call of our (validating) partial_fit
            if not self.warm_start or not self.initialized_:
                self.initialize()
            NeuralNet.partial_fit(
                self, _packed(X, masks), as_torch(y), _routing_method="fit", **fit_params
            )
        return self

    def _check_mask_space(self, relevance_mask):
        """Masks must line up with X's features (_mask_alignment.py)."""
        if relevance_mask is None:
            return
        check_mask_names(relevance_mask, getattr(self, "feature_names_in_", None),
                         type(self).__name__)
        check_pipeline_space(self, relevance_mask)

    def _forward_owner(self):
        """The module (or its class) whose ``forward`` receives fit keywords."""
        module = getattr(self, "module_", None)
        if self.warm_start and self.initialized_ and module is not None:
            return module
        if self.module is None:
            return default_module(self.input_shape_)
        return self.module

    def partial_fit(self, X, y=None, classes=None, relevance_mask=None, **fit_params):
        """Train for ``max_epochs`` more epochs without re-initialising.

        Parameters
        ----------
        X : array-like or dict of arrays
        y : array-like
        classes : ignored
            Classes are fixed at the first ``fit``.
        relevance_mask : array-like or dict, optional
            Masks of these samples, as in :meth:`fit`.
        **fit_params
            Passed on to skorch.

        Returns
        -------
        self
        """
        if not self.initialized_:
            return self.fit(X, y, relevance_mask=relevance_mask, **fit_params)
        self._check_device_usable()
        self._check_input_names(X, reset=False)
        self._check_mask_space(relevance_mask)
        X = check_input(X)
        check_sample_shape(X, self.input_shape_, owner=type(self).__name__)
        y = self._prepare_y(y, X, refit=False)
        masks = check_relevance_mask(relevance_mask, X, type(self).__name__)
        check_fit_params(self, self.module_, fit_params, method="partial_fit")
        self._check_relevance_params()
        check_training_penalty(self, X)
        state = getattr(self, "_fit_random", None)
        randomness = (FitRandomness.from_state(state) if state is not None
                      else FitRandomness(fit_seed(self.random_state)))
        with self._fit_guard(randomness):
            NeuralNet.partial_fit(self, _packed(X, masks), as_torch(y), **fit_params)
        return self

    def _get_param_names(self):
        # skorch takes every public attribute for a parameter; private ones
        # (``_params_to_validate``, caches) are not
        return [k for k in super()._get_param_names() if not k.startswith("_")]

    def _check_device_usable(self):
        """Refuse a device torch cannot use here, before any work."""
        problem = device_problem(self.device)
        if problem is not None:
            raise ValueError(
                f"The 'device' parameter of {type(self).__name__} is {self.device!r}, "
                f"but {problem}. Use device='cpu' or a device this machine has."
            )

    # ---------------------------------------------------------- feature names
    def _check_input_names(self, X, *, reset):
        """Record (``reset=True``) or check the column names of a DataFrame X.

        scikit-learn's own helper, so names are kept in ``feature_names_in_``
        and later inputs with other, missing or permuted names are refused
        with scikit-learn's messages (before the shape check, as in
        scikit-learn). Dict inputs (multimodal) carry no feature names.
        """
        if isinstance(X, Mapping):
            if reset and hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return
        _check_feature_names(self, X, reset=reset)

    # -------------------------------------------------------------- pickling
    def __getstate__(self):
        # no explainer's hooks or eval-mode switch in the state (_pickle_guard.py)
        with settled(vars(self).get("module_")):
            state = super().__getstate__()
        state.pop("_penalty_cache", None)
        state.pop("_active_random", None)
        return state
