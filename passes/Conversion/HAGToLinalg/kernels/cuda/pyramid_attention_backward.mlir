// The CUDA kernel library's pyramid attention backward (spec sections 3-5, 8
// and 12): parallel loops that hag-map-loops-to-gpu turns into kernels.
// Same signature as the CPU library's @hag_pyramid_attention_backward; parsed
// together with the CPU libraries (the renamed CPU entry points aside: their
// @hag_level_token_backward, @hag_mass_biases, @hag_level_window,
// @hag_ceil_div) and the CUDA forward (levels, prefix sums, select_k,
// summary rows and the blocks' key ranges, as the forward computed them).
//
// FlashAttention-2's split, without an N x N buffer and without atomics
// (every gradient element has one thread that owns it, so the sums are
// deterministic):
//   1. one thread per (batch, head, query): the query's key set walked
//      twice: its log-sum-exp (an online max and sum), then
//      dq = scale sum_j dS_ij k_j with P_ij = exp(s_ij - lse_i) and
//      dS_ij = P_ij (dO_i . v_j - dO_i . o_i); lse_i and D_i = dO_i . o_i
//      are kept for step 2;
//   2. one thread per (batch, head, key row) of every source (raw rows,
//      the packed levels' rows, every query block's summary rows): the
//      queries that attend the row are those of the blocks whose key ranges
//      hold it (@hag_gpu_block_segments' table, causal mask on level 1;
//      select_k picks found in `sel`), and the row's dk, dv and mass
//      gradient are sums over them (per-head buffers, as the CPU kernel's);
//   3. the summary tokens' gradients as f64 differences over their raw
//      segments and their in-place prefix sums, one thread per (batch,
//      head column) (per (batch, head) for the masses);
//   4. per (batch, raw token, kv head) the group's heads summed with the
//      summaries' share (the CPU kernel's arithmetic); per (batch, level
//      row, kv head) likewise;
//   5. back through the levels from L-1 down to 2, one thread per
//      (batch, kv head, parent token) with the CPU library's
//      @hag_level_token_backward (children are disjoint; conv weight
//      gradients per parent row, summed at the end);
//   6. dg over the kv heads and the conv weights' gradients over the batch.
//
// Generic in d (loops over the features in global memory): correct for every
// configuration and parallel over tokens; the Tensor Core backward kernel is
// issue 5's next step.

// sum_t x[b, i, xcol + t] * y[yb, yr, ycol + t] for t < d.
func.func private @hag_gpu_bwd_dot(%x: memref<?x?x?xf32>, %b: index, %i: index,
    %xcol: index, %y: memref<?x?x?xf32>, %yr: index, %ycol: index,
    %d: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %s = scf.for %t = %c0 to %d step %c1 iter_args(%acc = %zero) -> (f32) {
    %xc = arith.addi %xcol, %t : index
    %yc = arith.addi %ycol, %t : index
    %a = memref.load %x[%b, %i, %xc] : memref<?x?x?xf32>
    %w = memref.load %y[%b, %yr, %yc] : memref<?x?x?xf32>
    %acc2 = math.fma %a, %w, %acc : f32
    scf.yield %acc2 : f32
  }
  return %s : f32
}

// Query i against the key rows [j0, j1) of K/V (biases bias[b, j]).
// mode false: (s0, s1) = (running max, running sum) of exp(logit - max),
// updated online. mode true: s0 = lse_i, s1 = D_i, and
// dq[b, i, qcol ..] += dS_ij k_j (unscaled).
func.func private @hag_gpu_bwd_rows(%mode: i1, %q: memref<?x?x?xf32>,
    %dout: memref<?x?x?xf32>, %dq: memref<?x?x?xf32>, %K: memref<?x?x?xf32>,
    %V: memref<?x?x?xf32>, %bias: memref<?x?xf32>, %b: index, %i: index,
    %qcol: index, %kcol: index, %j0: index, %j1: index, %d: index,
    %scale: f32, %s0: f32, %s1: f32) -> (f32, f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %r:2 = scf.for %j = %j0 to %j1 step %c1 iter_args(%a = %s0, %c = %s1) -> (f32, f32) {
    %dot = func.call @hag_gpu_bwd_dot(%q, %b, %i, %qcol, %K, %j, %kcol, %d)
        : (memref<?x?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index) -> f32
    %bj = memref.load %bias[%b, %j] : memref<?x?xf32>
    %l = math.fma %dot, %scale, %bj : f32
    %res:2 = scf.if %mode -> (f32, f32) {
      %ls = arith.subf %l, %a : f32
      %p = math.exp %ls : f32
      %dp = func.call @hag_gpu_bwd_dot(%dout, %b, %i, %qcol, %V, %j, %kcol, %d)
          : (memref<?x?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index) -> f32
      %diff = arith.subf %dp, %c : f32
      %ds = arith.mulf %p, %diff : f32
      scf.for %t = %c0 to %d step %c1 {
        %qc = arith.addi %qcol, %t : index
        %kc = arith.addi %kcol, %t : index
        %kx = memref.load %K[%b, %j, %kc] : memref<?x?x?xf32>
        %o = memref.load %dq[%b, %i, %qc] : memref<?x?x?xf32>
        %u = math.fma %ds, %kx, %o : f32
        memref.store %u, %dq[%b, %i, %qc] : memref<?x?x?xf32>
      }
      scf.yield %a, %c : f32, f32
    } else {
      // The forward's online step (@hag_gpu_online_step).
      %mN, %c2, %alpha, %p = func.call @hag_gpu_online_step(%a, %c, %l)
          : (f32, f32, f32) -> (f32, f32, f32, f32)
      scf.yield %mN, %c2 : f32, f32
    }
    scf.yield %res#0, %res#1 : f32, f32
  }
  return %r#0, %r#1 : f32, f32
}

