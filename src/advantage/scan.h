/* scan.h — the CPU driver for backward scans over sequences (GAE, discounted returns).
 *
 * A backward recurrence has one dependency chain per sequence (A_t needs A_{t+1}), so one row at
 * a time runs at the latency of a multiply-add per token. The driver walks four sequences in
 * lockstep from their ends, giving the core four independent chains, then finishes the longer
 * ones alone. Chunks of SG_CHUNK steps keep each row's mask converted to 0/1 bytes on the stack.
 * Results are bit-identical to walking one row at a time: each row sees the same operations in the
 * same order. */
#ifndef SEGRL_SCAN_H
#define SEGRL_SCAN_H

#include "seq.h"

#define SG_LANES 4

/* Processes `len` steps of `nrows` rows (SG_LANES in lockstep, or 1): row i's chunk is slots
 * [pos[i], pos[i] + len) of sequence b[i], walked backwards, with its mask chunk m[i] and its
 * carried state st[i] (two floats, zero at each sequence's end). */
typedef void (*sg_chunk_fn)(const sg_geom *g, const void *ctx, int nrows, const int64_t *b,
                            const int64_t *pos, int64_t len, const uint8_t *const *m,
                            float (*st)[2]);

void sg_scan_rows(const sg_geom *g, sg_tok mask, sg_chunk_fn fn, const void *ctx);

#endif /* SEGRL_SCAN_H */
