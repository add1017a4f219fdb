/* vmath.h — elementwise math on vectors of VW lanes (GCC/Clang vector extensions), generic over REAL and
 * the vector width. vmath.c includes it once per (dtype, ISA) with the ISA's target enabled, so the same
 * source becomes SSE2/NEON (baseline), AVX2 and AVX-512 code; every lane runs the same operations in the
 * same order, so the result of an element does not depend on the vector width or the thread count.
 *
 * Included with: REAL, VW (lanes), VSFX(name) (the instance's suffix), VM_F32 (1 for float, 0 for double),
 * and the instance's VM_FMA(a, b, c) = a·b + c, VM_MIN(x, c), VM_MAX(x, c) (x NaN: x). The compiler
 * contracts nothing (-std=c11); VM_FMA is one rounding where the ISA has FMA (AVX2, AVX-512) and two in the
 * portable instance, so the ISAs with FMA agree bit for bit and the portable one within the same bound.
 * No libm call.
 *
 * Accuracy: kernels/contract.py's MATH_ULP, checked by tests/test_math_accuracy.py. The algorithms:
 *   exp:    x = n·ln2 + r (Cody–Waite, ln2 in two parts so n·ln2_hi is exact), e^r by its Taylor
 *           polynomial (|r| ≤ ln2/2: degree 7 / 13 leaves < 0.1 ulp), times 2^n applied in two halves so
 *           results in the subnormal range and overflow to inf come out right;
 *   expm1:  2^n·(e^r − 1) + (2^n − 1), e^r − 1 without its constant term (relative accuracy near 0);
 *   log:    x = 2^k·m, m ∈ [√½, √2), s = (m − 1)/(m + 1), log m = 2·atanh(s) as an odd series in s;
 *   log1p:  log(w) + (u − (w − 1))/w with w = 1 + u rounded (the correction restores u's lost bits);
 *   tanh:   sign(x)·e/(e + 2), e = expm1(2|x|), |x| clamped where tanh rounds to 1;
 *   sigmoid (z ≥ 0 ? 1 : e)/(1 + e), e = exp(−|z|);  softplus  max(z, 0) + log1p(exp(−|z|)). */

#if VM_F32
typedef int32_t VSFX(vi_s);
typedef float VSFX(vr) __attribute__((vector_size(VW * 4)));
typedef int32_t VSFX(vi) __attribute__((vector_size(VW * 4)));
#define VM_MANT 23
#define VM_BIAS 127
#define VM_MAGIC 12582912.0f                 /* 1.5·2^23: adding it rounds to an integer in the low bits */
#else
typedef int64_t VSFX(vi_s);
typedef double VSFX(vr) __attribute__((vector_size(VW * 8)));
typedef int64_t VSFX(vi) __attribute__((vector_size(VW * 8)));
#define VM_MANT 52
#define VM_BIAS 1023
#define VM_MAGIC 6755399441055744.0          /* 1.5·2^52 */
#endif

#ifndef VM_INLINE
#define VM_INLINE inline __attribute__((always_inline))   /* vectors stay in registers across helpers */
#endif
#define VR VSFX(vr)
#define VI VSFX(vi)
#define VIS VSFX(vi_s)
#define VM_SEL(m, a, b) ((VR)(((m) & (VI)(a)) | (~(m) & (VI)(b))))   /* m ? a : b, lane by lane */
#define VM_SELI(m, a, b) (((m) & (a)) | (~(m) & (b)))                  /* the same on integer lanes */
#define VM_SIGN ((VIS)1 << (sizeof(REAL) * 8 - 1))
#define VM_BC(v) ((v) + (VR)((VI){0} + VM_SIGN))   /* a scalar broadcast, a vector as is (x + −0 = x, −0 too) */

static VM_INLINE VR VSFX(vm_load)(const REAL *p)
{
    VR v;
    memcpy(&v, p, sizeof v);
    return v;
}

static VM_INLINE void VSFX(vm_store)(REAL *p, VR v)
{
    memcpy(p, &v, sizeof v);
}

static VM_INLINE VR VSFX(vm_abs)(VR x)
{
    return (VR)((VI)x & ~VM_SIGN);
}

