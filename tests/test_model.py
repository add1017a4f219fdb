"""The model API on every backend: accuracy on real data, stopping rules, labels, persistence."""
import warnings

import numpy as np
import pytest

import pynet
from pynet import datasets


def _split(name, seed=0):
    X, y = datasets.load(name)
    return datasets.train_test_split(X, y, 0.25, seed=seed)


def test_digits_reaches_95_percent(backend):
    Xtr, Xte, ytr, yte = _split("digits")
    net = pynet.MLP([64, 64, 10], output="softmax", backend=backend, standardize=True, seed=0)
    net.fit(Xtr, ytr, loss="cross_entropy", optimizer="sgd", lr=0.05, batch_size=32, epochs=40)
    assert net.score(Xte, yte) >= 0.95


def test_iris_reaches_93_percent(backend):
    scores = []
    for seed in range(3):  # 38-row test sets: average over three seeded splits
        Xtr, Xte, ytr, yte = _split("iris", seed)
        net = pynet.MLP([4, 16, 3], output="softmax", backend=backend, standardize=True, seed=seed)
        net.fit(Xtr, ytr, loss="cross_entropy", optimizer="adam", lr=0.01, batch_size=16, epochs=150)
        scores.append(net.score(Xte, yte))
    assert np.mean(scores) >= 0.93, scores


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_sine_regression(backend, activation):
    X, y = datasets.sine(n=400, noise=0.0, seed=1)
    net = pynet.MLP([1, 32, 32, 1], activation=activation, backend=backend, seed=0)
    net.fit(X, y, loss="mse", optimizer="adam", lr=0.01, batch_size=32, epochs=300)
    assert np.mean((net.predict(X) - y) ** 2) < 0.01


def test_linear_regression_by_gd_stops_on_tol(backend):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, (40, 1))
    y = 2.0 * x[:, 0] + 1.0
    line = pynet.MLP([1, 1], activation="identity", backend=backend, dtype="float64")
    h = line.fit(x, y, loss="ssr", optimizer="gd", lr=0.002, tol=1e-6, max_steps=10_000)
    assert h.stop_reason.startswith("tol: every parameter step < 1e-06 at step ")
    assert int(h.stop_reason.rsplit(" ", 1)[1]) == h.epochs < 10_000
    assert line.weights[0][0, 0] == pytest.approx(2.0, abs=1e-3)
    assert line.biases[0][0] == pytest.approx(1.0, abs=1e-3)
    assert h.loss[-1] < h.loss[0]


def test_gd_stops_on_max_steps(backend):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, (40, 1))
    line = pynet.MLP([1, 1], activation="identity", backend=backend, dtype="float64")
    h = line.fit(x, 3 * x[:, 0], loss="ssr", optimizer="gd", lr=1e-4, tol=1e-12, max_steps=25)
    assert h.stop_reason == "max_steps: reached 25 steps"
    assert h.epochs == 25


def test_string_labels_and_classes(backend):
    X, y = datasets.load("iris")
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    net = pynet.MLP([4, 8, 3], output="softmax", backend=backend, standardize=True)
    net.fit(X, names, loss="cross_entropy", optimizer="adam", lr=0.01, epochs=30, batch_size=16)
    assert net.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    pred = net.predict(X)
    assert set(pred) <= set(net.classes_)
    proba = net.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(net.classes_[proba.argmax(axis=1)], pred)
    with pytest.raises(ValueError, match="not seen at fit"):
        net.score(X[:2], np.array(["setosa", "rose"]))


@pytest.mark.parametrize("layers, make_y, loss, output", [
    ([4, 8, 3], lambda y: y, "cross_entropy", "softmax"),                            # integer labels, 3 outputs
    ([4, 8, 3], lambda y: np.array(["a", "b", "c"])[y], "cross_entropy", "softmax"),  # strings
    ([4, 8, 3], lambda y: y.astype(float), "cross_entropy", "softmax"),               # whole-number floats
    ([4, 8, 1], lambda y: y == 2, "binary_cross_entropy", "sigmoid"),                # bools, one output
    ([4, 8, 1], lambda y: np.where(y == 2, "yes", "no"), "binary_cross_entropy", "sigmoid"),
    ([4, 8, 1], lambda y: y + 0.5, "mse", "identity"),                               # real values
    ([4, 8, 1], lambda y: y * 7, "mse", "identity"),                                 # integers of 3 values: counts
])
def test_loss_and_output_follow_the_targets_when_neither_is_given(layers, make_y, loss, output):
    X, y = datasets.load("iris")
    net = pynet.MLP(layers, backend="numpy", standardize=True)
    net.fit(X, make_y(y), epochs=2)
    assert (net.loss, net.output) == (loss, output)


