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
    for (int64_t r = 0; r < n; ++r) {
        const REAL *z = Z + r * k, *y = Y + r * k;
        REAL *dz = dZ + r * k;
        const double wn = (sw ? (double)sw[r] : 1.0) * inv;
        REAL mx = z[0];
        for (int64_t j = 1; j < k; ++j)
            mx = z[j] > mx ? z[j] : mx;
        REAL s = 0;
        for (int64_t j = 0; j < k; ++j)
            s += R_EXP(z[j] - mx);
        const REAL lse = R_LOG(s);
        double row = 0;
        for (int64_t j = 0; j < k; ++j) {
            const REAL logp = z[j] - mx - lse;
            row -= (double)y[j] * logp;
            /* softmax + cross-entropy: the Jacobian collapses to P − Y */
            dz[j] = (REAL)((R_EXP(logp) - y[j]) * wn);
        }
        loss += wn * row;
    }
    return loss;
}

double SFX(pynet_sigmoid_binary_cross_entropy)(int64_t n, int64_t k, const REAL *Z, const REAL *Y, const REAL *sw,
                                               REAL *dZ)
{
    const double inv = 1.0 / SFX(weight_sum)(n, sw);
    double loss = 0;
    for (int64_t r = 0; r < n; ++r) {
        const REAL *z = Z + r * k, *y = Y + r * k;
        REAL *dz = dZ + r * k;
        const double wn = (sw ? (double)sw[r] : 1.0) * inv;
        const double g = wn / (double)k;
        double row = 0;
        for (int64_t j = 0; j < k; ++j) {
            /* −[y log σ + (1−y) log(1−σ)] = softplus(z) − y z, evaluated stably */
            const REAL e = R_EXP(-R_FABS(z[j]));
            row += (double)((z[j] > 0 ? z[j] : 0) + R_LOG1P(e) - y[j] * z[j]);
            const REAL sig = (z[j] >= 0 ? (REAL)1 : e) / ((REAL)1 + e);
            dz[j] = (REAL)((sig - y[j]) * g);
        }
        loss += wn * row;
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
