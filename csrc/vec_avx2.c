/* vec_avx2.c — AVX2 versions of the elementwise passes that dominate small fused steps.
 *
 * Built with function target attributes (like ukernel_avx2.c) and called only when the runtime
 * picked AVX2. Each computes exactly what its scalar twin in optimizers.c computes, lane by lane:
 * the same double operations in the same order (no FMA contraction: mul and add are separate), so
 * results are bit-identical to the scalar path. */
#include <math.h>
#include "internal.h"

#if PYNET_X86_SIMD
#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma")))

/* max|Δ| of four lanes folded into mx; NaN lanes recorded in nan (vmaxpd drops NaN operands) */
#define TRACK(step)                                                            \
    do {                                                                       \
        const __m256d a_ = _mm256_andnot_pd(sign, step);                       \
        nan = _mm256_or_pd(nan, _mm256_cmp_pd(a_, a_, _CMP_UNORD_Q));          \
        mx = _mm256_max_pd(a_, mx);                                            \
    } while (0)

/* SGD (momentum, Nesterov, weight decay) on float32 parameters: pynet_sgd_update_f32, four lanes per block.
 * mom, wd and nest are constants after inlining (sgd_body_f32 dispatches once per call): with the tests
 * inside the loop GCC re-tested the hyper-parameters for every four parameters. */
static inline __attribute__((always_inline)) TGT __m256d sgd_block_f32(const int mom, const int wd, const int nest,
                                                                     float *params, const float *grads,
                                                                     float *velocity, __m256d vlr, __m256d vmu,
                                                                     __m256d vwd)
{
    const __m256d w = _mm256_cvtps_pd(_mm_loadu_ps(params));
    __m256d step;
    if (mom && !wd) {
        /* g is a float here, so v = (REAL)((double)(REAL)(μv) + g) is the float sum of two floats:
         * rounding a double sum of floats to float gives the correctly rounded float sum (double
         * has ≥ 2·24 + 2 bits), so one float add replaces two conversions and a double add */
        const __m128 gf = _mm_loadu_ps(grads);
        const __m256d v0 = _mm256_cvtps_pd(_mm_loadu_ps(velocity));
        const __m128 vf = _mm_add_ps(_mm256_cvtpd_ps(_mm256_mul_pd(vmu, v0)), gf);
        _mm_storeu_ps(velocity, vf);
        const __m256d v = _mm256_cvtps_pd(vf);
        step = nest ? _mm256_mul_pd(vlr, _mm256_add_pd(_mm256_cvtps_pd(gf), _mm256_mul_pd(vmu, v)))
                    : _mm256_mul_pd(vlr, v);
    } else if (mom) {
        const __m256d g = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(grads)), _mm256_mul_pd(vwd, w));
        const __m256d v0 = _mm256_cvtps_pd(_mm_loadu_ps(velocity));
        const __m256d mv = _mm256_cvtps_pd(_mm256_cvtpd_ps(_mm256_mul_pd(vmu, v0)));   /* (REAL)(μv) */
        const __m128 vf = _mm256_cvtpd_ps(_mm256_add_pd(mv, g));                     /* v = μv + g */
        _mm_storeu_ps(velocity, vf);
        const __m256d v = _mm256_cvtps_pd(vf);
        step = nest ? _mm256_mul_pd(vlr, _mm256_add_pd(g, _mm256_mul_pd(vmu, v))) : _mm256_mul_pd(vlr, v);
    } else {
        __m256d g = _mm256_cvtps_pd(_mm_loadu_ps(grads));
        if (wd)
            g = _mm256_add_pd(g, _mm256_mul_pd(vwd, w));
        step = _mm256_mul_pd(vlr, g);
    }
    _mm_storeu_ps(params, _mm256_cvtpd_ps(_mm256_add_pd(w, step)));
    return step;
}

static inline __attribute__((always_inline)) TGT double sgd_loop_f32(const int track, const int mom, const int wd,
                                                                   const int nest, int64_t p, float *params,
                                                                   const float *grads, float *velocity, double lr,
                                                                   double momentum, double weight_decay)
{
    const __m256d sign = _mm256_set1_pd(-0.0), vlr = _mm256_set1_pd(-lr), vmu = _mm256_set1_pd(momentum);
    const __m256d vwd = _mm256_set1_pd(weight_decay);
    __m256d mx = _mm256_setzero_pd(), nan = _mm256_setzero_pd();
    int64_t t = 0;
    for (; t + 8 <= p; t += 8) {                       /* two independent blocks per iteration */
        const __m256d s0 = sgd_block_f32(mom, wd, nest, params + t, grads + t, mom ? velocity + t : NULL, vlr,
                                         vmu, vwd);
        const __m256d s1 = sgd_block_f32(mom, wd, nest, params + t + 4, grads + t + 4,
                                         mom ? velocity + t + 4 : NULL, vlr, vmu, vwd);
        if (track) {
            TRACK(s0);
            TRACK(s1);
        }
    }
    if (t + 4 <= p) {
        const __m256d s0 = sgd_block_f32(mom, wd, nest, params + t, grads + t, mom ? velocity + t : NULL, vlr,
                                         vmu, vwd);
        if (track)
            TRACK(s0);
        t += 4;
    }
    double lanes[4], nl[4];
    _mm256_storeu_pd(lanes, mx);
    _mm256_storeu_pd(nl, nan);
    double moved = 0;
    int bad = 0;
    for (int q = 0; q < 4; ++q) {
        moved = lanes[q] > moved ? lanes[q] : moved;
        bad |= nl[q] != 0;
    }
    if (t < p) {                                       /* the tail: the scalar kernel itself */
        const double tail = pynet_sgd_update_f32(p - t, params + t, grads + t, velocity ? velocity + t : NULL, lr,
                                                 momentum, nest, weight_decay);
        if (tail > moved || tail != tail)
            moved = tail;
    }
    return bad ? NAN : moved;
}

