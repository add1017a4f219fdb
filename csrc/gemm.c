/* gemm.c — BLIS-style GEMM, generic over REAL: C = A·B (beta 0) or C += A·B (beta 1).
 *
 * A and B are addressed through row and column strides, so X·W, Xᵀ·dZ and dZ·Wᵀ are all the same
 * call: packing reads whatever layout it is given and writes MR-row / NR-column micro-panels, and
 * no transposed copy is ever made. Threads split packing and the (jr, ir) tiles of each block by
 * fixed index ranges; each C element is computed by one thread in a fixed k order, so results do
 * not depend on the thread count. */

static int64_t SFX(ceil_div)(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* 1 when some x[q], q < n, is ±inf or NaN (x − x is NaN exactly for those): the gradient check. An integer
 * OR of the unordered test vectorises (a float sum would be one serial add chain without -ffast-math). */
static inline int SFX(any_nonfinite)(int64_t n, const REAL *x)
{
    int bad = 0;
    for (int64_t q = 0; q < n; ++q) {
        const REAL d = x[q] - x[q];
        bad |= d != d;
    }
    return bad;
}

/* Pack rows [p0*MR, p1*MR) of the mc×kc block of A into MR-row micro-panels, k-major. */
static void SFX(pack_a)(int64_t mc, int64_t kc, const REAL *A, int64_t rsa, int64_t csa, REAL *ap,
                        int64_t p0, int64_t p1)
{
    for (int64_t p = p0; p < p1; ++p) {                /* one micro-panel of MR rows */
        const int64_t i0 = p * PYNET_MR, mr = PYNET_MIN(PYNET_MR, mc - i0);
        const REAL *src = A + i0 * rsa;
        REAL *dst = ap + p * PYNET_MR * kc;
        if (mr == PYNET_MR) {
#ifdef VEC_PACK_A6
            if (csa == 1 && pynet_simd_active()) {     /* row-major A: 8×8 register transposes */
                VEC_PACK_A6(kc, src, rsa, dst);
                continue;
            }
#endif
            if (rsa == 1) {                            /* column-major A (Xᵀ of dW): MR contiguous values per k */
                for (int64_t q = 0; q < kc; ++q)       /* (the strided scalar loop below was ~2 % of the wide epoch) */
                    memcpy(dst + q * PYNET_MR, src + q * csa, PYNET_MR * sizeof(REAL));
                continue;
            }
            for (int64_t q = 0; q < kc; ++q) {         /* k within the panel */
                const REAL *s = src + q * csa;
                for (int r = 0; r < PYNET_MR; ++r)     /* the MR values of one k */
                    dst[q * PYNET_MR + r] = s[r * rsa];
            }
        } else {
            for (int64_t q = 0; q < kc; ++q) {         /* k within a partial panel: zero-pad rows */
                const REAL *s = src + q * csa;
                int r = 0;
                for (; r < mr; ++r)
                    dst[q * PYNET_MR + r] = s[r * rsa];
                for (; r < PYNET_MR; ++r)
                    dst[q * PYNET_MR + r] = 0;
            }
        }
    }
}

/* Pack columns [q0*NR, q1*NR) of the kc×nc block of B (row-major) into NR-column micro-panels, k-major, and
 * add each column's kc values, row by row, to sum (sum[j] = 0 first when first): the column sums of B that
 * dense_backward's db is, in its order, while B is in registers (gemm_core's bsum). */
static void SFX(pack_b_sum)(int64_t kc, int64_t nc, const REAL *B, int64_t rsb, REAL *bp, int64_t q0, int64_t q1,
                            REAL *sum, int first)
{
    for (int64_t q = q0; q < q1; ++q) {
        const int64_t j0 = q * NR, nr = PYNET_MIN(NR, nc - j0);
        const REAL *src = B + j0;
        REAL *dst = bp + q * NR * kc;
        REAL acc[NR];
        for (int64_t j = 0; j < NR; ++j)
            acc[j] = first || j >= nr ? 0 : sum[j0 + j];
        if (nr == NR) {
            for (int64_t p = 0; p < kc; ++p)
                for (int j = 0; j < NR; ++j) {
                    const REAL v = src[p * rsb + j];
                    dst[p * NR + j] = v;
                    acc[j] += v;
                }
        } else {
            for (int64_t p = 0; p < kc; ++p) {
                int64_t j = 0;
                for (; j < nr; ++j) {
                    const REAL v = src[p * rsb + j];
                    dst[p * NR + j] = v;
                    acc[j] += v;
                }
                for (; j < NR; ++j)
                    dst[p * NR + j] = 0;
            }
        }
        for (int64_t j = 0; j < nr; ++j)
            sum[j0 + j] = acc[j];
    }
}

/* Pack columns [q0*NR, q1*NR) of the kc×nc block of B into NR-column micro-panels, k-major.
 * sum (not NULL; B row-major): pack_b_sum. */
static void SFX(pack_b)(int64_t kc, int64_t nc, const REAL *B, int64_t rsb, int64_t csb, REAL *bp,
                        int64_t q0, int64_t q1, REAL *sum, int first)
{
    if (sum) {
        SFX(pack_b_sum)(kc, nc, B, rsb, bp, q0, q1, sum, first);
        return;
    }
    for (int64_t q = q0; q < q1; ++q) {                /* one micro-panel of NR columns */
        const int64_t j0 = q * NR, nr = PYNET_MIN(NR, nc - j0);
        const REAL *src = B + j0 * csb;
        REAL *dst = bp + q * NR * kc;
        if (csb == 1 && nr == NR) {
            for (int64_t p = 0; p < kc; ++p)           /* k: one contiguous row segment */
                for (int j = 0; j < NR; ++j)
                    dst[p * NR + j] = src[p * rsb + j];
        } else if (rsb == 1) {
#ifdef VEC_PACK_BT
            if (pynet_simd_active()) {                 /* 8×8 register transposes (vec in ukernel_avx2.c) */
                VEC_PACK_BT(kc, nr, src, csb, dst);
                continue;
            }
#endif
            /* B is a transposed view (Wᵀ): walk each column contiguously along k */
            for (int64_t j = 0; j < nr; ++j)           /* columns of the panel */
                for (int64_t p = 0; p < kc; ++p)       /* k down the column */
                    dst[p * NR + j] = src[j * csb + p];
            for (int64_t p = 0; p < kc; ++p)
                for (int64_t j = nr; j < NR; ++j)
                    dst[p * NR + j] = 0;
        } else {
            for (int64_t p = 0; p < kc; ++p) {         /* k: strided gather, zero-pad columns */
                int64_t j = 0;
                for (; j < nr; ++j)
                    dst[p * NR + j] = src[p * rsb + j * csb];
                for (; j < NR; ++j)
                    dst[p * NR + j] = 0;
            }
        }
    }
}

typedef void (*SFX(ukr_fn))(int64_t, const REAL *, const REAL *, REAL *, int64_t, int);

typedef struct {
    int64_t m, n, k, rsa, csa, rsb, csb, ldc;
    const REAL *A, *B;
    REAL *C, *ap, *bp;
    size_t na, nb;   /* elements of one packed-A block, of packed B */
    int beta;
    const REAL *bias;  /* epilogue (see gemm_core): bias row added in the first slab, ReLU after the last */
    int relu;
    const REAL *mask;  /* epilogue: C *= [mask > 0] after the last slab (mask laid out as C) */
    int check;         /* whether C's finished tiles are checked for ±inf / NaN (the gradient check) */
    REAL *bsum;        /* not NULL: B's column sums (n values) written while packing it (B row-major) */
    SFX(ukr_fn) ukr;
} SFX(gemm_job);

static void SFX(sync)(int nt)
{
    if (nt > 1) {
#ifdef _OPENMP
#pragma omp barrier
#endif
    }
}

/* The epilogue on a stored mr×nr tile, hot in L1: + bias (the tile holds A·B of the first slab, so this is
 * acc + bias, the bits of C = bias then C += acc), then ReLU as the separate pass computes it. */
static void SFX(tile_ep)(REAL *c, int64_t ldc, int64_t mr, int64_t nr, const REAL *bias, int relu, const REAL *mask)
{
    for (int64_t i = 0; i < mr; ++i)
        for (int64_t j = 0; j < nr; ++j) {
            REAL v = c[i * ldc + j];
            if (bias)
                v = v + bias[j];
            if (relu)
                v = v < 0 ? 0 : v;   /* NaN and −0 pass through, as vmaxps(0, v) */
            if (mask)   /* ReLU backward: a product, as its pass; no branch (the signs are random) */
                v = v * (REAL)(mask[i * ldc + j] > 0);
            c[i * ldc + j] = v;
        }
}

/* One MC×KC block of C: the 2nd (jr) and 1st (ir) loops flattened jr-major, tiles [t0, t1).
 * bias (C's columns jc…, first slab only: then beta is 0) and relu (last slab only): the epilogue.
 * chk (last slab only): returns whether a finished tile holds ±inf or NaN. */
static int SFX(macro_kernel)(const SFX(gemm_job) *g, int64_t ic, int64_t jc, int64_t mc, int64_t nc, int64_t kc,
                             int beta, const REAL *ap, const REAL *bp, int64_t t0, int64_t t1, const REAL *bias,
                             int relu, const REAL *mask, int chk)
{
    int bad = 0;
    const int64_t np = SFX(ceil_div)(mc, PYNET_MR);
    for (int64_t t = t0; t < t1; ++t) {                          /* 2nd loop (jr) × 1st loop (ir) */
        const int64_t jr = t / np, ir = t % np;
        const int64_t i0 = ir * PYNET_MR, j0 = jr * NR;
        const int64_t mr = PYNET_MIN(PYNET_MR, mc - i0), nr = PYNET_MIN(NR, nc - j0);
        const REAL *a = ap + ir * PYNET_MR * kc, *b = bp + jr * NR * kc;
        REAL *c = g->C + (ic + i0) * g->ldc + jc + j0;
        if (mr == PYNET_MR && nr == NR) {
#ifdef VEC_UKR_EP512
            /* AVX-512: two full 6-row tiles of one column panel as one 12-row tile (12 FMA chains), epilogue in
             * registers; the same per-element chain as one tile at a time */
            if (g->ukr == SFX(pynet_ukr_avx512)) {
                const int pair = t + 1 < t1 && ir + 1 < np && mc - i0 >= 2 * PYNET_MR;
                const int rows = pair ? 2 * PYNET_MR : PYNET_MR;
                bad |= VEC_UKR_EP512(rows, kc, a, b, c, g->ldc, beta, bias ? bias + j0 : NULL, relu,
                                     mask ? mask + (c - g->C) : NULL, chk);
                t += pair;
                continue;
            }
#endif
#ifdef VEC_UKR_EP
            if ((bias || relu || mask || chk) && g->ukr != SFX(pynet_ukr_scalar)) {   /* epilogue and check in registers */
                bad |= VEC_UKR_EP(kc, a, b, c, g->ldc, beta, bias ? bias + j0 : NULL, relu,
                                  mask ? mask + (c - g->C) : NULL, chk);
                continue;
            }
#endif
            g->ukr(kc, a, b, c, g->ldc, beta);
        } else {
            /* edge tile: the same kernel into a scratch tile, then the valid part */
            REAL tile[PYNET_MR * NR];
            g->ukr(kc, a, b, tile, NR, 0);
            for (int64_t i = 0; i < mr; ++i)
                for (int64_t j = 0; j < nr; ++j)
                    c[i * g->ldc + j] = beta ? c[i * g->ldc + j] + tile[i * NR + j] : tile[i * NR + j];
        }
        if (bias || relu || mask) {
#ifdef VEC_TILE_EP
            if (nr == NR && pynet_simd_active())
                VEC_TILE_EP(c, g->ldc, mr, bias ? bias + j0 : NULL, relu, mask ? mask + (c - g->C) : NULL);
            else
#endif
                SFX(tile_ep)(c, g->ldc, mr, nr, bias ? bias + j0 : NULL, relu, mask ? mask + (c - g->C) : NULL);
        }
        if (chk)   /* the finished tile, still in L1 */
            for (int64_t i = 0; i < mr; ++i)
                bad |= SFX(any_nonfinite)(nr, c + i * g->ldc);
    }
    return bad;
}

/* KC-deep slabs of B packed together, one group at a time: as many slabs as fit in
 * PYNET_PACKB_GROUP_BYTES (all of k for the wide network's 1024×1024 B, 4 MiB, in L3). */
static int64_t SFX(slabs_per_group)(int64_t n, int64_t k)
{
    const int64_t kc = PYNET_MIN(KC, k), slab = SFX(ceil_div)(PYNET_MIN(NC, n), NR) * NR * kc;
    const int64_t fit = (int64_t)(PYNET_PACKB_GROUP_BYTES / (double)(slab * (int64_t)sizeof(REAL)));
    return PYNET_MAX(1, PYNET_MIN(fit, SFX(ceil_div)(k, KC)));
}

/* Threads take whole MC blocks (3rd loop), each with its own packed A. All threads pack a group of B
 * slabs, meet at one barrier, then each claims blocks and runs a block through every slab of the
 * group before claiming the next: one barrier per group (per GEMM for the wide network) instead of
 * two per KC slab, where a thread delayed by the host held up the other at every slab. Each C element
 * is still computed by one thread, slabs in k order: identical bits. */
static int SFX(gemm_slab_groups)(const SFX(gemm_job) *g, int tid, int nt, int64_t jc, int64_t nc, int last)
{
    int bad = 0;
    const int64_t nq = SFX(ceil_div)(nc, NR), kc0 = PYNET_MIN(KC, g->k);
    const int64_t stride = nq * NR * kc0;
    const int64_t spg = PYNET_MAX(1, PYNET_MIN(SFX(slabs_per_group)(g->n, g->k), (int64_t)g->nb / stride));
    REAL *ap = g->ap + (size_t)tid * g->na;
    /* blocks: a multiple of nt, of near-equal whole MR panels (about PYNET_MC_PAR rows, well under MC), so that
     * m = 512 is 12 × 42/48 rows rather than 144,144,144,80 (one thread 12 % idle) */
    const int64_t npan = SFX(ceil_div)(g->m, PYNET_MR);
    const int64_t nblk = SFX(ceil_div)(SFX(ceil_div)(g->m, PYNET_MC_PAR), nt) * nt;
    /* the last nt blocks are claimed in PYNET_TAIL_SPLIT column parts (each packs the block's A again): when
     * one thread takes the last block the other idles at the GEMM's end for part of a block, not most of one
     * (m = 512: 12 blocks, a block ~8 % of the GEMM) */
    const int64_t ntail = nblk > nt ? nt : 0, nsplit = PYNET_MIN(PYNET_TAIL_SPLIT, nq);
    const int64_t nunit = nblk - ntail + ntail * nsplit;
    for (int64_t pg = 0; pg < g->k; pg += spg * KC) {             /* groups of KC-deep slabs */
        const int64_t kg = PYNET_MIN(spg * KC, g->k - pg), ns = SFX(ceil_div)(kg, KC);
        for (int64_t s = 0; s < ns; ++s) {
            const int64_t pc = pg + s * KC, kc = PYNET_MIN(KC, g->k - pc);
            /* each thread packs the same columns in every slab, slabs in k order: each column summed in row order */
            SFX(pack_b)(kc, nc, g->B + pc * g->rsb + jc * g->csb, g->rsb, g->csb, g->bp + s * stride,
                        nq * tid / nt, nq * (tid + 1) / nt, g->bsum ? g->bsum + jc : NULL, pc == 0);
        }
        SFX(sync)(nt);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1) nowait
#endif
        for (int64_t u = 0; u < nunit; ++u) {                      /* 3rd loop: MC-tall blocks (or parts) */
            const int64_t blk = u < nblk - ntail ? u : nblk - ntail + (u - (nblk - ntail)) / nsplit;
            const int64_t part = u < nblk - ntail ? 0 : (u - (nblk - ntail)) % nsplit;
            const int64_t parts = u < nblk - ntail ? 1 : nsplit;
            const int64_t ic = npan * blk / nblk * PYNET_MR;
            const int64_t mc = PYNET_MIN(npan * (blk + 1) / nblk * PYNET_MR, g->m) - ic;
            if (mc <= 0)
                continue;
            const int64_t np = SFX(ceil_div)(mc, PYNET_MR);
            const int64_t q0 = nq * part / parts, q1 = nq * (part + 1) / parts;   /* NR-wide column panels */
            for (int64_t s = 0; s < ns; ++s) {                     /* 4th loop inside: slabs in k order */
                const int64_t pc = pg + s * KC, kc = PYNET_MIN(KC, g->k - pc);
                SFX(pack_a)(mc, kc, g->A + ic * g->rsa + pc * g->csa, g->rsa, g->csa, ap, 0, np);
                bad |= SFX(macro_kernel)(g, ic, jc, mc, nc, kc, pc == 0 ? g->beta : 1, ap, g->bp + s * stride,
                                         q0 * np, q1 * np, pc == 0 && g->bias ? g->bias + jc : NULL,
                                         g->relu && pc + kc >= g->k, pc + kc >= g->k ? g->mask : NULL,
                                         g->check && pc + kc >= g->k);
            }
        }
        if (!(last && pg + kg >= g->k))   /* packed B is overwritten next (after the last, the region ends) */
            SFX(sync)(nt);
    }
    return bad;
}

