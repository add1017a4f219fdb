/* optimizers.c — SGD (momentum, Nesterov) and Adam over the flat buffer, generic over REAL.
 * The step is formed in double, as the reference does with its float64 hyper-parameters, and
 * rounded once into the parameter. Both return max|Δ| for the GD stopping rule. */

double SFX(pynet_sgd_update)(int64_t p, REAL *params, const REAL *grads, REAL *velocity, double lr, double momentum,
                             int nesterov, double weight_decay)
{
#ifdef VEC_SGD
    if (p >= 8 && pynet_simd_active())   /* the same operations, four lanes at a time (vec_avx2.c) */
        return VEC_SGD(p, params, grads, velocity, lr, momentum, nesterov, weight_decay);
#endif
    double moved = 0;
    for (int64_t t = 0; t < p; ++t) {
        const double g = weight_decay != 0 ? (double)grads[t] + weight_decay * (double)params[t] : (double)grads[t];
        double step;
        if (momentum != 0) {
            const REAL v = (REAL)((double)(REAL)(momentum * (double)velocity[t]) + g);   /* v = μv + g */
            velocity[t] = v;
            step = nesterov ? -lr * (g + momentum * (double)v) : -lr * (double)v;
        } else {
            step = -lr * g;
        }
        params[t] = (REAL)((double)params[t] + step);
        const double a = step < 0 ? -step : step;
        if (a > moved || a != a)   /* NaN propagates, as np.max does */
            moved = a;
    }
    return moved;
}

double SFX(pynet_adam_update)(int64_t p, REAL *params, const REAL *grads, REAL *m, REAL *v, int64_t t, double lr,
                              double beta1, double beta2, double eps, double weight_decay)
{
    const double c1 = 1 - pow(beta1, (double)t), c2 = 1 - pow(beta2, (double)t);   /* bias corrections */
    double moved = 0;
    for (int64_t q = 0; q < p; ++q) {
        const double g = weight_decay != 0 ? (double)grads[q] + weight_decay * (double)params[q] : (double)grads[q];
        const REAL mq = (REAL)((double)(REAL)(beta1 * (double)m[q]) + (1 - beta1) * g);
        const REAL vq = (REAL)((double)(REAL)(beta2 * (double)v[q]) + (1 - beta2) * g * g);
        m[q] = mq;
        v[q] = vq;
        const double step = -lr * ((double)mq / c1) / (sqrt((double)vq / c2) + eps);
        params[q] = (REAL)((double)params[q] + step);
        const double a = step < 0 ? -step : step;
        if (a > moved || a != a)   /* NaN propagates, as np.max does */
            moved = a;
    }
    return moved;
}
