//===- BenchProcess.cpp - one measurement per forked child ----------------===//
//
// Implements BenchProcess.h with fork, a pipe, poll and waitpid. The child
// never returns into the caller's code: it ends with _exit so no atexit
// handler or static destructor of the parent's libraries runs twice.
//
//===----------------------------------------------------------------------===//

#include "BenchProcess.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

using namespace hag::bench;

//===----------------------------------------------------------------------===//
// Child reports
//===----------------------------------------------------------------------===//

void ChildReport::put(const std::string &key, const std::string &value) {
  std::string line = key + " " + value;
  std::replace(line.begin(), line.end(), '\n', ' ');
  line += '\n';
  const char *p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; // The parent is gone; nothing else to do.
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void ChildReport::put(const std::string &key, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", value);
  put(key, std::string(buf));
}

double ChildOutcome::number(const std::string &key, double fallback) const {
  auto it = values.find(key);
  if (it == values.end())
    return fallback;
  char *end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  return end == it->second.c_str() ? fallback : v;
}

std::string ChildOutcome::shortStatus() const {
  switch (end) {
  case End::Ok:
    return "ok";
  case End::Failed:
    return "error";
  case End::Timeout:
    return "timeout";
  case End::MemoryBudget:
    return "OOM(budget)";
  case End::OomKilled:
    return "OOM";
  case End::Crashed:
    return "crash";
  }
  return "error";
}

//===----------------------------------------------------------------------===//
// Running a child
//===----------------------------------------------------------------------===//

namespace {

/// Parses "key value" lines into `values`.
void parseReport(const std::string &text,
                 std::map<std::string, std::string> &values) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t space = line.find(' ');
    if (space == std::string::npos)
      values[line] = "";
    else
      values[line.substr(0, space)] = line.substr(space + 1);
  }
}

/// Reads what is available on the non-blocking `fd` into `out`; true at EOF.
bool drain(int fd, std::string &out) {
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0)
      return true;
    if (errno == EINTR)
      continue;
    return false; // EAGAIN: nothing more for now.
  }
}

} // namespace

ChildOutcome
hag::bench::runInChild(const std::function<void(ChildReport &)> &body,
                       double timeoutSeconds, int64_t memoryBudgetBytes) {
  ChildOutcome outcome;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    outcome.message = std::string("pipe: ") + std::strerror(errno);
    return outcome;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  double start = nowSeconds();
  pid_t pid = ::fork();
  if (pid < 0) {
    outcome.message = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return outcome;
  }
  if (pid == 0) {
    ::close(fds[0]);
    ChildReport report(fds[1]);
    int code = 0;
    try {
      body(report);
    } catch (const std::exception &e) {
      report.put("error", e.what());
      code = 1;
    } catch (...) {
      report.put("error", "unknown exception");
      code = 1;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(code);
  }

  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  std::string text;
  bool eof = false, reaped = false, killedForTime = false,
       killedForMemory = false;
  int status = 0;
  const std::string pidText = std::to_string(pid);
  while (!reaped) {
    if (!eof) {
      struct pollfd pfd = {fds[0], POLLIN, 0};
      ::poll(&pfd, 1, 50);
      eof = drain(fds[0], text);
    } else {
      ::usleep(50 * 1000);
    }
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      reaped = true;
      break;
    }
    int64_t rss = procStatusBytes(pidText, "VmRSS");
    outcome.polledPeakRss = std::max(outcome.polledPeakRss, rss);
    if (killedForTime || killedForMemory)
      continue;
    if (memoryBudgetBytes > 0 && rss > memoryBudgetBytes) {
      killedForMemory = true;
      ::kill(pid, SIGKILL);
    } else if (nowSeconds() - start > timeoutSeconds) {
      killedForTime = true;
      ::kill(pid, SIGKILL);
    }
  }
  if (!eof) {
    // The child is gone, so the pipe ends; wait for its last bytes.
    ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) & ~O_NONBLOCK);
    drain(fds[0], text);
  }
  ::close(fds[0]);
  outcome.wallSeconds = nowSeconds() - start;
  parseReport(text, outcome.values);

  if (killedForMemory) {
    outcome.end = ChildOutcome::End::MemoryBudget;
    outcome.message = "resident memory passed the budget of " +
                      std::to_string(memoryBudgetBytes >> 20) + " MiB";
  } else if (killedForTime) {
    outcome.end = ChildOutcome::End::Timeout;
    outcome.message =
        "no result after " + std::to_string(int(timeoutSeconds)) + " s";
  } else if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    outcome.end = sig == SIGKILL ? ChildOutcome::End::OomKilled
                                 : ChildOutcome::End::Crashed;
    outcome.message = sig == SIGKILL
                          ? "killed by SIGKILL (the kernel's OOM killer)"
                          : std::string("died of signal ") + strsignal(sig);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
             outcome.values.count("status") &&
             outcome.values["status"] == "ok") {
    outcome.end = ChildOutcome::End::Ok;
  } else {
    outcome.end = ChildOutcome::End::Failed;
    auto it = outcome.values.find("error");
    outcome.message =
        it != outcome.values.end()
            ? it->second
            : "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  return outcome;
}