/* 2^n for integer lanes n within the normal exponent range */
static VM_INLINE VR VSFX(vm_pow2)(VI n)
{
    return (VR)((n + VM_BIAS) << VM_MANT);
}

/* x = n·ln2 + r with |r| ≲ ln2/2; returns r, n in *n (x finite and within the clamp) */
static VM_INLINE VR VSFX(vm_reduce)(VR x, VI *n)
{
#if VM_F32
    const REAL log2e = 0x1.715476p+0f, ln2_hi = 0x1.62e4p-1f, ln2_lo = 0x1.7f7d1cp-20f;
#else
    const REAL log2e = 0x1.71547652b82fep+0, ln2_hi = 0x1.62e42fefa38p-1, ln2_lo = 0x1.ef35793c7673p-45;
#endif
    const VR t = VM_FMA(x, log2e, VM_MAGIC);  /* round(x/ln2) in the low mantissa bits */
    const VR nf = t - VM_MAGIC;
    *n = (VI)t - (VI)((VR){0} + VM_MAGIC);
    return VM_FMA(-nf, ln2_lo, VM_FMA(-nf, ln2_hi, x));   /* nf·ln2_hi is exact: ln2_hi has 16 / 42 bits */
}

/* e^r − 1 for |r| ≲ ln2/2, Taylor to degree 8 (float) / 14 (double), Horner */
static VM_INLINE VR VSFX(vm_expm1_poly)(VR r)
{
#if VM_F32
    VR p = (VR){0} + (REAL)(1.0 / 40320);
    p = VM_FMA(p, r, (REAL)(1.0 / 5040));
    p = VM_FMA(p, r, (REAL)(1.0 / 720));
    p = VM_FMA(p, r, (REAL)(1.0 / 120));
    p = VM_FMA(p, r, (REAL)(1.0 / 24));
    p = VM_FMA(p, r, (REAL)(1.0 / 6));
    p = VM_FMA(p, r, (REAL)0.5);
#else
    VR p = (VR){0} + 1.0 / 87178291200.0;
    p = VM_FMA(p, r, 1.0 / 6227020800.0);
    p = VM_FMA(p, r, 1.0 / 479001600.0);
    p = VM_FMA(p, r, 1.0 / 39916800.0);
    p = VM_FMA(p, r, 1.0 / 3628800.0);
    p = VM_FMA(p, r, 1.0 / 362880.0);
    p = VM_FMA(p, r, 1.0 / 40320.0);
    p = VM_FMA(p, r, 1.0 / 5040.0);
    p = VM_FMA(p, r, 1.0 / 720.0);
    p = VM_FMA(p, r, 1.0 / 120.0);
    p = VM_FMA(p, r, 1.0 / 24.0);
    p = VM_FMA(p, r, 1.0 / 6.0);
    p = VM_FMA(p, r, 0.5);
#endif
    return VM_FMA(p * r, r, r);              /* r + r²·(…): the leading term is exact */
}

/* a copy of x with lanes below lo raised to lo and above hi lowered to hi; NaN lanes stay NaN */
static VM_INLINE VR VSFX(vm_clamp)(VR x, REAL lo, REAL hi)
{
    return VM_MIN(VM_MAX(x, (VR){0} + lo), (VR){0} + hi);
}

static VM_INLINE VR VSFX(vm_exp)(VR x)
{
#if VM_F32
    const VR xc = VSFX(vm_clamp)(x, -104.0f, 89.0f);   /* beyond: 0 and inf, as the halves then give */
#else
    const VR xc = VSFX(vm_clamp)(x, -746.0, 710.0);
#endif
    VI n;
    const VR r = VSFX(vm_reduce)(xc, &n);
    const VR p = VSFX(vm_expm1_poly)(r) + (REAL)1;
    const VI n1 = n >> 1;
    return (p * VSFX(vm_pow2)(n1)) * VSFX(vm_pow2)(n - n1);   /* NaN: r and so p are NaN, whatever n is */
}

