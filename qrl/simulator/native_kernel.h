/* qrl's native batched statevector kernel (included twice by native.c: REAL float and double).
 *
 * A batch of B states in structure-of-arrays layout, the batch innermost and padded to Bp (a multiple of BLK, and
 * so of the samples in one vector register, VLEN):
 * amplitude j of sample b is re[j * Bp + b] + i im[j * Bp + b], so every gate is a loop over contiguous samples
 * (SIMD) and the batch of a small circuit stays in the L1/L2 cache. Padding samples start in |0>, turn by angle 0
 * and have a zero cotangent: they change no value and no gradient. Gates come as 8 int32 each (native.py):
 *   kind (0-2: RX, RY, RZ; 3: a constant on one wire; 4: dense constant, 5: monomial constant, 6: diagonal of the
 *   whole state, 7: a product of CZs; 8, 9: the head and the end of a controlled run, controlled_run), k (wires;
 *   kind 7: its terms), w0, w1, w2, src (0: per-sample row, 1: shared), idx, moff (a rotation: 1 turns by minus its
 *   angle, in a controlled run); kinds 0-3 make runs on a wire: the first of a run has the run's length in w1, the
 *   last one in w2 (the run is applied in one pass over the state, VLEN samples at a time in registers; with G > 1,
 *   up to G consecutive runs on distinct wires share one pass: rotate_group, adjoint_group).
 * Rotations take cos and sin of half their angle: per-sample (rows of Bp) or shared (one number each).
 * Constant gates (matrices in mre/mim, from moff): one-qubit 2x2 (the inverse at moff + 4), dense d x d (the inverse
 * at moff + d * d), monomial (out[perm[c]] = phase[c] * in[c]; the inverse at moff + d) or a diagonal of the whole
 * state (2**n phases; the inverse at moff + 2**n); a product of CZs has its terms in perm from moff (no matrix).
 */

/* a vector of BLK samples, at most 64 bytes (one AVX-512 register, or two or four narrower ones): 16, 8 or 4
 * float32 in one vector; 16 float64 in two vectors of 8, 8 in one, 4 in one */
#define VBYTES (BLK * sizeof(REAL) < 64 ? BLK * sizeof(REAL) : 64)
typedef REAL FN(vec) __attribute__((vector_size(VBYTES)));
#define VEC FN(vec)
#define VLEN ((int)(sizeof(VEC) / sizeof(REAL)))

static inline VEC FN(load)(const REAL *p) { VEC v; memcpy(&v, p, sizeof v); return v; }
static inline void FN(store)(REAL *p, VEC v) { memcpy(p, &v, sizeof v); }

/* cos and sin of gate op's half angle for samples b0 .. b0 + VLEN - 1 */
static inline void FN(cos_sin)(const int32_t *op, int Bp, int b0, const REAL *cps, const REAL *sps, const REAL *csh,
                               const REAL *ssh, VEC *c, VEC *s) {
    if (op[5] == 0) {
        *c = FN(load)(cps + (size_t)op[6] * Bp + b0);
        *s = FN(load)(sps + (size_t)op[6] * Bp + b0);
    } else {
        *c = (VEC){0} + csh[op[6]];
        *s = (VEC){0} + ssh[op[6]];
    }
}

/* one rotation (kind 0-2: RX, RY, RZ; c, s: cos and sin of its half angle) on a pair of amplitudes (x: bit 0, y: bit 1) */
static inline void FN(rot)(int kind, VEC c, VEC s, VEC *xr, VEC *xi, VEC *yr, VEC *yi) {
    VEC ar = *xr, ai = *xi, br = *yr, bi = *yi;
    if (kind == 0) {          /* RX: [[c, -is], [-is, c]] */
        *xr = c * ar + s * bi; *xi = c * ai - s * br; *yr = c * br + s * ai; *yi = c * bi - s * ar;
    } else if (kind == 1) {   /* RY: [[c, -s], [s, c]] */
        *xr = c * ar - s * br; *xi = c * ai - s * bi; *yr = s * ar + c * br; *yi = s * ai + c * bi;
    } else {                  /* RZ: diag(c - is, c + is) */
        *xr = c * ar + s * ai; *xi = c * ai - s * ar; *yr = c * br - s * bi; *yi = c * bi + s * br;
    }
}

/* a constant one-qubit gate (kind 3): its 2x2 matrix, row-major, at mre/mim */
static inline void FN(mat)(const double *mre, const double *mim, VEC *xr, VEC *xi, VEC *yr, VEC *yi) {
    VEC ar = *xr, ai = *xi, br = *yr, bi = *yi;
    REAL m0r = (REAL)mre[0], m0i = (REAL)mim[0], m1r = (REAL)mre[1], m1i = (REAL)mim[1];
    REAL m2r = (REAL)mre[2], m2i = (REAL)mim[2], m3r = (REAL)mre[3], m3i = (REAL)mim[3];
    *xr = m0r * ar - m0i * ai + m1r * br - m1i * bi; *xi = m0r * ai + m0i * ar + m1r * bi + m1i * br;
    *yr = m2r * ar - m2i * ai + m3r * br - m3i * bi; *yi = m2r * ai + m2i * ar + m3r * bi + m3i * br;
}

