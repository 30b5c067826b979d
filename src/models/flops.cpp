#include "models/flops.h"

namespace rewardgen {
namespace {
// The active counter of this thread: set only by FlopCountScope (RAII), read by count_flops.
thread_local FlopCounter* active_counter = nullptr;
}  // namespace

FlopCountScope::FlopCountScope(FlopCounter& counter) : previous_(active_counter) { active_counter = &counter; }
FlopCountScope::~FlopCountScope() { active_counter = previous_; }

void count_flops(double flops) {
  if (active_counter != nullptr) active_counter->flops += flops;
}

}  // namespace rewardgen
