"""cffi builder for pynet's C backend (API / out-of-line mode): ``kernels._pynet_c``.

setup.py names this file in ``cffi_modules``; ``python csrc/build_ffi.py`` builds the extension in
place (into kernels/) for development. Environment knobs, all optional:

* ``PYNET_NATIVE=1``     add ``-march=native -mtune=native`` (a local build only: the result may not run
                         on another CPU; the default build picks AVX2 at run time instead)
* ``PYNET_NO_OPENMP=1``  build without OpenMP (single-threaded GEMM)
* ``PYNET_CFLAGS`` / ``PYNET_LDFLAGS``  extra flags, e.g. sanitizers (csrc/sanitize.sh)

``CDEF`` repeats the declarations between the cdef markers of pynet.h; tests/test_c_backend.py
checks that the two agree.
"""
import os
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

CDEF = """
void pynet_set_num_threads(int n);
int pynet_get_num_threads(void);
int pynet_set_simd(int on);
int pynet_simd_active(void);
int pynet_openmp(void);
int pynet_block_sizes(int dbl, int64_t *out5);
int pynet_set_gemm_path(int path);
const char *pynet_compiler(void);
void pynet_gemm_f32(int64_t m, int64_t n, int64_t k, const float *A, int64_t rsa, int64_t csa,
                    const float *B, int64_t rsb, int64_t csb, float *C, int64_t ldc, int beta);
void pynet_gemm_f64(int64_t m, int64_t n, int64_t k, const double *A, int64_t rsa, int64_t csa,
                    const double *B, int64_t rsb, int64_t csb, double *C, int64_t ldc, int beta);
int pynet_ukernel_f32(int simd, int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta);
int pynet_ukernel_f64(int simd, int64_t k, const double *a, const double *b, double *c, int64_t rsc, int beta);
void pynet_dense_forward_f32(int64_t n, int64_t i, int64_t o, const float *X, const float *W, const float *b, float *Z);
void pynet_dense_forward_f64(int64_t n, int64_t i, int64_t o, const double *X, const double *W, const double *b, double *Z);
void pynet_dense_backward_f32(int64_t n, int64_t i, int64_t o, const float *X, const float *W, const float *dZ,
                              float *dW, float *db, float *dX);
void pynet_dense_backward_f64(int64_t n, int64_t i, int64_t o, const double *X, const double *W, const double *dZ,
                              double *dW, double *db, double *dX);
void pynet_activation_forward_f32(int act, int64_t size, const float *Z, float *A);
void pynet_activation_forward_f64(int act, int64_t size, const double *Z, double *A);
void pynet_activation_backward_f32(int act, int64_t size, const float *A, const float *dA, float *dZ);
void pynet_activation_backward_f64(int act, int64_t size, const double *A, const double *dA, double *dZ);
void pynet_softmax_f32(int64_t n, int64_t k, const float *Z, float *P);
void pynet_softmax_f64(int64_t n, int64_t k, const double *Z, double *P);
void pynet_softmax_backward_f32(int64_t n, int64_t k, const float *P, const float *dP, float *dZ);
void pynet_softmax_backward_f64(int64_t n, int64_t k, const double *P, const double *dP, double *dZ);
double pynet_softmax_cross_entropy_f32(int64_t n, int64_t k, const float *Z, const float *Y, const float *sw, float *dZ);
double pynet_softmax_cross_entropy_f64(int64_t n, int64_t k, const double *Z, const double *Y, const double *sw, double *dZ);
double pynet_sigmoid_binary_cross_entropy_f32(int64_t n, int64_t k, const float *Z, const float *Y, const float *sw, float *dZ);
double pynet_sigmoid_binary_cross_entropy_f64(int64_t n, int64_t k, const double *Z, const double *Y, const double *sw, double *dZ);
double pynet_ssr_f32(int64_t n, int64_t k, const float *Yhat, const float *Y, const float *sw, float *dYhat);
double pynet_ssr_f64(int64_t n, int64_t k, const double *Yhat, const double *Y, const double *sw, double *dYhat);
double pynet_mse_f32(int64_t n, int64_t k, const float *Yhat, const float *Y, const float *sw, float *dYhat);
double pynet_mse_f64(int64_t n, int64_t k, const double *Yhat, const double *Y, const double *sw, double *dYhat);
double pynet_output_loss_f32(int act, int loss, int64_t n, int64_t k, const float *Z, const float *Y, const float *sw,
                             float *A, float *dZ);
double pynet_output_loss_f64(int act, int loss, int64_t n, int64_t k, const double *Z, const double *Y, const double *sw,
                             double *A, double *dZ);
double pynet_sgd_update_f32(int64_t p, float *params, const float *grads, float *velocity, double lr, double momentum,
                            int nesterov, double weight_decay);
double pynet_sgd_update_f64(int64_t p, double *params, const double *grads, double *velocity, double lr, double momentum,
                            int nesterov, double weight_decay);
double pynet_adam_update_f32(int64_t p, float *params, const float *grads, float *m, float *v, int64_t t, double lr,
                             double beta1, double beta2, double eps, double weight_decay);
double pynet_adam_update_f64(int64_t p, double *params, const double *grads, double *m, double *v, int64_t t, double lr,
                             double beta1, double beta2, double eps, double weight_decay);
double pynet_train_epoch_f32(float *params, float *grads, int64_t nlayers, const int64_t *sizes, const int64_t *acts,
                             int loss, int64_t n, const float *X, const float *Y, const float *sw, int64_t m,
                             const int64_t *perm, int64_t batch_size, int opt, const double *hyper, float *state,
                             int64_t *step, float *workspace, int64_t n_alive, int64_t *alive, int64_t n_grad_sq,
                             double *grad_sq);
double pynet_train_epoch_f64(double *params, double *grads, int64_t nlayers, const int64_t *sizes, const int64_t *acts,
                             int loss, int64_t n, const double *X, const double *Y, const double *sw, int64_t m,
                             const int64_t *perm, int64_t batch_size, int opt, const double *hyper, double *state,
                             int64_t *step, double *workspace, int64_t n_alive, int64_t *alive, int64_t n_grad_sq,
                             double *grad_sq);
double pynet_batch_gradient_f32(const float *params, float *grads, int64_t nlayers, const int64_t *sizes,
                                const int64_t *acts, int loss, int64_t n, const float *X, const float *Y, const float *sw,
                                int64_t m, const int64_t *rows, float *workspace);
double pynet_batch_gradient_f64(const double *params, double *grads, int64_t nlayers, const int64_t *sizes,
                                const int64_t *acts, int loss, int64_t n, const double *X, const double *Y,
                                const double *sw, int64_t m, const int64_t *rows, double *workspace);
int64_t pynet_train_gd_f32(float *params, float *grads, int64_t nlayers, const int64_t *sizes, const int64_t *acts,
                           int loss, int64_t n, const float *X, const float *Y, const float *sw, int opt,
                           const double *hyper, float *state, int64_t *step, double tol, int64_t max_steps,
                           float *workspace, double *losses, double *last_step);
int64_t pynet_train_gd_f64(double *params, double *grads, int64_t nlayers, const int64_t *sizes, const int64_t *acts,
                           int loss, int64_t n, const double *X, const double *Y, const double *sw, int opt,
                           const double *hyper, double *state, int64_t *step, double tol, int64_t max_steps,
                           double *workspace, double *losses, double *last_step);
void pynet_predict_f32(const float *params, int64_t nlayers, const int64_t *sizes, const int64_t *acts, int64_t n,
                       const float *X, float *out, int64_t block, float *workspace);
void pynet_predict_f64(const double *params, int64_t nlayers, const int64_t *sizes, const int64_t *acts, int64_t n,
                       const double *X, double *out, int64_t block, double *workspace);
"""


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