def test_integer_labels_with_no_loss_fit_the_readme_digits_model(backend):
    Xtr, Xte, ytr, yte = _split("digits")
    net = pynet.MLP([64, 32, 10], backend=backend, standardize=True)
    net.fit(Xtr, ytr, lr=0.1, epochs=10)
    assert net.loss == "cross_entropy" and net.score(Xte, yte) > 0.9


def test_targets_that_no_loss_fits_say_which_to_pass():
    X, y = datasets.load("iris")
    with pytest.raises(ValueError, match=r"y: 3 classes but the output layer has 1 unit; give the model 3 outputs"):
        pynet.MLP([4, 1], backend="numpy").fit(X, np.array(["a", "b", "c"])[y])
    with pytest.raises(ValueError, match="for class labels pass loss='cross_entropy'"):
        pynet.MLP([4, 3], backend="numpy").fit(X, y, loss="mse")
    with pytest.raises(ValueError, match="for class labels pass loss='cross_entropy'"):
        pynet.MLP([4, 3], output="identity", backend="numpy").fit(X, y)


def test_binary_sigmoid_output(backend):
    X, y = datasets.xor(n=400, noise=0.05)
    labels = np.where(y == 1, "yes", "no")
    net = pynet.MLP([2, 16, 1], activation="tanh", output="sigmoid", backend=backend, seed=1)
    net.fit(X, labels, loss="binary_cross_entropy", optimizer="adam", lr=0.02, epochs=100, batch_size=32)
    assert net.score(X, labels) > 0.95
    proba = net.predict_proba(X)
    assert proba.shape == (400, 2) and net.classes_.tolist() == ["no", "yes"]


def test_multi_output_regression(backend):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 3))
    Y = np.column_stack([X @ [1.0, -2.0, 0.5], X[:, 0] - X[:, 2]])
    net = pynet.MLP([3, 2], activation="identity", backend=backend, dtype="float64")
    net.fit(X, Y, loss="mse", optimizer="sgd", lr=0.1, epochs=50, batch_size=30)
    assert net.predict(X).shape == (300, 2)
    assert net.score(X, Y) > 0.999


def test_save_load_round_trip(backend, tmp_path):
    Xtr, Xte, ytr, _ = _split("iris")
    names = np.array(["a", "b", "c"])[ytr]
    net = pynet.MLP([4, 8, 3], output="softmax", backend=backend, standardize=True)
    net.fit(Xtr, names, loss="cross_entropy", lr=0.05, epochs=5)
    path = tmp_path / "model.npz"
    net.save(path)
    net2 = pynet.load(path, backend=backend)
    np.testing.assert_array_equal(net2.predict(Xte), net.predict(Xte))
    np.testing.assert_array_equal(net2.predict_proba(Xte), net.predict_proba(Xte))
    assert net2.classes_.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(net2.params, net.params)
    assert net2.weights[0].base is net2.params or np.shares_memory(net2.weights[0], net2.params)


def test_predict_needs_a_fit_or_a_fitted_model_file(tmp_path):
    X, y = datasets.load("iris")
    net = pynet.MLP([4, 8, 3], output="softmax", backend="numpy")
    with pytest.raises(pynet.NotFittedError, match="predict: the model has not been fitted") as info:
        net.predict(X)
    assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)  # as scikit-learn's
    net.save(tmp_path / "unfitted.npz")
    with pytest.raises(pynet.NotFittedError):
        pynet.load(tmp_path / "unfitted.npz").predict(X)
    net.fit(X, y, epochs=1)
    net.save(tmp_path / "fitted.npz")
    np.testing.assert_array_equal(pynet.load(tmp_path / "fitted.npz").predict(X), net.predict(X))


def test_weights_are_views_into_the_flat_buffer():
    net = pynet.MLP([3, 4, 2], backend="numpy")
    assert net.params.ndim == 1 and net.params.size == 3 * 4 + 4 + 4 * 2 + 2
    assert [w.shape for w in net.weights] == [(3, 4), (4, 2)]
    net.params[:] = 0
    assert all(np.all(w == 0) for w in net.weights)
    net.weights[1][0, 0] = 5
    assert net.params[3 * 4 + 4] == 5


