// RUN: hag-opt %s -hag-sequential-inner-loops -split-input-file | FileCheck %s

// An elementwise loop nest: the innermost dimension becomes an scf.for
// inside a parallel loop over the others.
// CHECK-LABEL: func.func @elementwise
// CHECK: scf.parallel (%[[I:.+]], %[[J:.+]]) = (%c0, %c0) to (%{{.+}}, %{{.+}}) step (%c1, %c1) {
// CHECK-NEXT: scf.for %[[K:.+]] = %c0 to %{{.+}} step %c1 {
// CHECK-NEXT: %[[X:.+]] = memref.load %{{.+}}[%[[I]], %[[J]], %[[K]]]
// CHECK-NEXT: %[[E:.+]] = math.exp %[[X]]
// CHECK-NEXT: memref.store %[[E]], %{{.+}}[%[[I]], %[[J]], %[[K]]]
// CHECK-NEXT: }
// CHECK-NEXT: scf.reduce
func.func @elementwise(%a: memref<?x?x?xf32>, %b: memref<?x?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %d0 = memref.dim %a, %c0 : memref<?x?x?xf32>
  %d1 = memref.dim %a, %c1 : memref<?x?x?xf32>
  %d2 = memref.dim %a, %c2 : memref<?x?x?xf32>
  scf.parallel (%i, %j, %k) = (%c0, %c0, %c0) to (%d0, %d1, %d2) step (%c1, %c1, %c1) {
    %x = memref.load %a[%i, %j, %k] : memref<?x?x?xf32>
    %e = math.exp %x : f32
    memref.store %e, %b[%i, %j, %k] : memref<?x?x?xf32>
    scf.reduce
  }
  return
}

// -----

// Left alone: one dimension, a body with a call (a kernel's large
// iterations), a body with a nested loop, and a reduction.
// CHECK-LABEL: func.func @untouched
// CHECK: scf.parallel (%{{.+}}) = (%c0) to (%{{.+}}) step (%c1) {
// CHECK-NOT: scf.for
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) = (%c0, %c0) to (%{{.+}}, %{{.+}}) step (%c1, %c1) {
// CHECK-NEXT: func.call @work
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) = (%c0, %c0) to (%{{.+}}, %{{.+}}) step (%c1, %c1) {
// CHECK-NEXT: scf.for
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) = (%c0, %c0) to (%{{.+}}, %{{.+}}) step (%c1, %c1) init (%{{.+}}) -> f32 {
func.func private @work(index, index)
func.func @untouched(%a: memref<?x?xf32>, %n: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %x = memref.load %a[%i, %c0] : memref<?x?xf32>
    memref.store %x, %a[%i, %c1] : memref<?x?xf32>
    scf.reduce
  }
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %n) step (%c1, %c1) {
    func.call @work(%i, %j) : (index, index) -> ()
    scf.reduce
  }
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %n) step (%c1, %c1) {
    scf.for %k = %c0 to %n step %c1 {
      memref.store %zero, %a[%i, %k] : memref<?x?xf32>
    }
    scf.reduce
  }
  %s = scf.parallel (%i, %j) = (%c0, %c0) to (%n, %n) step (%c1, %c1) init (%zero) -> f32 {
    %x = memref.load %a[%i, %j] : memref<?x?xf32>
    scf.reduce(%x : f32) {
    ^bb0(%l: f32, %r: f32):
      %t = arith.addf %l, %r : f32
      scf.reduce.return %t : f32
    }
  }
  return %s : f32
}
