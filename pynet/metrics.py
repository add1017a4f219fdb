"""Scores reported by ``score`` and the training history."""
from __future__ import annotations

import numpy as np


def accuracy(y_true, y_pred, sample_weight=None) -> float:
    """Fraction of rows predicted exactly (all outputs of a row, for multi-label)."""
    hit = np.asarray(y_true) == np.asarray(y_pred)
    if hit.ndim == 2:
        hit = hit.all(axis=1)
    return float(np.average(hit, weights=sample_weight))


def r2(y_true, y_pred, sample_weight=None) -> float:
    """Coefficient of determination 1 − Σ(y − ŷ)² / Σ(y − ȳ)², averaged over outputs."""
    y_true = np.asarray(y_true, np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, np.float64).reshape(len(y_pred), -1)
    w = np.ones(len(y_true)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    mean = np.average(y_true, axis=0, weights=w)
    ss_res = (w[:, None] * (y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = (w[:, None] * (y_true - mean) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.where(ss_res > 0, 0.0, 1.0))
    return float(per.mean())


def mse(y_true, y_pred) -> float:
    """Mean squared error over rows and outputs."""
    d = np.asarray(y_true, np.float64).reshape(len(y_true), -1) - np.asarray(y_pred, np.float64).reshape(len(y_pred), -1)
    return float(np.mean(d * d))
