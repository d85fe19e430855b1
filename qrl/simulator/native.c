/* qrl's native batched statevector kernel: native_kernel.h for float (f32) and double (f64), each in three widths
 * (native_widths.h): the batch padded to 16, 8 or 4 samples (suffix _w16, _w8, _w4), so that a small batch does not
 * pay for 16 samples. A sample's arithmetic is the same in every width. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#define MAXRUN 8  /* rotations per run (native.py: MAX_RUN) */
#define MAXGROUP 3  /* runs on distinct wires applied in one pass at most (native.py: FUSED_RUNS) */
#define MAXCOLUMNS 32  /* readout columns the kernel computes at most (native.py: READOUT_MAX_COLUMNS) */
#define SKEW 80  /* elements between a state's real and imaginary halves (native.py: STATE_SKEW) */

/* The runs (kinds 0-3, native_kernel.h) applied in one pass from op g on: up to G consecutive runs on distinct
 * wires, the op index of each run's first gate into first[] in the list's order; returns how many. */
static int forward_group(const int32_t *ops, int nops, int g, int G, int *first) {
    int count = 0;
    G = G < 1 ? 1 : G > MAXGROUP ? MAXGROUP : G;
    while (count < G && g < nops && ops[8 * g] <= 3) {
        for (int i = 0; i < count; i++)
            if (ops[8 * first[i] + 2] == ops[8 * g + 2]) return count;
        first[count++] = g;
        g += ops[8 * g + 3];
    }
    return count;
}

/* The same walking back from op k (the last gate of a run): up to G consecutive runs on distinct wires ending at
 * k, first[] in the list's order (the earliest run first); returns how many. */
static int backward_group(const int32_t *ops, int k, int G, int *first) {
    int rev[MAXGROUP], count = 0;
    G = G < 1 ? 1 : G > MAXGROUP ? MAXGROUP : G;
    while (count < G && k >= 0 && ops[8 * k] <= 3) {
        int start = k - ops[8 * k + 4] + 1, clash = 0;
        for (int i = 0; i < count; i++) clash |= ops[8 * rev[i] + 2] == ops[8 * start + 2];
        if (clash) break;
        rev[count++] = start;
        k = start - 1;
    }
    for (int i = 0; i < count; i++) first[i] = rev[count - 1 - i];
    return count;
}

/* Row j of a readout's K columns into row: from diag (2**n x K, row-major), or, with T > 0, from T Z-word terms
 * (column, mask, coefficient as three doubles each), a word's eigenvalue on basis state j being
 * (-1)^popcount(j & mask): no 2**n x K matrix at 18 and more qubits. */
static inline void readout_row(size_t j, int K, const double *diag, int T, const double *terms, double *row) {
    if (T == 0) {
        for (int k = 0; k < K; k++) row[k] = diag[j * K + k];
        return;
    }
    for (int k = 0; k < K; k++) row[k] = 0;
    for (int t = 0; t < T; t++) {
        const double *w = terms + 3 * t;
        row[(int)w[0]] += (__builtin_popcountll(j & (uint64_t)w[1]) & 1) ? -w[2] : w[2];
    }
}

/* A group's 2**count rows from a base: off[t] sets the bit of run q's wire where bit q of t is set; pos[]: those
 * bits' positions, ascending (group_base) */
static void group_offsets(int n, int count, const int32_t *ops, const int *first, size_t *off, int *pos) {
    for (int t = 0; t < (1 << count); t++) {
        off[t] = 0;
        for (int q = 0; q < count; q++)
            if (t & (1 << q)) off[t] |= (size_t)1 << (n - 1 - ops[8 * first[q] + 2]);
    }
    for (int q = 0; q < count; q++) {
        int p = n - 1 - ops[8 * first[q] + 2], r = q;
        for (; r > 0 && pos[r - 1] > p; r--) pos[r] = pos[r - 1];
        pos[r] = p;
    }
}

/* the base of the i-th group of rows: i with a zero bit inserted at each of the count positions (ascending) */
static inline size_t group_base(size_t i, int count, const int *pos) {
    for (int q = 0; q < count; q++) i = ((i >> pos[q]) << (pos[q] + 1)) | (i & (((size_t)1 << pos[q]) - 1));
    return i;
}

#define REAL float
#define COS cosf
#define SIN sinf
#define DT _f32
#include "native_widths.h"
#undef REAL
#undef COS
#undef SIN
#undef DT

#define REAL double
#define COS cos
#define SIN sin
#define DT _f64
#include "native_widths.h"
#undef REAL
#undef COS
#undef SIN
#undef DT
