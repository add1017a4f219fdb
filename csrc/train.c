/* train.c — fused kernels: a whole epoch (train_epoch), one batch's gradient (batch_gradient),
 * full-batch descent (train_gd) and predict,
 * each one C call, generic over REAL. Semantics follow kernels/reference.py step for step.
 *
 * train workspace (contract.train_workspace_size, bs = batch rows):
 *   h[0] … h[L]   bs×n0 (gathered X), bs×n1 … (hidden activations), bs×nL (output pre-activation)
 *   Yb            bs×k gathered targets;  swb  bs gathered weights
 *   g1, g2        bs×max(sizes) each: output A / dZ, then ping-pong deltas of the backward pass
 * Packing buffers for every GEMM shape of the network are allocated once per call. */

#define MAX_LAYERS_STACK 32

typedef struct {
    int64_t L;                 /* layers */
    const int64_t *sizes, *acts;
    int64_t maxw;
    REAL **h;                  /* L + 1 activation pointers */
    SFX(pynet_pack) pk;
} SFX(net);

/* Pack space for the forward and both backward products of every layer at up to rows rows. */
static int SFX(net_init)(SFX(net) *nt, int64_t L, const int64_t *sizes, const int64_t *acts, int64_t rows,
                         REAL **hbuf)
{
    size_t na = 0, nb = 0, a, b;
    nt->L = L;
    nt->sizes = sizes;
    nt->acts = acts;
    nt->h = hbuf;
    nt->maxw = 0;
    for (int64_t l = 0; l <= L; ++l)
        nt->maxw = PYNET_MAX(nt->maxw, sizes[l]);
    for (int64_t l = 0; l < L; ++l) {
        const int64_t ni = sizes[l], no = sizes[l + 1];
        SFX(pynet_pack_need)(rows, no, ni, &a, &b);   /* Z = X·W */
        na = PYNET_MAX(na, a); nb = PYNET_MAX(nb, b);
        SFX(pynet_pack_need)(ni, no, rows, &a, &b);   /* dW = Xᵀ·dZ */
        na = PYNET_MAX(na, a); nb = PYNET_MAX(nb, b);
        SFX(pynet_pack_need)(rows, ni, no, &a, &b);   /* dX = dZ·Wᵀ */
        na = PYNET_MAX(na, a); nb = PYNET_MAX(nb, b);
    }
    return SFX(pynet_pack_alloc)(&nt->pk, na, nb);
}

static int SFX(elem_threads)(int64_t P);

/* Hidden-layer activations, elementwise: large ones (the wide network's 512 × 1024) split over the threads in
 * contiguous chunks — same bits, and the partner core no longer idles through them. */
static void SFX(act_forward)(int act, int64_t size, REAL *Z)
{
#ifdef _OPENMP
    const int nt = SFX(elem_threads)(size);
    if (nt > 1) {   /* (no omp construct at all when serial: even an if(0) region costs a libgomp call) */
#pragma omp parallel num_threads(nt)
        {
            const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
            const int64_t lo = size * t / n / 8 * 8, hi = t + 1 == n ? size : size * (t + 1) / n / 8 * 8;
            SFX(pynet_activation_forward)(act, hi - lo, Z + lo, Z + lo);
        }
        return;
    }
#endif
    SFX(pynet_activation_forward)(act, size, Z, Z);
}

static void SFX(act_backward)(int act, int64_t size, const REAL *A, REAL *dA)
{
#ifdef _OPENMP
    const int nt = SFX(elem_threads)(size);
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
            const int64_t lo = size * t / n / 8 * 8, hi = t + 1 == n ? size : size * (t + 1) / n / 8 * 8;
            SFX(pynet_activation_backward)(act, hi - lo, A + lo, dA + lo, dA + lo);
        }
        return;
    }
#endif
    SFX(pynet_activation_backward)(act, size, A, dA, dA);
}

/* Forward through layers [l0, l1) for rows rows of h[l0]; h[L] gets the output pre-activation. */
static void SFX(net_forward)(const SFX(net) *nt, const REAL *params, int64_t rows, int64_t l0, int64_t l1)
{
    int64_t off = 0;
    for (int64_t l = 0; l < l0; ++l)
        off += nt->sizes[l] * nt->sizes[l + 1] + nt->sizes[l + 1];
    for (int64_t l = l0; l < l1; ++l) {
        const int64_t ni = nt->sizes[l], no = nt->sizes[l + 1];
        const REAL *W = params + off, *b = params + off + ni * no;
        const int relu = l + 1 < nt->L && nt->acts[l] == ACT_RELU;   /* fused into the GEMM's stores */
        SFX(pynet_dense_forward_ws)(rows, ni, no, nt->h[l], W, b, nt->h[l + 1], &nt->pk, relu);
        if (l + 1 < nt->L && !relu)
            SFX(act_forward)((int)nt->acts[l], rows * no, nt->h[l + 1]);
        off += ni * no + no;
    }
}

/* Elementwise passes over the whole parameter buffer (gradient check, optimizer) are split over the
 * threads from this many parameters on (MNIST-shaped: 101 770; the small network's 5 569 stay serial,
 * a fork/join costs more than the pass). Every element is computed alone, so the split changes no bit. */
