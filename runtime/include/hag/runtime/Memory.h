//===- Memory.h - process memory settings for compiled code -----*- C++ -*-===//
//
// Compiled entry points allocate their large temporaries (projections,
// levels, prefix sums: hundreds of MiB at N = 16K) with malloc and free them
// before returning. glibc serves blocks of 32 MiB and more with mmap and
// unmaps them on free, so every call page-faults all of its working memory
// in again (measured: 40% of a 16K-token attention layer's time). Raising
// glibc's mmap and trim thresholds keeps freed blocks in the heap for the
// next call. The cost: memory freed by one call stays mapped to the process
// (up to the largest call's working set) until it exits.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_MEMORY_H
#define HAG_RUNTIME_MEMORY_H

namespace hag::rt {

/// Asks glibc malloc to keep large freed blocks for reuse (mmap threshold
/// 1 GiB, trim threshold 2 GiB). Model::open calls it once per process
/// unless the environment sets HAGRT_MALLOC_TUNING=0. Returns true when the
/// settings are in effect (false on other C libraries, or when disabled).
bool retainLargeAllocations();

} // namespace hag::rt

#endif // HAG_RUNTIME_MEMORY_H
