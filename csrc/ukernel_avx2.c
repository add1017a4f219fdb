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

/* bias (first KC slab, instead of reading C: acc + bias, the bits of C = bias then C += acc), ReLU
 * (last slab: max(0, ·), the bits of the separate ReLU pass) and the ReLU-backward mask (last slab:
 * C·[mask > 0] as a product, the bits of its pass) applied in registers before the store */
#define MASK01(x) _mm256_and_ps(_mm256_cmp_ps((x), _mm256_setzero_ps(), _CMP_GT_OQ), _mm256_set1_ps(1.0f))
#define LOADU_F32(p, m) _mm256_loadu_ps(p)
#define LOADM_F32(p, m) _mm256_maskload_ps((p), (m))
/* ReLU and the ReLU-backward mask on one 16-wide row in c0, c1 (mask row mrow); LD loads 8 floats under
 * lane mask m0 / m1 (ignored by LOADU_F32) */
#define RELU_MASK_F32(c0, c1, mrow, LD, m0, m1)                                    \
    do {                                                                           \
        if (relu) {                                                                \
            c0 = _mm256_max_ps(_mm256_setzero_ps(), c0);                           \
            c1 = _mm256_max_ps(_mm256_setzero_ps(), c1);                           \
        }                                                                          \
        if (mask) {                                                                \
            c0 = _mm256_mul_ps(c0, MASK01(LD((mrow), m0)));                        \
            c1 = _mm256_mul_ps(c1, MASK01(LD((mrow) + 8, m1)));                    \
        }                                                                          \
    } while (0)
#define SSTORE_F32(r, c0, c1)                                                       \
    do {                                                                            \
        if ((r) < mr) {                                                             \
            float *cr = c + (r) * rsc;                                              \
            if (nr == PYNET_NR_F32) {                                               \
                if (bias) {                                                         \
                    c0 = _mm256_add_ps(c0, _mm256_loadu_ps(bias));                  \
                    c1 = _mm256_add_ps(c1, _mm256_loadu_ps(bias + 8));              \
                } else if (beta) {                                                  \
                    c0 = _mm256_add_ps(c0, _mm256_loadu_ps(cr));                    \
                    c1 = _mm256_add_ps(c1, _mm256_loadu_ps(cr + 8));                \
                }                                                                   \
                RELU_MASK_F32(c0, c1, mask + (r) * rsc, LOADU_F32, 0, 0);           \
                _mm256_storeu_ps(cr, c0);                                           \
                _mm256_storeu_ps(cr + 8, c1);                                       \
            } else {                                                                \
                if (bias) {                                                         \
                    c0 = _mm256_add_ps(c0, _mm256_maskload_ps(bias, m0));           \
                    c1 = _mm256_add_ps(c1, _mm256_maskload_ps(bias + 8, m1));       \
                } else if (beta) {                                                  \
                    c0 = _mm256_add_ps(c0, _mm256_maskload_ps(cr, m0));             \
                    c1 = _mm256_add_ps(c1, _mm256_maskload_ps(cr + 8, m1));         \
                }                                                                   \
                RELU_MASK_F32(c0, c1, mask + (r) * rsc, LOADM_F32, m0, m1);         \
                _mm256_maskstore_ps(cr, m0, c0);                                    \
                _mm256_maskstore_ps(cr + 8, m1, c1);                                \
            }                                                                       \
        }                                                                           \
    } while (0)

/* The body for R = 6 or 4 register rows (R is a constant after inlining: rows ≥ R vanish). The 4-row
 * variant (8 accumulators, still enough independent FMA chains for both FMA pipes) lets a tile
 * sequence cover m = 32, 20 or 128 with no wasted rows, where 6-row tiles computed 36, 24, 132. */
static inline __attribute__((always_inline)) TGT void nopack_body_f32(const int R, int64_t k, const float *a,
                                                                    int64_t rsa, int64_t csa, const float *b,
                                                                    int64_t rsb, float *c, int64_t rsc, int beta,
                                                                    int mr, int nr, const float *bias, int relu,
                                                                    const float *mask)
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
            if (R > 4) {
                SROW_F32(4, c40, c41);
                SROW_F32(5, c50, c51);
            }
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
            if (R > 4) {
                SROW_F32(4, c40, c41);
                SROW_F32(5, c50, c51);
            }
            off += csa;
            b += rsb;
        }
    }
    SSTORE_F32(0, c00, c01);
    SSTORE_F32(1, c10, c11);
    SSTORE_F32(2, c20, c21);
    SSTORE_F32(3, c30, c31);
    if (R > 4) {
        SSTORE_F32(4, c40, c41);
        SSTORE_F32(5, c50, c51);
    }
}

