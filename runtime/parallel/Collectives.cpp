//===- Collectives.cpp - hag_all_reduce_f32 and the installed communicator -===//

#include "hag/runtime/Collectives.h"
#include "hag/runtime/PipelineSchedule.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace hag::rt {

namespace {
std::atomic<Communicator *> installed{nullptr};
} // namespace

const char *groupName(Group group) {
  switch (group) {
  case Group::Tensor:
    return "tensor";
  case Group::Data:
    return "data";
  case Group::Pipeline:
    return "pipeline";
  case Group::Embedding:
    return "embedding";
  }
  return "?";
}

std::string ParallelLayout::describe() const {
  std::string s = "rank " + std::to_string(rank) + " (tensor " +
                  std::to_string(tensorIndex()) + " of " +
                  std::to_string(tensor);
  if (pipeline > 1)
    s += ", stage " + std::to_string(stage()) + " of " +
         std::to_string(pipeline);
  return s + ", data " + std::to_string(dataIndex()) + " of " +
         std::to_string(data) + ")";
}

Communicator::~Communicator() = default;

std::vector<PipelineWork> oneFOneBSchedule(int64_t stage, int64_t stages,
                                           int64_t microbatches) {
  std::vector<PipelineWork> out;
  int64_t warmup = std::min(stages - stage - 1, microbatches);
  int64_t f = 0, b = 0;
  for (; f < warmup; ++f)
    out.push_back({true, f});
  for (; f < microbatches; ++f, ++b) {
    out.push_back({true, f});
    out.push_back({false, b});
  }
  for (; b < microbatches; ++b)
    out.push_back({false, b});
  return out;
}

void setCommunicator(Communicator *c) { installed.store(c); }

Communicator *communicator() { return installed.load(); }

} // namespace hag::rt

extern "C" __attribute__((visibility("default"))) void
hag_all_reduce_f32(float *data, int64_t count, int32_t group, int32_t mean) {
  hag::rt::Communicator *c = hag::rt::communicator();
  if (!c || group < 0 || group > 3) {
    // Model::run refuses parallel artifacts without a communicator, so this
    // is a program that called the code some other way.
    std::fprintf(stderr,
                 "hag runtime: hag_all_reduce_f32 called %s (group %d); "
                 "aborting\n",
                 c ? "with an unknown group" : "with no communicator installed",
                 static_cast<int>(group));
    std::abort();
  }
  c->allReduce(data, count, static_cast<hag::rt::Group>(group), mean != 0);
}