/* The loops around the micro-kernel, for thread tid of nt. With ic_par each thread takes whole
 * MC blocks (gemm_slab_groups); otherwise threads share one packed A and split the
 * tiles of each block. Either way a C element is computed by one thread in a fixed k order. */
static int SFX(gemm_thread)(const SFX(gemm_job) *g, int tid, int nt, int ic_par)
{
    int bad = 0;
    for (int64_t jc = 0; jc < g->n; jc += NC) {                    /* 5th loop: NC-wide panels of B and C */
        const int64_t nc = PYNET_MIN(NC, g->n - jc);
        const int64_t nq = SFX(ceil_div)(nc, NR);
        if (ic_par) {
            bad |= SFX(gemm_slab_groups)(g, tid, nt, jc, nc, jc + NC >= g->n);
            continue;
        }
        for (int64_t pc = 0; pc < g->k; pc += KC) {                /* 4th loop: KC-deep slabs of k */
            const int64_t kc = PYNET_MIN(KC, g->k - pc);
            const int beta = pc == 0 ? g->beta : 1;
            SFX(pack_b)(kc, nc, g->B + pc * g->rsb + jc * g->csb, g->rsb, g->csb, g->bp,
                        nq * tid / nt, nq * (tid + 1) / nt, g->bsum ? g->bsum + jc : NULL, pc == 0);
            SFX(sync)(nt);
            for (int64_t ic = 0; ic < g->m; ic += MC) {            /* 3rd loop: MC-tall blocks of A and C */
                const int64_t mc = PYNET_MIN(MC, g->m - ic);
                const int64_t np = SFX(ceil_div)(mc, PYNET_MR);
                SFX(pack_a)(mc, kc, g->A + ic * g->rsa + pc * g->csa, g->rsa, g->csa, g->ap,
                            np * tid / nt, np * (tid + 1) / nt);
                SFX(sync)(nt);
                const int64_t ntiles = nq * np;
                bad |= SFX(macro_kernel)(g, ic, jc, mc, nc, kc, beta, g->ap, g->bp, ntiles * tid / nt,
                                         ntiles * (tid + 1) / nt, pc == 0 && g->bias ? g->bias + jc : NULL,
                                         g->relu && pc + kc >= g->k, pc + kc >= g->k ? g->mask : NULL,
                                         g->check && pc + kc >= g->k);
                SFX(sync)(nt);                                      /* packed A is overwritten next */
            }
        }
    }
    return bad;
}