#define PYNET_PAR_MIN_ELEMS 32768
/* ... in this many chunks, claimed one at a time */
#define PYNET_PAR_CHUNKS 8

static int SFX(elem_threads)(int64_t P)
{
    return P >= PYNET_PAR_MIN_ELEMS ? pynet_get_num_threads() : 1;
}

/* The optimizer over [0, P) in PYNET_PAR_CHUNKS contiguous chunks (multiples of 8 elements) claimed by the
 * threads, so a thread the host delays holds up no fixed half; max|Δ| is the max over chunks, NaN when any
 * chunk's is NaN — what one pass returns. */
static double SFX(update_chunk)(int64_t lo, int64_t hi, int64_t P, REAL *params, const REAL *grads, int opt,
                                const double *hyper, REAL *state, int64_t t, int track)
{
    if (opt == OPT_ADAM)
        return SFX(pynet_adam_update)(hi - lo, params + lo, grads + lo, state + lo, state + P + lo, t, hyper[H_LR],
                                      hyper[H_B1], hyper[H_B2], hyper[H_EPS], hyper[H_WD]);
#ifdef VEC_SGD_NOTRACK
    if (!track && hi - lo >= 8 && pynet_simd_active()) {
        VEC_SGD_NOTRACK(hi - lo, params + lo, grads + lo, state ? state + lo : NULL, hyper[H_LR], hyper[H_MOM],
                        (int)hyper[H_NEST], hyper[H_WD]);
        return 0;
    }
#endif
    (void)track;
    return SFX(pynet_sgd_update)(hi - lo, params + lo, grads + lo, state ? state + lo : NULL, hyper[H_LR],
                                 hyper[H_MOM], (int)hyper[H_NEST], hyper[H_WD]);
}

static double SFX(update_params)(int64_t P, REAL *params, const REAL *grads, int opt, const double *hyper,
                                 REAL *state, int64_t t, int track)
{
#ifdef _OPENMP
    const int nt = SFX(elem_threads)(P);
    if (nt > 1) {
        double moved = 0;
        int nan = 0;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) reduction(max : moved) reduction(| : nan)
        for (int64_t c = 0; c < PYNET_PAR_CHUNKS; ++c) {
            const int64_t lo = P * c / PYNET_PAR_CHUNKS / 8 * 8;
            const int64_t hi = c + 1 == PYNET_PAR_CHUNKS ? P : P * (c + 1) / PYNET_PAR_CHUNKS / 8 * 8;
            const double mv = SFX(update_chunk)(lo, hi, P, params, grads, opt, hyper, state, t, track);
            if (mv != mv)
                nan = 1;
            else if (mv > moved)
                moved = mv;
        }
        return nan ? NAN : moved;
    }
#endif
    return SFX(update_chunk)(0, P, P, params, grads, opt, hyper, state, t, track);
}

/* Layers whose gradient check a GEMM can do on the way (net_backward's bads): the rest are checked by a pass. */
#define MAX_CHECKED_LAYERS 64

/* Backward through layers l1−1 … l0 (dZ of layer l1−1 in *dZ on entry; on exit the ping-pong buffers as
 * they stand, for the next lower layer). off: the flat offset just past layer l1−1's parameters.
 * bads (not NULL): bads[l] = 0 or 1 when layer l's dW and db were checked for ±inf / NaN on the way, −1 when
 * not (layers from MAX_CHECKED_LAYERS on are never checked on the way). */
static void SFX(net_backward)(SFX(net) *nt, const REAL *params, REAL *grads, int64_t rows, int64_t l0, int64_t l1,
                              int64_t off, REAL **dZp, REAL **dXp, int *bads)
{
    REAL *dZ = *dZp, *dX = *dXp;
    for (int64_t l = l1 - 1; l >= l0; --l) {
        const int64_t ni = nt->sizes[l], no = nt->sizes[l + 1];
        off -= ni * no + no;
        const int relu = l > 0 && nt->acts[l - 1] == ACT_RELU;   /* its backward fused into dX's stores */
        SFX(pynet_dense_backward_ws)(rows, ni, no, nt->h[l], params + off, dZ, grads + off, grads + off + ni * no,
                                     l > 0 ? dX : NULL, &nt->pk, relu ? nt->h[l] : NULL,
                                     bads && l < MAX_CHECKED_LAYERS ? bads + l : NULL);
        if (l > 0) {
            if (!relu)
                SFX(act_backward)((int)nt->acts[l - 1], rows * ni, nt->h[l], dX);
            REAL *t = dZ;
            dZ = dX;
            dX = t;
        }
    }
    *dZp = dZ;
    *dXp = dX;
}

/* Everything between the first layer's forward and its backward: forward through layers 1…L−1, the output
 * loss, the alive marks and backward through layers L−1…1. Returns the loss; when it is not finite in REAL
 * (diverged) the backward is skipped. *dZp, *dXp: as net_backward leaves them for layer 0. */
