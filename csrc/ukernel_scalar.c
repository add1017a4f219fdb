/* ukernel_scalar.c — portable MR×NR micro-kernel, generic over REAL. Always built; it is the
 * reference the SIMD kernels are tested against and the path on CPUs without AVX2/FMA. */

void SFX(pynet_ukr_scalar)(int64_t k, const REAL *a, const REAL *b, REAL *c, int64_t rsc, int beta)
{
    REAL acc[PYNET_MR * NR];
    for (int i = 0; i < PYNET_MR * NR; ++i)
        acc[i] = 0;
    for (int64_t p = 0; p < k; ++p) {          /* micro-kernel loop: rank-1 update per k */
        for (int i = 0; i < PYNET_MR; ++i) {   /* rows of the tile */
            const REAL ai = a[i];
            for (int j = 0; j < NR; ++j)       /* columns of the tile */
                acc[i * NR + j] += ai * b[j];
        }
        a += PYNET_MR;
        b += NR;
    }
    for (int i = 0; i < PYNET_MR; ++i)
        for (int j = 0; j < NR; ++j)
            c[i * rsc + j] = beta ? c[i * rsc + j] + acc[i * NR + j] : acc[i * NR + j];
}
