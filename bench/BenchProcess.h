//===- BenchProcess.h - one measurement per forked child --------*- C++ -*-===//
//
// The benchmark measures every (method, N) in its own forked child so that
// peak memory is per method and a method that runs out of memory, crashes or
// hangs becomes a line in the table instead of ending the benchmark. The
// parent watches each child: a wall-clock timeout and a resident-memory
// budget (it polls /proc/<pid>/status), and it tells a SIGKILL it did not
// send (the OOM killer) from one it sent.
//
// A child reports "key value" lines through a pipe (ChildReport); the parent
// gets them back as a map (ChildOutcome).
//
//===----------------------------------------------------------------------===//

#ifndef HAG_BENCH_BENCHPROCESS_H
#define HAG_BENCH_BENCHPROCESS_H

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace hag::bench {

/// What a child sends back: "key value" lines written straight to the pipe
/// (no stdio buffering, so nothing is lost when the child calls _exit).
class ChildReport {
public:
  explicit ChildReport(int fd) : fd(fd) {}
  void put(const std::string &key, const std::string &value);
  void put(const std::string &key, double value);

private:
  int fd;
};

/// How a child ended.
struct ChildOutcome {
  enum class End {
    /// Exited with status 0 and reported "ok".
    Ok,
    /// Reported an error (or exited non-zero); `message` says why.
    Failed,
    /// Killed by the parent after `timeoutSeconds`.
    Timeout,
    /// Killed by the parent when its resident memory passed the budget.
    MemoryBudget,
    /// Killed by SIGKILL the parent did not send: the kernel's OOM killer.
    OomKilled,
    /// Died of another signal (a crash).
    Crashed
  };
  End end = End::Failed;
  std::string message;
  /// Every "key value" line the child reported (the last value of a key).
  std::map<std::string, std::string> values;
  /// The largest VmRSS the parent saw while polling (bytes).
  int64_t polledPeakRss = 0;
  double wallSeconds = 0.0;

  bool ok() const { return end == End::Ok; }
  /// The value of `key` as a number, or `fallback`.
  double number(const std::string &key, double fallback = -1.0) const;
  /// A short word for the table: "timeout", "OOM", "crash", "error".
  std::string shortStatus() const;
};

/// Forks, runs `body` in the child (which must put("status", "ok") when it
/// succeeds; an exception becomes an error report) and waits for it under
/// the given limits. `memoryBudgetBytes` <= 0 turns the budget off.
ChildOutcome runInChild(const std::function<void(ChildReport &)> &body,
                        double timeoutSeconds, int64_t memoryBudgetBytes);

/// Runs `argv` (argv[0] a path) to completion; returns its exit status, or
/// -1 when it could not start or died of a signal.
int runProgram(const std::vector<std::string> &argv);

//===----------------------------------------------------------------------===//
// Memory of the calling process
//===----------------------------------------------------------------------===//

/// A "Vm*:" field of /proc/<pid>/status in bytes ("self" for this process),
/// or -1.
int64_t procStatusBytes(const std::string &pid, const std::string &field);

/// Resets this process's peak resident size (VmHWM) to its current resident
/// size (writes 5 to /proc/self/clear_refs). False when the kernel refuses.
bool resetPeakRss();

/// MemTotal of /proc/meminfo in bytes, or -1.
int64_t memTotalBytes();

//===----------------------------------------------------------------------===//
// Timing and statistics
//===----------------------------------------------------------------------===//

/// Seconds on a monotonic clock.
double nowSeconds();

/// Repetition policy: one warm-up run, then at least `minReps` runs and at
/// least `minSeconds` of timed runs, at most `maxReps` runs.
struct RepeatPolicy {
  int minReps = 3;
  double minSeconds = 1.0;
  int maxReps = 100;
};

/// Times `fn` under `policy`; returns the seconds of each timed run.
std::vector<double> timeRepeated(const std::function<void()> &fn,
                                 const RepeatPolicy &policy);

/// The median of `v` (the mean of the two middle values for an even count).
double median(std::vector<double> v);

/// The least-squares slope of log(y) against log(x) (the scaling exponent
/// of y ~ x^e); NaN with fewer than two points.
double fitExponent(const std::vector<double> &x, const std::vector<double> &y);

//===----------------------------------------------------------------------===//
// Inputs
//===----------------------------------------------------------------------===//

/// `count` samples of N(0, 1), the same for the same `seed` in every process
/// (splitmix64 and Box-Muller; no library generator, so the HAG child and
/// the LibTorch children see identical inputs).
void fillStandardNormal(float *out, int64_t count, uint64_t seed);

} // namespace hag::bench

#endif // HAG_BENCH_BENCHPROCESS_H
