"""Data-parallel training over MPI: 2 ranks = 1 process with the same global batch; local SGD;
checkpoints, resume, and a killed rank. Multi-rank runs go through ``mpiexec -n 2`` in a subprocess."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import pynet
from kernels import contract as C

pytest.importorskip("mpi4py", reason="distributed training needs the mpi extra: pip install 'pynet[mpi]'")

from pynet import distributed  # noqa: E402  (after the skip: it needs mpi4py at call time)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN + os.pathsep + os.environ.get("PATH", ""))
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'pynet[mpi]' provides one)")
#: the C backend when built (fast, no JIT), else the reference
FAST = "c" if "c" in pynet.available_backends() else "numpy"


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("PYNET_BACKEND", None)
    return env


def _mpi(n, args, timeout=120, **kw):
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=ROOT, **kw)


def _data(n=203, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    y = np.where(X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.3, "yes", "no")
    y[X[:, 2] > 1.2] = "maybe"
    w = rng.uniform(0.2, 2.0, n)
    return X, y, w


# the worker script of the equivalence test: every rank fits its shard, rank 0 writes the parameters
EQUIV = textwrap.dedent("""
    import sys, numpy as np, pynet
    from pynet import distributed
    from tests.test_distributed import _data, _settings
    comm = distributed.comm_world()
    X, y, w = _data()
    lo, hi = distributed.shard(len(X), comm.Get_size(), comm.Get_rank())
    opt, batches, weighted, backend, out = sys.argv[1:6]
    net = pynet.MLP([6, 9, 3], activation="tanh", dtype="float64", seed=4, standardize=True, backend=backend)
    sw = w[lo:hi] if weighted == "1" else None
    h = distributed.fit(net, X[lo:hi], y[lo:hi], sample_weight=sw, batches=batches, epochs=3, **_settings(opt))
    if comm.Get_rank() == 0:
        np.savez(out, params=net.params, loss=np.array(h.loss), mean=net.mean_, steps=np.array(h.steps))
""")


def _settings(opt):
    lr = dict(lr=0.05, momentum=0.9) if opt == "sgd" else dict(lr=0.01)
    return dict(loss="cross_entropy", optimizer=opt, batch_size=24, **lr)


@needs_mpiexec
@pytest.mark.parametrize("opt,batches,weighted", [("sgd", "global", True), ("adam", "global", True),
                                                  ("sgd", "balanced", True), ("adam", "balanced", False)])
def test_two_ranks_equal_one_process_with_the_same_global_batch(tmp_path, opt, batches, weighted):
    """Uneven shards (203 rows), sample weights or none, string labels, standardisation: after 3 epochs the
    parameters are those of one process trained on the same order with the same batch size, within the
    contract's float64 tolerance. "global" order: that process is plain MLP.fit with the same seed;
    "balanced": it fits each epoch's batch_order (drawn from the same generator) without shuffling."""
    script = tmp_path / "equiv.py"
    script.write_text(EQUIV)
    out = tmp_path / "two.npz"
    run = _mpi(2, [str(script), opt, batches, "1" if weighted else "0", FAST, str(out)])
    assert run.returncode == 0, run.stderr
    got = np.load(out)
    X, y, w = _data()
    w = w if weighted else None
    net = pynet.MLP([6, 9, 3], activation="tanh", dtype="float64", seed=4, standardize=True, backend=FAST)
    if batches == "global":
        h = net.fit(X, y, sample_weight=w, epochs=3, **_settings(opt))
        losses = h.loss
    else:
        rng = np.random.default_rng()
        rng.bit_generator.state = net._rng.bit_generator.state  # the generator every rank starts from
        counts = [hi - lo for lo, hi in (distributed.shard(len(X), 2, r) for r in range(2))]
        losses = []
        for _ in range(3):
            order = distributed.batch_order(rng, counts)
            h = net.fit(X[order], y[order], sample_weight=None if w is None else w[order], shuffle=False,
                        epochs=1, **_settings(opt))
            losses += h.loss
    assert got["steps"].tolist() == [9, 9, 9]  # ceil(203 / 24): one Allreduce per global step
    assert C.close(got["mean"], net.mean_, np.float64)
    assert C.close(got["loss"], losses, np.float64)
    assert C.close(got["params"], net.params, np.float64)
    assert not np.allclose(got["params"], pynet.MLP([6, 9, 3], activation="tanh", dtype="float64", seed=4).params)


