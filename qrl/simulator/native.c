/* qrl's native batched statevector kernel: native_kernel.h for float (f32) and double (f64), each in three widths:
 * the batch padded to 16, 8 or 4 samples (vectors of 64, 32 or 16 bytes; suffix _w16, _w8, _w4), so that a small
 * batch does not pay for 16 samples. A sample's arithmetic is the same in every width. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#define MAXRUN 8  /* rotations per run (native.py: MAX_RUN) */

#define REAL float
#define COS cosf
#define SIN sinf
#define BLK 16    /* the batch is padded to a multiple of this (native.py: BLOCKS): whole vector registers */
#define VBYTES 64
#define FN(name) name##_f32_w16
#include "native_kernel.h"
#undef BLK
#undef VBYTES
#undef FN
#define BLK 8
#define VBYTES 32
#define FN(name) name##_f32_w8
#include "native_kernel.h"
#undef BLK
#undef VBYTES
#undef FN
#define BLK 4
#define VBYTES 16
#define FN(name) name##_f32_w4
#include "native_kernel.h"
#undef BLK
#undef VBYTES
#undef FN
#undef REAL
#undef COS
#undef SIN

#define REAL double
#define COS cos
#define SIN sin
#define BLK 16
#define VBYTES 64
#define FN(name) name##_f64_w16
#include "native_kernel.h"
#undef BLK
#undef VBYTES
#undef FN
#define BLK 8
#define VBYTES 64
#define FN(name) name##_f64_w8
#include "native_kernel.h"
#undef BLK
#undef VBYTES
#undef FN
#define BLK 4
#define VBYTES 32
#define FN(name) name##_f64_w4
#include "native_kernel.h"
#undef BLK
#undef VBYTES
#undef FN
#undef REAL
#undef COS
#undef SIN
