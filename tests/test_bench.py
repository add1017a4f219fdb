"""pynet bench beyond ReLU (issue 19): the simplechains, digits-sigmoid-gd and sweep presets end to end, the
MLP.fit runners beside the kernels, the peers set up as pynet is (data, weights, optimizer), and --compare's
regression marks. Every size here is the --smoke size: these tests check what runs, never how fast."""
import importlib.util
import json

import numpy as np
import pytest

from pynet import bench, cli

NEW_PRESETS = ("simplechains", "digits-sigmoid-gd")
PEERS_HERE = [p for p in ("torch", "jax") if importlib.util.find_spec(p) is not None]


def _tiny_grid():
    return [bench.smoke(w) for w in bench.sweep_workloads(["tanh", "softplus"], [7], [127, "full"])]


def _tiny_presets():
    return [bench.smoke(bench.PRESETS[n]) for n in NEW_PRESETS] + _tiny_grid()


def test_presets_describe_the_published_networks():
    sc = bench.PRESETS["simplechains"]
    assert (sc.kind, sc.layers, sc.activation, sc.loss, sc.optimizer, sc.samples) == \
        ("gd", [4, 32, 16, 4], "tanh", "mse", "adam", 10_000)
    assert sc.epochs() == sc.steps == 100  # a timed run holds 100 full-batch steps (= epochs)
    dg = bench.PRESETS["digits-sigmoid-gd"]
    assert (dg.kind, dg.layers, dg.activation, dg.loss, dg.optimizer, dg.samples) == \
        ("gd", [64, 32, 10], "sigmoid", "cross_entropy", "sgd", 1797)
    p = bench.make_problem(bench.smoke(sc), "float64")
    assert np.allclose(p.Y, bench.matrix_exp_2x2(p.X))


def test_matrix_exp_matches_scipy():
    linalg = pytest.importorskip("scipy.linalg")
    X = np.random.default_rng(0).standard_normal((300, 4)) * 2
    X[0], X[1] = 0.0, [1.0, 0.0, 1.0, 1.0]  # q = 0: the zero matrix and a Jordan block
    want = [linalg.expm(x.reshape(2, 2, order="F")).reshape(-1, order="F") for x in X]
    assert np.allclose(bench.matrix_exp_2x2(X), want, rtol=1e-10, atol=1e-12)


def test_sweep_grid_names_and_arguments():
    cells = bench.sweep_workloads()
    d = bench.SWEEP_DEFAULT
    assert len(cells) == len(d["activations"]) * len(d["widths"]) * len(d["batches"])
    assert len({c.name for c in cells}) == len(cells)
    cell = {c.name: c for c in cells}
    full, b33 = cell["sweep-sigmoid-w31-bfull"], cell["sweep-sigmoid-w31-b33"]
    assert (full.kind, full.layers, full.steps, full.samples) == ("gd", [20, 31, 31, 1], bench.SWEEP_FULL_STEPS,
                                                                 bench.SWEEP_SAMPLES)
    assert (b33.kind, b33.batch_size, b33.activation) == ("train", 33, "sigmoid")
    with pytest.raises(ValueError, match="activation: unknown name 'gelu'"):
        bench.sweep_workloads(["gelu"])
    with pytest.raises(ValueError, match="widths: each must be an integer >= 1"):
        bench.sweep_workloads(widths=[0])
    with pytest.raises(ValueError, match="batches: each must be 'full' or an integer"):
        bench.sweep_workloads(batches=["all"])


def test_new_presets_run_on_every_backend_with_the_fit_runner(backend):
    rows = bench.run(_tiny_presets(), [backend, f"{backend}-fit"], repeat=1, settle=0)
    by = {(r["workload"], r["runner"]): r for r in rows}
    for w in _tiny_presets():
        kern, fit = by[(w.name, backend)], by[(w.name, f"{backend}-fit")]
        assert "unavailable" not in kern and "unavailable" not in fit, (kern, fit)
        assert kern["median_s"] > 0 and kern["epochs"] == w.epochs()
        assert kern["epoch_s"] == pytest.approx(kern["median_s"] / w.epochs())
        assert fit["fit_over_kernel"] == pytest.approx(fit["median_s"] / kern["median_s"])


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_fit_runner_takes_the_kernels_full_batch_steps(backend, name):
    """MLP.fit reaches train_gd with the kernel runner's arguments: the same parameters, bit for bit."""
    p = bench.make_problem(bench.smoke(bench.PRESETS[name]), "float32")
    kern, fit = bench.BackendRunner(backend, p), bench.FitRunner(backend, p)
    kern.run()
    fit.run()
    assert fit.net.epochs_trained_ == p.w.steps
    assert np.array_equal(fit.net.params, kern.params)
    assert not np.array_equal(kern.params, p.params)


def _flat(layers):
    return np.concatenate([np.concatenate([np.asarray(W).ravel(), np.asarray(b).ravel()]) for W, b in layers])


def _peer_params(r):
    if r.name == "torch":
        lins = [m for m in r.model if isinstance(m, r.torch.nn.Linear)]
        return _flat([(lin.weight.detach().numpy().T, lin.bias.detach().numpy()) for lin in lins])
    return _flat(r.last[0])


