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

static int SFX(elem_threads)(int64_t P)
{
    return P >= PYNET_PAR_MIN_ELEMS ? pynet_get_num_threads() : 1;
}

/* The optimizer over [0, P) in nt contiguous chunks (multiples of 8 elements, one per thread); max|Δ| is
 * the max over chunks, NaN when any chunk's is NaN — what one pass returns. */
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
#pragma omp parallel num_threads(nt) reduction(max : moved) reduction(| : nan)
        {
            const int64_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
            const int64_t lo = P * tid / nth / 8 * 8, hi = tid + 1 == nth ? P : P * (tid + 1) / nth / 8 * 8;
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
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t j = 0; j < w; ++j)
                    if (H[r * w + j] != 0)
                        alive[base + j] |= 1;
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

/* One forward / loss / backward / update on rows rows already in h[0], Y, sw.
 * Returns the loss; *moved = max|Δ| (infinity and no update when the loss or gradient is not finite),
 * unless moved is NULL (train_epoch: then the optimizer need not track it). */
static double SFX(net_step)(SFX(net) *nt, REAL *params, REAL *grads, int loss, int64_t rows, const REAL *Y,
                            const REAL *sw, int opt, const double *hyper, REAL *state, int64_t *step, REAL *g1,
                            REAL *g2, int64_t n_alive, int64_t *alive, int64_t n_grad_sq, double *grad_sq,
                            int64_t P, double *moved, const SFX(gather_job) *next)
{
    const int64_t L = nt->L;
    const double value = SFX(net_gradient)(nt, params, grads, loss, rows, Y, sw, g1, g2, n_alive, alive, P, next);
    if (!isfinite(value)) {
        if (moved)
            *moved = INFINITY;
        return value;
    }
    if (n_grad_sq) {
        int64_t off = 0;
        for (int64_t l = 0; l < L; ++l) {
            const int64_t nw = nt->sizes[l] * nt->sizes[l + 1];
            double s = 0;
            for (int64_t q = 0; q < nw; ++q)
                s += (double)grads[off + q] * (double)grads[off + q];
            grad_sq[l] += s;
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

#if defined(_OPENMP) && defined(__GNUC__)   /* (GCC / Clang atomics in the barrier below) */
/* Whether train_epoch runs the epoch on two threads that split each batch's rows (epoch_split): two threads,
 * and a network so small that every product and elementwise pass of its step stays on one thread anyway
 * (the small 20-64-64-1 network: 15 µs steps, which the per-product split cannot use). */
static int SFX(split_ok)(int64_t L, const int64_t *sizes, int64_t bs, int64_t P, int nth)
{
    if (nth < 2 || bs < 2 || L > MAX_LAYERS_STACK || P >= PYNET_PAR_MIN_ELEMS || bs * sizes[0] >= (1 << 16))
        return 0;
    double macs = 0;
    for (int64_t l = 0; l < L; ++l) {
        const int64_t ni = sizes[l], no = sizes[l + 1];
        if ((double)bs * (double)ni * (double)no >= PYNET_PAR_MIN_MACS || bs * PYNET_MAX(ni, no) >= PYNET_PAR_MIN_ELEMS)
            return 0;
        macs += (double)bs * (double)ni * (double)no;
    }
    /* a forward pass of at least 2^16 multiply-adds a step (the small network: 174 k, a ~15 µs step): below
     * that, two barriers a step weigh on a step of a few µs (a bound chosen, not measured) */
    return macs >= 65536.0;
}

/* The split epoch's barrier: spin briefly, then yield. On this 2-vCPU box another tenant often holds one
 * CPU; libgomp's barrier then spins (its default GOMP_SPINCOUNT) while the partner waits for the very CPU it
 * spins on. A step is ~8 µs, so a wait past ~20 µs means the partner is descheduled: let it run.
 * (Defined once: train.c is included for each REAL.) */
#ifndef PYNET_SPLIT_BARRIER
#define PYNET_SPLIT_BARRIER
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#include <time.h>
#define SPLIT_YIELD() sched_yield()
static void split_nap(void)   /* 100 µs */
{
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
}
#else
#define SPLIT_YIELD() ((void)0)
static void split_nap(void) {}
#endif
#if defined(__x86_64__) || defined(__i386__)
#define SPLIT_PAUSE() __builtin_ia32_pause()
#else
#define SPLIT_PAUSE() ((void)0)
#endif
/* how long a thread spins at the barrier before yielding: TSC ticks (≈ 20 µs at 2.5 GHz; a balanced step
 * waits well under 1 µs) where there is a TSC, else pause loops */
#if defined(__x86_64__) || defined(__i386__)
#define SPLIT_NOW() __builtin_ia32_rdtsc()
#define SPLIT_PATIENCE 50000ull
#else
static _Thread_local unsigned long long split_ticks;
#define SPLIT_NOW() (++split_ticks)
#define SPLIT_PATIENCE 20000ull
#endif
typedef struct { int count, gen; } split_barrier;

/* *waited += the ticks waited */
static void split_wait(split_barrier *b, int n, unsigned long long *waited)
{
    if (n < 2)
        return;
    const int g = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == n) {   /* the last one in releases the others */
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->gen, g + 1, __ATOMIC_RELEASE);
        return;
    }
    const unsigned long long t0 = SPLIT_NOW();
    int late = 0;
    while (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == g) {
        if (!late && SPLIT_NOW() - t0 < SPLIT_PATIENCE) {
            SPLIT_PAUSE();
        } else {
            late = 1;
            SPLIT_YIELD();
        }
    }
    *waited += SPLIT_NOW() - t0;
}
#define SPLIT_BARRIER(b, n, w) split_wait((b), (n), (w))
/* Epochs left to run on one thread after one that fell back (another process held the partner's CPU; such
 * spells last seconds, and each fallback costs the waits that detected it): the next split_backoff epochs
 * skip the split, then it is tried again; the backoff doubles with each fallback in a row (4 … 64 epochs)
 * and is back to 4 after an epoch split to the end. A heuristic shared by every caller: relaxed atomics. */
#define SPLIT_COOLDOWN 4
#define SPLIT_COOLDOWN_MAX 64
static int split_cooldown, split_backoff = SPLIT_COOLDOWN;
#endif

/* The epoch on two threads, each batch's rows split between them (thread t: rows [rows·t/2, rows·(t+1)/2)).
 * Per step:
 *   1. each thread gathers its rows, runs the forward, the output loss and the backward's dZ chain down to
 *      layer 0 for them: all row-local, no synchronisation (dZ of every layer kept, in D[l]);
 *   2. barrier; each thread computes its half of every layer's dW rows and db columns over all rows, and
 *      checks what it wrote for non-finite values;
 *   3. each thread applies the optimizer to the gradients it computed (old values saved), barrier; should
 *      either half hold a non-finite value, each puts its old values back and the epoch stops.
 * Both threads add the rows' loss terms (written before the first barrier) in row order and take the same
 * decisions from the same values.
 * Every value is computed as in the serial step (each product element one FMA chain over k in order,
 * whichever tile holds it; the loss summed in row order; db per column in row order), so the results are
 * the bits of the one-thread epoch. Two barriers per step instead of a fork/join per product. */
static double SFX(epoch_split)(REAL *params, REAL *grads, int64_t L, const int64_t *sizes, const int64_t *acts,
                               int loss, const REAL *X, const REAL *Y, const REAL *sw, int64_t m,
                               const int64_t *perm, int64_t bs, int opt, const double *hyper, REAL *state,
                               int64_t *step, REAL *workspace, int64_t n_alive, int64_t *alive, int64_t n_grad_sq,
                               double *grad_sq, int64_t P, int64_t fallback_at, int *failed)
{
    const int64_t n0 = sizes[0], k = sizes[L];
    REAL *h[MAX_LAYERS_STACK + 1], *D[MAX_LAYERS_STACK];
    int64_t woff[MAX_LAYERS_STACK + 1], dsum = 0;
    for (int64_t l = 0; l < L; ++l) {
        woff[l] = l ? woff[l - 1] + sizes[l - 1] * sizes[l] + sizes[l] : 0;
        dsum += sizes[l + 1];
    }
    REAL *w = workspace;   /* h[0…L], Yb, swb as in the serial layout */
    for (int64_t l = 0; l <= L; ++l) {
        h[l] = w;
        w += bs * sizes[l];
    }
    REAL *Yb = w, *swb = w + bs * k;
    /* own buffers: the loss terms, thread 1's alive marks, every layer's dZ (bs × sizes[l+1]), the output
     * activation and the backup of the parameters and of the state arrays the optimizer keeps (Adam's m and
     * v, SGD's velocity with momentum) */
    const int nstate = !state ? 0 : opt == OPT_ADAM ? 2 : hyper[H_MOM] != 0 ? 1 : 0;
    const size_t bytes = (size_t)(bs * (dsum + k) + (1 + nstate) * P) * sizeof(REAL) + (size_t)bs * sizeof(double) +
                         (size_t)n_alive * sizeof(int64_t);
    char *buf = pynet_aligned_alloc(bytes + 64);
    SFX(net) nts[2];
    int ok0 = 0, ok1 = 0;
    if (buf) {
        ok0 = SFX(net_init)(&nts[0], L, sizes, acts, bs, NULL) == 0;
        ok1 = ok0 && SFX(net_init)(&nts[1], L, sizes, acts, bs, NULL) == 0;
    }
    if (!ok1) {
        if (ok0)
            SFX(pynet_pack_free)(&nts[0].pk);
        pynet_aligned_free(buf);
        *failed = 1;
        return 0;
    }
    *failed = 0;
    REAL *g1 = swb + bs, *g2 = g1 + bs * nts[0].maxw;   /* the serial step's buffers (the fallback) */
    double *terms = (double *)buf;   /* doubles and int64 first: the REAL arrays need no more alignment */
    int64_t *alive1 = (int64_t *)(terms + bs);
    REAL *dz = (REAL *)(alive1 + n_alive);
    for (int64_t l = 0; l < L; ++l) {
        D[l] = dz;
        dz += bs * sizes[l + 1];
    }
    REAL *Aout = dz, *bk = Aout + bs * k;   /* bk: the parameters (and state) before this thread's update */
    for (int64_t j = 0; j < n_alive; ++j)
        alive1[j] = 0;
    int flags[2] = {0, 0}, votes[2] = {0, 0}, finished = 0;
    split_barrier bar = {0, 0};
    double result = 0;
#pragma omp parallel num_threads(2)
    {
        const int tid = omp_get_thread_num();
        int nth = omp_get_num_threads();
        unsigned long long waited = 0, t_start = 0;   /* ticks at the barriers; since step 1 began */
        SFX(net) *nt = &nts[tid];
        REAL *hh[MAX_LAYERS_STACK + 1];
        int64_t *mark = tid == 0 ? alive : alive1;
        int64_t t_adam = step[0], rg[2 * MAX_LAYERS_STACK][2];
        int fell_back = 0;
        double total = 0;
        int64_t rows_seen = 0;
        nt->h = hh;
        for (int64_t start = 0; start < m; start += bs) {
            const int64_t rows = PYNET_MIN(bs, m - start), nnext = PYNET_MIN(bs, m - start - rows);
            if (nth == 1 && fell_back) {   /* the rest of the epoch: train_epoch's serial step, the same bits */
                SFX(gather)(rows, perm + start, n0, X, h[0], k, Y, Yb, sw, swb);
                for (int64_t l = 0; l <= L; ++l)
                    hh[l] = h[l];
                const double value = SFX(net_step)(nt, params, grads, loss, rows, Yb, sw ? swb : NULL, opt, hyper,
                                                   state, &t_adam, g1, g2, n_alive, alive, n_grad_sq, grad_sq, P,
                                                   NULL, NULL);
                if (!isfinite(value)) {
                    total = value;
                    rows_seen = 0;
                    break;
                }
                total += loss == LOSS_SSR ? value : value * (double)rows;
                rows_seen += rows;
                continue;
            }
            const int64_t r0 = rows * tid / nth, r1 = rows * (tid + 1) / nth, nr = r1 - r0;
            const int64_t *idx = perm + start;
            SFX(gather_rows)(r0, r1, idx, n0, X, h[0], k, Y, Yb, sw, swb);
            if (n0 * (int64_t)sizeof(REAL) <= 256) {   /* this thread's rows of the next batch */
                const int64_t *nx = perm + start + rows;
                for (int64_t r = nnext * tid / nth; r < nnext * (tid + 1) / nth; ++r)
                    for (int64_t b = 0; b < n0 * (int64_t)sizeof(REAL); b += 64)
                        __builtin_prefetch((const char *)(X + nx[r] * n0) + b);
            }
            double wsum = (double)rows;   /* the whole batch's weight sum, as weight_sum adds it */
            if (sw) {
                wsum = 0;
                for (int64_t r = 0; r < rows; ++r)
                    wsum += sw[idx[r]];
            }
            /* 1. this thread's rows: forward, output loss, dZ of every layer */
            for (int64_t l = 0; l <= L; ++l)
                hh[l] = h[l] + r0 * sizes[l];
            SFX(net_forward)(nt, params, nr, 0, L);
            SFX(output_loss_rows)((int)acts[L - 1], loss, nr, k, hh[L], Yb + r0 * k, sw ? swb + r0 : NULL, wsum,
                                  Aout + r0 * k, D[L - 1] + r0 * k, terms + r0);
            for (int64_t l = L - 1; l >= 1; --l) {
                const int64_t ni = sizes[l], no = sizes[l + 1];
                const int relu = acts[l - 1] == ACT_RELU;   /* its backward fused into dX's stores */
                SFX(gemm_core)(nr, ni, no, D[l] + r0 * no, no, 1, params + woff[l], 1, no, D[l - 1] + r0 * ni, ni, 0,
                               NULL, 0, relu ? hh[l] : NULL, &nt->pk, NULL);
                if (!relu)
                    SFX(pynet_activation_backward)((int)acts[l - 1], nr * ni, hh[l], D[l - 1] + r0 * ni,
                                                   D[l - 1] + r0 * ni);
            }
            if (start == bs)
                t_start = SPLIT_NOW(), waited = 0;   /* step 0's first barrier: thread 1 waking up, not counted */
            SPLIT_BARRIER(&bar, nth, &waited);
            /* 2. the loss, from every row's term: the same decision on both threads */
            double value = 0;
            for (int64_t r = 0; r < rows; ++r)
                value += terms[r];
            if (loss == LOSS_MSE || loss == LOSS_BCE)
                value /= (double)k;
            if (!isfinite((REAL)value)) {   /* diverged: the loss overflows REAL; parameters untouched */
                total = (REAL)value;
                rows_seen = 0;
                break;
            }
            if (n_alive) {   /* this thread's rows: a hidden unit is alive once any row gave it a non-zero output */
                int64_t base = 0;
                for (int64_t l = 1; l < L; ++l) {
                    const int64_t wl = sizes[l];
                    for (int64_t r = 0; r < nr; ++r)
                        for (int64_t j = 0; j < wl; ++j)
                            if (hh[l][r * wl + j] != 0)
                                mark[base + j] |= 1;
                    base += wl;
                }
            }
            /* this thread's share of dW (rows) and db (16-column blocks) over all rows, checked; its ranges of
             * the flat buffer in rg */
            int bad = 0, nrg = 0;
            for (int64_t l = 0; l < L; ++l) {
                const int64_t ni = sizes[l], no = sizes[l + 1];
                const int64_t i0 = ni * tid / nth, i1 = ni * (tid + 1) / nth;
                REAL *dW = grads + woff[l], *db = dW + ni * no;
                SFX(gemm_core)(i1 - i0, no, rows, h[l] + i0, 1, ni, D[l], no, 1, dW + i0 * no, no, 0, NULL, 0, NULL,
                               &nt->pk, NULL);
                bad |= SFX(grads_nonfinite)((i1 - i0) * no, dW + i0 * no);
                const int64_t nb16 = no / 16, q0 = nb16 * tid / nth, q1 = nb16 * (tid + 1) / nth;
                for (int64_t jb = q0; jb < q1; ++jb)
                    SFX(colsum16)(rows, no, D[l] + jb * 16, db + jb * 16);
                if (tid == nth - 1)   /* the last no mod 16 columns, summed as dense.c sums them */
                    for (int64_t j = nb16 * 16; j < no; ++j) {
                        REAL s = 0;
                        for (int64_t r = 0; r < rows; ++r)
                            s += D[l][r * no + j];
                        db[j] = s;
                    }
                const int64_t j0 = q0 * 16, j1 = tid == nth - 1 ? no : q1 * 16;
                bad |= SFX(grads_nonfinite)(j1 - j0, db + j0);
                rg[nrg][0] = woff[l] + i0 * no;
                rg[nrg++][1] = woff[l] + i1 * no;
                rg[nrg][0] = woff[l] + ni * no + j0;
                rg[nrg++][1] = woff[l] + ni * no + j1;
            }
            flags[tid] = bad;
            /* a partner that keeps this thread waiting a third of its time past step 8 (its CPU shared with
             * another process). Single late partners are no signal: even unloaded epochs see 0–4 waits past
             * SPLIT_PATIENCE (the vCPU's host), and voting on the second one gave the split up for good */
            votes[tid] = fallback_at >= 0 ? start / bs + 1 == fallback_at
                                          : start >= 8 * bs && 3 * waited > SPLIT_NOW() - t_start;
            /* 3. the optimizer on the gradients this thread computed, before knowing the other's verdict: the
             * old values saved first, put back should the other half turn out non-finite (one barrier fewer) */
            if (!bad) {
                if (opt == OPT_ADAM)
                    t_adam += 1;
                for (int g = 0; g < nrg; ++g) {
                    const int64_t lo = rg[g][0], len = rg[g][1] - rg[g][0];
                    memcpy(bk + lo, params + lo, (size_t)len * sizeof(REAL));
                    if (nstate >= 1)
                        memcpy(bk + P + lo, state + lo, (size_t)len * sizeof(REAL));
                    if (nstate >= 2)
                        memcpy(bk + 2 * P + lo, state + P + lo, (size_t)len * sizeof(REAL));
                    if (len > 0)
                        SFX(update_chunk)(lo, lo + len, P, params, grads, opt, hyper, state,
                                          opt == OPT_ADAM ? t_adam : 0, 0);
                }
            }
            SPLIT_BARRIER(&bar, nth, &waited);
            if (flags[0] | flags[1]) {   /* finite loss, overflowing gradient: parameters as before the batch */
                if (!bad)
                    for (int g = 0; g < nrg; ++g) {
                        const int64_t lo = rg[g][0], len = rg[g][1] - rg[g][0];
                        memcpy(params + lo, bk + lo, (size_t)len * sizeof(REAL));
                        if (nstate >= 1)
                            memcpy(state + lo, bk + P + lo, (size_t)len * sizeof(REAL));
                        if (nstate >= 2)
                            memcpy(state + P + lo, bk + 2 * P + lo, (size_t)len * sizeof(REAL));
                    }
                if (!bad && opt == OPT_ADAM)
                    t_adam -= 1;
                total = NAN;
                rows_seen = 0;
                break;
            }
            if (n_grad_sq && tid == 0) {   /* every gradient final: serial, as net_step sums it (the other thread
                                            * writes no gradient before the next barrier) */
                for (int64_t l = 0; l < L; ++l) {
                    const int64_t nw = sizes[l] * sizes[l + 1];
                    double s = 0;
                    for (int64_t q = 0; q < nw; ++q)
                        s += (double)grads[woff[l] + q] * (double)grads[woff[l] + q];
                    grad_sq[l] += s;
                }
            }
            total += loss == LOSS_SSR ? value : value * (double)rows;
            rows_seen += rows;
            if (nth > 1 && (votes[0] | votes[1])) {   /* the partner keeps being descheduled (another process
                                                         * holds its CPU): the rest of the epoch on thread 0 alone,
                                                         * the same computations over all rows */
                if (tid != 0) {   /* asleep until thread 0 is done: libgomp's end-of-region barrier would spin,
                                   * maybe on the CPU thread 0 runs on */
                    while (!__atomic_load_n(&finished, __ATOMIC_ACQUIRE))
                        split_nap();
                    break;
                }
                nth = 1;
                fell_back = 1;
            }
        }
        if (tid == 0) {
            __atomic_store_n(&finished, 1, __ATOMIC_RELEASE);
            if (fallback_at < 0) {
                const int b = __atomic_load_n(&split_backoff, __ATOMIC_RELAXED);
                if (fell_back) {
                    __atomic_store_n(&split_cooldown, b, __ATOMIC_RELAXED);
                    __atomic_store_n(&split_backoff, PYNET_MIN(2 * b, SPLIT_COOLDOWN_MAX), __ATOMIC_RELAXED);
                } else {
                    __atomic_store_n(&split_backoff, SPLIT_COOLDOWN, __ATOMIC_RELAXED);
                }
            }
        }
        if (tid == 0) {
            step[0] = t_adam;
            result = (loss == LOSS_SSR || rows_seen == 0) ? total : total / (double)rows_seen;
        }
    }
    for (int64_t j = 0; j < n_alive; ++j)
        alive[j] |= alive1[j];
    SFX(pynet_pack_free)(&nts[0].pk);
    SFX(pynet_pack_free)(&nts[1].pk);
    pynet_aligned_free(buf);
    return result;
}
#endif

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
#if defined(_OPENMP) && defined(__GNUC__)
    /* tests: PYNET_SPLIT_FALLBACK_AT=s takes the split path every time and switches to one thread after step
     * s exactly (0: never), whatever the partner does */
    const char *fb = getenv("PYNET_SPLIT_FALLBACK_AT"), *off = getenv("PYNET_SPLIT");   /* PYNET_SPLIT=0: never */
    const int64_t fallback_at = fb ? atoll(fb) : -1;
    if (!(off && off[0] == '0') && SFX(split_ok)(L, sizes, bs, SFX(n_params)(L, sizes), pynet_get_num_threads()) &&
        (fallback_at >= 0 || !(__atomic_load_n(&split_cooldown, __ATOMIC_RELAXED) > 0 &&
                               __atomic_sub_fetch(&split_cooldown, 1, __ATOMIC_RELAXED) >= 0))) {
        int failed;
        const double v = SFX(epoch_split)(params, grads, L, sizes, acts, loss, X, Y, sw, m, perm, bs, opt, hyper, state,
                                          step, workspace, n_alive, alive, n_grad_sq, grad_sq,
                                          SFX(n_params)(L, sizes), fallback_at, &failed);
        if (!failed)
            return v;
    }
#endif
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
    /* Spare batch buffers (X, Y and sw rows) for gathering the next batch during the step, when the step has
     * a serial stretch for it (see net_gradient) and the gather is large enough to be split anyway. */
    REAL *spare = NULL, *sX = NULL, *sY = NULL, *sW = NULL;
    if (SFX(overlap_ok)(&nt, bs, pynet_get_num_threads()) &&
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
                                           ov ? &next : NULL);
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
    int64_t s, done = max_steps;
    for (s = 0; s < max_steps; ++s) {                        /* one full-batch step per iteration */
        double moved;
        const double value = SFX(net_step)(&nt, params, grads, loss, n, Y, sw, opt, hyper, state, step, g1, g2,
                                           0, NULL, 0, NULL, P, &moved, NULL);
        losses[s] = value;
        last_step[0] = moved;
        if (!isfinite(value) || moved < tol) {
            done = s + 1;
            break;
        }
    }
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
