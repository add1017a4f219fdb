"""scikit-learn estimators on top of :class:`pynet.MLP`: ``MLPClassifier`` and ``MLPRegressor``.

>>> from pynet.sklearn import MLPClassifier
>>> clf = MLPClassifier(hidden_layer_sizes=(64,), solver="sgd", learning_rate_init=0.1).fit(X, y)

Importing this module imports scikit-learn; ``import pynet`` alone never does. The estimators only
translate parameters and call :meth:`pynet.MLP.fit` / ``predict``: all the math is pynet's.

Parameters mean what they mean in scikit-learn's ``MLPClassifier`` / ``MLPRegressor``:

* Losses. scikit-learn minimises, per batch with weights w, ``Σ_i w_i ℓ_i / Σ_i w_i + α/(2Σ_i w_i)·‖W‖²``
  with ℓ = ½‖y − ŷ‖² (regression), the summed binary log-loss (binary, multi-label) or the log-loss
  (multi-class). pynet's kernels use ``mse`` = mean over outputs of (y − ŷ)², ``binary_cross_entropy``
  averaged over outputs, and ``cross_entropy``. Their gradients are ``s`` times scikit-learn's with
  s = 2/k (squared, k outputs), 1/k (sigmoid outputs) and 1 (softmax), so the estimators run pynet with
  ``lr = learning_rate_init / s`` for "sgd"/"gd" and Adam's ``eps = s·epsilon`` (Adam is otherwise
  invariant to the gradient's scale): the updates are scikit-learn's.
* ``alpha`` (L2). It becomes pynet's ``weight_decay = s·α / (batch_size·mean(sample_weight))``, i.e.
  the gradient of scikit-learn's α/(2Σw)·‖W‖² term. Two differences: pynet also decays the biases
  (negligible for the small α used in practice), and it uses the nominal batch size for every batch
  where scikit-learn uses the size of the (possibly smaller) last one.
* Weights start Glorot-uniform in every layer as in scikit-learn (``MLP(init="glorot")``; biases at 0,
  where scikit-learn draws them too).
* ``loss_curve_`` / ``loss_`` / ``best_loss_`` are reported in scikit-learn's units (the data term;
  the L2 term is left out). ``n_iter_`` is the running total of epochs over fit, warm starts and
  partial_fit.
* Stopping (pynet's one rule): training stops after ``n_iter_no_change`` consecutive epochs whose
  loss did not improve on the best by more than ``tol`` (in the units of ``loss_curve_``), or after
  ``max_iter`` epochs. The loss watched is the training loss, or with ``early_stopping=True`` the loss
  on a random ``validation_fraction`` of the data — the loss, not scikit-learn's accuracy / R²
  (those are still recorded in ``validation_scores_``) — and then the best weights are restored.
  ``stop_reason_`` says which rule ended the fit; running out of ``max_iter`` gives one
  ``ConvergenceWarning``.
* ``solver``: "adam", "sgd" (mini-batches, ``momentum`` / ``nesterovs_momentum``) or "gd" (full-batch
  steps; an epoch is one step). ``learning_rate`` schedules and "lbfgs" are not offered.
* ``backend`` ("auto", "c", "numba", "numpy"; None: pynet's default) and ``dtype`` ("float32",
  "float64"; None: float32 input stays float32, anything else is float64) are pynet's. Sparse input is
  densified.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import optim
from .model import MLP

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn activation names -> pynet's (pynet's "softplus" is accepted too).
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
                "softplus": "softplus"}
_SOLVERS = ("adam", "sgd", "gd")
_AUTO_BATCH = 200


def _number(value, name, lo, hi=np.inf, lo_open=False, hi_open=False, integer=False):
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, (bool, np.bool_)) and bool(np.isfinite(value))
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name}: must be {'an integer' if integer else 'a number'} in {interval}, "
                         f"got {value!r}")
    return value


class _BaseMLP(BaseEstimator):
    """Shared fit / partial_fit / predict plumbing; subclasses say how targets are encoded."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate_init=1e-3, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, backend=None, dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.dtype = dtype

    # ------------------------------------------------------------------ parameters
    def _hidden(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        for s in sizes:
            _number(s, "hidden_layer_sizes", 1, integer=True)
        return [int(s) for s in sizes]

    def _check_params(self):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation: unknown name {self.activation!r}; valid names are "
                             f"{', '.join(_ACTIVATIONS)}")
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver: unknown name {self.solver!r}; valid names are {', '.join(_SOLVERS)}")
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _number(self.batch_size, "batch_size", 1, integer=True)
        _number(self.alpha, "alpha", 0)
        _number(self.learning_rate_init, "learning_rate_init", 0, lo_open=True)
        _number(self.max_iter, "max_iter", 1, integer=True)
        _number(self.tol, "tol", 0)
        _number(self.n_iter_no_change, "n_iter_no_change", 1, integer=True)
        _number(self.momentum, "momentum", 0, 1, hi_open=True)
        _number(self.beta_1, "beta_1", 0, 1, hi_open=True)
        _number(self.beta_2, "beta_2", 0, 1, hi_open=True)
        _number(self.epsilon, "epsilon", 0, lo_open=True)
        if self.early_stopping:
            _number(self.validation_fraction, "validation_fraction", 0, 1, lo_open=True, hi_open=True)
        if self.dtype is not None and np.dtype(self.dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype: must be None, 'float32' or 'float64', got {self.dtype!r}")

    def _seed(self):
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool) and rs >= 0:
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _optimizer(self, batch, sw_mean, one_step):
        """pynet optimizer whose updates equal scikit-learn's (see the module docstring)."""
        s = self._grad_ratio
        decay = s * self.alpha / (batch * sw_mean)
        if self.solver == "adam":
            return optim.Adam(lr=self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2,
                              eps=s * self.epsilon, weight_decay=decay)
        settings = dict(lr=self.learning_rate_init / s, momentum=self.momentum,
                        nesterov=bool(self.nesterovs_momentum and self.momentum > 0), weight_decay=decay)
        if self.solver == "gd":
            # the stopping rule below replaces GD's own |Δθ| < tol rule, which tol=0 switches off
            return optim.GD(**settings, tol=0.0, max_steps=1 if one_step else self.max_iter)
        return optim.SGD(**settings)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None):
        """Fit on (X, y); with ``warm_start`` continue from the current weights and optimizer state."""
        return self._fit(X, y, sample_weight, partial=False)

    def _fit(self, X, y, sample_weight, partial, classes=None):
        self._check_params()
        fresh = not hasattr(self, "_net") or not (partial or self.warm_start)
        dtype = (self._net.dtype if not fresh else
                 (np.float64, np.float32) if self.dtype is None else np.dtype(self.dtype))
        X, y = validate_data(self, X, y, reset=fresh, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=dtype, y_numeric=not isinstance(self, ClassifierMixin))
        if sp.issparse(X):
            X = X.toarray()
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y, n_out = self._encode_targets(y, fresh, classes)
        sw = None if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=X.dtype)
        if fresh:
            self._net = MLP([X.shape[1], *self._hidden(), n_out], activation=_ACTIVATIONS[self.activation],
                            output=self._output, backend=self.backend, dtype=X.dtype, seed=self._seed(),
                            init="glorot")
            self.loss_curve_, self.validation_scores_, self.t_ = [], [], 0
            self.n_outputs_, self.n_layers_ = n_out, len(self._net.layers)
            self.out_activation_ = {"sigmoid": "logistic"}.get(self._output, self._output)
        elif self._net.layers[1:-1] != self._hidden() or \
                set(self._net.activations) - {_ACTIVATIONS[self.activation]}:
            raise ValueError("warm_start: hidden_layer_sizes or activation changed since the last fit; "
                             "set warm_start=False to start over")
        n = X.shape[0]
        validate = self.early_stopping and not partial
        n_train = n - int(round(n * self.validation_fraction)) if validate else n
        batch = n_train if self.solver == "gd" else self._batch(n_train)
        opt = self._optimizer(batch, 1.0 if sw is None else float(sw.mean()), partial)
        history = self._net.fit(
            X, Y, loss=self._loss, optimizer=opt, batch_size=batch, epochs=1 if partial else self.max_iter,
            shuffle=self.shuffle, validation_split=self.validation_fraction if validate else 0.0,
            sample_weight=sw, early_stopping=not partial, patience=self.n_iter_no_change,
            min_delta=float(self.tol * self._loss_unit), restore_best=validate, diagnostics=False,
            verbose=bool(self.verbose))
        self._record(history, n_train, partial)
        return self

    def _batch(self, n_train):
        if self.batch_size == "auto":
            return min(_AUTO_BATCH, n_train)
        if self.batch_size > n_train:
            warnings.warn(f"batch_size: {self.batch_size} is larger than the {n_train} training rows; "
                          f"using {n_train}", UserWarning, stacklevel=4)
            return n_train
        return int(self.batch_size)

    def _record(self, history, n_train, partial):
        unit = self._loss_unit
        self.loss_curve_ += [v / unit for v in history.loss]
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else float("nan")
        self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ else float("nan")
        if history.val_metric:
            self.validation_scores_ += history.val_metric
            self.best_validation_score_ = max(self.validation_scores_)
        self.n_iter_ = self._net.epochs_trained_
        self.t_ += n_train * history.epochs
        self.history_ = history
        self.stop_reason_ = history.stop_reason
        if not partial and history.stop_reason.startswith(("epochs:", "max_steps:")):
            warnings.warn(f"{type(self).__name__}: max_iter={self.max_iter} epochs ran without the loss "
                          f"stalling (no improvement > tol for n_iter_no_change epochs); raise max_iter "
                          "or tol", ConvergenceWarning, stacklevel=4)

    def _partial_fit(self, X, y, sample_weight, classes=None):
        return self._fit(X, y, sample_weight, partial=True, classes=classes)

    # ------------------------------------------------------------------ inference
    def _inputs(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc"], dtype=self._net.dtype)
        return X.toarray() if sp.issparse(X) else X

    @property
    def coefs_(self):
        """Per-layer weight matrices W_l of shape (n_{l−1}, n_l): views into the model's flat buffer."""
        if "_net" not in self.__dict__:
            raise AttributeError("coefs_: the estimator is not fitted")
        return self._net.weights

    @property
    def intercepts_(self):
        """Per-layer bias vectors b_l: views into the model's flat buffer."""
        if "_net" not in self.__dict__:
            raise AttributeError("intercepts_: the estimator is not fitted")
        return self._net.biases

    @property
    def model_(self):
        """The fitted :class:`pynet.MLP` (save it with ``model_.save(path)``)."""
        if "_net" not in self.__dict__:
            raise AttributeError("model_: the estimator is not fitted")
        return self._net


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: softmax + cross-entropy for several classes, one sigmoid +
    binary cross-entropy for two, k sigmoids for multi-label 0/1 targets (see the module docstring)."""

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), keeping weights and optimizer state; ``classes`` is needed on the first call."""
        if not hasattr(self, "_net") and classes is None and type_of_target(y) != "multilabel-indicator":
            raise ValueError("classes: must be given on the first call to partial_fit")
        return self._partial_fit(X, y, sample_weight, classes)

    def _encode_targets(self, y, fresh, classes):
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"y: {kind} targets are not supported")
        multilabel = kind == "multilabel-indicator"
        if fresh:
            self.classes_ = np.arange(y.shape[1]) if multilabel else unique_labels(
                y if classes is None else classes)
            if len(self.classes_) < 2:
                raise ValueError(f"y: a classifier needs at least 2 classes; got 1 class ({self.classes_[0]!r})")
            self._multilabel = multilabel
            k = len(self.classes_)
            self._output, self._loss = (("sigmoid", "binary_cross_entropy") if multilabel or k == 2 else
                                        ("softmax", "cross_entropy"))
        elif multilabel != self._multilabel or (multilabel and y.shape[1] != len(self.classes_)):
            raise ValueError("y: targets are of a different kind than in the previous fit")
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes: {unique_labels(classes)} differ from the first call's {self.classes_}")
        k = len(self.classes_)
        # pynet's binary_cross_entropy is a mean over the k outputs, scikit-learn's a sum
        self._loss_unit = self._grad_ratio = 1.0 / k if multilabel else 1.0
        if multilabel:
            return y.astype(np.float64), k
        seen = unique_labels(y)
        unknown = np.setdiff1d(seen, self.classes_)
        if unknown.size:
            raise ValueError(f"y: has classes {unknown.tolist()} not in classes_ {self.classes_.tolist()}")
        codes = np.searchsorted(self.classes_, y)
        return codes, 1 if k == 2 else k

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order (multi-label: P(label = 1) per column)."""
        X = self._inputs(X)
        return self._net.predict_proba(X)

    def predict_log_proba(self, X):
        """log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted labels (multi-label: a 0/1 matrix)."""
        P = self.predict_proba(X)
        if self._multilabel:
            return (P > 0.5).astype(np.int64)
        return self.classes_[np.argmax(P, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: identity output, squared loss, one or several outputs."""

    _output, _loss, _loss_unit = "identity", "mse", 2.0

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), keeping weights and optimizer state."""
        return self._partial_fit(X, y, sample_weight)

    def _encode_targets(self, y, fresh, classes):
        k = 1 if y.ndim == 1 else y.shape[1]
        if not fresh and k != self.n_outputs_:
            raise ValueError(f"y: has {k} outputs but the model was fitted with {self.n_outputs_}")
        self._grad_ratio = 2.0 / k  # ∂mse/∂ŷ = 2(ŷ − y)/k against scikit-learn's (ŷ − y)
        return y, k

    def predict(self, X):
        """Predicted values: shape (n,) for one output, (n, k) for k outputs."""
        X = self._inputs(X)
        return self._net.predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        return tags
