// The CUDA lowering (hag-pipeline-cuda) of projections and a norm, for
// both architectures: the projections run on the FP16 Tensor Core kernel
// (nvvm.mma.sync m16n8k16 on f16 operand pairs with f32 accumulators, two
// 128 x 40 f16 tiles in shared memory, 256 threads), the norm's loops on
// outlined kernels; the host launches them and keeps its buffers in device
// memory.
// RUN: hag-opt %s --hag-pipeline-hag --hag-pipeline-cuda=chip=sm_80 | FileCheck %s --check-prefixes=CHECK,SM80
// RUN: hag-opt %s --hag-pipeline-hag --hag-pipeline-cuda=chip=sm_90a | FileCheck %s --check-prefixes=CHECK,SM90

// CHECK-LABEL: llvm.func @forward(
// CHECK: llvm.call @hagrt_cuda_alloc
// CHECK: gpu.launch_func @forward_kernel{{(_[0-9]+)?}}::@forward_kernel blocks in
// CHECK: llvm.call @hag_matmul_nt(
// CHECK: llvm.call @hagrt_cuda_free
// CHECK-NOT: llvm.call @malloc

// SM80: gpu.module @forward_kernel [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">]
// SM90: gpu.module @forward_kernel [#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">]
// CHECK: llvm.func @forward_kernel({{.*}}) attributes {gpu.kernel, gpu.known_block_size = array<i32: 256, 1, 1>, nvvm.kernel, nvvm.maxntid = array<i32: 256, 1, 1>}
// Constants are sunk into the kernels before outlining (the block size and
// the norm's 0.0 are immediates, not kernel parameters).
// CHECK-NEXT: llvm.mlir.constant(256 : index) : i64
// CHECK-NEXT: llvm.mlir.constant(0.000000e+00 : f32) : f32

// K % 4 = 0 takes the kernel with 16-byte loads, else the scalar one.
// CHECK-LABEL: llvm.func @hag_matmul_nt(
// CHECK: %[[REM:.+]] = llvm.urem %{{.+}}, %{{.+}} : i64
// CHECK: llvm.icmp "eq" %[[REM]]
// CHECK: gpu.launch_func @hag_cuda_matmul::@hag_matmul_nt_f16_v4 blocks in ({{.+}}) threads in (%{{.+}}, %{{.+}}, %{{.+}}) : i64
// CHECK: gpu.launch_func @hag_cuda_matmul::@hag_matmul_nt_f16 blocks in ({{.+}}) threads in (%{{.+}}, %{{.+}}, %{{.+}}) : i64

// SM80: gpu.module @hag_cuda_matmul [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">]
// SM90: gpu.module @hag_cuda_matmul [#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">]
// CHECK-DAG: llvm.mlir.global internal @__wg_hag_matmul_nt_f16_0() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<5120 x f16>
// CHECK-DAG: llvm.mlir.global internal @__wg_hag_matmul_nt_f16_1() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<5120 x f16>
// CHECK: llvm.func @hag_matmul_nt_f16({{.*}}) attributes {gpu.kernel, gpu.known_block_size = array<i32: 256, 1, 1>, nvvm.kernel, nvvm.maxntid = array<i32: 256, 1, 1>}
// Staging, a barrier, 2 k-steps x 4 x 4 mma tiles, a barrier.
// CHECK: llvm.fptrunc %{{.+}} : f32 to f16
// CHECK: nvvm.barrier0
// CHECK-COUNT-32: nvvm.mma.sync A[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}]  B[%{{.+}}, %{{.+}}]  C[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}]  {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK-NOT: nvvm.mma.sync
// CHECK: nvvm.barrier0
// CHECK: llvm.return
// The same kernel with 16-byte global loads: 4 per operand per slice.
// CHECK: llvm.func @hag_matmul_nt_f16_v4({{.*}}) attributes {gpu.kernel, gpu.known_block_size = array<i32: 256, 1, 1>, nvvm.kernel, nvvm.maxntid = array<i32: 256, 1, 1>}
// CHECK-COUNT-8: llvm.load %{{.+}} {alignment = 16 : i64} : !llvm.ptr -> vector<4xf32>
// CHECK: llvm.fptrunc %{{.+}} : vector<4xf32> to vector<4xf16>
// CHECK: nvvm.barrier0
// CHECK-COUNT-32: nvvm.mma.sync
// CHECK-NOT: nvvm.mma.sync
// CHECK: llvm.return

func.func @forward(%x: tensor<?x?x128xf32>, %norm: tensor<128xf32>,
                   %w: tensor<256x128xf32>) -> tensor<?x?x256xf32> {
  %0 = hag.rms_norm %x, %norm : (tensor<?x?x128xf32>, tensor<128xf32>) -> tensor<?x?x128xf32>
  %1 = hag.linear %0, %w : (tensor<?x?x128xf32>, tensor<256x128xf32>) -> tensor<?x?x256xf32>
  return %1 : tensor<?x?x256xf32>
}
