"""Backend selection, persistence errors, datasets, CSV loading and the CLI."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import kernels
import pynet
from pynet import bench, cli, datasets


def test_import_compiles_nothing():
    code = "import sys, pynet; assert 'numba' not in sys.modules, 'numba imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_kernels_never_import_pynet():
    code = "import sys, kernels; kernels.load('numpy'); assert 'pynet' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_available_backends_fastest_first():
    names = pynet.available_backends()
    assert names == [b for b in kernels.BACKENDS if b in names]
    assert "numpy" in names
    for name, why in pynet.unavailable_reasons().items():
        assert name not in names and why


def test_set_backend_and_environment(monkeypatch):
    monkeypatch.setattr(pynet._backend, "_default", None)
    monkeypatch.setenv("PYNET_BACKEND", "numpy")
    assert pynet.MLP([2, 1]).backend == "numpy"
    pynet.set_backend("auto")
    assert pynet.MLP([2, 1]).backend == pynet.available_backends()[0]
    with pytest.raises(ValueError, match="backend: unknown backend 'gpu'"):
        pynet.set_backend("gpu")
    monkeypatch.setenv("PYNET_BACKEND", "fortran")
    monkeypatch.setattr(pynet._backend, "_default", None)
    with pytest.raises(ValueError, match="PYNET_BACKEND"):
        pynet.MLP([2, 1]).backend


def test_unavailable_backend_says_why(monkeypatch):
    monkeypatch.setitem(kernels._errors, "c", "backend 'c' is unavailable: no compiler. install gcc")
    monkeypatch.delitem(kernels._loaded, "c", raising=False)
    with pytest.raises(kernels.BackendUnavailable, match="install gcc"):
        pynet.MLP([2, 1], backend="c").backend
    assert pynet._backend.resolve("auto").name != "c"


def test_model_file_errors(tmp_path):
    X, y = datasets.load("iris")
    net = pynet.MLP([4, 3], output="softmax", backend="numpy")
    net.fit(X, y, epochs=1)
    path = tmp_path / "m.npz"
    net.save(path)
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(pynet.ModelFileError, match="truncated or corrupted"):
        pynet.load(tmp_path / "cut.npz")
    with np.load(path) as z:
        arrays = dict(z)
    meta = json.loads(str(arrays["meta"]))
    arrays["params"] = arrays["params"] + 1  # tampered parameters
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(pynet.ModelFileError, match="checksum"):
        pynet.load(tmp_path / "tampered.npz")
    meta["format_version"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(pynet.ModelFileError, match="version 99"):
        pynet.load(tmp_path / "future.npz")
    with pytest.raises(pynet.ModelFileError, match="no model file"):
        pynet.load(tmp_path / "missing.npz")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_model_files_follow_the_umask_or_keep_the_replaced_files_mode(tmp_path):
    X, y = datasets.load("iris")
    net = pynet.MLP([4, 3], output="softmax", backend="numpy")
    net.fit(X, y, epochs=1)
    old = os.umask(0o022)
    try:
        net.save(tmp_path / "a.npz")
        os.umask(0o077)
        net.save(tmp_path / "b.npz")
        (tmp_path / "a.npz").chmod(0o640)
        net.save(tmp_path / "a.npz")  # replacing a file keeps its mode, as writing into it would
    finally:
        os.umask(old)
    assert (tmp_path / "b.npz").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o640
    os.umask(0o022)
    try:
        net.save(tmp_path / "c.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o644
    assert pynet.load(tmp_path / "a.npz").layers == [4, 3]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_shipped_datasets():
    X, y = datasets.load("iris")
    assert X.shape == (150, 4) and sorted(np.bincount(y)) == [50, 50, 50]
    X, y = datasets.load("digits")
    assert X.shape == (1797, 64) and set(y) == set(range(10)) and X.max() == 16
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, 0.25, seed=3)
    assert len(Xte) + len(Xtr) == 1797 and abs(len(Xte) - 449) <= 10
    again = datasets.train_test_split(X, y, 0.25, seed=3)
    np.testing.assert_array_equal(again[1], Xte)
    for name in datasets.SYNTHETIC:
        X, y = datasets.load(name)
        assert X.ndim == 2 and len(X) == len(y)


def test_read_csv(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("a,b,label\n1,2,cat\n3,4.5,dog\n")
    X, y, names = datasets.read_csv(good, target="label")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4.5]])
    assert y.tolist() == ["cat", "dog"] and names == ["a", "b"]
    cases = {
        "a,b,label\n1,2,cat\n": ("label2", "no column 'label2'"),
        "a,b,label\n1,2\n": ("label", "line 2 has 2 cells"),
        "a,b,label\n1,x,cat\n": ("label", "non-numeric value 'x' at line 2, column 'b'"),
        "a,b,label\n1,2,cat\n\n3,NaN,dog\n": ("label", "non-finite value 'NaN' at line 4, column 'b'"),
        "a,b,label\n1,-inf,cat\n": ("label", "non-finite value '-inf' at line 2, column 'b'"),
        "a,b,y\n1,2,0.5\n3,4,nan\n": ("y", "non-finite value 'nan' at line 3, column 'y'"),
        "a,b,y\n1,2,cat\n3,4, \n": ("y", "empty target value at line 3, column 'y'"),
        "": (None, "is empty"),
    }
    for i, (text, (target, message)) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.csv"
        path.write_text(text)
        with pytest.raises(datasets.CSVError, match=message):
            datasets.read_csv(path, target=target)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pynet.cli", *args], capture_output=True, text=True)


def test_cli_train_digits_json():
    out = _cli("train", "--dataset", "digits", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    for key in ("backend", "test_accuracy", "train_seconds", "epochs", "stop_reason"):
        assert key in summary
    assert summary["test_accuracy"] >= 0.95
    assert summary["backend"] == pynet.available_backends()[0]


def test_cli_train_iris_defaults_stop_early_on_a_validation_split():
    backend = "c" if "c" in pynet.available_backends() else "numpy"
    out = _cli("train", "--dataset", "iris", "--json", "--backend", backend)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["early_stopping"] is True and summary["validation_split"] == cli.DEFAULT_VALIDATION
    assert summary["stop_reason"].startswith("early_stopping:") and summary["epochs"] < 1000
    assert summary["test_accuracy"] >= 0.9  # 0.889 after the former fixed 500 epochs


def test_cli_train_defaults_by_optimizer_and_size(tmp_path, capsys):
    def run(*extra):
        assert cli.main(["train", "--json", "--backend", "numpy", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    got = run("--dataset", "xor", "--optimizer", "gd", "--max-steps", "20")  # gd: its own tol rule, no split
    assert (got["early_stopping"], got["validation_split"]) == (False, 0.0)
    got = run("--dataset", "xor", "--no-early-stopping", "--epochs", "3")
    assert (got["early_stopping"], got["validation_split"], got["epochs"]) == (False, 0.0, 3)
    got = run("--dataset", "xor", "--validation-split", "0.1", "--epochs", "3")
    assert (got["early_stopping"], got["validation_split"]) == (True, 0.1)
    rng = np.random.default_rng(0)
    for n, early in ((12, False), (40, True)):  # 9 training rows: too few to hold any out; 30: batches shrink to fit
        x = rng.uniform(-1, 1, (n, 2))
        path = tmp_path / f"d{n}.csv"
        path.write_text("x1,x2,y\n" + "\n".join(f"{a},{b},{int(a > b)}" for a, b in x) + "\n")
        got = run("--csv", str(path), "--epochs", "3")
        assert got["early_stopping"] is early


def test_cli_train_prints_the_epoch_count_once(capsys):
    assert cli.main(["train", "--dataset", "xor", "--backend", "numpy", "--no-early-stopping", "--epochs", "7",
                     "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.count("7 epochs") == 1, line
    assert cli.main(["train", "--dataset", "iris", "--backend", "numpy", "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    n = int(re.search(r"\| (\d+) epochs; early_stopping", line).group(1))
    assert len(re.findall(rf"\b{n} epochs\b", line)) == 1, line


def test_cli_train_divergence_is_an_error(tmp_path):
    model = tmp_path / "m.npz"
    out = _cli("train", "--dataset", "iris", "--lr", "100", "--save", str(model))
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert "pynet train: error: diverged:" in out.stderr and "lower learning rate" in out.stderr
    assert not model.exists()


def test_cli_train_compiles_a_cold_jit_backend_first_and_says_so_and_loads_a_warm_one(monkeypatch, capsys):
    if "numba" not in os.environ.get("PYNET_TEST_BACKENDS", "numba").split(","):
        pytest.skip("numba is not among PYNET_TEST_BACKENDS (the sanitizer run: compiling it there tests no C)")
    pytest.importorskip("numba")
    raw = kernels.load("numba").raw
    calls = []
    monkeypatch.setattr(raw, "cached", lambda dtype, fit: False)
    monkeypatch.setattr(raw, "warmup", lambda dtypes, fit, progress=None: calls.append((dtypes, fit)))
    assert cli.main(["train", "--dataset", "xor", "--hidden", "8", "--epochs", "5", "--json",
                     "--backend", "numba", "--dtype", "float64"]) == 0
    out, err = capsys.readouterr()
    assert calls[0] == (("float64",), "sgd")  # only what this fit runs (MLP.fit asks again: still "cold" here)
    assert "compiling the numba kernels this fit calls for float64" in err
    assert re.search(r"measured \d+–\d+ s on ", err)  # the estimate is the measured one
    assert json.loads(out)["compile_seconds"] >= 0
    calls.clear()
    monkeypatch.setattr(raw, "cached", lambda dtype, fit: True)  # warm: loaded ahead of the timed fit, silently
    assert cli.main(["train", "--dataset", "xor", "--hidden", "8", "--epochs", "5", "--json",
                     "--backend", "numba", "--dtype", "float64", "--optimizer", "gd"]) == 0
    out, err = capsys.readouterr()
    assert calls == [(("float64",), "gd")] and "pynet: compiling" not in err
    summary = json.loads(out)
    assert summary["compile_seconds"] == 0 and summary["load_seconds"] >= 0


class _FakeJit:
    """A JIT backend's module as pynet._jit sees it: a cache status, a measured estimate, a warmup."""
    COMPILE_MACHINE = "a test box"

    def __init__(self, status):
        self.status, self.calls = status, []

    def cached(self, dtype, fit="sgd"):
        return self.status

    def compile_estimate(self, dtypes, fit=None):
        return 10 * len(dtypes), 20 * len(dtypes)

    def warmup(self, dtypes, fit=None, progress=None):
        self.calls.append((dtypes, fit, progress is not None))
        for i, kernel in enumerate(("predict", "train_epoch")):
            if progress is not None:
                progress(i, 2, kernel, dtypes[0])
        if progress is not None:
            progress(2, 2, None, None)
        self.status = True


