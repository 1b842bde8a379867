// The CUDA library's cross-level attention for a head size known when the
// library is loaded: a TEMPLATE, instantiated by HAGToLinalg.cpp for each
// head size it serves with every `__D__` replaced by the size (32, 64,
// 128), `__C__` by size / 8 and `__DOT__` by the FMA chain of
// %part = sum over c < size / 8 of %q2[c] * %k2[c] (vector<8xf32>).
// @hag_pyramid_attention in pyramid_attention.mlir calls the instance of
// its head size (scf.index_switch on d) and keeps its generic
// loop for the others.
//
// One thread per (batch, head, query), as the generic loop, but the query
// row and the unnormalised output live in registers (vector<__D__xf32>):
// each key costs one row load of K and of V (the threads of a warp are
// consecutive queries of one block and head, so they mostly read the same
// rows: broadcast loads) and 2 __D__ FMAs, with no traffic to `out` until
// the row is finished. The summary tokens come precomputed per query block
// (@hag_gpu_summary_rows, pyramid_attention.mlir), so every key source is
// rows of a K/V pair with a bias column.

// The online softmax over rows [s, e) of K/V (columns [kcol, kcol + __D__))
// with biases bias[b, j], for the query qv: the running max, denominator
// and output go in and out.
func.func private @hag_gpu_attend_v__D__(%qv: vector<__D__xf32>,
    %K: memref<?x?x?xf32>, %V: memref<?x?x?xf32>, %bias: memref<?x?xf32>,
    %b: index, %kcol: index, %s: index, %e: index, %scale: f32,
    %m0: f32, %den0: f32, %acc0: vector<__D__xf32>)
    -> (f32, f32, vector<__D__xf32>) {
  %c1 = arith.constant 1 : index
  %res:3 = scf.for %j = %s to %e step %c1
      iter_args(%m = %m0, %den = %den0, %acc = %acc0)
      -> (f32, f32, vector<__D__xf32>) {
    %kv = vector.load %K[%b, %j, %kcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    // q . k as 8 FMA chains over __D__ / 8 chunks, then 8 lanes summed.
    %q2 = vector.shape_cast %qv : vector<__D__xf32> to vector<__C__x8xf32>
    %k2 = vector.shape_cast %kv : vector<__D__xf32> to vector<__C__x8xf32>
__DOT__
    %dot = vector.reduction <add>, %part fastmath<reassoc> : vector<8xf32> into f32
    %bj = memref.load %bias[%b, %j] : memref<?x?xf32>
    %l = math.fma %dot, %scale, %bj : f32
    %mN, %den1, %alpha, %p = func.call @hag_gpu_online_step(%m, %den, %l)
        : (f32, f32, f32) -> (f32, f32, f32, f32)
    %vv = vector.load %V[%b, %j, %kcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %ps = vector.broadcast %p : f32 to vector<__D__xf32>
    // The output is rescaled only when the running max grows (alpha is
    // exactly 1 otherwise, so skipping it changes no bit).
    %grows = arith.cmpf ogt, %l, %m : f32
    %scaled = scf.if %grows -> (vector<__D__xf32>) {
      %as = vector.broadcast %alpha : f32 to vector<__D__xf32>
      %x = arith.mulf %acc, %as : vector<__D__xf32>
      scf.yield %x : vector<__D__xf32>
    } else {
      scf.yield %acc : vector<__D__xf32>
    }
    %acc2 = math.fma %ps, %vv, %scaled : vector<__D__xf32>
    scf.yield %mN, %den1, %acc2 : f32, f32, vector<__D__xf32>
  }
  return %res#0, %res#1, %res#2 : f32, f32, vector<__D__xf32>
}

// Same arguments as the generic loop of @hag_pyramid_attention, plus the
// per-block summary rows sumK/sumV [batch, blocks * T, Hkv * d] and their
// biases sumB [batch, blocks * T] (rows qb T .. qb T + T' of block qb).
func.func private @hag_gpu_attention_v__D__(
    %q: memref<?x?x?xf32>, %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>,
    %gB: memref<?x?xf32>, %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>,
    %levB: memref<?x?xf32>, %sumK: memref<?x?x?xf32>,
    %sumV: memref<?x?x?xf32>, %sumB: memref<?x?xf32>,
    %sel: memref<?x?x?xindex>, %out: memref<?x?x?xf32>,
    %H: index, %Hkv: index, %B: index, %r: index, %L: index, %W: index,
    %T: index, %causal: i1, %selectK: index, %scale: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %d = arith.constant __D__ : index
  %one = arith.constant 1.0 : f32
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %zeros = arith.constant dense<0.0> : vector<__D__xf32>
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  %n = memref.dim %q, %c1 : memref<?x?x?xf32>
  scf.parallel (%b, %h, %i) = (%c0, %c0, %c0) to (%bt, %H, %n) step (%c1, %c1, %c1) {
    %hH = arith.muli %h, %Hkv : index
    %kvh = arith.divui %hH, %H : index
    %qcol = arith.muli %h, %d : index
    %kcol = arith.muli %kvh, %d : index
    %qb = arith.divui %i, %B : index
    %qv = vector.load %q[%b, %i, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    // Level 1: [a1, i] causal; [a1, e1) bidirectional.
    %a1, %e1b, %kp = func.call @hag_gpu_block_bounds(%qb, %B, %n, %causal, %selectK)
        : (index, index, index, i1, index) -> (index, index, index)
    %i1 = arith.addi %i, %c1 : index
    %e1 = arith.select %causal, %i1, %e1b : index
    %s1:3 = func.call @hag_gpu_attend_v__D__(%qv, %k, %v, %gB, %b, %kcol, %a1, %e1, %scale, %ninf, %zero, %zeros)
        : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    // Levels 2 .. L-1: the left window [a_l, c_l) and the right [e'_l, e_l).
    %lv:7 = scf.for %l = %c2 to %L step %c1
        iter_args(%aPrev = %a1, %ePrev = %e1b, %nPrev = %n, %off = %c0, %m = %s1#0, %den = %s1#1, %o = %s1#2)
        -> (index, index, index, index, f32, f32, vector<__D__xf32>) {
      %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
      %w:4 = func.call @hag_level_window(%aPrev, %ePrev, %l, %L, %r, %W, %nl, %causal)
          : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
      %ls = arith.addi %off, %w#0 : index
      %le = arith.addi %off, %w#1 : index
      %t1:3 = func.call @hag_gpu_attend_v__D__(%qv, %levK, %levV, %levB, %b, %kcol, %ls, %le, %scale, %m, %den, %o)
          : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
      %rs = arith.addi %off, %w#2 : index
      %re = arith.addi %off, %w#3 : index
      %t2:3 = func.call @hag_gpu_attend_v__D__(%qv, %levK, %levV, %levB, %b, %kcol, %rs, %re, %scale, %t1#0, %t1#1, %t1#2)
          : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
      %offN = arith.addi %off, %nl : index
      scf.yield %w#0, %w#3, %nl, %offN, %t2#0, %t2#1, %t2#2 : index, index, index, index, f32, f32, vector<__D__xf32>
    }
    // The block's T' summary rows (@hag_gpu_summary_rows: the same a_{L-1}
    // and floor rule as the generic loop).
    %span:2 = func.call @hag_gpu_summary_span(%lv#0, %n, %r, %L, %T, %causal)
        : (index, index, index, index, index, i1) -> (index, index)
    %sBase = arith.muli %qb, %T : index
    %sEnd = arith.addi %sBase, %span#1 : index
    %sm:3 = func.call @hag_gpu_attend_v__D__(%qv, %sumK, %sumV, %sumB, %b, %kcol, %sBase, %sEnd, %scale, %lv#4, %lv#5, %lv#6)
        : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    // select_k picks: raw keys, as many as the block has candidates.
    %fin:3 = scf.for %p = %c0 to %kp step %c1
        iter_args(%m = %sm#0, %den = %sm#1, %o = %sm#2) -> (f32, f32, vector<__D__xf32>) {
      %j = memref.load %sel[%b, %qb, %p] : memref<?x?x?xindex>
      %j1 = arith.addi %j, %c1 : index
      %t3:3 = func.call @hag_gpu_attend_v__D__(%qv, %k, %v, %gB, %b, %kcol, %j, %j1, %scale, %m, %den, %o)
          : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
      scf.yield %t3#0, %t3#1, %t3#2 : f32, f32, vector<__D__xf32>
    }
    %inv = arith.divf %one, %fin#1 : f32
    %invs = vector.broadcast %inv : f32 to vector<__D__xf32>
    %res = arith.mulf %fin#2, %invs : vector<__D__xf32>
    vector.store %res, %out[%b, %i, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    scf.reduce
  }
  return
}

// The attention of @hag_pyramid_attention for this head size: the Tensor
// Core kernel when a query block holds whole 64-query tiles (B % 64 = 0,
// so every tile's queries share their block's key ranges), else the
// register kernel above.
func.func private @hag_gpu_attention_d__D__(
    %q: memref<?x?x?xf32>, %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>,
    %gB: memref<?x?xf32>, %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>,
    %levB: memref<?x?xf32>, %sumK: memref<?x?x?xf32>,
    %sumV: memref<?x?x?xf32>, %sumB: memref<?x?xf32>,
    %sel: memref<?x?x?xindex>, %out: memref<?x?x?xf32>,
    %H: index, %Hkv: index, %B: index, %r: index, %L: index, %W: index,
    %T: index, %causal: i1, %selectK: index, %scale: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c64 = arith.constant 64 : index
  %rem = arith.remui %B, %c64 : index
  %tiles = arith.cmpi eq, %rem, %c0 : index
  scf.if %tiles {
    %n = memref.dim %q, %c1 : memref<?x?x?xf32>
    %blocks = func.call @hag_ceil_div(%n, %B) : (index, index) -> index
    // 2 S columns, S = 2 (L - 2) + 3 (@hag_gpu_block_segments).
    %lm2 = arith.subi %L, %c2 : index
    %s2 = arith.muli %lm2, %c2 : index
    %s = arith.addi %s2, %c3 : index
    %width = arith.muli %s, %c2 : index
    %segs = memref.alloc(%blocks, %width) : memref<?x?xindex>
    func.call @hag_gpu_block_segments(%segs, %n, %B, %r, %L, %W, %T, %causal, %selectK)
        : (memref<?x?xindex>, index, index, index, index, index, index, i1, index) -> ()
    func.call @hag_gpu_attention_tc__D__(%q, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel, %segs, %out, %H, %Hkv, %B, %causal, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xindex>, memref<?x?xindex>, memref<?x?x?xf32>, index, index, index, i1, f32) -> ()
  } else {
    func.call @hag_gpu_attention_v__D__(%q, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel, %out, %H, %Hkv, %B, %r, %L, %W, %T, %causal, %selectK, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xindex>, memref<?x?x?xf32>, index, index, index, index, index, index, index, i1, index, f32) -> ()
  }
  return
}

// The Tensor Core attention (CudaAttentionKernel.cpp): one block of 4 warps
// per (batch, head, 64-query tile) walks its query block's ranges of
// `segs` in key tiles of 64 with mma.sync. Declared only:
// defineCudaKernelLaunchers gives it a body that launches the kernel, or in
// the emulator (which cannot run warp-level code) the body that calls
// @hag_gpu_attention_segments_v__D__.
func.func private @hag_gpu_attention_tc__D__(
    %q: memref<?x?x?xf32>, %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>,
    %gB: memref<?x?xf32>, %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>,
    %levB: memref<?x?xf32>, %sumK: memref<?x?x?xf32>,
    %sumV: memref<?x?x?xf32>, %sumB: memref<?x?xf32>,
    %sel: memref<?x?x?xindex>, %segs: memref<?x?xindex>,
    %out: memref<?x?x?xf32>, %H: index, %Hkv: index, %B: index,
    %causal: i1, %scale: f32)
    attributes {hag.emulated_by = @hag_gpu_attention_segments_v__D__}

// The Tensor Core kernel's key walk with the register kernel's arithmetic
// (f32), one thread per (batch, head, query): what the emulator runs in its
// place. The ranges come from `segs`, so the emulator checks them (and the
// causal clipping of range 0) against the CPU; the walk's order is the
// register kernel's, so the values are that kernel's.
func.func private @hag_gpu_attention_segments_v__D__(
    %q: memref<?x?x?xf32>, %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>,
    %gB: memref<?x?xf32>, %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>,
    %levB: memref<?x?xf32>, %sumK: memref<?x?x?xf32>,
    %sumV: memref<?x?x?xf32>, %sumB: memref<?x?xf32>,
    %sel: memref<?x?x?xindex>, %segs: memref<?x?xindex>,
    %out: memref<?x?x?xf32>, %H: index, %Hkv: index, %B: index,
    %causal: i1, %scale: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %d = arith.constant __D__ : index
  %one = arith.constant 1.0 : f32
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %zeros = arith.constant dense<0.0> : vector<__D__xf32>
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  %n = memref.dim %q, %c1 : memref<?x?x?xf32>
  %width = memref.dim %segs, %c1 : memref<?x?xindex>
  %S = arith.divui %width, %c2 : index
  %sumSlot = arith.subi %S, %c2 : index
  %pickSlot = arith.subi %S, %c1 : index
  scf.parallel (%b, %h, %i) = (%c0, %c0, %c0) to (%bt, %H, %n) step (%c1, %c1, %c1) {
    %hH = arith.muli %h, %Hkv : index
    %kvh = arith.divui %hH, %H : index
    %qcol = arith.muli %h, %d : index
    %kcol = arith.muli %kvh, %d : index
    %qb = arith.divui %i, %B : index
    %qv = vector.load %q[%b, %i, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %s0 = memref.load %segs[%qb, %c0] : memref<?x?xindex>
    %e0 = memref.load %segs[%qb, %c1] : memref<?x?xindex>
    %i1 = arith.addi %i, %c1 : index
    %e0c = arith.minui %e0, %i1 : index
    %e0q = arith.select %causal, %e0c, %e0 : index
    %r0:3 = func.call @hag_gpu_attend_v__D__(%qv, %k, %v, %gB, %b, %kcol, %s0, %e0q, %scale, %ninf, %zero, %zeros)
        : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    %lv:3 = scf.for %slot = %c1 to %sumSlot step %c1
        iter_args(%m = %r0#0, %den = %r0#1, %o = %r0#2) -> (f32, f32, vector<__D__xf32>) {
      %cs = arith.muli %slot, %c2 : index
      %ce = arith.addi %cs, %c1 : index
      %ls = memref.load %segs[%qb, %cs] : memref<?x?xindex>
      %le = memref.load %segs[%qb, %ce] : memref<?x?xindex>
      %t:3 = func.call @hag_gpu_attend_v__D__(%qv, %levK, %levV, %levB, %b, %kcol, %ls, %le, %scale, %m, %den, %o)
          : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
      scf.yield %t#0, %t#1, %t#2 : f32, f32, vector<__D__xf32>
    }
    %sc = arith.muli %sumSlot, %c2 : index
    %sc1 = arith.addi %sc, %c1 : index
    %ss = memref.load %segs[%qb, %sc] : memref<?x?xindex>
    %se = memref.load %segs[%qb, %sc1] : memref<?x?xindex>
    %sm:3 = func.call @hag_gpu_attend_v__D__(%qv, %sumK, %sumV, %sumB, %b, %kcol, %ss, %se, %scale, %lv#0, %lv#1, %lv#2)
        : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    %pc = arith.muli %pickSlot, %c2 : index
    %pc1 = arith.addi %pc, %c1 : index
    %ps = memref.load %segs[%qb, %pc] : memref<?x?xindex>
    %pe = memref.load %segs[%qb, %pc1] : memref<?x?xindex>
    %fin:3 = scf.for %p = %ps to %pe step %c1
        iter_args(%m = %sm#0, %den = %sm#1, %o = %sm#2) -> (f32, f32, vector<__D__xf32>) {
      %j = memref.load %sel[%b, %qb, %p] : memref<?x?x?xindex>
      %j1 = arith.addi %j, %c1 : index
      %t3:3 = func.call @hag_gpu_attend_v__D__(%qv, %k, %v, %gB, %b, %kcol, %j, %j1, %scale, %m, %den, %o)
          : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
      scf.yield %t3#0, %t3#1, %t3#2 : f32, f32, vector<__D__xf32>
    }
    %inv = arith.divf %one, %fin#1 : f32
    %invs = vector.broadcast %inv : f32 to vector<__D__xf32>
    %res = arith.mulf %fin#2, %invs : vector<__D__xf32>
    vector.store %res, %out[%b, %i, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    scf.reduce
  }
  return
}

// Incremental decoding's attention for this head size (the last step of
// @hag_pyramid_decode): one thread per (batch, head), the new token's query
// in registers, the same key order and the same @hag_gpu_attend_v__D__ as
// the forward's register kernel, so a step's output matches the forward's
// row (the cache's summary rows are the forward's bit for bit):
// level 1 raw rows [a1, n), every compressed level's left window at its
// rows from S on, the summary rows [sumOff, sumOff + T'), the select_k
// rows [selOff, selOff + k'), all in the decoding cache cK/cV with the
// biases aux[b, row].
func.func private @hag_gpu_decode_attention_v__D__(
    %q: memref<?x?x?xf32>, %cK: memref<?x?x?xf32>, %cV: memref<?x?x?xf32>,
    %aux: memref<?x?xf32>, %out: memref<?x?x?xf32>, %H: index, %Hkv: index,
    %a1: index, %n: index, %S: index, %L: index, %r: index, %W: index,
    %sumOff: index, %tp: index, %selOff: index, %kp: index, %scale: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %true = arith.constant true
  %d = arith.constant __D__ : index
  %one = arith.constant 1.0 : f32
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %zeros = arith.constant dense<0.0> : vector<__D__xf32>
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  scf.parallel (%b, %h) = (%c0, %c0) to (%bt, %H) step (%c1, %c1) {
    %hH = arith.muli %h, %Hkv : index
    %kvh = arith.divui %hH, %H : index
    %qcol = arith.muli %h, %d : index
    %kcol = arith.muli %kvh, %d : index
    %qv = vector.load %q[%b, %c0, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %s1:3 = func.call @hag_gpu_attend_v__D__(%qv, %cK, %cV, %aux, %b, %kcol, %a1, %n, %scale, %ninf, %zero, %zeros)
        : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    %lv:6 = scf.for %l = %c2 to %L step %c1
        iter_args(%a = %a1, %off = %S, %nMaxPrev = %S, %m = %s1#0, %den = %s1#1, %o = %s1#2)
        -> (index, index, index, f32, f32, vector<__D__xf32>) {
      %nMax = func.call @hag_ceil_div(%nMaxPrev, %r) : (index, index) -> index
      %w:4 = func.call @hag_level_window(%a, %c0, %l, %L, %r, %W, %nMax, %true)
          : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
      %la = arith.addi %off, %w#0 : index
      %lc = arith.addi %off, %w#1 : index
      %t1:3 = func.call @hag_gpu_attend_v__D__(%qv, %cK, %cV, %aux, %b, %kcol, %la, %lc, %scale, %m, %den, %o)
          : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
      %offNext = arith.addi %off, %nMax : index
      scf.yield %w#0, %offNext, %nMax, %t1#0, %t1#1, %t1#2 : index, index, index, f32, f32, vector<__D__xf32>
    }
    %sEnd = arith.addi %sumOff, %tp : index
    %s2:3 = func.call @hag_gpu_attend_v__D__(%qv, %cK, %cV, %aux, %b, %kcol, %sumOff, %sEnd, %scale, %lv#3, %lv#4, %lv#5)
        : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    %kEnd = arith.addi %selOff, %kp : index
    %s3:3 = func.call @hag_gpu_attend_v__D__(%qv, %cK, %cV, %aux, %b, %kcol, %selOff, %kEnd, %scale, %s2#0, %s2#1, %s2#2)
        : (vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    %inv = arith.divf %one, %s3#1 : f32
    %invs = vector.broadcast %inv : f32 to vector<__D__xf32>
    %res = arith.mulf %s3#2, %invs : vector<__D__xf32>
    vector.store %res, %out[%b, %c0, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    scf.reduce
  }
  return
}
