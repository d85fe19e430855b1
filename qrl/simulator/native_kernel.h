/* qrl's native batched statevector kernel (included twice by native.c: REAL float and double).
 *
 * A batch of B states in structure-of-arrays layout, the batch innermost: amplitude j of sample b is
 * re[j * B + b] + i im[j * B + b], so every gate is a loop over contiguous samples (SIMD) and the whole
 * batch of a small circuit stays in the L1/L2 cache. Gates come as 8 int32 each (native.py: NativeProgram):
 *   kind (0-2: RX, RY, RZ; 3: dense constant, 4: monomial constant), k (wires), w0, w1, w2,
 *   src (0: per-sample column, 1: shared), idx, moff.
 * Rotations take cos and sin of half their angle: per-sample (columns of B) or shared (one number each).
 * Constant gates: dense (d x d matrices at moff, the inverse at moff + d * d) or monomial (out[perm[c]] =
 * phase[c] * in[c]; the inverse at moff + d).
 */

static void FN(load_shared)(int B, REAL c, REAL s, REAL *cb, REAL *sb) {
    for (int b = 0; b < B; b++) { cb[b] = c; sb[b] = s; }
}

/* cos/sin of gate g's half angle for every sample: pointers into the per-sample columns, or cb/sb filled */
static void FN(angle)(int B, const int32_t *op, const REAL *cps, const REAL *sps, const REAL *csh,
                      const REAL *ssh, REAL *cb, REAL *sb, const REAL **c, const REAL **s) {
    if (op[5] == 0) {
        *c = cps + (size_t)op[6] * B;
        *s = sps + (size_t)op[6] * B;
    } else {
        FN(load_shared)(B, csh[op[6]], ssh[op[6]], cb, sb);
        *c = cb;
        *s = sb;
    }
}

/* a rotation on one pair of amplitude rows (restrict: the rows never overlap, so the loops vectorize) */
static inline void FN(rotate_rows)(int B, int kind, const REAL *restrict c, const REAL *restrict sn, REAL sign,
                                   REAL *restrict ar, REAL *restrict ai, REAL *restrict br, REAL *restrict bi) {
    if (kind == 0) {          /* RX: [[c, -is], [-is, c]] */
        for (int b = 0; b < B; b++) {
            REAL cc = c[b], s = sign * sn[b], xr = ar[b], xi = ai[b], yr = br[b], yi = bi[b];
            ar[b] = cc * xr + s * yi; ai[b] = cc * xi - s * yr;
            br[b] = cc * yr + s * xi; bi[b] = cc * yi - s * xr;
        }
    } else if (kind == 1) {   /* RY: [[c, -s], [s, c]] */
        for (int b = 0; b < B; b++) {
            REAL cc = c[b], s = sign * sn[b], xr = ar[b], xi = ai[b], yr = br[b], yi = bi[b];
            ar[b] = cc * xr - s * yr; ai[b] = cc * xi - s * yi;
            br[b] = s * xr + cc * yr; bi[b] = s * xi + cc * yi;
        }
    } else {                  /* RZ: diag(c - is, c + is) */
        for (int b = 0; b < B; b++) {
            REAL cc = c[b], s = sign * sn[b], xr = ar[b], xi = ai[b], yr = br[b], yi = bi[b];
            ar[b] = cc * xr + s * xi; ai[b] = cc * xi - s * xr;
            br[b] = cc * yr - s * yi; bi[b] = cc * yi + s * yr;
        }
    }
}

/* a rotation (kind 0-2: X, Y, Z) with cos/sin c, s of the half angle; sign -1 applies its inverse */
static void FN(rotate)(int n, int B, int kind, int wire, const REAL *c, const REAL *sn, REAL sign,
                       REAL *re, REAL *im) {
    size_t dim = (size_t)1 << n, mask = (size_t)1 << (n - 1 - wire);
    for (size_t j0 = 0; j0 < dim; j0++) {
        if (j0 & mask) continue;
        FN(rotate_rows)(B, kind, c, sn, sign, re + j0 * B, im + j0 * B, re + (j0 | mask) * B, im + (j0 | mask) * B);
    }
}

