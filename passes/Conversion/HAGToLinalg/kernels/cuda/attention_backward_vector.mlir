// The CUDA library's pyramid attention backward, steps 1 and 2 (see
// pyramid_attention_backward.mlir), for a head size known when the library
// is loaded: a TEMPLATE like attention_vector.mlir (`__D__` the size,
// `__C__` size / 8, `__DOT__` the FMA chain %part = sum_c %q2[c] * %k2[c]).
// Instantiated for d = 32 (HAGToLinalg.cpp): there a thread's rows fit in
// registers (ptxas: <= 239, no spills); at 64 and 128 the 3 to 4 rows per
// thread spilled 1-25 KB, and @hag_pyramid_attention_backward keeps the
// generic loops for them.
//
// The same threads and the same arithmetic order of the sums over keys and
// queries as the generic loops, but every row a thread keeps (its query, its
// output gradient and dq; its key, value and their gradients) lives in
// registers (vector<__D__xf32>, 16-byte loads): each key (each query) of the
// walk costs two row loads and 4 __D__ FMAs, and nothing is written until the
// row is finished. A warp's threads are consecutive rows of one head, so
// they mostly read the same rows (broadcast loads).

// a . b as 8 FMA chains over __D__ / 8 chunks, then 8 lanes summed.
func.func private @hag_gpu_bwd_dot_v__D__(%qv: vector<__D__xf32>,
    %kv: vector<__D__xf32>) -> f32 {
  %q2 = vector.shape_cast %qv : vector<__D__xf32> to vector<__C__x8xf32>
  %k2 = vector.shape_cast %kv : vector<__D__xf32> to vector<__C__x8xf32>
__DOT__
  %dot = vector.reduction <add>, %part fastmath<reassoc> : vector<8xf32> into f32
  return %dot : f32
}

