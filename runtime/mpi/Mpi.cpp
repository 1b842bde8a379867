//===- Mpi.cpp - collectives over MPI --------------------------------------===//
//
// Every collective is non-blocking underneath (MPI_Iallreduce) and is
// waited for with a deadline. Alongside it each rank sends the others its
// collective's sequence number ("I arrived"), so a rank whose wait times
// out knows which ranks never arrived and can say so before ending the job.
//
//===----------------------------------------------------------------------===//

#include "hag/runtime/Mpi.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>

namespace hag::rt::mpi {

namespace {

constexpr int kArrivalTag = 7301;

std::string mpiError(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return "MPI error " + std::to_string(code);
  return std::string(text, length);
}

std::string formatCount(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<size_t>(i), ",");
  return s;
}

} // namespace

bool launchedByMpi() {
  for (const char *v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                        "MPI_LOCALNRANKS"})
    if (std::getenv(v))
      return true;
  return false;
}

Status initialize(int &worldSize, int &worldRank) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
      return Status::error("MPI_Init failed: " + mpiError(rc));
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_size(MPI_COMM_WORLD, &worldSize);
  MPI_Comm_rank(MPI_COMM_WORLD, &worldRank);
  return Status::success();
}

void finalize() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized)
    MPI_Finalize();
}

void abortJob(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized)
    MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

struct MpiCommunicator::Impl {
  MPI_Comm comms[4] = {MPI_COMM_NULL, MPI_COMM_NULL, MPI_COMM_NULL,
                       MPI_COMM_NULL};
  int64_t sequence[4] = {0, 0, 0, 0};
  /// Sends started by send() and not yet known to be complete.
  std::vector<MPI_Request> sends;
  std::vector<std::vector<uint8_t>> sendBuffers;
  MPI_Comm comm(Group g) const { return comms[static_cast<int>(g)]; }
  ~Impl() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
      return;
    for (MPI_Comm &c : comms)
      if (c != MPI_COMM_NULL)
        MPI_Comm_free(&c);
  }
};

Result<std::unique_ptr<MpiCommunicator>>
MpiCommunicator::create(const ParallelLayout &layout, double timeoutSeconds) {
  int size = 0, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (size != layout.size() || rank != layout.rank)
    return Status::error("the parallel layout (" +
                         std::to_string(layout.size()) +
                         " ranks) does not match the MPI job (" +
                         std::to_string(size) + " processes)");
  std::unique_ptr<MpiCommunicator> c(new MpiCommunicator());
  c->impl = std::make_unique<Impl>();
  c->place = layout;
  c->timeoutSeconds = timeoutSeconds;
  // color: what the group's members share; key: the member's index.
  const int d = layout.dataIndex(), s = layout.stage(),
            t = layout.tensorIndex(), P = layout.pipeline,
            T = layout.tensor;
  struct Split {
    Group group;
    int color, key;
  } splits[] = {
      {Group::Tensor, d * P + s, t},
      {Group::Data, s * T + t, d},
      {Group::Pipeline, d * T + t, s},
      // Stages between the first and the last are in no embedding group.
      {Group::Embedding,
       layout.groupIndex(Group::Embedding) < 0 ? MPI_UNDEFINED : d * T + t,
       layout.groupIndex(Group::Embedding)},
  };
  for (const Split &sp : splits) {
    MPI_Comm &out = c->impl->comms[static_cast<int>(sp.group)];
    int rc = MPI_Comm_split(MPI_COMM_WORLD, sp.color, std::max(sp.key, 0),
                            &out);
    if (rc != MPI_SUCCESS)
      return Status::error("MPI_Comm_split failed: " + mpiError(rc));
    if (out != MPI_COMM_NULL)
      MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN);
  }
  return c;
}

MpiCommunicator::~MpiCommunicator() = default;

