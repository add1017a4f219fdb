"""pynet.sklearn: scikit-learn's estimator checks, drop-in use, the parameter mapping, accuracy parity."""
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from pynet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# Small networks keep the ~50 checks per estimator quick; the defaults are exercised elsewhere below.
CHECKED = [MLPClassifier(hidden_layer_sizes=(20,), max_iter=100),
           MLPRegressor(hidden_layer_sizes=(20,), max_iter=100),
           MLPClassifier(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=0.05, max_iter=100),
           MLPRegressor(hidden_layer_sizes=(20,), solver="gd", learning_rate_init=0.05, max_iter=100)]


@parametrize_with_checks(CHECKED)
def test_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_import_pynet_does_not_import_sklearn():
    code = "import sys, pynet; pynet.MLP([2, 1]); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]


def test_pipeline_gridsearch_clone_pickle(iris):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.05,
                                                         max_iter=60, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3).fit(X, y)
    assert grid.best_score_ > 0.85
    est = grid.best_estimator_
    assert set(est.predict(X)) <= set(y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    clf = again[-1]
    assert np.shares_memory(clf.coefs_[0], clf.model_.params)  # views survive pickling
    fresh = clone(est)
    assert not hasattr(fresh[-1], "coefs_") and fresh.get_params()["mlpclassifier__max_iter"] == 60


def test_fitted_attributes_and_views(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(5, 4), max_iter=30, random_state=1).fit(X, y)
    assert [w.shape for w in clf.coefs_] == [(4, 5), (5, 4), (4, 3)]
    assert [b.shape for b in clf.intercepts_] == [(5,), (4,), (3,)]
    assert all(np.shares_memory(w, clf.model_.params) for w in clf.coefs_ + clf.intercepts_)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    assert clf.n_features_in_ == 4 and clf.n_iter_ == len(clf.loss_curve_) == 30
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.loss_ == clf.loss_curve_[-1]
    assert clf.stop_reason_.startswith("epochs") and clf.out_activation_ == "softmax"
    assert clf.t_ == 30 * X.shape[0]


def test_warm_start_and_partial_fit_keep_optimizer_state(iris):
    X, y = iris
    X = StandardScaler().fit_transform(X)
    one = MLPClassifier(hidden_layer_sizes=(6,), max_iter=8, n_iter_no_change=100, random_state=0,
                        shuffle=False).fit(X, y)
    two = MLPClassifier(hidden_layer_sizes=(6,), max_iter=4, n_iter_no_change=100, random_state=0,
                        shuffle=False, warm_start=True).fit(X, y).fit(X, y)
    np.testing.assert_allclose(two.model_.params, one.model_.params, rtol=1e-12)  # Adam moments kept
    assert two.n_iter_ == 8 and len(two.loss_curve_) == 8
    part = MLPClassifier(hidden_layer_sizes=(6,), random_state=0, shuffle=False)
    for _ in range(8):
        part.partial_fit(X, y, classes=np.unique(y))
    np.testing.assert_allclose(part.model_.params, one.model_.params, rtol=1e-12)
    assert part.n_iter_ == 8
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="classes"):
        part.partial_fit(X[:3], np.array(["setosa", "versicolor", "other"]))


def test_sample_weight_for_every_loss(iris):
    X, y = iris
    X = StandardScaler().fit_transform(X)
    rng = np.random.default_rng(0)
    sw = rng.integers(0, 3, X.shape[0]).astype(float)
    keep = sw > 0
    tasks = [(MLPClassifier, y), (MLPClassifier, y == "setosa"),
             (MLPClassifier, np.c_[y == "setosa", y == "virginica"].astype(int)), (MLPRegressor, X[:, 0] * 2)]
    for cls, target in tasks:
        kw = dict(hidden_layer_sizes=(6,), solver="gd", learning_rate_init=0.1, max_iter=20, random_state=0)
        weighted = cls(**kw).fit(X, target, sample_weight=sw)
        repeated = cls(**kw).fit(np.repeat(X, sw.astype(int), axis=0), np.repeat(target, sw.astype(int), axis=0))
        np.testing.assert_allclose(weighted.model_.params, repeated.model_.params, rtol=1e-9, atol=1e-12)
        dropped = cls(**kw).fit(X[keep], target[keep], sample_weight=sw[keep])
        np.testing.assert_allclose(weighted.model_.params, dropped.model_.params, rtol=1e-9, atol=1e-12)


def test_multilabel_and_multioutput(iris):
    X, y = iris
    X = StandardScaler().fit_transform(X)
    Y = np.c_[y == "setosa", y != "virginica"].astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(10,), learning_rate_init=0.05, max_iter=100, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == (150, 2) and clf.predict_proba(X).shape == (150, 2)
    assert clf.score(X, Y) > 0.9 and clf.out_activation_ == "logistic"
    reg = MLPRegressor(hidden_layer_sizes=(10,), learning_rate_init=0.05, max_iter=100, random_state=0)
    assert reg.fit(X[:, :2], X[:, 2:]).predict(X[:, :2]).shape == (150, 2)


