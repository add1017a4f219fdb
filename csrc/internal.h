/* internal.h — declarations shared by the C sources, not part of the Python-facing API.
 *
 * The numeric sources (gemm.c, dense.c, …) are generic over REAL and are compiled twice, through
 * real_f32.c and real_f64.c, which define REAL, SFX() (the _f32/_f64 name suffix) and the blocking
 * sizes before including them. */
#ifndef PYNET_INTERNAL_H
#define PYNET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "pynet.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define PYNET_X86_SIMD 1   /* the AVX2+FMA micro-kernels are built (target attributes) and picked at run time */
#else
#define PYNET_X86_SIMD 0   /* scalar micro-kernels only */
#endif

/* A micro-kernel: c(MR×NR, row stride rsc) = a·b (beta 0) or += a·b (beta 1), a and b packed. */
typedef void (*pynet_ukr_f32_fn)(int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta);
typedef void (*pynet_ukr_f64_fn)(int64_t k, const double *a, const double *b, double *c, int64_t rsc, int beta);

void pynet_ukr_scalar_f32(int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta);
void pynet_ukr_scalar_f64(int64_t k, const double *a, const double *b, double *c, int64_t rsc, int beta);
#if PYNET_X86_SIMD
void pynet_ukr_avx2_f32(int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta);
void pynet_ukr_avx2_f64(int64_t k, const double *a, const double *b, double *c, int64_t rsc, int beta);
/* bias (not NULL: C = bias + A·B, C not read), relu (max(0, ·) before the store) and mask (not NULL, the
 * tile's elements of a matrix laid out as C: C·[mask > 0] before the store) fuse the dense layer */
void pynet_ukr_avx2_nopack_f32(int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
                               int64_t rsb, float *c, int64_t rsc, int beta, int mr, int nr, const float *bias,
                               int relu, const float *mask);
/* the AVX-512 twin of pynet_ukr_avx2_nopack_f32 (up to 12 rows, the same bits), and the dispatch between them */
void pynet_ukr_avx512_nopack_f32(int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
                                 int64_t rsb, float *c, int64_t rsc, int beta, int mr, int nr, const float *bias,
                                 int relu, const float *mask);
void pynet_ukr_nopack_f32(int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b, int64_t rsb, float *c,
                          int64_t rsc, int beta, int mr, int nr, const float *bias, int relu, const float *mask);
int64_t pynet_nopack_rows_f32(int64_t rem);
/* packed 6×16 tile (the g->ukr of the packed path), and 6- or 12-row tiles with the epilogue in registers */
void pynet_ukr_avx512_f32(int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta);
int pynet_ukr_ep_avx512_f32(int rows, int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta,
                            const float *bias, int relu, const float *mask, int check);
void pynet_gemv_n1_avx2_f32(int64_t m, int64_t k, const float *A, int64_t rsa, int64_t csa, const float *B,
                            int64_t rsb, float *C, int64_t ldc, int beta, int64_t kcmax);
void pynet_rank1_avx2_f32(int64_t m, int64_t n, const float *a, int64_t rsa, const float *b, float *C,
                           int64_t ldc, int beta, int relu, const float *mask);
void pynet_tile_ep_avx2_f32(float *c, int64_t ldc, int64_t mr, const float *bias, int relu, const float *mask);
int pynet_ukr_ep_avx2_f32(int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta,
                          const float *bias, int relu, const float *mask, int check);
void pynet_pack_a6_avx2_f32(int64_t kc, const float *src, int64_t rsa, float *dst);
void pynet_pack_bt_avx2_f32(int64_t kc, int64_t nr, const float *src, int64_t csb, float *dst);
double pynet_sgd_avx2_f32(int64_t p, float *params, const float *grads, float *velocity, double lr, double momentum,
                          int nesterov, double weight_decay);
void pynet_sgd_avx2_notrack_f32(int64_t p, float *params, const float *grads, float *velocity, double lr,
                                double momentum, int nesterov, double weight_decay);
int pynet_any_nonfinite_avx2_f32(int64_t p, const float *x);
void pynet_relu_forward_avx2_f32(int64_t size, const float *Z, float *A);
void pynet_relu_backward_avx2_f32(int64_t size, const float *A, const float *dA, float *dZ);
#endif

/* Elementwise math at the widest ISA in use (vmath.c): Y = MATH[fn](X); dZ = dA ⊙ f′(A) for softplus,
 * sigmoid and tanh */
