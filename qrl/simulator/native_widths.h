/* native_kernel.h in the kernel's three widths for one REAL (native.c defines REAL, COS, SIN and DT, the dtype's
 * suffix): the batch padded to 16, 8 or 4 samples (native.py: BLOCK, NARROW_BLOCKS); functions name_<DT>_w16 ... */
#define GLUE(a, b) a##b
#define XGLUE(a, b) GLUE(a, b)

#define BLK 16    /* the batch is padded to a multiple of this: whole vectors */
#define FN(name) XGLUE(XGLUE(name, DT), _w16)
#include "native_kernel.h"
#undef BLK
#undef FN

#define BLK 8
#define FN(name) XGLUE(XGLUE(name, DT), _w8)
#include "native_kernel.h"
#undef BLK
#undef FN

#define BLK 4
#define FN(name) XGLUE(XGLUE(name, DT), _w4)
#include "native_kernel.h"
#undef BLK
#undef FN

#undef XGLUE
#undef GLUE