#ifdef UKR_NOPACK
/* Rows of the next no-pack tile when rem rows are left: 6, but 4-row tiles where 6 would waste rows
 * (rem 1–4, 7, 8: m = 32 becomes 6,6,6,6,4,4 instead of five 6s and a 6-row tile with 2 used); the
 * micro-kernel of the ISA in use decides (ukernel_avx512.c). */
static inline int64_t SFX(tile_rows)(int64_t rem)
{
#ifdef NOPACK_ROWS
    return NOPACK_ROWS(rem);   /* per ISA: the AVX-512 kernel takes up to 12 rows */
#else
    return rem <= 4 || rem == 7 || rem == 8 ? 4 : PYNET_MR;
#endif
}

/* Small path: below the parallel threshold a GEMM runs on one thread and packing A costs as much
 * as using it. A is read in place, B too when its rows are contiguous (else packed into bp, cheap
 * here). Same KC slabs and the same FMA order per element as the packed path: identical bits. */
static void SFX(gemm_small)(int64_t m, int64_t n, int64_t k, const REAL *A, int64_t rsa, int64_t csa,
                            const REAL *B, int64_t rsb, int64_t csb, REAL *C, int64_t ldc, int beta, REAL *bp,
                            const REAL *bias, int relu, const REAL *mask)
{
    const int64_t nq = SFX(ceil_div)(n, NR);
    for (int64_t pc = 0; pc < k; pc += KC) {                   /* 4th loop: KC-deep slabs of k */
        const int64_t kc = PYNET_MIN(KC, k - pc);
        const int be = pc == 0 ? beta : 1;
        const REAL *bs = B + pc * rsb;
        if (csb != 1)
            SFX(pack_b)(kc, n, bs, rsb, csb, bp, 0, nq, NULL, 0);
        for (int64_t jr = 0; jr < nq; ++jr) {                  /* 2nd loop: NR-wide column panels */
            const int64_t j0 = jr * NR, nr = PYNET_MIN(NR, n - j0);
            const REAL *b = csb == 1 ? bs + j0 : bp + jr * NR * kc;
            const int64_t ldb = csb == 1 ? rsb : NR;
            for (int64_t i0 = 0, t; i0 < m; i0 += t) {         /* 1st loop: row tiles, A in place */
                t = SFX(tile_rows)(m - i0);
                UKR_NOPACK(kc, A + i0 * rsa + pc * csa, rsa, csa, b, ldb, C + i0 * ldc + j0, ldc, be,
                           (int)PYNET_MIN(t, m - i0), (int)nr, pc == 0 && bias ? bias + j0 : NULL, relu && pc + kc >= k,
                           mask && pc + kc >= k ? mask + i0 * ldc + j0 : NULL);
            }
        }
    }
}