static VM_INLINE VR VSFX(vm_expm1)(VR x)
{
    /* 2^n·(1 + q) − 1 = s2·(s1·q + (s1 − 1/s2)) with s1 = 2^min(n, NSPLIT), s2 = 2^(n − that): s1 − 1 is exact
     * for n ≤ NSPLIT, and for larger n the −1/s2 is far below s1's last bit (then no longer needed) */
#if VM_F32
    const VR xc = VSFX(vm_clamp)(x, -18.0f, 89.0f);    /* e^−18 < 2^−25: the result is −1 from there on */
    const VIS nsplit = 24;
#else
    const VR xc = VSFX(vm_clamp)(x, -40.0, 710.0);
    const VIS nsplit = 53;
#endif
    VI n;
    const VR r = VSFX(vm_reduce)(xc, &n);
    const VR q = VSFX(vm_expm1_poly)(r);
    const VI n1 = VM_SELI(n > nsplit, (VI){0} + nsplit, n);
    const VI n2 = n - n1;
    const VR s1 = VSFX(vm_pow2)(n1), s2 = VSFX(vm_pow2)(n2), inv2 = VSFX(vm_pow2)(-n2);
    return VM_FMA(s1, q, s1 - inv2) * s2;    /* NaN: q is NaN */
}

/* expm1 on [0, 2·big] (tanh): 2^n stays far inside the range and s − 1 rounds by at most 2^−29 (float) / 2^−57
 * (double) of the result, so 2^n needs no split */
static VM_INLINE VR VSFX(vm_expm1_small)(VR xc)
{
    VI n;
    const VR r = VSFX(vm_reduce)(xc, &n);
    const VR s = VSFX(vm_pow2)(n);
    return VM_FMA(s, VSFX(vm_expm1_poly)(r), s - (REAL)1);
}

/* log(w) for w > 0 finite, as k·ln2 + log(m); other lanes are fixed up by the callers */
static VM_INLINE VR VSFX(vm_log_pos)(VR w)
{
#if VM_F32
    const REAL ln2_hi = 0x1.62e4p-1f, ln2_lo = 0x1.7f7d1cp-20f, tiny = 0x1p-126f, up = 0x1p24f;
    const VIS mbits = 0x3f3504f3;             /* √½ as float bits: mantissas below it move up an octave */
    const VIS upk = 24;
#else
    const REAL ln2_hi = 0x1.62e42fefa38p-1, ln2_lo = 0x1.ef35793c7673p-45, tiny = 0x1p-1022, up = 0x1p54;
    const VIS mbits = 0x3fe6a09e667f3bcdLL;
    const VIS upk = 54;
#endif
    const VI sub = w < tiny;                  /* subnormal: scale into the normal range first */
    const VR ws = VM_SEL(sub, w * up, w);
    const VI bits = (VI)ws - mbits;           /* exponent relative to √½ … */
    const VI k = (bits >> VM_MANT) - (sub & upk);
    const VR m = (VR)(((VI)ws) - ((bits >> VM_MANT) << VM_MANT));   /* … so m lands in [√½, √2) */
    const VR f = m - (REAL)1;                 /* exact */
    const VR s = f / (f + (REAL)2);
    const VR s2 = s * s;
#if VM_F32
    VR p = (VR){0} + (REAL)(1.0 / 11);
    p = VM_FMA(p, s2, (REAL)(1.0 / 9));
    p = VM_FMA(p, s2, (REAL)(1.0 / 7));
    p = VM_FMA(p, s2, (REAL)(1.0 / 5));
    p = VM_FMA(p, s2, (REAL)(1.0 / 3));
#else
    VR p = (VR){0} + 1.0 / 23;
    p = VM_FMA(p, s2, 1.0 / 21);
    p = VM_FMA(p, s2, 1.0 / 19);
    p = VM_FMA(p, s2, 1.0 / 17);
    p = VM_FMA(p, s2, 1.0 / 15);
    p = VM_FMA(p, s2, 1.0 / 13);
    p = VM_FMA(p, s2, 1.0 / 11);
    p = VM_FMA(p, s2, 1.0 / 9);
    p = VM_FMA(p, s2, 1.0 / 7);
    p = VM_FMA(p, s2, 1.0 / 5);
    p = VM_FMA(p, s2, 1.0 / 3);
#endif
    /* log m = 2s + 2s³·p = f − s·(f − 2s³·p)... written as f − s·f + s·(2 s²·p): f − s·f = 2s exactly
     * in real numbers (s(f + 2) = f); keeping f as the leading term saves the rounding of 2s */
    const VR two_s = s + s;
    const VR logm = VM_FMA(two_s, s2 * p, two_s);
    VR kf;
#if VM_F32
    kf = __builtin_convertvector(k, VR);
#else
    kf = __builtin_convertvector(k, VR);
#endif
    return VM_FMA(kf, ln2_hi, VM_FMA(kf, ln2_lo, logm));
}