static double SFX(net_upper)(SFX(net) *nt, const REAL *params, REAL *grads, int loss, int64_t rows, const REAL *Y,
                             const REAL *sw, REAL *g1, REAL *g2, int64_t n_alive, int64_t *alive, int64_t P,
                             REAL **dZp, REAL **dXp, int *bads)
{
    const int64_t L = nt->L, k = nt->sizes[L];
    SFX(net_forward)(nt, params, rows, 1, L);
    const double value = SFX(pynet_output_loss)((int)nt->acts[L - 1], loss, rows, k, nt->h[L], Y, sw, g2, g1);
    *dZp = g1;
    *dXp = g2;
    if (!isfinite((REAL)value))   /* beyond REAL's range: diverged, as the loss computed in REAL overflows */
        return (REAL)value;
    if (n_alive) {   /* a hidden unit is alive once any row gave it a non-zero output */
        int64_t base = 0;
        for (int64_t l = 1; l < L; ++l) {
            const int64_t w = nt->sizes[l];
            const REAL *H = nt->h[l];
            int64_t *mark = alive + base;
            for (int64_t r = 0; r < rows; ++r)   /* branch-free, so it vectorises */
                for (int64_t j = 0; j < w; ++j)
                    mark[j] |= (int64_t)(H[r * w + j] != 0);
            base += w;
        }
    }
    /* backward: layer offsets from the end of the flat buffer */
    SFX(net_backward)(nt, params, grads, rows, 1, L, P, dZp, dXp, bads);
    return value;
}

/* The next batch's rows, copied into spare buffers while the current step runs (train_epoch). */
typedef struct {
    int64_t rows, n0, k;
    const int64_t *idx;
    const REAL *X, *Y, *sw;
    REAL *Xb, *Yb, *swb;
} SFX(gather_job);

static void SFX(gather_rows)(int64_t r0, int64_t r1, const int64_t *idx, int64_t n0, const REAL *X, REAL *Xb,
                             int64_t k, const REAL *Y, REAL *Yb, const REAL *sw, REAL *swb);

/* any_nonfinite with the AVX2 pass when the runtime picked AVX2 (the scalar loop is a 4-wide SSE OR chain in
 * the default build) */
static int SFX(grads_nonfinite)(int64_t n, const REAL *x)
{
#ifdef VEC_ANY_NONFINITE
    if (pynet_simd_active())
        return VEC_ANY_NONFINITE(n, x);
#endif
    return SFX(any_nonfinite)(n, x);
}

/* Forward, output loss and backward on rows rows already in h[0], Y, sw, writing grads.
 * Returns the loss; NaN when it is finite but the gradient overflowed (divergence either way).
 * next (not NULL; train_epoch with two threads, every GEMM above the first layer serial): the next batch's
 * gather runs on the second thread while the first runs net_upper — the serial stretch in which the second
 * core idled, and the gather (DRAM-bound: the rows are random) no longer stalls both. Same operations, same
 * order: identical bits. */
static double SFX(net_gradient)(SFX(net) *nt, const REAL *params, REAL *grads, int loss, int64_t rows,
                                const REAL *Y, const REAL *sw, REAL *g1, REAL *g2, int64_t n_alive, int64_t *alive,
                                int64_t P, const SFX(gather_job) *next)
{
    const int64_t n0 = nt->sizes[0], n1 = nt->sizes[1], L = nt->L;
    REAL *dZ, *dX;
    double value;
    int bads[MAX_CHECKED_LAYERS];   /* per layer: checked on the way (0 / 1) or not (−1) */
    SFX(net_forward)(nt, params, rows, 0, 1);
#ifdef _OPENMP
    if (next) {
#pragma omp parallel num_threads(2)
        {
            if (omp_get_thread_num() == 0)
                value = SFX(net_upper)(nt, params, grads, loss, rows, Y, sw, g1, g2, n_alive, alive, P, &dZ, &dX, bads);
            /* rows in chunks claimed dynamically: the first thread takes what is left once its part is done */
#pragma omp for schedule(dynamic, 8) nowait
            for (int64_t r = 0; r < next->rows; r += 8)
                SFX(gather_rows)(r, PYNET_MIN(r + 8, next->rows), next->idx, next->n0, next->X, next->Xb, next->k,
                                 next->Y, next->Yb, next->sw, next->swb);
        }
    } else
#endif
    {
        (void)next;
        value = SFX(net_upper)(nt, params, grads, loss, rows, Y, sw, g1, g2, n_alive, alive, P, &dZ, &dX, bads);
    }
    if (!isfinite(value))
        return value;
    SFX(net_backward)(nt, params, grads, rows, 0, 1, n0 * n1 + n1, &dZ, &dX, bads);
    /* an overflowing gradient is divergence too: report NaN, and the caller leaves the parameters as they
     * are. Layers their GEMM checked (the panel path: MNIST-shaped; the packed path: the wide network) need no
     * pass; each run of the others is checked by any_nonfinite, split over the threads for a large one. */
    int bad = 0;
    for (int64_t l = 0, off = 0; l < L;) {
        if (l < MAX_CHECKED_LAYERS && bads[l] >= 0) {
            bad |= bads[l];
            off += nt->sizes[l] * nt->sizes[l + 1] + nt->sizes[l + 1];
            ++l;
            continue;
        }
        const int64_t q0 = off;   /* [q0, off): the unchecked layers l… */
        for (; l < L && !(l < MAX_CHECKED_LAYERS && bads[l] >= 0); ++l)
            off += nt->sizes[l] * nt->sizes[l + 1] + nt->sizes[l + 1];
#ifdef _OPENMP
        const int nth = SFX(elem_threads)(off - q0);
        if (nth > 1) {
#pragma omp parallel num_threads(nth) reduction(| : bad)
            {
                const int64_t t = omp_get_thread_num(), n = omp_get_num_threads(), len = off - q0;
                const int64_t lo = len * t / n, hi = len * (t + 1) / n;
                bad |= SFX(grads_nonfinite)(hi - lo, grads + q0 + lo);
            }
        } else
#endif
            bad |= SFX(grads_nonfinite)(off - q0, grads + q0);
    }
    return bad ? NAN : value;
}

