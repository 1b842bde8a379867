//===- Parallel.h - hag-run under mpirun -------------------------*- C++ -*-===//
//
// One hag-run process per rank (`mpirun -np P hag-run ARTIFACT ...`): the
// MPI set-up, the communicator behind the artifact's hag.all_reduce, the
// start-up check that every rank runs the same thing, and which rank
// prints. Without MPI in the build, parallel artifacts are refused with a
// clear message.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_TOOLS_HAGRUN_PARALLEL_H
#define HAG_TOOLS_HAGRUN_PARALLEL_H

#include "HagRun.h"

#include "hag/runtime/Collectives.h"
#include "hag/runtime/Model.h"
#include "hag/runtime/Status.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hag::run {

/// Called first by hagRunMain: when mpirun started this process with others,
/// initialises MPI, gives each rank a share of the cores (OMP_NUM_THREADS,
/// unless set), and silences every rank but 0 (`out` goes nowhere,
/// options.quiet). Returns an error message, or "".
std::string enterParallelProcess(RunOptions &options, std::FILE *&out);

/// Called last by hagRunMain with the exit code: MPI_Finalize after
/// success; after a failure, ends the whole job (MPI_Abort) so that no
/// other rank waits for this one. Returns the exit code.
int leaveParallelProcess(int code);

/// This process's world rank and size (0 and 1 outside mpirun).
int worldRank();
int worldSize();

/// After Model::open: checks that the job's size matches the artifact's
/// split (or that a non-parallel artifact runs in one process), installs
/// the communicator and selects the model's tensor rank. No-op for a
/// non-parallel artifact in one process.
rt::Status startParallel(rt::Model &model, const RunOptions &options);

/// On a parallel run of a CUDA artifact (after the CUDA session started):
/// one NCCL communicator per parallel group this rank is in (tensor, data,
/// and the first and last stage's embedding group), from a unique id the
/// group's first rank sends over MPI; the compiled code's all-reduces then
/// run through NCCL on device memory (each waited for at most the
/// collective timeout). A no-op for single-process runs.
rt::Status startDeviceCollectives();

#ifdef HAG_HAVE_MPI
} // namespace hag::run
namespace hag::rt::mpi {
class MpiCommunicator;
} // namespace hag::rt::mpi
namespace hag::run {
/// The MPI communicator of the job (null outside one).
rt::mpi::MpiCommunicator *mpiCommunicator();
#endif

/// Seconds a collective waits (see RunOptions::collectiveTimeout).
double collectiveTimeout();

/// The layout of the running job (tensor 1, data 1, rank 0 outside one).
rt::ParallelLayout parallelLayout();

/// After the weights are bound: every rank must run the same artifact and
/// settings (`settings`: a description of what must agree) and, within a
/// data group, the same weights and state (`state`, may be empty to use
/// the model's bound weights). No-op outside a parallel job.
rt::Status checkParallelStart(const rt::Model &model,
                              const std::string &settings,
                              const rt::TensorMap *state = nullptr);

/// The whole tensors of `local` (a tensor-parallel rank's slices of the
/// sharded `specs`; other tensors are the same on every rank): gathered
/// over the tensor group and assembled on its first rank. On the other
/// ranks, and outside a tensor-parallel job, `local` comes back as is.
rt::Result<rt::TensorMap> gatherWhole(const std::vector<rt::TensorSpec> &specs,
                                      const rt::TensorMap &local);

} // namespace hag::run

#endif // HAG_TOOLS_HAGRUN_PARALLEL_H
