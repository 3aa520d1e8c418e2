"""The network's set-up in the RelevanceNet estimators: sizes in, module out.

A mixin of :class:`~sklearn_relevance._base_net._RelevanceNetBase`:
``get_params_for("module")`` hands the input shape and output size that
``fit`` inferred to the module, and ``initialize`` takes them from the
parameters instead (skorch's save/load idiom before any fit).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np
import torch
from skorch import NeuralNet

from .modules import default_module


class _ModuleSetup:
    """``get_params_for`` and the ``initialize*`` steps of the estimators."""

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

    def initialize_virtual_params(self):
        self.virtual_params_ = {}


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