/* Σ x² in double over SUM_SQ_LANES interleaved partial sums: one running sum is a chain of dependent adds
 * (≈ 4 cycles per element: 160 µs a step for a 100 K-weight layer, a third of the MNIST-shaped step), the
 * lanes are independent and vectorise. Fixed order: the same bits on every run and thread count. */
#define SUM_SQ_LANES 8
static double SFX(sum_sq)(int64_t n, const REAL *x)
{
    double acc[SUM_SQ_LANES] = {0};
    int64_t q = 0;
    for (; q + SUM_SQ_LANES <= n; q += SUM_SQ_LANES)
        for (int t = 0; t < SUM_SQ_LANES; ++t)
            acc[t] += (double)x[q + t] * (double)x[q + t];
    for (; q < n; ++q)
        acc[0] += (double)x[q] * (double)x[q];
    double s = 0;
    for (int t = 0; t < SUM_SQ_LANES; ++t)
        s += acc[t];
    return s;
}

/* ---- Row tiles for large batches of narrow networks (train_gd, and train_epoch's large batches).
 *
 * A whole-batch step of a narrow network (SimpleChains' 4-32-16-4 on 10,000 rows) runs six GEMMs of
 * k or n ≤ 32 over every row, each split over the threads with a barrier, and its activations (2 MB)
 * stream through L2 between layers. Tiles of row_tile() rows instead go through the whole network — forward, loss,
 * backward — while their activations stay in L1/L2, one tile per thread at a time with no barrier, and
 * each tile's gradient is added into one of TILE_GROUPS fixed group sums (tiles in order within a group,
 * groups in order at the end): the same bits for every thread count. A tile's output loss is normalised
 * over its own rows; its gradient and loss are scaled by its share of the batch (Σw_tile / Σw; 1 for ssr,
 * a sum), which is the batch's gradient up to the summation order. */
#define TILE_GROUPS 8
#define TILE_BYTES (96 * 1024)      /* a tile's activations and deltas: L2-resident with room to spare */

static int64_t SFX(row_tile)(const SFX(net) *nt)
{
    int64_t per_row = 0;
    for (int64_t l = 1; l <= nt->L; ++l)
        per_row += nt->sizes[l];
    per_row += 2 * nt->maxw;
    int64_t t = TILE_BYTES / ((int64_t)sizeof(REAL) * per_row) / 8 * 8;
    return PYNET_MAX(64, PYNET_MIN(512, t));
}

/* Tiles pay when there are several and every tile product is too small to be split over threads anyway. */
static int SFX(tiled_ok)(const SFX(net) *nt, int64_t n)
{
    const int64_t T = SFX(row_tile)(nt);
    if (n < 4 * T || !pynet_tiles())
        return 0;
    for (int64_t l = 0; l < nt->L; ++l)
        if ((double)T * (double)nt->sizes[l] * (double)nt->sizes[l + 1] >= PYNET_PAR_MIN_MACS)
            return 0;
    return 1;
}

typedef struct {
    int64_t T, ntiles, nth, P;
    SFX(net) *nets;            /* one per thread, each with T-row buffers */
    REAL **hs;                 /* per thread: L + 1 layer pointers */
    REAL *buf;                 /* per-thread activations, deltas and tile gradient; then the group sums */
    REAL *groups;              /* TILE_GROUPS × P */
    double *values;            /* per tile: its scaled loss */
    int64_t per_thread;        /* elements of buf per thread */
    int64_t acts;              /* elements of a thread's h[1..L]; its g1, g2 and tile gradient follow */
    int64_t H;                 /* hidden units: per-thread alive marks (train_epoch's diagnostics), or 0 */
    int64_t *alive;            /* nth × H, OR-ed into the caller's after each step (order-free: same bits) */
} SFX(tiler);

static void SFX(tiler_free)(SFX(tiler) *tl)
{
    if (tl->nets)
        for (int64_t t = 0; t < tl->nth; ++t)
            SFX(pynet_pack_free)(&tl->nets[t].pk);
    free(tl->nets);
    free(tl->hs);
    free(tl->values);
    free(tl->alive);
    pynet_aligned_free(tl->buf);
    memset(tl, 0, sizeof *tl);
}