@pytest.mark.skipif(not PEERS_HERE, reason="neither torch nor jax is installed")
@pytest.mark.parametrize("peer", PEERS_HERE)
@pytest.mark.parametrize("which", list(range(len(_tiny_presets()))))
def test_peers_train_as_pynet_does(peer, which):
    """Same data, initial weights, batch order, learning rate and optimizer (Adam included): after one timed
    run the peer's parameters are the reference kernels' (float64, so rounding cannot hide a difference)."""
    w = _tiny_presets()[which]
    p = bench.make_problem(w, "float64")
    ref = bench.BackendRunner("numpy", p)
    ref.run()
    r = bench.make_runner(peer, p)
    r.run()
    got = _peer_params(r)
    assert np.max(np.abs(got - ref.params)) <= 1e-9 * np.max(np.abs(ref.params)), w.name
    assert not np.allclose(got, p.params)  # it trained


@pytest.mark.skipif(not PEERS_HERE, reason="neither torch nor jax is installed")
def test_installed_peers_run_every_new_preset():
    rows = bench.run(_tiny_presets(), ["numpy"] + PEERS_HERE, repeat=1, settle=0)
    for r in rows:
        assert "median_s" in r, r  # an installed peer that did not run fails here rather than passing
        if r["runner"] in PEERS_HERE:
            assert r["kind"] == "peer"
        else:
            assert set(r["speedup"]) == set(PEERS_HERE)


def test_missing_peer_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_jax(name, *args, **kwargs):
        if name == "jax" or name.startswith("jax."):
            raise ImportError("No module named 'jax'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jax)
    (row,) = bench.run([bench.smoke(bench.PRESETS["simplechains"])], ["jax"], repeat=1, settle=0)
    assert "median_s" not in row and "pip install jax" in row["unavailable"]


def test_cli_json_holds_the_new_presets_and_compare_marks_a_regression(tmp_path, capsys):
    base = ["bench", "--workload", "simplechains,digits-sigmoid-gd,sweep", "--sweep-activations", "sigmoid",
            "--sweep-widths", "13", "--sweep-batches", "33,full", "--backend", "numpy", "--fit", "--smoke",
            "--repeat", "1", "--settle", "0", "--quiet"]
    first = tmp_path / "first.json"
    assert cli.main(base + ["--json", str(first)]) == 0
    record = json.loads(first.read_text())
    names = ["simplechains", "digits-sigmoid-gd", "sweep-sigmoid-w13-b33", "sweep-sigmoid-w13-bfull"]
    got = {(r["workload"], r["runner"]) for r in record["results"] if "median_s" in r}
    assert got == {(n, r) for n in names for r in ("numpy", "numpy-fit")}
    for n in names:
        assert record["workloads"][n]["name"] == n
    assert record["workloads"]["simplechains"]["optimizer"] == "adam"
    out = capsys.readouterr().out
    assert "fit/kern" in out and "ms/epoch" in out

    # an older run in which simplechains and the b33 cell were 100x faster, everything else 100x slower
    injected = {"simplechains", "sweep-sigmoid-w13-b33"}
    for r in record["results"]:
        r["median_s"] *= 0.01 if r["workload"] in injected else 100.0
    old = tmp_path / "old.json"
    old.write_text(json.dumps(record))
    assert cli.main(base + ["--compare", str(old)]) == 0
    out = capsys.readouterr().out
    lines = out.split("compared with", 1)[1].splitlines()[1:]
    compared = [line for line in lines if line.strip().split(" ")[0] in names]
    assert len(compared) == 8
    for line in compared:
        assert ("REGRESSION" in line) == (line.split()[0] in injected), line
    assert "4 regressions in 8 compared rows" in out


def test_regression_threshold():
    assert bench.is_regression(1 / 1.2) and not bench.is_regression(1 / 1.05)
    assert bench.is_regression(1 / 1.05, threshold=0.02) and not bench.is_regression(1.5, threshold=0.0)
    new = {"results": [{"workload": "w", "dtype": "float32", "runner": "c", "median_s": 2.0}]}
    old = {"results": [{"workload": "w", "dtype": "float32", "runner": "c", "median_s": 1.0},
                       {"workload": "v", "dtype": "float32", "runner": "c", "median_s": 1.0}]}
    assert bench.compare(new, old) == [("w", "float32", "c", 1.0, 2.0, 0.5)]


def test_cli_rejects_bad_sweep_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--workload", "sweep", "--sweep-widths", "0"])
    assert cli.main(["bench", "--workload", "sweep", "--sweep-batches", "33,all", "--quiet"]) == 2
    assert "--sweep-batches: expected integers or 'full', got 'all'" in capsys.readouterr().err
    assert cli.main(["bench", "--workload", "sweep", "--sweep-activations", "gelu", "--quiet"]) == 2
    assert "--sweep-activations: unknown name 'gelu'" in capsys.readouterr().err
    assert cli.main(["bench", "--workload", "sweep", "--sweep-batches", "5000", "--quiet"]) == 2
    assert "--sweep-batches: each must be 'full' or an integer in 1..4000" in capsys.readouterr().err
    assert cli.main(["bench", "--backend", "c-fast", "--quiet"]) == 2
    assert "--backend: unknown name 'c-fast'" in capsys.readouterr().err


def test_fit_runner_refuses_kernel_workloads():
    (row,) = bench.run([bench.smoke(bench.PRESETS["gemm"])], ["numpy-fit"], repeat=1, settle=0)
    assert "training workloads only" in row["unavailable"]