class _FakeBackend:
    name = "fakejit"

    def __init__(self, raw):
        self.raw = raw


def test_a_cold_jit_cache_is_compiled_before_a_fit_with_an_estimate_and_progress(capsys):
    from pynet import _jit

    raw = _FakeJit(False)
    compile_s, load_s = _jit.ready(_FakeBackend(raw), "float32", "adam")
    err = capsys.readouterr().err
    assert raw.calls == [(("float32",), "adam", True)] and compile_s >= 0 and load_s == 0
    assert "compiling the fakejit kernels this fit calls for float32" in err
    assert "measured 10–20 s on a test box" in err
    assert "kernel 1 of 2: predict (float32)" in err and "kernel 2 of 2: train_epoch (float32)" in err
    assert "2 kernel(s) ready in" in err
    assert _jit.ready(_FakeBackend(raw), "float32", "adam") == (0.0, 0.0)  # warm: MLP.fit leaves it to the fit
    compile_s, load_s = _jit.ready(_FakeBackend(raw), "float32", "adam", load=True)  # the CLI loads it, silently
    assert compile_s == 0 and load_s >= 0 and raw.calls[-1] == (("float32",), "adam", False)
    assert capsys.readouterr().err == ""
    assert _jit.ready(_FakeBackend(_FakeJit(None)), "float32", "sgd") == (0.0, 0.0)  # cache unreadable: no claim
    raw = _FakeJit(False)
    assert _jit.ready(_FakeBackend(raw), "float64", "gd", quiet=True)[0] >= 0
    assert raw.calls == [(("float64",), "gd", False)]
    assert capsys.readouterr().err == ""