/* Panel path (medium shapes): the unit of work is one NR-wide column panel q of C, all m rows and
 * all of k. Whoever takes it (threads claim panels dynamically, so a descheduled partner does not
 * hold up the other) packs its KC×NR slabs of B into a private buffer on its stack (64 KiB for float32) and
 * runs the micro-kernel down the rows with A in place. No shared packing, so no barrier inside the
 * GEMM; each C element is computed by one thread, in the packed path's order: identical bits for
 * every thread count. Rows [r0, m) of the panel (r0 a multiple of MR; 0 but for the split units of gemm_core). */
static int SFX(gemm_panel)(int64_t q, int64_t r0, int64_t m, int64_t n, int64_t k, const REAL *A, int64_t rsa,
                           int64_t csa, const REAL *B, int64_t rsb, int64_t csb, REAL *C, int64_t ldc, int beta,
                           const REAL *bias, int relu, const REAL *mask, int check)
{
    int bad = 0;
    REAL bp[KC * NR] __attribute__((aligned(PYNET_ALIGN)));
    const int64_t j0 = q * NR, nr = PYNET_MIN(NR, n - j0);
    for (int64_t pc = 0; pc < k; pc += KC) {                   /* 4th loop: KC-deep slabs of k */
        const int64_t kc = PYNET_MIN(KC, k - pc);
        const int be = pc == 0 ? beta : 1;
        SFX(pack_b)(kc, nr, B + pc * rsb + j0 * csb, rsb, csb, bp, 0, 1, NULL, 0);
        for (int64_t i0 = r0, t; i0 < m; i0 += t) {            /* 1st loop: row tiles [r0, m), A in place */
            t = SFX(tile_rows)(m - i0);
            UKR_NOPACK(kc, A + i0 * rsa + pc * csa, rsa, csa, bp, NR, C + i0 * ldc + j0, ldc, be,
                       (int)PYNET_MIN(t, m - i0), (int)nr, pc == 0 && bias ? bias + j0 : NULL, relu && pc + kc >= k,
                       mask && pc + kc >= k ? mask + i0 * ldc + j0 : NULL);
            if (check && pc + kc >= k)   /* the finished tile, still in L1 */
                for (int64_t i = i0; i < PYNET_MIN(i0 + t, m); ++i)
                    bad |= SFX(any_nonfinite)(nr, C + i * ldc + j0);
        }
    }
    return bad;
}
#endif

