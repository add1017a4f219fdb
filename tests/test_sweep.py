"""Sweeps on Dask: ``pynet sweep`` over a LocalCluster of 2 worker processes, and scikit-learn's
GridSearchCV over pynet estimators under ``joblib.parallel_backend("dask")``."""
import json

import numpy as np
import pytest

import pynet

pytest.importorskip("dask.distributed", reason="sweeps need the dask extra: pip install 'pynet[dask]'")

from dask.distributed import Client, LocalCluster  # noqa: E402

from pynet import sweep  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_grid_sweep_of_nine_configurations_with_one_failure(client, tmp_path, monkeypatch):
    config = {"data": {"dataset": "digits"}, "seed": 0,
              "base": {"epochs": 4, "hidden": [16], "backend": "c" if "c" in pynet.available_backends() else "numpy"},
              "search": {"kind": "grid", "grid": {"lr": [0.02, 0.2], "hidden": [[8], [24]],
                                                  "activation": ["relu", "tanh"]}}}
    configs = sweep.candidates(config)
    configs.append({**configs[0], "activation": "no-such-activation"})  # must fail alone
    monkeypatch.setattr(sweep, "candidates", lambda _: configs)
    rows, best, paths = sweep.sweep(config, client=client, out_dir=tmp_path / "out")
    assert len(rows) == len(configs) == 9
    failed = [r for r in rows if r["error"]]
    assert len(failed) == 1 and "no-such-activation" in failed[0]["error"] and failed[0]["index"] == 8
    assert all(r["score"] is not None and r["fit_seconds"] > 0 for r in rows[:8])
    assert best["score"] == max(r["score"] for r in rows[:8])
    # the saved best model is the best configuration refitted: it scores what the sweep measured
    X, y, Xte, yte, _ = sweep.load_data(config)
    assert pynet.load(paths[0]).score(Xte, yte) == pytest.approx(best["score"])
    table = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(table) == 10 and table[0].startswith("index,score")
    assert len(json.loads((tmp_path / "out" / "results.json").read_text())) == 9


def test_random_search_with_cv_and_ensemble(client, tmp_path):
    config = {"data": {"dataset": "iris"}, "seed": 1, "cv": 3, "ensemble": 2,
              "base": {"epochs": 15, "hidden": [8]},
              "search": {"kind": "random", "n_iter": 3, "seed": 4,
                         "space": {"lr": {"loguniform": [0.01, 0.3]}, "batch_size": {"randint": [8, 33]}}}}
    rows, best, paths = sweep.sweep(config, client=client, out_dir=tmp_path)
    assert [r["folds"] for r in rows] == [3, 3, 3]
    assert all(0.01 <= r["lr"] <= 0.3 and 8 <= r["batch_size"] < 33 for r in rows)
    assert len(paths) == 2 and all(pynet.load(p).layers == [4, 8, 3] for p in paths)


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="search.kind"):
        sweep.candidates({"search": {"kind": "bayes"}})
    with pytest.raises(ValueError, match="not a model setting"):
        sweep.candidates({"search": {"kind": "grid", "grid": {"learning_rate": [0.1]}}})
    path = tmp_path / "c.toml"
    path.write_text('[search]\nkind = "grid"\n[search.grid]\nlr = [0.1, 0.2]\n')
    assert [c["lr"] for c in sweep.candidates(sweep.read_config(path))] == [0.1, 0.2]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_grid_search_under_joblib_dask_backend(client):
    """GridSearchCV over pynet.sklearn.MLPClassifier on the Dask workers = the same search run locally."""
    joblib = pytest.importorskip("joblib")
    from sklearn.model_selection import GridSearchCV

    from pynet.sklearn import MLPClassifier

    X, y = pynet.datasets.load("iris")
    est = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", max_iter=20, random_state=0, dtype="float64",
                        n_iter_no_change=100)
    grid = {"learning_rate_init": [0.05, 0.2], "hidden_layer_sizes": [(4,), (8,)]}
    with joblib.parallel_backend("dask"):
        remote = GridSearchCV(est, grid, cv=3).fit(X, y)
    local = GridSearchCV(est, grid, cv=3).fit(X, y)
    assert remote.best_params_ == local.best_params_
    assert np.allclose(remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])
