/* ukernel_avx512.c — the no-pack float32 micro-kernel on AVX-512F: one zmm holds a 16-wide row of the C
 * tile, so a tile of up to 12 rows keeps 12 independent FMA chains (enough for both FMA pipes at their
 * 4-cycle latency) where the AVX2 kernel needs two ymm per row and stops at 6 rows. Columns past nr
 * are masked on load and store (mask registers: no scalar tail).
 *
 * Same contract as pynet_ukr_avx2_nopack_f32 (ukernel_avx2.c), element for element: every C element is
 * the same FMA chain in k order, then + bias or + C, max(0, ·) and ·[mask > 0] in the same order, so the
 * two kernels give identical bits and the ISA can change without changing results. Built with a target
 * attribute; called only when the run-time ISA (vmath.c: cpuid, XCR0, PYNET_ISA) is AVX-512. */
#include "internal.h"

#if PYNET_X86_SIMD
#include <immintrin.h>

#define TGT512 __attribute__((target("avx512f")))

#define FMA_ROW(r)                                                                 \
    do {                                                                           \
        if (R > (r))                                                               \
            c##r = _mm512_fmadd_ps(_mm512_set1_ps(a##r[off]), b0, c##r);           \
    } while (0)

#define STORE_ROW(r)                                                               \
    do {                                                                           \
        if (R > (r) && (r) < mr) {                                                 \
            float *cr = c + (r) * rsc;                                             \
            if (bias)                                                              \
                c##r = _mm512_add_ps(c##r, _mm512_maskz_loadu_ps(cm, bias));       \
            else if (beta)                                                         \
                c##r = _mm512_add_ps(c##r, _mm512_maskz_loadu_ps(cm, cr));         \
            if (relu)                                                              \
                c##r = _mm512_max_ps(zero, c##r);                                  \
            if (mask) {                                                            \
                const __m512 mv = _mm512_maskz_loadu_ps(cm, mask + (r) * rsc);     \
                const __mmask16 on = _mm512_cmp_ps_mask(mv, zero, _CMP_GT_OQ);     \
                c##r = _mm512_mul_ps(c##r, _mm512_maskz_mov_ps(on, one));          \
            }                                                                      \
            _mm512_mask_storeu_ps(cr, cm, c##r);                                   \
        }                                                                          \
    } while (0)

/* R register rows (a constant after inlining); rows past mr repeat row mr − 1 (computed, never stored) */
static inline __attribute__((always_inline)) TGT512 void nopack512_body(const int R, int64_t k, const float *a,
                                                                      int64_t rsa, int64_t csa, const float *b,
                                                                      int64_t rsb, float *c, int64_t rsc, int beta,
                                                                      int mr, int nr, const float *bias, int relu,
                                                                      const float *mask)
{
#define AROW(r) const float *a##r = a + PYNET_MIN((r), mr - 1) * rsa
    AROW(0); AROW(1); AROW(2); AROW(3); AROW(4); AROW(5);
    AROW(6); AROW(7); AROW(8); AROW(9); AROW(10); AROW(11);
#undef AROW
    const __mmask16 cm = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    __m512 c0 = zero, c1 = zero, c2 = zero, c3 = zero, c4 = zero, c5 = zero;
    __m512 c6 = zero, c7 = zero, c8 = zero, c9 = zero, c10 = zero, c11 = zero;
    int64_t off = 0;
    for (int r = 0; r < mr; ++r)               /* the C rows are fetched while the k loop runs */
        _mm_prefetch((const char *)(c + r * rsc), _MM_HINT_T0);
#pragma GCC unroll 4
    for (int64_t p = 0; p < k; ++p) {          /* micro-kernel loop: a rank-1 update of the R×16 tile per k */
        const __m512 b0 = nr >= 16 ? _mm512_loadu_ps(b) : _mm512_maskz_loadu_ps(cm, b);
        FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3); FMA_ROW(4); FMA_ROW(5);
        FMA_ROW(6); FMA_ROW(7); FMA_ROW(8); FMA_ROW(9); FMA_ROW(10); FMA_ROW(11);
        off += csa;
        b += rsb;
    }
    STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3); STORE_ROW(4); STORE_ROW(5);
    STORE_ROW(6); STORE_ROW(7); STORE_ROW(8); STORE_ROW(9); STORE_ROW(10); STORE_ROW(11);
}

TGT512 void pynet_ukr_avx512_nopack_f32(int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
                                        int64_t rsb, float *c, int64_t rsc, int beta, int mr, int nr,
                                        const float *bias, int relu, const float *mask)
{
    if (mr <= 4)
        nopack512_body(4, k, a, rsa, csa, b, rsb, c, rsc, beta, mr, nr, bias, relu, mask);
    else if (mr <= 6)
        nopack512_body(6, k, a, rsa, csa, b, rsb, c, rsc, beta, mr, nr, bias, relu, mask);
    else if (mr <= 8)
        nopack512_body(8, k, a, rsa, csa, b, rsb, c, rsc, beta, mr, nr, bias, relu, mask);
    else
        nopack512_body(12, k, a, rsa, csa, b, rsb, c, rsc, beta, mr, nr, bias, relu, mask);
}

/* Packed kernel: R = 6 or 12 rows of packed A (one or two consecutive MR-row panels, each k-interleaved as
 * pack_a writes them) × the 16-wide packed B panel, with the epilogue of pynet_ukr_ep_avx2_f32 in registers
 * (bias, beta, ReLU, mask, non-finite check) — the AVX2 kernel's FMA chain and epilogue per element, so the
 * same bits. Returns whether a stored value is ±inf or NaN (check). */
