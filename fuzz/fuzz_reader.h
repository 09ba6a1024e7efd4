/* fuzz_reader.h — reads small integers and floats from a fuzz input (0 when exhausted). */
#ifndef SEGRL_FUZZ_READER_H
#define SEGRL_FUZZ_READER_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fz_reader {
    const uint8_t *p;
    size_t n, i;
} fz_reader;

static inline uint8_t fz_u8(fz_reader *r) { return r->i < r->n ? r->p[r->i++] : 0; }

/* a float that is usually small and ordinary, sometimes NaN, +-Inf, huge or tiny */
static inline float fz_float(fz_reader *r) {
    uint8_t b = fz_u8(r);
    switch (b) {
    case 250: return NAN;
    case 251: return INFINITY;
    case 252: return -INFINITY;
    case 253: return 3.0e38f;
    case 254: return 1e-45f;
    case 255: {
        uint32_t u = (uint32_t)fz_u8(r) | (uint32_t)fz_u8(r) << 8 | (uint32_t)fz_u8(r) << 16 |
                     (uint32_t)fz_u8(r) << 24;
        float f;
        __builtin_memcpy(&f, &u, 4);
        return f;
    }
    default: return ((float)b - 125.0f) / 50.0f;
    }
}

/* an index: usually small, sometimes at the int32/int64 edges */
static inline int64_t fz_index(fz_reader *r) {
    uint8_t b = fz_u8(r);
    switch (b) {
    case 250: return -1;
    case 251: return INT32_MAX;
    case 252: return INT32_MIN;
    case 253: return INT64_MAX;
    case 254: return INT64_MIN;
    case 255: return (int64_t)1 << 40;
    default: return b % 64;
    }
}

#endif