/* STORE_F32 with the epilogue: C = acc + bias (bias: C not read), acc + C (beta) or acc, then ReLU and the mask
 * (laid out as C, row stride rsc) */
#define EPSTORE_F32(r, c0, c1)                                                      \
    do {                                                                            \
        float *cr = c + (r) * rsc;                                                  \
        if (bias) {                                                                 \
            c0 = _mm256_add_ps(c0, _mm256_loadu_ps(bias));                          \
            c1 = _mm256_add_ps(c1, _mm256_loadu_ps(bias + 8));                      \
        } else if (beta) {                                                          \
            c0 = _mm256_add_ps(c0, _mm256_loadu_ps(cr));                            \
            c1 = _mm256_add_ps(c1, _mm256_loadu_ps(cr + 8));                        \
        }                                                                           \
        RELU_MASK_F32(c0, c1, mask + (r) * rsc, LOADU_F32, 0, 0);                   \
        _mm256_storeu_ps(cr, c0);                                                   \
        _mm256_storeu_ps(cr + 8, c1);                                               \
        if (check) {   /* x − x is NaN exactly for ±inf and NaN */                  \
            nf = _mm256_or_ps(nf, _mm256_cmp_ps(_mm256_sub_ps(c0, c0), _mm256_setzero_ps(), _CMP_UNORD_Q)); \
            nf = _mm256_or_ps(nf, _mm256_cmp_ps(_mm256_sub_ps(c1, c1), _mm256_setzero_ps(), _CMP_UNORD_Q)); \
        }                                                                           \
    } while (0)

static inline __attribute__((always_inline)) TGT int ukr_body_f32(int64_t k, const float *a, const float *b, float *c,
                                                                int64_t rsc, int beta, const float *bias, int relu,
                                                                const float *mask, int check)
{
    __m256 nf = _mm256_setzero_ps();
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
    EPSTORE_F32(0, c00, c01);
    EPSTORE_F32(1, c10, c11);
    EPSTORE_F32(2, c20, c21);
    EPSTORE_F32(3, c30, c31);
    EPSTORE_F32(4, c40, c41);
    EPSTORE_F32(5, c50, c51);
    return _mm256_movemask_ps(nf) != 0;
}

TGT void pynet_ukr_avx2_f32(int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta)
{
    ukr_body_f32(k, a, b, c, rsc, beta, NULL, 0, NULL, 0);   /* no epilogue: the tests fold away */
}

/* The packed path's full tiles with an epilogue (+ bias in the first KC slab, ReLU or the ReLU-backward mask in
 * the last): applied to the accumulators before the one store, the operations of pynet_tile_ep_avx2_f32 on the
 * stored tile in the same order, so the same bits. Storing the tile and reloading it for the epilogue was
 * ~1.7 % of the wide network's epoch. check: returns whether a stored value is ±inf or NaN (the gradient
 * check of dW, in registers instead of a pass over the gradient). */
TGT int pynet_ukr_ep_avx2_f32(int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta,
                              const float *bias, int relu, const float *mask, int check)
{
    return ukr_body_f32(k, a, b, c, rsc, beta, bias, relu, mask, check);
}

/* mr ≤ 4 rows run the 4-row body (gemm.c's pynet_tile_rows picks 4-row tiles for the m-edge). */
TGT void pynet_ukr_avx2_nopack_f32(int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
                                   int64_t rsb, float *c, int64_t rsc, int beta, int mr, int nr, const float *bias,
                                   int relu, const float *mask)
{
    if (mr <= 4)
        nopack_body_f32(4, k, a, rsa, csa, b, rsb, c, rsc, beta, mr, nr, bias, relu, mask);
    else
        nopack_body_f32(6, k, a, rsa, csa, b, rsb, c, rsc, beta, mr, nr, bias, relu, mask);
}

/* The packed path's epilogue on a stored full-width tile (mr rows × 16, in L1), as SSTORE_F32 applies it:
 * + bias, max(0, ·), ·[mask > 0]. The scalar loop (gemm.c's tile_ep) made the wide network's dX GEMM
 * about 10 % slower. */
