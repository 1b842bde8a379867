// The CPU backward of pyramid attention (spec sections 3-5, 8 and 12), on
// memrefs. Parsed together with pyramid_attention.mlir, whose level, summary,
// select_k, score and P V functions it reuses, so the backward sees exactly
// the keys and probabilities of the forward.
//
// @hag_pyramid_attention_backward, given dO (the gradient of the output o):
//   1. rebuilds the compressed levels, the f64 prefix sums and the mass
//      biases (as the forward does);
//   2. per (batch, head) task, block after block (FlashAttention-style
//      recompute, no N x N buffer): rebuilds the block's key set, its
//      scores and probabilities P (exact two-pass softmax), dP = dO V^T,
//      dS = P (dP - rowsum(dO o)); dQ += dS K / sqrt(d); per key of every
//      source dK += dS^T Q / sqrt(d), dV += P^T dO and, through the mass bias,
//      dm += beta sum_r dS / (m + eps). Raw and level gradients accumulate
//      in per-head buffers; a summary token's gradient becomes difference
//      entries over its raw segment (f64), a select_k pick's goes to its raw
//      token;
//   3. per (batch, kv head) task: sums the heads of the group, turns the
//      summary differences into prefix sums (the gated mean's gradient to
//      every raw k, v and g of the segment), and goes back through the
//      levels from L-1 down to 2 (gated_mean, max, conv, and the mass sums);
//   4. sums the mass gradients of all kv heads into dg and the conv weights'
//      gradients over the batch.
//
// Layouts as the forward; dO, dq [batch, N, H*d]; dk, dv [batch, N, Hkv*d];
// dg [batch, N]; dconvK, dconvV [L-2, Hkv, r, d] (size 0 unless conv).

// dst[db, j, dcol + f] += scale * sum_{r < nq} A[row0 + j - j0, r]
//                                   * X[xb, q0 + r, xoff + f]
// for the keys j in [j0, j1) and features f < d: dK = dS^T Q and dV = P^T dO
// for one source range. Tiles of 4 keys x 16 features (per query one vector
// load of X, 4 broadcasts of A, 4 FMAs), then single keys, then scalar
// features.
func.func private @hag_range_grad(
    %A: memref<?x?xf32>, %row0: index, %j0: index, %j1: index, %nq: index,
    %X: memref<?x?x?xf32>, %xb: index, %q0: index, %xoff: index, %d: index,
    %scale: f32, %dst: memref<?x?x?xf32>, %db: index, %dcol: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  %zv = arith.constant dense<0.0> : vector<16xf32>
  %scaleV = vector.broadcast %scale : f32 to vector<16xf32>
  %nk = arith.subi %j1, %j0 : index
  %nk4a = arith.divui %nk, %c4 : index
  %nk4 = arith.muli %nk4a, %c4 : index
  %d16a = arith.divui %d, %c16 : index
  %d16 = arith.muli %d16a, %c16 : index
  // 4 keys at a time.
  scf.for %t = %c0 to %nk4 step %c4 {
    %ra = arith.addi %row0, %t : index
    %rb = arith.addi %ra, %c1 : index
    %rc = arith.addi %ra, %c2 : index
    %rd = arith.addi %ra, %c3 : index
    %ja = arith.addi %j0, %t : index
    %jb = arith.addi %ja, %c1 : index
    %jc = arith.addi %ja, %c2 : index
    %jd = arith.addi %ja, %c3 : index
    scf.for %f = %c0 to %d16 step %c16 {
      %xc = arith.addi %xoff, %f : index
      %acc:4 = scf.for %r = %c0 to %nq step %c1
          iter_args(%s0 = %zv, %s1 = %zv, %s2 = %zv, %s3 = %zv)
          -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
        %qi = arith.addi %q0, %r : index
        %x = vector.load %X[%xb, %qi, %xc] : memref<?x?x?xf32>, vector<16xf32>
        %a0 = memref.load %A[%ra, %r] : memref<?x?xf32>
        %a1 = memref.load %A[%rb, %r] : memref<?x?xf32>
        %a2 = memref.load %A[%rc, %r] : memref<?x?xf32>
        %a3 = memref.load %A[%rd, %r] : memref<?x?xf32>
        %b0 = vector.broadcast %a0 : f32 to vector<16xf32>
        %b1 = vector.broadcast %a1 : f32 to vector<16xf32>
        %b2 = vector.broadcast %a2 : f32 to vector<16xf32>
        %b3 = vector.broadcast %a3 : f32 to vector<16xf32>
        %n0 = vector.fma %b0, %x, %s0 : vector<16xf32>
        %n1 = vector.fma %b1, %x, %s1 : vector<16xf32>
        %n2 = vector.fma %b2, %x, %s2 : vector<16xf32>
        %n3 = vector.fma %b3, %x, %s3 : vector<16xf32>
        scf.yield %n0, %n1, %n2, %n3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
      }
      %dc = arith.addi %dcol, %f : index
      %o0 = vector.load %dst[%db, %ja, %dc] : memref<?x?x?xf32>, vector<16xf32>
      %u0 = vector.fma %scaleV, %acc#0, %o0 : vector<16xf32>
      vector.store %u0, %dst[%db, %ja, %dc] : memref<?x?x?xf32>, vector<16xf32>
      %o1 = vector.load %dst[%db, %jb, %dc] : memref<?x?x?xf32>, vector<16xf32>
      %u1 = vector.fma %scaleV, %acc#1, %o1 : vector<16xf32>
      vector.store %u1, %dst[%db, %jb, %dc] : memref<?x?x?xf32>, vector<16xf32>
      %o2 = vector.load %dst[%db, %jc, %dc] : memref<?x?x?xf32>, vector<16xf32>
      %u2 = vector.fma %scaleV, %acc#2, %o2 : vector<16xf32>
      vector.store %u2, %dst[%db, %jc, %dc] : memref<?x?x?xf32>, vector<16xf32>
      %o3 = vector.load %dst[%db, %jd, %dc] : memref<?x?x?xf32>, vector<16xf32>
      %u3 = vector.fma %scaleV, %acc#3, %o3 : vector<16xf32>
      vector.store %u3, %dst[%db, %jd, %dc] : memref<?x?x?xf32>, vector<16xf32>
    }
  }
  // The remaining keys, 16 features at a time.
  scf.for %t = %nk4 to %nk step %c1 {
    %ra = arith.addi %row0, %t : index
    %ja = arith.addi %j0, %t : index
    scf.for %f = %c0 to %d16 step %c16 {
      %xc = arith.addi %xoff, %f : index
      %acc = scf.for %r = %c0 to %nq step %c1 iter_args(%s0 = %zv) -> (vector<16xf32>) {
        %qi = arith.addi %q0, %r : index
        %x = vector.load %X[%xb, %qi, %xc] : memref<?x?x?xf32>, vector<16xf32>
        %a0 = memref.load %A[%ra, %r] : memref<?x?xf32>
        %b0 = vector.broadcast %a0 : f32 to vector<16xf32>
        %n0 = vector.fma %b0, %x, %s0 : vector<16xf32>
        scf.yield %n0 : vector<16xf32>
      }
      %dc = arith.addi %dcol, %f : index
      %o0 = vector.load %dst[%db, %ja, %dc] : memref<?x?x?xf32>, vector<16xf32>
      %u0 = vector.fma %scaleV, %acc, %o0 : vector<16xf32>
      vector.store %u0, %dst[%db, %ja, %dc] : memref<?x?x?xf32>, vector<16xf32>
    }
  }
  // Features past the last multiple of 16, every key.
  scf.for %t = %c0 to %nk step %c1 {
    %ra = arith.addi %row0, %t : index
    %ja = arith.addi %j0, %t : index
    scf.for %f = %d16 to %d step %c1 {
      %xc = arith.addi %xoff, %f : index
      %acc = scf.for %r = %c0 to %nq step %c1 iter_args(%s0 = %zero) -> (f32) {
        %qi = arith.addi %q0, %r : index
        %x = memref.load %X[%xb, %qi, %xc] : memref<?x?x?xf32>
        %a0 = memref.load %A[%ra, %r] : memref<?x?xf32>
        %n0 = math.fma %a0, %x, %s0 : f32
        scf.yield %n0 : f32
      }
      %dc = arith.addi %dcol, %f : index
      %o0 = memref.load %dst[%db, %ja, %dc] : memref<?x?x?xf32>
      %u0 = math.fma %scale, %acc, %o0 : f32
      memref.store %u0, %dst[%db, %ja, %dc] : memref<?x?x?xf32>
    }
  }
  return
}

