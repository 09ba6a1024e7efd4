/* segrl.h — umbrella header: credit assignment for RL on language models.
 * Include this, link segrl::segrl (CMake) or `pkg-config --libs segrl`. */
#ifndef SEGRL_H
#define SEGRL_H

#include "segrl/core.h"
#include "segrl/advantage.h"
#include "segrl/segment.h"
#include "segrl/tree.h"
#include "segrl/reward.h"
#include "segrl/selfreward.h"
#include "segrl/safetensors.h"
#include "segrl/tokenizer.h"
#include "segrl/rollout.h"
#include "segrl/loss.h"
#include "segrl/dist.h" /* its functions live in libsegrl_dist (segrl::segrl_dist) */

#endif /* SEGRL_H */