/* one pair of rows (offsets o0, o1: bit 0 and bit 1 of the run's wire) through a run of m one-qubit gates, each block
 * of VLEN samples in registers; with signs (a controlled run's), a rotation with slot 7 set turns by minus its angle
 * (a constant, so that the plain runs' copy has no test for it) */
static inline void FN(run_pair)(int Bp, int m, const int32_t *run, const double *mre, const double *mim,
                                const REAL *cps, const REAL *sps, const REAL *csh, const REAL *ssh, REAL *re, REAL *im,
                                size_t o0, size_t o1, const int signs) {
    REAL *ar = re + o0, *ai = im + o0, *br = re + o1, *bi = im + o1;
    for (int b0 = 0; b0 < Bp; b0 += VLEN) {
        VEC xr = FN(load)(ar + b0), xi = FN(load)(ai + b0), yr = FN(load)(br + b0), yi = FN(load)(bi + b0);
        for (int t = 0; t < m; t++) {
            const int32_t *op = run + 8 * t;
            if (op[0] == 3) {
                FN(mat)(mre + op[7], mim + op[7], &xr, &xi, &yr, &yi);
                continue;
            }
            VEC c, s;
            FN(cos_sin)(op, Bp, b0, cps, sps, csh, ssh, &c, &s);
            FN(rot)(op[0], c, signs && op[7] ? -s : s, &xr, &xi, &yr, &yi);
        }
        FN(store)(ar + b0, xr); FN(store)(ai + b0, xi); FN(store)(br + b0, yr); FN(store)(bi + b0, yi);
    }
}

/* a run of m one-qubit gates on one wire (run[2]) in one pass over the state: each block of VLEN samples of a pair
 * of rows goes through the whole run in registers */
static void FN(rotate_run)(int n, int Bp, int m, const int32_t *run, const double *mre, const double *mim,
                           const REAL *cps, const REAL *sps, const REAL *csh, const REAL *ssh, REAL *re, REAL *im) {
    size_t dim = (size_t)1 << n, mask = (size_t)1 << (n - 1 - run[2]);
    for (size_t j0 = 0; j0 < dim; j0++)
        if (!(j0 & mask))
            FN(run_pair)(Bp, m, run, mre, mim, cps, sps, csh, ssh, re, im, j0 * Bp, (j0 | mask) * Bp, 0);
}

/* the adjoint walk back through a run (its last gate first) for one pair of rows (o0, o1), each block of VLEN samples
 * in registers: per gate the gradient per sample, 0.5 Im <lam| P phi> (phi the state after the gate, lam the adjoint
 * state there), added into g (m rows of Bp; minus it for a rotation by minus its angle, slot 7); then phi and lam
 * taken back through it (s -> -s) */
static inline void FN(adjoint_pair)(int Bp, int m, const int32_t *run, const double *mre, const double *mim,
                                    const REAL *cps, const REAL *sps, const REAL *csh, const REAL *ssh, REAL *pr,
                                    REAL *pim, REAL *lr, REAL *li, REAL *g, size_t o0, size_t o1, const int signs) {
    for (int b0 = 0; b0 < Bp; b0 += VLEN) {
        VEC p0r = FN(load)(pr + o0 + b0), p0i = FN(load)(pim + o0 + b0);
        VEC p1r = FN(load)(pr + o1 + b0), p1i = FN(load)(pim + o1 + b0);
        VEC l0r = FN(load)(lr + o0 + b0), l0i = FN(load)(li + o0 + b0);
        VEC l1r = FN(load)(lr + o1 + b0), l1i = FN(load)(li + o1 + b0);
        for (int t = m - 1; t >= 0; t--) {
            const int32_t *op = run + 8 * t;
            if (op[0] == 3) {  /* a constant: no gradient; its inverse at moff + 4 */
                FN(mat)(mre + op[7] + 4, mim + op[7] + 4, &p0r, &p0i, &p1r, &p1i);
                FN(mat)(mre + op[7] + 4, mim + op[7] + 4, &l0r, &l0i, &l1r, &l1i);
                continue;
            }
            VEC c, s, d;
            FN(cos_sin)(op, Bp, b0, cps, sps, csh, ssh, &c, &s);
            int minus = signs && op[7];
            if (minus) s = -s;
            if (op[0] == 0) d = l0r * p1i - l0i * p1r + l1r * p0i - l1i * p0r;
            else if (op[0] == 1) d = l1r * p0r + l1i * p0i - l0r * p1r - l0i * p1i;
            else d = l0r * p0i - l0i * p0r - l1r * p1i + l1i * p1r;
            REAL *gt = g + (size_t)t * Bp + b0;
            FN(store)(gt, FN(load)(gt) + (minus ? (REAL)-0.5 : (REAL)0.5) * d);
            FN(rot)(op[0], c, -s, &p0r, &p0i, &p1r, &p1i);
            FN(rot)(op[0], c, -s, &l0r, &l0i, &l1r, &l1i);
        }
        FN(store)(pr + o0 + b0, p0r); FN(store)(pim + o0 + b0, p0i);
        FN(store)(pr + o1 + b0, p1r); FN(store)(pim + o1 + b0, p1i);
        FN(store)(lr + o0 + b0, l0r); FN(store)(li + o0 + b0, l0i);
        FN(store)(lr + o1 + b0, l1r); FN(store)(li + o1 + b0, l1i);
    }
}

