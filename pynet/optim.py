"""Optimizer settings. The update math lives in the kernels; these objects only carry hyper-parameters.

One implementation serves three names: "gd" is "sgd" on the whole data at every step, with the
seed's stopping rule (stop when every parameter step |Δθ| < tol, or after max_steps steps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels import contract as C


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: must be a finite number > 0, got {value}")
    return float(value)


def _in_range(name, value, lo, hi, hi_open=True):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < lo or (value >= hi if hi_open else value > hi):
        raise ValueError(f"{name}: must be in [{lo}, {hi}{')' if hi_open else ']'}, got {value}")
    return float(value)


@dataclass
class SGD:
    """Mini-batch SGD: g = ∇ + λθ; v = μv + g; θ −= lr·(g + μv if nesterov else v)."""

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    name = "sgd"
    kernel = C.SGD

    def __post_init__(self):
        self.lr = _positive("lr", self.lr)
        self.momentum = _in_range("momentum", self.momentum, 0.0, 1.0)
        self.weight_decay = _in_range("weight_decay", self.weight_decay, 0.0, math.inf)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0")

    def hyper(self) -> np.ndarray:
        return np.array([self.lr, self.momentum, float(bool(self.nesterov)), self.weight_decay, 0.9, 0.999, 1e-8])


@dataclass
class GD(SGD):
    """Full-batch gradient descent: the SGD update on all rows, until every |Δθ| < tol or max_steps."""

    tol: float = 1e-6
    max_steps: int = 1000
    name = "gd"

    def __post_init__(self):
        super().__post_init__()
        self.tol = _in_range("tol", self.tol, 0.0, math.inf)
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, (int, np.integer)) or self.max_steps < 1:
            raise ValueError(f"max_steps: must be an integer >= 1, got {self.max_steps!r}")
        self.max_steps = int(self.max_steps)


@dataclass
class Adam:
    """Adam: m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²; θ −= lr·m̂/(√v̂ + ε)."""

    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    name = "adam"
    kernel = C.ADAM

    def __post_init__(self):
        self.lr = _positive("lr", self.lr)
        self.beta1 = _in_range("beta1", self.beta1, 0.0, 1.0)
        self.beta2 = _in_range("beta2", self.beta2, 0.0, 1.0)
        self.eps = _in_range("eps", self.eps, 0.0, math.inf)
        self.weight_decay = _in_range("weight_decay", self.weight_decay, 0.0, math.inf)

    def hyper(self) -> np.ndarray:
        return np.array([self.lr, 0.0, 0.0, self.weight_decay, self.beta1, self.beta2, self.eps])


#: The one registry of optimizer names.
OPTIMIZERS = {"sgd": SGD, "gd": GD, "adam": Adam}


def make(optimizer, **settings):
    """An optimizer object from a name and settings (None values are left at their defaults)."""
    settings = {k: v for k, v in settings.items() if v is not None}
    if isinstance(optimizer, (SGD, Adam)):
        if settings:
            raise ValueError(f"optimizer: pass {', '.join(sorted(settings))} to the optimizer object, "
                             "not to fit(), when optimizer is an object")
        return optimizer
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: unknown name {optimizer!r}; valid names are {', '.join(OPTIMIZERS)}")
    cls = OPTIMIZERS[optimizer]
    fields = set(cls.__dataclass_fields__)
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"{unknown[0]}: not a setting of optimizer {optimizer!r} "
                         f"(its settings: {', '.join(sorted(fields))})")
    return cls(**settings)
