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

// ---- Projection and embedding gradients (training) ----------------------
// The Tensor Core matmul C = A B^T (declared by loadCudaKernelLibrary too;
// defineCudaKernelLaunchers gives it its launching body).
func.func private @hag_matmul_nt(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>)

// dst = src^T, one thread per element of dst (consecutive threads write
// consecutive elements of a row of dst).
func.func private @hag_transpose(%src: memref<?x?xf32>, %dst: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %R = memref.dim %src, %c0 : memref<?x?xf32>
  %Cn = memref.dim %src, %c1 : memref<?x?xf32>
  scf.parallel (%j, %i) = (%c0, %c0) to (%Cn, %R) step (%c1, %c1) {
    %x = memref.load %src[%i, %j] : memref<?x?xf32>
    memref.store %x, %dst[%j, %i] : memref<?x?xf32>
    scf.reduce
  }
  return
}

// C = A B for A [M, K], B [K, N] (a projection's input gradient dx = dy W):
// the Tensor Core kernel on A and B^T.
func.func private @hag_matmul_nn(%A: memref<?x?xf32>, %B: memref<?x?xf32>,
                                 %C: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %K = memref.dim %B, %c0 : memref<?x?xf32>
  %N = memref.dim %B, %c1 : memref<?x?xf32>
  %Bt = memref.alloc(%N, %K) : memref<?x?xf32>
  func.call @hag_transpose(%B, %Bt) : (memref<?x?xf32>, memref<?x?xf32>) -> ()
  func.call @hag_matmul_nt(%A, %Bt, %C) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
  return
}

// C = A^T B for A [M, P], B [M, N] (a projection's weight gradient
// dW = dy^T x, summed over the M rows): the Tensor Core kernel on A^T and
// B^T, so the sum over the rows is its K dimension (f32 accumulation).
func.func private @hag_matmul_tn(%A: memref<?x?xf32>, %B: memref<?x?xf32>,
                                 %C: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %M = memref.dim %A, %c0 : memref<?x?xf32>
  %P = memref.dim %A, %c1 : memref<?x?xf32>
  %N = memref.dim %B, %c1 : memref<?x?xf32>
  %At = memref.alloc(%P, %M) : memref<?x?xf32>
  %Bt = memref.alloc(%N, %M) : memref<?x?xf32>
  func.call @hag_transpose(%A, %At) : (memref<?x?xf32>, memref<?x?xf32>) -> ()
  func.call @hag_transpose(%B, %Bt) : (memref<?x?xf32>, memref<?x?xf32>) -> ()
  func.call @hag_matmul_nt(%At, %Bt, %C) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
  return
}

// The embedding table's gradient: dt = 0, then dt[tokens[b, i], :] +=
// dy[b, i, :] for every position in order. One thread per (table row
// group of 8, feature): it owns its rows' element of that feature and walks
// the positions in order, adding the ones whose token is in its group (no
// two threads add to one element; the CPU kernel's order of additions, so
// the same bits).
func.func private @hag_embedding_backward(%dy: memref<?x?x?xf32>,
    %tokens: memref<?x?xi32>, %dt: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %bt = memref.dim %dy, %c0 : memref<?x?x?xf32>
  %n = memref.dim %dy, %c1 : memref<?x?x?xf32>
  %D = memref.dim %dy, %c2 : memref<?x?x?xf32>
  %V = memref.dim %dt, %c0 : memref<?x?xf32>
  %groups0 = arith.addi %V, %c8 : index
  %groups1 = arith.subi %groups0, %c1 : index
  %groups = arith.divui %groups1, %c8 : index
  scf.parallel (%vg, %f) = (%c0, %c0) to (%groups, %D) step (%c1, %c1) {
    %v0 = arith.muli %vg, %c8 : index
    %v1r = arith.addi %v0, %c8 : index
    %v1 = arith.minui %v1r, %V : index
    scf.for %v = %v0 to %v1 step %c1 {
      memref.store %zero, %dt[%v, %f] : memref<?x?xf32>
    }
    scf.for %b = %c0 to %bt step %c1 {
      scf.for %i = %c0 to %n step %c1 {
        %t = memref.load %tokens[%b, %i] : memref<?x?xi32>
        %row = arith.index_cast %t : i32 to index
        %lo = arith.cmpi uge, %row, %v0 : index
        %hi = arith.cmpi ult, %row, %v1 : index
        %mine = arith.andi %lo, %hi : i1
        scf.if %mine {
          %g = memref.load %dy[%b, %i, %f] : memref<?x?x?xf32>
          %o = memref.load %dt[%row, %f] : memref<?x?xf32>
          %s = arith.addf %o, %g : f32
          memref.store %s, %dt[%row, %f] : memref<?x?xf32>
        }
      }
    }
    scf.reduce
  }
  return
}
