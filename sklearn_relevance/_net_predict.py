"""Predictions and explanations of the RelevanceNet estimators.

A mixin of :class:`~sklearn_relevance._base_net._RelevanceNetBase`:
predictions run the fitted network as it is, in eval mode under its lock
(``_module_access.py``), over the batches of ``batch_size``; the class
``predict`` returns is the one source of ``explain(target=None)``, and
``explain`` hands the call to one explanation request (``_request.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.dataset import Dataset, unpack_data
from torch.utils.data import DataLoader

from ._batching import batch_len, index_batch
from ._module_access import module_access
from ._net_batches import _on_device, _to_float64
from ._nets import float_dtype
from ._net_steps import _TrainingSteps
from ._validation import as_torch, check_input, check_sample_shape


class _Prediction:
    """``predict``'s outputs, the predicted class and ``explain``."""

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
        dtype = float_dtype(module)
        # skorch's infer only adds overhead here (no masks at prediction);
        # a subclass that overrides infer keeps it (the estimators' own
        # infer is _TrainingSteps.infer)
        own_infer = type(self).infer is not _TrainingSteps.infer
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
            ``internal_batch_size``. A stochastic explainer seeded with an
            int draws the first call's noise from its seed and each later
            call's from a seed derived from it and the call's index: no two
            calls share noise, and the maps of a seeded explainer depend on
            ``batch_size`` (``batch_size=-1``: one call, the explainer's own
            draws).
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
