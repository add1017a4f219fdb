/* vmath.c — vmath.h instantiated per dtype and ISA, and the run-time choice between them.
 *
 * Instances: "base" (16-byte vectors: SSE2 on x86-64, NEON on aarch64, whatever the target has
 * elsewhere — always built), and on x86 "avx2" (32 bytes, target avx2+fma) and "avx512" (64 bytes,
 * target avx512f), built with target pragmas rather than -march flags so that one binary runs on every
 * x86-64 CPU and picks the widest the CPU and OS support (cpuid and XCR0, via __builtin_cpu_supports). */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#if PYNET_X86_SIMD
#include <immintrin.h>
#endif

/* Each instance: REAL, VM_F32, VW (lanes), VSFX (name suffix) and its VM_FMA / VM_MIN / VM_MAX, then the include
 * (vmath.h undefines them all at its end). The portable instances: a·b + c in two roundings, min/max as selects
 * that keep a NaN x. */
#define REAL float
#define VM_F32 1
#define VW 4
#define VSFX(name) name##_base_f32
#define VM_FMA(a, b, c) ((a) * (b) + (c))
#define VM_MIN(x, c) VM_SEL((x) > (c), (c), (x))
#define VM_MAX(x, c) VM_SEL((x) < (c), (c), (x))
#include "vmath.h"

#define REAL double
#define VM_F32 0
#define VW 2
#define VSFX(name) name##_base_f64
#define VM_FMA(a, b, c) ((a) * (b) + (c))
#define VM_MIN(x, c) VM_SEL((x) > (c), (c), (x))
#define VM_MAX(x, c) VM_SEL((x) < (c), (c), (x))
#include "vmath.h"

#if PYNET_X86_SIMD
/* vminps/vmaxps return their second operand when either is NaN: x second keeps a NaN x */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define REAL float
#define VM_F32 1
#define VW 8
#define VSFX(name) name##_avx2_f32
#define VM_FMA(a, b, c) ((VR)_mm256_fmadd_ps((a), VM_BC(b), VM_BC(c)))
#define VM_MIN(x, c) ((VR)_mm256_min_ps((c), (x)))
#define VM_MAX(x, c) ((VR)_mm256_max_ps((c), (x)))
#include "vmath.h"

#define REAL double
#define VM_F32 0
#define VW 4
#define VSFX(name) name##_avx2_f64
#define VM_FMA(a, b, c) ((VR)_mm256_fmadd_pd((a), VM_BC(b), VM_BC(c)))
#define VM_MIN(x, c) ((VR)_mm256_min_pd((c), (x)))
#define VM_MAX(x, c) ((VR)_mm256_max_pd((c), (x)))
#include "vmath.h"
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif

#define REAL float
#define VM_F32 1
#define VW 16
#define VSFX(name) name##_avx512_f32
#define VM_FMA(a, b, c) ((VR)_mm512_fmadd_ps((a), VM_BC(b), VM_BC(c)))
#define VM_MIN(x, c) ((VR)_mm512_min_ps((c), (x)))
#define VM_MAX(x, c) ((VR)_mm512_max_ps((c), (x)))
#include "vmath.h"

#define REAL double
#define VM_F32 0
#define VW 8
#define VSFX(name) name##_avx512_f64
#define VM_FMA(a, b, c) ((VR)_mm512_fmadd_pd((a), VM_BC(b), VM_BC(c)))
#define VM_MIN(x, c) ((VR)_mm512_min_pd((c), (x)))
#define VM_MAX(x, c) ((VR)_mm512_max_pd((c), (x)))
#include "vmath.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

/* ---- which instance runs */
static int g_isa = -1;   /* -1: not yet chosen */

static int isa_supported(void)
{
#if PYNET_X86_SIMD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return PYNET_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return PYNET_ISA_AVX2;
#endif
    return PYNET_ISA_BASE;
}

int pynet_isa_supported(void)
{
    return isa_supported();
}

int pynet_get_isa(void)
{
    if (g_isa < 0) {
        /* PYNET_ISA=base|avx2|avx512 caps the choice (the Python adapter rejects one the CPU lacks);
         * PYNET_SIMD=0 means the portable code everywhere */
        const char *env = getenv("PYNET_ISA");
        int want = PYNET_ISA_AVX512;
        if (env && (!strcmp(env, "base") || !strcmp(env, "scalar")))
            want = PYNET_ISA_BASE;
        else if (env && !strcmp(env, "avx2"))
            want = PYNET_ISA_AVX2;
        const char *simd = getenv("PYNET_SIMD");
        if (simd && simd[0] == '0')
            want = PYNET_ISA_BASE;
        const int have = isa_supported();
        g_isa = want < have ? want : have;
    }
    return g_isa;
}

int pynet_set_isa(int isa)
{
    const int have = isa_supported();
    if (isa < PYNET_ISA_BASE || isa > have)
        return -1;
    g_isa = isa;
    return g_isa;
}

#define VM_DISPATCH(ret, name, sfx, params, args)                   \
    ret pynet_##name##_##sfx params                                  \
    {                                                                \
        switch (pynet_get_isa()) {                                   \
        VM_X86_CASES(ret, name, sfx, args)                           \
        default: return name##_base_##sfx args;                      \
        }                                                            \
    }
#if PYNET_X86_SIMD
#define VM_X86_CASES(ret, name, sfx, args)                           \
    case PYNET_ISA_AVX512: return name##_avx512_##sfx args;          \
    case PYNET_ISA_AVX2: return name##_avx2_##sfx args;
#else
#define VM_X86_CASES(ret, name, sfx, args)
#endif

VM_DISPATCH(void, vm_math, f32, (int fn, int64_t n, const float *X, float *Y), (fn, n, X, Y))
VM_DISPATCH(void, vm_math, f64, (int fn, int64_t n, const double *X, double *Y), (fn, n, X, Y))
VM_DISPATCH(void, vm_act_backward, f32, (int act, int64_t n, const float *A, const float *dA, float *dZ),
            (act, n, A, dA, dZ))
VM_DISPATCH(void, vm_act_backward, f64, (int act, int64_t n, const double *A, const double *dA, double *dZ),
            (act, n, A, dA, dZ))