def test_dtype_and_backend(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, backend="numpy").fit(X.astype(np.float32), y)
    assert clf.coefs_[0].dtype == np.float32 and clf.model_.backend == "numpy"
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, dtype="float32").fit(X[:, :3], X[:, 3])
    assert reg.predict(X[:, :3]).dtype == np.float32
    with pytest.raises(ValueError, match="backend"):
        MLPClassifier(backend="gpu").fit(X, y)


@pytest.mark.parametrize("params, match", [({"solver": "lbfgs"}, "solver"), ({"activation": "elu"}, "activation"),
                                           ({"alpha": -1}, "alpha"), ({"batch_size": 0}, "batch_size"),
                                           ({"hidden_layer_sizes": (3, 0)}, "hidden_layer_sizes"),
                                           ({"early_stopping": True, "validation_fraction": 1.0},
                                            "validation_fraction")])
def test_bad_parameters_name_themselves(iris, params, match):
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(*iris)


def test_early_stopping_restores_best_and_records_scores(iris):
    X, y = iris
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.05, max_iter=300, early_stopping=True,
                        n_iter_no_change=5, random_state=0).fit(X, y)
    assert clf.stop_reason_.startswith("early_stopping") and clf.n_iter_ < 300
    assert len(clf.validation_scores_) == clf.n_iter_ and clf.best_validation_score_ > 0.8


def test_parameter_mapping_matches_sklearn_updates():
    """From the same weights and batch order, pynet's updates equal scikit-learn's (alpha = 0)."""
    X, y = load_diabetes(return_X_y=True)
    y = (y - y.mean()) / y.std()
    Xc, yc = load_breast_cancer(return_X_y=True)
    Xc = StandardScaler().fit_transform(Xc)
    cases = [(MLPRegressor, SkRegressor, X, y, "sgd"), (MLPRegressor, SkRegressor, X, np.c_[y, -y], "sgd"),
             (MLPClassifier, SkClassifier, Xc, yc, "sgd"), (MLPRegressor, SkRegressor, X, y, "adam"),
             (MLPClassifier, SkClassifier, Xc, yc, "adam")]
    for ours, theirs, A, b, solver in cases:
        kw = dict(hidden_layer_sizes=(7,), solver=solver, alpha=0.0, batch_size=50, shuffle=False, momentum=0.5,
                  learning_rate_init=0.01, random_state=0, warm_start=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ref = theirs(max_iter=1, **kw).fit(A, b)  # one epoch; then both continue from its weights
            ref.set_params(max_iter=3)
            net = ours(max_iter=1, dtype="float64", **kw).fit(A, b)
            for mine, other in zip(net.coefs_ + net.intercepts_, ref.coefs_ + ref.intercepts_):
                mine[...] = other
            net.model_._opt_key = None  # scikit-learn's warm start starts a fresh optimizer; do the same here
            ref.fit(A, b)
            net.set_params(max_iter=3).fit(A, b)
        # SGD: the same arithmetic. Adam: scikit-learn adds ε to √v before the bias correction (an ε that
        # shrinks with t), pynet after it, which moves parameters whose gradients are tiny a little.
        rtol, atol = (1e-6, 1e-9) if solver == "sgd" else (1e-2, 2e-3)
        for mine, other in zip(net.coefs_ + net.intercepts_, ref.coefs_ + ref.intercepts_):
            np.testing.assert_allclose(mine, other, rtol=rtol, atol=atol, err_msg=f"{ours.__name__} {solver}")
        np.testing.assert_allclose(net.loss_curve_[-3:], ref.loss_curve_[-3:], rtol=1e-6 if solver == "sgd" else 1e-3)


def _parity_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sklearn_parity.py"
    spec = importlib.util.spec_from_file_location("sklearn_parity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PARITY = _parity_module()  # the benchmark's settings: the test checks exactly what it times
_SKLEARN_SCORES = {}


@pytest.mark.parametrize("backend", ["numpy", "auto"])
@pytest.mark.parametrize("name", list(PARITY.DATASETS))
def test_accuracy_parity_with_sklearn(name, backend):
    """Same hyper-parameters and split: pynet's held-out score (mean of 5 seeds) >= scikit-learn's − 0.01."""
    if name not in _SKLEARN_SCORES:
        _SKLEARN_SCORES[name] = PARITY.score("sklearn", name)
    ours = PARITY.score("pynet", name, backend=backend)
    assert ours >= _SKLEARN_SCORES[name] - 0.01, (name, ours, _SKLEARN_SCORES[name])
