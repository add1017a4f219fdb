/* losses.c — losses and the fused output layer, generic over REAL. Sums accumulate in double.
 * Scaling follows the contract: ssr is a sum; mse, bce and ce are weighted means (bce and mse also
 * over the k outputs). */

/* Σ w (or n when unweighted) */
static double SFX(weight_sum)(int64_t n, const REAL *sw)
{
    if (!sw)
        return (double)n;
    double s = 0;
    for (int64_t r = 0; r < n; ++r)
        s += sw[r];
    return s;
}

double SFX(pynet_softmax_cross_entropy)(int64_t n, int64_t k, const REAL *Z, const REAL *Y, const REAL *sw, REAL *dZ)
{
    const double inv = 1.0 / SFX(weight_sum)(n, sw);
    double loss = 0;
    REAL mx[LOSS_BLOCK], sum[LOSS_BLOCK], lse[LOSS_BLOCK];
    for (int64_t r0 = 0; r0 < n; r0 += LOSS_BLOCK) {
        const int64_t rows = PYNET_MIN(LOSS_BLOCK, n - r0);
        REAL *E = dZ + r0 * k;
        SFX(shift_rows)(rows, k, Z + r0 * k, E, mx);   /* z − max, then e^(z − max) in place */
        VM_MATH(M_EXP, rows * k, E, E);
        SFX(row_sums)(rows, k, E, sum);
        VM_MATH(M_LOG, rows, sum, lse);
        for (int64_t r = 0; r < rows; ++r) {
            const REAL *z = Z + (r0 + r) * k, *y = Y + (r0 + r) * k;
            REAL *dz = E + r * k;
            const double wn = (sw ? (double)sw[r0 + r] : 1.0) * inv;
            const REAL inv_s = (REAL)1 / sum[r];
            double row = 0;
            for (int64_t j = 0; j < k; ++j) {
                row -= (double)y[j] * (double)(z[j] - mx[r] - lse[r]);   /* log p = z − max − log Σ */
                /* softmax + cross-entropy: the Jacobian collapses to P − Y */
                dz[j] = (REAL)((dz[j] * inv_s - y[j]) * wn);
            }
            loss += wn * row;
        }
    }
    return loss;
}

/* one row's BCE terms from e = e^−|z| and l = log1p(e): returns Σ_j softplus(z) − y z, writes dz = g(σ − y) */
static double SFX(bce_row)(int64_t k, const REAL *z, const REAL *y, const REAL *e, const REAL *l, REAL *dz, REAL g)
{
    double row = 0;
    for (int64_t j = 0; j < k; ++j)   /* −[y log σ + (1−y) log(1−σ)] = softplus(z) − y z, evaluated stably */
        row += (double)((z[j] > 0 ? z[j] : 0) + l[j] - y[j] * z[j]);
    for (int64_t j = 0; j < k; ++j)   /* after the sum: dz may be e */
        dz[j] = ((z[j] >= 0 ? (REAL)1 : e[j]) / ((REAL)1 + e[j]) - y[j]) * g;
    return row;
}

double SFX(pynet_sigmoid_binary_cross_entropy)(int64_t n, int64_t k, const REAL *Z, const REAL *Y, const REAL *sw,
                                               REAL *dZ)
{
    const double inv = 1.0 / SFX(weight_sum)(n, sw);
    double loss = 0;
    enum { CHUNK = LOSS_BLOCK * 16 };
    REAL lp[CHUNK];
    /* blocks of whole rows (a row longer than a block in parts): exp and log1p vectorised over each */
    const int64_t rb = PYNET_MAX(1, CHUNK / k), part = PYNET_MIN(k, CHUNK);
    for (int64_t r0 = 0; r0 < n; r0 += rb) {
        const int64_t rows = PYNET_MIN(rb, n - r0);
        for (int64_t j0 = 0; j0 < k; j0 += part) {
            const int64_t m = PYNET_MIN(part, k - j0), w = rows > 1 ? rows * k : m, at = r0 * k + j0;
            REAL *E = dZ + at;
            for (int64_t t = 0; t < w; ++t)
                E[t] = -R_FABS(Z[at + t]);
            VM_MATH(M_EXP, w, E, E);
            VM_MATH(M_LOG1P, w, E, lp);
            for (int64_t r = 0; r < rows; ++r) {
                const double wn = (sw ? (double)sw[r0 + r] : 1.0) * inv;
                const int64_t o = rows > 1 ? r * k : 0;
                loss += wn * SFX(bce_row)(m, Z + at + o, Y + at + o, E + o, lp + o, E + o, (REAL)(wn / (double)k));
            }
        }
    }
    return loss / (double)k;
}

double SFX(pynet_ssr)(int64_t n, int64_t k, const REAL *Yhat, const REAL *Y, const REAL *sw, REAL *dYhat)
{
    double loss = 0;
    for (int64_t r = 0; r < n; ++r) {
        const double w = sw ? (double)sw[r] : 1.0;
        const REAL w2 = (REAL)(2 * w);
        double row = 0;
        for (int64_t j = 0; j < k; ++j) {
            const REAL d = Yhat[r * k + j] - Y[r * k + j];
            dYhat[r * k + j] = d * w2;
            row += (double)d * d;
        }
        loss += w * row;
    }
    return loss;
}

double SFX(pynet_mse)(int64_t n, int64_t k, const REAL *Yhat, const REAL *Y, const REAL *sw, REAL *dYhat)
{
    const double inv = 1.0 / SFX(weight_sum)(n, sw);
    double loss = 0;
    for (int64_t r = 0; r < n; ++r) {
        const double wn = (sw ? (double)sw[r] : 1.0) * inv;
        const REAL g = (REAL)(2 * wn / (double)k);
        double row = 0;
        for (int64_t j = 0; j < k; ++j) {
            const REAL d = Yhat[r * k + j] - Y[r * k + j];
            dYhat[r * k + j] = d * g;
            row += (double)d * d;
        }
        loss += wn * row;
    }
    return loss / (double)k;
}

double SFX(pynet_output_loss)(int act, int loss, int64_t n, int64_t k, const REAL *Z, const REAL *Y, const REAL *sw,
                              REAL *A, REAL *dZ)
{
    if (act == ACT_SOFTMAX)
        SFX(pynet_softmax)(n, k, Z, A);
    else
        SFX(pynet_activation_forward)(act, n * k, Z, A);
    if (loss == LOSS_CE)
        return SFX(pynet_softmax_cross_entropy)(n, k, Z, Y, sw, dZ);
    if (loss == LOSS_BCE)
        return SFX(pynet_sigmoid_binary_cross_entropy)(n, k, Z, Y, sw, dZ);
    /* squared losses: dZ first holds ∂L/∂A, then goes through the output activation */
    const double value = loss == LOSS_SSR ? SFX(pynet_ssr)(n, k, A, Y, sw, dZ) : SFX(pynet_mse)(n, k, A, Y, sw, dZ);
    if (act == ACT_SOFTMAX)
        SFX(pynet_softmax_backward)(n, k, A, dZ, dZ);
    else
        SFX(pynet_activation_backward)(act, n * k, A, dZ, dZ);
    return value;
}