/* 0 on success; −1 when out of memory (everything freed) */
static int SFX(tiler_init)(SFX(tiler) *tl, const SFX(net) *proto, int64_t n, int64_t P, int nth, int64_t H)
{
    const int64_t L = proto->L, T = SFX(row_tile)(proto);
    memset(tl, 0, sizeof *tl);
    tl->T = T;
    tl->ntiles = (n + T - 1) / T;
    tl->nth = nth;
    tl->P = P;
    for (int64_t l = 1; l <= L; ++l)
        tl->acts += T * proto->sizes[l];
    /* per thread: h[1..L], g1, g2, the tile gradient (each start rounded to a cache line) */
    tl->per_thread = (tl->acts + 2 * T * proto->maxw + P + 64) / 16 * 16;
    tl->nets = calloc((size_t)nth, sizeof *tl->nets);
    tl->hs = malloc((size_t)(nth * (L + 1)) * sizeof *tl->hs);
    tl->values = malloc((size_t)tl->ntiles * sizeof *tl->values);
    tl->buf = pynet_aligned_alloc((size_t)(nth * tl->per_thread + TILE_GROUPS * P) * sizeof(REAL));
    tl->H = H;
    tl->alive = H ? calloc((size_t)(nth * H), sizeof *tl->alive) : NULL;
    if (!tl->nets || !tl->hs || !tl->values || !tl->buf || (H && !tl->alive)) {
        SFX(tiler_free)(tl);
        return -1;
    }
    tl->groups = tl->buf + nth * tl->per_thread;
    for (int64_t t = 0; t < nth; ++t) {
        REAL **h = tl->hs + t * (L + 1), *w = tl->buf + t * tl->per_thread;
        h[0] = NULL;                                   /* each tile points it into X */
        for (int64_t l = 1; l <= L; ++l) {
            h[l] = w;
            w += T * proto->sizes[l];
        }
        if (SFX(net_init)(&tl->nets[t], L, proto->sizes, proto->acts, T, h) != 0) {
            tl->nth = t;                               /* free the packs made so far */
            SFX(tiler_free)(tl);
            return -1;
        }
    }
    return 0;
}

static double SFX(net_gradient)(SFX(net) *nt, const REAL *params, REAL *grads, int loss, int64_t rows,
                                const REAL *Y, const REAL *sw, REAL *g1, REAL *g2, int64_t n_alive, int64_t *alive,
                                int64_t P, const SFX(gather_job) *next);

/* grads = ∇L over all n rows of X, by tiles (see above); returns the loss, NaN when the gradient overflowed.
 * alive (tl->H entries, or NULL): hidden units that gave a non-zero output on some row are marked 1. */
static double SFX(tiled_gradient)(SFX(tiler) *tl, const REAL *params, REAL *grads, int loss, int64_t n,
                                  const REAL *X, const REAL *Y, const REAL *sw, int64_t *alive)
{
    const SFX(net) *proto = &tl->nets[0];
    const int64_t T = tl->T, nt = (n + T - 1) / T, P = tl->P, n0 = proto->sizes[0], k = proto->sizes[proto->L];
    const double wtot = SFX(weight_sum)(n, sw);
#ifdef _OPENMP
#pragma omp parallel for num_threads(tl->nth) schedule(dynamic, 1) if (tl->nth > 1)
#endif
    for (int64_t g = 0; g < TILE_GROUPS; ++g) {
#ifdef _OPENMP
        const int me = omp_get_thread_num();
#else
        const int me = 0;
#endif
        SFX(net) *net = &tl->nets[me];
        REAL *g1 = tl->buf + me * tl->per_thread + tl->acts, *g2 = g1 + T * net->maxw, *tg = g2 + T * net->maxw;
        REAL *sum = tl->groups + g * P;
        const int64_t t0 = nt * g / TILE_GROUPS, t1 = nt * (g + 1) / TILE_GROUPS;
        for (int64_t p = 0; p < P; ++p)
            sum[p] = 0;
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t r0 = t * T, rows = PYNET_MIN(T, n - r0);
            const double wt = SFX(weight_sum)(rows, sw ? sw + r0 : NULL);
            if (wt == 0) {                         /* a tile of zero weights adds nothing (and would divide by 0) */
                tl->values[t] = 0;
                continue;
            }
            net->h[0] = (REAL *)(X + r0 * n0);     /* read only, as in train_gd */
            const double v = SFX(net_gradient)(net, params, tg, loss, rows, Y + r0 * k, sw ? sw + r0 : NULL, g1,
                                               g2, alive ? tl->H : 0, alive ? tl->alive + me * tl->H : NULL, P,
                                               NULL);
            const double share = loss == LOSS_SSR ? 1.0 : wt / wtot;
            tl->values[t] = v * share;
            const REAL f = (REAL)share;
            if (isfinite(v))
                for (int64_t p = 0; p < P; ++p)
                    sum[p] += f * tg[p];
        }
    }
    if (alive)
        for (int64_t t = 0; t < tl->nth; ++t)
            for (int64_t j = 0; j < tl->H; ++j)
                alive[j] |= tl->alive[t * tl->H + j];
    double value = 0;
    for (int64_t t = 0; t < nt; ++t)
        value += tl->values[t];
    if (!isfinite(value))
        return value;
    for (int64_t p = 0; p < P; ++p) {
        REAL acc = tl->groups[p];
        for (int64_t g = 1; g < TILE_GROUPS; ++g)
            acc += tl->groups[g * P + p];
        grads[p] = acc;
    }
    return SFX(any_nonfinite)(P, grads) ? NAN : value;
}

