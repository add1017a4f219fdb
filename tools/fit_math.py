"""Fits the polynomials of the Numba backend's elementwise math (kernels/numba_backend.py, _math_constants).

Needs mpmath (not a pynet dependency): ``python tools/fit_math.py``. Prints each polynomial's
coefficients, highest degree first (the order _poly takes), and its weighted minimax error.

* exp / expm1: e^r = 1 + r + r²·P(r) on |r| ≤ ln2/2, the error weighted by r²/|e^r − 1|, i.e. the
  relative error of e^r − 1 (what expm1 and tanh need near 0; exp's relative error is smaller still).
* log / log1p: log(1 + f) = 2·atanh(s) = 2s + s·z·Q(z), s = f/(2 + f), z = s² ≤ ((√2 − 1)/(√2 + 1))²,
  weighted by z/2, the relative error of log(1 + f) ≈ 2s.

Method: a Remez exchange (discrete, on a 4000-point grid) in 50-digit arithmetic, started from the
Chebyshev extrema. The degrees are the smallest whose error is below a quarter ulp of the dtype.
"""
import mpmath as mp

mp.mp.dps = 50


def remez(f, w, a, b, deg, iters=12, grid_n=4000):
    """Coefficients (lowest degree first) and error of the p minimising max |w(x)·(p(x) − f(x))| on [a, b]."""
    n = deg + 2
    xs = [(a + b) / 2 - (b - a) / 2 * mp.cos(mp.pi * k / (n - 1)) for k in range(n)]
    grid = [a + (b - a) * k / grid_n for k in range(grid_n + 1)]
    for _ in range(iters):
        # p(x_i) + (−1)^i E / w(x_i) = f(x_i): the error equioscillates on the reference points
        A = mp.matrix([[x ** j for j in range(deg + 1)] + [(-1) ** i / w(x)] for i, x in enumerate(xs)])
        sol = mp.lu_solve(A, mp.matrix([f(x) for x in xs]))
        c = [sol[j] for j in range(deg + 1)]
        ev = [w(x) * (mp.polyval(c[::-1], x) - f(x)) for x in grid]
        # the largest |error| in each run of one sign becomes the new reference
        runs, cur = [], [0]
        for k in range(1, len(grid)):
            if (ev[k] >= 0) == (ev[cur[0]] >= 0):
                cur.append(k)
            else:
                runs.append(cur)
                cur = [k]
        runs.append(cur)
        ext = [max(r, key=lambda k: abs(ev[k])) for r in runs]
        if len(ext) < n:
            break
        while len(ext) > n:   # drop the smaller end until n alternating points remain
            ext.pop(0 if abs(ev[ext[0]]) < abs(ev[ext[-1]]) else -1)
        xs = [grid[k] for k in ext]
    return c, max(abs(e) for e in ev)


def p_exp(r):
    """(e^r − 1 − r)/r²."""
    if abs(r) < mp.mpf("1e-20"):
        return mp.mpf(1) / 2 + r / 6
    return (mp.exp(r) - 1 - r) / r ** 2


def q_log(z):
    """(2·atanh(s)/s − 2)/z, z = s²."""
    if z < mp.mpf("1e-30"):
        return mp.mpf(2) / 3 + 2 * z / 5
    s = mp.sqrt(z)
    return (2 * mp.atanh(s) / s - 2) / z


def main():
    eps = mp.mpf("1e-14")   # keeps the weights off 0, where they vanish
    r_max = mp.log(2) / 2 * (1 + mp.mpf("1e-6"))
    z_max = ((mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)) ** 2 * (1 + mp.mpf("1e-6"))
    z_unit = mp.mpf(1) / 9 * (1 + mp.mpf("1e-6"))   # s = e/(2 + e) ≤ 1/3 for e in [0, 1]
    fits = [
        ("P (exp, float32)", p_exp, lambda r: (r * r + eps) / (abs(mp.expm1(r)) + eps), -r_max, r_max, 4),
        ("P (exp, float64)", p_exp, lambda r: (r * r + eps) / (abs(mp.expm1(r)) + eps), -r_max, r_max, 9),
        ("Q (log, float32)", q_log, lambda z: (z + mp.mpf("1e-12")) / 2, mp.mpf(0), z_max, 2),
        ("Q (log, float64)", q_log, lambda z: (z + mp.mpf("1e-12")) / 2, mp.mpf(0), z_max, 6),
        ("Q1 (log1p on [0, 1], float32)", q_log, lambda z: (z + mp.mpf("1e-12")) / 2, mp.mpf(0), z_unit, 3),
        ("Q1 (log1p on [0, 1], float64)", q_log, lambda z: (z + mp.mpf("1e-12")) / 2, mp.mpf(0), z_unit, 9),
    ]
    for name, f, w, a, b, deg in fits:
        c, err = remez(f, w, a, b, deg)
        print(f"{name}: degree {deg}, weighted error {mp.nstr(err, 3)}")
        print("    " + ", ".join(mp.nstr(x, 22) for x in reversed(c)))


if __name__ == "__main__":
    main()