// The mass bias's gradient for the keys j in [j0, j1) of one source:
// dst[db, j] += beta * sum_{r < nq} dS[row0 + j - j0, r] / (m[mb, moff + j] + eps).
func.func private @hag_range_mass_grad(
    %dS: memref<?x?xf32>, %row0: index, %j0: index, %j1: index, %nq: index,
    %m: memref<?x?xf32>, %mb: index, %moff: index, %beta: f32, %eps: f32,
    %dst: memref<?x?xf32>, %db: index) {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  scf.for %j = %j0 to %j1 step %c1 {
    %t = arith.subi %j, %j0 : index
    %row = arith.addi %row0, %t : index
    %s = scf.for %r = %c0 to %nq step %c1 iter_args(%acc = %zero) -> (f32) {
      %x = memref.load %dS[%row, %r] : memref<?x?xf32>
      %acc2 = arith.addf %acc, %x : f32
      scf.yield %acc2 : f32
    }
    %mi = arith.addi %moff, %j : index
    %mass = memref.load %m[%mb, %mi] : memref<?x?xf32>
    %den = arith.addf %mass, %eps : f32
    %bs = arith.mulf %beta, %s : f32
    %gr = arith.divf %bs, %den : f32
    %old = memref.load %dst[%db, %j] : memref<?x?xf32>
    %new = arith.addf %old, %gr : f32
    memref.store %new, %dst[%db, %j] : memref<?x?xf32>
  }
  return
}

// Pass A for one source range [j0, j1): its scores against the block's
// queries into St (as the forward) and dP^T = V dO^T into dPt (values
// against the packed output gradients, no scale, zero bias).
func.func private @hag_range_scores_both(
    %keys: memref<?x?x?xf32>, %vals: memref<?x?x?xf32>, %kb: index,
    %j0: index, %j1: index, %koff: index, %bias: memref<?x?xf32>, %bb: index,
    %zeros: memref<?x?xf32>, %Qt: memref<?x?xf32>, %dOt: memref<?x?xf32>,
    %nqPad: index, %d: index, %scale: f32, %St: memref<?x?xf32>,
    %dPt: memref<?x?xf32>, %row0: index) {
  %c0 = arith.constant 0 : index
  %one = arith.constant 1.0 : f32
  func.call @hag_range_scores(%keys, %kb, %j0, %j1, %koff, %bias, %bb, %c0, %Qt, %nqPad, %d, %scale, %St, %row0)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, index) -> ()
  func.call @hag_range_scores(%vals, %kb, %j0, %j1, %koff, %zeros, %c0, %c0, %dOt, %nqPad, %d, %one, %dPt, %row0)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, index) -> ()
  return
}

// Pass B for one source range [j0, j1) (rows row0.. of P and dS):
//   dq[b, q0 + r, qoff + f] += sum_j dS[j, r] k_j[f]     (scaled later),
//   dK[db, j, dcol + f]     += scale sum_r dS[j, r] q_r[f],
//   dV[db, j, dcol + f]     += sum_r P[j, r] dO_r[f],
//   dM[dmb, j]              += beta sum_r dS[j, r] / (m_j + eps).
func.func private @hag_range_backward(
    %keys: memref<?x?x?xf32>, %kb: index, %j0: index, %j1: index,
    %koff: index, %m: memref<?x?xf32>, %mb: index,
    %P: memref<?x?xf32>, %dS: memref<?x?xf32>, %row0: index, %nq: index,
    %d: index, %q: memref<?x?x?xf32>, %dO: memref<?x?x?xf32>, %b: index,
    %q0: index, %qoff: index, %scale: f32, %beta: f32, %eps: f32,
    %dq: memref<?x?x?xf32>, %dK: memref<?x?x?xf32>, %dV: memref<?x?x?xf32>,
    %db: index, %dcol: index, %dM: memref<?x?xf32>, %dmb: index) {
  %c0 = arith.constant 0 : index
  %one = arith.constant 1.0 : f32
  func.call @hag_range_pv(%keys, %kb, %j0, %j1, %koff, %dS, %row0, %nq, %d, %dq, %b, %q0, %qoff, %j1)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index, index) -> ()
  func.call @hag_range_grad(%dS, %row0, %j0, %j1, %nq, %q, %b, %q0, %qoff, %d, %scale, %dK, %db, %dcol)
      : (memref<?x?xf32>, index, index, index, index, memref<?x?x?xf32>, index, index, index, index, f32, memref<?x?x?xf32>, index, index) -> ()
  func.call @hag_range_grad(%P, %row0, %j0, %j1, %nq, %dO, %b, %q0, %qoff, %d, %one, %dV, %db, %dcol)
      : (memref<?x?xf32>, index, index, index, index, memref<?x?x?xf32>, index, index, index, index, f32, memref<?x?x?xf32>, index, index) -> ()
  func.call @hag_range_mass_grad(%dS, %row0, %j0, %j1, %nq, %m, %mb, %c0, %beta, %eps, %dM, %dmb)
      : (memref<?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, f32, f32, memref<?x?xf32>, index) -> ()
  return
}

