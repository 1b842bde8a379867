// The CUDA kernel library's functions written as parallel loops (the
// bandwidth-bound ones): hag-map-loops-to-gpu maps each outermost
// scf.parallel to a kernel (one thread per iteration). Same names and
// signatures as the CPU library (kernels/*.mlir). Every memref read here is
// in device memory, so all loads are inside the loops.

// The memory gate's epilogue (spec section 2) after the hidden projection
// hidden = x W1^T: g[b, i] = sigmoid((w2 . SiLU(hidden[b, i, :] + b1) + b2)
// * invTau). Declared only: defineCudaKernelLaunchers gives it the body that
// launches CudaGateKernel.cpp's kernel (a warp per row), or in the emulator
// the body that calls @hag_gate_epilogue_loops.
func.func private @hag_gate_epilogue(%hid: memref<?x?x?xf32>,
    %b1: memref<?xf32>, %w2: memref<?xf32>, %b2: memref<?xf32>,
    %invTau: f32, %g: memref<?x?xf32>)
    attributes {hag.emulated_by = @hag_gate_epilogue_loops}

// The same, one thread per row: the emulator's version.
func.func private @hag_gate_epilogue_loops(%hid: memref<?x?x?xf32>,
    %b1: memref<?xf32>, %w2: memref<?xf32>, %b2: memref<?xf32>,
    %invTau: f32, %g: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %bt = memref.dim %hid, %c0 : memref<?x?x?xf32>
  %n = memref.dim %hid, %c1 : memref<?x?x?xf32>
  %dg = memref.dim %hid, %c2 : memref<?x?x?xf32>
  scf.parallel (%b, %i) = (%c0, %c0) to (%bt, %n) step (%c1, %c1) {
    %tot = scf.for %j = %c0 to %dg step %c1 iter_args(%t = %zero) -> (f32) {
      %h = memref.load %hid[%b, %i, %j] : memref<?x?x?xf32>
      %bb = memref.load %b1[%j] : memref<?xf32>
      %ww = memref.load %w2[%j] : memref<?xf32>
      %x = arith.addf %h, %bb : f32
      %nx = arith.negf %x : f32
      %e = math.exp %nx : f32
      %den = arith.addf %one, %e : f32
      %sig = arith.divf %one, %den : f32
      %s = arith.mulf %x, %sig : f32
      %t2 = math.fma %s, %ww, %t : f32
      scf.yield %t2 : f32
    }
    %bias2 = memref.load %b2[%c0] : memref<?xf32>
    %z0 = arith.addf %tot, %bias2 : f32
    %z = arith.mulf %z0, %invTau : f32
    %nz = arith.negf %z : f32
    %ez = math.exp %nz : f32
    %dz = arith.addf %one, %ez : f32
    %gv = arith.divf %one, %dz : f32
    memref.store %gv, %g[%b, %i] : memref<?x?xf32>
    scf.reduce
  }
  return
}
