//===- Mpi.h - collectives over MPI (library hagrt_mpi) ---------*- C++ -*-===//
//
// The Communicator hag-run uses under mpirun (OpenMPI from Debian): one
// process per rank, on one machine or across machines with a hostfile.
// hagrt itself does not depend on MPI; this part is the separate library
// hagrt_mpi, built when CMake finds MPI.
//
// Faults: every collective waits at most `timeoutSeconds`. Each rank tells
// the others when it reaches a collective, so when one times out the
// message names the ranks that never reached it; the job then ends
// (MPI_Abort), on every rank. A rank that dies is noticed by mpirun, which
// ends the others.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_MPI_H
#define HAG_RUNTIME_MPI_H

#include "hag/runtime/Collectives.h"
#include "hag/runtime/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hag::rt::mpi {

/// True when this process was started by mpirun (or another MPI launcher).
bool launchedByMpi();

/// MPI_Init (once); `worldSize` and `worldRank` get the job's.
Status initialize(int &worldSize, int &worldRank);

/// MPI_Finalize, after a successful run (every rank must call it).
void finalize();

/// Ends the whole job with `code` (MPI_Abort): what a rank does after an
/// error, so that no other rank waits for it.
[[noreturn]] void abortJob(int code);

/// Collectives over MPI_COMM_WORLD split into tensor and data groups.
class MpiCommunicator : public Communicator {
public:
  /// `layout.rank` must be this process's world rank and `layout.size()`
  /// the world size (after initialize()).
  static Result<std::unique_ptr<MpiCommunicator>>
  create(const ParallelLayout &layout, double timeoutSeconds);
  ~MpiCommunicator() override;

  const ParallelLayout &layout() const override { return place; }
  void allReduce(float *data, int64_t count, Group group,
                 bool mean) override;

  /// Gathers `bytes` bytes from every rank of `group` into `receive` of
  /// the group's first rank (its members' slices in order; `receive` may
  /// be null elsewhere). Ends the job on a timeout, like allReduce.
  Status gather(const void *send, size_t bytes, void *receive, Group group);

  /// Point to point within `group` (member indices): send() copies
  /// `bytes` and returns at once (waitSends() waits for every send);
  /// receive() waits for the message, at most the timeout, and otherwise
  /// names the sender and ends the job. `what` names the message.
  void send(const void *data, size_t bytes, Group group, int to);
  void receive(void *data, size_t bytes, Group group, int from,
               const char *what);
  void waitSends();

  /// Start-up check that every rank runs the same thing: `items` are
  /// (what, fingerprint) pairs that must agree over the whole world, and
  /// `perDataGroup` ones that must agree within each data group (e.g. a
  /// weight shard, which differs between tensor ranks). On any difference
  /// every rank gets the same error naming the first rank and item that
  /// differ from rank 0's (resp. the group's first rank's).
  Status checkSame(
      const std::vector<std::pair<std::string, uint64_t>> &items,
      const std::vector<std::pair<std::string, uint64_t>> &perDataGroup);

  /// The largest of `value` over all ranks (e.g. a status code, so every
  /// rank learns that one failed).
  int64_t maxOverWorld(int64_t value);

  /// Seconds a collective may wait.
  double timeout() const { return timeoutSeconds; }

private:
  MpiCommunicator() = default;
  struct Impl;
  std::unique_ptr<Impl> impl;
  ParallelLayout place;
  double timeoutSeconds = 60.0;
};

} // namespace hag::rt::mpi

#endif // HAG_RUNTIME_MPI_H