/* pick the loop for this call's hyper-parameters (the scalar kernel ignores Nesterov without momentum) */
static inline __attribute__((always_inline)) TGT double sgd_body_f32(const int track, int64_t p, float *params,
                                                                   const float *grads, float *velocity, double lr,
                                                                   double momentum, int nesterov, double weight_decay)
{
#define SGD_LOOP(mom, wd, nest) \
    sgd_loop_f32(track, mom, wd, nest, p, params, grads, velocity, lr, momentum, weight_decay)
    if (momentum == 0)
        return weight_decay != 0 ? SGD_LOOP(0, 1, 0) : SGD_LOOP(0, 0, 0);
    if (weight_decay != 0)
        return nesterov ? SGD_LOOP(1, 1, 1) : SGD_LOOP(1, 1, 0);
    return nesterov ? SGD_LOOP(1, 0, 1) : SGD_LOOP(1, 0, 0);
#undef SGD_LOOP
}

TGT double pynet_sgd_avx2_f32(int64_t p, float *params, const float *grads, float *velocity, double lr,
                              double momentum, int nesterov, double weight_decay)
{
    return sgd_body_f32(1, p, params, grads, velocity, lr, momentum, nesterov, weight_decay);
}

/* The same update without max|Δ| (train_epoch does not use it): a quarter fewer vector operations. */
TGT void pynet_sgd_avx2_notrack_f32(int64_t p, float *params, const float *grads, float *velocity, double lr,
                                    double momentum, int nesterov, double weight_decay)
{
    (void)sgd_body_f32(0, p, params, grads, velocity, lr, momentum, nesterov, weight_decay);
}

/* 1 when some x[q] is ±inf or NaN, as gemm.c's scalar any_nonfinite (x − x is NaN exactly for those): the
 * differences (±0 or NaN) are summed in four independent accumulators, a NaN anywhere survives the sum. The
 * scalar loop compiled to a 4-wide SSE OR chain, about 5 % of the small network's epoch. */
TGT int pynet_any_nonfinite_avx2_f32(int64_t p, const float *x)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t t = 0;
    for (; t + 32 <= p; t += 32) {
        const __m256 x0 = _mm256_loadu_ps(x + t), x1 = _mm256_loadu_ps(x + t + 8);
        const __m256 x2 = _mm256_loadu_ps(x + t + 16), x3 = _mm256_loadu_ps(x + t + 24);
        s0 = _mm256_add_ps(s0, _mm256_sub_ps(x0, x0));
        s1 = _mm256_add_ps(s1, _mm256_sub_ps(x1, x1));
        s2 = _mm256_add_ps(s2, _mm256_sub_ps(x2, x2));
        s3 = _mm256_add_ps(s3, _mm256_sub_ps(x3, x3));
    }
    for (; t + 8 <= p; t += 8) {
        const __m256 x0 = _mm256_loadu_ps(x + t);
        s0 = _mm256_add_ps(s0, _mm256_sub_ps(x0, x0));
    }
    const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    int bad = _mm256_movemask_ps(_mm256_cmp_ps(s, s, _CMP_UNORD_Q)) != 0;
    for (; t < p; ++t) {
        const float d = x[t] - x[t];
        bad |= d != d;
    }
    return bad;
}

/* ReLU forward, A = max(0, Z) with NaN passed through: vmaxps returns its second operand when either is
 * NaN and for ±0 pairs, which is exactly the scalar `Z < 0 ? 0 : Z`. A may alias Z. */
TGT void pynet_relu_forward_avx2_f32(int64_t size, const float *Z, float *A)
{
    const __m256 zero = _mm256_setzero_ps();
    int64_t t = 0;
    for (; t + 8 <= size; t += 8)
        _mm256_storeu_ps(A + t, _mm256_max_ps(zero, _mm256_loadu_ps(Z + t)));
    for (; t < size; ++t)
        A[t] = Z[t] < 0 ? 0 : Z[t];
}

/* ReLU backward, dZ = dA · [A > 0] as a product (NaN/inf in dA propagate): branch-free, so a
 * random sign pattern costs no mispredictions (the scalar loop's branch did). dZ may alias dA. */
TGT void pynet_relu_backward_avx2_f32(int64_t size, const float *A, const float *dA, float *dZ)
{
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    int64_t t = 0;
    for (; t + 8 <= size; t += 8) {
        const __m256 m = _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(A + t), zero, _CMP_GT_OQ), one);
        _mm256_storeu_ps(dZ + t, _mm256_mul_ps(_mm256_loadu_ps(dA + t), m));
    }
    for (; t < size; ++t)
        dZ[t] = dA[t] * (A[t] > 0 ? 1.0f : 0.0f);
}

#else
typedef int pynet_no_x86_simd_vec; /* ISO C forbids an empty translation unit */
#endif