def test_same_seed_same_result(backend):
    X, y = datasets.load("iris")
    runs = []
    for _ in range(2):
        net = pynet.MLP([4, 8, 3], output="softmax", backend=backend, seed=42, standardize=True)
        net.fit(X, y, loss="cross_entropy", lr=0.05, epochs=5, validation_split=0.2)
        runs.append(net.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_history_and_early_stopping_restore_best(backend):
    X, y = datasets.load("digits")
    net = pynet.MLP([64, 32, 10], output="softmax", backend=backend, standardize=True)
    snapshots = []
    h = net.fit(X, y, loss="cross_entropy", lr=0.5, epochs=60, validation_split=0.2, early_stopping=True,
                patience=3, callback=lambda epoch, hist: snapshots.append(net.params.copy()))
    assert h.monitor == "val_loss"
    assert len(h.loss) == len(h.val_loss) == len(h.val_metric) == len(h.seconds) == h.epochs
    assert h.stop_reason.startswith("early_stopping") and h.epochs < 60
    assert h.best_loss == min(h.val_loss) and h.val_loss[h.best_epoch] == h.best_loss
    assert h.best_epoch < h.epochs - 1
    np.testing.assert_array_equal(net.params, snapshots[h.best_epoch])


def test_continuing_a_fit_keeps_optimizer_state(backend):
    X, y = datasets.load("iris")
    a = pynet.MLP([4, 8, 3], output="softmax", backend=backend, standardize=True, seed=5)
    a.fit(X, y, loss="cross_entropy", optimizer="adam", lr=0.01, epochs=4, shuffle=False, batch_size=150)
    b = pynet.MLP([4, 8, 3], output="softmax", backend=backend, standardize=True, seed=5)
    b.fit(X, y, loss="cross_entropy", optimizer="adam", lr=0.01, epochs=2, shuffle=False, batch_size=150)
    b.fit(X, y, loss="cross_entropy", optimizer="adam", lr=0.01, epochs=2, shuffle=False, batch_size=150)
    np.testing.assert_allclose(b.params, a.params, rtol=1e-6, atol=1e-7)
    assert b.epochs_trained_ == 4


def test_divergence_stops_with_a_hint_and_finite_weights(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)) * 100
    y = X.sum(axis=1) * 100
    net = pynet.MLP([3, 16, 1], backend=backend, dtype="float32")
    with pytest.warns(pynet.DivergenceWarning, match="lower learning rate"):
        h = net.fit(X, y, loss="ssr", lr=10.0, epochs=50, batch_size=8)
    assert h.stop_reason.startswith("diverged")
    assert np.all(np.isfinite(net.params))


@pytest.mark.parametrize("optimizer, rows", [("gd", 100), ("sgd", 25)])
def test_ssr_divergence_says_to_scale_lr_by_the_rows_or_use_mse(optimizer, rows):
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 3, (100, 1))
    line = pynet.MLP([1, 1], activation="identity", backend="numpy")
    settings = dict(max_steps=100) if optimizer == "gd" else dict(batch_size=25, epochs=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # only the DivergenceWarning: no numpy overflow noise
        warnings.simplefilter("always", pynet.DivergenceWarning)
        with pytest.warns(pynet.DivergenceWarning, match=rf"ssr is a sum over the {rows} rows of each step.*"
                                                         rf"scale lr by 1/{rows} .*or use loss='mse'"):
            h = line.fit(X, 2 * X[:, 0] + 1, loss="ssr", optimizer=optimizer, lr=0.1, **settings)
    assert h.stop_reason.startswith("diverged")
    with pytest.warns(pynet.DivergenceWarning) as record:  # other losses: no advice about sums
        pynet.MLP([1, 1], activation="identity", backend="numpy").fit(X, 2 * X[:, 0] + 1, loss="mse", lr=100.0,
                                                                      optimizer="gd", max_steps=100)
    assert "ssr" not in str(record[0].message)


def test_sample_weight_equals_repeated_rows(backend):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 2))
    y = X @ [1.0, 2.0]
    w = rng.integers(1, 4, 20)
    a = pynet.MLP([2, 1], activation="identity", backend=backend, dtype="float64")
    a.fit(X, y, loss="mse", optimizer="gd", lr=0.05, max_steps=30, tol=0.0, sample_weight=w.astype(float))
    b = pynet.MLP([2, 1], activation="identity", backend=backend, dtype="float64")
    b.fit(np.repeat(X, w, axis=0), np.repeat(y, w), loss="mse", optimizer="gd", lr=0.05, max_steps=30, tol=0.0)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-9)


