// torch/train_impl.hpp — the optimizer behind include/segrl/train.h's opaque handle, shared by
// torch/train.cpp (AdamW, clipping, schedules) and torch/train_checkpoint.cpp (save / load).
#pragma once

#include "internal.hpp"
#include "segrl/train.h"

#include <string>
#include <vector>

struct segrl_optimizer {
    segrl_adamw_config config;
    int64_t steps = 0;              // updates done (t of the AdamW formula)
    std::vector<at::Tensor> params; // references sharing the caller's parameter storage
    std::vector<std::string> names;
    std::vector<at::Tensor> exp_avg, exp_avg_sq; // f32, same shape and device as the parameter
    std::vector<at::Tensor> master; // f32 copy for bf16/f16 parameters when master_weights; else undefined
    std::vector<bool> decay;        // weight decay applies to parameter i
};

namespace segrl_torch {
// schedule value without argument checks (the config was checked at creation)
double lr_at(const segrl_lr_schedule &s, double base, int64_t step);
// "" when the schedule is valid, else the problem ("warmup_steps: must be >= 0")
std::string schedule_problem(const segrl_lr_schedule &s);
}  // namespace segrl_torch