def test_batch_order_balances_every_batch_and_is_a_permutation():
    rng = np.random.default_rng(0)
    for counts in ([102, 101], [50, 50, 49], [7, 300]):
        order = distributed.batch_order(rng, counts)
        assert np.array_equal(np.sort(order), np.arange(sum(counts)))
        owner = np.searchsorted(np.cumsum(counts), order, side="right")
        for start in range(0, sum(counts) - 32, 32):
            got = np.bincount(owner[start:start + 32], minlength=len(counts))
            assert np.all(np.abs(got - 32 * np.array(counts) / sum(counts)) <= 1 + 1e-9), (counts, start, got)
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert np.array_equal(distributed.batch_order(a, [40]), b.permutation(40))  # one rank: MLP.fit's order
    assert not np.array_equal(distributed.batch_order(a, [20, 20]), distributed.batch_order(b, [20, 20], "global"))


@pytest.mark.parametrize("loss", ["ssr", "mse"])
def test_one_rank_equals_fit_for_sum_and_mean_losses(loss, backend):
    """In-process (a singleton MPI world): the step-by-step Allreduce path = the fused epoch of MLP.fit."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))
    y = X @ rng.standard_normal((4, 2)) + 0.1
    kw = dict(loss=loss, optimizer="sgd", lr=0.002 if loss == "ssr" else 0.05, batch_size=16, epochs=2)
    a = pynet.MLP([4, 5, 2], activation="relu", dtype="float64", seed=1, backend=backend)
    b = pynet.MLP([4, 5, 2], activation="relu", dtype="float64", seed=1, backend=backend)
    ha = a.fit(X, y, **kw)
    hb = distributed.fit(b, X, y, **kw)
    assert C.close(hb.loss, ha.loss, np.float64)
    assert C.close(b.params, a.params, np.float64)


def test_local_sgd_with_one_rank_is_plain_sgd_and_checkpoints_resume(tmp_path):
    """With one rank, averaging is the identity: local SGD = SGD (the fused epoch); and a run split by a
    checkpoint (optimizer state, epochs, random state) ends bit for bit where the uninterrupted run ends."""
    X, y, _ = _data()
    kw = dict(loss="cross_entropy", optimizer="adam", lr=0.01, batch_size=20)
    ref = pynet.MLP([6, 8, 3], dtype="float64", seed=2, backend=FAST)
    ref.fit(X, y, epochs=4, **kw)
    loc = pynet.MLP([6, 8, 3], dtype="float64", seed=2, backend=FAST)
    distributed.fit(loc, X, y, epochs=4, local_sgd=3, **kw)
    assert C.close(loc.params, ref.params, np.float64)

    whole = pynet.MLP([6, 8, 3], dtype="float64", seed=2, backend=FAST)
    distributed.fit(whole, X, y, epochs=4, **kw)
    assert C.close(whole.params, ref.params, np.float64)
    ck = tmp_path / "ck.npz"
    first = pynet.MLP([6, 8, 3], dtype="float64", seed=2, backend=FAST)
    distributed.fit(first, X, y, epochs=2, checkpoint=ck, checkpoint_every=2, planned_epochs=4, **kw)
    resumed, info = distributed.load_checkpoint(ck, backend=FAST)
    assert (info["epochs_done"], info["planned_epochs"]) == (2, 4)
    assert pynet.load(ck).epochs_trained_ == 2  # a checkpoint is a model file too
    distributed.fit(resumed, X, y, epochs=2, **kw)
    assert resumed.epochs_trained_ == 4
    assert np.array_equal(resumed.params, whole.params)


def test_distributed_rejects_what_it_cannot_do():
    X, y, _ = _data(20)
    net = pynet.MLP([6, 3], dtype="float64")
    with pytest.raises(ValueError, match="gd"):
        distributed.fit(net, X, y, optimizer="gd")
    with pytest.raises(ValueError, match="local_sgd"):
        distributed.fit(net, X, y, local_sgd=-1)
    with pytest.raises(ValueError, match="batches"):
        distributed.fit(net, X, y, batches="random")
    with pytest.raises(ValueError, match="batch_size"):
        distributed.fit(net, X, y, loss="cross_entropy", batch_size=21)


@needs_mpiexec
def test_cli_digits_two_ranks_match_one_process():
    """The issue's check: mpiexec -n 2 pynet train --dataset digits --distributed --json ≥ 0.95 held out."""
    args = ["-m", "pynet.cli", "train", "--dataset", "digits", "--json", "--epochs", "30", "--backend", FAST]
    two = _mpi(2, args + ["--distributed"])
    assert two.returncode == 0, two.stderr
    lines = [line for line in two.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # only rank 0 reports
    two = json.loads(lines[0])
    # --distributed has no validation split: the one-process run trains without one too (its default stops early)
    one = json.loads(subprocess.run([sys.executable, *args, "--no-early-stopping"], capture_output=True, text=True,
                                    env=_env(), cwd=ROOT, check=True).stdout)
    assert two["ranks"] == 2 and two["epochs"] == one["epochs"] == 30
    assert two["test_accuracy"] >= 0.95
    assert abs(two["test_accuracy"] - one["test_accuracy"]) <= 1 / 450  # float32 rounding may flip one sample
    assert two["allreduce_seconds_per_step"] > 0


@needs_mpiexec
def test_cli_sharded_npz_and_local_sgd(tmp_path):
    """Each rank reads only its rows of an .npz; local SGD still learns; metrics are summed over ranks."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((400, 5))
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    run = _mpi(2, ["-m", "pynet.cli", "train", "--npz", str(tmp_path / "d.npz"), "--distributed", "--local-sgd", "4",
                   "--epochs", "30", "--lr", "0.3", "--json", "--hidden", "8", "--backend", FAST])
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["mode"] == "local_sgd every 4 steps" and out["train_rows"] + out["test_rows"] == 400
    assert out["test_accuracy"] > 0.9


def _rank_pids(root_pid):
    """{rank: pid} of the MPI processes under an mpiexec (PMI_RANK in their environment)."""
    import psutil

    out = {}
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            rank = child.environ().get("PMI_RANK")
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if rank is not None and "python" in os.path.basename(child.exe()):
            out[int(rank)] = child.pid
    return out


@needs_mpiexec
def test_killed_rank_fails_the_job_and_leaves_the_checkpoint_intact(tmp_path):
    pytest.importorskip("psutil")
    ck = tmp_path / "ck.npz"
    args = ["-m", "pynet.cli", "train", "--dataset", "spirals", "--distributed", "--epochs", "100000", "--hidden",
            "32", "--checkpoint", str(ck), "--checkpoint-every", "20", "--backend", FAST]
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not ck.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert ck.exists(), "no checkpoint was written"
        os.kill(_rank_pids(proc.pid)[1], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "BAD TERMINATION" in err or "killed" in err.lower(), err  # the MPI launcher names the dead rank
    assert "checkpoint after epoch" in err  # rank 0's last word: which checkpoint is safe
    net, info = distributed.load_checkpoint(ck)  # complete and verified (checksum) despite the kill
    assert info["epochs_done"] % 20 == 0 and info["planned_epochs"] == 100000
    assert net.epochs_trained_ == info["epochs_done"]
