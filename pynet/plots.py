"""Plots (matplotlib is an optional extra: ``pip install "pynet[plot]"``)."""
from __future__ import annotations

import numpy as np


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError('plotting needs matplotlib: pip install "pynet[plot]" (or pip install matplotlib)') from None
    return plt


def training(history, path):
    """Train/validation loss per epoch, and the dead fraction and gradient norm per layer."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, history.epochs + 1)
    a1.plot(epochs, history.loss, label="train loss")
    if history.val_loss:
        a1.plot(epochs, history.val_loss, label="validation loss")
    a1.set_xlabel("step" if history.optimizer == "gd" else "epoch")
    a1.set_ylabel("loss")
    a1.set_yscale("log")
    a1.set_title(f"loss (stopped by {history.stop_reason.split(':')[0]})")
    a1.legend()
    at = np.array(history.diagnostic_epochs) + 1
    if history.grad_norm:
        g = np.array(history.grad_norm)
        for l in range(g.shape[1]):
            a2.plot(at, g[:, l], label=f"‖∇W{l + 1}‖")
        a2.set_yscale("log")
        a2.set_ylabel("gradient norm")
    if history.dead_fraction and history.dead_fraction[0]:
        twin = a2.twinx()
        d = np.array(history.dead_fraction)
        for l in range(d.shape[1]):
            twin.plot(at, d[:, l], "--", label=f"dead fraction, hidden {l + 1}")
        twin.set_ylim(0, 1)
        twin.set_ylabel("dead fraction (dashed)")
        twin.legend(loc="upper right", fontsize=8)
    a2.set_xlabel(a1.get_xlabel())
    a2.set_title("diagnostics per layer")
    a2.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bench(results, path):
    """Bar chart of median time per runner, one group per workload."""
    plt = _pyplot()
    rows = [r for r in results if "median_s" in r]
    groups = list(dict.fromkeys(f"{r['workload']} {r['dtype']}" for r in rows))
    runners = list(dict.fromkeys(r["runner"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(groups) * max(1, len(runners)) / 2), 4))
    width = 0.8 / max(len(runners), 1)
    for j, name in enumerate(runners):
        xs, ys = [], []
        for i, g in enumerate(groups):
            for r in rows:
                if r["runner"] == name and f"{r['workload']} {r['dtype']}" == g:
                    xs.append(i + j * width)
                    ys.append(r["median_s"])
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
    ax.set_xticklabels(groups)
    ax.set_yscale("log")
    ax.set_ylabel("median seconds per run (log)")
    ax.set_title("pynet bench")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fit_curves(X, y, fits, path):
    """1-D regression: the data and each fitted curve (label -> predict function)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(X[:, 0], y, s=8, color="0.6", label="data")
    grid = np.linspace(X[:, 0].min(), X[:, 0].max(), 600)[:, None]
    for label, predict in fits.items():
        ax.plot(grid[:, 0], predict(grid), lw=2, label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("ReLU fits piecewise-linear pieces; softplus fits a smooth curve")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
