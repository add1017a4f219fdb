"""Thin setup.py: setuptools reads pyproject.toml; this only adds the optional cffi C extension.

The C backend (csrc/, built by csrc/build_ffi.py) is optional: when no compiler is present or the
build fails, installation still succeeds without it, the reason is written to
kernels/_pynet_c_build.txt, and ``kernels.load("c")`` raises BackendUnavailable quoting it.
``PYNET_REQUIRE_C=1`` turns a failed C build into an installation error.
"""
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
REASON = "_pynet_c_build.txt"


class OptionalBuildExt(build_ext):
    """build_ext that records, rather than raises, a failed C build (unless PYNET_REQUIRE_C=1)."""

    def run(self):
        self._requested_inplace = self.inplace
        try:
            super().run()
        except Exception as exc:  # compiler missing, compile or link error, …
            self._failed(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._failed(exc)
        else:
            self._record(None)

    def copy_extensions_to_source(self):
        # editable installs copy the built file into the tree: only when it was built
        if all(os.path.exists(os.path.join(self.build_lib, self.get_ext_filename(self.get_ext_fullname(e.name))))
               for e in self.extensions):
            super().copy_extensions_to_source()

    def get_outputs(self):
        return [p for p in super().get_outputs() if os.path.exists(p)]

    def _failed(self, exc):
        if os.environ.get("PYNET_REQUIRE_C") == "1":
            raise
        reason = f"the C extension failed to build ({type(exc).__name__}: {exc})"
        sys.stderr.write(f"WARNING: pynet: {reason}; installing without the C backend\n")
        self._record(reason)

    def _record(self, reason):
        """Write (or clear) the reason beside the extension: in build_lib, and in the tree for -e."""
        dirs = [os.path.join(self.build_lib, "kernels")]
        if getattr(self, "_requested_inplace", False) or self.inplace:
            dirs.append(os.path.join(HERE, "kernels"))
        for d in dirs:
            path = os.path.join(d, REASON)
            if reason is None:
                if os.path.exists(path):
                    os.remove(path)
            else:
                os.makedirs(d, exist_ok=True)
                with open(path, "w") as fh:
                    fh.write(reason + "\n")


def _cffi_modules():
    try:
        import cffi  # noqa: F401  (a build requirement; absent only in unusual setups)
    except ImportError:
        if os.environ.get("PYNET_REQUIRE_C") == "1":
            raise
        return {}
    return {"cffi_modules": ["csrc/build_ffi.py:ffibuilder"]}


setup(cmdclass={"build_ext": OptionalBuildExt}, **_cffi_modules())
