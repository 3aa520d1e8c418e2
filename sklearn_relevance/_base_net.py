"""Shared machinery of the RelevanceNet estimators (a skorch ``NeuralNet``).

Extends skorch by overriding single steps, never by copying its loops:

- ``fit`` validates parameters and data, infers the network's input shape and
  output size, and trains with a random stream of its own
  (``_fit_random.py``); divergence raises and a failed fit leaves the
  estimator unfitted (``_fit_checks.py``);
- ``get_params_for("module")`` hands the inferred sizes to the module;
- ``train_step_single`` and ``validation_step`` add the relevance penalty
  (double backpropagation; the validation step re-enables grad for it);
- ``explain`` runs an explainer over batches on the module's device.
"""

from __future__ import annotations

import contextlib
import inspect
import types
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import _check_feature_names, check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PassthroughScoring, PrintLog, ProgressBar
from skorch.dataset import Dataset, unpack_data
from skorch.utils import to_tensor
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from ._batching import batch_len, index_batch
from ._fit_checks import (
    check_fit_params,
    check_parameters_finite,
    check_step_finite,
    forget_fit,
)
from ._fit_random import (
    FitRandomness,
    deterministic_optimizer,
    fit_seed,
    step_needs_mode,
)
from ._fit_random import inside as inside_mode
from ._fit_random import outside as outside_mode
from ._stream import StreamBatches, is_streamed
from ._validation import (
    as_torch,
    check_input,
    check_sample_shape,
    device_problem,
    sample_shape,
)
from ._module_access import module_access
from ._module_calls import in_place_input_errors
from ._pickle_guard import settled
from .explainers import available_explainers, get_explainer
from .modules import default_module
from ._mask_alignment import check_mask_names, check_pipeline_space
from ._masks import check_relevance_mask, split_masks, with_masks
from .penalties import NORMS, RelevancePenalty
from ._penalty_config import check_training_penalty, training_penalty


