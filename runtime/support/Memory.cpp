//===- Memory.cpp - process memory settings for compiled code -------------===//

#include "hag/runtime/Memory.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

bool hag::rt::retainLargeAllocations() {
  static std::once_flag once;
  static bool applied = false;
  std::call_once(once, [] {
    const char *env = std::getenv("HAGRT_MALLOC_TUNING");
    if (env && std::strcmp(env, "0") == 0)
      return;
#if defined(__GLIBC__)
    // Setting the thresholds also turns off glibc's dynamic adjustment.
    // The trim threshold is an int: at most 2 GiB stay mapped after a
    // call (a 64K-token attention layer's working set is 1.6 GiB).
    applied = mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 &&
              mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1 &&
              mallopt(M_TOP_PAD, 64 << 20) == 1;
#endif
  });
  return applied;
}
