"""Bad input, everywhere: one table of calls that must raise a specific exception whose message names
the argument — model API, kernels of every backend, CLI, CSV files and model files — and a table of
awkward inputs that must be accepted (converted by copying) with the same result as clean ones."""
import json
import subprocess
import sys

import numpy as np
import pytest

import kernels
import pynet
from kernels import contract as C
from pynet import datasets

X4, Y3 = datasets.load("iris")
RNG = np.random.default_rng(0)


def _net(**kw):
    return pynet.MLP([4, 5, 3], output="softmax", backend="numpy", **kw)


def _fitted():
    net = _net()
    net.fit(X4, Y3, epochs=1)
    return net


def _fitted_regressor():
    net = pynet.MLP([4, 1], backend="numpy")
    net.fit(X4, X4[:, 0], epochs=1)
    return net


def _failed_fit():
    net = _net()
    try:
        net.fit(X4, Y3, lr=-1.0)
    except ValueError:
        pass
    return net


def fit(X=X4, y=Y3, **kw):
    return lambda: _net().fit(X, y, **kw)


def _with(X, index, value):
    X = X.copy()
    X[index] = value
    return X


MODEL_CASES = [
    ("X NaN", fit(X=_with(X4, (0, 0), np.nan)), ValueError, "X: contains NaN"),
    ("X +inf", fit(X=_with(X4, (3, 2), np.inf)), ValueError, r"X: contains NaN or infinity \(first at index \(3, 2\)"),
    ("X -inf", fit(X=_with(X4, (1, 1), -np.inf)), ValueError, "X: contains NaN or infinity"),
    ("y NaN (regression)", lambda: pynet.MLP([4, 1], backend="numpy").fit(X4, _with(Y3.astype(float), 0, np.nan)),
     ValueError, "y: contains NaN"),
    ("y inf (regression)", lambda: pynet.MLP([4, 1], backend="numpy").fit(X4, _with(Y3.astype(float), 0, np.inf)),
     ValueError, "y: contains NaN"),
    ("X 1-D", fit(X=X4[:, 0]), ValueError, r"X: expected a 2-D array, got 1-D .*reshape\(-1, 1\)"),
    ("X 3-D", fit(X=X4[:, :, None]), ValueError, "X: expected a 2-D array, got 3-D"),
    ("y 2-D labels", fit(y=np.ones((150, 2), int)), ValueError, "y: expected 1-D labels"),
    ("rows differ", fit(y=Y3[:-1]), ValueError, "y: has 149 rows but X has 150"),
    ("features differ at predict", lambda: _fitted().predict(X4[:, :3]), ValueError,
     "X: has 3 features but the model's input layer has 4"),
    ("empty X", fit(X=X4[:0], y=Y3[:0]), ValueError, r"X: is empty \(0 rows\)"),
    ("zero features", lambda: pynet.MLP([0, 3], backend="numpy"), ValueError, r"layers\[0\]: must be >= 1"),
    ("zero-column X", lambda: _fitted().predict(np.ones((3, 0))), ValueError, "X: has 0 columns"),
    ("unseen label in score", lambda: _fitted().score(X4[:2], np.array([0, 7])), ValueError,
     "y: label 7 was not seen at fit"),
    ("too many classes", fit(y=np.arange(150) % 5), ValueError, "y: found 5 classes but the output layer has 3"),
    ("complex X", fit(X=X4.astype(complex)), TypeError, "X: complex values are not supported"),
    ("string X", fit(X=X4.astype(str)), TypeError, "X: expected numbers, got dtype <U"),
    ("object X with text", fit(X=np.array([[1.0, "a", 2.0, 3.0]] * 150, dtype=object)), TypeError,
     r"X: non-numeric value 'a' at index \(0, 1\)"),
    ("ragged X", fit(X=[[1.0, 2.0], [3.0]]), ValueError, "X: cannot be read as an array"),
    ("batch_size 0", fit(batch_size=0), ValueError, "batch_size: must be >= 1"),
    ("batch_size negative", fit(batch_size=-4), ValueError, "batch_size: must be >= 1"),
    ("batch_size > rows", fit(batch_size=151), ValueError, "batch_size: 151 is larger than the 150 training rows"),
    ("batch_size float", fit(batch_size=3.5), TypeError, "batch_size: expected an integer"),
    ("lr 0", fit(lr=0.0), ValueError, "lr: must be a finite number > 0"),
    ("lr negative", fit(lr=-0.1), ValueError, "lr: must be a finite number > 0"),
    ("lr NaN", fit(lr=float("nan")), ValueError, "lr: must be a finite number > 0"),
    ("lr string", fit(lr="fast"), TypeError, "lr: expected a number"),
    ("epochs 0", fit(epochs=0), ValueError, "epochs: must be >= 1"),
    ("epochs negative", fit(epochs=-1), ValueError, "epochs: must be >= 1"),
    ("momentum 1.5", fit(momentum=1.5), ValueError, r"momentum: must be in \[0.0, 1.0\)"),
    ("nesterov without momentum", fit(nesterov=True), ValueError, "nesterov: Nesterov momentum needs momentum > 0"),
    ("unknown activation", lambda: pynet.MLP([4, 5, 3], activation="relu6"), ValueError,
     "activation: unknown name 'relu6'; valid names are identity, relu, softplus, sigmoid, tanh"),
    ("unknown output", lambda: pynet.MLP([4, 3], output="argmax"), ValueError, "output: unknown name 'argmax'"),
    ("unknown loss", fit(loss="hinge"), ValueError,
     "loss: unknown name 'hinge'; valid names are ssr, mse, binary_cross_entropy, cross_entropy"),
    ("loss incompatible with output", fit(loss="binary_cross_entropy"), ValueError,
     "loss: 'binary_cross_entropy' needs output 'sigmoid'"),
    ("unknown optimizer", fit(optimizer="rmsprop"), ValueError,
     "optimizer: unknown name 'rmsprop'; valid names are sgd, gd, adam"),
    ("unknown backend", lambda: pynet.MLP([4, 3], backend="gpu"), ValueError,
     "backend: unknown backend 'gpu'; valid names are auto, c, numba, numpy"),
    ("layers too short", lambda: pynet.MLP([4]), ValueError, "layers: need at least"),
    ("dtype float16", lambda: pynet.MLP([4, 3], dtype="float16"), ValueError, "dtype: must be float32 or float64"),
    ("activation count", lambda: pynet.MLP([4, 5, 5, 3], activation=["relu"]), ValueError,
     r"activation: need one name per hidden layer \(2\)"),
    ("sample_weight length", fit(sample_weight=np.ones(10)), ValueError, "sample_weight: has 10 entries"),
    ("sample_weight negative", fit(sample_weight=-np.ones(150)), ValueError, "sample_weight: weights must be >= 0"),
    ("validation_split 1", fit(validation_split=1.0), ValueError, r"validation_split: must be a number in \[0, 1\)"),
    ("validation too small", lambda: _net().fit(X4[:3], Y3[:3], validation_split=0.1, batch_size=1), ValueError,
     "validation_split: 0.1 of 3 rows leaves an empty"),
    ("tol without gd", fit(tol=1e-3), ValueError, "tol: tol and max_steps apply to optimizer='gd' only"),
    ("max_steps 0", fit(optimizer="gd", max_steps=0), ValueError, "max_steps: must be an integer >= 1"),
    ("settings on an optimizer object", fit(optimizer=pynet.SGD(lr=0.1), lr=0.2), ValueError,
     "optimizer: pass lr to the optimizer object"),
    ("setting of another optimizer", fit(optimizer="adam", momentum=0.9), ValueError,
     "momentum: not a setting of optimizer 'adam'"),
    ("predict_proba on a regressor", lambda: _fitted_regressor().predict_proba(X4), ValueError,
     "predict_proba: the model is not a classifier"),
    ("score before fit", lambda: _net().score(X4, Y3), pynet.NotFittedError, "score: the model has not been fitted"),
    ("predict before fit", lambda: _net().predict(X4), pynet.NotFittedError,
     r"predict: the model has not been fitted; call fit\(X, y\) first"),
    ("predict_proba before fit", lambda: _net().predict_proba(X4), pynet.NotFittedError,
     "predict_proba: the model has not been fitted"),
    ("predict after a fit that failed", lambda: _failed_fit().predict(X4), pynet.NotFittedError,
     "predict: the model has not been fitted"),
    ("predict after reset", lambda: _fitted().reset().predict(X4), pynet.NotFittedError,
     "predict: the model has not been fitted"),
    ("callback not callable", fit(callback=3), TypeError, "callback: must be callable"),
]


