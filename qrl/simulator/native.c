/* qrl's native batched statevector kernel: native_kernel.h for float (f32) and double (f64). */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#define BLK 16    /* the batch is padded to a multiple of this (native.py: BLOCK): whole vector registers */
#define MAXRUN 8  /* rotations per run (native.py: MAX_RUN) */

#define REAL float
#define COS cosf
#define SIN sinf
#define FN(name) name##_f32
#include "native_kernel.h"
#undef REAL
#undef COS
#undef SIN
#undef FN

#define REAL double
#define COS cos
#define SIN sin
#define FN(name) name##_f64
#include "native_kernel.h"
#undef REAL
#undef COS
#undef SIN
#undef FN
