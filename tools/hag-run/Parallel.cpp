//===- Parallel.cpp - hag-run under mpirun ---------------------------------===//

#include "Parallel.h"

#include "hag/runtime/Artifact.h"

#include "hag/runtime/CudaSession.h"
#include "hag/runtime/Nccl.h"

#ifdef HAG_HAVE_MPI
#include "hag/runtime/Mpi.h"
#endif

#include <cstdio>
#include <map>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

using namespace hag::rt;

namespace hag::run {

namespace {

struct ProcessState {
  bool mpi = false; ///< MPI initialised (a job of more than one process)
  int rank = 0;
  int size = 1;
  ParallelLayout layout;
  double timeout = 60.0;
#ifdef HAG_HAVE_MPI
  std::unique_ptr<mpi::MpiCommunicator> comm;
  std::unique_ptr<Communicator> device; ///< NCCL, for CUDA artifacts
#endif
};

ProcessState &state() {
  static ProcessState s;
  return s;
}

/// FNV-1a 64 of `size` bytes at `data`, continuing from `h`.
uint64_t fnv(const void *data, size_t size, uint64_t h = kFnv1a64Basis) {
  return fnv1a64(static_cast<const uint8_t *>(data), size, h);
}

uint64_t fingerprint(const TensorMap &tensors) {
  uint64_t h = kFnv1a64Basis;
  for (const auto &[name, t] : tensors) {
    h = fnv(name.data(), name.size(), h);
    h = fnv(t.shape.data(), t.shape.size() * sizeof(int64_t), h);
    h = fnv(t.data.data(), t.data.size(), h);
  }
  return h;
}

double timeoutFromEnvironment() {
  if (const char *t = std::getenv("HAG_COLLECTIVE_TIMEOUT")) {
    char *end = nullptr;
    double v = std::strtod(t, &end);
    if (end != t && *end == '\0' && v > 0)
      return v;
  }
  return 60.0;
}

} // namespace

int worldRank() { return state().rank; }
int worldSize() { return state().size; }
ParallelLayout parallelLayout() { return state().layout; }
double collectiveTimeout() { return state().timeout; }

#ifdef HAG_HAVE_MPI
mpi::MpiCommunicator *mpiCommunicator() { return state().comm.get(); }
#endif

std::string enterParallelProcess(RunOptions &options, std::FILE *&out) {
#ifdef HAG_HAVE_MPI
  if (!mpi::launchedByMpi())
    return "";
  ProcessState &s = state();
  if (Status st = mpi::initialize(s.size, s.rank); !st.ok())
    return st.message();
  s.mpi = true;
  if (s.size == 1)
    return "";
  // Share the cores of a machine among its ranks.
  if (!std::getenv("OMP_NUM_THREADS")) {
    int local = 1;
    if (const char *l = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE"))
      local = std::max(1, std::atoi(l));
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    int threads = std::max(1, static_cast<int>(cores) / local);
    ::setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
  }
  setErrorPrefix("rank " + std::to_string(s.rank) + ": ");
  if (s.rank != 0) {
    options.quiet = true;
    static std::FILE *nowhere = std::fopen("/dev/null", "w");
    if (nowhere)
      out = nowhere;
  }
  return "";
#else
  (void)options;
  (void)out;
  return "";
#endif
}

int leaveParallelProcess(int code) {
#ifdef HAG_HAVE_MPI
  ProcessState &s = state();
  if (!s.mpi)
    return code;
  if (code != kExitOk && s.size > 1)
    mpi::abortJob(code);
  setCommunicator(nullptr);
  s.comm.reset();
  mpi::finalize();
#endif
  return code;
}

Status startParallel(Model &model, const RunOptions &options) {
  const ParallelFacts &p = model.artifact().manifest().parallel;
  ProcessState &s = state();
  s.timeout = options.collectiveTimeout ? *options.collectiveTimeout
                                        : timeoutFromEnvironment();
  const std::string name = model.artifact().source();
  if (!p.parallel()) {
    if (s.size > 1)
      return Status::error(
          name + " is not a parallel artifact (compiled without a "
                 "'parallel:' split), but mpirun started " +
          std::to_string(s.size) +
          " processes: run it without mpirun (or with -np 1)");
    return Status::success();
  }
  std::string split = "tensor " + std::to_string(p.tensor) +
                      (p.pipeline > 1
                           ? " x pipeline " + std::to_string(p.pipeline)
                           : std::string()) +
                      " x data " + std::to_string(p.data) + " = " +
                      std::to_string(p.ranks()) + " ranks";
#ifdef HAG_HAVE_MPI
  if (!s.mpi)
    return Status::error(name + " is split for " + split +
                         ": run it with mpirun -np " +
                         std::to_string(p.ranks()) + " hag-run ...");
  if (s.size != p.ranks())
    return Status::error(name + " is split for " + split + ", but mpirun "
                         "started " + std::to_string(s.size) +
                         " processes: use mpirun -np " +
                         std::to_string(p.ranks()));
  s.layout.tensor = static_cast<int>(p.tensor);
  s.layout.data = static_cast<int>(p.data);
  s.layout.pipeline = static_cast<int>(p.pipeline);
  s.layout.rank = s.rank;
  Result<std::unique_ptr<mpi::MpiCommunicator>> comm =
      mpi::MpiCommunicator::create(s.layout, s.timeout);
  if (!comm.ok())
    return comm.status();
  s.comm = std::move(*comm);
  setCommunicator(s.comm.get());
  if (p.pipeline > 1)
    if (Status st = model.selectEntries("stage" +
                                        std::to_string(s.layout.stage()) +
                                        "_");
        !st.ok())
      return st;
  return model.setTensorRank(s.layout.tensorIndex());
#else
  return Status::error(name + " is split for " + split +
                       ", but this hag-run was built without MPI (install "
                       "libopenmpi-dev and rebuild)");
#endif
}

#ifdef HAG_HAVE_MPI
namespace {

/// The compiled code's all-reduces on device memory, through NCCL on the
/// CUDA session's stream. A failure (an asynchronous NCCL error, or a
/// rank that never arrives within the timeout) ends the job with a line
/// naming the rank and the collective, like the MPI communicator.
class NcclCommunicator : public Communicator {
public:
  NcclCommunicator(const ParallelLayout &layout, nccl::Library library,
                   double timeout)
      : place(layout), library(std::move(library)), timeout(timeout) {}

  const ParallelLayout &layout() const override { return place; }

  void allReduce(float *data, int64_t count, Group group, bool mean) override {
    auto it = comms.find(group);
    if (it == comms.end())
      return; // a group of one: the sum (and the mean) is the data
    Status s = it->second.allReduce(data, count, mean, cuda::Session::stream(),
                                    timeout);
    if (s.ok())
      return;
    std::fprintf(stderr, "hag-run: error: %s: %s\n", place.describe().c_str(),
                 s.message().c_str());
    std::fflush(stderr);
    mpi::abortJob(1);
  }

  ParallelLayout place;
  nccl::Library library;
  double timeout;
  std::map<Group, nccl::Comm> comms;
};

} // namespace
#endif

Status startDeviceCollectives() {
#ifdef HAG_HAVE_MPI
  ProcessState &s = state();
  if (!s.comm || s.layout.size() == 1)
    return Status::success();
  Result<nccl::Library> lib = nccl::Library::load();
  if (!lib.ok())
    return lib.status();
  auto device =
      std::make_unique<NcclCommunicator>(s.layout, std::move(*lib), s.timeout);
  // Every rank goes through the groups in the same order, so each group's
  // members make its communicator together.
  for (Group g : {Group::Tensor, Group::Data, Group::Embedding}) {
    int size = s.layout.groupSize(g), index = s.layout.groupIndex(g);
    if (size <= 1 || index < 0)
      continue;
    nccl::UniqueId id{};
    if (index == 0) {
      Result<nccl::UniqueId> made = device->library.uniqueId();
      if (!made.ok())
        return made.status();
      id = *made;
      for (int m = 1; m < size; ++m)
        s.comm->send(&id, sizeof(id), g, m);
      s.comm->waitSends();
    } else {
      s.comm->receive(&id, sizeof(id), g, 0, "the NCCL unique id");
    }
    Result<nccl::Comm> comm = nccl::Comm::create(
        device->library, size, id, index, std::string(groupName(g)) + " group");
    if (!comm.ok())
      return comm.status();
    device->comms.emplace(g, std::move(*comm));
  }
  s.device = std::move(device);
  setCommunicator(s.device.get());
#endif
  return Status::success();
}

Status checkParallelStart(const Model &model, const std::string &settings,
                          const TensorMap *stateTensors) {
#ifdef HAG_HAVE_MPI
  ProcessState &s = state();
  if (!s.comm)
    return Status::success();
  const std::string &manifest = model.artifact().manifestText();
  std::vector<std::pair<std::string, uint64_t>> world = {
      {"artifact (" + model.artifact().source() + ")",
       fnv(manifest.data(), manifest.size())},
      {"settings (command line and data)",
       fnv(settings.data(), settings.size())}};
  std::vector<std::pair<std::string, uint64_t>> group = {
      {stateTensors ? "training state" : "weights",
       fingerprint(stateTensors ? *stateTensors : model.weights())}};
  return s.comm->checkSame(world, group);
#else
  (void)model;
  (void)settings;
  (void)stateTensors;
  return Status::success();
#endif
}

Result<TensorMap> gatherWhole(const std::vector<TensorSpec> &specs,
                              const TensorMap &local) {
  TensorMap out = local;
#ifdef HAG_HAVE_MPI
  ProcessState &s = state();
  if (!s.comm || s.layout.tensor == 1)
    return out;
  const bool root = s.layout.tensorIndex() == 0;
  for (const TensorSpec &spec : specs) {
    if (spec.shardParts <= 1 || spec.shardDim < 0)
      continue;
    auto it = local.find(spec.name);
    if (it == local.end())
      return Status::error("no tensor '" + spec.name + "' to gather");
    const HostTensor &slice = it->second;
    const size_t bytes = slice.data.size();
    std::vector<uint8_t> all(root ? bytes * static_cast<size_t>(spec.shardParts)
                                  : 0);
    if (Status g = s.comm->gather(slice.data.data(), bytes,
                                  root ? all.data() : nullptr, Group::Tensor);
        !g.ok())
      return g;
    if (!root)
      continue;
    // Slice p of rank p goes to [p * n, (p + 1) * n) along the dimension.
    std::vector<int64_t> shape = slice.shape;
    const size_t dim = static_cast<size_t>(spec.shardDim);
    int64_t outer = 1, inner = 1;
    for (size_t d = 0; d < dim; ++d)
      outer *= shape[d];
    for (size_t d = dim + 1; d < shape.size(); ++d)
      inner *= shape[d];
    const size_t chunk =
        static_cast<size_t>(shape[dim] * inner) * dtypeSize(slice.dtype);
    shape[dim] *= spec.shardParts;
    Result<HostTensor> whole = HostTensor::zeros(slice.dtype, shape);
    if (!whole.ok())
      return whole.status();
    for (int64_t p = 0; p < spec.shardParts; ++p)
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(whole->data.data() +
                        (static_cast<size_t>(o * spec.shardParts + p)) * chunk,
                    all.data() + static_cast<size_t>(p) * bytes +
                        static_cast<size_t>(o) * chunk,
                    chunk);
    out[spec.name] = std::move(*whole);
  }
#else
  (void)specs;
#endif
  return out;
}

} // namespace hag::run