TGT void pynet_tile_ep_avx2_f32(float *c, int64_t ldc, int64_t mr, const float *bias, int relu, const float *mask)
{
    for (int64_t i = 0; i < mr; ++i) {
        float *cr = c + i * ldc;
        __m256 c0 = _mm256_loadu_ps(cr), c1 = _mm256_loadu_ps(cr + 8);
        if (bias) {
            c0 = _mm256_add_ps(c0, _mm256_loadu_ps(bias));
            c1 = _mm256_add_ps(c1, _mm256_loadu_ps(bias + 8));
        }
        RELU_MASK_F32(c0, c1, mask + i * ldc, LOADU_F32, 0, 0);
        _mm256_storeu_ps(cr, c0);
        _mm256_storeu_ps(cr + 8, c1);
    }
}

/* C (m×1, stride ldc) (+)= A·B for one column of B: eight rows of C per vector, each lane one row's
 * FMA chain over k in order, restarted per KC slab and added to C like the 6×16 kernel's
 * accumulators — identical bits to the tile paths, without computing 15 padding columns. A's
 * column for eight rows is one load when rows are contiguous (rsa = 1, e.g. Xᵀ in dW = Xᵀ·dZ),
 * else eight rows × eight k are loaded along k and transposed in registers (Z = H·w). */
static inline __attribute__((always_inline)) TGT void transpose8_ps(__m256 *r)
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* acc + the FMA chain over 8 k of 8 rows (row pointers ar, at column p), transposed in registers */
static inline __attribute__((always_inline)) TGT __m256 gemv_t8(const float *const *ar, int64_t p, const float *b,
                                                              int64_t rsb, __m256 acc)
{
    __m256 t[8];
    for (int r = 0; r < 8; ++r)
        t[r] = _mm256_loadu_ps(ar[r] + p);
    transpose8_ps(t);
    for (int q = 0; q < 8; ++q)
        acc = _mm256_fmadd_ps(t[q], _mm256_broadcast_ss(b + q * rsb), acc);
    return acc;
}

/* not inlined: inlined, its buffer v became the home of the accumulators inside the k loop (a spill per FMA) */
static __attribute__((noinline)) TGT void gemv_store(__m256 acc, int rows, float *c, int64_t ldc, int add)
{
    float v[8];
    _mm256_storeu_ps(v, acc);
    for (int r = 0; r < rows; ++r)
        c[r * ldc] = add ? c[r * ldc] + v[r] : v[r];
}

/* G (1, 2 or 4) groups of eight rows from row i0 (each group: rows past m repeat its last row, computed, never
 * stored), their chains interleaved: one group's chain of k dependent FMAs was latency-bound (dW = Hᵀ·dZ of
 * the small network's 64→1 layer: eight groups of 32 FMAs one after another). Each lane's chain is unchanged.
 * colA (rsa = 1) and rowA (csa = 1) pick the loop at compile time: the accumulators are named variables, and
 * with all three loops in one body GCC kept some on the stack. */
