// C = A B^T in f32 on AMX tiles (Sapphire Rapids and later): the forward
// projections' @hag_matmul_nt where the target has AMX-BF16
// (hag-lower-to-linalg{amx=true}, which hag-compile sets from the target's
// features).
//
// AMX multiplies bf16 pairs into f32 sums (tdpbf16ps). For f32 accuracy
// every operand x is split into three bf16 pieces, x = h + m + l with
// h = bf16(x), m = bf16(x - h), l = bf16(x - h - m) (round to nearest even;
// the differences are exact in f32 and x - h - m - l is within 2^-27 |x|),
// and the product keeps the six terms hh, hm, mh, hl, lh, mm: the three it
// drops are together below 2^-26 |a b|, under f32's own rounding (the bf16x3
// scheme). AMX reads bf16 denormals as zero, which loses pieces of values
// below ~1e-33 only. Sums are f32, in tile order; the conformance tests
// hold the result to the float64 reference like the AVX-512 kernel's.
//
// Tiles: B's pieces are packed once per call as contiguous 16 x 32 bf16
// tiles (1 KiB each: a tile load reads 16 consecutive cache lines) in the
// pair-interleaved (VNNI) layout tdpbf16ps reads. Each parallel task takes
// 32 rows of A, splits them into their pieces as contiguous tiles too, and
// computes every 32 x 32 block of C as 2 x 2 tiles of 16 x 16 f32
// accumulators over K in steps of 32 (per step 6 tile loads of A, 12 of B,
// 24 tile products; at most 8 tiles live: the 8 AMX registers;
// hag-amx-tiles-to-llvm-types lets the loop carry the accumulators).
//
// Shapes it does not tile (K or N not a multiple of 32, fewer than 32 rows)
// and processes that may not use AMX go to @hag_matmul_nt; rows past the
// last multiple of 32 are f32 dot products.

// 0: not asked yet, 1: this process may use the AMX tile data, 2: it may not.
memref.global "private" @hag_amx_state : memref<i32> = dense<0>

// long syscall(long number, ...) from libc.
func.func private @syscall(i64, i64, i64) -> i64

// Linux gives a process the AMX tile state only when it asks
// (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); without it the
// first tile instruction kills the process (SIGILL). Asked once; the
// answer is kept in @hag_amx_state.
func.func private @hag_amx_permitted() -> i1 {
  %g = memref.get_global @hag_amx_state : memref<i32>
  %s = memref.load %g[] : memref<i32>
  %unknown = arith.constant 0 : i32
  %yes = arith.constant 1 : i32
  %no = arith.constant 2 : i32
  %asked = arith.cmpi ne, %s, %unknown : i32
  %state = scf.if %asked -> (i32) {
    scf.yield %s : i32
  } else {
    %sysArchPrctl = arith.constant 158 : i64
    %reqXcompPerm = arith.constant 4131 : i64
    %xtiledata = arith.constant 18 : i64
    %r = func.call @syscall(%sysArchPrctl, %reqXcompPerm, %xtiledata) : (i64, i64, i64) -> i64
    %z = arith.constant 0 : i64
    %ok = arith.cmpi eq, %r, %z : i64
    %v = arith.select %ok, %yes, %no : i32
    memref.store %v, %g[] : memref<i32>
    scf.yield %v : i32
  }
  %p = arith.cmpi eq, %state, %yes : i32
  return %p : i1
}

// The three bf16 pieces of x (see the top of the file).
func.func private @hag_bf16x3(%x: vector<16xf32>) -> (vector<16xbf16>, vector<16xbf16>, vector<16xbf16>) {
  %h = arith.truncf %x : vector<16xf32> to vector<16xbf16>
  %hf = arith.extf %h : vector<16xbf16> to vector<16xf32>
  %r1 = arith.subf %x, %hf : vector<16xf32>
  %m = arith.truncf %r1 : vector<16xf32> to vector<16xbf16>
  %mf = arith.extf %m : vector<16xbf16> to vector<16xf32>
  %r2 = arith.subf %r1, %mf : vector<16xf32>
  %l = arith.truncf %r2 : vector<16xf32> to vector<16xbf16>
  return %h, %m, %l : vector<16xbf16>, vector<16xbf16>, vector<16xbf16>
}