def test_mlp_fit_on_a_cold_numba_cache_compiles_first_and_says_so(monkeypatch, capsys):
    if "numba" not in os.environ.get("PYNET_TEST_BACKENDS", "numba").split(","):
        pytest.skip("numba is not among PYNET_TEST_BACKENDS")
    raw = kernels.load("numba").raw
    calls = []
    monkeypatch.setattr(raw, "cached", lambda dtype, fit: bool(calls))  # cold until warmup ran
    monkeypatch.setattr(raw, "warmup", lambda dtypes, fit, progress=None: calls.append((dtypes, fit, progress)))
    X, y = datasets.load("xor")
    pynet.MLP([2, 8, 1], backend="numba", dtype="float64").fit(X, y, optimizer="adam", epochs=2)
    err = capsys.readouterr().err
    assert [c[:2] for c in calls] == [(("float64",), "adam")] and callable(calls[0][2])
    assert "pynet: compiling the numba kernels this fit calls for float64" in err


def test_cli_train_csv_regression_and_save(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (200, 2))
    rows = "\n".join(f"{a},{b},{a - 2 * b + 0.5}" for a, b in x)
    (tmp_path / "d.csv").write_text("x1,x2,y\n" + rows + "\n")
    model = tmp_path / "m.npz"
    out = _cli("train", "--csv", str(tmp_path / "d.csv"), "--target", "y", "--hidden", "8",
               "--epochs", "100", "--json", "--save", str(model))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["test_mse"] < 0.01 and model.exists()
    assert pynet.load(model).layers == [2, 8, 1]


