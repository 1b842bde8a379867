// Matrix multiply with a transposed right operand, C = A B^T, the shape of
// every projection (nn.Linear weights are [out, in]): A [M, K], B [N, K],
// C [M, N], all f32, row-major.
//
// For 4 rows and more, B is transposed once per call (in parallel) into Bt
// [K, N] so that the inner loop reads contiguous rows of Bt
// (@hag_matmul_nt_bt takes a given Bt). Blocked for the caches (Goto-style):
// a parallel task owns 264 rows of C; for each 64-column panel and each
// 128-deep slice of K, the task packs the Bt slice into a contiguous 32 KiB
// buffer that stays in L1 while the task's 6 x 64 register tiles sweep it:
// per k, 4 loads of the slice, 6 broadcasts of A and 24 FMAs in 24
// vector<16xf32> accumulators (of the 32 AVX-512 registers); the task's A
// rows (528 KiB) stay in L2 across panels.
// Partial sums go through C between K slices. Columns past the last full
// 64-column panel take scalar loops; rows past the last full 4-row tile
// (all of them below 4 rows: decoding) take vector dot products on A and B.
func.func private @hag_matmul_nt(%A: memref<?x?xf32>, %B: memref<?x?xf32>,
                                 %C: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cR = arith.constant 4 : index
  %M = memref.dim %A, %c0 : memref<?x?xf32>
  %K = memref.dim %A, %c1 : memref<?x?xf32>
  %N = memref.dim %B, %c0 : memref<?x?xf32>
  %mFull0 = arith.divui %M, %cR : index
  %mFull = arith.muli %mFull0, %cR : index
  %anyTile = arith.cmpi ugt, %mFull, %c0 : index
  scf.if %anyTile {
    %Bt = memref.alloc(%K, %N) : memref<?x?xf32>
    func.call @hag_transpose(%B, %Bt) : (memref<?x?xf32>, memref<?x?xf32>) -> ()
    func.call @hag_matmul_nt_bt(%A, %B, %Bt, %C, %N)
        : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
  } else {
    // No 4-row tile (decoding): Bt is not read.
    func.call @hag_matmul_nt_bt(%A, %B, %B, %C, %N)
        : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
  }
  return
}

