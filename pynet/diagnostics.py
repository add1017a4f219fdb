"""The seed's two classic failures, watched cheaply during training: dead ReLU units, vanishing gradients.

Per epoch and per layer the history records the dead fraction (hidden units whose activation was 0
for every sample of the epoch; for full-batch GD, of a probe batch) and the gradient norm
(RMS over the epoch's steps of ‖∂L/∂W_l‖; for GD, the last step's). One warning of each kind per fit.
"""
from __future__ import annotations

import warnings

import numpy as np

from kernels import contract as C

_PROBE_ROWS = 1024


class PynetWarning(UserWarning):
    """Base class of pynet's training warnings."""


class DeadUnitWarning(PynetWarning):
    """A large fraction of a layer's units never activated."""


class VanishingGradientWarning(PynetWarning):
    """Gradients shrink toward the input layer by more than the configured factor."""


class Diagnostics:
    def __init__(self, net, dead_threshold=0.5, vanishing_factor=1e-3):
        if not 0 < dead_threshold <= 1:
            raise ValueError(f"dead_threshold: must be in (0, 1], got {dead_threshold!r}")
        if not 0 < vanishing_factor < 1:
            raise ValueError(f"vanishing_factor: must be in (0, 1), got {vanishing_factor!r}")
        self.net = net
        self.dead_threshold = dead_threshold
        self.vanishing_factor = vanishing_factor
        self.warned_dead = self.warned_vanishing = False
        self._probe_buffers = {}  # layer -> (outputs, workspace), allocated at the fit's first probe

    def record(self, s, history, epoch):
        dead = self._dead_fractions(s)
        norms = self._grad_norms(s)
        history.diagnostic_epochs.append(epoch)
        history.dead_fraction.append(dead)
        history.grad_norm.append(norms)
        self._warn(dead, norms, epoch)

    def _dead_fractions(self, s):
        hidden = self.net.layers[1:-1]
        if not hidden:
            return []
        if s.steps:  # mini-batch: the kernel marked every unit that fired during the epoch
            alive = s.alive
        else:        # full batch: a probe forward pass through each prefix of the network
            alive = self._probe(s)
        out, off = [], 0
        for n in hidden:
            out.append(float(1.0 - alive[off:off + n].mean()))
            off += n
        return out

    def _probe(self, s):
        X = s.X[:_PROBE_ROWS]
        alive = []
        for l in range(1, len(self.net.layers) - 1):
            sizes = s.sizes[:l + 1]
            if l not in self._probe_buffers:  # a full-batch fit probes at every record: allocate once
                self._probe_buffers[l] = (np.empty((X.shape[0], sizes[-1]), X.dtype),
                                          np.empty(C.predict_workspace_size(sizes, X.shape[0]), X.dtype))
            H, ws = self._probe_buffers[l]
            s.k.predict(self.net.params[:C.n_params(sizes)], sizes, s.acts[:l], X, H, X.shape[0], ws)
            alive.append(np.any(H != 0, axis=0))
        return np.concatenate(alive)

    def _grad_norms(self, s):
        if s.steps:
            return [float(np.sqrt(g / s.steps)) for g in s.grad_sq]
        with np.errstate(over="ignore"):  # a diverging fit's last finite gradient may square past float32: inf
            return [float(np.linalg.norm(s.grads[w:b])) for w, b, _ in C.layout(self.net.layers)]

    def _warn(self, dead, norms, epoch):
        if not self.warned_dead:
            for l, frac in enumerate(dead):
                if frac >= self.dead_threshold:
                    self.warned_dead = True
                    warnings.warn(
                        f"hidden layer {l + 1}: {frac:.0%} of its units ({self.net.activations[l]}) were 0 for "
                        f"every sample at epoch {epoch + 1} (dead units). Try softplus or another smooth "
                        "activation, a lower learning rate, or a different initialisation.",
                        DeadUnitWarning, stacklevel=6)
                    break
        if not self.warned_vanishing and len(norms) >= 2:
            sizes = self.net.layers
            rms = [n / np.sqrt(a * b) for n, a, b in zip(norms, sizes[:-1], sizes[1:])]
            if rms[-1] > 0 and rms[0] < self.vanishing_factor * rms[-1]:
                self.warned_vanishing = True
                warnings.warn(
                    f"vanishing gradients: at epoch {epoch + 1} the first layer's gradient is "
                    f"{rms[0] / rms[-1]:.1e} times the last layer's (per weight). Try relu or softplus instead "
                    "of sigmoid/tanh, fewer layers, He initialisation, or standardized inputs.",
                    VanishingGradientWarning, stacklevel=6)
