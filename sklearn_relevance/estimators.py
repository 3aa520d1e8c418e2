"""Relevance-regularised neural network estimators (skorch subclasses).

:class:`RelevanceNetClassifier` and :class:`RelevanceNetRegressor` train a
PyTorch network with ``loss + relevance_penalty * ||relevance(x)||``
(deep relevance regularization, by double backpropagation) and explain their
predictions with any explainer of :mod:`sklearn_relevance.explainers`.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_y, column_or_1d
from sklearn.utils._available_if import available_if
from skorch.callbacks import EpochScoring
from skorch.utils import to_numpy

from ._base_net import _RelevanceNetBase
from ._batching import batch_len
from ._targets import encode_labels
from ._validation import check_int

__all__ = ["RelevanceNetClassifier", "RelevanceNetRegressor"]

_COMMON_PARAMS = """
    module : None, torch.nn.Module class or instance, default=None
        The network; it must return logits (classifier) or predictions
        (regressor). ``None`` picks a default from the input's shape:
        :class:`~sklearn_relevance.modules.MLP` for ``(n, f)``,
        :class:`~sklearn_relevance.modules.SpectrumCNN` for ``(n, c, L)``,
        :class:`~sklearn_relevance.modules.ImageCNN` for ``(n, c, H, W)`` and
        ``(n, c, D, H, W)``, :class:`~sklearn_relevance.modules.FusionNet` for a
        dict of modalities. A class receives ``input_shape`` and ``n_outputs``
        inferred at ``fit`` when its ``__init__`` accepts them; other
        arguments go through ``module__<name>`` as in skorch. An instance is
        used as is.
    relevance_penalty : float, default=0.0
        Weight of the relevance term added to the loss. ``0`` trains an
        ordinary network; ``> 0`` is deep relevance regularization, or,
        with ``relevance_mask`` passed to :meth:`fit`, training to be right
        for the right reasons (only relevance outside the masks is
        penalised).
    relevance_explainer : str or explainer object, default="gradient_x_input"
        Differentiable explainer whose relevance is penalised; also the
        default of :meth:`explain`. Tune its parameters with
        ``relevance_explainer__<name>`` (e.g. ``relevance_explainer__n_steps``).
    relevance_norm : {"l1", "l2"}, default="l1"
        Per-sample norm of the relevance: sum of absolute values, or sum of
        squares.
    relevance_term : RelevancePenalty or None, default=None
        The penalty object that ``relevance_penalty`` weighs:
        :class:`~sklearn_relevance.penalties.RelevancePenalty` (the default,
        built from ``relevance_explainer``, ``relevance_norm`` and
        ``relevance_target``),
        :class:`~sklearn_relevance.penalties.RightReasonsPenalty`, or a
        subclass. Its parameters left as ``None`` take the estimator's
        ``relevance_explainer`` / ``relevance_norm`` / ``relevance_target``.
        The term is added to what ``get_loss`` returns, so a subclass that
        overrides ``get_loss`` keeps it.
    criterion : torch loss class, default=None
        ``None`` uses the estimator's default loss.
    optimizer : torch optimizer class, default=torch.optim.Adam
    lr : float, default=0.01
    max_epochs : int, default=10
    batch_size : int, default=64
        ``-1`` trains on the whole data set per step.
    train_split : callable or None, default=None
        skorch's validation split, e.g. ``skorch.dataset.ValidSplit(0.2)``.
        ``None`` trains on all data (scikit-learn behaviour). With a split,
        the validation loss includes the penalty (``valid_relevance`` is
        recorded too), so early stopping sees what training optimises.
    callbacks : list or None, default=None
        skorch callbacks (e.g. ``skorch.callbacks.EarlyStopping``).
    verbose : int, default=0
        ``1`` prints one line per epoch, ``2`` adds a progress bar.
    device : str, default="cpu"
        ``"cuda"`` trains and explains on the GPU; every tensor follows the
        module.
    random_state : int, RandomState instance or None, default=None
        Seeds the fit's own torch generator, from which weight
        initialisation, shuffling, dropout and the noise of the penalty's
        explainer are drawn (one stream per fit: fits in several threads
        give what serial fits give). ``None`` seeds it from the state of
        torch's global generator, which the fit does not advance (set
        ``torch.manual_seed`` to change it).
    **kwargs
        Any other skorch parameter (``iterator_train__num_workers``,
        ``module__hidden_units``, ``callbacks__print_log__...``).