class _RelevanceNetBase(NeuralNet):
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

    def get_params_for(self, prefix):
        params = super().get_params_for(prefix)
        if prefix == "module" and getattr(self, "input_shape_", None) is not None:
            accepted = _accepted_kwargs(self._module_class())
            for key, value in (("input_shape", self.input_shape_),
                               ("n_outputs", self.n_outputs_)):
                if accepted is not None and key not in accepted:
                    # module__input_shape / module__n_outputs given for
                    # ``initialize`` serve the estimator, not such a module
                    params.pop(key, None)
                elif key not in params:
                    params[key] = value
        return params

    # ------------------------------------------------------- save and load
    def initialize(self):
        """Initialise the network without fitting, e.g. to load saved weights.

        skorch's save/load idiom works once the estimator knows the sizes
        ``fit`` would infer: pass the shape of one sample as
        ``module__input_shape`` and, for a classifier, ``classes=``
        (a regressor takes ``module__n_outputs``, default 1). A module
        instance with an ``input_shape`` attribute (the library's modules)
        needs no ``module__input_shape``::

            net = RelevanceNetClassifier(module__input_shape=(64,),
                                         classes=np.arange(10))
            net.initialize()
            net.load_params(f_params="params.pt")

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Before ``fit``, when those parameters are missing.
        """
        if getattr(self, "input_shape_", None) is None:
            self._initialize_sizes()
        return super().initialize()

    def _initialize_sizes(self):
        """Set what ``fit`` infers from the data from the parameters instead."""
        given = NeuralNet.get_params_for(self, "module")
        shape = given.get("input_shape")
        if shape is None and isinstance(self.module, torch.nn.Module):
            # library modules (MLP, SpectrumCNN, ImageCNN, ...) know their input
            shape = getattr(self.module, "input_shape", None)
            given["input_shape"] = shape
        n_outputs, missing = self._outputs_without_fit(given.get("n_outputs"))
        if shape is None:
            missing = ["module__input_shape (the shape of one sample, e.g. (64,))",
                       *missing]
        if missing:
            raise ValueError(
                f"{type(self).__name__}.initialize() before fit needs the sizes fit "
                f"would infer from the data: pass {' and '.join(missing)}. "
                "Or fit the estimator, or load a pickled/joblib copy."
            )
        if isinstance(shape, Mapping):
            shape = {k: tuple(int(d) for d in v) for k, v in shape.items()}
        else:
            try:
                shape = tuple(int(d) for d in np.atleast_1d(shape))
            except (TypeError, ValueError):
                shape = None
            if not shape or min(shape) < 1:
                raise ValueError(
                    f"The 'module__input_shape' parameter of {type(self).__name__} "
                    "must be the shape of one sample (a tuple of positive ints, or a "
                    f"dict of them per modality). Got {given['input_shape']!r} instead."
                )
        self.relevance_explainer_ = self._check_relevance_params()
        self.input_shape_ = shape
        self.n_outputs_ = n_outputs
        if not isinstance(shape, Mapping) and len(shape) == 1:
            self.n_features_in_ = shape[0]

    def _module_class(self):
        module = self.module
        if module is None:
            return default_module(self.input_shape_)
        if isinstance(module, torch.nn.Module):
            return None
        return module

    def initialize_module(self):
        if self.module is None:
            cls = default_module(self.input_shape_)
            self.module_ = cls(**self.get_params_for("module"))
            return self
        if isinstance(self.module, torch.nn.Module):
            # an instance is used as is (skorch semantics): no size injection
            kwargs = super().get_params_for("module")
            for key in ("input_shape", "n_outputs"):
                kwargs.pop(key, None)
            self.module_ = self.initialized_instance(self.module, kwargs)
            return self
        return super().initialize_module()

    def initialize_criterion(self):
        if self.criterion is None:
            # the default loss takes ``criterion__<name>`` like any criterion
            self.criterion_ = self._default_criterion(**self.get_params_for("criterion"))
            return self
        return super().initialize_criterion()

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

    def initialize_virtual_params(self):
        self.virtual_params_ = {}

    def get_iterator(self, dataset, training=False):
        """Data loader over ``dataset``; training batches are shuffled by default.

        With the default ``DataLoader`` and a skorch ``Dataset``, whole batches
        are indexed at once (a ``BatchSampler``) instead of sample by sample
        and stacked, which removes most of the per-batch overhead for small
        networks. Custom samplers, collate functions and iterators are used
        as given.
        """
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        iterator = self.iterator_train if training else self.iterator_valid
        batch_size = kwargs.pop("batch_size", self.batch_size)
        if batch_size == -1:
            batch_size = len(dataset)
        if isinstance(batch_size, Integral):  # numpy ints: torch's samplers want int
            batch_size = int(batch_size)
        shuffle = kwargs.pop("shuffle", training)
        custom = {"sampler", "batch_sampler", "collate_fn", "drop_last"} & set(kwargs)
        if iterator is DataLoader and not custom:
            batched = _TensorBatches.wrap(dataset)
            if batched is not None:
                sampler = RandomSampler(batched) if shuffle else SequentialSampler(batched)
                return DataLoader(
                    batched, sampler=BatchSampler(sampler, batch_size, drop_last=False),
                    batch_size=None, **kwargs,
                )
        return iterator(dataset, batch_size=batch_size, shuffle=shuffle, **kwargs)

    @property
    def _default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]
        if self._penalized():
            callbacks += [
                ("train_relevance",
                 PassthroughScoring(name="train_relevance", on_train=True)),
                ("valid_relevance", PassthroughScoring(name="valid_relevance")),
            ]
        callbacks += self._extra_default_callbacks()
        callbacks.append(("print_log", PrintLog()))
        if isinstance(self.verbose, Real) and self.verbose >= 2:
            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks

    def _extra_default_callbacks(self):
        return []

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

    @contextlib.contextmanager
    def _fit_guard(self, randomness):
        """Train with ``randomness`` (the fit's generators); a failure leaves
        the estimator unfitted (_fit_checks.py)."""
        if self._penalized():
            randomness.seed_explainer(self._penalty().explainer)
        self._active_random = randomness
        try:
            with randomness:
                yield
        except BaseException:
            forget_fit(self)
            raise
        finally:
            vars(self).pop("_active_random", None)
        self._fit_random = randomness.state()

    def _step_randomness(self):
        """Inside a step, the fit's random mode only where something may draw."""
        mode = getattr(self, "_active_random", None)
        if mode is None:
            return contextlib.nullcontext()
        return inside_mode(mode) if step_needs_mode(self) else outside_mode(mode)

    def train_step(self, batch, **fit_params):
        mode = getattr(self, "_active_random", None)
        # torch's optimizers draw nothing: their step runs without the mode
        # (the loss closure, train_step_single, decides for itself)
        with outside_mode(mode) if deterministic_optimizer(self) else contextlib.nullcontext():
            step = super().train_step(batch, **fit_params)
        check_step_finite(self, step["loss"])
        return step

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        if training and iterator is not None:
            check_parameters_finite(self)

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

    def _penalized(self):
        penalty = self.relevance_penalty
        return isinstance(penalty, Real) and penalty > 0

    def _penalty(self):
        """The resolved training penalty: one object owning the explainer, norm
        and target, resolved at one point (``_penalty_config.py``)."""
        return training_penalty(self)

    def _grad_input(self, Xi):
        Xi = to_tensor(Xi, device=self.device)
        if isinstance(Xi, Mapping):
            return {k: v.detach().requires_grad_(True) for k, v in Xi.items()}
        return Xi.detach().requires_grad_(True)

    def infer(self, x, **fit_params):
        """skorch's ``infer``; masks packed with the batch are set aside."""
        x, _ = split_masks(x)
        return super().infer(x, **fit_params)

    def _relevance_step(self, batch, training, **fit_params):
        Xi, yi = unpack_data(batch)
        Xi, mask = split_masks(Xi)
        Xi = self._grad_input(Xi)
        if mask is not None:
            mask = to_tensor(mask, device=self.device)
        y_pred = self.infer(Xi, **fit_params)
        # the term is added to whatever get_loss returns, so an overridden
        # get_loss keeps the penalty
        loss = self.get_loss(y_pred, yi, X=Xi, training=training)
        yt = to_tensor(yi, device=self.device) if yi is not None else None
        rel = self._penalty()(
            self.module_, Xi, y_pred, yt, mask=mask, create_graph=training,
            regression=self._is_regressor,
        )
        total = loss + self.relevance_penalty * rel
        self.history.record_batch(
            ("train" if training else "valid") + "_relevance", float(rel.detach())
        )
        return total, y_pred

    def train_step_single(self, batch, **fit_params):
        with self._step_randomness(), in_place_input_errors(self.module_):
            return self._train_step_single(batch, **fit_params)

    def _train_step_single(self, batch, **fit_params):
        if not self._penalized():
            return super().train_step_single(_unmasked(batch), **fit_params)
        self._set_training(True)
        total, y_pred = self._relevance_step(batch, True, **fit_params)
        total.backward()
        return {"loss": total, "y_pred": y_pred}

    def validation_step(self, batch, **fit_params):
        with self._step_randomness(), in_place_input_errors(self.module_):
            return self._validation_step(batch, **fit_params)

    def _validation_step(self, batch, **fit_params):
        if not self._penalized():
            return super().validation_step(_unmasked(batch), **fit_params)
        # skorch validates under no_grad; the penalty needs input gradients
        self._set_training(False)
        with torch.enable_grad():
            total, y_pred = self._relevance_step(batch, False, **fit_params)
        return {"loss": total.detach(), "y_pred": y_pred.detach()}

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

    # ------------------------------------------------------------ prediction
    def _check_predict_input(self, X):
        check_is_fitted(self, "module_")
        self._check_device_usable()  # set_params(device=...) after fit
        self._check_input_names(X, reset=False)
        X = check_input(X)
        check_sample_shape(X, self.input_shape_, owner=type(self).__name__)
        return as_torch(X)

    def evaluation_step(self, batch, training=False):
        """skorch's prediction step, in eval mode under the module's lock.

        The module's training flags are restored afterwards, and a
        concurrent ``explain`` never sees the mode switched under it (see
        :func:`~sklearn_relevance._module_access.module_access`).
        """
        module = getattr(self, "module_", None)
        if training or not isinstance(module, torch.nn.Module):
            return super().evaluation_step(batch, training)
        with module_access(module, shared=True, eval_mode=True):
            return super().evaluation_step(batch, training)

    def forward_output(self, X):
        """Raw module output (logits for a classifier) as a float64 numpy array."""
        X = self._check_predict_input(X)
        return self._predict_outputs(X, nonlinearity=False)

    # ------------------------------------------------------------ predictions
    def _predict_outputs(self, X, *, nonlinearity=True):
        """Module outputs on validated X as a float64 numpy array.

        The fitted module runs as it is, in its own dtype on its device (no
        copy of the network), over the batches of ``batch_size``, in eval
        mode under its lock (see
        :func:`~sklearn_relevance._module_access.module_access`); the
        outputs are returned as float64. float32 matrix kernels pick their
        blocking by batch size, so a sample's output may differ by about
        1e-7 relative between batches of different sizes: scikit-learn's
        subset-invariance checks are expected failures for that reason
        (``tests/test_common.py``). The predicted class of
        ``explain(target=None)`` comes from this very function
        (:meth:`_predicted_indices`), so it always equals ``predict``.
        """
        nonlin = self._get_predict_nonlinearity() if nonlinearity else None
        module = self.module_
        dtype = _float_dtype(module)
        # skorch's infer only adds overhead here (no masks at prediction);
        # a subclass that overrides infer keeps it
        own_infer = type(self).infer is not _RelevanceNetBase.infer
        device = torch.device(self.device) if self.device is not None else None
        outputs = []
        with module_access(module, shared=True, eval_mode=True), torch.no_grad():
            for Xi in self._prediction_batches(X):
                Xi = _on_device(Xi, device, dtype)
                if own_infer:
                    out = self.infer(Xi)
                else:
                    out = module(**Xi) if isinstance(Xi, Mapping) else module(Xi)
                outputs.append(out[0] if isinstance(out, tuple) else out)
            # the nonlinearity (a row-wise softmax) once on all rows
            out = torch.cat(outputs)
            return _to_float64(out if nonlin is None else nonlin(out))

    def _prediction_batches(self, X):
        """The batches of X that ``predict`` runs, in order.

        Tensors are sliced directly (skorch's ``DataLoader`` would draw a
        seed from the global torch generator for every call: a prediction
        must not change later random draws); custom iterators, collate
        functions and streamed rows go through skorch's iterator.
        """
        kwargs = self.get_params_for("iterator_valid")
        batch_size = kwargs.pop("batch_size", self.batch_size)
        tensors = list(X.values()) if isinstance(X, Mapping) else [X]
        plain = (self.iterator_valid is DataLoader and self.dataset is Dataset
                 and not kwargs.keys() & {"sampler", "batch_sampler", "collate_fn"}
                 and all(torch.is_tensor(t) for t in tensors))
        if not plain:
            for batch in self.get_iterator(self.get_dataset(X), training=False):
                yield unpack_data(batch)[0]
            return
        n = batch_len(X)
        for start in range(0, n, n if batch_size == -1 else int(batch_size)):
            yield index_batch(X, slice(start, start + (n if batch_size == -1
                                                        else int(batch_size))))

    def _predicted_indices(self, X, *, checked=False):
        """Column of the class ``predict`` returns, per sample (int64).

        The arg-max of the outputs ``predict`` computes (the same
        function, batches and dtype): the one source of the predicted class
        for ``explain(target=None)``, scorers and metrics.
        """
        if not checked:
            X = self._check_predict_input(X)
        out = self._predict_outputs(X)
        return out.reshape(out.shape[0], -1).argmax(axis=1).astype(np.int64)

    def explain(self, X, y=None, *, explainer=None, target=None, batch_size=None,
                explainer_params=None, **params):
        """Relevance of each input feature for the network's output.

        To explain a Pipeline or a search from raw X, use
        :func:`sklearn_relevance.explain`.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or dict of such arrays
            Inputs to explain.
        y : array-like of shape (n_samples,), optional
            True labels; required for ``target="true"``.
        explainer : str or explainer object, optional
            Any name of :func:`~sklearn_relevance.explainers.available_explainers`
            or an explainer object. ``None`` uses ``relevance_explainer`` (with
            its ``relevance_explainer__*`` parameters).
        target : None, "predicted", "true", int or array-like of int
            The output explained, by the library's one target policy
            (:ref:`target-policy`): ``None`` (or ``"predicted"``) the class
            ``predict`` returns for the sample (computed by ``predict``'s own
            forward, so the two always agree), or the single output
            (regressor); ``"true"`` the class in ``y``; an int that class
            index (or output index) for every sample; an array one index
            per sample.
        batch_size : int, optional
            Samples per explainer call; defaults to the estimator's
            ``batch_size``. Explainers that expand the batch (IG steps,
            SmoothGrad samples) chunk further by their own
            ``internal_batch_size``.
        explainer_params : dict, optional
            Parameters of the explainer by name, e.g. ``{"n_steps": 64}``.
        **params
            The same by keyword: ``explain(X, explainer="ig", n_steps=64)``.
            They override ``explainer_params`` and, without ``explainer``,
            the ``relevance_explainer__*`` parameters. An unknown name raises
            ``ValueError`` naming it.

        Returns
        -------
        ndarray of X's shape, or a dict of arrays for dict X
        """
        from ._request import estimator_request

        return estimator_request(
            self, X, y, explainer=explainer, target=target, batch_size=batch_size,
            explainer_params=explainer_params, **params).run()

    # -------------------------------------------------------------- pickling
    def __getstate__(self):
        # no explainer's hooks or eval-mode switch in the state (_pickle_guard.py)
        with settled(vars(self).get("module_")):
            state = super().__getstate__()
        state.pop("_penalty_cache", None)
        state.pop("_active_random", None)
        return state