def _kernel_args():
    n, i, o = 4, 3, 2
    f = lambda *s: np.ones(s)  # noqa: E731
    return n, i, o, f


def _kernel(name, *args, backend):
    return lambda: getattr(kernels.load(backend), name)(*args)


def kernel_cases(backend):
    n, i, o, f = _kernel_args()
    sizes, acts = np.array([3, 4, 2], np.int64), np.array([C.RELU, C.SOFTMAX], np.int64)
    P = C.n_params(sizes)
    ro = f(n, o)
    ro.flags.writeable = False

    def epoch(**change):
        args = dict(params=np.zeros(P), grads=np.zeros(P), sizes=sizes, acts=acts, loss=C.CE, X=f(n, i),
                    Y=np.eye(2)[[0, 1, 0, 1]], sw=None, perm=np.arange(n, dtype=np.int64), batch_size=2, opt=C.SGD,
                    hyper=np.array([0.1, 0, 0, 0, 0.9, 0.999, 1e-8]), state=np.zeros(2 * P),
                    step=np.zeros(1, np.int64), workspace=np.zeros(C.train_workspace_size(sizes, 2)),
                    alive=np.zeros(4, np.int64), grad_sq=np.zeros(2))
        args.update(change)
        return _kernel("train_epoch", *args.values(), backend=backend)

    return [
        ("output shape", _kernel("dense_forward", f(n, i), f(i, o), f(o), f(n, o + 1), backend=backend), ValueError,
         "Z: axis 1 has length 3 but W implies 2"),
        ("output dtype", _kernel("dense_forward", f(n, i), f(i, o), f(o), np.ones((n, o), np.float32),
                                 backend=backend), TypeError, "Z: dtype float32 differs from the call's float64"),
        ("float16 input", _kernel("dense_forward", f(n, i).astype(np.float16), f(i, o), f(o), f(n, o),
                                  backend=backend), TypeError, "X: dtype must be float32 or float64"),
        ("integer input", _kernel("dense_forward", np.ones((n, i), int), f(i, o), f(o), f(n, o), backend=backend),
         TypeError, "X: dtype must be float32 or float64"),
        ("Fortran input", _kernel("dense_forward", np.asfortranarray(f(n, i)), f(i, o), f(o), f(n, o),
                                  backend=backend), ValueError, "X: array must be C-contiguous"),
        ("strided input", _kernel("dense_forward", f(n, 2 * i)[:, ::2], f(i, o), f(o), f(n, o), backend=backend),
         ValueError, "X: array must be C-contiguous"),
        ("read-only output", _kernel("dense_forward", f(n, i), f(i, o), f(o), ro, backend=backend), ValueError,
         "Z: output array is read-only"),
        ("output None", _kernel("softmax", ro.copy(), None, backend=backend), TypeError, "P: an array is required"),
        ("list input", _kernel("softmax", [[1.0, 2.0]], f(1, 2), backend=backend), TypeError,
         "Z: expected a numpy.ndarray, got list"),
        ("wrong argument count", _kernel("softmax", f(1, 2), backend=backend), TypeError,
         r"softmax\(\) takes 2 arguments \(Z, P\), got 1"),
        ("activation code out of range", _kernel("activation_forward", 9, f(n, o), f(n, o), backend=backend),
         ValueError, "act: code 9 out of range; valid names are identity"),
        ("softmax is not elementwise", _kernel("activation_forward", "softmax", f(n, o), f(n, o), backend=backend),
         ValueError, "act: softmax is not elementwise"),
        ("loss code out of range", _kernel("output_loss", 0, 7, f(n, o), f(n, o), None, f(n, o), f(n, o),
                                           backend=backend), ValueError, "loss: code 7 out of range"),
        ("loss/output mismatch", _kernel("output_loss", "identity", "cross_entropy", f(n, o), f(n, o), None,
                                         f(n, o), f(n, o), backend=backend), ValueError,
         "act: loss cross_entropy cannot follow output activation identity"),
        ("perm out of range", epoch(perm=np.array([0, 1, 4], np.int64)), ValueError,
         r"perm: row indices must be in 0\.\.3"),
        ("perm negative", epoch(perm=np.array([-1], np.int64)), ValueError, r"perm: row indices must be in 0\.\.3"),
        ("perm dtype", epoch(perm=np.arange(n, dtype=np.int32)), TypeError, "perm: dtype must be int64"),
        ("params length", epoch(params=np.zeros(P + 1), grads=np.zeros(P + 1), state=np.zeros(2 * P + 2)),
         ValueError, "params: length 27 does not match sizes"),
        ("workspace too small", epoch(workspace=np.zeros(5)), ValueError, "workspace: needs at least"),
        ("batch_size 0 (kernel)", epoch(batch_size=0), ValueError, "batch_size: must be >= 1"),
        ("hyper lr NaN", epoch(hyper=np.array([np.nan, 0, 0, 0, 0.9, 0.999, 1e-8])), ValueError,
         "hyper: every entry must be finite"),
        ("hyper lr 0", epoch(hyper=np.array([0.0, 0, 0, 0, 0.9, 0.999, 1e-8])), ValueError, "hyper: lr must be > 0"),
        ("softmax in a hidden layer", epoch(acts=np.array([C.SOFTMAX, C.SOFTMAX], np.int64)), ValueError,
         "acts: softmax is allowed only on the output layer"),
        ("labels not one column per output", epoch(Y=np.ones((n, 3))), ValueError, "Y: has 3 columns but the output layer has 2"),
        ("sample weights negative", epoch(sw=-np.ones(n)), ValueError, "sw: sample weights must be finite"),
        ("sample weights all zero", epoch(sw=np.zeros(n)), ValueError, "sw: sample weights must be finite"),
        ("Adam step 0", _kernel("adam_update", f(3), f(3), f(3), f(3), 0, 0.1, 0.9, 0.999, 1e-8, 0.0,
                                backend=backend), ValueError, "t: Adam's step counter starts at 1"),
        ("Adam beta2 >= 1", _kernel("adam_update", f(3), f(3), f(3), f(3), 1, 0.1, 0.9, 10.0**12, 1e-8, 0.0,
                                    backend=backend), ValueError, r"beta2: must be in \[0, 1\)"),
        ("SGD momentum 1", _kernel("sgd_update", f(3), f(3), f(3), 0.1, 1.0, 0, 0.0, backend=backend), ValueError,
         r"momentum: must be in \[0, 1\)"),
        ("lr infinite (kernel)", _kernel("sgd_update", f(3), f(3), f(3), np.inf, 0.0, 0, 0.0, backend=backend),
         ValueError, "lr: must be finite"),
    ]


