# -*- Python -*-
import os
import shutil

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "HAG"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".yaml", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.hag_obj_root, "test")
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py",
                   "Unit", "README.md"]

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%examples", os.path.join(config.hag_src_root, "examples")))
config.substitutions.append(("%python", "python3"))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

tool_dirs = [config.hag_tools_dir, config.llvm_tools_dir]
tools = ["hag-opt", "hag-compile", "hag-run", "hag-embed-example", "not", "split-file", "count"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.with_environment("PATH", config.hag_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

# CUDA: "ptxas" where the toolkit HAG was configured with has ptxas and
# fatbinary (hag-compile --target=cuda assembles the kernels); "cuda" only
# where a GPU is usable (an NVIDIA driver and a device: nvidia-smi -L lists
# one). Tests that run kernels carry REQUIRES: cuda and are reported as
# unsupported elsewhere.
toolkit = config.hag_cuda_toolkit
if toolkit and all(os.access(os.path.join(toolkit, "bin", t), os.X_OK)
                   for t in ("ptxas", "fatbinary")):
    config.available_features.add("ptxas")
    config.substitutions.append(("%cuda_toolkit", toolkit))
if shutil.which("nvidia-smi"):
    import subprocess
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True,
                                text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        listed = ""
    if "GPU 0" in listed:
        config.available_features.add("cuda")
        if "GPU 1" in listed:
            config.available_features.add("cuda-multi")
        # The architecture to compile the GPU tests for: sm_90a on 9.0
        # (H100/H200), sm_80 on the other 8.x and later devices.
        try:
            cap = subprocess.run(
                ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader",
                 "-i", "0"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            cap = ""
        config.substitutions.append(("%gpu_arch", "sm_90a" if cap == "9.0" else "sm_80"))

# Multi-process tests: hag-run built with MPI and mpirun present. Several
# processes on one machine share its cores; --oversubscribe lets them run on
# fewer cores than ranks, and root may run them (CI runs as root).
if config.hag_have_mpi and shutil.which("mpirun"):
    config.available_features.add("mpi")
    config.substitutions.append(
        ("%mpirun", "mpirun --allow-run-as-root --oversubscribe --bind-to none "
                    "--mca btl self,vader -x OMP_NUM_THREADS=1"))

# AMX tiles with bf16 products on this CPU (Sapphire Rapids and later): the
# artifacts hag-compile builds for it run the projections on AMX.
try:
    with open("/proc/cpuinfo") as cpuinfo:
        flags = set()
        for line in cpuinfo:
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
    if {"amx_tile", "amx_bf16"} <= flags:
        config.available_features.add("amx")
except OSError:
    pass
