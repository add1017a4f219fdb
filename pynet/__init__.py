"""pynet: fast multilayer-perceptron training on the CPU.

>>> import pynet
>>> net = pynet.MLP([64, 32, 10], activation="relu", output="softmax")
>>> history = net.fit(X, y, loss="cross_entropy", optimizer="sgd", lr=0.1, epochs=20)

Importing pynet compiles nothing and does not import numba; kernels compile on first use.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("pynet")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0"

from . import datasets
from ._backend import available_backends, get_backend_name, set_backend, set_num_threads, unavailable_reasons
from .diagnostics import DeadUnitWarning, PynetWarning, VanishingGradientWarning
from .history import History
from .io import ModelFileError, load
from .model import MLP, DivergenceWarning, NotFittedError
from .optim import GD, SGD, Adam

__all__ = ["MLP", "SGD", "GD", "Adam", "History", "load", "datasets", "set_backend", "get_backend_name",
           "available_backends", "unavailable_reasons", "set_num_threads", "ModelFileError", "PynetWarning",
           "DeadUnitWarning", "VanishingGradientWarning", "DivergenceWarning", "NotFittedError", "__version__"]