// One task of @hag_matmul_nt_amx: rows [i0, i0 + 32) of C. Splits its
// rows of A into the three pieces as contiguous 16 x 32 tiles (Ap: tile
// (p, kt, half) at row ((p KT + kt) 2 + half) 16 holds rows 16 half .. +16,
// columns 32 kt .. +32 of piece p), then every 32 x 32 block of C.
// Never inlined: Ap (3 K rows of 64 bytes) is a plain stack slot of this call.
func.func private @hag_matmul_amx_rows(%A: memref<?x?xf32>, %Bv: memref<?x32xbf16>,
                                       %C: memref<?x?xf32>, %i0: index)
    attributes {no_inline} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  %K = memref.dim %A, %c1 : memref<?x?xf32>
  %N = memref.dim %C, %c1 : memref<?x?xf32>
  %KT = arith.divui %K, %c32 : index
  %NT = arith.divui %N, %c16 : index
  %apRows = arith.muli %K, %c3 : index
  %Ap = memref.alloca(%apRows) : memref<?x32xbf16>
  %Z = memref.alloca() : memref<16x16xf32>
  %zero16 = arith.constant dense<0.0> : vector<16xf32>
  scf.for %zr = %c0 to %c16 step %c1 {
    vector.store %zero16, %Z[%zr, %c0] : memref<16x16xf32>, vector<16xf32>
  }
  // Piece p's rows start at p KT 32 (= p K).
  scf.for %i = %c0 to %c32 step %c1 {
    %row = arith.addi %i0, %i : index
    %half = arith.divui %i, %c16 : index
    %ir = arith.remui %i, %c16 : index
    scf.for %kc = %c0 to %K step %c16 {
      %x = vector.load %A[%row, %kc] : memref<?x?xf32>, vector<16xf32>
      %pc:3 = func.call @hag_bf16x3(%x) : (vector<16xf32>) -> (vector<16xbf16>, vector<16xbf16>, vector<16xbf16>)
      %kt = arith.divui %kc, %c32 : index
      %kcol = arith.remui %kc, %c32 : index
      %t2 = arith.muli %kt, %c2 : index
      %t3 = arith.addi %t2, %half : index
      %t4 = arith.muli %t3, %c16 : index
      %rh = arith.addi %t4, %ir : index
      %rm = arith.addi %rh, %K : index
      %rl = arith.addi %rm, %K : index
      vector.store %pc#0, %Ap[%rh, %kcol] : memref<?x32xbf16>, vector<16xbf16>
      vector.store %pc#1, %Ap[%rm, %kcol] : memref<?x32xbf16>, vector<16xbf16>
      vector.store %pc#2, %Ap[%rl, %kcol] : memref<?x32xbf16>, vector<16xbf16>
    }
  }
  // Piece p of B starts at row p KT NT 16 (= p K N / 32).
  %kn = arith.muli %KT, %NT : index
  %bPiece = arith.muli %kn, %c16 : index
  %i16 = arith.addi %i0, %c16 : index
  scf.for %j0 = %c0 to %N step %c32 {
    %jt = arith.divui %j0, %c16 : index
    %j16 = arith.addi %j0, %c16 : index
    // Four zero accumulators loaded from Z: one tile_zero would be copied
    // into the four through the stack.
    %z00 = amx.tile_load %Z[%c0, %c0] : memref<16x16xf32> into !amx.tile<16x16xf32>
    %z01 = amx.tile_load %Z[%c0, %c0] : memref<16x16xf32> into !amx.tile<16x16xf32>
    %z10 = amx.tile_load %Z[%c0, %c0] : memref<16x16xf32> into !amx.tile<16x16xf32>
    %z11 = amx.tile_load %Z[%c0, %c0] : memref<16x16xf32> into !amx.tile<16x16xf32>
    %acc:4 = scf.for %kt = %c0 to %KT step %c1 iter_args(%c00 = %z00, %c01 = %z01, %c10 = %z10, %c11 = %z11) -> (!amx.tile<16x16xf32>, !amx.tile<16x16xf32>, !amx.tile<16x16xf32>, !amx.tile<16x16xf32>) {
      %a2 = arith.muli %kt, %c2 : index
      %ar0 = arith.muli %a2, %c16 : index
      %ar0b = arith.addi %ar0, %c16 : index
      %ar1 = arith.addi %ar0, %K : index
      %ar1b = arith.addi %ar1, %c16 : index
      %ar2 = arith.addi %ar1, %K : index
      %ar2b = arith.addi %ar2, %c16 : index
      %bt0 = arith.muli %kt, %NT : index
      %bt1 = arith.addi %bt0, %jt : index
      %br0 = arith.muli %bt1, %c16 : index
      %br0b = arith.addi %br0, %c16 : index
      %br1 = arith.addi %br0, %bPiece : index
      %br1b = arith.addi %br1, %c16 : index
      %br2 = arith.addi %br1, %bPiece : index
      %br2b = arith.addi %br2, %c16 : index
      %ah0 = amx.tile_load %Ap[%ar0, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %ah1 = amx.tile_load %Ap[%ar0b, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %bh0 = amx.tile_load %Bv[%br0, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %bh1 = amx.tile_load %Bv[%br0b, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %m00_1 = amx.tile_mulf %ah0, %bh0, %c00 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m01_2 = amx.tile_mulf %ah0, %bh1, %c01 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m10_3 = amx.tile_mulf %ah1, %bh0, %c10 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m11_4 = amx.tile_mulf %ah1, %bh1, %c11 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %bm0 = amx.tile_load %Bv[%br1, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %bm1 = amx.tile_load %Bv[%br1b, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %m00_5 = amx.tile_mulf %ah0, %bm0, %m00_1 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m01_6 = amx.tile_mulf %ah0, %bm1, %m01_2 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m10_7 = amx.tile_mulf %ah1, %bm0, %m10_3 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m11_8 = amx.tile_mulf %ah1, %bm1, %m11_4 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %bl0 = amx.tile_load %Bv[%br2, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %bl1 = amx.tile_load %Bv[%br2b, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %m00_9 = amx.tile_mulf %ah0, %bl0, %m00_5 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m01_10 = amx.tile_mulf %ah0, %bl1, %m01_6 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m10_11 = amx.tile_mulf %ah1, %bl0, %m10_7 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m11_12 = amx.tile_mulf %ah1, %bl1, %m11_8 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %am0 = amx.tile_load %Ap[%ar1, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %am1 = amx.tile_load %Ap[%ar1b, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %bh2 = amx.tile_load %Bv[%br0, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %bh3 = amx.tile_load %Bv[%br0b, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %m00_13 = amx.tile_mulf %am0, %bh2, %m00_9 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m01_14 = amx.tile_mulf %am0, %bh3, %m01_10 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m10_15 = amx.tile_mulf %am1, %bh2, %m10_11 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m11_16 = amx.tile_mulf %am1, %bh3, %m11_12 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %bm2 = amx.tile_load %Bv[%br1, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %bm3 = amx.tile_load %Bv[%br1b, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %m00_17 = amx.tile_mulf %am0, %bm2, %m00_13 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m01_18 = amx.tile_mulf %am0, %bm3, %m01_14 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m10_19 = amx.tile_mulf %am1, %bm2, %m10_15 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m11_20 = amx.tile_mulf %am1, %bm3, %m11_16 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %al0 = amx.tile_load %Ap[%ar2, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %al1 = amx.tile_load %Ap[%ar2b, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %bh4 = amx.tile_load %Bv[%br0, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %bh5 = amx.tile_load %Bv[%br0b, %c0] : memref<?x32xbf16> into !amx.tile<16x32xbf16>
      %m00_21 = amx.tile_mulf %al0, %bh4, %m00_17 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m01_22 = amx.tile_mulf %al0, %bh5, %m01_18 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m10_23 = amx.tile_mulf %al1, %bh4, %m10_19 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      %m11_24 = amx.tile_mulf %al1, %bh5, %m11_20 : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
      scf.yield %m00_21, %m01_22, %m10_23, %m11_24 : !amx.tile<16x16xf32>, !amx.tile<16x16xf32>, !amx.tile<16x16xf32>, !amx.tile<16x16xf32>
    }
    amx.tile_store %C[%i0, %j0], %acc#0 : memref<?x?xf32>, !amx.tile<16x16xf32>
    amx.tile_store %C[%i0, %j16], %acc#1 : memref<?x?xf32>, !amx.tile<16x16xf32>
    amx.tile_store %C[%i16, %j0], %acc#2 : memref<?x?xf32>, !amx.tile<16x16xf32>
    amx.tile_store %C[%i16, %j16], %acc#3 : memref<?x?xf32>, !amx.tile<16x16xf32>
  }
  return
}

func.func private @hag_matmul_nt_amx(%A: memref<?x?xf32>, %B: memref<?x?xf32>,
                                     %C: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  %false = arith.constant false
  %o0 = arith.constant 0 : index
  %o1 = arith.constant 1 : index
  %o2 = arith.constant 2 : index
  %o3 = arith.constant 3 : index
  %o4 = arith.constant 4 : index
  %o5 = arith.constant 5 : index
  %o6 = arith.constant 6 : index
  %o7 = arith.constant 7 : index
  %M = memref.dim %A, %c0 : memref<?x?xf32>
  %K = memref.dim %A, %c1 : memref<?x?xf32>
  %N = memref.dim %B, %c0 : memref<?x?xf32>
  %kRem = arith.remui %K, %c32 : index
  %nRem = arith.remui %N, %c32 : index
  %kOk = arith.cmpi eq, %kRem, %c0 : index
  %nOk = arith.cmpi eq, %nRem, %c0 : index
  %mOk = arith.cmpi uge, %M, %c32 : index
  %kn = arith.andi %kOk, %nOk : i1
  %shapeOk = arith.andi %kn, %mOk : i1
  %use = scf.if %shapeOk -> (i1) {
    %p = func.call @hag_amx_permitted() : () -> i1
    scf.yield %p : i1
  } else {
    scf.yield %false : i1
  }
  scf.if %use {
    %Mt0 = arith.divui %M, %c32 : index
    %Mt = arith.muli %Mt0, %c32 : index
    %KT = arith.divui %K, %c32 : index
    %NT = arith.divui %N, %c16 : index
    // B's pieces as contiguous 16 x 32 tiles in the pair-interleaved
    // layout: tile (p, kt, jt) at row ((p KT + kt) NT + jt) 16 holds
    // element (k, n) of piece p at row (k mod 32) / 2, column
    // 2 (n mod 16) + k mod 2 (k in 32 kt .. +32, n in 16 jt .. +16).
    %ktnt = arith.muli %KT, %NT : index
    %bPiece = arith.muli %ktnt, %c16 : index
    %bRows = arith.muli %bPiece, %c3 : index
    %Bv = memref.alloc(%bRows) : memref<?x32xbf16>
    scf.parallel (%n) = (%c0) to (%N) step (%c1) {
      %jt = arith.divui %n, %c16 : index
      %nr = arith.remui %n, %c16 : index
      %ncol = arith.muli %nr, %c2 : index
      scf.for %kc = %c0 to %K step %c16 {
        %x = vector.load %B[%n, %kc] : memref<?x?xf32>, vector<16xf32>
        %pc:3 = func.call @hag_bf16x3(%x) : (vector<16xf32>) -> (vector<16xbf16>, vector<16xbf16>, vector<16xbf16>)
        %kt = arith.divui %kc, %c32 : index
        %kin = arith.remui %kc, %c32 : index
        %kin2 = arith.divui %kin, %c2 : index
        %t0 = arith.muli %kt, %NT : index
        %t1 = arith.addi %t0, %jt : index
        %t2 = arith.muli %t1, %c16 : index
        %rb = arith.addi %t2, %kin2 : index
        // Element 2 i + e of the chunk: row rb + i, column ncol + e.
        %h2 = vector.shape_cast %pc#0 : vector<16xbf16> to vector<8x2xbf16>
        %m2 = vector.shape_cast %pc#1 : vector<16xbf16> to vector<8x2xbf16>
        %l2 = vector.shape_cast %pc#2 : vector<16xbf16> to vector<8x2xbf16>
        %kr0 = arith.addi %rb, %o0 : index
        %krm0 = arith.addi %kr0, %bPiece : index
        %krl0 = arith.addi %krm0, %bPiece : index
        %h2e0 = vector.extract %h2[0] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %h2e0, %Bv[%kr0, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %m2e0 = vector.extract %m2[0] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %m2e0, %Bv[%krm0, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %l2e0 = vector.extract %l2[0] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %l2e0, %Bv[%krl0, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %kr1 = arith.addi %rb, %o1 : index
        %krm1 = arith.addi %kr1, %bPiece : index
        %krl1 = arith.addi %krm1, %bPiece : index
        %h2e1 = vector.extract %h2[1] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %h2e1, %Bv[%kr1, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %m2e1 = vector.extract %m2[1] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %m2e1, %Bv[%krm1, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %l2e1 = vector.extract %l2[1] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %l2e1, %Bv[%krl1, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %kr2 = arith.addi %rb, %o2 : index
        %krm2 = arith.addi %kr2, %bPiece : index
        %krl2 = arith.addi %krm2, %bPiece : index
        %h2e2 = vector.extract %h2[2] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %h2e2, %Bv[%kr2, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %m2e2 = vector.extract %m2[2] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %m2e2, %Bv[%krm2, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %l2e2 = vector.extract %l2[2] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %l2e2, %Bv[%krl2, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %kr3 = arith.addi %rb, %o3 : index
        %krm3 = arith.addi %kr3, %bPiece : index
        %krl3 = arith.addi %krm3, %bPiece : index
        %h2e3 = vector.extract %h2[3] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %h2e3, %Bv[%kr3, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %m2e3 = vector.extract %m2[3] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %m2e3, %Bv[%krm3, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %l2e3 = vector.extract %l2[3] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %l2e3, %Bv[%krl3, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %kr4 = arith.addi %rb, %o4 : index
        %krm4 = arith.addi %kr4, %bPiece : index
        %krl4 = arith.addi %krm4, %bPiece : index
        %h2e4 = vector.extract %h2[4] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %h2e4, %Bv[%kr4, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %m2e4 = vector.extract %m2[4] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %m2e4, %Bv[%krm4, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %l2e4 = vector.extract %l2[4] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %l2e4, %Bv[%krl4, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %kr5 = arith.addi %rb, %o5 : index
        %krm5 = arith.addi %kr5, %bPiece : index
        %krl5 = arith.addi %krm5, %bPiece : index
        %h2e5 = vector.extract %h2[5] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %h2e5, %Bv[%kr5, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %m2e5 = vector.extract %m2[5] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %m2e5, %Bv[%krm5, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %l2e5 = vector.extract %l2[5] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %l2e5, %Bv[%krl5, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %kr6 = arith.addi %rb, %o6 : index
        %krm6 = arith.addi %kr6, %bPiece : index
        %krl6 = arith.addi %krm6, %bPiece : index
        %h2e6 = vector.extract %h2[6] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %h2e6, %Bv[%kr6, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %m2e6 = vector.extract %m2[6] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %m2e6, %Bv[%krm6, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %l2e6 = vector.extract %l2[6] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %l2e6, %Bv[%krl6, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %kr7 = arith.addi %rb, %o7 : index
        %krm7 = arith.addi %kr7, %bPiece : index
        %krl7 = arith.addi %krm7, %bPiece : index
        %h2e7 = vector.extract %h2[7] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %h2e7, %Bv[%kr7, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %m2e7 = vector.extract %m2[7] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %m2e7, %Bv[%krm7, %ncol] : memref<?x32xbf16>, vector<2xbf16>
        %l2e7 = vector.extract %l2[7] : vector<2xbf16> from vector<8x2xbf16>
        vector.store %l2e7, %Bv[%krl7, %ncol] : memref<?x32xbf16>, vector<2xbf16>
      }
      scf.reduce
    }
    scf.parallel (%i0) = (%c0) to (%Mt) step (%c32) {
      func.call @hag_matmul_amx_rows(%A, %Bv, %C, %i0) : (memref<?x?xf32>, memref<?x32xbf16>, memref<?x?xf32>, index) -> ()
      scf.reduce
    }
    // Rows past the last block of 32.
    func.call @hag_matmul_dot_rows(%A, %B, %C, %Mt)
        : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
  } else {
    func.call @hag_matmul_nt(%A, %B, %C) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
  }
  return
}
