// RUN: hag-opt %s --hag-map-loops-to-gpu --canonicalize | FileCheck %s
// RUN: hag-opt %s --hag-map-loops-to-gpu=block-size=128 --canonicalize | FileCheck %s --check-prefix=B128
// RUN: not hag-opt %s --hag-map-loops-to-gpu=block-size=2048 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: hag-opt %s --hag-map-loops-to-gpu=emulate=true --canonicalize | FileCheck %s --check-prefix=EMU

// The emulator: the grid as a parallel loop over blocks, each block's
// threads in order, the same linear index and guard.
// EMU-LABEL: func.func @scale
// EMU-NOT: gpu.launch
// EMU: scf.parallel (%[[BX:.+]]) = (%c0) to (%{{.+}}) step (%c1)
// EMU-NEXT: scf.for %[[TX:.+]] = %c0 to %c256 step %c1
// EMU-NEXT: %[[BASE:.+]] = arith.muli %[[BX]], %c256
// EMU-NEXT: %[[LIN:.+]] = arith.addi %[[BASE]], %[[TX]]
// EMU-NEXT: %[[IN:.+]] = arith.cmpi ult, %[[LIN]], %{{.+}}
// EMU-NEXT: scf.if %[[IN]]

// BAD: hag-map-loops-to-gpu: block-size 2048 is not in [1, 1024]

memref.global "private" constant @table : memref<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>

// A 2-D parallel loop: one index over rows x columns, 256 per block, the
// column (contiguous) index fastest; out-of-range threads do nothing; no
// launch for an empty iteration space; the global is read in the kernel.
// CHECK-LABEL: func.func @scale
// CHECK-DAG: %[[C255:.+]] = arith.constant 255 : index
// CHECK-DAG: %[[C256:.+]] = arith.constant 256 : index
// CHECK-DAG: %[[ROWS:.+]] = arith.maxsi %dim,
// CHECK-DAG: %[[COLS:.+]] = arith.maxsi %dim_0,
// CHECK: %[[N:.+]] = arith.muli %[[ROWS]], %[[COLS]]
// CHECK: %[[ANY:.+]] = arith.cmpi ugt, %[[N]], %c0
// CHECK: scf.if %[[ANY]] {
// CHECK: %[[UP:.+]] = arith.addi %[[N]], %[[C255]]
// CHECK: %[[BLOCKS:.+]] = arith.divui %[[UP]], %[[C256]]
// CHECK: gpu.launch blocks(%[[BX:.+]], %{{.+}}, %{{.+}}) in (%{{.+}} = %[[BLOCKS]], %{{.+}} = %c1, %{{.+}} = %c1) threads(%[[TX:.+]], %{{.+}}, %{{.+}}) in (%{{.+}} = %[[C256]], %{{.+}} = %c1, %{{.+}} = %c1)
// CHECK-NEXT: %[[T:.+]] = memref.get_global @table
// CHECK: %[[BASE:.+]] = arith.muli %[[BX]], %[[C256]]
// CHECK: %[[LIN:.+]] = arith.addi %[[BASE]], %[[TX]]
// CHECK: %[[IN:.+]] = arith.cmpi ult, %[[LIN]], %[[N]]
// CHECK: scf.if %[[IN]] {
// CHECK: %[[COL:.+]] = arith.remui %[[LIN]], %[[COLS]]
// CHECK: %[[ROW:.+]] = arith.divui %[[LIN]], %[[COLS]]
// CHECK: %[[V:.+]] = memref.load %arg0[%[[ROW]], %[[COL]]]
// CHECK: memref.load %[[T]][%c3]
// CHECK: memref.store %{{.+}}, %arg1[%[[ROW]], %[[COL]]]
// CHECK: gpu.terminator
// CHECK-NOT: scf.parallel
// B128-LABEL: func.func @scale
// B128: gpu.launch {{.*}} threads({{.*}}) in (%{{.+}} = %c128,
func.func @scale(%x: memref<?x?xf32>, %y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %t = memref.get_global @table : memref<4xf32>
  %m = memref.dim %x, %c0 : memref<?x?xf32>
  %n = memref.dim %x, %c1 : memref<?x?xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%m, %n) step (%c1, %c1) {
    %v = memref.load %x[%i, %j] : memref<?x?xf32>
    %s = memref.load %t[%c3] : memref<4xf32>
    %w = arith.mulf %v, %s : f32
    memref.store %w, %y[%i, %j] : memref<?x?xf32>
    scf.reduce
  }
  return
}

// A copy becomes a kernel over the target's elements.
// CHECK-LABEL: func.func @copy
// CHECK-NOT: memref.copy
// CHECK: gpu.launch
// CHECK: %[[C:.+]] = arith.remui %{{.+}}, %c8
// CHECK: %[[R:.+]] = arith.divui %{{.+}}, %c8
// CHECK: %[[X:.+]] = memref.load %arg0[%[[R]], %[[C]]]
// CHECK: memref.store %[[X]], %arg1[%[[R]], %[[C]]]
func.func @copy(%a: memref<?x8xf32>, %b: memref<?x8xf32>) {
  memref.copy %a, %b : memref<?x8xf32> to memref<?x8xf32>
  return
}

// A 0-d op: its load and arithmetic move into the one-thread kernel with
// its store; the host keeps nothing that reads device memory.
// CHECK-LABEL: func.func @scalar
// CHECK: gpu.launch blocks({{.*}}) in (%{{.+}} = %c1, %{{.+}} = %c1, %{{.+}} = %c1) threads({{.*}}) in (%{{.+}} = %c1, %{{.+}} = %c1, %{{.+}} = %c1)
// CHECK-NEXT: %[[L:.+]] = memref.load %arg0[]
// CHECK-NEXT: %[[D:.+]] = arith.divf %[[L]], %arg2
// CHECK-NEXT: memref.store %[[D]], %arg1[]
// CHECK-NEXT: gpu.terminator
// CHECK-NEXT: }
// CHECK-NEXT: return
func.func @scalar(%x: memref<f32>, %y: memref<f32>, %n: f32) {
  %v = memref.load %x[] : memref<f32>
  %d = arith.divf %v, %n : f32
  memref.store %d, %y[] : memref<f32>
  return
}

// A full reduction's loop nest (no parallel loop) runs as one thread.
// CHECK-LABEL: func.func @total
// CHECK: gpu.launch blocks({{.*}}) in (%{{.+}} = %c1, %{{.+}} = %c1, %{{.+}} = %c1) threads({{.*}}) in (%{{.+}} = %c1, %{{.+}} = %c1, %{{.+}} = %c1)
// CHECK-NEXT: memref.dim
// CHECK-NEXT: scf.for
// CHECK: memref.store
func.func @total(%x: memref<?xf32>, %out: memref<f32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %x, %c0 : memref<?xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %x[%i] : memref<?xf32>
    %s = memref.load %out[] : memref<f32>
    %r = arith.addf %s, %v : f32
    memref.store %r, %out[] : memref<f32>
  }
  return
}