/* offsets of the 2**k basis states of a gate's wires (first wire most significant), and their mask */
static size_t FN(offsets)(int n, int k, const int32_t *op, size_t *off) {
    size_t wmask = 0;
    for (int t = 0; t < (1 << k); t++) {
        size_t o = 0;
        for (int q = 0; q < k; q++)
            if (t & (1 << (k - 1 - q))) o |= (size_t)1 << (n - 1 - op[2 + q]);
        off[t] = o;
    }
    for (int q = 0; q < k; q++) wmask |= (size_t)1 << (n - 1 - op[2 + q]);
    return wmask;
}

/* a constant gate (kind 3 dense, 4 monomial); inverse != 0 applies its inverse */
static void FN(constant)(int n, int B, const int32_t *op, const double *mre, const double *mim,
                         const int32_t *perm, int inverse, REAL *re, REAL *im, REAL *tr, REAL *ti) {
    int k = op[1], d = 1 << k;
    size_t dim = (size_t)1 << n, off[8];
    size_t wmask = FN(offsets)(n, k, op, off);
    size_t m0 = (size_t)op[7] + (size_t)inverse * (op[0] == 3 ? (size_t)d * d : (size_t)d);
    int diagonal = op[0] == 4;
    for (int c = 0; c < d && diagonal; c++) diagonal = perm[m0 + c] == c;
    for (size_t base = 0; base < dim; base++) {
        if (base & wmask) continue;
        if (op[0] == 4 && diagonal) {  /* in place: rows with phase 1 untouched, -1 negated */
            for (int c = 0; c < d; c++) {
                REAL qr = (REAL)mre[m0 + c], qi = (REAL)mim[m0 + c];
                REAL *xr = re + (base | off[c]) * B, *xi = im + (base | off[c]) * B;
                if (qi == 0 && qr == 1) continue;
                if (qi == 0 && qr == -1) {
                    for (int b = 0; b < B; b++) { xr[b] = -xr[b]; xi[b] = -xi[b]; }
                    continue;
                }
                for (int b = 0; b < B; b++) {
                    REAL yr = qr * xr[b] - qi * xi[b];
                    xi[b] = qr * xi[b] + qi * xr[b];
                    xr[b] = yr;
                }
            }
            continue;
        }
        if (op[0] == 4) {
            for (int c = 0; c < d; c++) {
                REAL qr = (REAL)mre[m0 + c], qi = (REAL)mim[m0 + c];
                const REAL *xr = re + (base | off[c]) * B, *xi = im + (base | off[c]) * B;
                REAL *yr = tr + (size_t)perm[m0 + c] * B, *yi = ti + (size_t)perm[m0 + c] * B;
                for (int b = 0; b < B; b++) {
                    yr[b] = qr * xr[b] - qi * xi[b];
                    yi[b] = qr * xi[b] + qi * xr[b];
                }
            }
        } else {
            for (int r = 0; r < d; r++) {
                REAL *yr = tr + (size_t)r * B, *yi = ti + (size_t)r * B;
                for (int b = 0; b < B; b++) { yr[b] = 0; yi[b] = 0; }
                for (int c = 0; c < d; c++) {
                    REAL qr = (REAL)mre[m0 + (size_t)r * d + c], qi = (REAL)mim[m0 + (size_t)r * d + c];
                    if (qr == 0 && qi == 0) continue;
                    const REAL *xr = re + (base | off[c]) * B, *xi = im + (base | off[c]) * B;
                    for (int b = 0; b < B; b++) {
                        yr[b] += qr * xr[b] - qi * xi[b];
                        yi[b] += qr * xi[b] + qi * xr[b];
                    }
                }
            }
        }
        for (int r = 0; r < d; r++)
            for (int b = 0; b < B; b++) {
                re[(base | off[r]) * B + b] = tr[(size_t)r * B + b];
                im[(base | off[r]) * B + b] = ti[(size_t)r * B + b];
            }
    }
}

