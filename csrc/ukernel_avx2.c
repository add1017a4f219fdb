/* ukernel_avx2.c — AVX2+FMA register micro-kernels (6×16 float, 6×8 double).
 *
 * Compiled with function target attributes, not -mavx2, so the default build stays portable; the
 * runtime (runtime.c) calls them only when __builtin_cpu_supports says the CPU has AVX2 and FMA.
 * The twelve accumulators are separately named variables: an array of __m256 made GCC keep the
 * tile on the stack and store it every k (see PERFORMANCE-NOTES.md). ukernel_scalar.c is the
 * reference these must match. */
#include "internal.h"

#if PYNET_X86_SIMD
#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma")))

/* one row of the C tile: rank-1 update with the broadcast a[r] */
#define ROW_F32(r, c0, c1)                                   \
    do {                                                     \
        __m256 ar = _mm256_broadcast_ss(a + (r));            \
        c0 = _mm256_fmadd_ps(ar, b0, c0);                    \
        c1 = _mm256_fmadd_ps(ar, b1, c1);                    \
    } while (0)

/* the C tile's rows (two lines each) are fetched while the k loop runs: its update at the end then
 * hits L1 instead of missing (C rows are ldc apart, a cache miss per row otherwise) */
#define PREFETCH_C(c, rsc, rows)                                                    \
    do {                                                                            \
        for (int r_ = 0; r_ < (rows); ++r_) {                                       \
            _mm_prefetch((const char *)((c) + r_ * (rsc)), _MM_HINT_T0);            \
            _mm_prefetch((const char *)((c) + r_ * (rsc) + 15), _MM_HINT_T0);       \
        }                                                                           \
    } while (0)

#define STORE_F32(r, c0, c1)                                                        \
    do {                                                                            \
        float *cr = c + (r) * rsc;                                                  \
        if (beta) {                                                                 \
            c0 = _mm256_add_ps(c0, _mm256_loadu_ps(cr));                            \
            c1 = _mm256_add_ps(c1, _mm256_loadu_ps(cr + 8));                        \
        }                                                                           \
        _mm256_storeu_ps(cr, c0);                                                   \
        _mm256_storeu_ps(cr + 8, c1);                                               \
    } while (0)

TGT void pynet_ukr_avx2_f32(int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    PREFETCH_C(c, rsc, PYNET_MR);
#pragma GCC unroll 4
    for (int64_t p = 0; p < k; ++p) {          /* micro-kernel loop: one rank-1 update of the 6×16 tile per k */
        __m256 b0 = _mm256_loadu_ps(b);
        __m256 b1 = _mm256_loadu_ps(b + 8);
        _mm_prefetch((const char *)(b + 8 * PYNET_NR_F32), _MM_HINT_T0);
        ROW_F32(0, c00, c01);
        ROW_F32(1, c10, c11);
        ROW_F32(2, c20, c21);
        ROW_F32(3, c30, c31);
        ROW_F32(4, c40, c41);
        ROW_F32(5, c50, c51);
        a += PYNET_MR;
        b += PYNET_NR_F32;
    }
    STORE_F32(0, c00, c01);
    STORE_F32(1, c10, c11);
    STORE_F32(2, c20, c21);
    STORE_F32(3, c30, c31);
    STORE_F32(4, c40, c41);
    STORE_F32(5, c50, c51);
}

/* No-pack micro-kernel for small GEMMs (gemm.c's small path): A read in place through its strides
 * (rsa, csa), B through a row stride rsb with unit column stride (in place or a packed panel), any
 * mr ≤ MR rows and nr ≤ NR columns. Rows past mr repeat row mr−1 (computed, never stored); columns
 * past nr are masked on load and store, so there is no scalar tail. Each C element gets the same
 * FMA chain in the same k order as the packed kernel above, so both paths give identical bits. */