void SFX(pynet_pack_need)(int64_t m, int64_t n, int64_t k, size_t *na, size_t *nb)
{
    const int64_t kc = PYNET_MIN(KC, k);
    *na = (size_t)(SFX(ceil_div)(PYNET_MIN(MC, m), PYNET_MR) * PYNET_MR * kc);
    *nb = (size_t)(SFX(ceil_div)(PYNET_MIN(NC, n), NR) * NR * kc * SFX(slabs_per_group)(n, k));
}

int SFX(pynet_pack_alloc)(SFX(pynet_pack) *pk, size_t na, size_t nb)
{
    /* one A block per thread, for GEMMs that split the 3rd loop; rounded to whole cache lines */
    na = (na + PYNET_ALIGN) / PYNET_ALIGN * PYNET_ALIGN;
    pk->na = na;
    pk->nb = nb;
    pk->nta = pynet_get_num_threads();
    pk->a = pynet_aligned_alloc(na * (size_t)pk->nta * sizeof(REAL));
    pk->b = pynet_aligned_alloc(nb * sizeof(REAL));
    if (!pk->a || !pk->b) {
        SFX(pynet_pack_free)(pk);
        return -1;
    }
    return 0;
}

void SFX(pynet_pack_free)(SFX(pynet_pack) *pk)
{
    pynet_aligned_free(pk->a);
    pynet_aligned_free(pk->b);
    pk->a = pk->b = NULL;
}