@pytest.mark.parametrize("label, call, exc, message", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_model_api_bad_input(label, call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_kernel_bad_input(backend):
    cases = kernel_cases(backend)
    assert len(cases) >= 25
    for label, call, exc, message in cases:
        with pytest.raises(exc, match=message):
            call()


def test_kernel_output_overlapping_an_input_is_rejected(backend):
    X = np.ones((4, 4))
    with pytest.raises(ValueError, match="Z: output overlaps X"):
        kernels.load(backend).dense_forward(X, np.ones((4, 4)), np.ones(4), X)


CSV_CASES = [
    ("a,b,y\n1,2,0\n", ["--target", "label"], "--target|target: no column 'label'"),
    ("a,b,y\n1,2,0\n3,4\n", [], "line 3 has 2 cells but the header has 3"),
    ("a,b,y\n1,2,0\n3,oops,1\n", [], "non-numeric value 'oops' at line 3, column 'b'"),
    ("a,b,y\n" + "1,2,0\n3,4,1\n" * 20 + "5,nan,0\n", [], "non-finite value 'nan' at line 42, column 'b'"),
    ("", [], "is empty"),
    ("a,b,y\n", [], "has a header but no data rows"),
]


@pytest.mark.parametrize("text, extra, message", CSV_CASES, ids=["missing target", "ragged", "non-numeric",
                                                                  "NaN after the split", "empty", "header only"])
def test_cli_bad_csv_is_one_line(tmp_path, text, extra, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "pynet.cli", "train", "--csv", str(path), *extra],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert __import__("re").search(message, out.stderr), out.stderr


@pytest.mark.parametrize("args, message", [
    (["--dataset", "iris", "--batch-size", "0"], "--batch-size"),
    (["--dataset", "iris", "--epochs", "-2"], "--epochs"),
    (["--dataset", "iris", "--lr", "nan"], "--lr"),
    (["--dataset", "iris", "--activation", "swish"], "--activation"),
    (["--dataset", "iris", "--optimizer", "lbfgs"], "--optimizer"),
    (["--dataset", "iris", "--test-fraction", "1.5"], "--test-fraction"),
])
def test_cli_bad_options(args, message):
    out = subprocess.run([sys.executable, "-m", "pynet.cli", "train", *args], capture_output=True, text=True)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_bad_model_files(tmp_path):
    net = _fitted()
    good = tmp_path / "m.npz"
    net.save(good)
    raw = good.read_bytes()
    cases = {"truncated": raw[: len(raw) // 3], "garbage": b"not a zip file at all", "empty": b""}
    for label, data in cases.items():
        (tmp_path / f"{label}.npz").write_bytes(data)
        with pytest.raises(pynet.ModelFileError, match="path: "):
            pynet.load(tmp_path / f"{label}.npz")
    with np.load(good) as z:
        arrays = dict(z)
    meta = json.loads(str(arrays["meta"]))
    for label, change in {"version": {"format_version": 2}, "layers": {"layers": [4, 9, 3]},
                          "format": {"format": "other"}}.items():
        m = dict(meta, **change)
        np.savez(tmp_path / f"{label}.npz", **dict(arrays, meta=np.array(json.dumps(m))))
        with pytest.raises(pynet.ModelFileError):
            pynet.load(tmp_path / f"{label}.npz")
    # a pickled object inside the file is never unpickled
    np.savez(tmp_path / "pickled.npz", params=np.array([object()], dtype=object), meta=arrays["meta"])
    with pytest.raises(pynet.ModelFileError):
        pynet.load(tmp_path / "pickled.npz")


ACCEPTED = [
    ("float16", lambda X: X.astype(np.float16)),
    ("int", lambda X: np.rint(X * 10).astype(np.int64)),
    ("bool", lambda X: X > 3),
    ("object numbers", lambda X: X.astype(object)),
    ("Fortran order", np.asfortranarray),
    ("non-contiguous", lambda X: np.repeat(X, 2, axis=1)[:, ::2]),
    ("read-only", lambda X: _readonly(X)),
    ("list of lists", lambda X: X.tolist()),
]


def _readonly(X):
    X = X.copy()
    X.flags.writeable = False
    return X


@pytest.mark.parametrize("label, convert", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_awkward_inputs_are_converted(label, convert, backend):
    Xc = convert(X4)
    clean = np.asarray(np.asarray(Xc, dtype=np.float64), dtype=np.float32)
    a = pynet.MLP([4, 5, 3], output="softmax", backend=backend, seed=1)
    a.fit(Xc, Y3, epochs=2)
    b = pynet.MLP([4, 5, 3], output="softmax", backend=backend, seed=1)
    b.fit(clean, Y3, epochs=2)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.predict_proba(Xc), b.predict_proba(clean))


def _sk(cls, **kw):
    sk = pytest.importorskip("pynet.sklearn")
    return getattr(sk, cls)(**kw)


SKLEARN_CASES = [
    ("hidden size 0", lambda: _sk("MLPClassifier", hidden_layer_sizes=(0,)).fit(X4, Y3), ValueError,
     "hidden_layer_sizes"),
    ("unknown solver", lambda: _sk("MLPClassifier", solver="lbfgs").fit(X4, Y3), ValueError, "solver"),
    ("unknown activation", lambda: _sk("MLPRegressor", activation="gelu").fit(X4, Y3.astype(float)), ValueError,
     "activation"),
    ("negative alpha", lambda: _sk("MLPRegressor", alpha=-1.0).fit(X4, Y3.astype(float)), ValueError, "alpha"),
    ("predict before fit", lambda: _sk("MLPClassifier").predict(X4), ValueError, "not fitted"),
    ("NaN in X", lambda: _sk("MLPClassifier").fit(_with(X4, (0, 0), np.nan), Y3), ValueError, "NaN"),
]


@pytest.mark.parametrize("label, call, exc, message", SKLEARN_CASES, ids=[c[0] for c in SKLEARN_CASES])
def test_sklearn_estimators_bad_input(label, call, exc, message):
    with pytest.raises(exc, match=message):
        call()
