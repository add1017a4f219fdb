"""cffi builder for pynet's C backend (API / out-of-line mode): ``kernels._pynet_c``.

setup.py names this file in ``cffi_modules``; ``python csrc/build_ffi.py`` builds the extension in
place (into kernels/) for development. Environment knobs, all optional:

* ``PYNET_NATIVE=1``     add ``-march=native -mtune=native`` (a local build only: the result may not run
                         on another CPU; the default build picks AVX2 at run time instead)
* ``PYNET_NO_OPENMP=1``  build without OpenMP (single-threaded GEMM)
* ``PYNET_CFLAGS`` / ``PYNET_LDFLAGS``  extra flags, e.g. sanitizers (csrc/sanitize.sh)

``CDEF`` is read from the declarations between the cdef markers of pynet.h.
"""
import os
import re
import shlex
import shutil
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
#: translation units: the generic numeric sources are compiled through real_f32.c / real_f64.c
SOURCES = ["runtime.c", "real_f32.c", "real_f64.c", "ukernel_avx2.c", "vec_avx2.c", "vmath.c", "ukernel_avx512.c"]
#: every file whose change must rebuild the extension
DEPENDS = ["pynet.h", "internal.h", "config.h", "vmath.h", "ukernel_scalar.c", "gemm.c", "dense.c", "activations.c",
           "losses.c", "optimizers.c", "train.c"]


def _cdef():
    """The declarations between the cdef markers of pynet.h, comments removed: one source, no drift."""
    with open(os.path.join(HERE, "pynet.h")) as fh:
        block = fh.read().split("/* cdef-begin */")[1].split("/* cdef-end */")[0]
    return re.sub(r"/\*.*?\*/", "", block, flags=re.S)


CDEF = _cdef()


def compile_flags():
    """(compile args, link args) for this platform and environment."""
    cflags, ldflags = [], []
    if sys.platform != "win32":
        cflags += ["-O3", "-std=c11", "-fno-math-errno", "-Wall"]
        if os.environ.get("PYNET_NO_OPENMP") != "1":
            cflags.append("-fopenmp")
            ldflags.append("-fopenmp")
        if os.environ.get("PYNET_NATIVE") == "1":
            cflags += ["-march=native", "-mtune=native"]
    elif os.environ.get("PYNET_NO_OPENMP") != "1":
        cflags += ["/O2", "/openmp"]
    cflags += shlex.split(os.environ.get("PYNET_CFLAGS", ""))
    ldflags += shlex.split(os.environ.get("PYNET_LDFLAGS", ""))
    return cflags, ldflags


def make_builder(relative: bool) -> FFI:
    """The cffi builder of ``kernels._pynet_c``; ``relative``: source paths relative to the project root (setuptools
    wants them so when it builds from there), else absolute."""
    def path(name):
        full = os.path.join(HERE, name)
        return os.path.relpath(full, ROOT) if relative else full

    cflags, ldflags = compile_flags()
    builder = FFI()
    builder.cdef(CDEF)
    builder.set_source("kernels._pynet_c", '#include "pynet.h"', sources=[path(s) for s in SOURCES],
                       depends=[path(s) for s in DEPENDS], include_dirs=[path(".")], extra_compile_args=cflags,
                       extra_link_args=ldflags)
    return builder


ffibuilder = make_builder(relative=os.getcwd() == ROOT)

if __name__ == "__main__":
    # In-place development build: compiled in build/ffi, then copied next to kernels/c_backend.py. cffi's compile
    # reads the project configuration of the directory it builds in with this environment's setuptools (a
    # virtual environment's may predate pyproject.toml's license string), so it builds where there is none.
    out = os.path.join(ROOT, "build", "ffi")
    built = make_builder(relative=False).compile(tmpdir=out, verbose=True)
    shutil.copy2(built, os.path.join(ROOT, "kernels", os.path.basename(built)))