#define GEMV_G(g, stmt) do { if ((g) < G) { stmt; } } while (0)
static inline __attribute__((always_inline)) TGT void gemv_n1_groups(const int G, const int colA, const int rowA,
                                                                   int64_t i0, int64_t m, int64_t k,
                                                                   const float *A, int64_t rsa, int64_t csa,
                                                                   const float *B, int64_t rsb, float *C,
                                                                   int64_t ldc, int beta, int64_t kcmax)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int rows[4];
    __m256i rmask[4], ridx[4];
    const float *ar[4][8];
    for (int g = 0; g < G; ++g) {
        rows[g] = (int)PYNET_MIN(8, m - i0 - 8 * g);
        rmask[g] = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows[g]), lane);
        ridx[g] = _mm256_mullo_epi32(_mm256_min_epi32(lane, _mm256_set1_epi32(rows[g] - 1)),
                                     _mm256_set1_epi32((int)rsa));
        for (int r = 0; r < 8; ++r)
            ar[g][r] = A + (i0 + 8 * g + PYNET_MIN(r, rows[g] - 1)) * rsa;
    }
    for (int64_t pc = 0; pc < k; pc += kcmax) {                /* KC slabs, as the tile kernels */
        const int64_t kc = PYNET_MIN(kcmax, k - pc);
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
        int64_t p = 0;
        if (colA) {
            const float *a = A + i0 + pc * csa;
            for (; p < kc; ++p) {                              /* contiguous column of A */
                const __m256 bp = _mm256_broadcast_ss(B + (pc + p) * rsb);
                const float *ap = a + p * csa;
                GEMV_G(0, acc0 = _mm256_fmadd_ps(_mm256_maskload_ps(ap, rmask[0]), bp, acc0));
                GEMV_G(1, acc1 = _mm256_fmadd_ps(_mm256_maskload_ps(ap + 8, rmask[1]), bp, acc1));
                GEMV_G(2, acc2 = _mm256_fmadd_ps(_mm256_maskload_ps(ap + 16, rmask[2]), bp, acc2));
                GEMV_G(3, acc3 = _mm256_fmadd_ps(_mm256_maskload_ps(ap + 24, rmask[3]), bp, acc3));
            }
        } else if (rowA) {
            for (; p + 8 <= kc; p += 8) {                      /* 8 rows × 8 k, transposed in registers */
                const float *bp = B + (pc + p) * rsb;
                GEMV_G(0, acc0 = gemv_t8(ar[0], pc + p, bp, rsb, acc0));
                GEMV_G(1, acc1 = gemv_t8(ar[1], pc + p, bp, rsb, acc1));
                GEMV_G(2, acc2 = gemv_t8(ar[2], pc + p, bp, rsb, acc2));
                GEMV_G(3, acc3 = gemv_t8(ar[3], pc + p, bp, rsb, acc3));
            }
        }
        for (; p < kc; ++p) {                                  /* the rest: gather one k at a time */
            const __m256 bp = _mm256_broadcast_ss(B + (pc + p) * rsb);
            const float *ap = A + i0 * rsa + (pc + p) * csa;
            GEMV_G(0, acc0 = _mm256_fmadd_ps(_mm256_i32gather_ps(ap, ridx[0], 4), bp, acc0));
            GEMV_G(1, acc1 = _mm256_fmadd_ps(_mm256_i32gather_ps(ap + 8 * rsa, ridx[1], 4), bp, acc1));
            GEMV_G(2, acc2 = _mm256_fmadd_ps(_mm256_i32gather_ps(ap + 16 * rsa, ridx[2], 4), bp, acc2));
            GEMV_G(3, acc3 = _mm256_fmadd_ps(_mm256_i32gather_ps(ap + 24 * rsa, ridx[3], 4), bp, acc3));
        }
        const int add = beta || pc > 0;
        float *c = C + i0 * ldc;
        GEMV_G(0, gemv_store(acc0, rows[0], c, ldc, add));
        GEMV_G(1, gemv_store(acc1, rows[1], c + 8 * ldc, ldc, add));
        GEMV_G(2, gemv_store(acc2, rows[2], c + 16 * ldc, ldc, add));
        GEMV_G(3, gemv_store(acc3, rows[3], c + 24 * ldc, ldc, add));
    }
}
#undef GEMV_G

TGT void pynet_gemv_n1_avx2_f32(int64_t m, int64_t k, const float *A, int64_t rsa, int64_t csa, const float *B,
                                int64_t rsb, float *C, int64_t ldc, int beta, int64_t kcmax)
{
#define GEMV_GROUPS(G, colA, rowA) gemv_n1_groups(G, colA, rowA, i0, m, k, A, rsa, csa, B, rsb, C, ldc, beta, kcmax)
    for (int64_t i0 = 0; i0 < m;) {
        const int64_t left = (m - i0 + 7) / 8;
        if (rsa == 1) {                                        /* one column load per group: four groups */
            const int G = left >= 4 ? 4 : left >= 2 ? 2 : 1;
            if (G == 4)
                GEMV_GROUPS(4, 1, 0);
            else if (G == 2)
                GEMV_GROUPS(2, 1, 0);
            else
                GEMV_GROUPS(1, 1, 0);
            i0 += 8 * G;
        } else if (csa == 1) {                                 /* 8×8 transposes in registers: two groups */
            if (left >= 2)
                GEMV_GROUPS(2, 0, 1);
            else
                GEMV_GROUPS(1, 0, 1);
            i0 += left >= 2 ? 16 : 8;
        } else {
            GEMV_GROUPS(1, 0, 0);
            i0 += 8;
        }
    }
#undef GEMV_GROUPS
}

