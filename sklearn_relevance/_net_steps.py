"""Training steps of the RelevanceNet estimators: skorch's loop, single steps overridden.

A mixin of :class:`~sklearn_relevance._base_net._RelevanceNetBase`:
the training iterator (whole batches indexed at once), the default
callbacks, the fit's random stream around each step
(``_fit_random.py``), the finiteness checks after each step and epoch
(``_fit_checks.py``), and ``train_step_single`` / ``validation_step``
adding the relevance penalty (double backpropagation; the validation
step re-enables grad for it), resolved at one point
(``_penalty_config.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from numbers import Integral, Real

import torch
from skorch.callbacks import EpochTimer, PassthroughScoring, PrintLog, ProgressBar
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from ._fit_checks import check_parameters_finite, check_step_finite, forget_fit
from ._fit_random import deterministic_optimizer, step_needs_mode
from ._fit_random import inside as inside_mode
from ._fit_random import outside as outside_mode
from ._masks import split_masks
from ._module_calls import in_place_input_errors
from ._net_batches import _TensorBatches, _unmasked
from ._penalty_config import training_penalty


class _TrainingSteps:
    """The iterator, callbacks and steps of the estimators' training loop."""

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