"""

_COMMON_ATTRS = """
    module_ : torch.nn.Module
        The trained network.
    input_shape_ : tuple or dict of tuples
        Shape of one training sample (per modality for dict input).
    n_outputs_ : int
        Number of network outputs.
    n_features_in_ : int
        Number of features, for 2D input.
    relevance_explainer_ : explainer object
        The resolved ``relevance_explainer``.
    history_ : skorch.History
        Per-epoch records: ``train_loss`` (with the penalty), and with
        ``relevance_penalty > 0`` ``train_relevance`` (the relevance norm
        alone); ``valid_*`` likewise with a ``train_split``.
"""


def _encoded_accuracy(net, X, y):
    """Validation accuracy on label-encoded targets (works with cached outputs)."""
    proba = net._predict_proba_encoded(X)
    return float((proba.argmax(1) == to_numpy(y)).mean())


class RelevanceNetClassifier(ClassifierMixin, _RelevanceNetBase):
    __doc__ = f"""Neural network classifier with deep relevance regularization.

    A scikit-learn classifier that trains a PyTorch network through skorch.
    With ``relevance_penalty > 0`` the loss becomes
    ``cross_entropy + relevance_penalty * ||relevance(x)||`` where the
    relevance (gradient x input by default) is differentiated by double
    backpropagation, so the network learns to rely on few, robust features.

    Parameters
    ----------{_COMMON_PARAMS}
    relevance_target : {{"true", "predicted", "all"}}, default="true"
        Class whose relevance is penalised: the true class, the predicted
        class, or every class (their norms add up).
    classes : array-like of shape (n_classes,), default=None
        All class labels, as skorch's ``NeuralNetClassifier`` takes them:
        ``fit`` then accepts data that lacks some classes, and
        :meth:`initialize` (with ``module__input_shape``) builds the
        network without data, so saved parameters can be loaded. ``None``
        takes the classes found in ``y``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (any type); predictions map back to them.{_COMMON_ATTRS}
    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_relevance import RelevanceNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = RelevanceNetClassifier(relevance_penalty=0.01, max_epochs=3,
    ...                              random_state=0).fit(X / 16, y)
    >>> clf.predict(X[:3] / 16).shape
    (3,)
    >>> clf.explain(X[:3] / 16).shape
    (3, 64)
    """

    # its steps draw no random numbers of their own (see _fit_random.py);
    # not inherited by subclasses, which may override a step
    _steps_draw_nothing = True

    def __init__(self, module=None, *, relevance_penalty=0.0,
                 relevance_explainer="gradient_x_input", relevance_norm="l1",
                 relevance_target="true", classes=None, **kwargs):
        super().__init__(
            module, relevance_penalty=relevance_penalty,
            relevance_explainer=relevance_explainer, relevance_norm=relevance_norm,
            relevance_target=relevance_target, **kwargs,
        )
        self.classes = classes

    def _default_criterion(self, **kwargs):
        return torch.nn.CrossEntropyLoss(**kwargs)

    _is_regressor = False

    def _given_classes(self):
        """``classes`` as a sorted array of at least 2 labels, or None."""
        if self.classes is None:
            return None
        classes = np.asarray(self.classes)
        if classes.ndim != 1 or len(np.unique(classes)) < 2:
            raise ValueError(
                f"The 'classes' parameter of {type(self).__name__} must be None or a "
                "1D array-like of at least 2 distinct labels. Got "
                f"{self.classes!r} instead."
            )
        return np.unique(classes)

    def _outputs_without_fit(self, n_outputs):
        classes = self._given_classes()
        if classes is None:
            return None, ["classes (the class labels, as skorch's NeuralNetClassifier "
                          "takes them)"]
        if n_outputs is not None and n_outputs != len(classes):
            raise ValueError(
                f"The 'module__n_outputs' parameter of {type(self).__name__} "
                f"({n_outputs!r}) must equal the number of classes ({len(classes)}). "
                "Leave it out: classes sets it."
            )
        self.classes_ = classes
        return len(classes), []

    def _extra_default_callbacks(self):
        return [("valid_acc", EpochScoring(_encoded_accuracy, name="valid_acc",
                                           lower_is_better=False))]

    def _prepare_y(self, y, X, refit=True):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim != 1:
            raise ValueError(
                f"y must be 1D (one label per sample). Got an array of shape {y.shape}."
            )
        if y.shape[0] != batch_len(X):
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"[{batch_len(X)}, {y.shape[0]}]"
            )
        check_classification_targets(y)
        if refit and self.classes is not None:
            self.classes_ = self._given_classes()
            self.n_outputs_ = len(self.classes_)
        elif refit:
            encoder = LabelEncoder().fit(y)
            if len(encoder.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the "
                    "data, but the data contains only one class: "
                    f"{encoder.classes_[0]!r}."
                )
            self.classes_ = encoder.classes_
            self.n_outputs_ = len(self.classes_)
        return self._encode_labels(y)

    def _encode_labels(self, y):
        return encode_labels(self.classes_, y)

    def _encode_targets(self, y, n):
        return encode_labels(self.classes_, y, n)

    def _predict_proba_encoded(self, X):
        # used by the validation-accuracy callback on skorch's cached outputs
        return super(_RelevanceNetBase, self).predict_proba(X)

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or dict of arrays

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        X = self._check_predict_input(X)
        return self._predict_outputs(X)

    def predict(self, X):
        """Predicted class labels (of the type of the training labels).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or dict of arrays

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def decision_function(self, X):
        """Network logits (one column per class; one column for binary as
        scikit-learn expects: the logit difference of class 1 over class 0).
        """
        logits = self.forward_output(X)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags


class RelevanceNetRegressor(RegressorMixin, _RelevanceNetBase):
    __doc__ = f"""Neural network regressor with deep relevance regularization.

    The same as :class:`RelevanceNetClassifier` for regression: the loss is
    the mean squared error plus ``relevance_penalty`` times the relevance
    norm of every output.

    Parameters
    ----------{_COMMON_PARAMS}
    relevance_target : {{"all"}}, default="all"
        Every output is explained (regression has no classes).

    Attributes
    ----------{_COMMON_ATTRS}
    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance import RelevanceNetRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5))
    >>> y = 2 * X[:, 0] - X[:, 1]
    >>> reg = RelevanceNetRegressor(max_epochs=5, random_state=0).fit(X, y)
    >>> reg.predict(X[:4]).shape
    (4,)
    >>> reg.explain(X[:4]).shape
    (4, 5)
    """

    # its steps draw no random numbers of their own (see _fit_random.py);
    # not inherited by subclasses, which may override a step
    _steps_draw_nothing = True

    _relevance_targets = ("all",)
    _is_regressor = True

    def __init__(self, module=None, *, relevance_penalty=0.0,
                 relevance_explainer="gradient_x_input", relevance_norm="l1",
                 relevance_target="all", relevance_term=None, **kwargs):
        super().__init__(
            module, relevance_penalty=relevance_penalty,
            relevance_explainer=relevance_explainer, relevance_norm=relevance_norm,
            relevance_target=relevance_target, relevance_term=relevance_term, **kwargs,
        )

    def _default_criterion(self, **kwargs):
        return torch.nn.MSELoss(**kwargs)

    def _outputs_without_fit(self, n_outputs):
        n_outputs = 1 if n_outputs is None else n_outputs
        n_outputs = check_int(n_outputs, "module__n_outputs", type(self).__name__)
        self._y_ndim = 1 if n_outputs == 1 else 2
        return int(n_outputs), []

    def _prepare_y(self, y, X, refit=True):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = _check_y(y, multi_output=True, y_numeric=True, estimator=self)
        y = y.astype(np.float32)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1D or 2D. Got an array of shape {y.shape}.")
        if y.shape[0] != batch_len(X):
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"[{batch_len(X)}, {y.shape[0]}]"
            )
        if not np.isfinite(y).all():
            raise ValueError("Input y contains NaN or infinity.")
        if refit:
            self._y_ndim = y.ndim
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        return y.reshape(len(y), -1)

    def _encode_targets(self, y, n):
        raise ValueError("target='true' applies to classifiers only.")

    @available_if(lambda self: False)
    def predict_proba(self, X):  # pragma: no cover - hidden: regressors have none
        raise AttributeError("predict_proba")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X):
        """Predicted values.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or dict of arrays

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        X = self._check_predict_input(X)
        out = self._predict_outputs(X)
        out = out.reshape(len(out), -1)
        return out.ravel() if self._y_ndim == 1 else out