/* special lanes of log(w): NaN below 0 (and for NaN), −inf at 0, inf at inf */
static VM_INLINE VR VSFX(vm_log_fix)(VR w, VR y)
{
    const REAL inf = (REAL)__builtin_inf();
    y = VM_SEL(w == (REAL)0, (VR){0} - inf, y);
    y = VM_SEL(w == inf, w, y);
    return VM_SEL((w < (REAL)0) | (w != w), (VR){0} + (REAL)__builtin_nan(""), y);
}

static VM_INLINE VR VSFX(vm_log)(VR x)
{
    const VI ok = (x > (REAL)0) & (x < (REAL)__builtin_inf());
    return VSFX(vm_log_fix)(x, VSFX(vm_log_pos)(VM_SEL(ok, x, (VR){0} + (REAL)1)));
}

static VM_INLINE VR VSFX(vm_log1p)(VR u)
{
    const VR w = u + (REAL)1;
    const VI ok = (w > (REAL)0) & (w < (REAL)__builtin_inf());
    const VR ws = VM_SEL(ok, w, (VR){0} + (REAL)1);
    const VR c = (u - (ws - (REAL)1)) / ws;   /* what rounding w = 1 + u lost, relative to w */
    return VSFX(vm_log_fix)(w, VSFX(vm_log_pos)(ws) + c);
}

/* log1p(u) for u ∈ [0, 1] (softplus): 1 + u = (1 + s)/(1 − s) with s = u/(2 + u) ≤ 1/3, so log1p(u) = 2·atanh(s),
 * one division and no exponent split or rounding correction; NaN propagates */
static VM_INLINE VR VSFX(vm_log1p_unit)(VR u)
{
    const VR s = u / (u + (REAL)2), s2 = s * s;
#if VM_F32
    VR p = (VR){0} + (REAL)(1.0 / 17);
    p = VM_FMA(p, s2, (REAL)(1.0 / 15));
    p = VM_FMA(p, s2, (REAL)(1.0 / 13));
    p = VM_FMA(p, s2, (REAL)(1.0 / 11));
    p = VM_FMA(p, s2, (REAL)(1.0 / 9));
    p = VM_FMA(p, s2, (REAL)(1.0 / 7));
    p = VM_FMA(p, s2, (REAL)(1.0 / 5));
    p = VM_FMA(p, s2, (REAL)(1.0 / 3));
#else
    VR p = (VR){0} + 1.0 / 37;
    for (int j = 17; j >= 1; --j)               /* 1/35 … 1/3 (unrolled: j is constant) */
        p = VM_FMA(p, s2, 1.0 / (2 * j + 1));
#endif
    const VR two_s = s + s;
    return VM_FMA(two_s, s2 * p, two_s);
}

static VM_INLINE VR VSFX(vm_tanh)(VR x)
{
#if VM_F32
    const REAL big = 10.0f;                   /* tanh rounds to 1 from 9.01 on */
#else
    const REAL big = 20.0;
#endif
    const VR ax = VSFX(vm_abs)(x);
    const VR e = VSFX(vm_expm1_small)(VM_MIN(ax, (VR){0} + big) * (REAL)2);
    const VR t = e / (e + (REAL)2);
    return (VR)((VI)t | ((VI)x & VM_SIGN));   /* odd: the sign of x (−0 stays −0, NaN stays NaN) */
}

static VM_INLINE VR VSFX(vm_sigmoid)(VR z)
{
    const VR e = VSFX(vm_exp)((VR)((VI)z | VM_SIGN));   /* e^−|z| ≤ 1: never overflows */
    return VM_SEL(z >= (REAL)0, (VR){0} + (REAL)1, e) / (e + (REAL)1);
}

static VM_INLINE VR VSFX(vm_softplus)(VR z)
{
    const VR e = VSFX(vm_exp)((VR)((VI)z | VM_SIGN));
    const VR pos = VM_SEL(z > (REAL)0, z, (VR){0});
    return pos + VSFX(vm_log1p_unit)(e);      /* e ∈ (0, 1] */
}