/* One forward / loss / backward / update on rows rows already in h[0], Y, sw.
 * Returns the loss; *moved = max|Δ| (infinity and no update when the loss or gradient is not finite),
 * unless moved is NULL (train_epoch: then the optimizer need not track it). */
static double SFX(net_step)(SFX(net) *nt, REAL *params, REAL *grads, int loss, int64_t rows, const REAL *Y,
                            const REAL *sw, int opt, const double *hyper, REAL *state, int64_t *step, REAL *g1,
                            REAL *g2, int64_t n_alive, int64_t *alive, int64_t n_grad_sq, double *grad_sq,
                            int64_t P, double *moved, const SFX(gather_job) *next, SFX(tiler) *tiles)
{
    const int64_t L = nt->L;
    const double value = tiles ? SFX(tiled_gradient)(tiles, params, grads, loss, rows, nt->h[0], Y, sw,
                                                     n_alive ? alive : NULL)
                               : SFX(net_gradient)(nt, params, grads, loss, rows, Y, sw, g1, g2, n_alive, alive, P,
                                                   next);
    if (!isfinite(value)) {
        if (moved)
            *moved = INFINITY;
        return value;
    }
    if (n_grad_sq) {
        int64_t off = 0;
        for (int64_t l = 0; l < L; ++l) {
            const int64_t nw = nt->sizes[l] * nt->sizes[l + 1];
            grad_sq[l] += SFX(sum_sq)(nw, grads + off);
            off += nw + nt->sizes[l + 1];
        }
    }
    if (opt == OPT_ADAM)
        step[0] += 1;
    const double mv = SFX(update_params)(P, params, grads, opt, hyper, state, opt == OPT_ADAM ? step[0] : 0,
                                         moved != NULL);
    if (moved)
        *moved = mv;
    return value;
}

/* Copy the batch's rows of X, Y and sw into the workspace. Short rows are copied inline (a memcpy call per
 * 4-byte target was 4 % of the small network's epoch); a large batch (MNIST-shaped: 128 × 784) is split
 * over the threads. */
static void SFX(gather_rows)(int64_t r0, int64_t r1, const int64_t *idx, int64_t n0, const REAL *X, REAL *Xb,
                             int64_t k, const REAL *Y, REAL *Yb, const REAL *sw, REAL *swb)
{
    for (int64_t r = r0; r < r1; ++r) {
        const REAL *x = X + idx[r] * n0, *y = Y + idx[r] * k;
        if (n0 >= 64) {
            memcpy(Xb + r * n0, x, (size_t)n0 * sizeof(REAL));
        } else {
            for (int64_t j = 0; j < n0; ++j)
                Xb[r * n0 + j] = x[j];
        }
        for (int64_t j = 0; j < k; ++j)
            Yb[r * k + j] = y[j];
        if (sw)
            swb[r] = sw[idx[r]];
    }
}

static void SFX(gather)(int64_t rows, const int64_t *idx, int64_t n0, const REAL *X, REAL *Xb, int64_t k,
                        const REAL *Y, REAL *Yb, const REAL *sw, REAL *swb)
{
#ifdef _OPENMP
    const int nt = rows * n0 >= (1 << 16) ? pynet_get_num_threads() : 1;
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
            SFX(gather_rows)(rows * t / n, rows * (t + 1) / n, idx, n0, X, Xb, k, Y, Yb, sw, swb);
        }
        return;
    }
#endif
    SFX(gather_rows)(0, rows, idx, n0, X, Xb, k, Y, Yb, sw, swb);
}

/* Whether train_epoch may gather the next batch during net_upper (net_gradient): two threads or more, a batch
 * whose gather would be split anyway (rows·n0 ≥ 2^16; the MNIST-shaped 128 × 784), and every product and
 * elementwise pass above the first layer under its threads threshold, so that net_upper runs on one thread
 * whatever happens (the MNIST-shaped 128→10 layer: 164 k multiply-adds). */
static int SFX(overlap_ok)(const SFX(net) *nt, int64_t rows, int nth)
{
#ifdef _OPENMP
    if (nth < 2 || rows * nt->sizes[0] < (1 << 16))
        return 0;
    for (int64_t l = 1; l < nt->L; ++l) {
        const int64_t ni = nt->sizes[l], no = nt->sizes[l + 1];
        if ((double)rows * (double)ni * (double)no >= PYNET_PAR_MIN_MACS || rows * PYNET_MAX(ni, no) >= PYNET_PAR_MIN_ELEMS)
            return 0;
    }
    return 1;
#else
    (void)nt;
    (void)rows;
    (void)nth;
    return 0;
#endif
}

static int64_t SFX(n_params)(int64_t L, const int64_t *sizes)
{
    int64_t P = 0;
    for (int64_t l = 0; l < L; ++l)
        P += sizes[l] * sizes[l + 1] + sizes[l + 1];
    return P;
}