// Query qv (output gradient dov) against rows [s, e) of K/V with biases
// bias[b, j]. mode false: (s0, s1) = the online max and sum. mode true:
// s0 = lse, s1 = D, and dq += dS_ij k_j (unscaled).
func.func private @hag_gpu_bwd_rows_v__D__(%mode: i1, %qv: vector<__D__xf32>,
    %dov: vector<__D__xf32>, %K: memref<?x?x?xf32>, %V: memref<?x?x?xf32>,
    %bias: memref<?x?xf32>, %b: index, %kcol: index, %s: index, %e: index,
    %scale: f32, %s0: f32, %s1: f32, %dq0: vector<__D__xf32>)
    -> (f32, f32, vector<__D__xf32>) {
  %c1 = arith.constant 1 : index
  %res:3 = scf.for %j = %s to %e step %c1
      iter_args(%a = %s0, %c = %s1, %dq = %dq0) -> (f32, f32, vector<__D__xf32>) {
    %kv = vector.load %K[%b, %j, %kcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %dot = func.call @hag_gpu_bwd_dot_v__D__(%qv, %kv) : (vector<__D__xf32>, vector<__D__xf32>) -> f32
    %bj = memref.load %bias[%b, %j] : memref<?x?xf32>
    %l = math.fma %dot, %scale, %bj : f32
    %r:3 = scf.if %mode -> (f32, f32, vector<__D__xf32>) {
      %ls = arith.subf %l, %a : f32
      %p = math.exp %ls : f32
      %vv = vector.load %V[%b, %j, %kcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
      %dp = func.call @hag_gpu_bwd_dot_v__D__(%dov, %vv) : (vector<__D__xf32>, vector<__D__xf32>) -> f32
      %diff = arith.subf %dp, %c : f32
      %ds = arith.mulf %p, %diff : f32
      %dsv = vector.broadcast %ds : f32 to vector<__D__xf32>
      %dq2 = math.fma %dsv, %kv, %dq : vector<__D__xf32>
      scf.yield %a, %c, %dq2 : f32, f32, vector<__D__xf32>
    } else {
      // The forward's online step (@hag_gpu_online_step).
      %mN, %c2, %alpha, %p = func.call @hag_gpu_online_step(%a, %c, %l)
          : (f32, f32, f32) -> (f32, f32, f32, f32)
      scf.yield %mN, %c2, %dq : f32, f32, vector<__D__xf32>
    }
    scf.yield %r#0, %r#1, %r#2 : f32, f32, vector<__D__xf32>
  }
  return %res#0, %res#1, %res#2 : f32, f32, vector<__D__xf32>
}

// Query i's whole key set (the forward's walk) through the rows function.
func.func private @hag_gpu_bwd_walk_v__D__(%mode: i1, %qv: vector<__D__xf32>,
    %dov: vector<__D__xf32>, %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>,
    %gB: memref<?x?xf32>, %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>,
    %levB: memref<?x?xf32>, %sumK: memref<?x?x?xf32>, %sumV: memref<?x?x?xf32>,
    %sumB: memref<?x?xf32>, %sel: memref<?x?x?xindex>, %b: index, %i: index,
    %kcol: index, %n: index, %B: index, %r: index, %L: index, %W: index,
    %T: index, %causal: i1, %selectK: index, %scale: f32, %s0: f32, %s1: f32,
    %dq0: vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %qb = arith.divui %i, %B : index
  %a1, %e1b, %kp = func.call @hag_gpu_block_bounds(%qb, %B, %n, %causal, %selectK)
      : (index, index, index, i1, index) -> (index, index, index)
  %i1 = arith.addi %i, %c1 : index
  %e1 = arith.select %causal, %i1, %e1b : index
  %w1:3 = func.call @hag_gpu_bwd_rows_v__D__(%mode, %qv, %dov, %k, %v, %gB, %b, %kcol, %a1, %e1, %scale, %s0, %s1, %dq0)
      : (i1, vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
  %lv:7 = scf.for %l = %c2 to %L step %c1
      iter_args(%aPrev = %a1, %ePrev = %e1b, %nPrev = %n, %off = %c0, %x0 = %w1#0, %x1 = %w1#1, %x2 = %w1#2)
      -> (index, index, index, index, f32, f32, vector<__D__xf32>) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%aPrev, %ePrev, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %ls = arith.addi %off, %w#0 : index
    %le = arith.addi %off, %w#1 : index
    %t1:3 = func.call @hag_gpu_bwd_rows_v__D__(%mode, %qv, %dov, %levK, %levV, %levB, %b, %kcol, %ls, %le, %scale, %x0, %x1, %x2)
        : (i1, vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    %rs = arith.addi %off, %w#2 : index
    %re = arith.addi %off, %w#3 : index
    %t2:3 = func.call @hag_gpu_bwd_rows_v__D__(%mode, %qv, %dov, %levK, %levV, %levB, %b, %kcol, %rs, %re, %scale, %t1#0, %t1#1, %t1#2)
        : (i1, vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    %offN = arith.addi %off, %nl : index
    scf.yield %w#0, %w#3, %nl, %offN, %t2#0, %t2#1, %t2#2 : index, index, index, index, f32, f32, vector<__D__xf32>
  }
  %span:2 = func.call @hag_gpu_summary_span(%lv#0, %n, %r, %L, %T, %causal)
      : (index, index, index, index, index, i1) -> (index, index)
  %sBase = arith.muli %qb, %T : index
  %sEnd = arith.addi %sBase, %span#1 : index
  %sm:3 = func.call @hag_gpu_bwd_rows_v__D__(%mode, %qv, %dov, %sumK, %sumV, %sumB, %b, %kcol, %sBase, %sEnd, %scale, %lv#4, %lv#5, %lv#6)
      : (i1, vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
  %fin:3 = scf.for %p = %c0 to %kp step %c1
      iter_args(%x0 = %sm#0, %x1 = %sm#1, %x2 = %sm#2) -> (f32, f32, vector<__D__xf32>) {
    %j = memref.load %sel[%b, %qb, %p] : memref<?x?x?xindex>
    %j1 = arith.addi %j, %c1 : index
    %t3:3 = func.call @hag_gpu_bwd_rows_v__D__(%mode, %qv, %dov, %k, %v, %gB, %b, %kcol, %j, %j1, %scale, %x0, %x1, %x2)
        : (i1, vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    scf.yield %t3#0, %t3#1, %t3#2 : f32, f32, vector<__D__xf32>
  }
  return %fin#0, %fin#1, %fin#2 : f32, f32, vector<__D__xf32>
}

// Step 1: per (batch, head, query): lse, D and dq.
func.func private @hag_gpu_bwd_queries_v__D__(%q: memref<?x?x?xf32>,
    %dout: memref<?x?x?xf32>, %out: memref<?x?x?xf32>, %dq: memref<?x?x?xf32>,
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %gB: memref<?x?xf32>,
    %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>, %levB: memref<?x?xf32>,
    %sumK: memref<?x?x?xf32>, %sumV: memref<?x?x?xf32>, %sumB: memref<?x?xf32>,
    %sel: memref<?x?x?xindex>, %lse: memref<?x?xf32>, %Dd: memref<?x?xf32>,
    %H: index, %Hkv: index, %dDyn: index, %B: index, %r: index, %L: index,
    %W: index, %T: index, %causal: i1, %selectK: index, %scale: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %d = arith.constant __D__ : index
  %false = arith.constant false
  %true = arith.constant true
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
    %bh0 = arith.muli %b, %H : index
    %bh = arith.addi %bh0, %h : index
    %qv = vector.load %q[%b, %i, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %dov = vector.load %dout[%b, %i, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %st:3 = func.call @hag_gpu_bwd_walk_v__D__(%false, %qv, %dov, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel,
        %b, %i, %kcol, %n, %B, %r, %L, %W, %T, %causal, %selectK, %scale, %ninf, %zero, %zeros)
        : (i1, vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           memref<?x?x?xindex>, index, index, index, index, index, index, index, index, index, i1, index,
           f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    %logDen = math.log %st#1 : f32
    %li = arith.addf %st#0, %logDen : f32
    %ov = vector.load %out[%b, %i, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %di = func.call @hag_gpu_bwd_dot_v__D__(%dov, %ov) : (vector<__D__xf32>, vector<__D__xf32>) -> f32
    memref.store %li, %lse[%bh, %i] : memref<?x?xf32>
    memref.store %di, %Dd[%bh, %i] : memref<?x?xf32>
    %g:3 = func.call @hag_gpu_bwd_walk_v__D__(%true, %qv, %dov, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel,
        %b, %i, %kcol, %n, %B, %r, %L, %W, %T, %causal, %selectK, %scale, %li, %di, %zeros)
        : (i1, vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           memref<?x?x?xindex>, index, index, index, index, index, index, index, index, index, i1, index,
           f32, f32, f32, vector<__D__xf32>) -> (f32, f32, vector<__D__xf32>)
    %sv = vector.broadcast %scale : f32 to vector<__D__xf32>
    %dqs = arith.mulf %g#2, %sv : vector<__D__xf32>
    vector.store %dqs, %dq[%b, %i, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    scf.reduce
  }
  return
}

// Key row (kv, vv; bias bj) against the queries [i0, i1) of head (b, h):
// returns acc + sum dS, dk + scale dS q_i, dv + P dO_i.
func.func private @hag_gpu_bwd_key_rows_v__D__(%kv: vector<__D__xf32>,
    %vv: vector<__D__xf32>, %q: memref<?x?x?xf32>, %dout: memref<?x?x?xf32>,
    %lse: memref<?x?xf32>, %Dd: memref<?x?xf32>, %b: index, %bh: index,
    %qcol: index, %i0: index, %i1: index, %scale: f32, %bj: f32, %acc0: f32,
    %dk0: vector<__D__xf32>, %dv0: vector<__D__xf32>)
    -> (f32, vector<__D__xf32>, vector<__D__xf32>) {
  %c1 = arith.constant 1 : index
  %res:3 = scf.for %i = %i0 to %i1 step %c1
      iter_args(%acc = %acc0, %dk = %dk0, %dv = %dv0) -> (f32, vector<__D__xf32>, vector<__D__xf32>) {
    %qv = vector.load %q[%b, %i, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %dot = func.call @hag_gpu_bwd_dot_v__D__(%qv, %kv) : (vector<__D__xf32>, vector<__D__xf32>) -> f32
    %l = math.fma %dot, %scale, %bj : f32
    %li = memref.load %lse[%bh, %i] : memref<?x?xf32>
    %ls = arith.subf %l, %li : f32
    %p = math.exp %ls : f32
    %dov = vector.load %dout[%b, %i, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %dp = func.call @hag_gpu_bwd_dot_v__D__(%dov, %vv) : (vector<__D__xf32>, vector<__D__xf32>) -> f32
    %di = memref.load %Dd[%bh, %i] : memref<?x?xf32>
    %diff = arith.subf %dp, %di : f32
    %ds = arith.mulf %p, %diff : f32
    %dss = arith.mulf %ds, %scale : f32
    %dssv = vector.broadcast %dss : f32 to vector<__D__xf32>
    %dk2 = math.fma %dssv, %qv, %dk : vector<__D__xf32>
    %pv = vector.broadcast %p : f32 to vector<__D__xf32>
    %dv2 = math.fma %pv, %dov, %dv : vector<__D__xf32>
    %acc2 = arith.addf %acc, %ds : f32
    scf.yield %acc2, %dk2, %dv2 : f32, vector<__D__xf32>, vector<__D__xf32>
  }
  return %res#0, %res#1, %res#2 : f32, vector<__D__xf32>, vector<__D__xf32>
}

// Step 2: per (batch, head, key row) of every source: the rows' dk, dv (per
// head) and mass gradients; the summary rows' dM share in sC.
func.func private @hag_gpu_bwd_keys_v__D__(%q: memref<?x?x?xf32>,
    %dout: memref<?x?x?xf32>, %lse: memref<?x?xf32>, %Dd: memref<?x?xf32>,
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %g: memref<?x?xf32>,
    %gB: memref<?x?xf32>, %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>,
    %levM: memref<?x?xf32>, %levB: memref<?x?xf32>, %sumK: memref<?x?x?xf32>,
    %sumV: memref<?x?x?xf32>, %sumB: memref<?x?xf32>, %pg: memref<?x?xf64>,
    %sel: memref<?x?x?xindex>, %segs: memref<?x?xindex>,
    %dkh: memref<?x?x?xf32>, %dvh: memref<?x?x?xf32>, %dmh: memref<?x?xf32>,
    %dlkh: memref<?x?x?xf32>, %dlvh: memref<?x?x?xf32>, %dlmh: memref<?x?xf32>,
    %dsK: memref<?x?x?xf32>, %dsV: memref<?x?x?xf32>, %sC: memref<?x?xf64>,
    %H: index, %Hkv: index, %dDyn: index, %B: index, %r: index, %L: index,
    %W: index, %T: index, %causal: i1, %total: index, %blocks: index,
    %beta: f32, %eps: f32, %scale: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %d = arith.constant __D__ : index
  %zero = arith.constant 0.0 : f32
  %zero64 = arith.constant 0.0 : f64
  %zeros = arith.constant dense<0.0> : vector<__D__xf32>
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  %n = memref.dim %q, %c1 : memref<?x?x?xf32>
  %width = memref.dim %segs, %c1 : memref<?x?xindex>
  %sCol1 = arith.subi %width, %c3 : index
  %pCol1 = arith.subi %width, %c1 : index
  %rows0 = arith.muli %blocks, %T : index
  // The level windows' count: 2 (L - 2) ranges after level 1.
  %Lm2 = arith.subi %L, %c2 : index
  %nLev = arith.muli %Lm2, %c2 : index
  // Raw rows.
  scf.parallel (%b, %h, %j) = (%c0, %c0, %c0) to (%bt, %H, %n) step (%c1, %c1, %c1) {
    %hH = arith.muli %h, %Hkv : index
    %kvh = arith.divui %hH, %H : index
    %qcol = arith.muli %h, %d : index
    %kcol = arith.muli %kvh, %d : index
    %bh0 = arith.muli %b, %H : index
    %bh = arith.addi %bh0, %h : index
    %kv = vector.load %k[%b, %j, %kcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %vv = vector.load %v[%b, %j, %kcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %bj = memref.load %gB[%b, %j] : memref<?x?xf32>
    %tot:3 = scf.for %qb = %c0 to %blocks step %c1
        iter_args(%acc = %zero, %dk = %zeros, %dv = %zeros) -> (f32, vector<__D__xf32>, vector<__D__xf32>) {
      %q0 = arith.muli %qb, %B : index
      %q1r = arith.addi %q0, %B : index
      %q1 = arith.minui %q1r, %n : index
      %lo = memref.load %segs[%qb, %c0] : memref<?x?xindex>
      %hi = memref.load %segs[%qb, %c1] : memref<?x?xindex>
      %geLo = arith.cmpi uge, %j, %lo : index
      %ltHi = arith.cmpi ult, %j, %hi : index
      %in = arith.andi %geLo, %ltHi : i1
      %a1:3 = scf.if %in -> (f32, vector<__D__xf32>, vector<__D__xf32>) {
        %qj = arith.maxui %q0, %j : index
        %i0 = arith.select %causal, %qj, %q0 : index
        %s:3 = func.call @hag_gpu_bwd_key_rows_v__D__(%kv, %vv, %q, %dout, %lse, %Dd, %b, %bh, %qcol, %i0, %q1, %scale, %bj, %acc, %dk, %dv)
            : (vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>,
               index, index, index, index, index, f32, f32, f32, vector<__D__xf32>, vector<__D__xf32>) -> (f32, vector<__D__xf32>, vector<__D__xf32>)
        scf.yield %s#0, %s#1, %s#2 : f32, vector<__D__xf32>, vector<__D__xf32>
      } else {
        scf.yield %acc, %dk, %dv : f32, vector<__D__xf32>, vector<__D__xf32>
      }
      %kp = memref.load %segs[%qb, %pCol1] : memref<?x?xindex>
      %a2:3 = scf.for %p = %c0 to %kp step %c1
          iter_args(%x0 = %a1#0, %x1 = %a1#1, %x2 = %a1#2) -> (f32, vector<__D__xf32>, vector<__D__xf32>) {
        %pj = memref.load %sel[%b, %qb, %p] : memref<?x?x?xindex>
        %hit = arith.cmpi eq, %pj, %j : index
        %y:3 = scf.if %hit -> (f32, vector<__D__xf32>, vector<__D__xf32>) {
          %s:3 = func.call @hag_gpu_bwd_key_rows_v__D__(%kv, %vv, %q, %dout, %lse, %Dd, %b, %bh, %qcol, %q0, %q1, %scale, %bj, %x0, %x1, %x2)
              : (vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>,
                 index, index, index, index, index, f32, f32, f32, vector<__D__xf32>, vector<__D__xf32>) -> (f32, vector<__D__xf32>, vector<__D__xf32>)
          scf.yield %s#0, %s#1, %s#2 : f32, vector<__D__xf32>, vector<__D__xf32>
        } else {
          scf.yield %x0, %x1, %x2 : f32, vector<__D__xf32>, vector<__D__xf32>
        }
        scf.yield %y#0, %y#1, %y#2 : f32, vector<__D__xf32>, vector<__D__xf32>
      }
      scf.yield %a2#0, %a2#1, %a2#2 : f32, vector<__D__xf32>, vector<__D__xf32>
    }
    vector.store %tot#1, %dkh[%b, %j, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    vector.store %tot#2, %dvh[%b, %j, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %gj = memref.load %g[%b, %j] : memref<?x?xf32>
    %den = arith.addf %gj, %eps : f32
    %bs = arith.mulf %beta, %tot#0 : f32
    %dm = arith.divf %bs, %den : f32
    memref.store %dm, %dmh[%bh, %j] : memref<?x?xf32>
    scf.reduce
  }
  // Level rows.
  scf.parallel (%b, %h, %j) = (%c0, %c0, %c0) to (%bt, %H, %total) step (%c1, %c1, %c1) {
    %hH = arith.muli %h, %Hkv : index
    %kvh = arith.divui %hH, %H : index
    %qcol = arith.muli %h, %d : index
    %kcol = arith.muli %kvh, %d : index
    %bh0 = arith.muli %b, %H : index
    %bh = arith.addi %bh0, %h : index
    %kv = vector.load %levK[%b, %j, %kcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %vv = vector.load %levV[%b, %j, %kcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %bj = memref.load %levB[%b, %j] : memref<?x?xf32>
    %tot:3 = scf.for %qb = %c0 to %blocks step %c1
        iter_args(%acc = %zero, %dk = %zeros, %dv = %zeros) -> (f32, vector<__D__xf32>, vector<__D__xf32>) {
      %q0 = arith.muli %qb, %B : index
      %q1r = arith.addi %q0, %B : index
      %q1 = arith.minui %q1r, %n : index
      %aL:3 = scf.for %si = %c0 to %nLev step %c1
          iter_args(%x0 = %acc, %x1 = %dk, %x2 = %dv) -> (f32, vector<__D__xf32>, vector<__D__xf32>) {
        %si2 = arith.muli %si, %c2 : index
        %col = arith.addi %si2, %c2 : index
        %col1 = arith.addi %col, %c1 : index
        %lo = memref.load %segs[%qb, %col] : memref<?x?xindex>
        %hi = memref.load %segs[%qb, %col1] : memref<?x?xindex>
        %geLo = arith.cmpi uge, %j, %lo : index
        %ltHi = arith.cmpi ult, %j, %hi : index
        %in = arith.andi %geLo, %ltHi : i1
        %y:3 = scf.if %in -> (f32, vector<__D__xf32>, vector<__D__xf32>) {
          %s:3 = func.call @hag_gpu_bwd_key_rows_v__D__(%kv, %vv, %q, %dout, %lse, %Dd, %b, %bh, %qcol, %q0, %q1, %scale, %bj, %x0, %x1, %x2)
              : (vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>,
                 index, index, index, index, index, f32, f32, f32, vector<__D__xf32>, vector<__D__xf32>) -> (f32, vector<__D__xf32>, vector<__D__xf32>)
          scf.yield %s#0, %s#1, %s#2 : f32, vector<__D__xf32>, vector<__D__xf32>
        } else {
          scf.yield %x0, %x1, %x2 : f32, vector<__D__xf32>, vector<__D__xf32>
        }
        scf.yield %y#0, %y#1, %y#2 : f32, vector<__D__xf32>, vector<__D__xf32>
      }
      scf.yield %aL#0, %aL#1, %aL#2 : f32, vector<__D__xf32>, vector<__D__xf32>
    }
    vector.store %tot#1, %dlkh[%b, %j, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    vector.store %tot#2, %dlvh[%b, %j, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
    %mj = memref.load %levM[%b, %j] : memref<?x?xf32>
    %den = arith.addf %mj, %eps : f32
    %bs = arith.mulf %beta, %tot#0 : f32
    %dm = arith.divf %bs, %den : f32
    memref.store %dm, %dlmh[%bh, %j] : memref<?x?xf32>
    scf.reduce
  }
  // Summary rows: block qb's queries; sC = dM - (K . dK + V . dV) / (mass +
  // eps) in f64, feature by feature as the generic loop.
  scf.parallel (%b, %h, %row) = (%c0, %c0, %c0) to (%bt, %H, %rows0) step (%c1, %c1, %c1) {
    %hH = arith.muli %h, %Hkv : index
    %kvh = arith.divui %hH, %H : index
    %qcol = arith.muli %h, %d : index
    %kcol = arith.muli %kvh, %d : index
    %bh0 = arith.muli %b, %H : index
    %bh = arith.addi %bh0, %h : index
    %qb = arith.divui %row, %T : index
    %t = arith.remui %row, %T : index
    %sEnd = memref.load %segs[%qb, %sCol1] : memref<?x?xindex>
    %valid = arith.cmpi ult, %row, %sEnd : index
    %c = scf.if %valid -> (f64) {
      %q0 = arith.muli %qb, %B : index
      %q1r = arith.addi %q0, %B : index
      %q1 = arith.minui %q1r, %n : index
      %kv = vector.load %sumK[%b, %row, %kcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
      %vv = vector.load %sumV[%b, %row, %kcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
      %bj = memref.load %sumB[%b, %row] : memref<?x?xf32>
      %tot:3 = func.call @hag_gpu_bwd_key_rows_v__D__(%kv, %vv, %q, %dout, %lse, %Dd, %b, %bh, %qcol, %q0, %q1, %scale, %bj, %zero, %zeros, %zeros)
          : (vector<__D__xf32>, vector<__D__xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>,
             index, index, index, index, index, f32, f32, f32, vector<__D__xf32>, vector<__D__xf32>) -> (f32, vector<__D__xf32>, vector<__D__xf32>)
      vector.store %tot#1, %dsK[%b, %row, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
      vector.store %tot#2, %dsV[%b, %row, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
      %cc = func.call @hag_gpu_bwd_summary_share(%sumK, %sumV, %dsK, %dsV, %pg, %b, %row, %qb, %t, %qcol, %kcol, %d, %n, %B, %r, %L, %W, %T, %causal, %beta, %eps, %tot#0)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf64>, index, index, index, index,
             index, index, index, index, index, index, index, index, index, i1, f32, f32, f32) -> f64
      scf.yield %cc : f64
    } else {
      vector.store %zeros, %dsK[%b, %row, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
      vector.store %zeros, %dsV[%b, %row, %qcol] {alignment = 16 : i64} : memref<?x?x?xf32>, vector<__D__xf32>
      scf.yield %zero64 : f64
    }
    memref.store %c, %sC[%bh, %row] : memref<?x?xf64>
    scf.reduce
  }
  return
}
