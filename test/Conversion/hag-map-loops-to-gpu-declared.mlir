// Kernels the library declares with hag.emulated_by: the emulator gives the
// declaration a body that calls the named loop version; a name the module
// does not define is an error, not a crash.
// RUN: hag-opt %s --split-input-file --hag-map-loops-to-gpu=emulate=true -verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func private @hag_gate_epilogue(
// CHECK: call @hag_gate_epilogue_loops(
// CHECK-LABEL: func.func private @hag_gate_epilogue_loops(
// CHECK: scf.for
func.func private @hag_gate_epilogue(%hid: memref<?x?x?xf32>,
    %b1: memref<?xf32>, %w2: memref<?xf32>, %b2: memref<?xf32>,
    %invTau: f32, %g: memref<?x?xf32>)
    attributes {hag.emulated_by = @hag_gate_epilogue_loops}
func.func private @hag_gate_epilogue_loops(%hid: memref<?x?x?xf32>,
    %b1: memref<?xf32>, %w2: memref<?xf32>, %b2: memref<?xf32>,
    %invTau: f32, %g: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %g, %c1 : memref<?x?xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %invTau, %g[%c0, %i] : memref<?x?xf32>
    scf.reduce
  }
  return
}
func.func @forward(%hid: memref<?x?x?xf32>, %b1: memref<?xf32>,
    %w2: memref<?xf32>, %b2: memref<?xf32>, %g: memref<?x?xf32>) {
  %t = arith.constant 10.0 : f32
  func.call @hag_gate_epilogue(%hid, %b1, %w2, %b2, %t, %g)
      : (memref<?x?x?xf32>, memref<?xf32>, memref<?xf32>, memref<?xf32>, f32, memref<?x?xf32>) -> ()
  return
}

// -----

// expected-error @+1 {{hag.emulated_by names @nowhere, which the module does not define}}
func.func private @hag_gate_epilogue(%hid: memref<?x?x?xf32>,
    %b1: memref<?xf32>, %w2: memref<?xf32>, %b2: memref<?xf32>,
    %invTau: f32, %g: memref<?x?xf32>)
    attributes {hag.emulated_by = @nowhere}