// One task of @hag_matmul_nt_bt: rows [ib, ie) of C (a multiple of 4 rows),
// N the columns of C and nFull the columns in full 64-column panels. Never
// inlined: its 32 KiB pack buffer is a plain stack slot of this call.
// Register tiles of 6 rows x 64 columns (24 accumulators; per k 4 loads of
// the packed slice, 6 broadcasts of A, 24 FMAs: 0.42 loads per FMA against
// 0.5 for 4 x 64, measured ~10-18% faster in isolation on this machine),
// then one 4-row and one 2-row tile for the rows left.
func.func private @hag_matmul_rows(%A: memref<?x?xf32>, %Bt: memref<?x?xf32>,
                                   %C: memref<?x?xf32>, %ib: index,
                                   %ie: index, %N: index, %nFull: index)
    attributes {no_inline} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cR2 = arith.constant 2 : index
  %cR4 = arith.constant 4 : index
  %cR6 = arith.constant 6 : index
  %cT = arith.constant 64 : index
  %cKC = arith.constant 128 : index
  %o0 = arith.constant 0 : index
  %o1 = arith.constant 1 : index
  %o2 = arith.constant 2 : index
  %o3 = arith.constant 3 : index
  %o4 = arith.constant 4 : index
  %o5 = arith.constant 5 : index
  %o16 = arith.constant 16 : index
  %o32 = arith.constant 32 : index
  %o48 = arith.constant 48 : index
  %zero = arith.constant 0.0 : f32
  %zv = arith.constant dense<0.0> : vector<16xf32>
  %K = memref.dim %A, %c1 : memref<?x?xf32>
  // Rows [ib, e6) in 6-row tiles, [e6, e4) in a 4-row tile, [e4, ie) in a
  // 2-row tile (ie - ib is a multiple of 4, so what is left is even).
  %rows = arith.subi %ie, %ib : index
  %n6a = arith.divui %rows, %cR6 : index
  %n6 = arith.muli %n6a, %cR6 : index
  %e6 = arith.addi %ib, %n6 : index
  %left = arith.subi %ie, %e6 : index
  %n4a = arith.divui %left, %cR4 : index
  %n4 = arith.muli %n4a, %cR4 : index
  %e4 = arith.addi %e6, %n4 : index
  // The task's packed copy of one [KC, 64] slice of a Bt panel.
  %Bp = memref.alloca() : memref<128x64xf32>
  scf.for %j0 = %c0 to %nFull step %cT {
    %col0 = arith.addi %j0, %o0 : index
    %col1 = arith.addi %j0, %o16 : index
    %col2 = arith.addi %j0, %o32 : index
    %col3 = arith.addi %j0, %o48 : index
    scf.for %k0 = %c0 to %K step %cKC {
      %k1r = arith.addi %k0, %cKC : index
      %k1 = arith.minui %k1r, %K : index
      %first = arith.cmpi eq, %k0, %c0 : index
      // Pack Bt[k0 .. k1, j0 .. j0 + 64] contiguously: Bt's rows are N
      // floats apart (2 KiB for N = 512), so the slice's 128 rows fall
      // into a few L1 sets and evict each other; packed, the 32 KiB
      // slice stays in L1 while the row tiles sweep it.
      scf.for %kp = %k0 to %k1 step %c1 {
        %kr = arith.subi %kp, %k0 : index
        %p0 = vector.load %Bt[%kp, %col0] : memref<?x?xf32>, vector<16xf32>
        %p1 = vector.load %Bt[%kp, %col1] : memref<?x?xf32>, vector<16xf32>
        %p2 = vector.load %Bt[%kp, %col2] : memref<?x?xf32>, vector<16xf32>
        %p3 = vector.load %Bt[%kp, %col3] : memref<?x?xf32>, vector<16xf32>
        vector.store %p0, %Bp[%kr, %o0] : memref<128x64xf32>, vector<16xf32>
        vector.store %p1, %Bp[%kr, %o16] : memref<128x64xf32>, vector<16xf32>
        vector.store %p2, %Bp[%kr, %o32] : memref<128x64xf32>, vector<16xf32>
        vector.store %p3, %Bp[%kr, %o48] : memref<128x64xf32>, vector<16xf32>
      }
      scf.for %i0 = %ib to %e6 step %cR6 {
        %row0 = arith.addi %i0, %o0 : index
        %row1 = arith.addi %i0, %o1 : index
        %row2 = arith.addi %i0, %o2 : index
        %row3 = arith.addi %i0, %o3 : index
        %row4 = arith.addi %i0, %o4 : index
        %row5 = arith.addi %i0, %o5 : index
        %init:24 = scf.if %first -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
          scf.yield %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
        } else {
          %l0_0 = vector.load %C[%row0, %col0] : memref<?x?xf32>, vector<16xf32>
          %l0_1 = vector.load %C[%row0, %col1] : memref<?x?xf32>, vector<16xf32>
          %l0_2 = vector.load %C[%row0, %col2] : memref<?x?xf32>, vector<16xf32>
          %l0_3 = vector.load %C[%row0, %col3] : memref<?x?xf32>, vector<16xf32>
          %l1_0 = vector.load %C[%row1, %col0] : memref<?x?xf32>, vector<16xf32>
          %l1_1 = vector.load %C[%row1, %col1] : memref<?x?xf32>, vector<16xf32>
          %l1_2 = vector.load %C[%row1, %col2] : memref<?x?xf32>, vector<16xf32>
          %l1_3 = vector.load %C[%row1, %col3] : memref<?x?xf32>, vector<16xf32>
          %l2_0 = vector.load %C[%row2, %col0] : memref<?x?xf32>, vector<16xf32>
          %l2_1 = vector.load %C[%row2, %col1] : memref<?x?xf32>, vector<16xf32>
          %l2_2 = vector.load %C[%row2, %col2] : memref<?x?xf32>, vector<16xf32>
          %l2_3 = vector.load %C[%row2, %col3] : memref<?x?xf32>, vector<16xf32>
          %l3_0 = vector.load %C[%row3, %col0] : memref<?x?xf32>, vector<16xf32>
          %l3_1 = vector.load %C[%row3, %col1] : memref<?x?xf32>, vector<16xf32>
          %l3_2 = vector.load %C[%row3, %col2] : memref<?x?xf32>, vector<16xf32>
          %l3_3 = vector.load %C[%row3, %col3] : memref<?x?xf32>, vector<16xf32>
          %l4_0 = vector.load %C[%row4, %col0] : memref<?x?xf32>, vector<16xf32>
          %l4_1 = vector.load %C[%row4, %col1] : memref<?x?xf32>, vector<16xf32>
          %l4_2 = vector.load %C[%row4, %col2] : memref<?x?xf32>, vector<16xf32>
          %l4_3 = vector.load %C[%row4, %col3] : memref<?x?xf32>, vector<16xf32>
          %l5_0 = vector.load %C[%row5, %col0] : memref<?x?xf32>, vector<16xf32>
          %l5_1 = vector.load %C[%row5, %col1] : memref<?x?xf32>, vector<16xf32>
          %l5_2 = vector.load %C[%row5, %col2] : memref<?x?xf32>, vector<16xf32>
          %l5_3 = vector.load %C[%row5, %col3] : memref<?x?xf32>, vector<16xf32>
          scf.yield %l0_0, %l0_1, %l0_2, %l0_3, %l1_0, %l1_1, %l1_2, %l1_3, %l2_0, %l2_1, %l2_2, %l2_3, %l3_0, %l3_1, %l3_2, %l3_3, %l4_0, %l4_1, %l4_2, %l4_3, %l5_0, %l5_1, %l5_2, %l5_3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
        }
        %res:24 = scf.for %k = %k0 to %k1 step %c1 iter_args(%a0_0 = %init#0, %a0_1 = %init#1, %a0_2 = %init#2, %a0_3 = %init#3, %a1_0 = %init#4, %a1_1 = %init#5, %a1_2 = %init#6, %a1_3 = %init#7, %a2_0 = %init#8, %a2_1 = %init#9, %a2_2 = %init#10, %a2_3 = %init#11, %a3_0 = %init#12, %a3_1 = %init#13, %a3_2 = %init#14, %a3_3 = %init#15, %a4_0 = %init#16, %a4_1 = %init#17, %a4_2 = %init#18, %a4_3 = %init#19, %a5_0 = %init#20, %a5_1 = %init#21, %a5_2 = %init#22, %a5_3 = %init#23) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
          %kr = arith.subi %k, %k0 : index
          %b0 = vector.load %Bp[%kr, %o0] : memref<128x64xf32>, vector<16xf32>
          %b1 = vector.load %Bp[%kr, %o16] : memref<128x64xf32>, vector<16xf32>
          %b2 = vector.load %Bp[%kr, %o32] : memref<128x64xf32>, vector<16xf32>
          %b3 = vector.load %Bp[%kr, %o48] : memref<128x64xf32>, vector<16xf32>
          %av0s = memref.load %A[%row0, %k] : memref<?x?xf32>
          %av0 = vector.broadcast %av0s : f32 to vector<16xf32>
          %n0_0 = vector.fma %av0, %b0, %a0_0 : vector<16xf32>
          %n0_1 = vector.fma %av0, %b1, %a0_1 : vector<16xf32>
          %n0_2 = vector.fma %av0, %b2, %a0_2 : vector<16xf32>
          %n0_3 = vector.fma %av0, %b3, %a0_3 : vector<16xf32>
          %av1s = memref.load %A[%row1, %k] : memref<?x?xf32>
          %av1 = vector.broadcast %av1s : f32 to vector<16xf32>
          %n1_0 = vector.fma %av1, %b0, %a1_0 : vector<16xf32>
          %n1_1 = vector.fma %av1, %b1, %a1_1 : vector<16xf32>
          %n1_2 = vector.fma %av1, %b2, %a1_2 : vector<16xf32>
          %n1_3 = vector.fma %av1, %b3, %a1_3 : vector<16xf32>
          %av2s = memref.load %A[%row2, %k] : memref<?x?xf32>
          %av2 = vector.broadcast %av2s : f32 to vector<16xf32>
          %n2_0 = vector.fma %av2, %b0, %a2_0 : vector<16xf32>
          %n2_1 = vector.fma %av2, %b1, %a2_1 : vector<16xf32>
          %n2_2 = vector.fma %av2, %b2, %a2_2 : vector<16xf32>
          %n2_3 = vector.fma %av2, %b3, %a2_3 : vector<16xf32>
          %av3s = memref.load %A[%row3, %k] : memref<?x?xf32>
          %av3 = vector.broadcast %av3s : f32 to vector<16xf32>
          %n3_0 = vector.fma %av3, %b0, %a3_0 : vector<16xf32>
          %n3_1 = vector.fma %av3, %b1, %a3_1 : vector<16xf32>
          %n3_2 = vector.fma %av3, %b2, %a3_2 : vector<16xf32>
          %n3_3 = vector.fma %av3, %b3, %a3_3 : vector<16xf32>
          %av4s = memref.load %A[%row4, %k] : memref<?x?xf32>
          %av4 = vector.broadcast %av4s : f32 to vector<16xf32>
          %n4_0 = vector.fma %av4, %b0, %a4_0 : vector<16xf32>
          %n4_1 = vector.fma %av4, %b1, %a4_1 : vector<16xf32>
          %n4_2 = vector.fma %av4, %b2, %a4_2 : vector<16xf32>
          %n4_3 = vector.fma %av4, %b3, %a4_3 : vector<16xf32>
          %av5s = memref.load %A[%row5, %k] : memref<?x?xf32>
          %av5 = vector.broadcast %av5s : f32 to vector<16xf32>
          %n5_0 = vector.fma %av5, %b0, %a5_0 : vector<16xf32>
          %n5_1 = vector.fma %av5, %b1, %a5_1 : vector<16xf32>
          %n5_2 = vector.fma %av5, %b2, %a5_2 : vector<16xf32>
          %n5_3 = vector.fma %av5, %b3, %a5_3 : vector<16xf32>
          scf.yield %n0_0, %n0_1, %n0_2, %n0_3, %n1_0, %n1_1, %n1_2, %n1_3, %n2_0, %n2_1, %n2_2, %n2_3, %n3_0, %n3_1, %n3_2, %n3_3, %n4_0, %n4_1, %n4_2, %n4_3, %n5_0, %n5_1, %n5_2, %n5_3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
        }
        vector.store %res#0, %C[%row0, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#1, %C[%row0, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#2, %C[%row0, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#3, %C[%row0, %col3] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#4, %C[%row1, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#5, %C[%row1, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#6, %C[%row1, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#7, %C[%row1, %col3] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#8, %C[%row2, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#9, %C[%row2, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#10, %C[%row2, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#11, %C[%row2, %col3] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#12, %C[%row3, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#13, %C[%row3, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#14, %C[%row3, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#15, %C[%row3, %col3] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#16, %C[%row4, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#17, %C[%row4, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#18, %C[%row4, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#19, %C[%row4, %col3] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#20, %C[%row5, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#21, %C[%row5, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#22, %C[%row5, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#23, %C[%row5, %col3] : memref<?x?xf32>, vector<16xf32>
      }
      scf.for %i0 = %e6 to %e4 step %cR4 {
        %row0 = arith.addi %i0, %o0 : index
        %row1 = arith.addi %i0, %o1 : index
        %row2 = arith.addi %i0, %o2 : index
        %row3 = arith.addi %i0, %o3 : index
        %init:16 = scf.if %first -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
          scf.yield %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
        } else {
          %l0_0 = vector.load %C[%row0, %col0] : memref<?x?xf32>, vector<16xf32>
          %l0_1 = vector.load %C[%row0, %col1] : memref<?x?xf32>, vector<16xf32>
          %l0_2 = vector.load %C[%row0, %col2] : memref<?x?xf32>, vector<16xf32>
          %l0_3 = vector.load %C[%row0, %col3] : memref<?x?xf32>, vector<16xf32>
          %l1_0 = vector.load %C[%row1, %col0] : memref<?x?xf32>, vector<16xf32>
          %l1_1 = vector.load %C[%row1, %col1] : memref<?x?xf32>, vector<16xf32>
          %l1_2 = vector.load %C[%row1, %col2] : memref<?x?xf32>, vector<16xf32>
          %l1_3 = vector.load %C[%row1, %col3] : memref<?x?xf32>, vector<16xf32>
          %l2_0 = vector.load %C[%row2, %col0] : memref<?x?xf32>, vector<16xf32>
          %l2_1 = vector.load %C[%row2, %col1] : memref<?x?xf32>, vector<16xf32>
          %l2_2 = vector.load %C[%row2, %col2] : memref<?x?xf32>, vector<16xf32>
          %l2_3 = vector.load %C[%row2, %col3] : memref<?x?xf32>, vector<16xf32>
          %l3_0 = vector.load %C[%row3, %col0] : memref<?x?xf32>, vector<16xf32>
          %l3_1 = vector.load %C[%row3, %col1] : memref<?x?xf32>, vector<16xf32>
          %l3_2 = vector.load %C[%row3, %col2] : memref<?x?xf32>, vector<16xf32>
          %l3_3 = vector.load %C[%row3, %col3] : memref<?x?xf32>, vector<16xf32>
          scf.yield %l0_0, %l0_1, %l0_2, %l0_3, %l1_0, %l1_1, %l1_2, %l1_3, %l2_0, %l2_1, %l2_2, %l2_3, %l3_0, %l3_1, %l3_2, %l3_3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
        }
        %res:16 = scf.for %k = %k0 to %k1 step %c1 iter_args(%a0_0 = %init#0, %a0_1 = %init#1, %a0_2 = %init#2, %a0_3 = %init#3, %a1_0 = %init#4, %a1_1 = %init#5, %a1_2 = %init#6, %a1_3 = %init#7, %a2_0 = %init#8, %a2_1 = %init#9, %a2_2 = %init#10, %a2_3 = %init#11, %a3_0 = %init#12, %a3_1 = %init#13, %a3_2 = %init#14, %a3_3 = %init#15) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
          %kr = arith.subi %k, %k0 : index
          %b0 = vector.load %Bp[%kr, %o0] : memref<128x64xf32>, vector<16xf32>
          %b1 = vector.load %Bp[%kr, %o16] : memref<128x64xf32>, vector<16xf32>
          %b2 = vector.load %Bp[%kr, %o32] : memref<128x64xf32>, vector<16xf32>
          %b3 = vector.load %Bp[%kr, %o48] : memref<128x64xf32>, vector<16xf32>
          %av0s = memref.load %A[%row0, %k] : memref<?x?xf32>
          %av0 = vector.broadcast %av0s : f32 to vector<16xf32>
          %n0_0 = vector.fma %av0, %b0, %a0_0 : vector<16xf32>
          %n0_1 = vector.fma %av0, %b1, %a0_1 : vector<16xf32>
          %n0_2 = vector.fma %av0, %b2, %a0_2 : vector<16xf32>
          %n0_3 = vector.fma %av0, %b3, %a0_3 : vector<16xf32>
          %av1s = memref.load %A[%row1, %k] : memref<?x?xf32>
          %av1 = vector.broadcast %av1s : f32 to vector<16xf32>
          %n1_0 = vector.fma %av1, %b0, %a1_0 : vector<16xf32>
          %n1_1 = vector.fma %av1, %b1, %a1_1 : vector<16xf32>
          %n1_2 = vector.fma %av1, %b2, %a1_2 : vector<16xf32>
          %n1_3 = vector.fma %av1, %b3, %a1_3 : vector<16xf32>
          %av2s = memref.load %A[%row2, %k] : memref<?x?xf32>
          %av2 = vector.broadcast %av2s : f32 to vector<16xf32>
          %n2_0 = vector.fma %av2, %b0, %a2_0 : vector<16xf32>
          %n2_1 = vector.fma %av2, %b1, %a2_1 : vector<16xf32>
          %n2_2 = vector.fma %av2, %b2, %a2_2 : vector<16xf32>
          %n2_3 = vector.fma %av2, %b3, %a2_3 : vector<16xf32>
          %av3s = memref.load %A[%row3, %k] : memref<?x?xf32>
          %av3 = vector.broadcast %av3s : f32 to vector<16xf32>
          %n3_0 = vector.fma %av3, %b0, %a3_0 : vector<16xf32>
          %n3_1 = vector.fma %av3, %b1, %a3_1 : vector<16xf32>
          %n3_2 = vector.fma %av3, %b2, %a3_2 : vector<16xf32>
          %n3_3 = vector.fma %av3, %b3, %a3_3 : vector<16xf32>
          scf.yield %n0_0, %n0_1, %n0_2, %n0_3, %n1_0, %n1_1, %n1_2, %n1_3, %n2_0, %n2_1, %n2_2, %n2_3, %n3_0, %n3_1, %n3_2, %n3_3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
        }
        vector.store %res#0, %C[%row0, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#1, %C[%row0, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#2, %C[%row0, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#3, %C[%row0, %col3] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#4, %C[%row1, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#5, %C[%row1, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#6, %C[%row1, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#7, %C[%row1, %col3] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#8, %C[%row2, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#9, %C[%row2, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#10, %C[%row2, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#11, %C[%row2, %col3] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#12, %C[%row3, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#13, %C[%row3, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#14, %C[%row3, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#15, %C[%row3, %col3] : memref<?x?xf32>, vector<16xf32>
      }
      scf.for %i0 = %e4 to %ie step %cR2 {
        %row0 = arith.addi %i0, %o0 : index
        %row1 = arith.addi %i0, %o1 : index
        %init:8 = scf.if %first -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
          scf.yield %zv, %zv, %zv, %zv, %zv, %zv, %zv, %zv : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
        } else {
          %l0_0 = vector.load %C[%row0, %col0] : memref<?x?xf32>, vector<16xf32>
          %l0_1 = vector.load %C[%row0, %col1] : memref<?x?xf32>, vector<16xf32>
          %l0_2 = vector.load %C[%row0, %col2] : memref<?x?xf32>, vector<16xf32>
          %l0_3 = vector.load %C[%row0, %col3] : memref<?x?xf32>, vector<16xf32>
          %l1_0 = vector.load %C[%row1, %col0] : memref<?x?xf32>, vector<16xf32>
          %l1_1 = vector.load %C[%row1, %col1] : memref<?x?xf32>, vector<16xf32>
          %l1_2 = vector.load %C[%row1, %col2] : memref<?x?xf32>, vector<16xf32>
          %l1_3 = vector.load %C[%row1, %col3] : memref<?x?xf32>, vector<16xf32>
          scf.yield %l0_0, %l0_1, %l0_2, %l0_3, %l1_0, %l1_1, %l1_2, %l1_3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
        }
        %res:8 = scf.for %k = %k0 to %k1 step %c1 iter_args(%a0_0 = %init#0, %a0_1 = %init#1, %a0_2 = %init#2, %a0_3 = %init#3, %a1_0 = %init#4, %a1_1 = %init#5, %a1_2 = %init#6, %a1_3 = %init#7) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
          %kr = arith.subi %k, %k0 : index
          %b0 = vector.load %Bp[%kr, %o0] : memref<128x64xf32>, vector<16xf32>
          %b1 = vector.load %Bp[%kr, %o16] : memref<128x64xf32>, vector<16xf32>
          %b2 = vector.load %Bp[%kr, %o32] : memref<128x64xf32>, vector<16xf32>
          %b3 = vector.load %Bp[%kr, %o48] : memref<128x64xf32>, vector<16xf32>
          %av0s = memref.load %A[%row0, %k] : memref<?x?xf32>
          %av0 = vector.broadcast %av0s : f32 to vector<16xf32>
          %n0_0 = vector.fma %av0, %b0, %a0_0 : vector<16xf32>
          %n0_1 = vector.fma %av0, %b1, %a0_1 : vector<16xf32>
          %n0_2 = vector.fma %av0, %b2, %a0_2 : vector<16xf32>
          %n0_3 = vector.fma %av0, %b3, %a0_3 : vector<16xf32>
          %av1s = memref.load %A[%row1, %k] : memref<?x?xf32>
          %av1 = vector.broadcast %av1s : f32 to vector<16xf32>
          %n1_0 = vector.fma %av1, %b0, %a1_0 : vector<16xf32>
          %n1_1 = vector.fma %av1, %b1, %a1_1 : vector<16xf32>
          %n1_2 = vector.fma %av1, %b2, %a1_2 : vector<16xf32>
          %n1_3 = vector.fma %av1, %b3, %a1_3 : vector<16xf32>
          scf.yield %n0_0, %n0_1, %n0_2, %n0_3, %n1_0, %n1_1, %n1_2, %n1_3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
        }
        vector.store %res#0, %C[%row0, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#1, %C[%row0, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#2, %C[%row0, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#3, %C[%row0, %col3] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#4, %C[%row1, %col0] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#5, %C[%row1, %col1] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#6, %C[%row1, %col2] : memref<?x?xf32>, vector<16xf32>
        vector.store %res#7, %C[%row1, %col3] : memref<?x?xf32>, vector<16xf32>
      }
    }
  }
  // Columns past the last full panel, for these rows.
  scf.for %i = %ib to %ie step %c1 {
    scf.for %j = %nFull to %N step %c1 {
      %s = scf.for %k = %c0 to %K step %c1 iter_args(%acc = %zero) -> (f32) {
        %a = memref.load %A[%i, %k] : memref<?x?xf32>
        %bb = memref.load %Bt[%k, %j] : memref<?x?xf32>
        %s2 = math.fma %a, %bb, %acc : f32
        scf.yield %s2 : f32
      }
      memref.store %s, %C[%i, %j] : memref<?x?xf32>
    }
  }
  return
}