def test_dtype_is_kept_end_to_end(backend):
    X, y = datasets.load("iris")
    for dtype in ("float32", "float64"):
        net = pynet.MLP([4, 5, 3], output="softmax", backend=backend, dtype=dtype)
        net.fit(X, y, loss="cross_entropy", epochs=1)
        assert net.params.dtype == dtype and net.predict_proba(X).dtype == dtype


def test_fit_does_not_modify_caller_arrays(backend):
    X, y = datasets.load("iris")
    X0, y0 = X.copy(), y.copy()
    pynet.MLP([4, 5, 3], output="softmax", backend=backend, standardize=True).fit(X, y, epochs=2)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_dead_relu_detector_fires_on_a_dead_network(backend):
    X, y = datasets.load("iris")
    net = pynet.MLP([4, 16, 3], output="softmax", backend=backend, standardize=True)
    net.biases[0][:] = -100.0  # every hidden ReLU is 0 for every sample
    with pytest.warns(pynet.DeadUnitWarning, match="hidden layer 1: 100%"):
        h = net.fit(X, y, loss="cross_entropy", lr=0.05, epochs=2)
    assert h.dead_fraction[0] == [1.0]


def test_dead_relu_detector_is_quiet_on_a_healthy_network(backend):
    X, y = datasets.load("iris")
    net = pynet.MLP([4, 16, 3], output="softmax", backend=backend, standardize=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pynet.PynetWarning)
        h = net.fit(X, y, loss="cross_entropy", lr=0.05, epochs=5)
    assert all(f < 0.5 for row in h.dead_fraction for f in row)
    assert len(h.grad_norm) == h.epochs and all(len(g) == 2 and g[0] > 0 for g in h.grad_norm)


def test_vanishing_gradient_detector(backend):
    X, y = datasets.load("iris")
    net = pynet.MLP([4, 16, 16, 16, 16, 3], activation="sigmoid", output="softmax", backend=backend,
                    standardize=True)
    for W in net.weights[:-1]:
        W *= 0.05  # tiny weights: every sigmoid layer scales the gradient by about 0.05/4
    with pytest.warns(pynet.VanishingGradientWarning, match="vanishing gradients"):
        net.fit(X, y, loss="cross_entropy", lr=0.01, epochs=1)


def test_dead_units_detected_in_full_batch_gd(backend):
    X, y = datasets.load("iris")
    net = pynet.MLP([4, 8, 3], output="softmax", backend=backend, standardize=True)
    net.biases[0][:4] = -100.0
    with pytest.warns(pynet.DeadUnitWarning, match="50%"):
        h = net.fit(X, y, loss="cross_entropy", optimizer="gd", lr=0.1, max_steps=10, tol=0.0)
    assert h.dead_fraction[-1] == [0.5]


# ---------------------------------------------------------------------------- full-batch sgd / adam
def _full_batch_problem():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((90, 4))
    return X, np.tanh(X @ rng.standard_normal((4, 2)))


@pytest.mark.parametrize("batch_size", [None, "full", 90])
def test_full_batch_adam_is_the_full_batch_kernel(backend, batch_size):
    import kernels
    from kernels import contract as C

    X, Y = _full_batch_problem()
    net = pynet.MLP([4, 8, 2], activation="tanh", backend=backend, dtype="float64", seed=3)
    start = net.params.copy()
    h = net.fit(X, Y, loss="mse", optimizer="adam", lr=0.01, batch_size=batch_size, epochs=120)
    assert h.epochs == 120 and net.epochs_trained_ == 120 and h.stop_reason == "epochs: ran all 120 epochs"
    # the same 120 steps in one train_gd call from the same start: bit for bit (tol 0: no early stop)
    k, P = kernels.load(backend), start.shape[0]
    params, state, step, losses = start.copy(), np.zeros(2 * P), np.zeros(1, np.int64), np.zeros(120)
    sizes = np.array([4, 8, 2], np.int64)
    ran = k.train_gd(params, np.zeros(P), sizes, np.array([C.TANH, C.IDENTITY], np.int64), C.MSE, X, Y, None,
                     C.ADAM, np.array([0.01, 0, 0, 0, 0.9, 0.999, 1e-8]), state, step, 0.0, 120,
                     np.zeros(C.train_workspace_size(sizes, 90)), losses, np.zeros(1))
    assert ran == 120 and step[0] == 120
    assert np.array_equal(net.params, params)
    assert np.array_equal(h.loss, losses)