class _TensorBatches(torch.utils.data.Dataset):
    """A dataset of tensors indexed a whole batch at a time.

    skorch's ``Dataset`` indexes through scikit-learn's ``_safe_indexing``,
    which costs about 80 microseconds per call: more than a small network's
    step. Our estimators hand skorch tensors, so batches can be gathered with
    one tensor index each.
    """

    def __init__(self, X, y, indices=None, masks=None):
        self.X, self.y, self.indices, self.masks = X, y, indices, masks

    @classmethod
    def wrap(cls, dataset):
        """A batch-indexed view of a skorch ``Dataset`` (or a ``Subset`` of one)
        holding tensors, else None."""
        indices = None
        if isinstance(dataset, torch.utils.data.Subset):
            indices = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
            dataset = dataset.dataset
        if type(dataset) is not Dataset:
            return None
        X, masks = split_masks(dataset.X)
        y = dataset.y
        if is_streamed(X):  # out-of-core rows, read one batch at a time
            return StreamBatches(X, y, indices)
        tensors = list(X.values()) if isinstance(X, Mapping) else [X]
        if masks is not None:
            tensors += list(masks.values()) if isinstance(masks, Mapping) else [masks]
        if not all(torch.is_tensor(t) for t in tensors):
            return None
        if y is not None and not torch.is_tensor(y):
            return None
        return cls(X, y, indices, masks)

    def __len__(self):
        if self.indices is not None:
            return len(self.indices)
        return batch_len(self.X)

    def __getitem__(self, idx):
        idx = torch.as_tensor(idx, dtype=torch.long)
        if self.indices is not None:
            idx = self.indices[idx]
        Xi = index_batch(self.X, idx)
        if self.masks is not None:
            Xi = with_masks(Xi, index_batch(self.masks, idx))
        yi = torch.zeros(len(idx)) if self.y is None else self.y[idx]
        return Xi, yi