// Query i's whole key set (the forward's walk, @hag_pyramid_attention's
// generic loop) through @hag_gpu_bwd_rows in the given mode.
func.func private @hag_gpu_bwd_walk(%mode: i1, %q: memref<?x?x?xf32>,
    %dout: memref<?x?x?xf32>, %dq: memref<?x?x?xf32>,
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %gB: memref<?x?xf32>,
    %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>, %levB: memref<?x?xf32>,
    %sumK: memref<?x?x?xf32>, %sumV: memref<?x?x?xf32>, %sumB: memref<?x?xf32>,
    %sel: memref<?x?x?xindex>, %b: index, %i: index, %qcol: index,
    %kcol: index, %n: index, %d: index, %B: index, %r: index, %L: index,
    %W: index, %T: index, %causal: i1, %selectK: index, %scale: f32,
    %s0: f32, %s1: f32) -> (f32, f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %qb = arith.divui %i, %B : index
  %a1, %e1b, %kp = func.call @hag_gpu_block_bounds(%qb, %B, %n, %causal, %selectK)
      : (index, index, index, i1, index) -> (index, index, index)
  %i1 = arith.addi %i, %c1 : index
  %e1 = arith.select %causal, %i1, %e1b : index
  %w1:2 = func.call @hag_gpu_bwd_rows(%mode, %q, %dout, %dq, %k, %v, %gB, %b, %i, %qcol, %kcol, %a1, %e1, %d, %scale, %s0, %s1)
      : (i1, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
         index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
  %lv:6 = scf.for %l = %c2 to %L step %c1
      iter_args(%aPrev = %a1, %ePrev = %e1b, %nPrev = %n, %off = %c0, %x0 = %w1#0, %x1 = %w1#1)
      -> (index, index, index, index, f32, f32) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%aPrev, %ePrev, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %ls = arith.addi %off, %w#0 : index
    %le = arith.addi %off, %w#1 : index
    %t1:2 = func.call @hag_gpu_bwd_rows(%mode, %q, %dout, %dq, %levK, %levV, %levB, %b, %i, %qcol, %kcol, %ls, %le, %d, %scale, %x0, %x1)
        : (i1, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
    %rs = arith.addi %off, %w#2 : index
    %re = arith.addi %off, %w#3 : index
    %t2:2 = func.call @hag_gpu_bwd_rows(%mode, %q, %dout, %dq, %levK, %levV, %levB, %b, %i, %qcol, %kcol, %rs, %re, %d, %scale, %t1#0, %t1#1)
        : (i1, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
    %offN = arith.addi %off, %nl : index
    scf.yield %w#0, %w#3, %nl, %offN, %t2#0, %t2#1 : index, index, index, index, f32, f32
  }
  %span:2 = func.call @hag_gpu_summary_span(%lv#0, %n, %r, %L, %T, %causal)
      : (index, index, index, index, index, i1) -> (index, index)
  %sBase = arith.muli %qb, %T : index
  %sEnd = arith.addi %sBase, %span#1 : index
  %sum:2 = func.call @hag_gpu_bwd_rows(%mode, %q, %dout, %dq, %sumK, %sumV, %sumB, %b, %i, %qcol, %kcol, %sBase, %sEnd, %d, %scale, %lv#4, %lv#5)
      : (i1, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
         index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
  %fin:2 = scf.for %p = %c0 to %kp step %c1 iter_args(%x0 = %sum#0, %x1 = %sum#1) -> (f32, f32) {
    %j = memref.load %sel[%b, %qb, %p] : memref<?x?x?xindex>
    %j1 = arith.addi %j, %c1 : index
    %t3:2 = func.call @hag_gpu_bwd_rows(%mode, %q, %dout, %dq, %k, %v, %gB, %b, %i, %qcol, %kcol, %j, %j1, %d, %scale, %x0, %x1)
        : (i1, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
    scf.yield %t3#0, %t3#1 : f32, f32
  }
  return %fin#0, %fin#1 : f32, f32
}

// Key row kr of K/V (bias bj) against the queries [i0, i1) of head (b, h):
// dKh[b, orow, qcol ..] += scale dS_ij q_i, dVh[b, orow, qcol ..] +=
// P_ij dO_i; returns acc + sum_i dS_ij (the mass bias's share).
func.func private @hag_gpu_bwd_key_rows(%q: memref<?x?x?xf32>,
    %dout: memref<?x?x?xf32>, %lse: memref<?x?xf32>, %Dd: memref<?x?xf32>,
    %K: memref<?x?x?xf32>, %V: memref<?x?x?xf32>, %dKh: memref<?x?x?xf32>,
    %dVh: memref<?x?x?xf32>, %b: index, %bh: index, %kr: index, %orow: index,
    %qcol: index, %kcol: index, %i0: index, %i1: index, %d: index,
    %scale: f32, %bj: f32, %acc0: f32) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %s = scf.for %i = %i0 to %i1 step %c1 iter_args(%acc = %acc0) -> (f32) {
    %dot = func.call @hag_gpu_bwd_dot(%q, %b, %i, %qcol, %K, %kr, %kcol, %d)
        : (memref<?x?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index) -> f32
    %l = math.fma %dot, %scale, %bj : f32
    %li = memref.load %lse[%bh, %i] : memref<?x?xf32>
    %ls = arith.subf %l, %li : f32
    %p = math.exp %ls : f32
    %dp = func.call @hag_gpu_bwd_dot(%dout, %b, %i, %qcol, %V, %kr, %kcol, %d)
        : (memref<?x?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index) -> f32
    %di = memref.load %Dd[%bh, %i] : memref<?x?xf32>
    %diff = arith.subf %dp, %di : f32
    %ds = arith.mulf %p, %diff : f32
    %dss = arith.mulf %ds, %scale : f32
    scf.for %t = %c0 to %d step %c1 {
      %qc = arith.addi %qcol, %t : index
      %qx = memref.load %q[%b, %i, %qc] : memref<?x?x?xf32>
      %ox = memref.load %dout[%b, %i, %qc] : memref<?x?x?xf32>
      %ok = memref.load %dKh[%b, %orow, %qc] : memref<?x?x?xf32>
      %uk = math.fma %dss, %qx, %ok : f32
      memref.store %uk, %dKh[%b, %orow, %qc] : memref<?x?x?xf32>
      %ov = memref.load %dVh[%b, %orow, %qc] : memref<?x?x?xf32>
      %uv = math.fma %p, %ox, %ov : f32
      memref.store %uv, %dVh[%b, %orow, %qc] : memref<?x?x?xf32>
    }
    %acc2 = arith.addf %acc, %ds : f32
    scf.yield %acc2 : f32
  }
  return %s : f32
}

// Zero d features of row `row` of dst from column col.
func.func private @hag_gpu_bwd_zero_row(%dst: memref<?x?x?xf32>, %b: index,
    %row: index, %col: index, %d: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  scf.for %t = %c0 to %d step %c1 {
    %c = arith.addi %col, %t : index
    memref.store %zero, %dst[%b, %row, %c] : memref<?x?x?xf32>
  }
  return
}

// Summary token t of query block qb: its raw segment [s0, s1) (the floor
// rule over the block's prefix) and T' (t < T' is a token).
func.func private @hag_gpu_bwd_summary_segment(%qb: index, %t: index,
    %n: index, %B: index, %r: index, %L: index, %W: index, %T: index,
    %causal: i1) -> (index, index, index) {
  %c1 = arith.constant 1 : index
  %aLast = func.call @hag_gpu_block_last_a(%qb, %B, %n, %r, %L, %W, %causal)
      : (index, index, index, index, index, index, i1) -> index
  %span:2 = func.call @hag_gpu_summary_span(%aLast, %n, %r, %L, %T, %causal)
      : (index, index, index, index, index, i1) -> (index, index)
  %tpSafe = arith.maxui %span#1, %c1 : index
  %tP = arith.muli %t, %span#0 : index
  %s0 = arith.divui %tP, %tpSafe : index
  %t1 = arith.addi %t, %c1 : index
  %t1P = arith.muli %t1, %span#0 : index
  %s1 = arith.divui %t1P, %tpSafe : index
  return %s0, %s1, %span#1 : index, index, index
}

// The share of summary row `row` (token t of query block qb) in the masses
// of its raw segment, in f64: dM - (K . dK + V . dV) / (mass + eps), with
// dM = beta sumDS / (float(mass) + eps) and dK, dV the row's head gradients
// in dsK/dsV (columns qcol ..). Shared by the generic and register key
// passes.
func.func private @hag_gpu_bwd_summary_share(%sumK: memref<?x?x?xf32>,
    %sumV: memref<?x?x?xf32>, %dsK: memref<?x?x?xf32>, %dsV: memref<?x?x?xf32>,
    %pg: memref<?x?xf64>, %b: index, %row: index, %qb: index, %t: index,
    %qcol: index, %kcol: index, %d: index, %n: index, %B: index, %r: index,
    %L: index, %W: index, %T: index, %causal: i1, %beta: f32, %eps: f32,
    %tot: f32) -> f64 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero64 = arith.constant 0.0 : f64
  %one64 = arith.constant 1.0 : f64
  %eps64 = arith.extf %eps : f32 to f64
  %seg:3 = func.call @hag_gpu_bwd_summary_segment(%qb, %t, %n, %B, %r, %L, %W, %T, %causal)
      : (index, index, index, index, index, index, index, index, i1) -> (index, index, index)
  %g1 = memref.load %pg[%b, %seg#1] : memref<?x?xf64>
  %g0 = memref.load %pg[%b, %seg#0] : memref<?x?xf64>
  %mass = arith.subf %g1, %g0 : f64
  %massF = arith.truncf %mass : f64 to f32
  %denF = arith.addf %massF, %eps : f32
  %bs = arith.mulf %beta, %tot : f32
  %dM = arith.divf %bs, %denF : f32
  %den = arith.addf %mass, %eps64 : f64
  %inv = arith.divf %one64, %den : f64
  %dot = scf.for %x = %c0 to %d step %c1 iter_args(%acc = %zero64) -> (f64) {
    %qc = arith.addi %qcol, %x : index
    %kc = arith.addi %kcol, %x : index
    %gk = memref.load %dsK[%b, %row, %qc] : memref<?x?x?xf32>
    %gv = memref.load %dsV[%b, %row, %qc] : memref<?x?x?xf32>
    %kk = memref.load %sumK[%b, %row, %kc] : memref<?x?x?xf32>
    %vv = memref.load %sumV[%b, %row, %kc] : memref<?x?x?xf32>
    %gkd = arith.extf %gk : f32 to f64
    %gvd = arith.extf %gv : f32 to f64
    %kkd = arith.extf %kk : f32 to f64
    %vvd = arith.extf %vv : f32 to f64
    %ck = arith.mulf %gkd, %inv : f64
    %cv = arith.mulf %gvd, %inv : f64
    %acc1 = math.fma %kkd, %ck, %acc : f64
    %acc2 = math.fma %vvd, %cv, %acc1 : f64
    scf.yield %acc2 : f64
  }
  %dMd = arith.extf %dM : f32 to f64
  %cc = arith.subf %dMd, %dot : f64
  return %cc : f64
}

// Step 1 for any head size: per (batch, head, query), the rows in global
// memory (attention_backward_vector.mlir keeps them in registers).
func.func private @hag_gpu_bwd_queries_generic(%q: memref<?x?x?xf32>,
    %dout: memref<?x?x?xf32>, %out: memref<?x?x?xf32>, %dq: memref<?x?x?xf32>,
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %gB: memref<?x?xf32>,
    %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>, %levB: memref<?x?xf32>,
    %sumK: memref<?x?x?xf32>, %sumV: memref<?x?x?xf32>, %sumB: memref<?x?xf32>,
    %sel: memref<?x?x?xindex>, %lse: memref<?x?xf32>, %Dd: memref<?x?xf32>,
    %H: index, %Hkv: index, %d: index, %B: index, %r: index, %L: index,
    %W: index, %T: index, %causal: i1, %selectK: index, %scale: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %false = arith.constant false
  %true = arith.constant true
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  %n = memref.dim %q, %c1 : memref<?x?x?xf32>
  scf.parallel (%b, %h, %i) = (%c0, %c0, %c0) to (%bt, %H, %n) step (%c1, %c1, %c1) {
    %hH = arith.muli %h, %Hkv : index
    %kvh = arith.divui %hH, %H : index
    %qcol = arith.muli %h, %d : index
    %kcol = arith.muli %kvh, %d : index
    %bh0 = arith.muli %b, %H : index
    %bh = arith.addi %bh0, %h : index
    %st:2 = func.call @hag_gpu_bwd_walk(%false, %q, %dout, %dq, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel,
        %b, %i, %qcol, %kcol, %n, %d, %B, %r, %L, %W, %T, %causal, %selectK, %scale, %ninf, %zero)
        : (i1, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           memref<?x?x?xindex>, index, index, index, index, index, index, index, index, index, index, index, i1, index,
           f32, f32, f32) -> (f32, f32)
    %logDen = math.log %st#1 : f32
    %li = arith.addf %st#0, %logDen : f32
    %di = func.call @hag_gpu_bwd_dot(%dout, %b, %i, %qcol, %out, %i, %qcol, %d)
        : (memref<?x?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index) -> f32
    memref.store %li, %lse[%bh, %i] : memref<?x?xf32>
    memref.store %di, %Dd[%bh, %i] : memref<?x?xf32>
    func.call @hag_gpu_bwd_zero_row(%dq, %b, %i, %qcol, %d) : (memref<?x?x?xf32>, index, index, index, index) -> ()
    %unused:2 = func.call @hag_gpu_bwd_walk(%true, %q, %dout, %dq, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel,
        %b, %i, %qcol, %kcol, %n, %d, %B, %r, %L, %W, %T, %causal, %selectK, %scale, %li, %di)
        : (i1, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           memref<?x?x?xindex>, index, index, index, index, index, index, index, index, index, index, index, i1, index,
           f32, f32, f32) -> (f32, f32)
    scf.for %t = %c0 to %d step %c1 {
      %qc = arith.addi %qcol, %t : index
      %y = memref.load %dq[%b, %i, %qc] : memref<?x?x?xf32>
      %ys = arith.mulf %y, %scale : f32
      memref.store %ys, %dq[%b, %i, %qc] : memref<?x?x?xf32>
    }
    scf.reduce
  }
  return
}

// Step 2 for any head size: per (batch, head, key row) of every source.
func.func private @hag_gpu_bwd_keys_generic(%q: memref<?x?x?xf32>,
    %dout: memref<?x?x?xf32>, %lse: memref<?x?xf32>, %Dd: memref<?x?xf32>,
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %g: memref<?x?xf32>,
    %gB: memref<?x?xf32>, %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>,
    %levM: memref<?x?xf32>, %levB: memref<?x?xf32>, %sumK: memref<?x?x?xf32>,
    %sumV: memref<?x?x?xf32>, %sumB: memref<?x?xf32>, %pg: memref<?x?xf64>,
    %sel: memref<?x?x?xindex>, %segs: memref<?x?xindex>,
    %dkh: memref<?x?x?xf32>, %dvh: memref<?x?x?xf32>, %dmh: memref<?x?xf32>,
    %dlkh: memref<?x?x?xf32>, %dlvh: memref<?x?x?xf32>, %dlmh: memref<?x?xf32>,
    %dsK: memref<?x?x?xf32>, %dsV: memref<?x?x?xf32>, %sC: memref<?x?xf64>,
    %H: index, %Hkv: index, %d: index, %B: index, %r: index, %L: index,
    %W: index, %T: index, %causal: i1, %total: index, %blocks: index,
    %beta: f32, %eps: f32, %scale: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %zero = arith.constant 0.0 : f32
  %zero64 = arith.constant 0.0 : f64
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  %n = memref.dim %q, %c1 : memref<?x?x?xf32>
  %width = memref.dim %segs, %c1 : memref<?x?xindex>
  %sCol1 = arith.subi %width, %c3 : index
  %pCol1 = arith.subi %width, %c1 : index
  %rows0 = arith.muli %blocks, %T : index
  %Lm2 = arith.subi %L, %c2 : index
  %S0 = arith.muli %Lm2, %c2 : index
  // Raw rows: level 1 (causal: queries at or after the key) and picks.
  scf.parallel (%b, %h, %j) = (%c0, %c0, %c0) to (%bt, %H, %n) step (%c1, %c1, %c1) {
    %hH = arith.muli %h, %Hkv : index
    %kvh = arith.divui %hH, %H : index
    %qcol = arith.muli %h, %d : index
    %kcol = arith.muli %kvh, %d : index
    %bh0 = arith.muli %b, %H : index
    %bh = arith.addi %bh0, %h : index
    func.call @hag_gpu_bwd_zero_row(%dkh, %b, %j, %qcol, %d) : (memref<?x?x?xf32>, index, index, index, index) -> ()
    func.call @hag_gpu_bwd_zero_row(%dvh, %b, %j, %qcol, %d) : (memref<?x?x?xf32>, index, index, index, index) -> ()
    %bj = memref.load %gB[%b, %j] : memref<?x?xf32>
    %tot = scf.for %qb = %c0 to %blocks step %c1 iter_args(%acc = %zero) -> (f32) {
      %q0 = arith.muli %qb, %B : index
      %q1r = arith.addi %q0, %B : index
      %q1 = arith.minui %q1r, %n : index
      %lo = memref.load %segs[%qb, %c0] : memref<?x?xindex>
      %hi = memref.load %segs[%qb, %c1] : memref<?x?xindex>
      %geLo = arith.cmpi uge, %j, %lo : index
      %ltHi = arith.cmpi ult, %j, %hi : index
      %in = arith.andi %geLo, %ltHi : i1
      %acc1 = scf.if %in -> (f32) {
        %qj = arith.maxui %q0, %j : index
        %i0 = arith.select %causal, %qj, %q0 : index
        %s = func.call @hag_gpu_bwd_key_rows(%q, %dout, %lse, %Dd, %k, %v, %dkh, %dvh, %b, %bh, %j, %j, %qcol, %kcol, %i0, %q1, %d, %scale, %bj, %acc)
            : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>,
               memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, index, index, f32, f32, f32) -> f32
        scf.yield %s : f32
      } else {
        scf.yield %acc : f32
      }
      %kp = memref.load %segs[%qb, %pCol1] : memref<?x?xindex>
      %acc2 = scf.for %p = %c0 to %kp step %c1 iter_args(%a = %acc1) -> (f32) {
        %pj = memref.load %sel[%b, %qb, %p] : memref<?x?x?xindex>
        %hit = arith.cmpi eq, %pj, %j : index
        %a2 = scf.if %hit -> (f32) {
          %s = func.call @hag_gpu_bwd_key_rows(%q, %dout, %lse, %Dd, %k, %v, %dkh, %dvh, %b, %bh, %j, %j, %qcol, %kcol, %q0, %q1, %d, %scale, %bj, %a)
              : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>,
                 memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, index, index, f32, f32, f32) -> f32
          scf.yield %s : f32
        } else {
          scf.yield %a : f32
        }
        scf.yield %a2 : f32
      }
      scf.yield %acc2 : f32
    }
    %gj = memref.load %g[%b, %j] : memref<?x?xf32>
    %den = arith.addf %gj, %eps : f32
    %bs = arith.mulf %beta, %tot : f32
    %dm = arith.divf %bs, %den : f32
    memref.store %dm, %dmh[%bh, %j] : memref<?x?xf32>
    scf.reduce
  }
  // Level rows: every compressed level's left and right windows.
  scf.parallel (%b, %h, %j) = (%c0, %c0, %c0) to (%bt, %H, %total) step (%c1, %c1, %c1) {
    %hH = arith.muli %h, %Hkv : index
    %kvh = arith.divui %hH, %H : index
    %qcol = arith.muli %h, %d : index
    %kcol = arith.muli %kvh, %d : index
    %bh0 = arith.muli %b, %H : index
    %bh = arith.addi %bh0, %h : index
    func.call @hag_gpu_bwd_zero_row(%dlkh, %b, %j, %qcol, %d) : (memref<?x?x?xf32>, index, index, index, index) -> ()
    func.call @hag_gpu_bwd_zero_row(%dlvh, %b, %j, %qcol, %d) : (memref<?x?x?xf32>, index, index, index, index) -> ()
    %bj = memref.load %levB[%b, %j] : memref<?x?xf32>
    %tot = scf.for %qb = %c0 to %blocks step %c1 iter_args(%acc = %zero) -> (f32) {
      %q0 = arith.muli %qb, %B : index
      %q1r = arith.addi %q0, %B : index
      %q1 = arith.minui %q1r, %n : index
      %accL = scf.for %si = %c0 to %S0 step %c1 iter_args(%a = %acc) -> (f32) {
        %si2 = arith.muli %si, %c2 : index
        %col = arith.addi %si2, %c2 : index
        %col1 = arith.addi %col, %c1 : index
        %lo = memref.load %segs[%qb, %col] : memref<?x?xindex>
        %hi = memref.load %segs[%qb, %col1] : memref<?x?xindex>
        %geLo = arith.cmpi uge, %j, %lo : index
        %ltHi = arith.cmpi ult, %j, %hi : index
        %in = arith.andi %geLo, %ltHi : i1
        %a2 = scf.if %in -> (f32) {
          %s = func.call @hag_gpu_bwd_key_rows(%q, %dout, %lse, %Dd, %levK, %levV, %dlkh, %dlvh, %b, %bh, %j, %j, %qcol, %kcol, %q0, %q1, %d, %scale, %bj, %a)
              : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>,
                 memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, index, index, f32, f32, f32) -> f32
          scf.yield %s : f32
        } else {
          scf.yield %a : f32
        }
        scf.yield %a2 : f32
      }
      scf.yield %accL : f32
    }
    %mj = memref.load %levM[%b, %j] : memref<?x?xf32>
    %den = arith.addf %mj, %eps : f32
    %bs = arith.mulf %beta, %tot : f32
    %dm = arith.divf %bs, %den : f32
    memref.store %dm, %dlmh[%bh, %j] : memref<?x?xf32>
    scf.reduce
  }
  // Summary rows: block qb's queries. sC[bh, row] = dM - (K . dK + V . dV)
  // / (mass + eps), the share of the segment's masses (f64).
  scf.parallel (%b, %h, %row) = (%c0, %c0, %c0) to (%bt, %H, %rows0) step (%c1, %c1, %c1) {
    %hH = arith.muli %h, %Hkv : index
    %kvh = arith.divui %hH, %H : index
    %qcol = arith.muli %h, %d : index
    %kcol = arith.muli %kvh, %d : index
    %bh0 = arith.muli %b, %H : index
    %bh = arith.addi %bh0, %h : index
    %qb = arith.divui %row, %T : index
    %t = arith.remui %row, %T : index
    func.call @hag_gpu_bwd_zero_row(%dsK, %b, %row, %qcol, %d) : (memref<?x?x?xf32>, index, index, index, index) -> ()
    func.call @hag_gpu_bwd_zero_row(%dsV, %b, %row, %qcol, %d) : (memref<?x?x?xf32>, index, index, index, index) -> ()
    %sEnd = memref.load %segs[%qb, %sCol1] : memref<?x?xindex>
    %valid = arith.cmpi ult, %row, %sEnd : index
    %c = scf.if %valid -> (f64) {
      %q0 = arith.muli %qb, %B : index
      %q1r = arith.addi %q0, %B : index
      %q1 = arith.minui %q1r, %n : index
      %bj = memref.load %sumB[%b, %row] : memref<?x?xf32>
      %tot = func.call @hag_gpu_bwd_key_rows(%q, %dout, %lse, %Dd, %sumK, %sumV, %dsK, %dsV, %b, %bh, %row, %row, %qcol, %kcol, %q0, %q1, %d, %scale, %bj, %zero)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>,
             memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, index, index, f32, f32, f32) -> f32
      %cc = func.call @hag_gpu_bwd_summary_share(%sumK, %sumV, %dsK, %dsV, %pg, %b, %row, %qb, %t, %qcol, %kcol, %d, %n, %B, %r, %L, %W, %T, %causal, %beta, %eps, %tot)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf64>, index, index, index, index,
             index, index, index, index, index, index, index, index, index, i1, f32, f32, f32) -> f64
      scf.yield %cc : f64
    } else {
      scf.yield %zero64 : f64
    }
    memref.store %c, %sC[%bh, %row] : memref<?x?xf64>
    scf.reduce
  }

  return
}

func.func private @hag_pyramid_attention_backward(
    %q: memref<?x?x?xf32>, %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>,
    %g: memref<?x?xf32>, %convK: memref<?x?x?x?xf32>,
    %convV: memref<?x?x?x?xf32>, %out: memref<?x?x?xf32>,
    %dout: memref<?x?x?xf32>, %dq: memref<?x?x?xf32>, %dk: memref<?x?x?xf32>,
    %dv: memref<?x?x?xf32>, %dg: memref<?x?xf32>,
    %dconvK: memref<?x?x?x?xf32>, %dconvV: memref<?x?x?x?xf32>,
    %H: index, %Hkv: index, %d: index, %B: index, %r: index, %L: index,
    %W: index, %T: index, %causal: i1, %selectK: index, %compress: index,
    %beta: f32, %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %one = arith.constant 1.0 : f32
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %zero64 = arith.constant 0.0 : f64
  %one64 = arith.constant 1.0 : f64
  %false = arith.constant false
  %true = arith.constant true
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  %n = memref.dim %q, %c1 : memref<?x?x?xf32>
  %kvD = arith.muli %Hkv, %d : index
  %qD = arith.muli %H, %d : index
  %bH = arith.muli %bt, %H : index
  %bKv = arith.muli %bt, %Hkv : index
  %eps64 = arith.extf %eps : f32 to f64
  %G = arith.divui %H, %Hkv : index

  // ---- The forward's levels, biases, prefix sums, picks, summary rows. ---
  %total:2 = scf.for %l = %c2 to %L step %c1 iter_args(%acc = %c0, %nPrev = %n) -> (index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %acc2 = arith.addi %acc, %nl : index
    scf.yield %acc2, %nl : index, index
  }
  %alloc = arith.maxui %total#0, %c1 : index
  %levK = memref.alloc(%bt, %alloc, %kvD) : memref<?x?x?xf32>
  %levV = memref.alloc(%bt, %alloc, %kvD) : memref<?x?x?xf32>
  %levM = memref.alloc(%bt, %alloc) : memref<?x?xf32>
  func.call @hag_gpu_build_levels(%k, %v, %g, %convK, %convV, %levK, %levV, %levM, %r, %L, %d, %compress, %eps)
      : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>,
         memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32) -> ()
  %gB = memref.alloc(%bt, %n) : memref<?x?xf32>
  %levB = memref.alloc(%bt, %alloc) : memref<?x?xf32>
  func.call @hag_mass_biases(%g, %levM, %gB, %levB, %total#0, %beta, %eps)
      : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, index, f32, f32) -> ()
  %n1 = arith.addi %n, %c1 : index
  %pk = memref.alloc(%bt, %n1, %kvD) : memref<?x?x?xf64>
  %pv = memref.alloc(%bt, %n1, %kvD) : memref<?x?x?xf64>
  %pg = memref.alloc(%bt, %n1) : memref<?x?xf64>
  func.call @hag_gpu_prefix_sums(%k, %v, %g, %pk, %pv, %pg)
      : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>) -> ()
  %blocks = func.call @hag_ceil_div(%n, %B) : (index, index) -> index
  %kAlloc = arith.maxui %selectK, %c1 : index
  %sel = memref.alloc(%bt, %blocks, %kAlloc) : memref<?x?x?xindex>
  func.call @hag_gpu_select_tokens(%g, %sel, %B, %causal, %selectK)
      : (memref<?x?xf32>, memref<?x?x?xindex>, index, i1, index) -> ()
  %dI64 = arith.index_cast %d : index to i64
  %dF = arith.sitofp %dI64 : i64 to f32
  %sqrtD = math.sqrt %dF : f32
  %scale = arith.divf %one, %sqrtD : f32
  %rows0 = arith.muli %blocks, %T : index
  %rows = arith.maxui %rows0, %c1 : index
  %sumK = memref.alloc(%bt, %rows, %kvD) : memref<?x?x?xf32>
  %sumV = memref.alloc(%bt, %rows, %kvD) : memref<?x?x?xf32>
  %sumB = memref.alloc(%bt, %rows) : memref<?x?xf32>
  func.call @hag_gpu_summary_rows(%pk, %pv, %pg, %sumK, %sumV, %sumB, %B, %r, %L, %W, %T, %causal, %beta, %eps)
      : (memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, index, i1, f32, f32) -> ()
  // The blocks' key ranges: S = 2 (L - 2) + 3 ranges per block.
  %Lm2 = arith.subi %L, %c2 : index
  %S0 = arith.muli %Lm2, %c2 : index
  %S = arith.addi %S0, %c3 : index
  %width = arith.muli %S, %c2 : index
  %segs = memref.alloc(%blocks, %width) : memref<?x?xindex>
  func.call @hag_gpu_block_segments(%segs, %n, %B, %r, %L, %W, %T, %causal, %selectK)
      : (memref<?x?xindex>, index, index, index, index, index, index, i1, index) -> ()

  // ---- 1. Per (batch, head, query): lse, D and dq. -------------------------
  // Head size 32: attention_backward_vector.mlir (rows in registers); others
  // the generic loops (at 64 and 128 the register versions' 3 to 4 rows per
  // thread exceed 255 registers: ptxas spilled 1-25 KB per thread).
  %lse = memref.alloc(%bH, %n) : memref<?x?xf32>
  %Dd = memref.alloc(%bH, %n) : memref<?x?xf32>
  scf.index_switch %d
  case 32 {
    func.call @hag_gpu_bwd_queries_v32(%q, %dout, %out, %dq, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel, %lse, %Dd, %H, %Hkv, %d, %B, %r, %L, %W, %T, %causal, %selectK, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xindex>, memref<?x?xf32>, memref<?x?xf32>, index, index, index, index, index, index, index, index, i1, index, f32) -> ()
    scf.yield
  }
  default {
    func.call @hag_gpu_bwd_queries_generic(%q, %dout, %out, %dq, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel, %lse, %Dd, %H, %Hkv, %d, %B, %r, %L, %W, %T, %causal, %selectK, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xindex>, memref<?x?xf32>, memref<?x?xf32>, index, index, index, index, index, index, index, index, i1, index, f32) -> ()
    scf.yield
  }

  // ---- 2. Per (batch, head, key row): dk, dv and the mass gradients. ------
  %dkh = memref.alloc(%bt, %n, %qD) : memref<?x?x?xf32>
  %dvh = memref.alloc(%bt, %n, %qD) : memref<?x?x?xf32>
  %dmh = memref.alloc(%bH, %n) : memref<?x?xf32>
  %dlkh = memref.alloc(%bt, %alloc, %qD) : memref<?x?x?xf32>
  %dlvh = memref.alloc(%bt, %alloc, %qD) : memref<?x?x?xf32>
  %dlmh = memref.alloc(%bH, %alloc) : memref<?x?xf32>
  %dsK = memref.alloc(%bt, %rows, %qD) : memref<?x?x?xf32>
  %dsV = memref.alloc(%bt, %rows, %qD) : memref<?x?x?xf32>
  %sC = memref.alloc(%bH, %rows) : memref<?x?xf64>
  scf.index_switch %d
  case 32 {
    func.call @hag_gpu_bwd_keys_v32(%q, %dout, %lse, %Dd, %k, %v, %g, %gB, %levK, %levV, %levM, %levB, %sumK, %sumV, %sumB, %pg, %sel, %segs, %dkh, %dvh, %dmh, %dlkh, %dlvh, %dlmh, %dsK, %dsV, %sC, %H, %Hkv, %d, %B, %r, %L, %W, %T, %causal, %total#0, %blocks, %beta, %eps, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf64>, memref<?x?x?xindex>, memref<?x?xindex>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf64>, index, index, index, index, index, index, index, index, i1, index, index, f32, f32, f32) -> ()
    scf.yield
  }
  default {
    func.call @hag_gpu_bwd_keys_generic(%q, %dout, %lse, %Dd, %k, %v, %g, %gB, %levK, %levV, %levM, %levB, %sumK, %sumV, %sumB, %pg, %sel, %segs, %dkh, %dvh, %dmh, %dlkh, %dlvh, %dlmh, %dsK, %dsV, %sC, %H, %Hkv, %d, %B, %r, %L, %W, %T, %causal, %total#0, %blocks, %beta, %eps, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf64>, memref<?x?x?xindex>, memref<?x?xindex>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf64>, index, index, index, index, index, index, index, index, i1, index, index, f32, f32, f32) -> ()
    scf.yield
  }

  // ---- 3. The summaries' gradients as prefix sums of differences. --------
  // sdk[b, i, col] = sum over the summary tokens whose segment holds raw
  // token i of dK / (mass + eps) (f64; likewise sdv, and sds[bh, i] of sC).
  %sdk = memref.alloc(%bt, %n1, %qD) : memref<?x?x?xf64>
  %sdv = memref.alloc(%bt, %n1, %qD) : memref<?x?x?xf64>
  %sds = memref.alloc(%bH, %n1) : memref<?x?xf64>
  scf.parallel (%b, %col) = (%c0, %c0) to (%bt, %qD) step (%c1, %c1) {
    scf.for %i = %c0 to %n1 step %c1 {
      memref.store %zero64, %sdk[%b, %i, %col] : memref<?x?x?xf64>
      memref.store %zero64, %sdv[%b, %i, %col] : memref<?x?x?xf64>
    }
    scf.for %qb = %c0 to %blocks step %c1 {
      scf.for %t = %c0 to %T step %c1 {
        %seg:3 = func.call @hag_gpu_bwd_summary_segment(%qb, %t, %n, %B, %r, %L, %W, %T, %causal)
            : (index, index, index, index, index, index, index, index, i1) -> (index, index, index)
        %live = arith.cmpi ult, %t, %seg#2 : index
        scf.if %live {
          %qbT = arith.muli %qb, %T : index
          %row = arith.addi %qbT, %t : index
          %g1 = memref.load %pg[%b, %seg#1] : memref<?x?xf64>
          %g0 = memref.load %pg[%b, %seg#0] : memref<?x?xf64>
          %mass = arith.subf %g1, %g0 : f64
          %den = arith.addf %mass, %eps64 : f64
          %inv = arith.divf %one64, %den : f64
          %gk = memref.load %dsK[%b, %row, %col] : memref<?x?x?xf32>
          %gv = memref.load %dsV[%b, %row, %col] : memref<?x?x?xf32>
          %gkd = arith.extf %gk : f32 to f64
          %gvd = arith.extf %gv : f32 to f64
          %ck = arith.mulf %gkd, %inv : f64
          %cv = arith.mulf %gvd, %inv : f64
          %a0k = memref.load %sdk[%b, %seg#0, %col] : memref<?x?x?xf64>
          %a0k2 = arith.addf %a0k, %ck : f64
          memref.store %a0k2, %sdk[%b, %seg#0, %col] : memref<?x?x?xf64>
          %a1k = memref.load %sdk[%b, %seg#1, %col] : memref<?x?x?xf64>
          %a1k2 = arith.subf %a1k, %ck : f64
          memref.store %a1k2, %sdk[%b, %seg#1, %col] : memref<?x?x?xf64>
          %a0v = memref.load %sdv[%b, %seg#0, %col] : memref<?x?x?xf64>
          %a0v2 = arith.addf %a0v, %cv : f64
          memref.store %a0v2, %sdv[%b, %seg#0, %col] : memref<?x?x?xf64>
          %a1v = memref.load %sdv[%b, %seg#1, %col] : memref<?x?x?xf64>
          %a1v2 = arith.subf %a1v, %cv : f64
          memref.store %a1v2, %sdv[%b, %seg#1, %col] : memref<?x?x?xf64>
        }
      }
    }
    %run:2 = scf.for %i = %c0 to %n1 step %c1 iter_args(%rk = %zero64, %rv = %zero64) -> (f64, f64) {
      %xk = memref.load %sdk[%b, %i, %col] : memref<?x?x?xf64>
      %xv = memref.load %sdv[%b, %i, %col] : memref<?x?x?xf64>
      %rk2 = arith.addf %rk, %xk : f64
      %rv2 = arith.addf %rv, %xv : f64
      memref.store %rk2, %sdk[%b, %i, %col] : memref<?x?x?xf64>
      memref.store %rv2, %sdv[%b, %i, %col] : memref<?x?x?xf64>
      scf.yield %rk2, %rv2 : f64, f64
    }
    scf.reduce
  }
  scf.parallel (%bh) = (%c0) to (%bH) step (%c1) {
    %b = arith.divui %bh, %H : index
    scf.for %i = %c0 to %n1 step %c1 {
      memref.store %zero64, %sds[%bh, %i] : memref<?x?xf64>
    }
    scf.for %qb = %c0 to %blocks step %c1 {
      scf.for %t = %c0 to %T step %c1 {
        %seg:3 = func.call @hag_gpu_bwd_summary_segment(%qb, %t, %n, %B, %r, %L, %W, %T, %causal)
            : (index, index, index, index, index, index, index, index, i1) -> (index, index, index)
        %live = arith.cmpi ult, %t, %seg#2 : index
        scf.if %live {
          %qbT = arith.muli %qb, %T : index
          %row = arith.addi %qbT, %t : index
          %c = memref.load %sC[%bh, %row] : memref<?x?xf64>
          %o0 = memref.load %sds[%bh, %seg#0] : memref<?x?xf64>
          %n0 = arith.addf %o0, %c : f64
          memref.store %n0, %sds[%bh, %seg#0] : memref<?x?xf64>
          %o1 = memref.load %sds[%bh, %seg#1] : memref<?x?xf64>
          %n1s = arith.subf %o1, %c : f64
          memref.store %n1s, %sds[%bh, %seg#1] : memref<?x?xf64>
        }
      }
    }
    %run = scf.for %i = %c0 to %n1 step %c1 iter_args(%rs = %zero64) -> (f64) {
      %x = memref.load %sds[%bh, %i] : memref<?x?xf64>
      %rs2 = arith.addf %rs, %x : f64
      memref.store %rs2, %sds[%bh, %i] : memref<?x?xf64>
      scf.yield %rs2 : f64
    }
    scf.reduce
  }

  // ---- 4. The group's heads summed, per kv head. --------------------------
  // Raw tokens: dk = sum_h dkh + g CK, dv likewise, and the mass gradient
  // sum_h dmh + sum_h CS + k . CK + v . CV (the CPU kernel's arithmetic).
  %dgm = memref.alloc(%bKv, %n) : memref<?x?xf32>
  scf.parallel (%b, %kvh, %i) = (%c0, %c0, %c0) to (%bt, %Hkv, %n) step (%c1, %c1, %c1) {
    %h0 = arith.muli %kvh, %G : index
    %h1 = arith.addi %h0, %G : index
    %koff = arith.muli %kvh, %d : index
    %bkv0 = arith.muli %b, %Hkv : index
    %bkv = arith.addi %bkv0, %kvh : index
    %bH0 = arith.muli %b, %H : index
    %gi = memref.load %g[%b, %i] : memref<?x?xf32>
    %gid = arith.extf %gi : f32 to f64
    %sums:2 = scf.for %h = %h0 to %h1 step %c1 iter_args(%am = %zero, %as = %zero64) -> (f32, f64) {
      %bh = arith.addi %bH0, %h : index
      %m = memref.load %dmh[%bh, %i] : memref<?x?xf32>
      %s = memref.load %sds[%bh, %i] : memref<?x?xf64>
      %am2 = arith.addf %am, %m : f32
      %as2 = arith.addf %as, %s : f64
      scf.yield %am2, %as2 : f32, f64
    }
    %dgi = scf.for %x = %c0 to %d step %c1 iter_args(%acc = %zero64) -> (f64) {
      %f = arith.addi %koff, %x : index
      %hs:4 = scf.for %h = %h0 to %h1 step %c1 iter_args(%ak = %zero, %av = %zero, %sk = %zero64, %sv = %zero64) -> (f32, f32, f64, f64) {
        %hoff = arith.muli %h, %d : index
        %col = arith.addi %hoff, %x : index
        %gk = memref.load %dkh[%b, %i, %col] : memref<?x?x?xf32>
        %gv = memref.load %dvh[%b, %i, %col] : memref<?x?x?xf32>
        %ck0 = memref.load %sdk[%b, %i, %col] : memref<?x?x?xf64>
        %cv0 = memref.load %sdv[%b, %i, %col] : memref<?x?x?xf64>
        %ak2 = arith.addf %ak, %gk : f32
        %av2 = arith.addf %av, %gv : f32
        %sk2 = arith.addf %sk, %ck0 : f64
        %sv2 = arith.addf %sv, %cv0 : f64
        scf.yield %ak2, %av2, %sk2, %sv2 : f32, f32, f64, f64
      }
      %kx = memref.load %k[%b, %i, %f] : memref<?x?x?xf32>
      %vx = memref.load %v[%b, %i, %f] : memref<?x?x?xf32>
      %kxd = arith.extf %kx : f32 to f64
      %vxd = arith.extf %vx : f32 to f64
      %gck = arith.mulf %gid, %hs#2 : f64
      %gcv = arith.mulf %gid, %hs#3 : f64
      %gckf = arith.truncf %gck : f64 to f32
      %gcvf = arith.truncf %gcv : f64 to f32
      %tk = arith.addf %hs#0, %gckf : f32
      %tv = arith.addf %hs#1, %gcvf : f32
      memref.store %tk, %dk[%b, %i, %f] : memref<?x?x?xf32>
      memref.store %tv, %dv[%b, %i, %f] : memref<?x?x?xf32>
      %acc1 = math.fma %kxd, %hs#2, %acc : f64
      %acc2 = math.fma %vxd, %hs#3, %acc1 : f64
      scf.yield %acc2 : f64
    }
    %tot0 = arith.addf %dgi, %sums#1 : f64
    %totF = arith.truncf %tot0 : f64 to f32
    %tot = arith.addf %totF, %sums#0 : f32
    memref.store %tot, %dgm[%bkv, %i] : memref<?x?xf32>
    scf.reduce
  }
  // Level rows.
  %dlk = memref.alloc(%bt, %alloc, %kvD) : memref<?x?x?xf32>
  %dlv = memref.alloc(%bt, %alloc, %kvD) : memref<?x?x?xf32>
  %dlm = memref.alloc(%bKv, %alloc) : memref<?x?xf32>
  scf.parallel (%b, %kvh, %j) = (%c0, %c0, %c0) to (%bt, %Hkv, %total#0) step (%c1, %c1, %c1) {
    %h0 = arith.muli %kvh, %G : index
    %h1 = arith.addi %h0, %G : index
    %koff = arith.muli %kvh, %d : index
    %bkv0 = arith.muli %b, %Hkv : index
    %bkv = arith.addi %bkv0, %kvh : index
    %bH0 = arith.muli %b, %H : index
    %dmj = scf.for %h = %h0 to %h1 step %c1 iter_args(%am = %zero) -> (f32) {
      %bh = arith.addi %bH0, %h : index
      %m = memref.load %dlmh[%bh, %j] : memref<?x?xf32>
      %am2 = arith.addf %am, %m : f32
      scf.yield %am2 : f32
    }
    memref.store %dmj, %dlm[%bkv, %j] : memref<?x?xf32>
    scf.for %x = %c0 to %d step %c1 {
      %f = arith.addi %koff, %x : index
      %hs:2 = scf.for %h = %h0 to %h1 step %c1 iter_args(%ak = %zero, %av = %zero) -> (f32, f32) {
        %hoff = arith.muli %h, %d : index
        %col = arith.addi %hoff, %x : index
        %gk = memref.load %dlkh[%b, %j, %col] : memref<?x?x?xf32>
        %gv = memref.load %dlvh[%b, %j, %col] : memref<?x?x?xf32>
        %ak2 = arith.addf %ak, %gk : f32
        %av2 = arith.addf %av, %gv : f32
        scf.yield %ak2, %av2 : f32, f32
      }
      memref.store %hs#0, %dlk[%b, %j, %f] : memref<?x?x?xf32>
      memref.store %hs#1, %dlv[%b, %j, %f] : memref<?x?x?xf32>
    }
    scf.reduce
  }

  // ---- 5. Back through the levels, top down. ------------------------------
  // Conv weight gradients per parent row (dAK row b total + packed row), so
  // that no two threads add to one element; summed in step 6.
  %isConv = arith.cmpi eq, %compress, %c2 : index
  %aRowsConv = arith.muli %bt, %alloc : index
  %aRows = arith.select %isConv, %aRowsConv, %c1 : index
  %dAK = memref.alloc(%aRows, %Hkv, %r, %d) : memref<?x?x?x?xf32>
  %dAV = memref.alloc(%aRows, %Hkv, %r, %d) : memref<?x?x?x?xf32>
  scf.parallel (%ar, %c, %t, %x) = (%c0, %c0, %c0, %c0) to (%aRows, %Hkv, %r, %d) step (%c1, %c1, %c1, %c1) {
    memref.store %zero, %dAK[%ar, %c, %t, %x] : memref<?x?x?x?xf32>
    memref.store %zero, %dAV[%ar, %c, %t, %x] : memref<?x?x?x?xf32>
    scf.reduce
  }
  scf.for %li = %c0 to %Lm2 step %c1 {
    %lRev = arith.subi %L, %c1 : index
    %l = arith.subi %lRev, %li : index
    %geo:3 = scf.for %m = %c2 to %l step %c1 iter_args(%offPrev = %c0, %offL = %c0, %nPrev = %n) -> (index, index, index) {
      %nm = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
      %offN = arith.addi %offL, %nm : index
      scf.yield %offL, %offN, %nm : index, index, index
    }
    %nl = func.call @hag_ceil_div(%geo#2, %r) : (index, index) -> index
    %fromRaw = arith.cmpi eq, %l, %c2 : index
    %lc = arith.subi %l, %c2 : index
    %src:7 = scf.if %fromRaw -> (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index) {
      scf.yield %k, %v, %g, %dk, %dv, %dgm, %c0 : memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index
    } else {
      scf.yield %levK, %levV, %levM, %dlk, %dlv, %dlm, %geo#0 : memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index
    }
    scf.parallel (%b, %kvh, %j) = (%c0, %c0, %c0) to (%bt, %Hkv, %nl) step (%c1, %c1, %c1) {
      %koff = arith.muli %kvh, %d : index
      %bkv0 = arith.muli %b, %Hkv : index
      %bkv = arith.addi %bkv0, %kvh : index
      %bA = arith.muli %b, %alloc : index
      %rowJ = arith.addi %geo#1, %j : index
      %aRowC = arith.addi %bA, %rowJ : index
      %aRow = arith.select %isConv, %aRowC, %c0 : index
      func.call @hag_level_token_backward(%levK, %levV, %levM, %dlk, %dlv, %dlm, %geo#1, %j,
          %src#0, %src#1, %src#2, %src#3, %src#4, %src#5, %src#6, %geo#2, %fromRaw,
          %b, %bkv, %kvh, %koff, %d, %r, %lc, %convK, %convV, %dAK, %dAV, %aRow, %compress, %eps)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
             index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>,
             memref<?x?xf32>, index, index, i1, index, index, index, index, index, index, index,
             memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, index, index, f32) -> ()
      scf.reduce
    }
  }

  // ---- 6. dg over the kv heads; conv weight gradients over the rows. -----
  scf.parallel (%b, %i) = (%c0, %c0) to (%bt, %n) step (%c1, %c1) {
    %bkv0 = arith.muli %b, %Hkv : index
    %s = scf.for %c = %c0 to %Hkv step %c1 iter_args(%acc = %zero) -> (f32) {
      %row = arith.addi %bkv0, %c : index
      %x = memref.load %dgm[%row, %i] : memref<?x?xf32>
      %acc2 = arith.addf %acc, %x : f32
      scf.yield %acc2 : f32
    }
    memref.store %s, %dg[%b, %i] : memref<?x?xf32>
    scf.reduce
  }
  // dconv[lc] sums its level's parent rows over the batch; the conv weights
  // of levels the attention did not walk (L = 2) get zeros.
  %nConvAll = memref.dim %dconvK, %c0 : memref<?x?x?x?xf32>
  scf.parallel (%lc, %c, %t, %x) = (%c0, %c0, %c0, %c0) to (%nConvAll, %Hkv, %r, %d) step (%c1, %c1, %c1, %c1) {
    %walked = arith.cmpi ult, %lc, %Lm2 : index
    %s:2 = scf.if %walked -> (f32, f32) {
      // Level lc + 2: its offset in the packed levels and its length.
      %geo:2 = scf.for %m = %c0 to %lc step %c1 iter_args(%off = %c0, %nPrev = %n) -> (index, index) {
        %nm = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
        %offN = arith.addi %off, %nm : index
        scf.yield %offN, %nm : index, index
      }
      %nl = func.call @hag_ceil_div(%geo#1, %r) : (index, index) -> index
      %sb:2 = scf.for %b = %c0 to %bt step %c1 iter_args(%ak = %zero, %av = %zero) -> (f32, f32) {
        %bA = arith.muli %b, %alloc : index
        %base = arith.addi %bA, %geo#0 : index
        %sj:2 = scf.for %j = %c0 to %nl step %c1 iter_args(%bk = %ak, %bv = %av) -> (f32, f32) {
          %row = arith.addi %base, %j : index
          %xk = memref.load %dAK[%row, %c, %t, %x] : memref<?x?x?x?xf32>
          %xv = memref.load %dAV[%row, %c, %t, %x] : memref<?x?x?x?xf32>
          %bk2 = arith.addf %bk, %xk : f32
          %bv2 = arith.addf %bv, %xv : f32
          scf.yield %bk2, %bv2 : f32, f32
        }
        scf.yield %sj#0, %sj#1 : f32, f32
      }
      scf.yield %sb#0, %sb#1 : f32, f32
    } else {
      scf.yield %zero, %zero : f32, f32
    }
    memref.store %s#0, %dconvK[%lc, %c, %t, %x] : memref<?x?x?x?xf32>
    memref.store %s#1, %dconvV[%lc, %c, %t, %x] : memref<?x?x?x?xf32>
    scf.reduce
  }
  return
}