@pytest.mark.parametrize("args, message", [
    (("train", "--csv", "/no/such.csv"), "no such file"),
    (("train", "--dataset", "iris", "--lr", "-1"), "--lr"),
    (("train", "--dataset", "iris", "--hidden", "4,x"), "--hidden"),
    (("train", "--dataset", "iris", "--backend", "gpu"), "--backend"),
    (("train", "--dataset", "iris", "--tol", "0.1"), "--tol"),
])
def test_cli_errors_are_one_line(args, message):
    out = _cli(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_cli_info_json():
    out = _cli("info", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert set(info["backends"]) == set(kernels.BACKENDS)
    assert info["backends"]["numpy"]["available"]
    for key in ("versions", "cpu", "simd", "cores", "threads"):
        assert key in info
    if info["backends"]["c"]["available"]:
        assert info["versions"]["c_compiler"].split()[0] in ("gcc", "clang", "unknown")
        assert info["isa"]["in_use"] in info["isa"]["supported"]
        assert info["isa"]["supported"][0] == "base"


def test_cli_info_reports_the_isa_pynet_isa_caps():
    if kernels.status().get("c") is not None:
        pytest.skip("the C backend is not built")
    env = dict(os.environ, PYNET_ISA="base")
    out = subprocess.run([sys.executable, "-m", "pynet", "info", "--json"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["isa"]["in_use"] == "base"


@pytest.mark.parametrize("threads", ["1", "2"])
def test_cli_info_reports_numpys_blas_threads(threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=threads)
    out = subprocess.run([sys.executable, "-m", "pynet.cli", "info", "--json"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert info["threads"]["numpy"] == info["blas"]["threads"] == min(int(threads), cores)


def test_blas_threads_without_threadpoolctl_read_openblas_variables(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import threadpoolctl raises ImportError
    for var in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cli, "_usable_cores", lambda: 8)
    assert cli._blas_threads()["threads"] == 8 and cli._blas_threads()["source"].startswith("default")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert cli._blas_threads()["threads"] == 4
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # OpenBLAS reads its own variable first
    assert cli._blas_threads() == {"threads": 3, "library": cli._blas_threads()["library"],
                                   "source": "OPENBLAS_NUM_THREADS"}


def test_bench_table_says_what_its_median_is_over():
    out = _cli("bench", "--workload", "activation", "--backend", "numpy", "--repeat", "3", "--warmup", "2",
               "--settle", "0", "--quiet")
    assert out.returncode == 0, out.stderr
    caption = next(line for line in out.stdout.splitlines() if line.startswith("median / min / max s:"))
    assert "over 3 timed run(s) per runner (--repeat)" in caption and "after 2 untimed warm-up run(s)" in caption
    assert out.stdout.index(caption) < out.stdout.index("median s")  # above the table it describes


def test_python_dash_m_pynet_is_the_cli():
    out = subprocess.run([sys.executable, "-m", "pynet", "info", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert set(json.loads(out.stdout)["backends"]) == set(kernels.BACKENDS)
    out = subprocess.run([sys.executable, "-m", "pynet", "bench", "--workload", "huge"], capture_output=True, text=True)
    assert out.returncode == 2 and "--workload" in out.stderr


def test_cli_main_in_process(capsys):
    assert cli.main(["train", "--dataset", "xor", "--hidden", "8", "--epochs", "50", "--quiet",
                     "--backend", "numpy"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_cli_bench_json_and_compare(tmp_path):
    out_json = tmp_path / "b.json"
    out_csv = tmp_path / "b.csv"
    args = ("bench", "--layers", "5,8,1", "--samples", "200", "--batch-size", "16", "--backend", "all",
            "--peers", "torch,sklearn,jax", "--repeat", "2", "--quiet")
    out = _cli(*args, "--json", str(out_json), "--csv", str(out_csv))
    assert out.returncode == 0, out.stderr
    record = json.loads(out_json.read_text())
    assert record["gemm_ceiling_gflops"] > 0 and record["machine"]["cores"] >= 1
    rows = {r["runner"]: r for r in record["results"]}
    for name in pynet.available_backends():
        assert rows[name]["median_s"] > 0 and rows[name]["min_s"] <= rows[name]["median_s"] <= rows[name]["max_s"]
    for peer in ("torch", "sklearn", "jax"):  # installed peers are timed; missing ones say how to install
        assert "median_s" in rows[peer] or "install" in rows[peer]["unavailable"]
        if "median_s" in rows[peer]:
            name = pynet.available_backends()[0]
            assert rows[name]["speedup"][peer] == pytest.approx(rows[peer]["median_s"] / rows[name]["median_s"])
    assert out_csv.read_text().startswith("workload,dtype,runner")
    again = _cli(*args, "--backend", "numpy", "--peers", "", "--lead-in", "--compare", str(out_json))
    assert again.returncode == 0 and "compared with" in again.stdout


def test_bench_lead_in_precedes_every_timed_run_with_an_untimed_one(monkeypatch):
    calls = []

    class Counting:
        def __init__(self, name, p):
            self.name = name

        def reset(self):
            calls.append("reset")

        def run(self):
            calls.append("run")

        def set_threads(self, n):
            pass

    monkeypatch.setattr(bench, "make_runner", Counting)
    work = [bench.custom_workload([3, 4, 1], 8, 32)]
    rows = bench.run(work, ["numpy"], repeat=2, warmup=1, settle=0, lead_in=True)
    assert calls == ["run"] + ["reset", "run", "reset", "run"] * 2  # first call, then (lead-in, timed) × 2
    assert rows[0]["lead_in"] and rows[0]["repeat"] == 2
    calls.clear()
    rows = bench.run(work, ["numpy"], repeat=2, warmup=1, settle=0)
    assert calls == ["run"] + ["reset", "run"] * 2 and not rows[0]["lead_in"]


def test_cli_bench_rejects_unknown_names():
    out = _cli("bench", "--workload", "huge")
    assert out.returncode == 2 and "--workload: unknown name 'huge'" in out.stderr
    out = _cli("bench", "--settle", "-1")
    assert out.returncode == 2 and "--settle" in out.stderr and "Traceback" not in out.stderr


def test_plots_render(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the plot extra")
    out = _cli("train", "--dataset", "iris", "--epochs", "20", "--validation-split", "0.2", "--quiet",
               "--plot", str(tmp_path / "loss.png"))
    assert out.returncode == 0, out.stderr
    out = _cli("plot-fit", "--out", str(tmp_path / "fit.png"), "--epochs", "30")
    assert out.returncode == 0, out.stderr
    out = _cli("bench", "--layers", "5,8,1", "--samples", "100", "--backend", "numpy", "--repeat", "1", "--quiet",
               "--plot", str(tmp_path / "bench.png"))
    assert out.returncode == 0, out.stderr
    for name in ("loss.png", "fit.png", "bench.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    from pynet import plots

    with pytest.raises(RuntimeError, match=r'pip install "pynet\[plot\]"'):
        plots.fit_curves(np.zeros((2, 1)), np.zeros(2), {}, "x.png")