#define PFMA_ROW(r, ap, q)                                                         \
    do {                                                                           \
        if (R > (r))                                                               \
            c##r = _mm512_fmadd_ps(_mm512_set1_ps((ap)[q]), b0, c##r);             \
    } while (0)
#define PSTORE_ROW(r)                                                              \
    do {                                                                           \
        if (R > (r)) {                                                             \
            float *cr = c + (r) * rsc;                                             \
            if (bias)                                                              \
                c##r = _mm512_add_ps(c##r, _mm512_loadu_ps(bias));                 \
            else if (beta)                                                         \
                c##r = _mm512_add_ps(c##r, _mm512_loadu_ps(cr));                   \
            if (relu)                                                              \
                c##r = _mm512_max_ps(zero, c##r);                                  \
            if (mask) {                                                            \
                const __mmask16 on = _mm512_cmp_ps_mask(_mm512_loadu_ps(mask + (r) * rsc), zero, _CMP_GT_OQ); \
                c##r = _mm512_mul_ps(c##r, _mm512_maskz_mov_ps(on, one));          \
            }                                                                      \
            _mm512_storeu_ps(cr, c##r);                                            \
            if (check)   /* x − x is NaN exactly for ±inf and NaN */               \
                nf |= _mm512_cmp_ps_mask(_mm512_sub_ps(c##r, c##r), zero, _CMP_UNORD_Q); \
        }                                                                          \
    } while (0)

static inline __attribute__((always_inline)) TGT512 int packed512_body(const int R, int64_t k, const float *a,
                                                                     const float *b, float *c, int64_t rsc, int beta,
                                                                     const float *bias, int relu, const float *mask,
                                                                     int check)
{
    const float *a2 = a + PYNET_MR * k;        /* the second panel (R = 12) */
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    __m512 c0 = zero, c1 = zero, c2 = zero, c3 = zero, c4 = zero, c5 = zero;
    __m512 c6 = zero, c7 = zero, c8 = zero, c9 = zero, c10 = zero, c11 = zero;
    __mmask16 nf = 0;
    for (int r = 0; r < R; ++r)
        _mm_prefetch((const char *)(c + r * rsc), _MM_HINT_T0);
#pragma GCC unroll 4
    for (int64_t p = 0; p < k; ++p) {          /* micro-kernel loop: a rank-1 update of the R×16 tile per k */
        const __m512 b0 = _mm512_loadu_ps(b);
        PFMA_ROW(0, a, 0); PFMA_ROW(1, a, 1); PFMA_ROW(2, a, 2); PFMA_ROW(3, a, 3); PFMA_ROW(4, a, 4);
        PFMA_ROW(5, a, 5); PFMA_ROW(6, a2, 0); PFMA_ROW(7, a2, 1); PFMA_ROW(8, a2, 2); PFMA_ROW(9, a2, 3);
        PFMA_ROW(10, a2, 4); PFMA_ROW(11, a2, 5);
        a += PYNET_MR;
        a2 += PYNET_MR;
        b += PYNET_NR_F32;
    }
    PSTORE_ROW(0); PSTORE_ROW(1); PSTORE_ROW(2); PSTORE_ROW(3); PSTORE_ROW(4); PSTORE_ROW(5);
    PSTORE_ROW(6); PSTORE_ROW(7); PSTORE_ROW(8); PSTORE_ROW(9); PSTORE_ROW(10); PSTORE_ROW(11);
    return nf != 0;
}

TGT512 void pynet_ukr_avx512_f32(int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta)
{
    packed512_body(6, k, a, b, c, rsc, beta, NULL, 0, NULL, 0);
}

/* rows 6 (one panel) or 12 (two consecutive panels of the packed block) */
TGT512 int pynet_ukr_ep_avx512_f32(int rows, int64_t k, const float *a, const float *b, float *c, int64_t rsc,
                                   int beta, const float *bias, int relu, const float *mask, int check)
{
    if (rows == 12)
        return packed512_body(12, k, a, b, c, rsc, beta, bias, relu, mask, check);
    return packed512_body(6, k, a, b, c, rsc, beta, bias, relu, mask, check);
}

/* The no-pack micro-kernel of the ISA in use, and its row tile (gemm.c's small and panel paths) */
void pynet_ukr_nopack_f32(int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b, int64_t rsb, float *c,
                          int64_t rsc, int beta, int mr, int nr, const float *bias, int relu, const float *mask)
{
    if (pynet_get_isa() == PYNET_ISA_AVX512)
        pynet_ukr_avx512_nopack_f32(k, a, rsa, csa, b, rsb, c, rsc, beta, mr, nr, bias, relu, mask);
    else
        pynet_ukr_avx2_nopack_f32(k, a, rsa, csa, b, rsb, c, rsc, beta, mr, nr, bias, relu, mask);
}

/* Rows of the next tile when rem rows are left: AVX-512 takes 12 (8, 6 or 4 at the edge, wasting none
 * where it can); AVX2 6, or 4 where 6 would waste rows (m = 32: 6,6,6,6,4,4) */
int64_t pynet_nopack_rows_f32(int64_t rem)
{
    if (pynet_get_isa() == PYNET_ISA_AVX512)
        return rem >= 12 ? 12 : rem > 8 ? 6 : rem > 6 ? 8 : rem > 4 ? 6 : 4;
    return rem <= 4 || rem == 7 || rem == 8 ? 4 : PYNET_MR;
}

#else
typedef int pynet_no_x86_simd_ukr512; /* ISO C forbids an empty translation unit */
#endif