int hag::bench::runProgram(const std::vector<std::string> &argv) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    std::vector<char *> args;
    for (const std::string &a : argv)
      args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

int64_t hag::bench::procStatusBytes(const std::string &pid,
                                    const std::string &field) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  const std::string prefix = field + ":";
  while (std::getline(in, line)) {
    if (line.compare(0, prefix.size(), prefix) != 0)
      continue;
    long long kib = -1;
    if (std::sscanf(line.c_str() + prefix.size(), "%lld", &kib) != 1)
      return -1;
    return static_cast<int64_t>(kib) * 1024;
  }
  return -1;
}

bool hag::bench::resetPeakRss() {
  int fd = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool ok = ::write(fd, "5", 1) == 1;
  ::close(fd);
  return ok;
}

int64_t hag::bench::memTotalBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  long long kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemTotal:")
      return static_cast<int64_t>(kib) * 1024;
  }
  return -1;
}

//===----------------------------------------------------------------------===//
// Timing and statistics
//===----------------------------------------------------------------------===//

double hag::bench::nowSeconds() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

std::vector<double> hag::bench::timeRepeated(const std::function<void()> &fn,
                                             const RepeatPolicy &policy) {
  fn(); // Warm-up: first-touch page faults, thread pools, caches.
  std::vector<double> times;
  double total = 0.0;
  while (static_cast<int>(times.size()) < policy.maxReps &&
         (static_cast<int>(times.size()) < policy.minReps ||
          total < policy.minSeconds)) {
    double t0 = nowSeconds();
    fn();
    double dt = nowSeconds() - t0;
    times.push_back(dt);
    total += dt;
  }
  return times;
}

double hag::bench::median(std::vector<double> v) {
  if (v.empty())
    return NAN;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double hag::bench::fitExponent(const std::vector<double> &x,
                               const std::vector<double> &y) {
  size_t n = std::min(x.size(), y.size());
  if (n < 2)
    return NAN;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < n; ++i) {
    double lx = std::log(x[i]), ly = std::log(y[i]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  double denom = n * sxx - sx * sx;
  return denom == 0.0 ? NAN : (n * sxy - sx * sy) / denom;
}

//===----------------------------------------------------------------------===//
// Inputs
//===----------------------------------------------------------------------===//

void hag::bench::fillStandardNormal(float *out, int64_t count, uint64_t seed) {
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  auto next = [&state]() {
    // splitmix64.
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const double twoPi = 6.283185307179586476925286766559;
  for (int64_t i = 0; i < count; i += 2) {
    double u1 = (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53;
    double u2 = static_cast<double>(next() >> 11) * 0x1.0p-53;
    double r = std::sqrt(-2.0 * std::log(u1));
    out[i] = static_cast<float>(r * std::cos(twoPi * u2));
    if (i + 1 < count)
      out[i + 1] = static_cast<float>(r * std::sin(twoPi * u2));
  }
}