/* Paths without the fused epilogue (k = 0, the outer product, the one-column GEMV): C = bias before
 * (then accumulated into), ReLU after, as separate passes. */
static void SFX(fill_bias)(int64_t m, int64_t n, REAL *C, int64_t ldc, const REAL *bias)
{
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
            C[i * ldc + j] = bias[j];
}

static void SFX(relu_pass)(int64_t m, int64_t n, REAL *C, int64_t ldc, int relu, const REAL *mask)
{
    if (ldc == n) {   /* contiguous: the vectorised passes (activations.c) */
        if (relu)
            SFX(pynet_activation_forward)(ACT_RELU, m * n, C, C);
        if (mask)
            SFX(pynet_activation_backward)(ACT_RELU, m * n, mask, C, C);
    } else if (relu || mask) {
        SFX(tile_ep)(C, ldc, m, n, NULL, relu, mask);
    }
}

/* bad (not NULL): where the path can, whether C holds a non-finite value, checked tile by tile as stored
 * (*bad = 0 or 1: the gradient check without another pass over C); left as it is otherwise.
 * C = A·B (beta 0) or C += A·B (beta 1); with bias (not NULL) C = bias + A·B, C not read (beta ignored);
 * relu: C = max(0, ·) at the end; mask (not NULL, laid out as C): C = C·[mask > 0] at the end (ReLU backward).
 * bsum (not NULL): where the path can (the packed path, row-major B), B's n column sums, each in row order, written
 * while B is packed; returns 1 then, 0 when bsum was left alone. Bias and ReLU run in each tile's store (the dense layer without two
 * extra passes over Z), in the same operations as the passes: identical bits. */