/* the adjoint walk back through a run in one pass over the state (adjoint_pair for every pair of rows) */
static void FN(adjoint_run)(int n, int Bp, int m, const int32_t *run, const double *mre, const double *mim,
                            const REAL *cps, const REAL *sps, const REAL *csh, const REAL *ssh, REAL *pr, REAL *pim,
                            REAL *lr, REAL *li, REAL *g) {
    size_t dim = (size_t)1 << n, mask = (size_t)1 << (n - 1 - run[2]);
    memset(g, 0, (size_t)m * Bp * sizeof(REAL));
    for (size_t j0 = 0; j0 < dim; j0++)
        if (!(j0 & mask))
            FN(adjoint_pair)(Bp, m, run, mre, mim, cps, sps, csh, ssh, pr, pim, lr, li, g, j0 * Bp, (j0 | mask) * Bp,
                             0);
}

/* A controlled run (kind 8: control wire head[2], target head[3]; native.py): the head[4] gates after it (rotations
 * and constants on the target) applied only to the pairs of rows whose control bit is 1, in one pass; a rotation with
 * slot 7 set turns by minus its angle (a decomposition's gates between its two CNOTs, conjugated by X). The rows whose
 * control bit is 0 are left as they are: the gates' product there is the identity (trace.py checks it). */
static void FN(controlled_run)(int n, int Bp, const int32_t *head, const double *mre, const double *mim,
                               const REAL *cps, const REAL *sps, const REAL *csh, const REAL *ssh, REAL *re, REAL *im) {
    int pc = n - 1 - head[2], pt = n - 1 - head[3], pos[2] = {pc < pt ? pc : pt, pc < pt ? pt : pc};
    for (size_t i = 0; i < ((size_t)1 << n) >> 2; i++) {
        size_t j0 = group_base(i, 2, pos) | (size_t)1 << pc;
        FN(run_pair)(Bp, head[4], head + 8, mre, mim, cps, sps, csh, ssh, re, im, j0 * Bp, (j0 | (size_t)1 << pt) * Bp,
                     1);
    }
}

/* the adjoint walk back through a controlled run (adjoint_pair over the pairs whose control bit is 1) */
static void FN(adjoint_controlled)(int n, int Bp, const int32_t *head, const double *mre, const double *mim,
                                   const REAL *cps, const REAL *sps, const REAL *csh, const REAL *ssh, REAL *pr,
                                   REAL *pim, REAL *lr, REAL *li, REAL *g) {
    int pc = n - 1 - head[2], pt = n - 1 - head[3], pos[2] = {pc < pt ? pc : pt, pc < pt ? pt : pc};
    memset(g, 0, (size_t)head[4] * Bp * sizeof(REAL));
    for (size_t i = 0; i < ((size_t)1 << n) >> 2; i++) {
        size_t j0 = group_base(i, 2, pos) | (size_t)1 << pc;
        FN(adjoint_pair)(Bp, head[4], head + 8, mre, mim, cps, sps, csh, ssh, pr, pim, lr, li, g, j0 * Bp,
                         (j0 | (size_t)1 << pt) * Bp, 1);
    }
}

#ifndef QRL_GROUP_MACROS
#define QRL_GROUP_MACROS
/* The rows of a group of runs (count 2 or 3: 4 or 8 rows, named 0 .. 7 after the bits of their run's wires; bit q:
 * run q's wire) in local variables x<t>r, x<t>i (the adjoint: p<t>r, p<t>i, l<t>r, l<t>i), so that they stay in
 * registers; the pairs that run q's gates mix: */
#define PAIRS_2_0(F) F(0, 1) F(2, 3)
#define PAIRS_2_1(F) F(0, 2) F(1, 3)
#define PAIRS_3_0(F) F(0, 1) F(2, 3) F(4, 5) F(6, 7)
#define PAIRS_3_1(F) F(0, 2) F(1, 3) F(4, 6) F(5, 7)
#define PAIRS_3_2(F) F(0, 4) F(1, 5) F(2, 6) F(3, 7)
#define ROWS_2(F) F(0) F(1) F(2) F(3)
#define ROWS_3(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7)
#define DECLARE_X(t) VEC x##t##r, x##t##i;
#define LOAD_X(t) { size_t o = (base | off[t]) * Bp + b0; x##t##r = FN(load)(re + o); x##t##i = FN(load)(im + o); }
#define STORE_X(t) { size_t o = (base | off[t]) * Bp + b0; FN(store)(re + o, x##t##r); FN(store)(im + o, x##t##i); }
#define MAT_X(a, b) FN(mat)(mr, mi, &x##a##r, &x##a##i, &x##b##r, &x##b##i);
#define RX_X(a, b) FN(rot)(0, c, s, &x##a##r, &x##a##i, &x##b##r, &x##b##i);
#define RY_X(a, b) FN(rot)(1, c, s, &x##a##r, &x##a##i, &x##b##r, &x##b##i);
#define RZ_X(a, b) FN(rot)(2, c, s, &x##a##r, &x##a##i, &x##b##r, &x##b##i);
/* run q (its first gate at ops + 8 * first[q]) on the rows of PAIRS, in the list's order */
#define FORWARD_RUN(q, PAIRS) do {                                                                  \
        const int32_t *run = ops + 8 * first[q];                                                    \
        for (int r = 0; r < run[3]; r++) {                                                          \
            const int32_t *op = run + 8 * r;                                                        \
            if (op[0] == 3) {                                                                       \
                const double *mr = mre + op[7], *mi = mim + op[7];                                  \
                PAIRS(MAT_X)                                                                        \
            } else {                                                                                \
                VEC c, s;                                                                           \
                FN(cos_sin)(op, Bp, b0, cps, sps, csh, ssh, &c, &s);                                \
                if (op[0] == 0) { PAIRS(RX_X) } else if (op[0] == 1) { PAIRS(RY_X) } else { PAIRS(RZ_X) } \
            }                                                                                       \
        }                                                                                           \
    } while (0)
