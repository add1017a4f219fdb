/* runtime.c — thread count, run-time choice of the micro-kernel, aligned allocation. Not generic. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static int g_threads = 0;      /* 0: not yet initialised (follows OMP_NUM_THREADS / the core count) */
static int g_simd = -1;        /* -1: not yet probed */

static int cpu_has_avx2_fma(void)
{
#if PYNET_X86_SIMD
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int pynet_simd_active(void)
{
    if (g_simd < 0) {
        /* PYNET_SIMD=0 forces the portable kernel (debugging, and the SIMD-vs-scalar tests) */
        const char *env = getenv("PYNET_SIMD");
        g_simd = (env && env[0] == '0') ? 0 : cpu_has_avx2_fma();
    }
    return g_simd;
}

int pynet_set_simd(int on)
{
    g_simd = on ? cpu_has_avx2_fma() : 0;
    return g_simd;
}

int pynet_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

void pynet_set_num_threads(int n)
{
    g_threads = n < 1 ? 1 : n;
}

int pynet_get_num_threads(void)
{
#ifdef _OPENMP
    if (g_threads == 0)
        g_threads = omp_get_max_threads();
    return g_threads;
#else
    return 1;
#endif
}

/* Which GEMM path runs for medium shapes: 0 automatic, 1 the panel path, 2 the packed path (also for
 * small shapes). From PYNET_GEMM_PATH at first use, or pynet_set_gemm_path (tests, benchmarks). */
static int g_path = -1;

int pynet_gemm_path(void)
{
    if (g_path < 0) {
        const char *env = getenv("PYNET_GEMM_PATH");
        g_path = env && (env[0] == '1' || env[0] == '2') ? env[0] - '0' : 0;
    }
    return g_path;
}

int pynet_set_gemm_path(int path)
{
    g_path = path == 1 || path == 2 ? path : 0;
    return g_path;
}

/* Whether train_gd and train_epoch may run large batches of narrow networks by row tiles (train.c): 1 by default; 0 from
 * PYNET_TILES=0 or pynet_set_tiles(0) (tests compare the two, benchmarks time them). */
static int g_tiles = -1;

int pynet_tiles(void)
{
    if (g_tiles < 0) {
        const char *env = getenv("PYNET_TILES");
        g_tiles = !(env && env[0] == '0');
    }
    return g_tiles;
}

int pynet_set_tiles(int on)
{
    g_tiles = on ? 1 : 0;
    return g_tiles;
}

int pynet_threads_for(double macs)
{
    int nt = pynet_get_num_threads();
    return macs < PYNET_PAR_MIN_MACS ? 1 : nt;
}

const char *pynet_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown C compiler";
#endif
}

int pynet_block_sizes(int dbl, int64_t *out5)
{
    out5[0] = PYNET_MR;
    out5[1] = dbl ? PYNET_NR_F64 : PYNET_NR_F32;
    out5[2] = dbl ? PYNET_MC_F64 : PYNET_MC_F32;
    out5[3] = dbl ? PYNET_KC_F64 : PYNET_KC_F32;
    out5[4] = dbl ? PYNET_NC_F64 : PYNET_NC_F32;
    return 5;
}

void *pynet_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    /* round up: aligned_alloc wants a multiple of the alignment */
    bytes = (bytes + PYNET_ALIGN - 1) / PYNET_ALIGN * PYNET_ALIGN;
    if (bytes == 0)
        bytes = PYNET_ALIGN;
    p = aligned_alloc(PYNET_ALIGN, bytes);
    return p;
}

void pynet_aligned_free(void *p)
{
    free(p);
}

int pynet_ukernel_f32(int simd, int64_t k, const float *a, const float *b, float *c, int64_t rsc, int beta)
{
#if PYNET_X86_SIMD
    if (simd && cpu_has_avx2_fma()) {
        pynet_ukr_avx2_f32(k, a, b, c, rsc, beta);
        return 1;
    }
#endif
    (void)simd;
    pynet_ukr_scalar_f32(k, a, b, c, rsc, beta);
    return 0;
}

int pynet_ukernel_f64(int simd, int64_t k, const double *a, const double *b, double *c, int64_t rsc, int beta)
{
#if PYNET_X86_SIMD
    if (simd && cpu_has_avx2_fma()) {
        pynet_ukr_avx2_f64(k, a, b, c, rsc, beta);
        return 1;
    }
#endif
    (void)simd;
    pynet_ukr_scalar_f64(k, a, b, c, rsc, beta);
    return 0;
}