static int SFX(gemm_core)(int64_t m, int64_t n, int64_t k, const REAL *A, int64_t rsa, int64_t csa,
                          const REAL *B, int64_t rsb, int64_t csb, REAL *C, int64_t ldc, int beta,
                          const REAL *bias, int relu, const REAL *mask, const SFX(pynet_pack) *pk, int *bad,
                          REAL *bsum)
{
    if (m <= 0 || n <= 0)
        return 0;
    if (bias)
        beta = 0;
    if (k <= 0) {
        if (bias)
            SFX(fill_bias)(m, n, C, ldc, bias);
        else if (!beta)
            for (int64_t i = 0; i < m; ++i)
                for (int64_t j = 0; j < n; ++j)
                    C[i * ldc + j] = 0;
        SFX(relu_pass)(m, n, C, ldc, relu, mask);
        return 0;
    }
#ifdef UKR_NOPACK
    /* paths without packed A (the AVX2 f32 build): see gemm_small / gemm_panels */
    if (n <= NC && pynet_simd_active()) {
        const double macs = (double)m * (double)n * (double)k;
        const int force = pynet_gemm_path();
        int nt = pynet_threads_for(macs);
        if (k == 1 && force != 2 && csb == 1) {
            /* an outer product (dX of a layer with one output): no tiles for a one-step k loop */
            if (bias)
                SFX(fill_bias)(m, n, C, ldc, bias);
            VEC_RANK1(m, n, A, rsa, B, C, ldc, beta || bias, relu, mask);   /* relu / mask in its stores */
            return 0;
        }
        if (n == 1 && force != 2 && (rsa == 1 || rsa < (1 << 27))) {
            /* one output column (a 64→1 layer): the 6×16 tiles would compute 16 columns for 1 */
            if (bias)
                SFX(fill_bias)(m, n, C, ldc, bias);
            VEC_GEMV_N1(m, k, A, rsa, csa, B, rsb, C, ldc, beta || bias, KC);
            SFX(relu_pass)(m, n, C, ldc, relu, mask);
            return 0;
        }
        if (force != 2 && macs < PYNET_PAR_MIN_MACS && (csb == 1 || pk)) {
            SFX(gemm_small)(m, n, k, A, rsa, csa, B, rsb, csb, C, ldc, beta, pk ? pk->b : NULL, bias, relu, mask);
            return 0;
        }
        const int64_t nq = SFX(ceil_div)(n, NR);
#ifdef _OPENMP
        /* too few column panels to share (the wide network's 1024→10 layer: Z = H·W and dW = Hᵀ·dZ): threads take
         * row ranges of each panel instead, A read in place — the packed path packed all of A (2 MiB) for 10
         * columns, and so does no thread wait at a barrier */
        const int narrow = force == 0 && nt > 1 && nq < 2 * nt;
#else
        const int narrow = 0;
#endif
        if (narrow || force == 1 ||
            (force == 0 && (double)m * (double)k * sizeof(REAL) <= PYNET_PANELS_MAX_A_BYTES && nq >= 2 * nt)) {
            /* work units: each NR-wide column panel, in `parts` row ranges of a multiple of MR rows; with
             * threads, the last nt panels in two, so that at the end a thread waits for half a panel at most */
            const int64_t parts = narrow ? 2 * nt : 1, rows = SFX(ceil_div)(SFX(ceil_div)(m, parts), PYNET_MR) * PYNET_MR;
            const int64_t whole = narrow || nt < 2 ? nq : PYNET_MAX(nq - nt, 0);
            const int64_t half = SFX(ceil_div)(SFX(ceil_div)(m, 2), PYNET_MR) * PYNET_MR;
            int b = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) reduction(| : b) if (nt > 1)
#endif
            for (int64_t u = 0; u < whole * parts + 2 * (nq - whole); ++u) {
                const int tail = u >= whole * parts;   /* a unit of the last panels, in halves */
                const int64_t v = tail ? u - whole * parts : u, per = tail ? 2 : parts, len = tail ? half : rows;
                const int64_t q = (tail ? whole : 0) + v / per, r0 = v % per * len;
                if (r0 < m)
                    b |= SFX(gemm_panel)(q, r0, PYNET_MIN(m, r0 + len), n, k, A, rsa, csa, B, rsb, csb, C, ldc, beta,
                                         bias, relu, mask, bad != NULL);
            }
            if (bad)
                *bad = b;
            return 0;
        }
    }
