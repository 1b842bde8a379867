//===- Collectives.h - the collectives behind hag.all_reduce ----*- C++ -*-===//
//
// Compiled code of a parallel artifact (hag-compile with `parallel:`) calls
//
//   extern "C" void hag_all_reduce_f32(float *data, int64_t count,
//                                      int32_t group, int32_t mean);
//
// for every hag.all_reduce (group 0: tensor, 1: data). The runtime defines
// that function; it forwards to the Communicator installed with
// setCommunicator (hag-run installs an MPI one, see Mpi.h). The artifact's
// shared object finds the function in the process that loads it, so a
// program that runs parallel artifacts must export its symbols to shared
// objects (link with -rdynamic; CMake: ENABLE_EXPORTS).
//
// Ranks: world rank = (data_index * pipeline + stage) * tensor +
// tensor_index. A rank's tensor group is the `tensor` consecutive ranks of
// its stage and replica; its data group the `data` ranks of its stage and
// tensor index; its pipeline group the `pipeline` stages of its replica and
// tensor index; its embedding group the first and the last of those stages
// (which both hold tied embeddings).
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_COLLECTIVES_H
#define HAG_RUNTIME_COLLECTIVES_H

#include <cstdint>
#include <string>

namespace hag::rt {

enum class Group : int32_t { Tensor = 0, Data = 1, Pipeline = 2, Embedding = 3 };

/// "tensor", "data", "pipeline" or "embedding".
const char *groupName(Group group);

/// The parallel layout of a run: degrees and this process's place in them.
struct ParallelLayout {
  int tensor = 1;
  int data = 1;
  int pipeline = 1;
  int rank = 0;
  int size() const { return tensor * data * pipeline; }
  int tensorIndex() const { return rank % tensor; }
  int stage() const { return rank / tensor % pipeline; }
  int dataIndex() const { return rank / (tensor * pipeline); }
  /// The world rank at (data index, stage, tensor index).
  int rankAt(int d, int s, int t) const {
    return (d * pipeline + s) * tensor + t;
  }
  int groupSize(Group g) const {
    switch (g) {
    case Group::Tensor:
      return tensor;
    case Group::Data:
      return data;
    case Group::Pipeline:
      return pipeline;
    case Group::Embedding:
      return pipeline > 1 ? 2 : 1;
    }
    return 1;
  }
  /// This rank's index in its group `g` (embedding: 0 on the first stage,
  /// 1 on the last; -1 on the stages between, which are in no such group).
  int groupIndex(Group g) const {
    switch (g) {
    case Group::Tensor:
      return tensorIndex();
    case Group::Data:
      return dataIndex();
    case Group::Pipeline:
      return stage();
    case Group::Embedding:
      return stage() == 0 ? 0 : stage() == pipeline - 1 ? 1 : -1;
    }
    return 0;
  }
  /// The world rank of member `m` of this rank's group `g`.
  int memberRank(Group g, int m) const {
    switch (g) {
    case Group::Tensor:
      return rankAt(dataIndex(), stage(), m);
    case Group::Data:
      return rankAt(m, stage(), tensorIndex());
    case Group::Pipeline:
      return rankAt(dataIndex(), m, tensorIndex());
    case Group::Embedding:
      return rankAt(dataIndex(), m == 0 ? 0 : pipeline - 1, tensorIndex());
    }
    return rank;
  }
  /// "rank 3 (tensor 1 of 2, stage 0 of 2, data 1 of 2)".
  std::string describe() const;
};

/// What compiled code's collectives run on.
class Communicator {
public:
  virtual ~Communicator();
  virtual const ParallelLayout &layout() const = 0;
  /// Sums `count` floats at `data` in place over the ranks of `group`
  /// (divided by the group's size when `mean`). Compiled code cannot take
  /// an error back: a communicator that cannot finish a collective (a rank
  /// died or stopped answering) reports it and ends the whole job.
  virtual void allReduce(float *data, int64_t count, Group group,
                         bool mean) = 0;
};

/// Installs `c` (not owned; null uninstalls) for hag_all_reduce_f32.
void setCommunicator(Communicator *c);
/// The installed communicator, or null.
Communicator *communicator();

} // namespace hag::rt

extern "C" void hag_all_reduce_f32(float *data, int64_t count, int32_t group,
                                   int32_t mean);

#endif // HAG_RUNTIME_COLLECTIVES_H