double SFX(pynet_train_epoch)(REAL *params, REAL *grads, int64_t nlayers, const int64_t *sizes, const int64_t *acts,
                              int loss, int64_t n, const REAL *X, const REAL *Y, const REAL *sw, int64_t m,
                              const int64_t *perm, int64_t batch_size, int opt, const double *hyper, REAL *state,
                              int64_t *step, REAL *workspace, int64_t n_alive, int64_t *alive, int64_t n_grad_sq,
                              double *grad_sq)
{
    (void)n;
    if (m == 0)
        return 0.0;
    const int64_t L = nlayers, bs = PYNET_MIN(batch_size, m), n0 = sizes[0], k = sizes[L];
    REAL *hstack[MAX_LAYERS_STACK + 1], **h = hstack;
    if (L > MAX_LAYERS_STACK && !(h = malloc((size_t)(L + 1) * sizeof *h)))
        return NAN;
    SFX(net) nt;
    REAL *w = workspace;
    for (int64_t l = 0; l <= L; ++l) {
        h[l] = w;
        w += bs * sizes[l];
    }
    REAL *Yb = w, *swb = w + bs * k;
    if (SFX(net_init)(&nt, L, sizes, acts, bs, h) != 0) {
        if (h != hstack)
            free(h);
        return NAN;
    }
    REAL *g1 = swb + bs, *g2 = g1 + bs * nt.maxw;
    const int64_t P = SFX(n_params)(L, sizes);
    /* Large batches of narrow networks: row tiles, as train_gd (each gathered batch is the tiles' X) */
    SFX(tiler) tiles, *tp = NULL;
    if (SFX(tiled_ok)(&nt, bs)) {
        if (SFX(tiler_init)(&tiles, &nt, bs, P, pynet_get_num_threads(), n_alive) != 0) {
            SFX(pynet_pack_free)(&nt.pk);
            if (h != hstack)
                free(h);
            return NAN;
        }
        tp = &tiles;
    }
    /* Spare batch buffers (X, Y and sw rows) for gathering the next batch during the step, when the step has
     * a serial stretch for it (see net_gradient) and the gather is large enough to be split anyway. */
    REAL *spare = NULL, *sX = NULL, *sY = NULL, *sW = NULL;
    if (!tp && SFX(overlap_ok)(&nt, bs, pynet_get_num_threads()) &&
        (spare = pynet_aligned_alloc((size_t)(bs * (n0 + k + 1)) * sizeof(REAL)))) {
        sX = spare;
        sY = sX + bs * n0;
        sW = sY + bs * k;
    }
    int ready = 0;                                           /* the batch at start is already gathered */
    double total = 0;
    int64_t rows_seen = 0;
    for (int64_t start = 0; start < m; start += bs) {        /* batches in perm order; the last may be partial */
        const int64_t rows = PYNET_MIN(bs, m - start), nnext = PYNET_MIN(bs, m - start - rows);
        if (!ready)
            SFX(gather)(rows, perm + start, n0, X, h[0], k, Y, Yb, sw, swb);
        if (n0 * (int64_t)sizeof(REAL) <= 256) {             /* short rows: fetch the next batch's while this one runs */
            const int64_t *nx = perm + start + rows;
            for (int64_t r = 0; r < nnext; ++r)
                for (int64_t b = 0; b < n0 * (int64_t)sizeof(REAL); b += 64)
                    __builtin_prefetch((const char *)(X + nx[r] * n0) + b);
        }
        const SFX(gather_job) next = {nnext, n0, k, perm + start + rows, X, Y, sw, sX, sY, sW};
        const int ov = spare && nnext > 0 && SFX(overlap_ok)(&nt, rows, pynet_get_num_threads());
        const double value = SFX(net_step)(&nt, params, grads, loss, rows, Yb, sw ? swb : NULL, opt, hyper, state,
                                           step, g1, g2, n_alive, alive, n_grad_sq, grad_sq, P, NULL,
                                           ov ? &next : NULL, tp);
        ready = ov;
        if (ov) {                                            /* the next batch is in the spare buffers: swap */
            REAL *t = h[0];
            h[0] = sX;
            sX = t;
            t = Yb;
            Yb = sY;
            sY = t;
            t = swb;
            swb = sW;
            sW = t;
        }
        if (!isfinite(value)) {                              /* stop at once, parameters untouched by this batch */
            total = value;
            rows_seen = 0;
            break;
        }
        total += loss == LOSS_SSR ? value : value * (double)rows;
        rows_seen += rows;
    }
    pynet_aligned_free(spare);
    if (tp)
        SFX(tiler_free)(tp);
    SFX(pynet_pack_free)(&nt.pk);
    if (h != hstack)
        free(h);
    return (loss == LOSS_SSR || rows_seen == 0) ? total : total / (double)rows_seen;
}

double SFX(pynet_batch_gradient)(const REAL *params, REAL *grads, int64_t nlayers, const int64_t *sizes,
                                 const int64_t *acts, int loss, int64_t n, const REAL *X, const REAL *Y, const REAL *sw,
                                 int64_t m, const int64_t *rows, REAL *workspace)
{
    (void)n;
    const int64_t L = nlayers, n0 = sizes[0], k = sizes[L];
    REAL *hstack[MAX_LAYERS_STACK + 1], **h = hstack;
    if (L > MAX_LAYERS_STACK && !(h = malloc((size_t)(L + 1) * sizeof *h)))
        return NAN;
    REAL *w = workspace;                                     /* the train workspace layout, for m rows */
    for (int64_t l = 0; l <= L; ++l) {
        h[l] = w;
        w += m * sizes[l];
    }
    REAL *Yb = w, *swb = w + m * k;
    SFX(net) nt;
    if (SFX(net_init)(&nt, L, sizes, acts, m, h) != 0) {
        if (h != hstack)
            free(h);
        return NAN;
    }
    REAL *g1 = swb + m, *g2 = g1 + m * nt.maxw;
    SFX(gather)(m, rows, n0, X, h[0], k, Y, Yb, sw, swb);
    const double value = SFX(net_gradient)(&nt, params, grads, loss, m, Yb, sw ? swb : NULL, g1, g2, 0, NULL,
                                           SFX(n_params)(L, sizes), NULL);
    SFX(pynet_pack_free)(&nt.pk);
    if (h != hstack)
        free(h);
    return value;
}