/* interleaved (B, 2**n) complex <-> the kernel's layout */
static void FN(unpack)(int n, int B, const REAL *z, REAL *re, REAL *im) {
    size_t dim = (size_t)1 << n;
    for (int b = 0; b < B; b++)
        for (size_t j = 0; j < dim; j++) {
            re[j * B + b] = z[2 * (b * dim + j)];
            im[j * B + b] = z[2 * (b * dim + j) + 1];
        }
}

static void FN(pack)(int n, int B, const REAL *re, const REAL *im, REAL *z) {
    size_t dim = (size_t)1 << n;
    for (int b = 0; b < B; b++)
        for (size_t j = 0; j < dim; j++) {
            z[2 * (b * dim + j)] = re[j * B + b];
            z[2 * (b * dim + j) + 1] = im[j * B + b];
        }
}

/* cos and sin of half of every angle: per-sample (P rows of B), then shared and constants (S) */
static void FN(trig)(int B, int P, int S, int Q, const REAL *angles, const REAL *shared, const double *consts,
                     REAL *trig) {
    REAL *cps = trig, *sps = cps + (size_t)P * B, *csh = sps + (size_t)P * B, *ssh = csh + S;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) {
            REAL h = angles[(size_t)b * P + p] * (REAL)0.5;
            cps[(size_t)p * B + b] = COS(h);
            sps[(size_t)p * B + b] = SIN(h);
        }
    for (int q = 0; q < S; q++) {
        REAL h = (q < Q ? shared[q] : (REAL)consts[q - Q]) * (REAL)0.5;
        csh[q] = COS(h);
        ssh[q] = SIN(h);
    }
}

/* values (B, K) = |psi|^2 @ diag (diag: 2**n x K, row-major) from the kernel's layout */
static void FN(readout)(int n, int B, int K, const double *diag, const REAL *re, const REAL *im, REAL *vals,
                        REAL *acc) {
    size_t dim = (size_t)1 << n;
    memset(acc, 0, (size_t)K * B * sizeof(REAL));
    for (size_t j = 0; j < dim; j++) {
        const REAL *restrict xr = re + j * B, *restrict xi = im + j * B;
        for (int k = 0; k < K; k++) {
            REAL d = (REAL)diag[j * K + k];
            REAL *restrict a = acc + (size_t)k * B;
            if (d == 0) continue;
            for (int b = 0; b < B; b++) a[b] += d * (xr[b] * xr[b] + xi[b] * xi[b]);
        }
    }
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) vals[(size_t)b * K + k] = acc[(size_t)k * B + b];
}

/* Runs the gates on |0>: the final states go to state (the kernel's layout, 2 * 2**n * B, for the backward)
 * and, where out is not NULL, to out (B, 2**n, interleaved complex); with K > 0, |psi|^2 @ diag to vals (B, K).
 * trig (2 * (P * B + S)) is filled for the backward. Returns 0, or -1 (no scratch memory). */
int FN(forward)(int n, int B, int P, int S, int Q, int nops, int K, const int32_t *ops, const double *mre,
                const double *mim, const int32_t *perm, const double *consts, const double *diag,
                const REAL *angles, const REAL *shared, REAL *trig, REAL *state, REAL *out, REAL *vals) {
    size_t dim = (size_t)1 << n;
    REAL *work = malloc(sizeof(REAL) * (18 + (size_t)K) * (size_t)B);
    if (!work) return -1;
    REAL *re = state, *im = re + dim * B, *tr = work, *ti = tr + 8 * (size_t)B;
    REAL *cb = ti + 8 * (size_t)B, *sb = cb + B;
    const REAL *cps = trig, *sps = cps + (size_t)P * B, *csh = sps + (size_t)P * B, *ssh = csh + S;
    FN(trig)(B, P, S, Q, angles, shared, consts, trig);
    memset(re, 0, 2 * dim * B * sizeof(REAL));
    for (int b = 0; b < B; b++) re[b] = 1;
    for (int g = 0; g < nops; g++) {
        const int32_t *op = ops + 8 * g;
        if (op[0] >= 3) {
            FN(constant)(n, B, op, mre, mim, perm, 0, re, im, tr, ti);
            continue;
        }
        const REAL *c, *s;
        FN(angle)(B, op, cps, sps, csh, ssh, cb, sb, &c, &s);
        FN(rotate)(n, B, op[0], op[2], c, s, 1, re, im);
    }
    if (out) FN(pack)(n, B, re, im, out);
    if (K > 0) FN(readout)(n, B, K, diag, re, im, vals, sb + B);
    free(work);
    return 0;
}