/* C (m×n) (+)= a·bᵀ for k = 1 (a: m values at stride rsa, b: n contiguous). Each element is the
 * kernels' one-step chain, fma(a, b, 0) — not a·b, whose −0 the chain turns into +0 — then added to C;
 * then relu and the ReLU-backward mask (laid out as C) as the tile kernels apply them (the separate pass over
 * C was as long as the product: the small network's 64→1 layer's dX). */
TGT void pynet_rank1_avx2_f32(int64_t m, int64_t n, const float *a, int64_t rsa, const float *b, float *C,
                              int64_t ldc, int beta, int relu, const float *mask)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t i = 0; i < m; ++i) {
        const __m256 ai = _mm256_broadcast_ss(a + i * rsa);
        float *c = C + i * ldc;
        const float *mr = mask ? mask + i * ldc : NULL;
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) {                   /* plain loads/stores: vmaskmovps stores are slow on Zen */
            __m256 v = _mm256_fmadd_ps(ai, _mm256_loadu_ps(b + j), zero);
            if (beta)
                v = _mm256_add_ps(v, _mm256_loadu_ps(c + j));
            if (relu)
                v = _mm256_max_ps(zero, v);
            if (mask)
                v = _mm256_mul_ps(v, MASK01(_mm256_loadu_ps(mr + j)));
            _mm256_storeu_ps(c + j, v);
        }
        if (j < n) {
            const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - j)), lane);
            __m256 v = _mm256_fmadd_ps(ai, _mm256_maskload_ps(b + j, mk), zero);
            if (beta)
                v = _mm256_add_ps(v, _mm256_maskload_ps(c + j, mk));
            if (relu)
                v = _mm256_max_ps(zero, v);
            if (mask)
                v = _mm256_mul_ps(v, MASK01(_mm256_maskload_ps(mr + j, mk)));
            _mm256_maskstore_ps(c + j, mk, v);
        }
    }
}

/* Pack one 6-row micro-panel of a row-major A (unit column stride, row stride rsa) k-major: 6 rows × 8 k
 * loaded along k and transposed in registers (two zero rows pad the 8×8), 6 floats stored per k. The
 * scalar loop (6 strided loads per k) was ~3 % of the wide network's epoch. */
TGT void pynet_pack_a6_avx2_f32(int64_t kc, const float *src, int64_t rsa, float *dst)
{
    int64_t q = 0;
    for (; q + 8 <= kc; q += 8) {
        __m256 t[8];
        for (int r = 0; r < 6; ++r)
            t[r] = _mm256_loadu_ps(src + r * rsa + q);
        t[6] = t[7] = _mm256_setzero_ps();
        transpose8_ps(t);
        for (int j = 0; j < 8; ++j) {                          /* rows 0–3, then rows 4–5 */
            float *d = dst + (q + j) * PYNET_MR;
            _mm_storeu_ps(d, _mm256_castps256_ps128(t[j]));
            _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(t[j], 1));
        }
    }
    for (; q < kc; ++q)
        for (int r = 0; r < PYNET_MR; ++r)
            dst[q * PYNET_MR + r] = src[r * rsa + q];
}

/* Pack a transposed B (unit row stride: B(p, j) = src[j·csb + p], e.g. Wᵀ) into one NR = 16 column
 * micro-panel, k-major: 8×8 blocks transposed in registers; the scalar loop it replaces was ~6 % of
 * the small network's epoch and most of the wide network's packing. */
TGT void pynet_pack_bt_avx2_f32(int64_t kc, int64_t nr, const float *src, int64_t csb, float *dst)
{
    int64_t p = 0;
    if (nr == PYNET_NR_F32) {
        for (; p + 8 <= kc; p += 8) {
            for (int h = 0; h < 2; ++h) {                      /* the two 8-column halves */
                __m256 t[8];
                for (int r = 0; r < 8; ++r)
                    t[r] = _mm256_loadu_ps(src + (h * 8 + r) * csb + p);
                transpose8_ps(t);
                for (int q = 0; q < 8; ++q)
                    _mm256_storeu_ps(dst + (p + q) * PYNET_NR_F32 + h * 8, t[q]);
            }
        }
    }
    for (; p < kc; ++p) {                                      /* the rest, zero-padding columns past nr */
        int64_t j = 0;
        for (; j < nr; ++j)
            dst[p * PYNET_NR_F32 + j] = src[j * csb + p];
        for (; j < PYNET_NR_F32; ++j)
            dst[p * PYNET_NR_F32 + j] = 0;
    }
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