// @hag_matmul_nt with B^T given as Bt [K, N], N the columns of C. Bt is read
// by the 4-row tiles only (none when M < 4), B [N, K] by the rows past the
// last tile only (none when M is a multiple of 4): the other may then be any
// buffer, so callers holding one layout skip a transposition.
func.func private @hag_matmul_nt_bt(%A: memref<?x?xf32>, %B: memref<?x?xf32>,
                                    %Bt: memref<?x?xf32>, %C: memref<?x?xf32>,
                                    %N: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cR = arith.constant 4 : index
  %cT = arith.constant 64 : index
  %cMC = arith.constant 264 : index
  %M = memref.dim %A, %c0 : memref<?x?xf32>
  %mFull0 = arith.divui %M, %cR : index
  %mFull = arith.muli %mFull0, %cR : index
  %nFull0 = arith.divui %N, %cT : index
  %nFull = arith.muli %nFull0, %cT : index
  %anyTile = arith.cmpi ugt, %mFull, %c0 : index
  scf.if %anyTile {
    scf.parallel (%ib) = (%c0) to (%mFull) step (%cMC) {
      %ieR = arith.addi %ib, %cMC : index
      %ie = arith.minui %ieR, %mFull : index
      func.call @hag_matmul_rows(%A, %Bt, %C, %ib, %ie, %N, %nFull)
          : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, index, index, index, index) -> ()
      scf.reduce
    }
  }
  // Rows past the last full tile (all rows when M < 4, e.g. a decoding
  // step).
  func.call @hag_matmul_dot_rows(%A, %B, %C, %mFull)
      : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
  return
}

