/* activations.c — elementwise activations and softmax, generic over REAL. Derivatives use the
 * activation's output A, so the forward pass keeps only A. */

void SFX(pynet_math_function)(int fn, int64_t n, const REAL *X, REAL *Y)
{
    VM_MATH(fn, n, X, Y);
}

void SFX(pynet_activation_forward)(int act, int64_t size, const REAL *Z, REAL *A)
{
    switch (act) {
    case ACT_IDENTITY:
        if (A != Z)
            for (int64_t t = 0; t < size; ++t)
                A[t] = Z[t];
        break;
    case ACT_RELU:
#ifdef VEC_RELU_FORWARD
        if (pynet_simd_active()) {
            VEC_RELU_FORWARD(size, Z, A);
            break;
        }
#endif
        for (int64_t t = 0; t < size; ++t)
            A[t] = Z[t] < 0 ? 0 : Z[t];   /* NaN passes through, as np.maximum does */
        break;
    case ACT_SOFTPLUS: /* max(z, 0) + log1p(e^−|z|): finite for every z (vmath.h) */
        VM_MATH(M_SOFTPLUS, size, Z, A);
        break;
    case ACT_SIGMOID:
        VM_MATH(M_SIGMOID, size, Z, A);
        break;
    case ACT_TANH:
        VM_MATH(M_TANH, size, Z, A);
        break;
    default:
        break;
    }
}

void SFX(pynet_activation_backward)(int act, int64_t size, const REAL *A, const REAL *dA, REAL *dZ)
{
    switch (act) {
    case ACT_IDENTITY:
        if (dZ != dA)
            for (int64_t t = 0; t < size; ++t)
                dZ[t] = dA[t];
        break;
    case ACT_RELU:
#ifdef VEC_RELU_BACKWARD
        if (pynet_simd_active()) {
            VEC_RELU_BACKWARD(size, A, dA, dZ);
            break;
        }
#endif
        for (int64_t t = 0; t < size; ++t)
            dZ[t] = dA[t] * (A[t] > 0 ? (REAL)1 : (REAL)0);   /* a product, as the reference: NaN/inf in dA propagate */
        break;
    case ACT_SOFTPLUS: /* softplus'(z) = σ(z) = 1 − e^(−A); sigmoid' = A(1 − A); tanh' = 1 − A² */
    case ACT_SIGMOID:
    case ACT_TANH:
        VM_ACT_BACKWARD(act, size, A, dA, dZ);
        break;
    default:
        break;
    }
}

/* Rows per block of softmax and the cross-entropy (losses.c): exp and log run over a block at once (vmath.h),
 * the short per-row passes (max, sums) around them. */
#define LOSS_BLOCK 64

/* D = Z − rowmax over rows rows (the stable shift), the maxima in mx */
static void SFX(shift_rows)(int64_t rows, int64_t k, const REAL *Z, REAL *D, REAL *mx)
{
    for (int64_t r = 0; r < rows; ++r) {
        const REAL *z = Z + r * k;
        REAL *d = D + r * k;
        REAL m = z[0];
        for (int64_t j = 1; j < k; ++j)
            m = z[j] > m ? z[j] : m;
        for (int64_t j = 0; j < k; ++j)
            d[j] = z[j] - m;
        mx[r] = m;
    }
}

/* s[r] = Σ_j E[r, j] in j order */
static void SFX(row_sums)(int64_t rows, int64_t k, const REAL *E, REAL *s)
{
    for (int64_t r = 0; r < rows; ++r) {
        REAL acc = 0;
        for (int64_t j = 0; j < k; ++j)
            acc += E[r * k + j];
        s[r] = acc;
    }
}

void SFX(pynet_softmax)(int64_t n, int64_t k, const REAL *Z, REAL *P)
{
    REAL mx[LOSS_BLOCK], sum[LOSS_BLOCK];
    for (int64_t r0 = 0; r0 < n; r0 += LOSS_BLOCK) {   /* blocks of rows: one vector exp over each */
        const int64_t rows = PYNET_MIN(LOSS_BLOCK, n - r0);
        REAL *E = P + r0 * k;
        SFX(shift_rows)(rows, k, Z + r0 * k, E, mx);   /* max-shift: the largest term is exp(0) = 1 */
        VM_MATH(M_EXP, rows * k, E, E);
        SFX(row_sums)(rows, k, E, sum);
        for (int64_t r = 0; r < rows; ++r) {
            const REAL inv = 1 / sum[r];
            for (int64_t j = 0; j < k; ++j)
                E[r * k + j] *= inv;
        }
    }
}

void SFX(pynet_softmax_backward)(int64_t n, int64_t k, const REAL *P, const REAL *dP, REAL *dZ)
{
    for (int64_t r = 0; r < n; ++r) {
        const REAL *p = P + r * k, *dp = dP + r * k;
        REAL *dz = dZ + r * k;
        REAL s = 0;
        for (int64_t j = 0; j < k; ++j)
            s += dp[j] * p[j];
        for (int64_t j = 0; j < k; ++j)   /* after the row sum, so dZ may alias dP */
            dz[j] = p[j] * (dp[j] - s);
    }
}
