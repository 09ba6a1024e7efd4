/* ex.h — everything of segrl_examples_common, the example trainers' shared pieces:
 *   ex_util.h     seedable RNG (xoshiro256**), timers, line reader
 *   ex_config.h   typed config keys, JSON files, command-line overrides; the trainers' keys
 *   ex_data.h     GSM8K / MATH JSONL loaders and final-answer extraction
 *   ex_metrics.h  metrics JSONL, progress line with ETA, gnuplot PNG plots
 *   ex_synth.h    the synthetic GSM8K-format demo dataset
 * These are example-program helpers, not part of libsegrl's API: prefix ex_, no stability
 * promise. Errors use segrl's status codes and segrl_last_error(). */
#ifndef SEGRL_EX_H
#define SEGRL_EX_H

#include "ex_config.h"
#include "ex_data.h"
#include "ex_metrics.h"
#include "ex_synth.h"
#include "ex_util.h"

#endif /* SEGRL_EX_H */