static VM_INLINE VR VSFX(vm_apply)(int fn, VR x)
{
    switch (fn) {
    case M_EXP: return VSFX(vm_exp)(x);
    case M_EXPM1: return VSFX(vm_expm1)(x);
    case M_LOG: return VSFX(vm_log)(x);
    case M_LOG1P: return VSFX(vm_log1p)(x);
    case M_TANH: return VSFX(vm_tanh)(x);
    case M_SIGMOID: return VSFX(vm_sigmoid)(x);
    default: return VSFX(vm_softplus)(x);
    }
}

/* Y = f(X) over n elements (Y may be X); the tail runs as one padded vector. fn is hoisted out of the loop
 * by the switch over a constant in each case. */
#define VM_LOOP(fn)                                                                         \
    do {                                                                                    \
        int64_t t = 0;                                                                      \
        for (; t + VW <= n; t += VW)                                                        \
            VSFX(vm_store)(Y + t, VSFX(vm_apply)(fn, VSFX(vm_load)(X + t)));                \
        if (t < n) {                                                                        \
            REAL buf[VW] = {0};                                                             \
            memcpy(buf, X + t, (size_t)(n - t) * sizeof(REAL));                             \
            VSFX(vm_store)(buf, VSFX(vm_apply)(fn, VSFX(vm_load)(buf)));                    \
            memcpy(Y + t, buf, (size_t)(n - t) * sizeof(REAL));                             \
        }                                                                                   \
    } while (0)

static void VSFX(vm_math)(int fn, int64_t n, const REAL *X, REAL *Y)
{
    switch (fn) {
    case M_EXP: VM_LOOP(M_EXP); break;
    case M_EXPM1: VM_LOOP(M_EXPM1); break;
    case M_LOG: VM_LOOP(M_LOG); break;
    case M_LOG1P: VM_LOOP(M_LOG1P); break;
    case M_TANH: VM_LOOP(M_TANH); break;
    case M_SIGMOID: VM_LOOP(M_SIGMOID); break;
    default: VM_LOOP(M_SOFTPLUS); break;
    }
}

/* dZ = dA ⊙ f′(A) for the activations whose derivative is not a plain product (softplus: 1 − e^−A =
 * −expm1(−A)) and the algebraic ones at the ISA's width (sigmoid: A(1 − A), tanh: 1 − A²) */
static void VSFX(vm_act_backward)(int act, int64_t n, const REAL *A, const REAL *dA, REAL *dZ)
{
    int64_t t = 0;
    for (; t + VW <= n; t += VW) {
        const VR a = VSFX(vm_load)(A + t), d = VSFX(vm_load)(dA + t);
        VR g;
        if (act == ACT_SOFTPLUS)   /* A ≥ 0: expm1 of [−18, 0] (float; −40 double) needs no split of 2^n */
            g = (VR){0} - VSFX(vm_expm1_small)(VM_MAX((VR){0} - a, (VR){0} + (VM_F32 ? (REAL)-18 : (REAL)-40)));
        else if (act == ACT_SIGMOID)
            g = a * ((REAL)1 - a);
        else
            g = (REAL)1 - a * a;
        VSFX(vm_store)(dZ + t, d * g);
    }
    for (; t < n; ++t) {
        REAL g;
        if (act == ACT_SOFTPLUS) {
            REAL buf[VW] = {0};
            buf[0] = -A[t];
            VSFX(vm_store)(buf, VSFX(vm_expm1)(VSFX(vm_load)(buf)));
            g = -buf[0];
        } else if (act == ACT_SIGMOID)
            g = A[t] * (1 - A[t]);
        else
            g = 1 - A[t] * A[t];
        dZ[t] = dA[t] * g;
    }
}

#undef VR
#undef VI
#undef VIS
#undef VM_SEL
#undef VM_SELI
#undef VM_BC
#undef VM_SIGN
#undef VM_MANT
#undef VM_BIAS
#undef VM_MAGIC
#undef VM_LOOP
/* the instance's parameters: the next instance defines its own */
#undef REAL
#undef VM_F32
#undef VW
#undef VSFX
#undef VM_FMA
#undef VM_MIN
#undef VM_MAX