enum { PYNET_ISA_BASE, PYNET_ISA_AVX2, PYNET_ISA_AVX512 };
void pynet_vm_math_f32(int fn, int64_t n, const float *X, float *Y);
void pynet_vm_math_f64(int fn, int64_t n, const double *X, double *Y);
void pynet_vm_act_backward_f32(int act, int64_t n, const float *A, const float *dA, float *dZ);
void pynet_vm_act_backward_f64(int act, int64_t n, const double *A, const double *dA, double *dZ);

/* Threads a GEMM of m·n·k multiply-adds should use (1 below the threshold). */
int pynet_threads_for(double macs);
int pynet_gemm_path(void);
int pynet_tiles(void);       /* 1 when train_gd may use row tiles (PYNET_TILES=0 turns them off) */   /* 0 auto, 1 panel path, 2 packed path (PYNET_GEMM_PATH) */
void *pynet_aligned_alloc(size_t bytes);
void pynet_aligned_free(void *p);

/* Packing buffers for a sequence of GEMMs, sized once for the largest (fused kernels). */
/* a holds nta MC×KC blocks of packed A (one per thread when threads split the 3rd loop); b nb elements */
typedef struct { float *a, *b; size_t na, nb; int nta; } pynet_pack_f32;
typedef struct { double *a, *b; size_t na, nb; int nta; } pynet_pack_f64;

void pynet_gemm_ws_f32(int64_t m, int64_t n, int64_t k, const float *A, int64_t rsa, int64_t csa,
                       const float *B, int64_t rsb, int64_t csb, float *C, int64_t ldc, int beta,
                       const pynet_pack_f32 *pk);
void pynet_gemm_ws_f64(int64_t m, int64_t n, int64_t k, const double *A, int64_t rsa, int64_t csa,
                       const double *B, int64_t rsb, int64_t csb, double *C, int64_t ldc, int beta,
                       const pynet_pack_f64 *pk);
/* Elements of packed A and B a GEMM of this shape needs. */
void pynet_pack_need_f32(int64_t m, int64_t n, int64_t k, size_t *na, size_t *nb);
void pynet_pack_need_f64(int64_t m, int64_t n, int64_t k, size_t *na, size_t *nb);
int pynet_pack_alloc_f32(pynet_pack_f32 *pk, size_t na, size_t nb);
int pynet_pack_alloc_f64(pynet_pack_f64 *pk, size_t na, size_t nb);
void pynet_pack_free_f32(pynet_pack_f32 *pk);
void pynet_pack_free_f64(pynet_pack_f64 *pk);

/* relu: Z = max(0, X·W + b) in the GEMM's store (the same bits as the separate pass);
 * backward, bad (not NULL): 0 or 1 when dW and db were checked for non-finite values on the way (the panel
 * path checks each tile as stored), −1 when not */
void pynet_dense_forward_ws_f32(int64_t n, int64_t i, int64_t o, const float *X, const float *W, const float *b,
                                float *Z, const pynet_pack_f32 *pk, int relu);
void pynet_dense_forward_ws_f64(int64_t n, int64_t i, int64_t o, const double *X, const double *W, const double *b,
                                double *Z, const pynet_pack_f64 *pk, int relu);
void pynet_dense_backward_ws_f32(int64_t n, int64_t i, int64_t o, const float *X, const float *W, const float *dZ,
                                 float *dW, float *db, float *dX, const pynet_pack_f32 *pk, const float *mask,
                                 int *bad);
void pynet_dense_backward_ws_f64(int64_t n, int64_t i, int64_t o, const double *X, const double *W, const double *dZ,
                                 double *dW, double *db, double *dX, const pynet_pack_f64 *pk, const double *mask,
                                 int *bad);

/* contract codes (kernels/contract.py) */
enum { ACT_IDENTITY, ACT_RELU, ACT_SOFTPLUS, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX };
enum { LOSS_SSR, LOSS_MSE, LOSS_BCE, LOSS_CE };
enum { M_EXP, M_EXPM1, M_LOG, M_LOG1P, M_TANH, M_SIGMOID, M_SOFTPLUS };
enum { OPT_SGD, OPT_ADAM };
enum { H_LR, H_MOM, H_NEST, H_WD, H_B1, H_B2, H_EPS };

#define PYNET_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PYNET_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
