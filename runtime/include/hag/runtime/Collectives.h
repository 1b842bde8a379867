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
// Ranks: world rank = data_index * tensor + tensor_index. The tensor group
// of a rank is the `tensor` consecutive ranks sharing its data index; its
// data group the `data` ranks sharing its tensor index.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_COLLECTIVES_H
#define HAG_RUNTIME_COLLECTIVES_H

#include <cstdint>
#include <string>

namespace hag::rt {

enum class Group : int32_t { Tensor = 0, Data = 1 };

/// "tensor" or "data".
const char *groupName(Group group);

/// The parallel layout of a run: degrees and this process's place in them.
struct ParallelLayout {
  int tensor = 1;
  int data = 1;
  int rank = 0;
  int size() const { return tensor * data; }
  int tensorIndex() const { return rank % tensor; }
  int dataIndex() const { return rank / tensor; }
  int groupSize(Group g) const { return g == Group::Tensor ? tensor : data; }
  int groupIndex(Group g) const {
    return g == Group::Tensor ? tensorIndex() : dataIndex();
  }
  /// "rank 3 (tensor 1 of 2, data 1 of 2)".
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