def test_full_batch_sgd_equals_gd_without_a_tolerance(backend):
    X, Y = _full_batch_problem()
    a = pynet.MLP([4, 8, 2], activation="sigmoid", backend=backend, seed=1)
    b = pynet.MLP([4, 8, 2], activation="sigmoid", backend=backend, seed=1)
    ha = a.fit(X, Y, loss="mse", optimizer="sgd", lr=0.1, batch_size="full", epochs=30)
    hb = b.fit(X, Y, loss="mse", optimizer="gd", lr=0.1, tol=0.0, max_steps=30)
    assert np.array_equal(a.params, b.params) and ha.loss == hb.loss
    assert ha.stop_reason == "epochs: ran all 30 epochs" and hb.stop_reason == "max_steps: reached 30 steps"


def test_full_batch_with_validation_and_early_stopping(backend):
    X, Y = _full_batch_problem()
    net = pynet.MLP([4, 8, 2], activation="tanh", backend=backend, seed=0)
    h = net.fit(X, Y, loss="mse", optimizer="adam", lr=0.05, batch_size=None, epochs=400, validation_split=0.2,
                early_stopping=True, patience=3, min_delta=1.0)
    assert h.stop_reason.startswith("early_stopping") and "for 3 epochs (best epoch 1)" in h.stop_reason
    assert h.epochs == len(h.val_loss) == 4


def test_batch_size_names_the_argument():
    X, Y = _full_batch_problem()
    net = pynet.MLP([4, 2], backend="numpy")
    with pytest.raises(ValueError, match="batch_size: expected an integer, None or 'full', got 'all'"):
        net.fit(X, Y, batch_size="all")
    with pytest.raises(ValueError, match="batch_size: 91 is larger than the 90 training rows"):
        net.fit(X, Y, batch_size=91)
    with pytest.raises(ValueError, match="batch_size: must be >= 1"):
        net.fit(X, Y, batch_size=0)


def test_standardisation_statistics_and_inputs():
    rng = np.random.default_rng(5)
    X = (rng.standard_normal((3000, 40)) * rng.uniform(0.1, 50, 40) + rng.uniform(-1e3, 1e3, 40)).astype(np.float32)
    X[:, 7] = 2.5  # a constant column gets scale 1
    before = X.copy()
    net = pynet.MLP([40, 3, 1], backend="numpy", standardize=True)
    net.fit(X, rng.standard_normal(3000), epochs=1, loss="mse", lr=1e-3)
    X64 = X.astype(np.float64)
    assert np.allclose(net.mean_, X64.mean(axis=0), rtol=1e-5, atol=0)
    std = X64.std(axis=0)
    std[7] = 1.0
    assert np.allclose(net.scale_, std, rtol=1e-5, atol=0) and net.scale_[7] == 1.0
    assert net.mean_.dtype == net.scale_.dtype == np.float32
    assert np.array_equal(net._inputs(X), (X - net.mean_) / net.scale_)  # what fit and predict feed the kernels
    assert np.array_equal(X, before)  # the caller's X is never modified


@pytest.mark.parametrize("diagnostics", [True, False])
def test_diagnostics_off_spares_the_kernel_its_diagnostic_work(backend, diagnostics, monkeypatch):
    import kernels

    k = kernels.load(backend)
    seen = []
    real = k.train_epoch

    def spy(*args):
        seen.append((args[15].shape[0], args[16].shape[0]))  # alive, grad_sq: length 0 = skipped
        return real(*args)

    monkeypatch.setattr(k, "train_epoch", spy)
    X, Y = _full_batch_problem()
    net = pynet.MLP([4, 8, 5, 2], backend=backend, seed=0)
    h = net.fit(X, Y, loss="mse", batch_size=16, epochs=2, diagnostics=diagnostics)
    assert seen == [(13, 3)] * 2 if diagnostics else seen == [(0, 0)] * 2
    assert len(h.dead_fraction) == len(h.grad_norm) == (2 if diagnostics else 0)


@pytest.mark.parametrize("steps, every", [(100, 10), (1000, 20), (7, 7)])
def test_full_batch_steps_run_in_chunks_of_at_least_ten(steps, every):
    """A loss per step always; diagnostics (and progress) once per kernel call, about 50 calls per fit but
    never fewer than 10 steps per call (each call costs checks and a probe pass)."""
    X, Y = _full_batch_problem()
    net = pynet.MLP([4, 8, 2], activation="sigmoid", backend="numpy", seed=0)
    h = net.fit(X, Y, loss="mse", optimizer="gd", lr=0.01, tol=0.0, max_steps=steps)
    assert h.epochs == steps
    want = list(range(every - 1, steps, every))
    assert h.diagnostic_epochs == (want if want[-1] == steps - 1 else want + [steps - 1])