// Rows [m0, M) of C = A B^T (A [M, K], B [N, K], C [M, N]) as dot products
// along K on the rows of A and B as they are: the rows a register-tiled
// kernel leaves (decoding steps have all their rows here). N is C's: with
// no rows left, a caller may pass any buffer as B (@hag_matmul_nt_bt).
func.func private @hag_matmul_dot_rows(%A: memref<?x?xf32>, %B: memref<?x?xf32>,
                                       %C: memref<?x?xf32>, %m0: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16v = arith.constant 16 : index
  %zv = arith.constant dense<0.0> : vector<16xf32>
  %M = memref.dim %A, %c0 : memref<?x?xf32>
  %K = memref.dim %A, %c1 : memref<?x?xf32>
  %N = memref.dim %C, %c1 : memref<?x?xf32>
  %k16a = arith.divui %K, %c16v : index
  %k16 = arith.muli %k16a, %c16v : index
  scf.parallel (%i, %j) = (%m0, %c0) to (%M, %N) step (%c1, %c1) {
    %acc = scf.for %k = %c0 to %k16 step %c16v iter_args(%a = %zv) -> (vector<16xf32>) {
      %x = vector.load %A[%i, %k] : memref<?x?xf32>, vector<16xf32>
      %y = vector.load %B[%j, %k] : memref<?x?xf32>, vector<16xf32>
      %a2 = vector.fma %x, %y, %a : vector<16xf32>
      scf.yield %a2 : vector<16xf32>
    }
    %sum = vector.reduction <add>, %acc : vector<16xf32> into f32
    %s = scf.for %k = %k16 to %K step %c1 iter_args(%t = %sum) -> (f32) {
      %x = memref.load %A[%i, %k] : memref<?x?xf32>
      %y = memref.load %B[%j, %k] : memref<?x?xf32>
      %t2 = math.fma %x, %y, %t : f32
      scf.yield %t2 : f32
    }
    memref.store %s, %C[%i, %j] : memref<?x?xf32>
    scf.reduce
  }
  return
}

