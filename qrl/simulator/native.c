/* qrl's native batched statevector kernel: native_kernel.h for float (f32) and double (f64), each in three widths
 * (native_widths.h): the batch padded to 16, 8 or 4 samples (suffix _w16, _w8, _w4), so that a small batch does not
 * pay for 16 samples. A sample's arithmetic is the same in every width. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#define MAXRUN 8  /* rotations per run (native.py: MAX_RUN) */

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
