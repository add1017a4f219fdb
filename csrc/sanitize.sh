#!/usr/bin/env bash
# Build the C backend with AddressSanitizer + UndefinedBehaviorSanitizer in a scratch copy of the
# tree and run the whole test suite against it, with the c backend (and the numpy reference). The normal in-place build is
# left alone. Usage: csrc/sanitize.sh [extra pytest args]
# tests/test_numba_backend.py is left out: no C code runs in it, and in the scratch copy it only recompiles the Numba
# kernels from an empty cache under the preloaded sanitizer runtime (minutes of CI for nothing the sanitizers check).
#
# Valgrind on a short training run (documented in docs/performance.md, C backend section):
#   python csrc/build_ffi.py && PYTHONMALLOC=malloc valgrind --error-exitcode=1 --leak-check=no \
#       --suppressions=csrc/valgrind-python.supp "$(python -c 'import sys; print(sys.executable)')" csrc/short_run.py
# (the real interpreter, not a pyenv shim; the suppressions cover CPython's and ld.so's own reports)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
git ls-files -co --exclude-standard | grep -v -E '\.(so|o)$' | tar -cf - -T - | tar -xf - -C "$WORK"
cd "$WORK"
PYNET_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g" \
PYNET_LDFLAGS="-fsanitize=address,undefined" python csrc/build_ffi.py > build.log 2>&1 || { cat build.log; exit 1; }
# Python itself is not instrumented: preload the runtime, ignore CPython's own allocations at exit
LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
PYNET_TEST_BACKENDS=c,numpy PYNET_BACKEND=c python -m pytest -q -p no:cacheprovider tests \
  --ignore=tests/test_numba_backend.py "$@"