/* one parametric gate of the adjoint walk, one pass over each pair of rows: the gradient per sample,
 * 0.5 Im <lam| P phi> (phi the state after the gate, lam the adjoint state there), into g; then phi and lam
 * taken back through the gate (its inverse: s -> -s, the formulas of rotate_rows) */
static inline void FN(adjoint_rows)(int B, int kind, const REAL *restrict c, const REAL *restrict sn,
                                    REAL *restrict p0r, REAL *restrict p0i, REAL *restrict p1r, REAL *restrict p1i,
                                    REAL *restrict l0r, REAL *restrict l0i, REAL *restrict l1r, REAL *restrict l1i,
                                    REAL *restrict g) {
    if (kind == 0) {
        for (int b = 0; b < B; b++) {
            REAL cc = c[b], s = -sn[b], ar = p0r[b], ai = p0i[b], br = p1r[b], bi = p1i[b];
            REAL xr = l0r[b], xi = l0i[b], yr = l1r[b], yi = l1i[b];
            g[b] += (REAL)0.5 * (xr * bi - xi * br + yr * ai - yi * ar);
            p0r[b] = cc * ar + s * bi; p0i[b] = cc * ai - s * br; p1r[b] = cc * br + s * ai; p1i[b] = cc * bi - s * ar;
            l0r[b] = cc * xr + s * yi; l0i[b] = cc * xi - s * yr; l1r[b] = cc * yr + s * xi; l1i[b] = cc * yi - s * xr;
        }
    } else if (kind == 1) {
        for (int b = 0; b < B; b++) {
            REAL cc = c[b], s = -sn[b], ar = p0r[b], ai = p0i[b], br = p1r[b], bi = p1i[b];
            REAL xr = l0r[b], xi = l0i[b], yr = l1r[b], yi = l1i[b];
            g[b] += (REAL)0.5 * (yr * ar + yi * ai - xr * br - xi * bi);
            p0r[b] = cc * ar - s * br; p0i[b] = cc * ai - s * bi; p1r[b] = s * ar + cc * br; p1i[b] = s * ai + cc * bi;
            l0r[b] = cc * xr - s * yr; l0i[b] = cc * xi - s * yi; l1r[b] = s * xr + cc * yr; l1i[b] = s * xi + cc * yi;
        }
    } else {
        for (int b = 0; b < B; b++) {
            REAL cc = c[b], s = -sn[b], ar = p0r[b], ai = p0i[b], br = p1r[b], bi = p1i[b];
            REAL xr = l0r[b], xi = l0i[b], yr = l1r[b], yi = l1i[b];
            g[b] += (REAL)0.5 * (xr * ai - xi * ar - yr * bi + yi * br);
            p0r[b] = cc * ar + s * ai; p0i[b] = cc * ai - s * ar; p1r[b] = cc * br - s * bi; p1i[b] = cc * bi + s * br;
            l0r[b] = cc * xr + s * xi; l0i[b] = cc * xi - s * xr; l1r[b] = cc * yr - s * yi; l1i[b] = cc * yi + s * yr;
        }
    }
}