#endif
    SFX(pynet_pack) own = {NULL, NULL, 0, 0, 0};
    if (!pk) {
        size_t na, nb;
        SFX(pynet_pack_need)(m, n, k, &na, &nb);
        /* a one-off buffer holds one slab of B: its pages fault in afresh on every call, which for more
         * slabs cost more than the barriers saved (2048³: 148 → 140 GFLOP/s) */
        nb = PYNET_MIN(nb, (size_t)(SFX(ceil_div)(PYNET_MIN(NC, n), NR) * NR * PYNET_MIN(KC, k)));
        if (SFX(pynet_pack_alloc)(&own, na, nb) != 0)
            abort(); /* out of memory for a few MiB of packing space: nothing sensible to return */
        pk = &own;
    }
    SFX(gemm_job) g = {m, n, k, rsa, csa, rsb, csb, ldc, A, B, C, pk->a, pk->b, pk->na, pk->nb, beta, bias, relu, mask,
                       bad != NULL, bsum && csb == 1 ? bsum : NULL, SFX(pynet_ukr_scalar)};
#if PYNET_X86_SIMD
    if (pynet_simd_active())
        g.ukr = SFX(pynet_ukr_avx2);
#ifdef VEC_UKR_EP512
    if (pynet_simd_active() && pynet_get_isa() == PYNET_ISA_AVX512)
        g.ukr = SFX(pynet_ukr_avx512);
#endif
#endif
    int nt = pynet_threads_for((double)m * (double)n * (double)k);
    /* enough MC blocks to go round: threads take whole blocks (fewer barriers); else they share each block */
    const int ic_par = nt > 1 && pk->nta >= nt && SFX(ceil_div)(m, MC) >= 2 * nt;
    int b = 0;
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel num_threads(nt) reduction(| : b)
        b |= SFX(gemm_thread)(&g, omp_get_thread_num(), omp_get_num_threads(), ic_par);
    } else
#endif
    {
        (void)nt;
        b = SFX(gemm_thread)(&g, 0, 1, 0);
    }
    if (bad)
        *bad = b;
    if (pk == &own)
        SFX(pynet_pack_free)(&own);
    return g.bsum != NULL;
}

void SFX(pynet_gemm_ws)(int64_t m, int64_t n, int64_t k, const REAL *A, int64_t rsa, int64_t csa,
                        const REAL *B, int64_t rsb, int64_t csb, REAL *C, int64_t ldc, int beta,
                        const SFX(pynet_pack) *pk)
{
    SFX(gemm_core)(m, n, k, A, rsa, csa, B, rsb, csb, C, ldc, beta, NULL, 0, NULL, pk, NULL, NULL);
}

void SFX(pynet_gemm)(int64_t m, int64_t n, int64_t k, const REAL *A, int64_t rsa, int64_t csa,
                     const REAL *B, int64_t rsb, int64_t csb, REAL *C, int64_t ldc, int beta)
{
    SFX(pynet_gemm_ws)(m, n, k, A, rsa, csa, B, rsb, csb, C, ldc, beta, NULL);
}