#define SROW_F32(r, c0, c1)                                  \
    do {                                                     \
        __m256 ar = _mm256_broadcast_ss(a##r + off);         \
        c0 = _mm256_fmadd_ps(ar, b0, c0);                    \
        c1 = _mm256_fmadd_ps(ar, b1, c1);                    \
    } while (0)

#define SSTORE_F32(r, c0, c1)                                                       \
    do {                                                                            \
        if ((r) < mr) {                                                             \
            float *cr = c + (r) * rsc;                                              \
            if (nr == PYNET_NR_F32) {                                               \
                if (beta) {                                                         \
                    c0 = _mm256_add_ps(c0, _mm256_loadu_ps(cr));                    \
                    c1 = _mm256_add_ps(c1, _mm256_loadu_ps(cr + 8));                \
                }                                                                   \
                _mm256_storeu_ps(cr, c0);                                           \
                _mm256_storeu_ps(cr + 8, c1);                                       \
            } else {                                                                \
                if (beta) {                                                         \
                    c0 = _mm256_add_ps(c0, _mm256_maskload_ps(cr, m0));             \
                    c1 = _mm256_add_ps(c1, _mm256_maskload_ps(cr + 8, m1));         \
                }                                                                   \
                _mm256_maskstore_ps(cr, m0, c0);                                    \
                _mm256_maskstore_ps(cr + 8, m1, c1);                                \
            }                                                                       \
        }                                                                           \
    } while (0)

TGT void pynet_ukr_avx2_nopack_f32(int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
                                   int64_t rsb, float *c, int64_t rsc, int beta, int mr, int nr)
{
    const float *a0 = a, *a1 = a + PYNET_MIN(1, mr - 1) * rsa, *a2 = a + PYNET_MIN(2, mr - 1) * rsa;
    const float *a3 = a + PYNET_MIN(3, mr - 1) * rsa, *a4 = a + PYNET_MIN(4, mr - 1) * rsa;
    const float *a5 = a + PYNET_MIN(5, mr - 1) * rsa;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    int64_t off = 0;
    PREFETCH_C(c, rsc, mr);
    if (nr == PYNET_NR_F32) {
#pragma GCC unroll 4
        for (int64_t p = 0; p < k; ++p) {      /* micro-kernel loop, full width */
            __m256 b0 = _mm256_loadu_ps(b);
            __m256 b1 = _mm256_loadu_ps(b + 8);
            SROW_F32(0, c00, c01);
            SROW_F32(1, c10, c11);
            SROW_F32(2, c20, c21);
            SROW_F32(3, c30, c31);
            SROW_F32(4, c40, c41);
            SROW_F32(5, c50, c51);
            off += csa;
            b += rsb;
        }
    } else {
        for (int64_t p = 0; p < k; ++p) {      /* micro-kernel loop, columns past nr masked (read as 0) */
            __m256 b0 = _mm256_maskload_ps(b, m0);
            __m256 b1 = _mm256_maskload_ps(b + 8, m1);
            SROW_F32(0, c00, c01);
            SROW_F32(1, c10, c11);
            SROW_F32(2, c20, c21);
            SROW_F32(3, c30, c31);
            SROW_F32(4, c40, c41);
            SROW_F32(5, c50, c51);
            off += csa;
            b += rsb;
        }
    }
    SSTORE_F32(0, c00, c01);
    SSTORE_F32(1, c10, c11);
    SSTORE_F32(2, c20, c21);
    SSTORE_F32(3, c30, c31);
    SSTORE_F32(4, c40, c41);
    SSTORE_F32(5, c50, c51);
}

#define ROW_F64(r, c0, c1)                                   \
    do {                                                     \
        __m256d ar = _mm256_broadcast_sd(a + (r));           \
        c0 = _mm256_fmadd_pd(ar, b0, c0);                    \
        c1 = _mm256_fmadd_pd(ar, b1, c1);                    \
    } while (0)

#define STORE_F64(r, c0, c1)                                                        \
    do {                                                                            \
        double *cr = c + (r) * rsc;                                                 \
        if (beta) {                                                                 \
            c0 = _mm256_add_pd(c0, _mm256_loadu_pd(cr));                            \
            c1 = _mm256_add_pd(c1, _mm256_loadu_pd(cr + 4));                        \
        }                                                                           \
        _mm256_storeu_pd(cr, c0);                                                   \
        _mm256_storeu_pd(cr + 4, c1);                                               \
    } while (0)

TGT void pynet_ukr_avx2_f64(int64_t k, const double *a, const double *b, double *c, int64_t rsc, int beta)
{
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
    for (int64_t p = 0; p < k; ++p) {          /* micro-kernel loop: one rank-1 update of the 6×8 tile per k */
        __m256d b0 = _mm256_loadu_pd(b);
        __m256d b1 = _mm256_loadu_pd(b + 4);
        _mm_prefetch((const char *)(b + 8 * PYNET_NR_F64), _MM_HINT_T0);
        ROW_F64(0, c00, c01);
        ROW_F64(1, c10, c11);
        ROW_F64(2, c20, c21);
        ROW_F64(3, c30, c31);
        ROW_F64(4, c40, c41);
        ROW_F64(5, c50, c51);
        a += PYNET_MR;
        b += PYNET_NR_F64;
    }
    STORE_F64(0, c00, c01);
    STORE_F64(1, c10, c11);
    STORE_F64(2, c20, c21);
    STORE_F64(3, c30, c31);
    STORE_F64(4, c40, c41);
    STORE_F64(5, c50, c51);
}

#else
typedef int pynet_no_x86_simd; /* ISO C forbids an empty translation unit */
#endif
