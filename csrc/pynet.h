/* pynet.h — the C backend's public API: every kernel of kernels/contract.py in float32 (_f32) and
 * float64 (_f64), plus GEMM, threading and SIMD controls.
 *
 * Conventions: arrays are C-contiguous; n rows, k (or o) columns; `sw` may be NULL (unweighted),
 * `dX` may be NULL (skipped). Activation/loss/optimizer codes are the contract's indices.
 * Losses return the batch loss as double; optimizers return max|Δ|.
 * The declarations between the cdef markers are what csrc/build_ffi.py gives cffi. */
#ifndef PYNET_H
#define PYNET_H

#include <stdint.h>

/* cdef-begin */
/* ---- runtime controls */
void pynet_set_num_threads(int n);                 /* threads a large GEMM may use (>= 1) */
int pynet_get_num_threads(void);                   /* current thread setting */
int pynet_set_simd(int on);                        /* 0 forces the scalar micro-kernel; returns 1 if SIMD now active */
int pynet_simd_active(void);                       /* 1 when the AVX2+FMA micro-kernel is in use */
int pynet_openmp(void);                            /* 1 when built with OpenMP */
int pynet_block_sizes(int dbl, int64_t *out5);     /* out5 = MR, NR, MC, KC, NC for f32 (dbl=0) or f64 */
int pynet_set_gemm_path(int path);                 /* 0 auto, 1 panel path, 2 packed path (tests); returns it */
int pynet_set_tiles(int on);                       /* 0: no row tiles in train_gd, train_epoch (tests) */
const char *pynet_compiler(void);                 /* the compiler that built this library, for pynet info */
int pynet_isa_supported(void);                     /* widest ISA the CPU and OS allow: 0 base, 1 avx2, 2 avx512 */
int pynet_get_isa(void);                           /* the ISA of the math and micro-kernels (PYNET_ISA caps it) */
int pynet_set_isa(int isa);                        /* choose a supported ISA (tests); returns it, −1 if not */

/* ---- GEMM: C = A·B (beta = 0) or C += A·B (beta = 1); A(i,p) = A[i*rsa + p*csa], B(p,j) = B[p*rsb + j*csb] */
void pynet_gemm_f32(int64_t m, int64_t n, int64_t k, const float *A, int64_t rsa, int64_t csa,
                    const float *B, int64_t rsb, int64_t csb, float *C, int64_t ldc, int beta);
void pynet_gemm_f64(int64_t m, int64_t n, int64_t k, const double *A, int64_t rsa, int64_t csa,
                    const double *B, int64_t rsb, int64_t csb, double *C, int64_t ldc, int beta);
/* micro-kernel test hook: c(MR×NR, row stride rsc) (+)= a(packed k×MR)·b(packed k×NR); simd selects the kernel */
int pynet_ukernel_f32(int simd, int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta);
int pynet_ukernel_f64(int simd, int64_t k, const double *a, const double *b, double *c, int64_t rsc, int beta);

/* ---- dense layer */
/* Z = X·W + b */
void pynet_dense_forward_f32(int64_t n, int64_t i, int64_t o, const float *X, const float *W, const float *b, float *Z);
void pynet_dense_forward_f64(int64_t n, int64_t i, int64_t o, const double *X, const double *W, const double *b, double *Z);
/* dW = Xᵀ·dZ, db = Σ_rows dZ, dX = dZ·Wᵀ (skipped when dX is NULL) */
void pynet_dense_backward_f32(int64_t n, int64_t i, int64_t o, const float *X, const float *W, const float *dZ,
                              float *dW, float *db, float *dX);
void pynet_dense_backward_f64(int64_t n, int64_t i, int64_t o, const double *X, const double *W, const double *dZ,
                              double *dW, double *db, double *dX);

/* ---- elementwise math: Y = f(X), f = the contract's MATH[fn], within MATH_ULP (Y may be X) */
void pynet_math_function_f32(int fn, int64_t n, const float *X, float *Y);
void pynet_math_function_f64(int fn, int64_t n, const double *X, double *Y);

/* ---- activations */
/* A = f(Z) elementwise over size entries (A may be Z) */
void pynet_activation_forward_f32(int act, int64_t size, const float *Z, float *A);
void pynet_activation_forward_f64(int act, int64_t size, const double *Z, double *A);
/* dZ = dA ⊙ f'(from A) (dZ may be dA) */
void pynet_activation_backward_f32(int act, int64_t size, const float *A, const float *dA, float *dZ);
void pynet_activation_backward_f64(int act, int64_t size, const double *A, const double *dA, double *dZ);
/* P = exp(Z − rowmax) / Σ_row exp(Z − rowmax) (P may be Z) */
void pynet_softmax_f32(int64_t n, int64_t k, const float *Z, float *P);
void pynet_softmax_f64(int64_t n, int64_t k, const double *Z, double *P);
/* dZ = P ⊙ (dP − Σ_row dP⊙P) (dZ may be dP) */
void pynet_softmax_backward_f32(int64_t n, int64_t k, const float *P, const float *dP, float *dZ);
void pynet_softmax_backward_f64(int64_t n, int64_t k, const double *P, const double *dP, double *dZ);

