// RUN: hag-opt %s --hag-map-loops-to-gpu --canonicalize | FileCheck %s
// RUN: hag-opt %s --hag-map-loops-to-gpu=emulate=true --canonicalize | FileCheck %s --check-prefix=EMU

// A training step's host logic on device scalars that no kernel can take
// over (the values leave the function): the all-finite flag (an i1, a byte
// in memory), a [1] buffer and an index are read back through the runtime
// at their address (aligned pointer + offset * element bytes). The
// emulator's buffers are host memory: it keeps its loads.
// CHECK-LABEL: func.func @step
// CHECK: %[[P:.+]] = memref.extract_aligned_pointer_as_index %arg0 : memref<i1> -> index
// CHECK: %[[A:.+]] = arith.index_cast %[[P]] : index to i64
// CHECK: %[[B:.+]] = call @hagrt_cuda_read_i8(%[[A]]) : (i64) -> i8
// CHECK: %[[F:.+]] = arith.cmpi ne, %[[B]], %c0_i8 : i8
// CHECK: %[[X:.+]] = call @hagrt_cuda_read_f32(%{{.+}}) : (i64) -> f32
// CHECK: %[[K:.+]] = call @hagrt_cuda_read_i64(%{{.+}}) : (i64) -> i64
// CHECK: %[[KI:.+]] = arith.index_cast %[[K]] : i64 to index
// CHECK: %[[Y:.+]] = arith.select %[[F]], %[[X]], %cst : f32
// CHECK: return %[[Y]], %[[KI]] : f32, index
// EMU-LABEL: func.func @step
// EMU-COUNT-3: memref.load
// EMU-NOT: hagrt_cuda_read
func.func @step(%flag: memref<i1>, %norm: memref<1xf32>, %n: memref<index>) -> (f32, index) {
  %c0 = arith.constant 0 : index
  %f = memref.load %flag[] : memref<i1>
  %x = memref.load %norm[%c0] : memref<1xf32>
  %k = memref.load %n[] : memref<index>
  %zero = arith.constant 0.0 : f32
  %y = arith.select %f, %x, %zero : f32
  return %y, %k : f32, index
}

// A scalar the host only stores back to device memory stays out of the
// host: a one-thread kernel loads, adds and stores it.
// CHECK-LABEL: func.func @count
// CHECK-NOT: hagrt_cuda_read
// CHECK: gpu.launch
// CHECK: memref.load %arg0[]
// CHECK: memref.store
// The runtime's functions, declared once.
// CHECK-DAG: func.func private @hagrt_cuda_read_i8(i64) -> i8
// CHECK-DAG: func.func private @hagrt_cuda_read_f32(i64) -> f32
// CHECK-DAG: func.func private @hagrt_cuda_read_i64(i64) -> i64
func.func @count(%n: memref<i64>) {
  %one = arith.constant 1 : i64
  %k = memref.load %n[] : memref<i64>
  %k1 = arith.addi %k, %one : i64
  memref.store %k1, %n[] : memref<i64>
  return
}