// The memory gate's epilogue (spec section 2) after the hidden projection
// hidden = x W1^T: g[b, i] = sigmoid((w2 . SiLU(hidden[b, i, :] + b1) + b2)
// * invTau), rows in parallel, 16 hidden features per vector (the exp is the
// polynomial of hag-approximate-math).
func.func private @hag_gate_epilogue(%hid: memref<?x?x?xf32>,
    %b1: memref<?xf32>, %w2: memref<?xf32>, %b2: memref<?xf32>,
    %invTau: f32, %g: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c16 = arith.constant 16 : index
  %one = arith.constant 1.0 : f32
  %zv = arith.constant dense<0.0> : vector<16xf32>
  %onev = arith.constant dense<1.0> : vector<16xf32>
  %bt = memref.dim %hid, %c0 : memref<?x?x?xf32>
  %n = memref.dim %hid, %c1 : memref<?x?x?xf32>
  %dg = memref.dim %hid, %c2 : memref<?x?x?xf32>
  %dg16a = arith.divui %dg, %c16 : index
  %dg16 = arith.muli %dg16a, %c16 : index
  %bias2 = memref.load %b2[%c0] : memref<?xf32>
  scf.parallel (%b, %i) = (%c0, %c0) to (%bt, %n) step (%c1, %c1) {
    %acc = scf.for %j = %c0 to %dg16 step %c16 iter_args(%a = %zv) -> (vector<16xf32>) {
      %h = vector.load %hid[%b, %i, %j] : memref<?x?x?xf32>, vector<16xf32>
      %bb = vector.load %b1[%j] : memref<?xf32>, vector<16xf32>
      %ww = vector.load %w2[%j] : memref<?xf32>, vector<16xf32>
      %x = arith.addf %h, %bb : vector<16xf32>
      %nx = arith.negf %x : vector<16xf32>
      %e = math.exp %nx : vector<16xf32>
      %den = arith.addf %onev, %e : vector<16xf32>
      %sig = arith.divf %onev, %den : vector<16xf32>
      %s = arith.mulf %x, %sig : vector<16xf32>
      %a2 = vector.fma %s, %ww, %a : vector<16xf32>
      scf.yield %a2 : vector<16xf32>
    }
    %sum = vector.reduction <add>, %acc : vector<16xf32> into f32
    %tot = scf.for %j = %dg16 to %dg step %c1 iter_args(%t = %sum) -> (f32) {
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

// dst[j, i] = src[i, j], rows of dst in parallel.
func.func private @hag_transpose(%src: memref<?x?xf32>, %dst: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %R = memref.dim %src, %c0 : memref<?x?xf32>
  %Cn = memref.dim %src, %c1 : memref<?x?xf32>
  scf.parallel (%j) = (%c0) to (%Cn) step (%c1) {
    scf.for %i = %c0 to %R step %c1 {
      %x = memref.load %src[%i, %j] : memref<?x?xf32>
      memref.store %x, %dst[%j, %i] : memref<?x?xf32>
    }
    scf.reduce
  }
  return
}

// C = A B for A [M, K], B [K, N] (the input gradient of a projection,
// dx = dy W): B is already the [K, N] layout of @hag_matmul_nt_bt's tiles;
// B^T [N, K] is formed only for rows past the last 4-row tile.
func.func private @hag_matmul_nn(%A: memref<?x?xf32>, %B: memref<?x?xf32>,
                                 %C: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %M = memref.dim %A, %c0 : memref<?x?xf32>
  %K = memref.dim %B, %c0 : memref<?x?xf32>
  %N = memref.dim %B, %c1 : memref<?x?xf32>
  %mFull0 = arith.divui %M, %c4 : index
  %mFull = arith.muli %mFull0, %c4 : index
  %tail = arith.cmpi ult, %mFull, %M : index
  scf.if %tail {
    %Bn = memref.alloc(%N, %K) : memref<?x?xf32>
    func.call @hag_transpose(%B, %Bn) : (memref<?x?xf32>, memref<?x?xf32>) -> ()
    func.call @hag_matmul_nt_bt(%A, %Bn, %B, %C, %N)
        : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
  } else {
    func.call @hag_matmul_nt_bt(%A, %B, %B, %C, %N)
        : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
  }
  return
}

// C = A^T B for A [M, P], B [M, N] (the weight gradient of a projection,
// dW = dy^T x, summed over the M rows): A transposed, then
// @hag_matmul_nn(A^T, B) (B is already the [K, N] layout of its tiles).
func.func private @hag_matmul_tn(%A: memref<?x?xf32>, %B: memref<?x?xf32>,
                                 %C: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %M = memref.dim %A, %c0 : memref<?x?xf32>
  %P = memref.dim %A, %c1 : memref<?x?xf32>
  %At = memref.alloc(%P, %M) : memref<?x?xf32>
  func.call @hag_transpose(%A, %At) : (memref<?x?xf32>, memref<?x?xf32>) -> ()
  func.call @hag_matmul_nn(%At, %B, %C) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
  return
}

// The embedding table's gradient: dt = 0, then dt[tokens[b, i], :] +=
// dy[b, i, :] for every position in order. Parallel over 16-feature chunks
// (each thread owns its columns of every row: no two threads add to one
// element); sequential over the positions.
func.func private @hag_embedding_backward(%dy: memref<?x?x?xf32>,
    %tokens: memref<?x?xi32>, %dt: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  %bt = memref.dim %dy, %c0 : memref<?x?x?xf32>
  %n = memref.dim %dy, %c1 : memref<?x?x?xf32>
  %D = memref.dim %dy, %c2 : memref<?x?x?xf32>
  %V = memref.dim %dt, %c0 : memref<?x?xf32>
  %chunks0 = arith.addi %D, %c16 : index
  %chunks1 = arith.subi %chunks0, %c1 : index
  %chunks = arith.divui %chunks1, %c16 : index
  scf.parallel (%c) = (%c0) to (%chunks) step (%c1) {
    %f0 = arith.muli %c, %c16 : index
    %f1r = arith.addi %f0, %c16 : index
    %f1 = arith.minui %f1r, %D : index
    scf.for %v = %c0 to %V step %c1 {
      scf.for %f = %f0 to %f1 step %c1 {
        memref.store %zero, %dt[%v, %f] : memref<?x?xf32>
      }
    }
    scf.for %b = %c0 to %bt step %c1 {
      scf.for %i = %c0 to %n step %c1 {
        %t = memref.load %tokens[%b, %i] : memref<?x?xi32>
        %row = arith.index_cast %t : i32 to index
        scf.for %f = %f0 to %f1 step %c1 {
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