namespace {

enum class Wait { Done, TimedOut, Failed };

/// Waits for every request of `requests` (completed ones become
/// MPI_REQUEST_NULL), at most `timeoutSeconds`. Spins briefly (the
/// collectives of a step follow each other closely), then backs off so that
/// a waiting rank leaves the cores to the others.
Wait waitWithDeadline(std::vector<MPI_Request> &requests,
                      double timeoutSeconds) {
  using Clock = std::chrono::steady_clock;
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(timeoutSeconds));
  int idle = 0;
  for (;;) {
    bool open = false;
    for (MPI_Request &r : requests) {
      if (r == MPI_REQUEST_NULL)
        continue;
      int done = 0;
      if (MPI_Test(&r, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return Wait::Failed;
      open |= !done;
    }
    if (!open)
      return Wait::Done;
    if (Clock::now() > deadline)
      return Wait::TimedOut;
    if (++idle > 200)
      std::this_thread::sleep_for(
          std::chrono::microseconds(std::min(1000, 10 * (idle - 200))));
  }
}

/// Runs one collective of `group` that `start` begins (appending its
/// non-blocking requests on `comm`), waiting at most `timeoutSeconds`. Alongside, each
/// rank sends the others the collective's sequence number, so that a rank
/// whose wait times out can name the ranks that never arrived; it then
/// ends the job.
void runCollective(const ParallelLayout &place, Group group, MPI_Comm comm,
                   int64_t number, const char *what, int64_t count,
                   double timeoutSeconds,
                   const std::function<int(std::vector<MPI_Request> &)> &start) {
  const int members = place.groupSize(group);
  const int me = place.groupIndex(group);
  // The world rank of member `m` of this rank's group.
  auto worldRank = [&](int m) { return place.memberRank(group, m); };
  auto fail = [&](const std::string &why) {
    std::fprintf(stderr,
                 "hag-run: error: %s: %s #%lld over the %s group (%s "
                 "elements) %s; ending the job\n",
                 place.describe().c_str(), what, static_cast<long long>(number),
                 groupName(group), formatCount(count).c_str(), why.c_str());
    abortJob(3);
  };

  // Arrival notes: "I reached collective #number".
  long long sent = number;
  std::vector<long long> arrived(static_cast<size_t>(members), -1);
  std::vector<MPI_Request> notes;
  std::vector<int> noteFrom;
  for (int m = 0; m < members; ++m) {
    if (m == me)
      continue;
    MPI_Request r;
    MPI_Isend(&sent, 1, MPI_LONG_LONG, m, kArrivalTag, comm, &r);
    notes.push_back(r);
    noteFrom.push_back(-1);
    MPI_Irecv(&arrived[static_cast<size_t>(m)], 1, MPI_LONG_LONG, m,
              kArrivalTag, comm, &r);
    notes.push_back(r);
    noteFrom.push_back(m);
  }
  // The collective's own requests follow the notes'; one wait for all.
  if (int rc = start(notes); rc != MPI_SUCCESS)
    fail("could not start: " + mpiError(rc));
  switch (waitWithDeadline(notes, timeoutSeconds)) {
  case Wait::Done:
    break;
  case Wait::Failed:
    fail("failed in MPI");
    break;
  case Wait::TimedOut: {
    std::string missing;
    for (size_t i = 0; i < noteFrom.size(); ++i)
      if (noteFrom[i] >= 0 && notes[i] != MPI_REQUEST_NULL)
        missing += (missing.empty() ? "" : ", ") +
                   std::to_string(worldRank(noteFrom[i]));
    char why[512];
    if (!missing.empty())
      std::snprintf(why, sizeof(why),
                    "timed out after %g s: rank %s never reached it (it "
                    "died, hangs, or runs something else)",
                    timeoutSeconds, missing.c_str());
    else
      std::snprintf(why, sizeof(why),
                    "timed out after %g s although every rank reached it "
                    "(a rank stopped answering during it)",
                    timeoutSeconds);
    fail(why);
  }
  }
  for (size_t i = 0; i < noteFrom.size(); ++i)
    if (noteFrom[i] >= 0 &&
        arrived[static_cast<size_t>(noteFrom[i])] != number)
      fail("found rank " + std::to_string(worldRank(noteFrom[i])) + " at #" +
           std::to_string(arrived[static_cast<size_t>(noteFrom[i])]) +
           ": the ranks run different programs");
}

} // namespace

void MpiCommunicator::allReduce(float *data, int64_t count, Group group,
                                bool mean) {
  const int members = place.groupSize(group);
  if (members == 1)
    return;
  MPI_Comm comm = impl->comm(group);
  const int64_t number = ++impl->sequence[static_cast<int>(group)];
  runCollective(place, group, comm, number, "all_reduce", count,
                timeoutSeconds, [&](std::vector<MPI_Request> &work) {
                  // In pieces MPI's int counts can hold.
                  for (int64_t at = 0; at < count; at += INT_MAX / 2) {
                    int n = static_cast<int>(
                        std::min<int64_t>(count - at, INT_MAX / 2));
                    MPI_Request r;
                    int rc = MPI_Iallreduce(MPI_IN_PLACE, data + at, n,
                                            MPI_FLOAT, MPI_SUM, comm, &r);
                    if (rc != MPI_SUCCESS)
                      return rc;
                    work.push_back(r);
                  }
                  return MPI_SUCCESS;
                });
  if (mean) {
    const float scale = 1.0f / static_cast<float>(members);
    for (int64_t i = 0; i < count; ++i)
      data[i] *= scale;
  }
}

Status MpiCommunicator::gather(const void *send, size_t bytes, void *receive,
                               Group group) {
  const int members = place.groupSize(group);
  if (members == 1) {
    std::memcpy(receive, send, bytes);
    return Status::success();
  }
  if (bytes > static_cast<size_t>(INT_MAX))
    return Status::error("a slice of " + std::to_string(bytes) +
                         " bytes is too large to gather");
  MPI_Comm comm = impl->comm(group);
  const int64_t number = ++impl->sequence[static_cast<int>(group)];
  runCollective(place, group, comm, number, "gather",
                static_cast<int64_t>(bytes), timeoutSeconds,
                [&](std::vector<MPI_Request> &work) {
                  MPI_Request r;
                  int rc = MPI_Igather(send, static_cast<int>(bytes), MPI_BYTE,
                                       receive, static_cast<int>(bytes),
                                       MPI_BYTE, 0, comm, &r);
                  if (rc == MPI_SUCCESS)
                    work.push_back(r);
                  return rc;
                });
  return Status::success();
}

namespace {
constexpr int kDataTag = 7302;
} // namespace

void MpiCommunicator::send(const void *data, size_t bytes, Group group,
                           int to) {
  if (bytes > static_cast<size_t>(INT_MAX)) {
    std::fprintf(stderr, "hag-run: error: %s: a message of %zu bytes is too "
                         "large\n",
                 place.describe().c_str(), bytes);
    abortJob(3);
  }
  // The buffer is kept until the send completes (waitSends).
  impl->sendBuffers.emplace_back(static_cast<const uint8_t *>(data),
                                 static_cast<const uint8_t *>(data) + bytes);
  MPI_Request r;
  int rc = MPI_Isend(impl->sendBuffers.back().data(), static_cast<int>(bytes),
                     MPI_BYTE, to, kDataTag, impl->comm(group), &r);
  if (rc != MPI_SUCCESS) {
    std::fprintf(stderr, "hag-run: error: %s: sending to rank %d failed: "
                         "%s\n",
                 place.describe().c_str(), place.memberRank(group, to),
                 mpiError(rc).c_str());
    abortJob(3);
  }
  impl->sends.push_back(r);
}

void MpiCommunicator::receive(void *data, size_t bytes, Group group,
                              int from, const char *what) {
  MPI_Request r;
  int rc = MPI_Irecv(data, static_cast<int>(bytes), MPI_BYTE, from, kDataTag,
                     impl->comm(group), &r);
  std::vector<MPI_Request> one = {r};
  Wait waited = rc == MPI_SUCCESS ? waitWithDeadline(one, timeoutSeconds)
                                  : Wait::Failed;
  if (waited != Wait::Done) {
    char why[256];
    if (rc != MPI_SUCCESS)
      std::snprintf(why, sizeof(why), "failed: %s", mpiError(rc).c_str());
    else if (waited == Wait::Failed)
      std::snprintf(why, sizeof(why), "failed in MPI");
    else
      std::snprintf(why, sizeof(why),
                    "timed out after %g s (it died, hangs, or runs something "
                    "else)",
                    timeoutSeconds);
    std::fprintf(stderr,
                 "hag-run: error: %s: receiving %s from rank %d %s; ending "
                 "the job\n",
                 place.describe().c_str(), what, place.memberRank(group, from),
                 why);
    abortJob(3);
  }
}

void MpiCommunicator::waitSends() {
  if (waitWithDeadline(impl->sends, timeoutSeconds) != Wait::Done) {
    std::fprintf(stderr,
                 "hag-run: error: %s: a send was not received within %g s "
                 "(the receiving rank died, hangs, or runs something "
                 "else); ending the job\n",
                 place.describe().c_str(), timeoutSeconds);
    abortJob(3);
  }
  impl->sends.clear();
  impl->sendBuffers.clear();
}

Status MpiCommunicator::checkSame(
    const std::vector<std::pair<std::string, uint64_t>> &items,
    const std::vector<std::pair<std::string, uint64_t>> &perDataGroup) {
  const int size = place.size();
  auto compare = [&](const std::vector<std::pair<std::string, uint64_t>> &list,
                     MPI_Comm comm, int members,
                     auto rankOf) -> Status {
    if (list.empty() || members == 1)
      return Status::success();
    std::vector<unsigned long long> mine, all;
    for (const auto &item : list)
      mine.push_back(item.second);
    all.resize(mine.size() * static_cast<size_t>(members));
    int rc = MPI_Allgather(mine.data(), static_cast<int>(mine.size()),
                           MPI_UNSIGNED_LONG_LONG, all.data(),
                           static_cast<int>(mine.size()),
                           MPI_UNSIGNED_LONG_LONG, comm);
    if (rc != MPI_SUCCESS)
      return Status::error("the start-up check failed in MPI: " +
                           mpiError(rc));
    for (int m = 1; m < members; ++m)
      for (size_t i = 0; i < list.size(); ++i)
        if (all[static_cast<size_t>(m) * list.size() + i] != all[i])
          return Status::error("rank " + std::to_string(rankOf(m)) + "'s " +
                               list[i].first + " differs from rank " +
                               std::to_string(rankOf(0)) +
                               "'s: every rank must run the same artifact, "
                               "configuration and weights");
    return Status::success();
  };
  Status s = compare(items, MPI_COMM_WORLD, size, [](int m) { return m; });
  // Every rank must hear about a difference in any data group, so the
  // outcome is agreed on over the world.
  Status g = s.ok() ? compare(perDataGroup, impl->comm(Group::Data),
                              place.data,
                              [&](int m) {
                                return place.memberRank(Group::Data, m);
                              })
                    : Status::success();
  int64_t failedHere = g.ok() ? 0 : 1;
  if (maxOverWorld(failedHere) != 0 && g.ok())
    return Status::error("another tensor rank's data group found ranks whose " +
                         (perDataGroup.empty() ? std::string("state")
                                               : perDataGroup[0].first) +
                         " differ");
  return s.ok() ? g : s;
}

int64_t MpiCommunicator::maxOverWorld(int64_t value) {
  long long in = value, out = value;
  MPI_Allreduce(&in, &out, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

} // namespace hag::rt::mpi