#define DECLARE_PL(t) VEC p##t##r, p##t##i, l##t##r, l##t##i;
#define LOAD_PL(t) { size_t o = (base | off[t]) * Bp + b0; p##t##r = FN(load)(pr + o); p##t##i = FN(load)(pim + o); \
                     l##t##r = FN(load)(lr + o); l##t##i = FN(load)(li + o); }
#define STORE_PL(t) { size_t o = (base | off[t]) * Bp + b0; FN(store)(pr + o, p##t##r); FN(store)(pim + o, p##t##i); \
                      FN(store)(lr + o, l##t##r); FN(store)(li + o, l##t##i); }
#define MAT_PL(a, b) FN(mat)(mr, mi, &p##a##r, &p##a##i, &p##b##r, &p##b##i); \
                     FN(mat)(mr, mi, &l##a##r, &l##a##i, &l##b##r, &l##b##i);
#define UNROT_PL(k, a, b) FN(rot)(k, c, -s, &p##a##r, &p##a##i, &p##b##r, &p##b##i); \
                          FN(rot)(k, c, -s, &l##a##r, &l##a##i, &l##b##r, &l##b##i);
/* 0.5 Im <lam| P phi> summed over the pairs (as adjoint_run's d, pair by pair) */
#define GRAD_RX(a, b) d += l##a##r * p##b##i - l##a##i * p##b##r + l##b##r * p##a##i - l##b##i * p##a##r;
#define GRAD_RY(a, b) d += l##b##r * p##a##r + l##b##i * p##a##i - l##a##r * p##b##r - l##a##i * p##b##i;
#define GRAD_RZ(a, b) d += l##a##r * p##a##i - l##a##i * p##a##r - l##b##r * p##b##i + l##b##i * p##b##r;
/* a pair's term, then the pair taken back through the rotation (after its last use) */
#define GRAD_UNRX(a, b) GRAD_RX(a, b) UNROT_PL(0, a, b)
#define GRAD_UNRY(a, b) GRAD_RY(a, b) UNROT_PL(1, a, b)
#define GRAD_UNRZ(a, b) GRAD_RZ(a, b) UNROT_PL(2, a, b)
/* the adjoint walk back through run q (its last gate first), each rotation's gradient into g row q * MAXRUN + r */
#define ADJOINT_RUN(q, PAIRS) do {                                                                  \
        const int32_t *run = ops + 8 * first[q];                                                    \
        for (int r = run[3] - 1; r >= 0; r--) {                                                     \
            const int32_t *op = run + 8 * r;                                                        \
            if (op[0] == 3) {  /* a constant: no gradient; its inverse at moff + 4 */               \
                const double *mr = mre + op[7] + 4, *mi = mim + op[7] + 4;                          \
                PAIRS(MAT_PL)                                                                       \
                continue;                                                                           \
            }                                                                                       \
            VEC c, s, d = {0};                                                                      \
            FN(cos_sin)(op, Bp, b0, cps, sps, csh, ssh, &c, &s);                                    \
            if (op[0] == 0) { PAIRS(GRAD_UNRX) } else if (op[0] == 1) { PAIRS(GRAD_UNRY) }          \
            else { PAIRS(GRAD_UNRZ) }                                                               \
            REAL *gt = g + ((size_t)(q) * MAXRUN + r) * Bp + b0;                                    \
            FN(store)(gt, FN(load)(gt) + (REAL)0.5 * d);                                            \
        }                                                                                           \
    } while (0)
/* the arguments of the group passes below, after n and Bp */
#define GROUP_ARGS const int32_t *ops, const int *first, const double *mre, const double *mim, const REAL *cps, \
                   const REAL *sps, const REAL *csh, const REAL *ssh, const size_t *off, const int *pos
#define GROUP_CALL ops, first, mre, mim, cps, sps, csh, ssh, off, pos
/* every group of rows of the state (count runs), VLEN samples at a time: BODY on the rows from base, block b0 */
#define EACH_GROUP(count, BODY) do {                                                                 \
        for (size_t i = 0; i < ((size_t)1 << n) >> (count); i++) {                                   \
            size_t base = group_base(i, count, pos);                                                 \
            for (int b0 = 0; b0 < Bp; b0 += VLEN) { BODY }                                           \
        }                                                                                            \
    } while (0)
#endif

/* One pass for 2 or 3 runs on distinct wires (first[]: their first gates, native.c's forward_group): each block of
 * VLEN samples of the 4 or 8 rows they mix goes through every run in the list's order, so each amplitude sees the
 * same arithmetic, in the same order, as in passes of rotate_run (the values are the same to the bit), and the state
 * is read and written once instead of 2 or 3 times. One function per count, so that each keeps its rows in
 * registers. */
static void FN(rotate_group2)(int n, int Bp, GROUP_ARGS, REAL *re, REAL *im) {
    EACH_GROUP(2, ROWS_2(DECLARE_X) ROWS_2(LOAD_X) FORWARD_RUN(0, PAIRS_2_0); FORWARD_RUN(1, PAIRS_2_1);
                  ROWS_2(STORE_X));
}

static void FN(rotate_group3)(int n, int Bp, GROUP_ARGS, REAL *re, REAL *im) {
    EACH_GROUP(3, ROWS_3(DECLARE_X) ROWS_3(LOAD_X) FORWARD_RUN(0, PAIRS_3_0); FORWARD_RUN(1, PAIRS_3_1);
                  FORWARD_RUN(2, PAIRS_3_2); ROWS_3(STORE_X));
}

static void FN(rotate_group)(int n, int Bp, int count, const int32_t *ops, const int *first, const double *mre,
                             const double *mim, const REAL *cps, const REAL *sps, const REAL *csh, const REAL *ssh,
                             REAL *re, REAL *im) {
    size_t off[1 << MAXGROUP];
    int pos[MAXGROUP];
    group_offsets(n, count, ops, first, off, pos);
    if (count == 2) FN(rotate_group2)(n, Bp, GROUP_CALL, re, im);
    else FN(rotate_group3)(n, Bp, GROUP_CALL, re, im);
}

/* The adjoint walk back through a group of 2 or 3 runs (native.c's backward_group; the last run's last gate first)
 * in one pass: as adjoint_run, each gate's gradient into g (row q * MAXRUN + r for gate r of run q), summed over the
 * group's pairs of rows before it is added (so not the same to the bit as adjoint_run's sums). */
static void FN(adjoint_group2)(int n, int Bp, GROUP_ARGS, REAL *pr, REAL *pim, REAL *lr, REAL *li, REAL *g) {
    EACH_GROUP(2, ROWS_2(DECLARE_PL) ROWS_2(LOAD_PL) ADJOINT_RUN(1, PAIRS_2_1); ADJOINT_RUN(0, PAIRS_2_0);
                  ROWS_2(STORE_PL));
}

static void FN(adjoint_group3)(int n, int Bp, GROUP_ARGS, REAL *pr, REAL *pim, REAL *lr, REAL *li, REAL *g) {
    EACH_GROUP(3, ROWS_3(DECLARE_PL) ROWS_3(LOAD_PL) ADJOINT_RUN(2, PAIRS_3_2); ADJOINT_RUN(1, PAIRS_3_1);
                  ADJOINT_RUN(0, PAIRS_3_0); ROWS_3(STORE_PL));
}

static void FN(adjoint_group)(int n, int Bp, int count, const int32_t *ops, const int *first, const double *mre,
                              const double *mim, const REAL *cps, const REAL *sps, const REAL *csh, const REAL *ssh,
                              REAL *pr, REAL *pim, REAL *lr, REAL *li, REAL *g) {
    size_t off[1 << MAXGROUP];
    int pos[MAXGROUP];
    group_offsets(n, count, ops, first, off, pos);
    memset(g, 0, (size_t)count * MAXRUN * Bp * sizeof(REAL));
    if (count == 2) FN(adjoint_group2)(n, Bp, GROUP_CALL, pr, pim, lr, li, g);
    else FN(adjoint_group3)(n, Bp, GROUP_CALL, pr, pim, lr, li, g);
}

/* a run's gradients (g: a row of Bp per gate) added to the per-sample angles' (gps) or the shared ones' (gsh) */
static void FN(collect)(int B, int Bp, int m, const int32_t *run, const REAL *g, REAL *gps, double *gsh) {
    for (int t = 0; t < m; t++) {
        const int32_t *rt = run + 8 * t;
        const REAL *gt = g + (size_t)t * Bp;
        if (rt[0] == 3) continue;
        if (rt[5] == 0) {
            REAL *dst = gps + (size_t)rt[6] * Bp;
            for (int b = 0; b < Bp; b++) dst[b] += gt[b];
        } else {
            double acc = 0;
            for (int b = 0; b < B; b++) acc += gt[b];
            gsh[rt[6]] += acc;
        }
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

/* one amplitude row times a phase: untouched for 1, negated for -1 */
static void FN(phase_row)(int Bp, double pr, double pi, REAL *restrict xr, REAL *restrict xi) {
    REAL qr = (REAL)pr, qi = (REAL)pi;
    if (qi == 0 && qr == 1) return;
    if (qi == 0 && qr == -1) {
        for (int b = 0; b < Bp; b++) { xr[b] = -xr[b]; xi[b] = -xi[b]; }
        return;
    }
    for (int b = 0; b < Bp; b++) {
        REAL yr = qr * xr[b] - qi * xi[b];
        xi[b] = qr * xi[b] + qi * xr[b];
        xr[b] = yr;
    }
}

/* rows x, y -> (py * y, px * x): a pair of rows a monomial gate exchanges, each with its phase */
static void FN(swap_rows)(int Bp, double pxr, double pxi, double pyr, double pyi, REAL *restrict xr,
                          REAL *restrict xi, REAL *restrict yr, REAL *restrict yi) {
    REAL ar = (REAL)pxr, ai = (REAL)pxi, br = (REAL)pyr, bi = (REAL)pyi;
    for (int b = 0; b < Bp; b++) {
        REAL ur = xr[b], ui = xi[b], vr = yr[b], vi = yi[b];
        xr[b] = br * vr - bi * vi; xi[b] = br * vi + bi * vr;
        yr[b] = ar * ur - ai * ui; yi[b] = ar * ui + ai * ur;
    }
}

/* a constant gate (kind 4 dense, 5 monomial, 6 a diagonal of the whole state: 2**n phases at moff, the inverse's
 * after them; 7 a product of CZs, its own inverse); inverse != 0 applies its inverse */
static void FN(constant)(int n, int Bp, const int32_t *op, const double *mre, const double *mim,
                         const int32_t *perm, int inverse, REAL *re, REAL *im, REAL *tr, REAL *ti) {
    int k = op[1], d = 1 << k;
    size_t dim = (size_t)1 << n, off[8];
    if (op[0] == 7) {  /* amplitude j negated where the CZs' pairs of set bits are odd in number: k terms (shift s,
                        * mask m) at perm[moff], each counting the pairs (bit p + s, bit p) for the bits p of m */
        const int32_t *t = perm + op[7];
        for (size_t j = 0; j < dim; j++) {
            unsigned odd = 0;
            for (int q = 0; q < k; q++)
                odd ^= (unsigned)__builtin_popcountll(j & (j >> t[2 * q]) & (uint32_t)t[2 * q + 1]);
            if (odd & 1) FN(phase_row)(Bp, -1.0, 0.0, re + j * Bp, im + j * Bp);
        }
        return;
    }
    if (op[0] == 6) {
        size_t m0 = (size_t)op[7] + (size_t)inverse * dim;
        for (size_t j = 0; j < dim; j++) FN(phase_row)(Bp, mre[m0 + j], mim[m0 + j], re + j * Bp, im + j * Bp);
        return;
    }
    size_t wmask = FN(offsets)(n, k, op, off);
    size_t m0 = (size_t)op[7] + (size_t)inverse * (op[0] == 4 ? (size_t)d * d : (size_t)d);
    int in_place = op[0] == 5;  /* a monomial whose permutation has cycles of length 1 and 2 only */
    for (int c = 0; c < d && in_place; c++) in_place = perm[m0 + perm[m0 + c]] == c;
    for (size_t base = 0; base < dim; base++) {
        if (base & wmask) continue;
        if (in_place) {  /* fixed rows times their phase, pairs of rows swapped (with phases): one pass, no copy */
            for (int c = 0; c < d; c++) {
                int r = perm[m0 + c];
                REAL *xr = re + (base | off[c]) * Bp, *xi = im + (base | off[c]) * Bp;
                if (r == c) {
                    FN(phase_row)(Bp, mre[m0 + c], mim[m0 + c], xr, xi);
                } else if (r > c) {
                    FN(swap_rows)(Bp, mre[m0 + c], mim[m0 + c], mre[m0 + r], mim[m0 + r], xr, xi,
                                  re + (base | off[r]) * Bp, im + (base | off[r]) * Bp);
                }
            }
            continue;
        }
        if (op[0] == 5) {
            for (int c = 0; c < d; c++) {
                REAL qr = (REAL)mre[m0 + c], qi = (REAL)mim[m0 + c];
                const REAL *xr = re + (base | off[c]) * Bp, *xi = im + (base | off[c]) * Bp;
                REAL *yr = tr + (size_t)perm[m0 + c] * Bp, *yi = ti + (size_t)perm[m0 + c] * Bp;
                for (int b = 0; b < Bp; b++) {
                    yr[b] = qr * xr[b] - qi * xi[b];
                    yi[b] = qr * xi[b] + qi * xr[b];
                }
            }
        } else {
            for (int r = 0; r < d; r++) {
                REAL *yr = tr + (size_t)r * Bp, *yi = ti + (size_t)r * Bp;
                for (int b = 0; b < Bp; b++) { yr[b] = 0; yi[b] = 0; }
                for (int c = 0; c < d; c++) {
                    REAL qr = (REAL)mre[m0 + (size_t)r * d + c], qi = (REAL)mim[m0 + (size_t)r * d + c];
                    if (qr == 0 && qi == 0) continue;
                    const REAL *xr = re + (base | off[c]) * Bp, *xi = im + (base | off[c]) * Bp;
                    for (int b = 0; b < Bp; b++) {
                        yr[b] += qr * xr[b] - qi * xi[b];
                        yi[b] += qr * xi[b] + qi * xr[b];
                    }
                }
            }
        }
        for (int r = 0; r < d; r++)
            for (int b = 0; b < Bp; b++) {
                re[(base | off[r]) * Bp + b] = tr[(size_t)r * Bp + b];
                im[(base | off[r]) * Bp + b] = ti[(size_t)r * Bp + b];
            }
    }
}

/* interleaved (B, 2**n) complex <-> the kernel's layout (padding samples: zero) */
static void FN(unpack)(int n, int B, int Bp, const REAL *z, REAL *re, REAL *im) {
    size_t dim = (size_t)1 << n;
    memset(re, 0, dim * Bp * sizeof(REAL));
    memset(im, 0, dim * Bp * sizeof(REAL));
    for (int b = 0; b < B; b++)
        for (size_t j = 0; j < dim; j++) {
            re[j * Bp + b] = z[2 * (b * dim + j)];
            im[j * Bp + b] = z[2 * (b * dim + j) + 1];
        }
}

static void FN(pack)(int n, int B, int Bp, const REAL *re, const REAL *im, REAL *z) {
    size_t dim = (size_t)1 << n;
    for (int b = 0; b < B; b++)
        for (size_t j = 0; j < dim; j++) {
            z[2 * (b * dim + j)] = re[j * Bp + b];
            z[2 * (b * dim + j) + 1] = im[j * Bp + b];
        }
}

/* cos and sin of half of every angle: per-sample (P rows of Bp; padding: angle 0), then shared and constants (S) */
static void FN(trig)(int B, int Bp, int P, int S, int Q, const REAL *angles, const REAL *shared,
                     const double *consts, REAL *trig) {
    REAL *cps = trig, *sps = cps + (size_t)P * Bp, *csh = sps + (size_t)P * Bp, *ssh = csh + S;
    for (int b = 0; b < Bp; b++)
        for (int p = 0; p < P; p++) {
            REAL h = b < B ? angles[(size_t)b * P + p] * (REAL)0.5 : 0;
            cps[(size_t)p * Bp + b] = COS(h);
            sps[(size_t)p * Bp + b] = SIN(h);
        }
    for (int q = 0; q < S; q++) {
        REAL h = (q < Q ? shared[q] : (REAL)consts[q - Q]) * (REAL)0.5;
        csh[q] = COS(h);
        ssh[q] = SIN(h);
    }
}

/* values (B, K) = |psi|^2 @ D from the kernel's layout, D's rows from readout_row (diag, or T Z-word terms) */
static void FN(readout)(int n, int B, int Bp, int K, const double *diag, int T, const double *terms, const REAL *re,
                        const REAL *im, REAL *vals, REAL *acc) {
    size_t dim = (size_t)1 << n;
    double row[MAXCOLUMNS];
    memset(acc, 0, (size_t)K * Bp * sizeof(REAL));
    for (size_t j = 0; j < dim; j++) {
        const REAL *restrict xr = re + j * Bp, *restrict xi = im + j * Bp;
        readout_row(j, K, diag, T, terms, row);
        for (int k = 0; k < K; k++) {
            REAL d = (REAL)row[k];
            REAL *restrict a = acc + (size_t)k * Bp;
            if (d == 0) continue;
            for (int b = 0; b < Bp; b++) a[b] += d * (xr[b] * xr[b] + xi[b] * xi[b]);
        }
    }
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) vals[(size_t)b * K + k] = acc[(size_t)k * Bp + b];
}

/* Runs the gates on |0>: the final states go to state (the kernel's layout, 2 * 2**n * Bp, for the backward)
 * and, where out is not NULL, to out (B, 2**n, interleaved complex); with K > 0, |psi|^2 @ D to vals (B, K), D
 * from diag or, with T > 0, from T Z-word terms (readout_row).
 * trig (2 * (P * Bp + S)) is filled for the backward. trig and state may be NULL (no backward to follow: the
 * kernel uses scratch memory of its own). Up to G (1 .. MAXGROUP) consecutive runs on distinct wires are applied in
 * one pass (rotate_group; 1: each alone). Returns 0, or -1 (no scratch memory). */
int FN(forward)(int n, int B, int P, int S, int Q, int nops, int K, int T, int G, const int32_t *ops,
                const double *mre, const double *mim, const int32_t *perm, const double *consts, const double *diag,
                const double *terms,
                const REAL *angles, const REAL *shared, REAL *trig, REAL *state, REAL *out, REAL *vals) {
    size_t dim = (size_t)1 << n;
    int Bp = (B + BLK - 1) / BLK * BLK;
    size_t own = (trig ? 0 : 2 * ((size_t)P * Bp + S)) + (state ? 0 : 2 * dim * Bp + SKEW);  /* NULL: ours */
    REAL *work = malloc(sizeof(REAL) * ((16 + (size_t)K) * (size_t)Bp + own));
    if (!work) return -1;
    REAL *extra = work + (16 + (size_t)K) * (size_t)Bp;
    if (!trig) { trig = extra; extra += 2 * ((size_t)P * Bp + S); }
    if (!state) state = extra;
    REAL *re = state, *im = re + dim * Bp + SKEW, *tr = work, *ti = tr + 8 * (size_t)Bp;
    const REAL *cps = trig, *sps = cps + (size_t)P * Bp, *csh = sps + (size_t)P * Bp, *ssh = csh + S;
    FN(trig)(B, Bp, P, S, Q, angles, shared, consts, trig);
    memset(re, 0, (2 * dim * Bp + SKEW) * sizeof(REAL));
    for (int b = 0; b < Bp; b++) re[b] = 1;
    for (int g = 0; g < nops;) {
        const int32_t *op = ops + 8 * g;
        if (op[0] == 8) {  /* a controlled run: its gates, then its end (kind 9) */
            FN(controlled_run)(n, Bp, op, mre, mim, cps, sps, csh, ssh, re, im);
            g += op[4] + 2;
            continue;
        }
        if (op[0] >= 4) {
            FN(constant)(n, Bp, op, mre, mim, perm, 0, re, im, tr, ti);
            g++;
            continue;
        }
        int first[MAXGROUP], count = forward_group(ops, nops, g, G, first), last = first[count - 1];
        if (count == 1) FN(rotate_run)(n, Bp, op[3], op, mre, mim, cps, sps, csh, ssh, re, im);
        else FN(rotate_group)(n, Bp, count, ops, first, mre, mim, cps, sps, csh, ssh, re, im);
        g = last + ops[8 * last + 3];
    }
    if (out) FN(pack)(n, B, Bp, re, im, out);
    if (K > 0) FN(readout)(n, B, Bp, K, diag, T, terms, re, im, vals, work);
    free(work);
    return 0;
}

/* the adjoint method from the forward's state: its cotangent is grad (B, 2**n, interleaved complex) or, with
 * K > 0, made from gvals (B, K), the cotangent of the values: lam = 2 (gvals @ D^T) psi (D as in forward).
 * d(loss)/d(angle) into gangles (B, P) and, summed over the batch, gshared (Q); G as in forward. Returns 0, or -1
 * (no scratch memory). */
int FN(backward)(int n, int B, int P, int S, int Q, int nops, int K, int T, int G, const int32_t *ops,
                 const double *mre, const double *mim, const int32_t *perm, const double *diag, const double *terms,
                 const REAL *trig, const REAL *state,
                 const REAL *grad, const REAL *gvals, REAL *gangles, REAL *gshared) {
    size_t dim = (size_t)1 << n;
    int Bp = (B + BLK - 1) / BLK * BLK;
    REAL *work = malloc(sizeof(REAL) * ((4 * dim + 16 + MAXGROUP * MAXRUN) * (size_t)Bp + (size_t)P * Bp + 3 * SKEW));
    double *gsh = calloc((size_t)S + 1, sizeof(double));
    if (!work || !gsh) { free(work); free(gsh); return -1; }
    REAL *pr = work, *pim = pr + dim * Bp + SKEW, *lr = pim + dim * Bp + SKEW, *li = lr + dim * Bp + SKEW;
    REAL *tr = li + dim * Bp, *ti = tr + 8 * (size_t)Bp, *g = ti + 8 * (size_t)Bp;
    REAL *gps = g + MAXGROUP * MAXRUN * (size_t)Bp;
    const REAL *cps = trig, *sps = cps + (size_t)P * Bp, *csh = sps + (size_t)P * Bp, *ssh = csh + S;
    memset(gps, 0, (size_t)P * Bp * sizeof(REAL));
    memcpy(pr, state, (2 * dim * Bp + SKEW) * sizeof(REAL));  /* the forward's stays as it was (a second backward) */
    if (K > 0) {
        double row[MAXCOLUMNS];
        memset(lr, 0, (2 * dim * Bp + SKEW) * sizeof(REAL));
        for (size_t j = 0; j < dim; j++) {
            readout_row(j, K, diag, T, terms, row);
            for (int b = 0; b < B; b++) {
                REAL w = 0;
                for (int k = 0; k < K; k++) w += gvals[(size_t)b * K + k] * (REAL)row[k];
                lr[j * Bp + b] = 2 * w * pr[j * Bp + b];
                li[j * Bp + b] = 2 * w * pim[j * Bp + b];
            }
        }
    } else {
        FN(unpack)(n, B, Bp, grad, lr, li);
    }
    for (int k = nops - 1; k >= 0;) {
        const int32_t *op = ops + 8 * k;
        if (op[0] == 9) {  /* the end of a controlled run: the run walked back from its head */
            const int32_t *head = op - 8 * (op[4] + 1);
            FN(adjoint_controlled)(n, Bp, head, mre, mim, cps, sps, csh, ssh, pr, pim, lr, li, g);
            FN(collect)(B, Bp, op[4], head + 8, g, gps, gsh);
            k -= op[4] + 2;
            continue;
        }
        if (op[0] >= 4) {
            FN(constant)(n, Bp, op, mre, mim, perm, 1, pr, pim, tr, ti);
            FN(constant)(n, Bp, op, mre, mim, perm, 1, lr, li, tr, ti);
            k--;
            continue;
        }
        int first[MAXGROUP], count = backward_group(ops, k, G, first);
        if (count == 1)
            FN(adjoint_run)(n, Bp, op[4], ops + 8 * first[0], mre, mim, cps, sps, csh, ssh, pr, pim, lr, li, g);
        else
            FN(adjoint_group)(n, Bp, count, ops, first, mre, mim, cps, sps, csh, ssh, pr, pim, lr, li, g);
        for (int q = 0; q < count; q++)
            FN(collect)(B, Bp, ops[8 * first[q] + 3], ops + 8 * first[q], g + (size_t)q * MAXRUN * Bp, gps, gsh);
        k = first[0] - 1;
    }
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) gangles[(size_t)b * P + p] = gps[(size_t)p * Bp + b];
    for (int q = 0; q < Q; q++) gshared[q] = (REAL)gsh[q];
    free(work);
    free(gsh);
    return 0;
}

#undef VEC
#undef VLEN
#undef VBYTES