def _to_float64(out):
    return out.detach().cpu().numpy().astype(np.float64, copy=False)


def _on_device(Xi, device, dtype):
    """A batch (tensor or dict of tensors) on ``device`` in ``dtype``."""
    if isinstance(Xi, Mapping):
        return {k: _on_device(v, device, dtype) for k, v in Xi.items()}
    if not torch.is_tensor(Xi):
        Xi = to_tensor(Xi, device=device)
    if (device is not None and Xi.device != device) or (
            dtype is not None and Xi.dtype != dtype):
        Xi = Xi.to(device=device, dtype=dtype if dtype is not None else Xi.dtype)
    return Xi


def _float_dtype(module):
    """The floating dtype of ``module``'s first floating parameter, or None."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def _packed(X, masks):
    """Tensors for skorch: X, or X packed with its masks (split sample-wise)."""
    X = as_torch(X)
    return X if masks is None else with_masks(X, as_torch(masks))


def _unmasked(batch):
    """A batch without the masks packed into it (for skorch's plain steps)."""
    Xi, yi = unpack_data(batch)
    Xi, mask = split_masks(Xi)
    return batch if mask is None else (Xi, yi)


def _accepted_kwargs(cls):
    """Keyword names ``cls(...)``'s signature names explicitly.

    A ``**kwargs`` catch-all accepts no size: MONAI's networks take
    ``**kwargs`` and fail on an ``input_shape`` they never named.
    """
    if cls is None:
        return set()
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return set()
    return {name for name, p in sig.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