static void FN(adjoint_gate)(int n, int B, const int32_t *op, const REAL *c, const REAL *s, REAL *pr, REAL *pim,
                             REAL *lr, REAL *li, REAL *g) {
    size_t dim = (size_t)1 << n, mask = (size_t)1 << (n - 1 - op[2]);
    for (int b = 0; b < B; b++) g[b] = 0;
    for (size_t j0 = 0; j0 < dim; j0++) {
        if (j0 & mask) continue;
        size_t o0 = j0 * B, o1 = (j0 | mask) * B;
        FN(adjoint_rows)(B, op[0], c, s, pr + o0, pim + o0, pr + o1, pim + o1, lr + o0, li + o0, lr + o1, li + o1, g);
    }
}

/* the adjoint method from the forward's state: its cotangent is grad (B, 2**n, interleaved complex) or, with
 * K > 0, made from gvals (B, K), the cotangent of the values: lam = 2 (gvals @ diag^T) psi. d(loss)/d(angle)
 * into gangles (B, P) and, summed over the batch, gshared (Q). Returns 0, or -1 (no scratch memory). */
int FN(backward)(int n, int B, int P, int S, int Q, int nops, int K, const int32_t *ops, const double *mre,
                 const double *mim, const int32_t *perm, const double *diag, const REAL *trig, const REAL *state,
                 const REAL *grad, const REAL *gvals, REAL *gangles, REAL *gshared) {
    size_t dim = (size_t)1 << n;
    REAL *work = malloc(sizeof(REAL) * ((4 * dim + 19) * (size_t)B + (size_t)P * B));
    double *gsh = calloc((size_t)S + 1, sizeof(double));
    if (!work || !gsh) { free(work); free(gsh); return -1; }
    REAL *pr = work, *pim = pr + dim * B, *lr = pim + dim * B, *li = lr + dim * B;
    REAL *tr = li + dim * B, *ti = tr + 8 * (size_t)B, *cb = ti + 8 * (size_t)B, *sb = cb + B, *g = sb + B;
    REAL *gps = g + B;
    const REAL *cps = trig, *sps = cps + (size_t)P * B, *csh = sps + (size_t)P * B, *ssh = csh + S;
    memset(gps, 0, (size_t)P * B * sizeof(REAL));
    memcpy(pr, state, 2 * dim * B * sizeof(REAL));  /* the forward's state stays as it was (a second backward) */
    if (K > 0) {
        for (size_t j = 0; j < dim; j++)
            for (int b = 0; b < B; b++) {
                REAL w = 0;
                for (int k = 0; k < K; k++) w += gvals[(size_t)b * K + k] * (REAL)diag[j * K + k];
                lr[j * B + b] = 2 * w * pr[j * B + b];
                li[j * B + b] = 2 * w * pim[j * B + b];
            }
    } else {
        FN(unpack)(n, B, grad, lr, li);
    }
    for (int k = nops - 1; k >= 0; k--) {
        const int32_t *op = ops + 8 * k;
        if (op[0] >= 3) {
            FN(constant)(n, B, op, mre, mim, perm, 1, pr, pim, tr, ti);
            FN(constant)(n, B, op, mre, mim, perm, 1, lr, li, tr, ti);
            continue;
        }
        const REAL *c, *s;
        FN(angle)(B, op, cps, sps, csh, ssh, cb, sb, &c, &s);
        FN(adjoint_gate)(n, B, op, c, s, pr, pim, lr, li, g);
        if (op[5] == 0) {
            REAL *dst = gps + (size_t)op[6] * B;
            for (int b = 0; b < B; b++) dst[b] += g[b];
        } else {
            double acc = 0;
            for (int b = 0; b < B; b++) acc += g[b];
            gsh[op[6]] += acc;
        }
    }
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) gangles[(size_t)b * P + p] = gps[(size_t)p * B + b];
    for (int q = 0; q < Q; q++) gshared[q] = (REAL)gsh[q];
    free(work);
    free(gsh);
    return 0;
}
