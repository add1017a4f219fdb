/* dense.c — the dense layer, generic over REAL. All three products go through one strided GEMM. */

void SFX(pynet_dense_forward_ws)(int64_t n, int64_t i, int64_t o, const REAL *X, const REAL *W, const REAL *b,
                                 REAL *Z, const SFX(pynet_pack) *pk, int relu)
{
    /* Z = b + X·W with the bias (and the hidden layer's ReLU) in the GEMM's tile stores: no passes over Z */
    SFX(gemm_core)(n, o, i, X, i, 1, W, o, 1, Z, o, 0, b, relu, NULL, pk, NULL, NULL);
}

/* db[0..16) = column sums of 16 columns of dZ (row stride o), in row order, held in registers across the rows
 * (a load/add/store of db per row was store-forwarding-bound) */
static void SFX(colsum16)(int64_t n, int64_t o, const REAL *dZ, REAL *db)
{
    REAL acc[16] = {0};
    for (int64_t r = 0; r < n; ++r)
        for (int j = 0; j < 16; ++j)
            acc[j] += dZ[r * o + j];
    for (int j = 0; j < 16; ++j)
        db[j] = acc[j];
}

void SFX(pynet_dense_backward_ws)(int64_t n, int64_t i, int64_t o, const REAL *X, const REAL *W, const REAL *dZ,
                                  REAL *dW, REAL *db, REAL *dX, const SFX(pynet_pack) *pk, const REAL *mask, int *bad)
{
    /* dW = Xᵀ·dZ: A(r, p) = X[p*i + r], i.e. row stride 1, column stride i */
    if (bad)
        *bad = -1;
    /* db: column sums of dZ, row by row in a fixed order — by the GEMM while it packs dZ (the packed path), else
     * here, 16 columns at a time (a pass over dZ of ~0.2 ms per wide layer the packed path saves) */
    const int summed = SFX(gemm_core)(i, o, n, X, 1, i, dZ, o, 1, dW, o, 0, NULL, 0, NULL, pk, bad, db);
    const int64_t nb16 = summed ? 0 : o / 16, j0 = summed ? o : nb16 * 16;
#ifdef _OPENMP
    /* column blocks are independent (each sums its own columns in row order): large ones split over threads */
    if (n * o >= (1 << 16) && nb16 >= 2 && pynet_get_num_threads() > 1) {
#pragma omp parallel for num_threads(pynet_get_num_threads()) schedule(static)
        for (int64_t jb = 0; jb < nb16; ++jb)
            SFX(colsum16)(n, o, dZ + jb * 16, db + jb * 16);
    } else
#endif
    {
        for (int64_t jb = 0; jb < nb16; ++jb)
            SFX(colsum16)(n, o, dZ + jb * 16, db + jb * 16);
    }
    for (int64_t j = j0; j < o; ++j) {   /* the last o mod 16 columns (the 64→1 layer's one), summed in a register */
        REAL s = 0;
        for (int64_t r = 0; r < n; ++r)
            s += dZ[r * o + j];
        db[j] = s;
    }
    if (bad && *bad == 0)   /* dW checked in its GEMM: db too, so the caller need not pass over either */
        *bad = SFX(any_nonfinite)(o, db);
    /* dX = dZ·Wᵀ: B(p, j) = W[j*o + p], i.e. row stride 1, column stride o */
    if (dX)   /* mask (X itself, a ReLU output): dX · [X > 0], the previous layer's ReLU backward, in the stores */
        SFX(gemm_core)(n, i, o, dZ, o, 1, W, 1, o, dX, i, 0, NULL, 0, mask, pk, NULL, NULL);
}

void SFX(pynet_dense_forward)(int64_t n, int64_t i, int64_t o, const REAL *X, const REAL *W, const REAL *b, REAL *Z)
{
    SFX(pynet_dense_forward_ws)(n, i, o, X, W, b, Z, NULL, 0);
}

void SFX(pynet_dense_backward)(int64_t n, int64_t i, int64_t o, const REAL *X, const REAL *W, const REAL *dZ,
                               REAL *dW, REAL *db, REAL *dX)
{
    SFX(pynet_dense_backward_ws)(n, i, o, X, W, dZ, dW, db, dX, NULL, NULL, NULL);
}