/* ---- losses: return L, write the gradient */
/* L = Σ w(−Σ Y log softmax Z)/Σw; dZ = w(P − Y)/Σw */
double pynet_softmax_cross_entropy_f32(int64_t n, int64_t k, const float *Z, const float *Y, const float *sw, float *dZ);
double pynet_softmax_cross_entropy_f64(int64_t n, int64_t k, const double *Z, const double *Y, const double *sw, double *dZ);
/* L = Σ w mean_j(softplus Z − Y Z)/Σw; dZ = w(σ(Z) − Y)/(kΣw) */
double pynet_sigmoid_binary_cross_entropy_f32(int64_t n, int64_t k, const float *Z, const float *Y, const float *sw, float *dZ);
double pynet_sigmoid_binary_cross_entropy_f64(int64_t n, int64_t k, const double *Z, const double *Y, const double *sw, double *dZ);
/* L = Σ w Σ_j (Y − Ŷ)²; dŶ = 2w(Ŷ − Y) */
double pynet_ssr_f32(int64_t n, int64_t k, const float *Yhat, const float *Y, const float *sw, float *dYhat);
double pynet_ssr_f64(int64_t n, int64_t k, const double *Yhat, const double *Y, const double *sw, double *dYhat);
/* L = Σ w mean_j (Y − Ŷ)²/Σw; dŶ = 2w(Ŷ − Y)/(kΣw) */
double pynet_mse_f32(int64_t n, int64_t k, const float *Yhat, const float *Y, const float *sw, float *dYhat);
double pynet_mse_f64(int64_t n, int64_t k, const double *Yhat, const double *Y, const double *sw, double *dYhat);
/* A = f_out(Z); L = loss(A, Y); dZ = ∂L/∂Z (fused softmax+CE, sigmoid+BCE) */
double pynet_output_loss_f32(int act, int loss, int64_t n, int64_t k, const float *Z, const float *Y, const float *sw,
                             float *A, float *dZ);
double pynet_output_loss_f64(int act, int loss, int64_t n, int64_t k, const double *Z, const double *Y, const double *sw,
                             double *A, double *dZ);

/* ---- optimizers: return max|Δ| */
/* g = ∇ + λθ; v = μv + g; θ −= lr·(g + μv if nesterov else v) */
double pynet_sgd_update_f32(int64_t p, float *params, const float *grads, float *velocity, double lr, double momentum,
                            int nesterov, double weight_decay);
double pynet_sgd_update_f64(int64_t p, double *params, const double *grads, double *velocity, double lr, double momentum,
                            int nesterov, double weight_decay);
/* g = ∇ + λθ; m = β1 m + (1−β1)g; v = β2 v + (1−β2)g²; θ −= lr·m̂/(√v̂ + ε) */
double pynet_adam_update_f32(int64_t p, float *params, const float *grads, float *m, float *v, int64_t t, double lr,
                             double beta1, double beta2, double eps, double weight_decay);
double pynet_adam_update_f64(int64_t p, double *params, const double *grads, double *m, double *v, int64_t t, double lr,
                             double beta1, double beta2, double eps, double weight_decay);

/* ---- fused whole-network kernels */
/* for each batch of perm: gather, forward, output loss, backward, update; returns the epoch loss */
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
/* grads = ∇L over X[rows] (forward, output loss, backward; no update); returns the batch loss, NaN if grads overflow */
double pynet_batch_gradient_f32(const float *params, float *grads, int64_t nlayers, const int64_t *sizes,
                                const int64_t *acts, int loss, int64_t n, const float *X, const float *Y, const float *sw,
                                int64_t m, const int64_t *rows, float *workspace);
double pynet_batch_gradient_f64(const double *params, double *grads, int64_t nlayers, const int64_t *sizes,
                                const int64_t *acts, int loss, int64_t n, const double *X, const double *Y,
                                const double *sw, int64_t m, const int64_t *rows, double *workspace);
/* full-batch steps until max|Δ| < tol, a non-finite loss, or max_steps; losses[s] = loss before step s */
int64_t pynet_train_gd_f32(float *params, float *grads, int64_t nlayers, const int64_t *sizes, const int64_t *acts,
                           int loss, int64_t n, const float *X, const float *Y, const float *sw, int opt,
                           const double *hyper, float *state, int64_t *step, double tol, int64_t max_steps,
                           float *workspace, double *losses, double *last_step);
int64_t pynet_train_gd_f64(double *params, double *grads, int64_t nlayers, const int64_t *sizes, const int64_t *acts,
                           int loss, int64_t n, const double *X, const double *Y, const double *sw, int opt,
                           const double *hyper, double *state, int64_t *step, double tol, int64_t max_steps,
                           double *workspace, double *losses, double *last_step);
/* out = f_L(…f_1(X·W_1 + b_1)…), block rows at a time */
void pynet_predict_f32(const float *params, int64_t nlayers, const int64_t *sizes, const int64_t *acts, int64_t n,
                       const float *X, float *out, int64_t block, float *workspace);
void pynet_predict_f64(const double *params, int64_t nlayers, const int64_t *sizes, const int64_t *acts, int64_t n,
                       const double *X, double *out, int64_t block, double *workspace);
/* cdef-end */

#endif
