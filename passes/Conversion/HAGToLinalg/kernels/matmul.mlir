// Matrix multiply with a transposed right operand, C = A B^T, the shape of
// every projection (nn.Linear weights are [out, in]): A [M, K], B [N, K],
// C [M, N], all f32, row-major.
//
// B is transposed once per call into Bt [K, N] so that the inner loop reads
// contiguous rows of Bt. The main loop computes 4 x 64 tiles of C in
// 16 vector<16xf32> accumulators: per k, 4 loads of Bt, 4 broadcasts
// of A and 16 FMAs (fits the 32 AVX-512 registers). Rows past the last
// full 4-row tile and columns past the last full 64-column tile take
// scalar loops. Row tiles run in parallel.
func.func private @hag_matmul_nt(%A: memref<?x?xf32>, %B: memref<?x?xf32>,
                                 %C: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cR = arith.constant 4 : index
  %cT = arith.constant 64 : index
  %o0 = arith.constant 0 : index
  %o1 = arith.constant 1 : index
  %o2 = arith.constant 2 : index
  %o3 = arith.constant 3 : index
  %o0c = arith.constant 0 : index
  %o16c = arith.constant 16 : index
  %o32c = arith.constant 32 : index
  %o48c = arith.constant 48 : index
  %zero = arith.constant 0.0 : f32
  %zv = arith.constant dense<0.0> : vector<16xf32>
  %M = memref.dim %A, %c0 : memref<?x?xf32>
  %K = memref.dim %A, %c1 : memref<?x?xf32>
  %N = memref.dim %B, %c0 : memref<?x?xf32>
  %Bt = memref.alloc(%K, %N) : memref<?x?xf32>
  scf.for %j = %c0 to %N step %c1 {
    scf.for %k = %c0 to %K step %c1 {
      %x = memref.load %B[%j, %k] : memref<?x?xf32>
      memref.store %x, %Bt[%k, %j] : memref<?x?xf32>
    }
  }
  %mFull0 = arith.divui %M, %cR : index
  %mFull = arith.muli %mFull0, %cR : index
  %nFull0 = arith.divui %N, %cT : index
  %nFull = arith.muli %nFull0, %cT : index
  scf.parallel (%i0) = (%c0) to (%mFull) step (%cR) {
    %row0 = arith.addi %i0, %o0 : index
    %row1 = arith.addi %i0, %o1 : index
    %row2 = arith.addi %i0, %o2 : index
    %row3 = arith.addi %i0, %o3 : index
    scf.for %j0 = %c0 to %nFull step %cT {
      %col0 = arith.addi %j0, %o0c : index
      %col1 = arith.addi %j0, %o16c : index
      %col2 = arith.addi %j0, %o32c : index
      %col3 = arith.addi %j0, %o48c : index
      %res:16 = scf.for %k = %c0 to %K step %c1 iter_args(%acc0_0i = %zv, %acc0_1i = %zv, %acc0_2i = %zv, %acc0_3i = %zv, %acc1_0i = %zv, %acc1_1i = %zv, %acc1_2i = %zv, %acc1_3i = %zv, %acc2_0i = %zv, %acc2_1i = %zv, %acc2_2i = %zv, %acc2_3i = %zv, %acc3_0i = %zv, %acc3_1i = %zv, %acc3_2i = %zv, %acc3_3i = %zv) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
        %b0 = vector.load %Bt[%k, %col0] : memref<?x?xf32>, vector<16xf32>
        %b1 = vector.load %Bt[%k, %col1] : memref<?x?xf32>, vector<16xf32>
        %b2 = vector.load %Bt[%k, %col2] : memref<?x?xf32>, vector<16xf32>
        %b3 = vector.load %Bt[%k, %col3] : memref<?x?xf32>, vector<16xf32>
        %a0 = memref.load %A[%row0, %k] : memref<?x?xf32>
        %av0 = vector.broadcast %a0 : f32 to vector<16xf32>
        %n0_0 = vector.fma %av0, %b0, %acc0_0i : vector<16xf32>
        %n0_1 = vector.fma %av0, %b1, %acc0_1i : vector<16xf32>
        %n0_2 = vector.fma %av0, %b2, %acc0_2i : vector<16xf32>
        %n0_3 = vector.fma %av0, %b3, %acc0_3i : vector<16xf32>
        %a1 = memref.load %A[%row1, %k] : memref<?x?xf32>
        %av1 = vector.broadcast %a1 : f32 to vector<16xf32>
        %n1_0 = vector.fma %av1, %b0, %acc1_0i : vector<16xf32>
        %n1_1 = vector.fma %av1, %b1, %acc1_1i : vector<16xf32>
        %n1_2 = vector.fma %av1, %b2, %acc1_2i : vector<16xf32>
        %n1_3 = vector.fma %av1, %b3, %acc1_3i : vector<16xf32>
        %a2 = memref.load %A[%row2, %k] : memref<?x?xf32>
        %av2 = vector.broadcast %a2 : f32 to vector<16xf32>
        %n2_0 = vector.fma %av2, %b0, %acc2_0i : vector<16xf32>
        %n2_1 = vector.fma %av2, %b1, %acc2_1i : vector<16xf32>
        %n2_2 = vector.fma %av2, %b2, %acc2_2i : vector<16xf32>
        %n2_3 = vector.fma %av2, %b3, %acc2_3i : vector<16xf32>
        %a3 = memref.load %A[%row3, %k] : memref<?x?xf32>
        %av3 = vector.broadcast %a3 : f32 to vector<16xf32>
        %n3_0 = vector.fma %av3, %b0, %acc3_0i : vector<16xf32>
        %n3_1 = vector.fma %av3, %b1, %acc3_1i : vector<16xf32>
        %n3_2 = vector.fma %av3, %b2, %acc3_2i : vector<16xf32>
        %n3_3 = vector.fma %av3, %b3, %acc3_3i : vector<16xf32>
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
    // Columns past the last full tile, for these rows.
    scf.for %j = %nFull to %N step %c1 {
      %s0 = scf.for %k = %c0 to %K step %c1 iter_args(%acc = %zero) -> (f32) {
        %a = memref.load %A[%row0, %k] : memref<?x?xf32>
        %bb = memref.load %Bt[%k, %j] : memref<?x?xf32>
        %s = math.fma %a, %bb, %acc : f32
        scf.yield %s : f32
      }
      memref.store %s0, %C[%row0, %j] : memref<?x?xf32>
      %s1 = scf.for %k = %c0 to %K step %c1 iter_args(%acc = %zero) -> (f32) {
        %a = memref.load %A[%row1, %k] : memref<?x?xf32>
        %bb = memref.load %Bt[%k, %j] : memref<?x?xf32>
        %s = math.fma %a, %bb, %acc : f32
        scf.yield %s : f32
      }
      memref.store %s1, %C[%row1, %j] : memref<?x?xf32>
      %s2 = scf.for %k = %c0 to %K step %c1 iter_args(%acc = %zero) -> (f32) {
        %a = memref.load %A[%row2, %k] : memref<?x?xf32>
        %bb = memref.load %Bt[%k, %j] : memref<?x?xf32>
        %s = math.fma %a, %bb, %acc : f32
        scf.yield %s : f32
      }
      memref.store %s2, %C[%row2, %j] : memref<?x?xf32>
      %s3 = scf.for %k = %c0 to %K step %c1 iter_args(%acc = %zero) -> (f32) {
        %a = memref.load %A[%row3, %k] : memref<?x?xf32>
        %bb = memref.load %Bt[%k, %j] : memref<?x?xf32>
        %s = math.fma %a, %bb, %acc : f32
        scf.yield %s : f32
      }
      memref.store %s3, %C[%row3, %j] : memref<?x?xf32>
    }
    scf.reduce
  }
  // Rows past the last full tile.
  scf.parallel (%i) = (%mFull) to (%M) step (%c1) {
    scf.for %j = %c0 to %N step %c1 {
      %s = scf.for %k = %c0 to %K step %c1 iter_args(%acc = %zero) -> (f32) {
        %a = memref.load %A[%i, %k] : memref<?x?xf32>
        %bb = memref.load %Bt[%k, %j] : memref<?x?xf32>
        %s2 = math.fma %a, %bb, %acc : f32
        scf.yield %s2 : f32
      }
      memref.store %s, %C[%i, %j] : memref<?x?xf32>
    }
    scf.reduce
  }
  return
}