int64_t SFX(pynet_train_gd)(REAL *params, REAL *grads, int64_t nlayers, const int64_t *sizes, const int64_t *acts,
                            int loss, int64_t n, const REAL *X, const REAL *Y, const REAL *sw, int opt,
                            const double *hyper, REAL *state, int64_t *step, double tol, int64_t max_steps,
                            REAL *workspace, double *losses, double *last_step)
{
    const int64_t L = nlayers, k = sizes[L];
    REAL *hstack[MAX_LAYERS_STACK + 1], **h = hstack;
    if (L > MAX_LAYERS_STACK && !(h = malloc((size_t)(L + 1) * sizeof *h)))
        return -1;
    REAL *w = workspace;
    for (int64_t l = 0; l <= L; ++l) {
        h[l] = w;
        w += n * sizes[l];
    }
    h[0] = (REAL *)X;                /* the full batch is X itself: no gather, and h[0] is only read */
    REAL *g1 = w + n * k + n, *g2;
    SFX(net) nt;
    if (SFX(net_init)(&nt, L, sizes, acts, n, h) != 0) {
        if (h != hstack)
            free(h);
        return -1;
    }
    g2 = g1 + n * nt.maxw;
    const int64_t P = SFX(n_params)(L, sizes);
    SFX(tiler) tiles, *tp = NULL;
    if (SFX(tiled_ok)(&nt, n)) {
        if (SFX(tiler_init)(&tiles, &nt, n, P, pynet_get_num_threads(), 0) != 0) {
            SFX(pynet_pack_free)(&nt.pk);
            if (h != hstack)
                free(h);
            return -1;
        }
        tp = &tiles;
    }
    int64_t s, done = max_steps;
    for (s = 0; s < max_steps; ++s) {                        /* one full-batch step per iteration */
        double moved;
        const double value = SFX(net_step)(&nt, params, grads, loss, n, Y, sw, opt, hyper, state, step, g1, g2,
                                           0, NULL, 0, NULL, P, &moved, NULL, tp);
        losses[s] = value;
        last_step[0] = moved;
        if (!isfinite(value) || moved < tol) {
            done = s + 1;
            break;
        }
    }
    if (tp)
        SFX(tiler_free)(tp);
    SFX(pynet_pack_free)(&nt.pk);
    if (h != hstack)
        free(h);
    return done;
}

void SFX(pynet_predict)(const REAL *params, int64_t nlayers, const int64_t *sizes, const int64_t *acts, int64_t n,
                        const REAL *X, REAL *out, int64_t block, REAL *workspace)
{
    const int64_t L = nlayers, k = sizes[L];
    int64_t maxw = 0;
    for (int64_t l = 0; l <= L; ++l)
        maxw = PYNET_MAX(maxw, sizes[l]);
    const int64_t bs = PYNET_MIN(block, n);
    REAL *buf[2] = {workspace, workspace + bs * maxw};
    SFX(pynet_pack) pk;
    size_t na = 0, nb = 0, a, b;
    for (int64_t l = 0; l < L; ++l) {
        SFX(pynet_pack_need)(bs, sizes[l + 1], sizes[l], &a, &b);
        na = PYNET_MAX(na, a);
        nb = PYNET_MAX(nb, b);
    }
    if (SFX(pynet_pack_alloc)(&pk, na, nb) != 0)
        return;
    for (int64_t start = 0; start < n; start += bs) {        /* blocks of rows */
        const int64_t rows = PYNET_MIN(bs, n - start);
        const REAL *in = X + start * sizes[0];
        int64_t off = 0;
        for (int64_t l = 0; l < L; ++l) {                    /* layers, ping-ponging between the two buffers */
            const int64_t ni = sizes[l], no = sizes[l + 1];
            REAL *o = l + 1 == L ? out + start * k : buf[l & 1];
            const int relu = l + 1 < L && acts[l] == ACT_RELU;   /* fused into the GEMM's stores */
            SFX(pynet_dense_forward_ws)(rows, ni, no, in, params + off, params + off + ni * no, o, &pk, relu);
            if (l + 1 < L) {
                if (!relu)
                    SFX(pynet_activation_forward)((int)acts[l], rows * no, o, o);
            } else if (acts[l] == ACT_SOFTMAX)
                SFX(pynet_softmax)(rows, no, o, o);
            else
                SFX(pynet_activation_forward)((int)acts[l], rows * no, o, o);
            in = o;
            off += ni * no + no;
        }
    }
    SFX(pynet_pack_free)(&pk);
}