// One (batch, head, query block) of the backward: the forward's key set
// and probabilities again, then the gradients of every key and query. Raw
// and level gradients go to the per-head buffers dkh, dvh [batch, N, H*d],
// dlkh, dlvh [batch, total, H*d], dmh [batch*H, N], dlmh [batch*H, total];
// the summary tokens' to the f64 difference arrays sdk, sdv
// [batch, N + 1, H*d] and sds [batch*H, N + 1].
func.func private @hag_attend_block_backward(
    %q: memref<?x?x?xf32>, %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>,
    %g: memref<?x?xf32>, %out: memref<?x?x?xf32>, %dout: memref<?x?x?xf32>,
    %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>, %levM: memref<?x?xf32>,
    %levB: memref<?x?xf32>, %gB: memref<?x?xf32>, %pk: memref<?x?x?xf64>,
    %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>, %zeros: memref<?x?xf32>,
    %dq: memref<?x?x?xf32>, %dkh: memref<?x?x?xf32>, %dvh: memref<?x?x?xf32>,
    %dlkh: memref<?x?x?xf32>, %dlvh: memref<?x?x?xf32>, %dmh: memref<?x?xf32>,
    %dlmh: memref<?x?xf32>, %sdk: memref<?x?x?xf64>, %sdv: memref<?x?x?xf64>,
    %sds: memref<?x?xf64>,
    %b: index, %h: index, %qb: index, %n: index,
    %H: index, %Hkv: index, %d: index, %B: index, %r: index, %L: index,
    %W: index, %T: index, %causal: i1, %selectK: index,
    %beta: f32, %eps: f32, %scale: f32) attributes {no_inline} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %one64 = arith.constant 1.0 : f64
  %zero64 = arith.constant 0.0 : f64
  %kAlloc = arith.maxui %selectK, %c1 : index
  %tAlloc = arith.maxui %T, %c1 : index
  %hk = arith.muli %h, %Hkv : index
  %kvh = arith.divui %hk, %H : index
  %qoff = arith.muli %h, %d : index
  %koff = arith.muli %kvh, %d : index
  %bh0 = arith.muli %b, %H : index
  %bh = arith.addi %bh0, %h : index
  %q0 = arith.muli %qb, %B : index
  %q1r = arith.addi %q0, %B : index
  %q1 = arith.minui %q1r, %n : index
  %a1r = arith.subi %q0, %B : index
  %a1 = arith.maxsi %a1r, %c0 : index
  %b2 = arith.addi %q1r, %B : index
  %e1b = arith.minui %b2, %n : index
  %e1 = arith.select %causal, %q1, %e1b : index
  // The summary prefix and the number of level keys (as the forward).
  %last:4 = scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1, %e = %e1, %nPrev = %n, %cnt = %c0) -> (index, index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%a, %e, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %left = arith.subi %w#1, %w#0 : index
    %right = arith.subi %w#3, %w#2 : index
    %cnt1 = arith.addi %cnt, %left : index
    %cnt2 = arith.addi %cnt1, %right : index
    scf.yield %w#0, %w#3, %nl, %cnt2 : index, index, index, index
  }
  %Lm2 = arith.subi %L, %c2 : index
  %sigma = scf.for %x = %c0 to %Lm2 step %c1 iter_args(%s = %c1) -> (index) {
    %s2 = arith.muli %s, %r : index
    scf.yield %s2 : index
  }
  %pc = arith.muli %last#0, %sigma : index
  %prefix = arith.select %causal, %pc, %n : index
  %tp = arith.minui %T, %prefix : index

  // The summary tokens (keys, values, biases as the forward) and their
  // masses; the select_k picks with their masses.
  %sK = memref.alloca(%tAlloc, %d) : memref<?x?xf32>
  %sV = memref.alloca(%tAlloc, %d) : memref<?x?xf32>
  %sB = memref.alloca(%tAlloc) : memref<?xf32>
  %sM = memref.alloca(%tAlloc) : memref<?xf32>
  %sK3 = memref.expand_shape %sK [[0, 1], [2]] output_shape [1, %tAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %sV3 = memref.expand_shape %sV [[0, 1], [2]] output_shape [1, %tAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %sKd = memref.cast %sK3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %sVd = memref.cast %sV3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %sB2 = memref.expand_shape %sB [[0, 1]] output_shape [1, %tAlloc] : memref<?xf32> into memref<1x?xf32>
  %sBd = memref.cast %sB2 : memref<1x?xf32> to memref<?x?xf32>
  %sM2 = memref.expand_shape %sM [[0, 1]] output_shape [1, %tAlloc] : memref<?xf32> into memref<1x?xf32>
  %sMd = memref.cast %sM2 : memref<1x?xf32> to memref<?x?xf32>
  func.call @hag_summary_tokens(%pk, %pv, %pg, %b, %koff, %prefix, %tp, %d, %beta, %eps, %sKd, %sVd, %sBd, %c0, %c0, %c0, %c0)
      : (memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>, index, index, index, index, index, f32, f32,
         memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index) -> ()
  scf.for %t = %c0 to %tp step %c1 {
    %tP = arith.muli %t, %prefix : index
    %s0 = arith.divui %tP, %tp : index
    %t1 = arith.addi %t, %c1 : index
    %t1P = arith.muli %t1, %prefix : index
    %s1 = arith.divui %t1P, %tp : index
    %g1 = memref.load %pg[%b, %s1] : memref<?x?xf64>
    %g0 = memref.load %pg[%b, %s0] : memref<?x?xf64>
    %mass = arith.subf %g1, %g0 : f64
    %massF = arith.truncf %mass : f64 to f32
    memref.store %massF, %sM[%t] : memref<?xf32>
  }
  %nb = arith.subi %n, %e1 : index
  %rightCand = arith.select %causal, %c0, %nb : index
  %cands = arith.addi %a1, %rightCand : index
  %kp = arith.minui %selectK, %cands : index
  %picked = memref.alloca(%kAlloc) : memref<?xindex>
  %selK = memref.alloca(%kAlloc, %d) : memref<?x?xf32>
  %selV = memref.alloca(%kAlloc, %d) : memref<?x?xf32>
  %selB = memref.alloca(%kAlloc) : memref<?xf32>
  %selM = memref.alloca(%kAlloc) : memref<?xf32>
  %selK3 = memref.expand_shape %selK [[0, 1], [2]] output_shape [1, %kAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %selV3 = memref.expand_shape %selV [[0, 1], [2]] output_shape [1, %kAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %selKd = memref.cast %selK3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %selVd = memref.cast %selV3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %selB2 = memref.expand_shape %selB [[0, 1]] output_shape [1, %kAlloc] : memref<?xf32> into memref<1x?xf32>
  %selBd = memref.cast %selB2 : memref<1x?xf32> to memref<?x?xf32>
  %selM2 = memref.expand_shape %selM [[0, 1]] output_shape [1, %kAlloc] : memref<?xf32> into memref<1x?xf32>
  %selMd = memref.cast %selM2 : memref<1x?xf32> to memref<?x?xf32>
  func.call @hag_select_tokens(%g, %c0, %gB, %k, %v, %b, %koff, %d, %a1, %e1, %n, %causal, %kp, %picked, %selKd, %selVd, %selBd, %c0, %c0, %c0, %c0)
      : (memref<?x?xf32>, index, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index,
         index, index, index, i1, index, memref<?xindex>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
         index, index, index, index) -> ()
  scf.for %p = %c0 to %kp step %c1 {
    %j = memref.load %picked[%p] : memref<?xindex>
    %gj = memref.load %g[%b, %j] : memref<?x?xf32>
    memref.store %gj, %selM[%p] : memref<?xf32>
  }

  // The block's queries and output gradients, transposed (the lanes).
  %nq = arith.subi %q1, %q0 : index
  %nqPad0 = func.call @hag_ceil_div(%nq, %c16) : (index, index) -> index
  %nqPad = arith.muli %nqPad0, %c16 : index
  %Qt = memref.alloc(%d, %nqPad) : memref<?x?xf32>
  %dOt = memref.alloc(%d, %nqPad) : memref<?x?xf32>
  func.call @hag_pack_queries(%q, %b, %q0, %nq, %qoff, %d, %Qt, %nqPad)
      : (memref<?x?x?xf32>, index, index, index, index, index, memref<?x?xf32>, index) -> ()
  func.call @hag_pack_queries(%dout, %b, %q0, %nq, %qoff, %d, %dOt, %nqPad)
      : (memref<?x?x?xf32>, index, index, index, index, index, memref<?x?xf32>, index) -> ()
  %n1 = arith.subi %e1, %a1 : index
  %kn0 = arith.addi %n1, %last#3 : index
  %kn1 = arith.addi %kn0, %tp : index
  %Kn = arith.addi %kn1, %kp : index

  // ---- Pass A: scores St and dP^T, source by source. ----------------------
  %St = memref.alloc(%Kn, %nqPad) : memref<?x?xf32>
  %dPt = memref.alloc(%Kn, %nqPad) : memref<?x?xf32>
  %lS = memref.alloc(%nqPad) : memref<?xf32>
  func.call @hag_range_scores_both(%k, %v, %b, %a1, %e1, %koff, %gB, %b, %zeros, %Qt, %dOt, %nqPad, %d, %scale, %St, %dPt, %c0)
      : (memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, memref<?x?xf32>,
         memref<?x?xf32>, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
  %rowL:5 = scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1, %e = %e1, %nPrev = %n, %off = %c0, %row = %n1) -> (index, index, index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%a, %e, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %la = arith.addi %off, %w#0 : index
    %lc = arith.addi %off, %w#1 : index
    func.call @hag_range_scores_both(%levK, %levV, %b, %la, %lc, %koff, %levB, %b, %zeros, %Qt, %dOt, %nqPad, %d, %scale, %St, %dPt, %row)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, memref<?x?xf32>,
           memref<?x?xf32>, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
    %rowA0 = arith.subi %lc, %la : index
    %rowA = arith.addi %row, %rowA0 : index
    %ra = arith.addi %off, %w#2 : index
    %rc = arith.addi %off, %w#3 : index
    func.call @hag_range_scores_both(%levK, %levV, %b, %ra, %rc, %koff, %levB, %b, %zeros, %Qt, %dOt, %nqPad, %d, %scale, %St, %dPt, %rowA)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, memref<?x?xf32>,
           memref<?x?xf32>, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
    %rowB0 = arith.subi %rc, %ra : index
    %rowB = arith.addi %rowA, %rowB0 : index
    %offNext = arith.addi %off, %nl : index
    scf.yield %w#0, %w#3, %nl, %offNext, %rowB : index, index, index, index, index
  }
  func.call @hag_range_scores_both(%sKd, %sVd, %c0, %c0, %tp, %c0, %sBd, %c0, %zeros, %Qt, %dOt, %nqPad, %d, %scale, %St, %dPt, %rowL#4)
      : (memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, memref<?x?xf32>,
         memref<?x?xf32>, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
  %rowS = arith.addi %rowL#4, %tp : index
  func.call @hag_range_scores_both(%selKd, %selVd, %c0, %c0, %kp, %c0, %selBd, %c0, %zeros, %Qt, %dOt, %nqPad, %d, %scale, %St, %dPt, %rowS)
      : (memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, memref<?x?xf32>,
         memref<?x?xf32>, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, memref<?x?xf32>, index) -> ()
  scf.if %causal {
    scf.for %c = %c0 to %n1 step %c1 {
      %ac = arith.addi %a1, %c : index
      %lim0 = arith.subi %ac, %q0 : index
      %lim1 = arith.maxsi %lim0, %c0 : index
      %lim = arith.minsi %lim1, %nqPad : index
      scf.for %rr = %c0 to %lim step %c1 {
        memref.store %ninf, %St[%c, %rr] : memref<?x?xf32>
      }
    }
  }
  func.call @hag_block_softmax(%St, %Kn, %nqPad, %lS) : (memref<?x?xf32>, index, index, memref<?xf32>) -> ()

  // Di[r] = dO_r . o_r (0 on the padding lanes); P = p / l; dS = P (dP - Di).
  %Di = memref.alloc(%nqPad) : memref<?xf32>
  scf.for %rr = %c0 to %nqPad step %c1 {
    %live = arith.cmpi ult, %rr, %nq : index
    %qi = arith.addi %q0, %rr : index
    %dot = scf.if %live -> (f32) {
      %s = scf.for %x = %c0 to %d step %c1 iter_args(%acc = %zero) -> (f32) {
        %col = arith.addi %qoff, %x : index
        %dy = memref.load %dout[%b, %qi, %col] : memref<?x?x?xf32>
        %y = memref.load %out[%b, %qi, %col] : memref<?x?x?xf32>
        %acc2 = math.fma %dy, %y, %acc : f32
        scf.yield %acc2 : f32
      }
      scf.yield %s : f32
    } else {
      scf.yield %zero : f32
    }
    memref.store %dot, %Di[%rr] : memref<?xf32>
  }
  %onesV = arith.constant dense<1.0> : vector<16xf32>
  scf.for %rc = %c0 to %nqPad step %c16 {
    %lv = vector.load %lS[%rc] : memref<?xf32>, vector<16xf32>
    %inv = arith.divf %onesV, %lv : vector<16xf32>
    %dv = vector.load %Di[%rc] : memref<?xf32>, vector<16xf32>
    scf.for %j = %c0 to %Kn step %c1 {
      %p0 = vector.load %St[%j, %rc] : memref<?x?xf32>, vector<16xf32>
      %p = arith.mulf %p0, %inv : vector<16xf32>
      vector.store %p, %St[%j, %rc] : memref<?x?xf32>, vector<16xf32>
      %dp = vector.load %dPt[%j, %rc] : memref<?x?xf32>, vector<16xf32>
      %diff = arith.subf %dp, %dv : vector<16xf32>
      %ds = arith.mulf %p, %diff : vector<16xf32>
      vector.store %ds, %dPt[%j, %rc] : memref<?x?xf32>, vector<16xf32>
    }
  }

  // ---- Pass B: the gradients, source by source. ---------------------------
  // Level 1: raw keys [a_1, e_1) -> dkh, dvh, dmh.
  func.call @hag_range_backward(%k, %b, %a1, %e1, %koff, %g, %b, %St, %dPt, %c0, %nq, %d, %q, %dout, %b, %q0, %qoff,
      %scale, %beta, %eps, %dq, %dkh, %dvh, %b, %qoff, %dmh, %bh)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, memref<?x?xf32>, memref<?x?xf32>,
         index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, f32, f32, f32,
         memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, memref<?x?xf32>, index) -> ()
  // Compressed levels -> dlkh, dlvh, dlmh.
  %rowP:5 = scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1, %e = %e1, %nPrev = %n, %off = %c0, %row = %n1) -> (index, index, index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%a, %e, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %la = arith.addi %off, %w#0 : index
    %lc = arith.addi %off, %w#1 : index
    func.call @hag_range_backward(%levK, %b, %la, %lc, %koff, %levM, %b, %St, %dPt, %row, %nq, %d, %q, %dout, %b, %q0, %qoff,
        %scale, %beta, %eps, %dq, %dlkh, %dlvh, %b, %qoff, %dlmh, %bh)
        : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, memref<?x?xf32>, memref<?x?xf32>,
           index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, f32, f32, f32,
           memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, memref<?x?xf32>, index) -> ()
    %rowA0 = arith.subi %lc, %la : index
    %rowA = arith.addi %row, %rowA0 : index
    %ra = arith.addi %off, %w#2 : index
    %rc = arith.addi %off, %w#3 : index
    func.call @hag_range_backward(%levK, %b, %ra, %rc, %koff, %levM, %b, %St, %dPt, %rowA, %nq, %d, %q, %dout, %b, %q0, %qoff,
        %scale, %beta, %eps, %dq, %dlkh, %dlvh, %b, %qoff, %dlmh, %bh)
        : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, memref<?x?xf32>, memref<?x?xf32>,
           index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, f32, f32, f32,
           memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, memref<?x?xf32>, index) -> ()
    %rowB0 = arith.subi %rc, %ra : index
    %rowB = arith.addi %rowA, %rowB0 : index
    %offNext = arith.addi %off, %nl : index
    scf.yield %w#0, %w#3, %nl, %offNext, %rowB : index, index, index, index, index
  }
  // The summary tokens -> scratch sdK, sdV [1, T, d], sdM [1, T].
  %sdK = memref.alloca(%tAlloc, %d) : memref<?x?xf32>
  %sdV = memref.alloca(%tAlloc, %d) : memref<?x?xf32>
  %sdM = memref.alloca(%tAlloc) : memref<?xf32>
  linalg.fill ins(%zero : f32) outs(%sdK : memref<?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%sdV : memref<?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%sdM : memref<?xf32>)
  %sdK3 = memref.expand_shape %sdK [[0, 1], [2]] output_shape [1, %tAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %sdV3 = memref.expand_shape %sdV [[0, 1], [2]] output_shape [1, %tAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %sdKd = memref.cast %sdK3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %sdVd = memref.cast %sdV3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %sdM2 = memref.expand_shape %sdM [[0, 1]] output_shape [1, %tAlloc] : memref<?xf32> into memref<1x?xf32>
  %sdMd = memref.cast %sdM2 : memref<1x?xf32> to memref<?x?xf32>
  func.call @hag_range_backward(%sKd, %c0, %c0, %tp, %c0, %sMd, %c0, %St, %dPt, %rowP#4, %nq, %d, %q, %dout, %b, %q0, %qoff,
      %scale, %beta, %eps, %dq, %sdKd, %sdVd, %c0, %c0, %sdMd, %c0)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, memref<?x?xf32>, memref<?x?xf32>,
         index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, f32, f32, f32,
         memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, memref<?x?xf32>, index) -> ()
  // select_k picks -> scratch, then added to their raw tokens.
  %selDK = memref.alloca(%kAlloc, %d) : memref<?x?xf32>
  %selDV = memref.alloca(%kAlloc, %d) : memref<?x?xf32>
  %selDM = memref.alloca(%kAlloc) : memref<?xf32>
  linalg.fill ins(%zero : f32) outs(%selDK : memref<?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%selDV : memref<?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%selDM : memref<?xf32>)
  %selDK3 = memref.expand_shape %selDK [[0, 1], [2]] output_shape [1, %kAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %selDV3 = memref.expand_shape %selDV [[0, 1], [2]] output_shape [1, %kAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %selDKd = memref.cast %selDK3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %selDVd = memref.cast %selDV3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %selDM2 = memref.expand_shape %selDM [[0, 1]] output_shape [1, %kAlloc] : memref<?xf32> into memref<1x?xf32>
  %selDMd = memref.cast %selDM2 : memref<1x?xf32> to memref<?x?xf32>
  %rowSP = arith.addi %rowP#4, %tp : index
  func.call @hag_range_backward(%selKd, %c0, %c0, %kp, %c0, %selMd, %c0, %St, %dPt, %rowSP, %nq, %d, %q, %dout, %b, %q0, %qoff,
      %scale, %beta, %eps, %dq, %selDKd, %selDVd, %c0, %c0, %selDMd, %c0)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, memref<?x?xf32>, memref<?x?xf32>,
         index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, f32, f32, f32,
         memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, memref<?x?xf32>, index) -> ()
  scf.for %p = %c0 to %kp step %c1 {
    %j = memref.load %picked[%p] : memref<?xindex>
    scf.for %x = %c0 to %d step %c1 {
      %col = arith.addi %qoff, %x : index
      %gk = memref.load %selDK[%p, %x] : memref<?x?xf32>
      %gv = memref.load %selDV[%p, %x] : memref<?x?xf32>
      %ok = memref.load %dkh[%b, %j, %col] : memref<?x?x?xf32>
      %ov = memref.load %dvh[%b, %j, %col] : memref<?x?x?xf32>
      %nk = arith.addf %ok, %gk : f32
      %nv = arith.addf %ov, %gv : f32
      memref.store %nk, %dkh[%b, %j, %col] : memref<?x?x?xf32>
      memref.store %nv, %dvh[%b, %j, %col] : memref<?x?x?xf32>
    }
    %gm = memref.load %selDM[%p] : memref<?xf32>
    %om = memref.load %dmh[%bh, %j] : memref<?x?xf32>
    %nm = arith.addf %om, %gm : f32
    memref.store %nm, %dmh[%bh, %j] : memref<?x?xf32>
  }
  // The summary tokens' gradients as differences over their segments: the
  // gated mean K = sum g k / (M + eps) sends g_i dK / (M + eps) to k_i, and
  // (k_i - K) . dK / (M + eps) + dM to g_i, for every i of the segment.
  scf.for %t = %c0 to %tp step %c1 {
    %tP = arith.muli %t, %prefix : index
    %s0 = arith.divui %tP, %tp : index
    %t1 = arith.addi %t, %c1 : index
    %t1P = arith.muli %t1, %prefix : index
    %s1 = arith.divui %t1P, %tp : index
    %g1 = memref.load %pg[%b, %s1] : memref<?x?xf64>
    %g0 = memref.load %pg[%b, %s0] : memref<?x?xf64>
    %mass = arith.subf %g1, %g0 : f64
    %epsF64 = arith.extf %eps : f32 to f64
    %den = arith.addf %mass, %epsF64 : f64
    %inv = arith.divf %one64, %den : f64
    %dot = scf.for %x = %c0 to %d step %c1 iter_args(%acc = %zero64) -> (f64) {
      %col = arith.addi %qoff, %x : index
      %gk = memref.load %sdK[%t, %x] : memref<?x?xf32>
      %gv = memref.load %sdV[%t, %x] : memref<?x?xf32>
      %kk = memref.load %sK[%t, %x] : memref<?x?xf32>
      %vv = memref.load %sV[%t, %x] : memref<?x?xf32>
      %gkd = arith.extf %gk : f32 to f64
      %gvd = arith.extf %gv : f32 to f64
      %kkd = arith.extf %kk : f32 to f64
      %vvd = arith.extf %vv : f32 to f64
      %ck = arith.mulf %gkd, %inv : f64
      %cv = arith.mulf %gvd, %inv : f64
      %a0k = memref.load %sdk[%b, %s0, %col] : memref<?x?x?xf64>
      %a0k2 = arith.addf %a0k, %ck : f64
      memref.store %a0k2, %sdk[%b, %s0, %col] : memref<?x?x?xf64>
      %a1k = memref.load %sdk[%b, %s1, %col] : memref<?x?x?xf64>
      %a1k2 = arith.subf %a1k, %ck : f64
      memref.store %a1k2, %sdk[%b, %s1, %col] : memref<?x?x?xf64>
      %a0v = memref.load %sdv[%b, %s0, %col] : memref<?x?x?xf64>
      %a0v2 = arith.addf %a0v, %cv : f64
      memref.store %a0v2, %sdv[%b, %s0, %col] : memref<?x?x?xf64>
      %a1v = memref.load %sdv[%b, %s1, %col] : memref<?x?x?xf64>
      %a1v2 = arith.subf %a1v, %cv : f64
      memref.store %a1v2, %sdv[%b, %s1, %col] : memref<?x?x?xf64>
      %acc1 = math.fma %kkd, %ck, %acc : f64
      %acc2 = math.fma %vvd, %cv, %acc1 : f64
      scf.yield %acc2 : f64
    }
    %dm = memref.load %sdM[%t] : memref<?xf32>
    %dmd = arith.extf %dm : f32 to f64
    %c = arith.subf %dmd, %dot : f64
    %o0 = memref.load %sds[%bh, %s0] : memref<?x?xf64>
    %n0 = arith.addf %o0, %c : f64
    memref.store %n0, %sds[%bh, %s0] : memref<?x?xf64>
    %o1 = memref.load %sds[%bh, %s1] : memref<?x?xf64>
    %n1s = arith.subf %o1, %c : f64
    memref.store %n1s, %sds[%bh, %s1] : memref<?x?xf64>
  }
  return
}

// Level l's token j (rows off + j of levK/levV, mass levM[b, off + j],
// gradients dlk/dlv at the same rows and dlm[dmb, off + j]) back to its
// children one level down: rows cOff + c of srcK/srcV with masses
// srcM[b, cOff + c] (raw k, v, g at level 2), gradients into dK/dV rows
// cOff + c and dM[dmb, cOff + c]. Features koff .. koff + d of kv head kvh.
func.func private @hag_level_token_backward(
    %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>, %levM: memref<?x?xf32>,
    %dlk: memref<?x?x?xf32>, %dlv: memref<?x?x?xf32>, %dlm: memref<?x?xf32>,
    %off: index, %j: index,
    %srcK: memref<?x?x?xf32>, %srcV: memref<?x?x?xf32>, %srcM: memref<?x?xf32>,
    %dK: memref<?x?x?xf32>, %dV: memref<?x?x?xf32>, %dM: memref<?x?xf32>,
    %cOff: index, %nPrev: index, %fromRaw: i1,
    %b: index, %dmb: index, %kvh: index, %koff: index, %d: index, %r: index,
    %lc: index, %convK: memref<?x?x?x?xf32>, %convV: memref<?x?x?x?xf32>,
    %dAK: memref<?x?x?x?xf32>, %dAV: memref<?x?x?x?xf32>, %aRow: index,
    %compress: index, %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %false = arith.constant false
  %isMax = arith.cmpi eq, %compress, %c1 : index
  %isConv = arith.cmpi eq, %compress, %c2 : index
  %row = arith.addi %off, %j : index
  %first = arith.muli %j, %r : index
  %endR = arith.addi %first, %r : index
  %end = arith.minui %endR, %nPrev : index
  %mj = memref.load %levM[%b, %row] : memref<?x?xf32>
  %den = arith.addf %mj, %eps : f32
  // Features: the keys' and values' gradients to the children, and the
  // children's mass gradients through the weights; dot = K . dK + V . dV.
  %dot = scf.for %x = %c0 to %d step %c1 iter_args(%acc = %zero) -> (f32) {
    %f = arith.addi %koff, %x : index
    %gK = memref.load %dlk[%b, %row, %f] : memref<?x?x?xf32>
    %gV = memref.load %dlv[%b, %row, %f] : memref<?x?x?xf32>
    %kj = memref.load %levK[%b, %row, %f] : memref<?x?x?xf32>
    %vj = memref.load %levV[%b, %row, %f] : memref<?x?x?xf32>
    %gKd = arith.divf %gK, %den : f32
    %gVd = arith.divf %gV, %den : f32
    %found:2 = scf.for %c = %first to %end step %c1 iter_args(%fk = %false, %fv = %false) -> (i1, i1) {
      %ci = arith.addi %cOff, %c : index
      %ck = memref.load %srcK[%b, %ci, %f] : memref<?x?x?xf32>
      %cv = memref.load %srcV[%b, %ci, %f] : memref<?x?x?xf32>
      %cm = memref.load %srcM[%b, %ci] : memref<?x?xf32>
      %res:2 = scf.if %isMax -> (i1, i1) {
        // The first child that holds the max gets the gradient.
        %eqk = arith.cmpf oeq, %ck, %kj : f32
        %eqv = arith.cmpf oeq, %cv, %vj : f32
        %true = arith.constant true
        %nfk = arith.xori %fk, %true : i1
        %nfv = arith.xori %fv, %true : i1
        %tk = arith.andi %eqk, %nfk : i1
        %tv = arith.andi %eqv, %nfv : i1
        scf.if %tk {
          %o = memref.load %dK[%b, %ci, %f] : memref<?x?x?xf32>
          %u = arith.addf %o, %gK : f32
          memref.store %u, %dK[%b, %ci, %f] : memref<?x?x?xf32>
        }
        scf.if %tv {
          %o = memref.load %dV[%b, %ci, %f] : memref<?x?x?xf32>
          %u = arith.addf %o, %gV : f32
          memref.store %u, %dV[%b, %ci, %f] : memref<?x?x?xf32>
        }
        %fk2 = arith.ori %fk, %eqk : i1
        %fv2 = arith.ori %fv, %eqv : i1
        scf.yield %fk2, %fv2 : i1, i1
      } else {
        // gated_mean: weight w_c = m_c (raw) or m_c + eps (compressed);
        // conv: w_c = m_c A[t].
        %meps = arith.addf %cm, %eps : f32
        %wMean = arith.select %fromRaw, %cm, %meps : f32
        %w:4 = scf.if %isConv -> (f32, f32, f32, f32) {
          %t = arith.subi %c, %first : index
          %ak = memref.load %convK[%lc, %kvh, %t, %x] : memref<?x?x?x?xf32>
          %av = memref.load %convV[%lc, %kvh, %t, %x] : memref<?x?x?x?xf32>
          // dA[t] += dK m_c K_c / den.
          %mk = arith.mulf %cm, %ck : f32
          %mv = arith.mulf %cm, %cv : f32
          %dak = arith.mulf %gKd, %mk : f32
          %dav = arith.mulf %gVd, %mv : f32
          %oak = memref.load %dAK[%aRow, %kvh, %t, %x] : memref<?x?x?x?xf32>
          %nak = arith.addf %oak, %dak : f32
          memref.store %nak, %dAK[%aRow, %kvh, %t, %x] : memref<?x?x?x?xf32>
          %oav = memref.load %dAV[%aRow, %kvh, %t, %x] : memref<?x?x?x?xf32>
          %nav = arith.addf %oav, %dav : f32
          memref.store %nav, %dAV[%aRow, %kvh, %t, %x] : memref<?x?x?x?xf32>
          %wk = arith.mulf %cm, %ak : f32
          %wv = arith.mulf %cm, %av : f32
          scf.yield %wk, %wv, %ak, %av : f32, f32, f32, f32
        } else {
          %oneF = arith.constant 1.0 : f32
          scf.yield %wMean, %wMean, %oneF, %oneF : f32, f32, f32, f32
        }
        // dK_c += w dK / den; dm_c += (d w / d m_c) K_c . dK / den.
        %ok = memref.load %dK[%b, %ci, %f] : memref<?x?x?xf32>
        %uk = math.fma %w#0, %gKd, %ok : f32
        memref.store %uk, %dK[%b, %ci, %f] : memref<?x?x?xf32>
        %ov = memref.load %dV[%b, %ci, %f] : memref<?x?x?xf32>
        %uv = math.fma %w#1, %gVd, %ov : f32
        memref.store %uv, %dV[%b, %ci, %f] : memref<?x?x?xf32>
        %tk0 = arith.mulf %w#2, %ck : f32
        %tk = arith.mulf %tk0, %gKd : f32
        %tv0 = arith.mulf %w#3, %cv : f32
        %tv = arith.mulf %tv0, %gVd : f32
        %tm = arith.addf %tk, %tv : f32
        %om = memref.load %dM[%dmb, %ci] : memref<?x?xf32>
        %um = arith.addf %om, %tm : f32
        memref.store %um, %dM[%dmb, %ci] : memref<?x?xf32>
        scf.yield %fk, %fv : i1, i1
      }
      scf.yield %res#0, %res#1 : i1, i1
    }
    %a1 = math.fma %kj, %gK, %acc : f32
    %a2 = math.fma %vj, %gV, %a1 : f32
    scf.yield %a2 : f32
  }
  // The token's mass is the sum of the children's: its gradient (and, for
  // the weighted means, -K . dK / den from the division) goes to each.
  %dmj = memref.load %dlm[%dmb, %row] : memref<?x?xf32>
  %dotDen = arith.divf %dot, %den : f32
  %viaDiv = arith.select %isMax, %zero, %dotDen : f32
  %dmTotal = arith.subf %dmj, %viaDiv : f32
  scf.for %c = %first to %end step %c1 {
    %ci = arith.addi %cOff, %c : index
    %om = memref.load %dM[%dmb, %ci] : memref<?x?xf32>
    %um = arith.addf %om, %dmTotal : f32
    memref.store %um, %dM[%dmb, %ci] : memref<?x?xf32>
  }
  return
}

// One (batch, kv head): sums the group's per-head gradients into dk, dv,
// dlk, dlv, dgm [batch*Hkv, N] and dlm [batch*Hkv, total], resolves the
// summary differences, then goes back through the levels L-1 .. 2.
func.func private @hag_kv_head_backward(
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %g: memref<?x?xf32>,
    %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>, %levM: memref<?x?xf32>,
    %dkh: memref<?x?x?xf32>, %dvh: memref<?x?x?xf32>,
    %dlkh: memref<?x?x?xf32>, %dlvh: memref<?x?x?xf32>, %dmh: memref<?x?xf32>,
    %dlmh: memref<?x?xf32>, %sdk: memref<?x?x?xf64>, %sdv: memref<?x?x?xf64>,
    %sds: memref<?x?xf64>,
    %dk: memref<?x?x?xf32>, %dv: memref<?x?x?xf32>, %dgm: memref<?x?xf32>,
    %dlk: memref<?x?x?xf32>, %dlv: memref<?x?x?xf32>, %dlm: memref<?x?xf32>,
    %convK: memref<?x?x?x?xf32>, %convV: memref<?x?x?x?xf32>,
    %dAK: memref<?x?x?x?xf32>, %dAV: memref<?x?x?x?xf32>,
    %b: index, %kvh: index, %n: index, %total: index,
    %H: index, %Hkv: index, %d: index, %r: index, %L: index,
    %compress: index, %eps: f32) attributes {no_inline} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %zero64 = arith.constant 0.0 : f64
  %G = arith.divui %H, %Hkv : index
  %h0 = arith.muli %kvh, %G : index
  %h1 = arith.addi %h0, %G : index
  %koff = arith.muli %kvh, %d : index
  %bkv0 = arith.muli %b, %Hkv : index
  %bkv = arith.addi %bkv0, %kvh : index
  %bH = arith.muli %b, %H : index
  %Lm2 = arith.subi %L, %c2 : index
  %aRow0 = arith.muli %b, %Lm2 : index
  // Raw tokens: the heads' sums, plus the summaries' prefix sums
  // CK_i = sum_{j <= i} diff_j (f64, per feature) applied to k_i, v_i, g_i.
  %CK = memref.alloca(%d) : memref<?xf64>
  %CV = memref.alloca(%d) : memref<?xf64>
  linalg.fill ins(%zero64 : f64) outs(%CK : memref<?xf64>)
  linalg.fill ins(%zero64 : f64) outs(%CV : memref<?xf64>)
  scf.for %i = %c0 to %n step %c1 iter_args(%cs = %zero64) -> (f64) {
    %gi = memref.load %g[%b, %i] : memref<?x?xf32>
    %gid = arith.extf %gi : f32 to f64
    %sums:2 = scf.for %h = %h0 to %h1 step %c1 iter_args(%am = %zero, %as = %cs) -> (f32, f64) {
      %bh = arith.addi %bH, %h : index
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
        %dk0 = memref.load %sdk[%b, %i, %col] : memref<?x?x?xf64>
        %dv0 = memref.load %sdv[%b, %i, %col] : memref<?x?x?xf64>
        %ak2 = arith.addf %ak, %gk : f32
        %av2 = arith.addf %av, %gv : f32
        %sk2 = arith.addf %sk, %dk0 : f64
        %sv2 = arith.addf %sv, %dv0 : f64
        scf.yield %ak2, %av2, %sk2, %sv2 : f32, f32, f64, f64
      }
      %ck0 = memref.load %CK[%x] : memref<?xf64>
      %cv0 = memref.load %CV[%x] : memref<?xf64>
      %ck = arith.addf %ck0, %hs#2 : f64
      %cv = arith.addf %cv0, %hs#3 : f64
      memref.store %ck, %CK[%x] : memref<?xf64>
      memref.store %cv, %CV[%x] : memref<?xf64>
      %kx = memref.load %k[%b, %i, %f] : memref<?x?x?xf32>
      %vx = memref.load %v[%b, %i, %f] : memref<?x?x?xf32>
      %kxd = arith.extf %kx : f32 to f64
      %vxd = arith.extf %vx : f32 to f64
      %gck = arith.mulf %gid, %ck : f64
      %gcv = arith.mulf %gid, %cv : f64
      %gckf = arith.truncf %gck : f64 to f32
      %gcvf = arith.truncf %gcv : f64 to f32
      %tk = arith.addf %hs#0, %gckf : f32
      %tv = arith.addf %hs#1, %gcvf : f32
      memref.store %tk, %dk[%b, %i, %f] : memref<?x?x?xf32>
      memref.store %tv, %dv[%b, %i, %f] : memref<?x?x?xf32>
      %acc1 = math.fma %kxd, %ck, %acc : f64
      %acc2 = math.fma %vxd, %cv, %acc1 : f64
      scf.yield %acc2 : f64
    }
    %tot0 = arith.addf %dgi, %sums#1 : f64
    %totF = arith.truncf %tot0 : f64 to f32
    %tot = arith.addf %totF, %sums#0 : f32
    memref.store %tot, %dgm[%bkv, %i] : memref<?x?xf32>
    scf.yield %sums#1 : f64
  }
  // Level tokens: the heads' sums.
  scf.for %j = %c0 to %total step %c1 {
    %dmj = scf.for %h = %h0 to %h1 step %c1 iter_args(%am = %zero) -> (f32) {
      %bh = arith.addi %bH, %h : index
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
  }
  // Back through the levels, top down: level l's gradients are complete
  // once level l+1 has sent its share.
  scf.for %i = %c0 to %Lm2 step %c1 {
    %lRev = arith.subi %L, %c1 : index
    %l = arith.subi %lRev, %i : index
    // Offsets and lengths of levels l-1 and l.
    %geo:3 = scf.for %m = %c2 to %l step %c1 iter_args(%offPrev = %c0, %offL = %c0, %nPrev = %n) -> (index, index, index) {
      %nm = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
      %offN = arith.addi %offL, %nm : index
      scf.yield %offL, %offN, %nm : index, index, index
    }
    // %geo#1: the offset of level l; %geo#0: that of level l-1 (l > 2);
    // %geo#2: n_{l-1} (N at l = 2).
    %nl = func.call @hag_ceil_div(%geo#2, %r) : (index, index) -> index
    %fromRaw = arith.cmpi eq, %l, %c2 : index
    %lc = arith.subi %l, %c2 : index
    %aRow = arith.addi %aRow0, %lc : index
    %src:7 = scf.if %fromRaw -> (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index) {
      scf.yield %k, %v, %g, %dk, %dv, %dgm, %c0 : memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index
    } else {
      scf.yield %levK, %levV, %levM, %dlk, %dlv, %dlm, %geo#0 : memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index
    }
    scf.for %j = %c0 to %nl step %c1 {
      func.call @hag_level_token_backward(%levK, %levV, %levM, %dlk, %dlv, %dlm, %geo#1, %j,
          %src#0, %src#1, %src#2, %src#3, %src#4, %src#5, %src#6, %geo#2, %fromRaw,
          %b, %bkv, %kvh, %koff, %d, %r, %lc, %convK, %convV, %dAK, %dAV, %aRow, %compress, %eps)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
             index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>,
             memref<?x?xf32>, index, index, i1, index, index, index, index, index, index, index,
             memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, index, index, f32) -> ()
    }
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
  %one = arith.constant 1.0 : f32
  %zero = arith.constant 0.0 : f32
  %zero64 = arith.constant 0.0 : f64
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  %n = memref.dim %q, %c1 : memref<?x?x?xf32>
  %kvD = arith.muli %Hkv, %d : index
  %qD = arith.muli %H, %d : index

  // ---- 1. The forward's levels, prefix sums and mass biases. --------------
  %total:2 = scf.for %l = %c2 to %L step %c1 iter_args(%acc = %c0, %nPrev = %n) -> (index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %acc2 = arith.addi %acc, %nl : index
    scf.yield %acc2, %nl : index, index
  }
  %alloc = arith.maxui %total#0, %c1 : index
  %levK = memref.alloc(%bt, %alloc, %kvD) : memref<?x?x?xf32>
  %levV = memref.alloc(%bt, %alloc, %kvD) : memref<?x?x?xf32>
  %levM = memref.alloc(%bt, %alloc) : memref<?x?xf32>
  func.call @hag_build_levels(%k, %v, %g, %convK, %convV, %levK, %levV, %levM, %r, %L, %d, %compress, %eps)
      : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>,
         memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, f32) -> ()
  %n1 = arith.addi %n, %c1 : index
  %pk = memref.alloc(%bt, %n1, %kvD) {alignment = 64 : i64} : memref<?x?x?xf64>
  %pv = memref.alloc(%bt, %n1, %kvD) {alignment = 64 : i64} : memref<?x?x?xf64>
  %pg = memref.alloc(%bt, %n1) : memref<?x?xf64>
  func.call @hag_prefix_sums(%k, %v, %g, %pk, %pv, %pg)
      : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>) -> ()
  %gB = memref.alloc(%bt, %n) : memref<?x?xf32>
  %levB = memref.alloc(%bt, %alloc) : memref<?x?xf32>
  func.call @hag_mass_biases(%g, %levM, %gB, %levB, %total#0, %beta, %eps)
      : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, index, f32, f32) -> ()

  // ---- 2. Per (batch, head), block after block. ---------------------------
  %bH = arith.muli %bt, %H : index
  %dkh = memref.alloc(%bt, %n, %qD) : memref<?x?x?xf32>
  %dvh = memref.alloc(%bt, %n, %qD) : memref<?x?x?xf32>
  %dlkh = memref.alloc(%bt, %alloc, %qD) : memref<?x?x?xf32>
  %dlvh = memref.alloc(%bt, %alloc, %qD) : memref<?x?x?xf32>
  %dmh = memref.alloc(%bH, %n) : memref<?x?xf32>
  %dlmh = memref.alloc(%bH, %alloc) : memref<?x?xf32>
  %sdk = memref.alloc(%bt, %n1, %qD) : memref<?x?x?xf64>
  %sdv = memref.alloc(%bt, %n1, %qD) : memref<?x?x?xf64>
  %sds = memref.alloc(%bH, %n1) : memref<?x?xf64>
  linalg.fill ins(%zero : f32) outs(%dq : memref<?x?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%dkh : memref<?x?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%dvh : memref<?x?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%dlkh : memref<?x?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%dlvh : memref<?x?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%dmh : memref<?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%dlmh : memref<?x?xf32>)
  linalg.fill ins(%zero64 : f64) outs(%sdk : memref<?x?x?xf64>)
  linalg.fill ins(%zero64 : f64) outs(%sdv : memref<?x?x?xf64>)
  linalg.fill ins(%zero64 : f64) outs(%sds : memref<?x?xf64>)
  // Zero biases for dP = dO V^T through the score kernel.
  %zn0 = arith.maxui %n, %alloc : index
  %zn1 = arith.maxui %zn0, %T : index
  %zn = arith.maxui %zn1, %selectK : index
  %zeros = memref.alloc(%c1, %zn) : memref<?x?xf32>
  linalg.fill ins(%zero : f32) outs(%zeros : memref<?x?xf32>)
  %blocks = func.call @hag_ceil_div(%n, %B) : (index, index) -> index
  %dI64 = arith.index_cast %d : index to i64
  %dF = arith.sitofp %dI64 : i64 to f32
  %sqrtD = math.sqrt %dF : f32
  %scale = arith.divf %one, %sqrtD : f32
  scf.parallel (%b, %h) = (%c0, %c0) to (%bt, %H) step (%c1, %c1) {
    scf.for %qb = %c0 to %blocks step %c1 {
      func.call @hag_attend_block_backward(%q, %k, %v, %g, %out, %dout, %levK, %levV, %levM, %levB, %gB,
          %pk, %pv, %pg, %zeros, %dq, %dkh, %dvh, %dlkh, %dlvh, %dmh, %dlmh, %sdk, %sdv, %sds,
          %b, %h, %qb, %n, %H, %Hkv, %d, %B, %r, %L, %W, %T, %causal, %selectK, %beta, %eps, %scale)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>,
             memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>,
             memref<?x?xf32>, memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>, memref<?x?xf32>,
             memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>,
             memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>,
             index, index, index, index, index, index, index, index, index, index, index, index,
             i1, index, f32, f32, f32) -> ()
    }
    // dq = dS K / sqrt(d): the scale, once per row of this head.
    %qoff = arith.muli %h, %d : index
    scf.for %i = %c0 to %n step %c1 {
      scf.for %x = %c0 to %d step %c1 {
        %col = arith.addi %qoff, %x : index
        %y = memref.load %dq[%b, %i, %col] : memref<?x?x?xf32>
        %ys = arith.mulf %y, %scale : f32
        memref.store %ys, %dq[%b, %i, %col] : memref<?x?x?xf32>
      }
    }
    scf.reduce
  }

  // ---- 3. Per (batch, kv head): heads summed, summaries, levels. ----------
  %bKv = arith.muli %bt, %Hkv : index
  %dgm = memref.alloc(%bKv, %n) : memref<?x?xf32>
  %dlk = memref.alloc(%bt, %alloc, %kvD) : memref<?x?x?xf32>
  %dlv = memref.alloc(%bt, %alloc, %kvD) : memref<?x?x?xf32>
  %dlm = memref.alloc(%bKv, %alloc) : memref<?x?xf32>
  %Lm2 = arith.subi %L, %c2 : index
  %aRows0 = arith.muli %bt, %Lm2 : index
  %aRows = arith.maxui %aRows0, %c1 : index
  %dAK = memref.alloc(%aRows, %Hkv, %r, %d) : memref<?x?x?x?xf32>
  %dAV = memref.alloc(%aRows, %Hkv, %r, %d) : memref<?x?x?x?xf32>
  linalg.fill ins(%zero : f32) outs(%dAK : memref<?x?x?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%dAV : memref<?x?x?x?xf32>)
  scf.parallel (%b, %kvh) = (%c0, %c0) to (%bt, %Hkv) step (%c1, %c1) {
    func.call @hag_kv_head_backward(%k, %v, %g, %levK, %levV, %levM, %dkh, %dvh, %dlkh, %dlvh, %dmh, %dlmh,
        %sdk, %sdv, %sds, %dk, %dv, %dgm, %dlk, %dlv, %dlm, %convK, %convV, %dAK, %dAV,
        %b, %kvh, %n, %total#0, %H, %Hkv, %d, %r, %L, %compress, %eps)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>,
           memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>,
           memref<?x?xf32>, memref<?x?xf32>, memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>,
           memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>,
           memref<?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>,
           memref<?x?x?x?xf32>, index, index, index, index, index, index, index, index, index, index, f32) -> ()
    scf.reduce
  }

  // ---- 4. dg over the kv heads; the conv weights' gradients over batch. ---
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
  // The conv weights of levels the attention did not walk (L = 2: the
  // local_only ablation) get zero gradients.
  linalg.fill ins(%zero : f32) outs(%dconvK : memref<?x?x?x?xf32>)
  linalg.fill ins(%zero : f32) outs(%dconvV : memref<?x?x?x?xf32>)
  %nConvAll = memref.dim %dconvK, %c0 : memref<?x?x?x?xf32>
  %nConv = arith.minui %nConvAll, %Lm2 : index
  scf.parallel (%lc, %c) = (%c0, %c0) to (%nConv, %Hkv) step (%c1, %c1) {
    scf.for %t = %c0 to %r step %c1 {
      scf.for %x = %c0 to %d step %c1 {
        %s:2 = scf.for %b = %c0 to %bt step %c1 iter_args(%ak = %zero, %av = %zero) -> (f32, f32) {
          %row0 = arith.muli %b, %Lm2 : index
          %row = arith.addi %row0, %lc : index
          %xk = memref.load %dAK[%row, %c, %t, %x] : memref<?x?x?x?xf32>
          %xv = memref.load %dAV[%row, %c, %t, %x] : memref<?x?x?x?xf32>
          %ak2 = arith.addf %ak, %xk : f32
          %av2 = arith.addf %av, %xv : f32
          scf.yield %ak2, %av2 : f32, f32
        }
        memref.store %s#0, %dconvK[%lc, %c, %t, %x] : memref<?x?x?x?xf32>
        memref.store %s#1, %dconvV[%lc, %c, %t, %x] : memref<?x?x?x?xf32>
      }
    }
    scf.reduce
  }
  return
}
