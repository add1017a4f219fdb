"""The multilayer perceptron: one flat parameter buffer, trained by the fused kernels of a backend."""
from __future__ import annotations

import time
import warnings

import numpy as np

from kernels import contract as C

from . import _backend, _jit, metrics, optim
from ._validation import as_labels, as_matrix, check_rows, fraction, positive_int, sample_weights
from .diagnostics import Diagnostics
from .history import History
from .progress import Progress

#: Output activation implied by each loss, and the loss implied by each output activation.
_OUTPUT_FOR_LOSS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "ssr": "identity",
                    "mse": "identity"}
_LOSS_FOR_OUTPUT = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}
_CLASSIFICATION = ("cross_entropy", "binary_cross_entropy")
_PREDICT_BLOCK = 1024
_GD_MIN_CHUNK = 10  #: full-batch steps per kernel call, at least, when nothing is needed after every step


class DivergenceWarning(RuntimeWarning):
    """Training stopped because the loss became NaN or infinite."""


class NotFittedError(ValueError, AttributeError):
    """A model was asked to predict before it was fitted (or loaded from a fitted model's file).

    A ValueError and an AttributeError, like scikit-learn's exception of the same name, so code that
    catches either keeps working."""


class MLP:
    """A multilayer perceptron ``layers = [n_inputs, hidden…, n_outputs]``.

    Layer l computes A_l = f_l(A_{l−1}·W_l + b_l); all W_l, b_l live in the flat buffer ``params``.

    Parameters
    ----------
    layers : sizes from the input to the output layer (at least two; [n, k] is a linear model).
    activation : hidden activation name, or one name per hidden layer.
    output : "identity", "sigmoid", "softmax" (or another activation); None: chosen from the loss.
    backend : "auto", "c", "numba" or "numpy"; None: the default (:func:`pynet.set_backend`).
    dtype : "float32" or "float64"; data and parameters are kept in it end to end.
    seed : seed of the generator used for initialisation, validation split and shuffling.
    standardize : fit a per-feature standardisation on the training data and keep it in the model.
    init : "auto" (He normal for ReLU layers, Glorot uniform otherwise) or "glorot" (Glorot uniform for
        every layer, as scikit-learn does); biases start at 0.
    """

    def __init__(self, layers, activation="relu", output=None, backend=None, dtype="float32", seed=0,
                 standardize=False, init="auto"):
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__len__") or len(layers) < 2:
            raise ValueError(f"layers: need at least [n_inputs, n_outputs], got {layers!r}")
        self.layers = [positive_int(s, f"layers[{i}]") for i, s in enumerate(layers)]
        n_hidden = len(self.layers) - 2
        hidden = [activation] * n_hidden if isinstance(activation, str) else list(activation)
        if len(hidden) != n_hidden:
            raise ValueError(f"activation: need one name per hidden layer ({n_hidden}), got {len(hidden)}")
        for name in hidden:
            C.code(C.ELEMENTWISE, name, "activation")
        if output is not None:
            C.code(C.ACTIVATIONS, output, "output")
        self.activations = hidden
        self.output = output
        try:
            self.dtype = np.dtype(dtype)
        except TypeError as exc:
            raise TypeError(f"dtype: {exc}") from exc
        if self.dtype not in C.FLOAT_DTYPES:
            raise ValueError(f"dtype: must be float32 or float64, got {self.dtype}")
        self._backend_name = None if backend is None else _backend._check_name(backend)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.standardize = bool(standardize)
        if init not in ("auto", "glorot"):
            raise ValueError(f"init: unknown name {init!r}; valid names are auto, glorot")
        self.init = init
        self.params = np.zeros(C.n_params(self.layers), self.dtype)
        self._bind_views()
        self.reset()

    # ------------------------------------------------------------------ structure
    def __getstate__(self):
        # pickle/deepcopy would store the per-layer views as independent copies; rebind them instead
        state = self.__dict__.copy()
        del state["weights"], state["biases"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._bind_views()

    def _bind_views(self):
        self.weights, self.biases = [], []
        for (w, b, e), n_in, n_out in zip(C.layout(self.layers), self.layers[:-1], self.layers[1:]):
            self.weights.append(self.params[w:b].reshape(n_in, n_out))
            self.biases.append(self.params[b:e])

    def reset(self):
        """Re-initialise the weights (see ``init``) and forget any fit."""
        self._rng = np.random.default_rng(self.seed)
        for W, b, act in zip(self.weights, self.biases, self.activations + [self.output or "identity"]):
            n_in, n_out = W.shape
            if act == "relu" and self.init == "auto":
                W[...] = self._rng.normal(0.0, np.sqrt(2.0 / n_in), W.shape)
            else:
                limit = np.sqrt(6.0 / (n_in + n_out))
                W[...] = self._rng.uniform(-limit, limit, W.shape)
            b[...] = 0
        self.loss = None
        self.classes_ = None
        self._target = None  # "labels" | "onehot" | "multilabel" | "vector" | "scalar"
        self.mean_ = self.scale_ = None
        self.epochs_trained_ = 0
        self._opt_state = None
        self._opt_key = None
        self._opt_step = np.zeros(1, np.int64)
        return self

    @property
    def backend(self) -> str:
        """Name of the backend this model runs on (resolving "auto")."""
        return self._kernels().name

    def _kernels(self):
        return _backend.resolve(self._backend_name)

    def _act_codes(self):
        names = self.activations + [self.output or "identity"]
        return np.array([C.ACTIVATIONS.index(a) for a in names], np.int64)

    def _sizes(self):
        return np.array(self.layers, np.int64)

    # ------------------------------------------------------------------ data preparation
    def _inputs(self, X, name="X", fitting=False):
        X = as_matrix(X, name, self.dtype)
        if X.shape[1] != self.layers[0]:
            raise ValueError(f"{name}: has {X.shape[1]} features but the model's input layer has {self.layers[0]}")
        if fitting and self.standardize and self.mean_ is None:
            self.mean_, self.scale_ = _column_stats(X, self.dtype)
        if self.mean_ is not None:
            X = _standardized(X, self.mean_, self.scale_)  # a new array: the caller's X is never modified
        return X

    def _targets(self, y, n):
        """Encode y as the float target matrix Y of the loss (fixing classes_ on the first fit)."""
        k = self.layers[-1]
        loss = self.loss
        if loss == "cross_entropy":
            arr = np.asarray(y)
            if arr.ndim == 2 and arr.shape[1] == k and arr.dtype.kind == "f" and k > 1:
                Y = as_matrix(arr, "y", self.dtype)
                if np.any(Y < 0) or not np.allclose(Y.sum(axis=1), 1, atol=1e-3):
                    raise ValueError("y: 2-D targets for cross_entropy must be probabilities (rows summing to 1)")
                self._set_classes(np.arange(k), "onehot")
                return Y
            labels = as_labels(y)
            self._set_classes(self._label_set(labels, k), "labels")
            Y = np.zeros((labels.shape[0], k), self.dtype)  # one-hot: half the time of np.eye(k)[idx]
            Y[np.arange(labels.shape[0]), self._encode(labels)] = 1
            return Y
        if loss == "binary_cross_entropy":
            arr = np.asarray(y)
            if k == 1:
                labels = as_labels(y)
                self._set_classes(self._label_set(labels, 2), "labels")
                return (self._encode(labels) == 1).astype(self.dtype)[:, None]
            Y = as_matrix(arr, "y", self.dtype)
            if Y.shape[1] != k or not np.all((Y == 0) | (Y == 1)):
                raise ValueError(f"y: multi-label targets must be a 0/1 matrix with {k} columns")
            self._set_classes(np.arange(k), "multilabel")
            return Y
        arr = np.asarray(y)
        if arr.ndim == 1:
            if k != 1:
                raise ValueError(f"y: 1-D targets but the output layer has {k} units and the loss is {loss!r}: "
                                 f"for class labels pass loss='cross_entropy' (or build the model with "
                                 f"output='softmax'); for regression pass y with {k} columns")
            self._target = "scalar"
            return as_matrix(arr, "y", self.dtype, ndim=1)[:, None]
        Y = as_matrix(arr, "y", self.dtype)
        if Y.shape[1] != k:
            raise ValueError(f"y: has {Y.shape[1]} columns but the output layer has {k}")
        self._target = "vector"
        return Y

    def _label_set(self, labels, k):
        if self.classes_ is not None and self._target == "labels":
            return self.classes_
        if labels.dtype.kind in "iub" and labels.min() >= 0 and labels.max() < k:
            return np.arange(k) if labels.dtype.kind != "b" else np.array([False, True])
        found = np.unique(labels)
        if len(found) > k or (len(found) < k and not (k == 2 and len(found) == 1)):
            raise ValueError(f"y: found {len(found)} classes but the output layer has {k} units")
        return found

    def _set_classes(self, classes, target):
        if self.classes_ is not None and self._target != target:
            raise ValueError("y: targets are of a different kind than in the previous fit; call reset() first")
        self.classes_ = np.asarray(classes)
        self._target = target

    def _encode(self, labels):
        k = len(self.classes_)
        if (labels.dtype.kind in "iu" and self.classes_.dtype.kind in "iu" and self.classes_[0] == 0
                and self.classes_[-1] == k - 1 and labels.min() >= 0 and labels.max() < k):
            return labels  # classes_ is 0..k-1 (sorted, distinct): every label is its own index
        idx = np.searchsorted(self.classes_, labels)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unseen = self.classes_[idx] != labels
        if np.any(unseen):
            raise ValueError(f"y: label {labels[np.argmax(unseen)].tolist()!r} was not seen at fit; "
                             f"known classes are {self.classes_.tolist()}")
        return idx

    # ------------------------------------------------------------------ training
    def fit(self, X, y, loss=None, optimizer="sgd", lr=None, batch_size=32, epochs=10, shuffle=True,
            validation_split=0.0, validation_data=None, sample_weight=None, momentum=None, nesterov=None,
            weight_decay=None, tol=None, max_steps=None, early_stopping=False, patience=10, min_delta=0.0,
            restore_best=True, diagnostics=True, dead_threshold=0.5, vanishing_factor=1e-3, verbose=False,
            callback=None) -> History:
        """Train on (X, y) and return the :class:`History`. A second call continues from the current
        weights and optimizer state (same optimizer) — call :meth:`reset` to start over.

        loss: "ssr", "mse", "binary_cross_entropy" or "cross_entropy"; None takes the previous fit's, else
        the one the model's output activation implies, else (output=None too) the one y implies: 1-D
        class labels with several outputs → cross_entropy, two classes with one output →
        binary_cross_entropy, real values → mse (the output activation follows the loss).
        optimizer: "sgd" (mini-batches of ``batch_size`` for ``epochs`` epochs), "adam", or "gd"
        (full batch: stop when every parameter step |Δθ| < ``tol`` or after ``max_steps`` steps), or an
        :class:`~pynet.SGD` / :class:`~pynet.GD` / :class:`~pynet.Adam` object.
        batch_size: rows per step; None, "full" or the number of training rows makes every epoch one
        full-batch step, run by the fused full-batch kernel (many steps per call) for "sgd" and "adam".
        Early stopping watches the validation loss (the training loss when there is no validation
        data): it stops after ``patience`` epochs without an improvement of more than ``min_delta``
        and restores the best weights unless ``restore_best`` is False.
        """
        opt = optim.make(optimizer, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                         **({"tol": tol, "max_steps": max_steps} if optimizer == "gd" else {}))
        if optimizer != "gd" and not isinstance(opt, optim.GD) and (tol is not None or max_steps is not None):
            raise ValueError("tol: tol and max_steps apply to optimizer='gd' only")
        gd = isinstance(opt, optim.GD)
        if not gd and batch_size is not None and not (isinstance(batch_size, str) and batch_size == "full"):
            if isinstance(batch_size, str):
                raise ValueError(f"batch_size: expected an integer, None or 'full', got {batch_size!r}")
            batch_size = positive_int(batch_size, "batch_size")
        self._choose_loss(loss, y)
        X = self._inputs(X, fitting=True)
        Y = self._targets(y, X.shape[0])
        check_rows(X, Y)
        sw = sample_weights(sample_weight, X.shape[0], self.dtype)
        validation_split = fraction(validation_split, "validation_split")
        epochs = opt.max_steps if gd else positive_int(epochs, "epochs")
        patience = positive_int(patience, "patience")
        if not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ValueError(f"min_delta: must be a number >= 0, got {min_delta!r}")
        if callback is not None and not callable(callback):
            raise TypeError("callback: must be callable as callback(epoch, history)")

        train_rows, val = self._split(X, Y, sw, validation_split, validation_data)
        n_train = train_rows.shape[0]
        if isinstance(batch_size, int) and not gd and batch_size > n_train:
            raise ValueError(f"batch_size: {batch_size} is larger than the {n_train} training rows")
        # one batch of every training row: the order cannot change the step, so no shuffle and no gather
        full_batch = gd or not isinstance(batch_size, int) or batch_size == n_train
        k = self._kernels()
        # a cold JIT cache: compile now, with progress on stderr (a full batch runs the full-batch kernel)
        _jit.ready(k, self.dtype.name, "gd" if full_batch else opt.name)
        diag = Diagnostics(self, dead_threshold, vanishing_factor) if diagnostics else None
        session = _Session(self, k, opt, X, Y, sw, train_rows, val, batch_size if not full_batch else None,
                           diag is not None)
        history = History(monitor="val_loss" if val is not None else "loss", backend=k.name, optimizer=opt.name)
        best = _Best(self.params, min_delta, keep=early_stopping and restore_best)
        progress = Progress(epochs, enabled=verbose, unit="step" if gd else "epoch")
        try:
            if full_batch:
                self._run_gd(session, epochs, opt.tol if gd else None, history, diag, best, early_stopping,
                             patience, callback, progress)
            else:
                self._run_sgd(session, shuffle, epochs, history, diag, best, early_stopping, patience,
                              callback, progress)
        finally:
            progress.close()
        if early_stopping and restore_best and best.epoch is not None and history.stop_reason.startswith("early"):
            self.params[...] = best.params
        history.best_epoch, history.best_loss = best.epoch, best.value
        if history.stop_reason.startswith("diverged"):
            if self.loss == "ssr":
                history.stop_reason += _ssr_hint(session.X.shape[0] if full_batch else session.batch_size, opt.lr)
            warnings.warn(history.stop_reason, DivergenceWarning, stacklevel=2)
        return history

    def _choose_loss(self, loss, y=None):
        """Fix this fit's loss and, when ``output`` was left as None, the output activation it implies.

        With ``loss=None``: the previous fit's loss; else the loss of the output activation (softmax:
        cross_entropy, sigmoid: binary_cross_entropy, any other: mse); with no output activation either,
        the loss the targets ``y`` imply (:meth:`_loss_for_targets`)."""
        if loss is None:
            if self.loss is not None:
                loss = self.loss
            elif self.output is not None or y is None:
                loss = _LOSS_FOR_OUTPUT.get(self.output or "identity", "mse")
            else:
                loss = self._loss_for_targets(y)
        C.code(C.LOSSES, loss, "loss")
        if self.loss is not None and loss != self.loss and self.classes_ is not None:
            raise ValueError(f"loss: the model was fitted with {self.loss!r}; call reset() to change it to {loss!r}")
        if self.output is None:
            self.output = _OUTPUT_FOR_LOSS[loss]
        if C.ACTIVATIONS.index(self.output) not in C.COMPATIBLE_OUTPUTS[C.LOSSES.index(loss)]:
            raise ValueError(f"loss: {loss!r} needs output "
                             f"{_OUTPUT_FOR_LOSS[loss]!r}, but the model's output is {self.output!r}")
        self.loss = loss

    def _loss_for_targets(self, y):
        """The loss that targets y imply for this model's k output units (neither loss nor output given).

        1-D class labels — integers, bools, strings, or floats that are all whole numbers — with k > 1
        outputs: cross_entropy (softmax). 1-D labels of at most two classes with one output:
        binary_cross_entropy (sigmoid). Other real-valued targets (and integers of more than two values
        with one output: counts, say): mse. Labels of another type with one output and more than two
        classes have no loss that fits: the error says which output size or loss= to use."""
        k = self.layers[-1]
        arr = np.asarray(y)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1 or arr.shape[0] == 0:
            return "mse"  # a target matrix is regression's (or says its loss= explicitly)
        kind = arr.dtype.kind
        if kind == "f":
            whole = bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
            # one output: a real-valued target; k outputs: 1-D floats cannot be k-column regression targets
            return "cross_entropy" if k > 1 and whole else "mse"
        if kind not in "biuUSO":
            return "mse"  # complex and other kinds: as_matrix rejects them with its own message
        if k > 1:
            return "cross_entropy"
        n_classes = len(np.unique(arr))
        if n_classes <= 2:
            return "binary_cross_entropy"
        if kind in "iu":
            return "mse"
        raise ValueError(f"y: {n_classes} classes but the output layer has 1 unit; give the model {n_classes} "
                         f"outputs (MLP([..., {n_classes}]): cross_entropy), or pass loss= explicitly")

    def _split(self, X, Y, sw, validation_split, validation_data):
        n = X.shape[0]
        if validation_data is not None:
            if validation_split:
                raise ValueError("validation_split: give validation_split or validation_data, not both")
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data: expected (X_val, y_val) or (X_val, y_val, sample_weight)")
            Xv = self._inputs(validation_data[0], "validation_data[0]")
            Yv = self._targets(validation_data[1], Xv.shape[0])
            check_rows(Xv, Yv, "validation_data[0]", "validation_data[1]")
            swv = sample_weights(validation_data[2], Xv.shape[0], self.dtype) if len(validation_data) == 3 else None
            return np.arange(n, dtype=np.int64), (Xv, Yv, swv)
        if not validation_split:
            return np.arange(n, dtype=np.int64), None
        n_val = int(round(n * validation_split))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(f"validation_split: {validation_split} of {n} rows leaves an empty training "
                             "or validation set")
        order = self._rng.permutation(n)
        val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:]).astype(np.int64)
        return train_rows, (X[val_rows], Y[val_rows], None if sw is None else sw[val_rows])

    def _run_sgd(self, s, shuffle, epochs, history, diag, best, early_stopping, patience, callback, progress):
        history.stop_reason = f"epochs: ran all {epochs} epochs"
        perm = np.empty_like(s.train_rows) if shuffle else s.train_rows
        for epoch in range(epochs):
            if shuffle:  # = self._rng.permutation(train_rows), the same draws, into one buffer for the fit
                perm[...] = s.train_rows
                self._rng.shuffle(perm)
            t0 = time.perf_counter()
            value = s.epoch(perm)
            seconds = time.perf_counter() - t0
            self.epochs_trained_ += 1
            if not np.isfinite(value):
                history.stop_reason = _diverged(value, f"epoch {epoch + 1}", s.opt.lr)
                break
            self._record(s, history, value, seconds, diag, epoch, best)
            progress.update(epoch + 1, history)
            if early_stopping and best.wait >= patience:
                history.stop_reason = (f"early_stopping: no improvement of {history.monitor} by more than "
                                       f"{best.min_delta} for {patience} epochs (best epoch {best.epoch + 1})")
                break
            if callback is not None and callback(epoch, history):
                history.stop_reason = f"callback: stopped at epoch {epoch + 1}"
                break

    def _run_gd(self, s, steps, tol, history, diag, best, early_stopping, patience, callback, progress):
        """Full-batch steps, many per kernel call. ``tol`` None: ``steps`` epochs of one step each, no
        |Δθ| rule (sgd or adam with a full batch); else optimizer "gd"'s steps and stopping rule."""
        unit = "step" if tol is not None else "epoch"
        # about 50 calls a fit (progress, diagnostics), but each at least _GD_MIN_CHUNK steps: every call
        # costs argument checks and a diagnostics probe, about 0.5 ms, a third of a 2-step digits chunk
        per_step = s.val is not None or callback is not None or early_stopping
        chunk = 1 if per_step else max(_GD_MIN_CHUNK, steps // 50)
        done = 0
        history.stop_reason = (f"max_steps: reached {steps} steps" if tol is not None
                               else f"epochs: ran all {steps} epochs")
        while done < steps:
            t0 = time.perf_counter()
            ran, losses, last = s.gd(min(chunk, steps - done), 0.0 if tol is None else tol)
            seconds = (time.perf_counter() - t0) / max(ran, 1)
            self.epochs_trained_ += ran
            for i, value in enumerate(losses[:ran]):
                if np.isfinite(value):
                    self._record(s, history, float(value), seconds, diag if i == ran - 1 else None,
                                 done + i, best)
            done += ran
            progress.update(done, history)
            if not np.isfinite(losses[ran - 1]):
                history.stop_reason = _diverged(losses[ran - 1], f"{unit} {done}", s.opt.lr)
                break
            if tol is not None and last < tol:
                history.stop_reason = f"tol: every parameter step < {tol:g} at step {done}"
                break
            if early_stopping and best.wait >= patience:
                history.stop_reason = (f"early_stopping: no improvement of {history.monitor} by more than "
                                       f"{best.min_delta} for {patience} {unit}s (best {unit} {best.epoch + 1})")
                break
            if callback is not None and callback(done - 1, history):
                history.stop_reason = f"callback: stopped at {unit} {done}"
                break

    def _record(self, s, history, value, seconds, diag, epoch, best):
        history.loss.append(value)
        history.seconds.append(seconds)
        if s.val is not None:
            val_loss, metric = s.validate()
            history.val_loss.append(val_loss)
            history.val_metric.append(metric)
            best.update(val_loss, epoch)
        else:
            best.update(value, epoch)
        if diag is not None:
            diag.record(s, history, epoch)

    # ------------------------------------------------------------------ inference
    def _check_fitted(self, method):
        # epochs_trained_ counts every fit (MLP.fit, distributed.fit) and is restored by pynet.load; a model
        # never trained would answer from its random initial weights
        if self.epochs_trained_ == 0:
            raise NotFittedError(f"{method}: the model has not been fitted; call fit(X, y) first, or "
                                 "pynet.load() a saved model")

    def _outputs(self, X):
        X = self._inputs(X)
        out = np.empty((X.shape[0], self.layers[-1]), self.dtype)
        block = min(_PREDICT_BLOCK, X.shape[0])
        self._kernels().predict(self.params, self._sizes(), self._act_codes(), X, out, block,
                                np.empty(C.predict_workspace_size(self.layers, block), self.dtype))
        return out

    def predict(self, X):
        """Predicted labels (classification) or values (regression) for the rows of X.

        Raises :class:`NotFittedError` before the model has been fitted."""
        self._check_fitted("predict")
        out = self._outputs(X)
        if self.loss == "cross_entropy" and self._target == "labels":
            return self.classes_[np.argmax(out, axis=1)]
        if self.loss == "cross_entropy":
            return np.argmax(out, axis=1)
        if self.loss == "binary_cross_entropy":
            hits = out >= 0.5
            return self.classes_[hits[:, 0].astype(int)] if self._target == "labels" else hits.astype(np.int64)
        return out[:, 0] if self._target == "scalar" else out

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order (softmax, or [1 − p, p] for one sigmoid)."""
        self._check_fitted("predict_proba")
        if self.loss not in _CLASSIFICATION:
            raise ValueError("predict_proba: the model is not a classifier (fit it with a cross-entropy loss)")
        out = self._outputs(X)
        if self.loss == "binary_cross_entropy" and self.layers[-1] == 1:
            return np.hstack([1 - out, out])
        return out

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy for classifiers, R² for regression."""
        self._check_fitted("score")
        pred = self.predict(X)
        if self.loss in _CLASSIFICATION:
            if self._target == "labels":
                labels = as_labels(y)
                check_rows(pred, labels)
                self._encode(labels)  # unseen labels are an error, not a silent miss
                return metrics.accuracy(labels, pred, sample_weight)
            return metrics.accuracy(np.asarray(y).argmax(axis=1) if self.loss == "cross_entropy" else y,
                                    pred, sample_weight)
        Y = np.asarray(y, np.float64)
        check_rows(pred, Y)
        return metrics.r2(Y, pred, sample_weight)

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Write the model to a versioned, pickle-free ``.npz`` file (atomically)."""
        from .io import save

        save(self, path)

    def __repr__(self):
        return (f"MLP({self.layers}, activation={self.activations}, output={self.output!r}, "
                f"dtype={self.dtype.name!r}, backend={self._backend_name or 'default'!r})")


#: Cells per block in the standardisation statistics: a block's temporary stays in the L2 cache.
_STATS_BLOCK = 1 << 16


def _column_stats(X, dtype):
    """Per-column mean and scale (the standard deviation, 1 where it is 0) of X, as ``dtype``.

    Two passes, Σx then Σ(x − mean)², a block of rows at a time: no temporary the size of X (``X.std``
    makes two). Each block sums in X's dtype and the blocks add up in float64, so a float32 sum never
    runs over more than a block's rows.
    """
    n, d = X.shape
    rows = max(1, _STATS_BLOCK // d)
    total = np.zeros(d)
    for i in range(0, n, rows):
        total += np.add.reduce(X[i:i + rows], axis=0)
    mean = total / n
    centre = mean.astype(X.dtype)
    sq, buf = np.zeros(d), np.empty((rows, d), X.dtype)
    for i in range(0, n, rows):
        block = X[i:i + rows]
        diff = buf[:block.shape[0]]
        np.subtract(block, centre, out=diff)
        np.multiply(diff, diff, out=diff)
        sq += np.add.reduce(diff, axis=0)
    std = np.sqrt(sq / n)
    return mean.astype(dtype), np.where(std > 0, std, 1).astype(dtype)


def _standardized(X, mean, scale):
    """(X − mean) / scale, bit for bit, in one new array (the expression allocates two)."""
    out = np.subtract(X, mean)
    np.divide(out, scale, out=out)
    return out


def _diverged(value, where, lr):
    return (f"diverged: the loss became {value} at {where}; the last finite weights were kept. "
            f"Try a lower learning rate (now {lr:g})")


def _ssr_hint(rows, lr):
    """Why an ssr fit diverges, usually: a learning rate chosen for a mean, applied to a sum over many rows."""
    return (f": ssr is a sum over the {rows} rows of each step, so its gradient grows with them; scale lr by "
            f"1/{rows} (lr={lr / rows:.3g}) or use loss='mse', whose gradient does not grow with the rows")


class _Best:
    """Tracks the best monitored loss and (``keep``: only when they may be restored) the weights then."""

    def __init__(self, params, min_delta, keep=True):
        self.params = np.empty_like(params) if keep else None
        self.source = params
        self.min_delta = float(min_delta)
        self.value, self.epoch, self.wait = None, None, 0

    def update(self, value, epoch):
        if self.value is None or value < self.value - self.min_delta:
            self.value, self.epoch, self.wait = value, epoch, 0
            if self.params is not None:
                self.params[...] = self.source
        else:
            self.wait += 1


class _Session:
    """Buffers for one fit, allocated once: gradients, optimizer state, workspaces, diagnostics."""

    def __init__(self, net, k, opt, X, Y, sw, train_rows, val, batch_size, diagnostics=True):
        self.net, self.k, self.opt = net, k, opt
        self.X, self.Y, self.sw, self.train_rows, self.val = X, Y, sw, train_rows, val
        self.sizes, self.acts = net._sizes(), net._act_codes()
        self.loss = C.LOSSES.index(net.loss)
        self.hyper = opt.hyper()
        P = net.params.shape[0]
        key = (opt.name if opt.name != "gd" else "sgd", net.dtype.str)
        if net._opt_key != key:  # a new optimizer kind starts from zero state; the same one continues
            net._opt_state, net._opt_key = np.zeros(2 * P, net.dtype), key
            net._opt_step[0] = 0
        self.grads = np.zeros(P, net.dtype)
        rows = batch_size if batch_size is not None else X.shape[0]
        self.batch_size = rows
        if batch_size is None and train_rows.shape[0] != X.shape[0]:
            self.X, self.Y = X[train_rows], Y[train_rows]
            self.sw = None if sw is None else sw[train_rows]
        self.workspace = np.empty(C.train_workspace_size(self.sizes, rows), net.dtype)
        # the epoch kernel marks live units and sums ‖dW‖² only into non-empty arrays: without diagnostics
        # it does neither (that work is 4-13 % of an epoch, measured in docs/performance.md)
        self.alive = np.zeros(C.n_hidden_units(self.sizes) if diagnostics else 0, np.int64)
        self.grad_sq = np.zeros(len(self.sizes) - 1 if diagnostics else 0)
        self.steps = 0
        self.losses, self.last = np.zeros(0), np.zeros(1)
        if val is not None:
            Xv, Yv, _ = val
            block = min(_PREDICT_BLOCK, Xv.shape[0])
            self.val_logits = np.empty_like(Yv)
            self.val_out = np.empty_like(Yv)
            self.val_grad = np.empty_like(Yv)
            self.val_ws = np.empty(C.predict_workspace_size(self.sizes, block), net.dtype)
            self.val_block = block
            self.logit_acts = self.acts.copy()
            self.logit_acts[-1] = C.IDENTITY
            self.val_labels = Yv.argmax(axis=1) if net.loss == "cross_entropy" else None

    def epoch(self, perm):
        self.alive[:] = 0
        self.grad_sq[:] = 0
        self.steps = -(-perm.shape[0] // self.batch_size)
        return self.k.train_epoch(self.net.params, self.grads, self.sizes, self.acts, self.loss, self.X, self.Y,
                                  self.sw, perm, self.batch_size, self.opt.kernel, self.hyper,
                                  self.net._opt_state, self.net._opt_step, self.workspace, self.alive,
                                  self.grad_sq)

    def gd(self, steps, tol):
        if self.losses.shape[0] < steps:  # one buffer for the fit: every chunk has the same length but the last
            self.losses = np.zeros(steps)
        losses, last = self.losses[:steps], self.last
        done = self.k.train_gd(self.net.params, self.grads, self.sizes, self.acts, self.loss, self.X, self.Y,
                               self.sw, self.opt.kernel, self.hyper, self.net._opt_state, self.net._opt_step,
                               tol, steps, self.workspace, losses, last)
        return done, losses, float(last[0])

    def validate(self):
        """Validation loss (the same output_loss kernel as training) and metric."""
        Xv, Yv, swv = self.val
        self.k.predict(self.net.params, self.sizes, self.logit_acts, Xv, self.val_logits, self.val_block,
                       self.val_ws)
        value = self.k.output_loss(int(self.acts[-1]), self.loss, self.val_logits, Yv, swv, self.val_out,
                                   self.val_grad)
        if self.net.loss in _CLASSIFICATION:
            if self.net.loss == "cross_entropy":
                metric = metrics.accuracy(self.val_labels, self.val_out.argmax(axis=1), swv)
            else:
                metric = metrics.accuracy(Yv, self.val_out >= 0.5, swv)
        else:
            metric = metrics.r2(Yv, self.val_out, swv)
        return value, metric
