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
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
#: translation units: the generic numeric sources are compiled through real_f32.c / real_f64.c
SOURCES = ["runtime.c", "real_f32.c", "real_f64.c", "ukernel_avx2.c", "vec_avx2.c"]
#: every file whose change must rebuild the extension
DEPENDS = ["pynet.h", "internal.h", "config.h", "ukernel_scalar.c", "gemm.c", "dense.c", "activations.c",
           "losses.c", "optimizers.c", "train.c"]


def _cdef():
    """The declarations between the cdef markers of pynet.h, comments removed: one source, no drift."""
    with open(os.path.join(HERE, "pynet.h")) as fh:
        block = fh.read().split("/* cdef-begin */")[1].split("/* cdef-end */")[0]
    return re.sub(r"/\*.*?\*/", "", block, flags=re.S)


CDEF = _cdef()


def _rel(name):
    # setuptools wants source paths relative to the project root
    return os.path.relpath(os.path.join(HERE, name), ROOT) if os.getcwd() == ROOT else os.path.join(HERE, name)


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


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
_cflags, _ldflags = compile_flags()
ffibuilder.set_source(
    "kernels._pynet_c",
    '#include "pynet.h"',
    sources=[_rel(s) for s in SOURCES],
    depends=[_rel(s) for s in DEPENDS],
    include_dirs=[_rel(".") if os.getcwd() == ROOT else HERE],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    # in-place development build: kernels/_pynet_c.*.so next to kernels/c_backend.py
    os.chdir(ROOT)
    ffibuilder.compile(tmpdir=ROOT, verbose=True)
