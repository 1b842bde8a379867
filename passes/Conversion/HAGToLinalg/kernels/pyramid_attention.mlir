// The CPU pyramid-attention kernel (spec sections 3-5 and 12), on memrefs.
//
// hag-lower-to-linalg clones these functions into the module and calls
// @hag_pyramid_attention with the layer's configuration as constants; after
// inlining, the constants fold into the loop bounds. One call:
//   1. builds every compressed level once from the level below (exact gated
//      mean via S_c = (m_c + eps) K_c for compressed children; max; conv),
//   2. forms f64 running prefix sums of g*k, g*v and g for the summaries,
//   3. runs every (batch, query block, head) in parallel; per block it forms
//      the T' summary tokens once, picks the select_k tokens once, and runs
//      three dense products over the block's whole key set: scores (the
//      queries as vector lanes), an exact two-pass softmax, and P V (no
//      N x N buffer, no per-query copy of keys).
//
// @hag_pyramid_decode is one incremental-decoding step on per-layer caches
// (spec section 10, at the end of this file); it shares the level, summary
// and select_k code with the forward kernel.
//
// Workspace buffers are freed by the buffer-deallocation pipeline that
// runs after inlining; per-block scratch is allocated in @hag_attend_block
// (never inlined, so it is released per block).
//
// Layouts: q [batch, N, H*d], k and v [batch, N, Hkv*d], g [batch, N];
// conv weights packed [L-2, Hkv, r, d] (size 0 unless compress = conv);
// out [batch, N, H*d]. compress: 0 gated_mean, 1 max, 2 conv.

// ceil(a / b) for a >= 0, b > 0.
func.func private @hag_ceil_div(%a: index, %b: index) -> index {
  %c1 = arith.constant 1 : index
  %bm1 = arith.subi %b, %c1 : index
  %n = arith.addi %a, %bm1 : index
  %q = arith.divui %n, %b : index
  return %q : index
}

// The windows of level `l` for a block whose level l-1 window is [aPrev, ...)
// on the left and ends at ePrev on the right (spec section 4). Returns
// (a_l, c_l, e'_l, e_l); the right range is empty when causal.
func.func private @hag_level_window(%aPrev: index, %ePrev: index, %l: index,
    %L: index, %r: index, %W: index, %nl: index, %causal: i1)
    -> (index, index, index, index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c = arith.divui %aPrev, %r : index
  %lastL = arith.subi %L, %c1 : index
  %isLast = arith.cmpi eq, %l, %lastL : index
  // Left: a_l = max(0, r floor((c - W) / r)) below L-1, max(0, c - W) at L-1.
  %cw = arith.subi %c, %W : index
  %fl = arith.floordivsi %cw, %r : index
  %rounded = arith.muli %fl, %r : index
  %aRaw = arith.select %isLast, %cw, %rounded : index
  %a = arith.maxsi %aRaw, %c0 : index
  // Right: e'_l = ceil(e_{l-1} / r); e_l = min(n_l, r ceil((e' + W) / r))
  // below L-1, min(n_l, e' + W) at L-1.
  %ep = func.call @hag_ceil_div(%ePrev, %r) : (index, index) -> index
  %epw = arith.addi %ep, %W : index
  %up = func.call @hag_ceil_div(%epw, %r) : (index, index) -> index
  %upr = arith.muli %up, %r : index
  %eRaw = arith.select %isLast, %epw, %upr : index
  %e = arith.minsi %eRaw, %nl : index
  %epOut = arith.select %causal, %c0, %ep : index
  %eOut = arith.select %causal, %c0, %e : index
  return %a, %c, %epOut, %eOut : index, index, index, index
}

// Token j of a compressed level from its children [j r, min(j r + r, nPrev))
// one level down (spec section 3): mass = sum of the children's masses;
// gated_mean, max or conv keys and values. Child c is row srcOff + c of
// srcK/srcV with mass srcM[b, srcMOff + c]; the token goes to row `dst` of
// dstK/dstV and its mass to dstM[b, dstMCol]. Returns the mass. Shared by
// the forward kernel (every token of a level) and the decoding step (the
// token that contains the new position), so both compute the same bits.
func.func private @hag_level_token(
    %srcK: memref<?x?x?xf32>, %srcV: memref<?x?x?xf32>, %srcM: memref<?x?xf32>,
    %srcOff: index, %srcMOff: index, %fromRaw: i1,
    %dstK: memref<?x?x?xf32>, %dstV: memref<?x?x?xf32>, %dstM: memref<?x?xf32>,
    %dst: index, %dstMCol: index,
    %b: index, %j: index, %nPrev: index, %r: index, %kvD: index, %d: index,
    %lc: index, %convK: memref<?x?x?x?xf32>, %convV: memref<?x?x?x?xf32>,
    %compress: index, %eps: f32) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %isMax = arith.cmpi eq, %compress, %c1 : index
  %isConv = arith.cmpi eq, %compress, %c2 : index
  %first = arith.muli %j, %r : index
  %endR = arith.addi %first, %r : index
  %end = arith.minui %endR, %nPrev : index
  // m_l(j): the sum of the children's masses.
  %mass = scf.for %c = %first to %end step %c1 iter_args(%ms = %zero) -> (f32) {
    %ci = arith.addi %srcMOff, %c : index
    %mc = memref.load %srcM[%b, %ci] : memref<?x?xf32>
    %ms2 = arith.addf %ms, %mc : f32
    scf.yield %ms2 : f32
  }
  %den = arith.addf %mass, %eps : f32
  memref.store %mass, %dstM[%b, %dstMCol] : memref<?x?xf32>
  // gated_mean and max: 16 features at a time (the same per-element
  // arithmetic in the same order as the scalar loop below, so the bits do
  // not depend on the path); conv and the features past the last 16 take
  // the scalar loop.
  %c16 = arith.constant 16 : index
  %kv16a = arith.divui %kvD, %c16 : index
  %kv16b = arith.muli %kv16a, %c16 : index
  %vecEnd = arith.select %isConv, %c0, %kv16b : index
  %ninfV = vector.broadcast %ninf : f32 to vector<16xf32>
  %zeroV = vector.broadcast %zero : f32 to vector<16xf32>
  %initV = arith.select %isMax, %ninfV, %zeroV : vector<16xf32>
  %denV = vector.broadcast %den : f32 to vector<16xf32>
  scf.for %f = %c0 to %vecEnd step %c16 {
    %resV:2 = scf.for %c = %first to %end step %c1 iter_args(%ak = %initV, %av = %initV) -> (vector<16xf32>, vector<16xf32>) {
      %ci = arith.addi %srcOff, %c : index
      %cm = arith.addi %srcMOff, %c : index
      %ch0 = vector.load %srcK[%b, %ci, %f] : memref<?x?x?xf32>, vector<16xf32>
      %ch1 = vector.load %srcV[%b, %ci, %f] : memref<?x?x?xf32>, vector<16xf32>
      %ch2 = memref.load %srcM[%b, %cm] : memref<?x?xf32>
      %out2:2 = scf.if %isMax -> (vector<16xf32>, vector<16xf32>) {
        %mk = arith.maximumf %ak, %ch0 : vector<16xf32>
        %mv = arith.maximumf %av, %ch1 : vector<16xf32>
        scf.yield %mk, %mv : vector<16xf32>, vector<16xf32>
      } else {
        %meps = arith.addf %ch2, %eps : f32
        %wMean = arith.select %fromRaw, %ch2, %meps : f32
        %w = vector.broadcast %wMean : f32 to vector<16xf32>
        %nk = vector.fma %w, %ch0, %ak : vector<16xf32>
        %nv = vector.fma %w, %ch1, %av : vector<16xf32>
        scf.yield %nk, %nv : vector<16xf32>, vector<16xf32>
      }
      scf.yield %out2#0, %out2#1 : vector<16xf32>, vector<16xf32>
    }
    %kOut = scf.if %isMax -> (vector<16xf32>) {
      scf.yield %resV#0 : vector<16xf32>
    } else {
      %x = arith.divf %resV#0, %denV : vector<16xf32>
      scf.yield %x : vector<16xf32>
    }
    %vOut = scf.if %isMax -> (vector<16xf32>) {
      scf.yield %resV#1 : vector<16xf32>
    } else {
      %x = arith.divf %resV#1, %denV : vector<16xf32>
      scf.yield %x : vector<16xf32>
    }
    vector.store %kOut, %dstK[%b, %dst, %f] : memref<?x?x?xf32>, vector<16xf32>
    vector.store %vOut, %dstV[%b, %dst, %f] : memref<?x?x?xf32>, vector<16xf32>
  }
  scf.for %f = %vecEnd to %kvD step %c1 {
    %kvh = arith.divui %f, %d : index
    %dd = arith.remui %f, %d : index
    %init = arith.select %isMax, %ninf, %zero : f32
    %res:2 = scf.for %c = %first to %end step %c1 iter_args(%ak = %init, %av = %init) -> (f32, f32) {
      %ci = arith.addi %srcOff, %c : index
      %cm = arith.addi %srcMOff, %c : index
      %ch0 = memref.load %srcK[%b, %ci, %f] : memref<?x?x?xf32>
      %ch1 = memref.load %srcV[%b, %ci, %f] : memref<?x?x?xf32>
      %ch2 = memref.load %srcM[%b, %cm] : memref<?x?xf32>
      %out2:2 = scf.if %isMax -> (f32, f32) {
        %mk = arith.maximumf %ak, %ch0 : f32
        %mv = arith.maximumf %av, %ch1 : f32
        scf.yield %mk, %mv : f32, f32
      } else {
        // Weight of the child: gated_mean uses its gate-weighted sum
        // (g_i for raw children, m_c + eps for compressed ones, which
        // undoes their own division); conv uses m_c A[t] (spec 3).
        %meps = arith.addf %ch2, %eps : f32
        %wMean = arith.select %fromRaw, %ch2, %meps : f32
        %wk:2 = scf.if %isConv -> (f32, f32) {
          %t = arith.subi %c, %first : index
          %ak2 = memref.load %convK[%lc, %kvh, %t, %dd] : memref<?x?x?x?xf32>
          %av2 = memref.load %convV[%lc, %kvh, %t, %dd] : memref<?x?x?x?xf32>
          %wk2 = arith.mulf %ch2, %ak2 : f32
          %wv2 = arith.mulf %ch2, %av2 : f32
          scf.yield %wk2, %wv2 : f32, f32
        } else {
          scf.yield %wMean, %wMean : f32, f32
        }
        %nk = math.fma %wk#0, %ch0, %ak : f32
        %nv = math.fma %wk#1, %ch1, %av : f32
        scf.yield %nk, %nv : f32, f32
      }
      scf.yield %out2#0, %out2#1 : f32, f32
    }
    %kOut = scf.if %isMax -> (f32) {
      scf.yield %res#0 : f32
    } else {
      %x = arith.divf %res#0, %den : f32
      scf.yield %x : f32
    }
    %vOut = scf.if %isMax -> (f32) {
      scf.yield %res#1 : f32
    } else {
      %x = arith.divf %res#1, %den : f32
      scf.yield %x : f32
    }
    memref.store %kOut, %dstK[%b, %dst, %f] : memref<?x?x?xf32>
    memref.store %vOut, %dstV[%b, %dst, %f] : memref<?x?x?xf32>
  }
  return %mass : f32
}

// Streams the keys [j0, j1) of one source through the online softmax of
// one query (row 0 of q at batch index b, features qoff .. qoff + d; the
// decoding step's query sees every key it is given), 16 keys at a time:
//   s = q K_tile^T * scale + bias        one vector<16>,
//   m' = max(m, max s), l = l e^(m-m') + sum e^(s-m'),
//   acc = acc e^(m-m') + e^(s-m') V_tile.
// The tile's keys are transposed into kt [d, 16]. Lanes past j1 are masked.
// The state is mS[0], lS[0] and acc[0, :].
func.func private @hag_attend_range(
    %q: memref<?x?x?xf32>, %b: index, %qoff: index,
    %keys: memref<?x?x?xf32>, %vals: memref<?x?x?xf32>, %kb: index,
    %j0: index, %j1: index, %koff: index,
    %bias: memref<?x?xf32>, %bb: index, %boff: index,
    %d: index, %scale: f32,
    %mS: memref<?xf32>, %lS: memref<?xf32>, %acc: memref<?x?xf32>,
    %kt: memref<?x16xf32>, %pt: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %ninfV = arith.constant dense<0xFF800000> : vector<16xf32>
  %zv = arith.constant dense<0.0> : vector<16xf32>
  %scaleV = vector.broadcast %scale : f32 to vector<16xf32>
  %lanes = vector.step : vector<16xindex>
  %d16a = arith.divui %d, %c16 : index
  %d16 = arith.muli %d16a, %c16 : index
  scf.for %t0 = %j0 to %j1 step %c16 {
    %rem = arith.subi %j1, %t0 : index
    %nk = arith.minui %rem, %c16 : index
    // kt[x, c] = key t0 + c, feature x (0 past the range).
    scf.for %c = %c0 to %c16 step %c1 {
      %live = arith.cmpi ult, %c, %nk : index
      %jc = arith.addi %t0, %c : index
      scf.if %live {
        scf.for %x = %c0 to %d step %c1 {
          %f = arith.addi %koff, %x : index
          %kv = memref.load %keys[%kb, %jc, %f] : memref<?x?x?xf32>
          memref.store %kv, %kt[%x, %c] : memref<?x16xf32>
        }
      } else {
        scf.for %x = %c0 to %d step %c1 {
          memref.store %zero, %kt[%x, %c] : memref<?x16xf32>
        }
      }
    }
    // The tile's mass biases; -inf for lanes past the range.
    %t0V = vector.broadcast %t0 : index to vector<16xindex>
    %jV = arith.addi %t0V, %lanes : vector<16xindex>
    %j1V = vector.broadcast %j1 : index to vector<16xindex>
    %inRange = arith.cmpi ult, %jV, %j1V : vector<16xindex>
    %bo = arith.addi %boff, %t0 : index
    %biasV = vector.maskedload %bias[%bb, %bo], %inRange, %ninfV
        : memref<?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
    // Scores of the query against the 16 keys.
    %sAcc = scf.for %x = %c0 to %d step %c1 iter_args(%sa = %zv) -> (vector<16xf32>) {
      %f = arith.addi %qoff, %x : index
      %qx = memref.load %q[%b, %c0, %f] : memref<?x?x?xf32>
      %qxV = vector.broadcast %qx : f32 to vector<16xf32>
      %ktx = vector.load %kt[%x, %c0] : memref<?x16xf32>, vector<16xf32>
      %sa2 = vector.fma %qxV, %ktx, %sa : vector<16xf32>
      scf.yield %sa2 : vector<16xf32>
    }
    %sc = arith.mulf %sAcc, %scaleV : vector<16xf32>
    %s = arith.addf %sc, %biasV : vector<16xf32>
    %tileMax = vector.reduction <maximumf>, %s : vector<16xf32> into f32
    %mOld = memref.load %mS[%c0] : memref<?xf32>
    %mNew = arith.maximumf %mOld, %tileMax : f32
    %anyKey = arith.cmpf ogt, %mNew, %ninf : f32
    scf.if %anyKey {
      %dm = arith.subf %mOld, %mNew : f32
      %corr = math.exp %dm : f32
      %mNewV = vector.broadcast %mNew : f32 to vector<16xf32>
      %sm = arith.subf %s, %mNewV : vector<16xf32>
      %p = math.exp %sm : vector<16xf32>
      %pSum = vector.reduction <add>, %p : vector<16xf32> into f32
      %lOld = memref.load %lS[%c0] : memref<?xf32>
      %lScaled = arith.mulf %lOld, %corr : f32
      %lNew = arith.addf %lScaled, %pSum : f32
      memref.store %lNew, %lS[%c0] : memref<?xf32>
      memref.store %mNew, %mS[%c0] : memref<?xf32>
      vector.store %p, %pt[%c0] : memref<16xf32>, vector<16xf32>
      // acc = acc * corr + sum_c p[c] V[t0 + c].
      %corrV = vector.broadcast %corr : f32 to vector<16xf32>
      scf.for %x = %c0 to %d16 step %c16 {
        %a0 = vector.load %acc[%c0, %x] : memref<?x?xf32>, vector<16xf32>
        %a1 = arith.mulf %a0, %corrV : vector<16xf32>
        %f = arith.addi %koff, %x : index
        %a2 = scf.for %c = %c0 to %nk step %c1 iter_args(%aa = %a1) -> (vector<16xf32>) {
          %jc = arith.addi %t0, %c : index
          %pc = memref.load %pt[%c] : memref<16xf32>
          %pcV = vector.broadcast %pc : f32 to vector<16xf32>
          %vv = vector.load %vals[%kb, %jc, %f] : memref<?x?x?xf32>, vector<16xf32>
          %aa2 = vector.fma %pcV, %vv, %aa : vector<16xf32>
          scf.yield %aa2 : vector<16xf32>
        }
        vector.store %a2, %acc[%c0, %x] : memref<?x?xf32>, vector<16xf32>
      }
      scf.for %x = %d16 to %d step %c1 {
        %a0 = memref.load %acc[%c0, %x] : memref<?x?xf32>
        %a1 = arith.mulf %a0, %corr : f32
        %f = arith.addi %koff, %x : index
        %a2 = scf.for %c = %c0 to %nk step %c1 iter_args(%aa = %a1) -> (f32) {
          %jc = arith.addi %t0, %c : index
          %pc = memref.load %pt[%c] : memref<16xf32>
          %vv = memref.load %vals[%kb, %jc, %f] : memref<?x?x?xf32>
          %aa2 = math.fma %pc, %vv, %aa : f32
          scf.yield %aa2 : f32
        }
        memref.store %a2, %acc[%c0, %x] : memref<?x?xf32>
      }
    }
  }
  return
}

// The T' summary tokens over the raw prefix [0, prefix) for the features
// [koff, koff + d): gated means of the floor-rule segments (spec 4), from the
// f64 prefix sums, and their mass biases beta log(m + eps). Token t goes to
// row drow + t, columns dcol .. dcol + d of dstK/dstV (batch index db) and
// its bias to dstB[db, dbcol + t]. The segment bounds are computed once (an
// integer division each). Token by token, features 8 at a time: the d
// features of the end row are contiguous (the prefetcher streams them),
// and the start row is the previous token's end row, still in L1.
func.func private @hag_summary_tokens(
    %pk: memref<?x?x?xf64>, %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>,
    %b: index, %koff: index, %prefix: index, %tp: index, %d: index,
    %beta: f32, %eps: f32, %dstK: memref<?x?x?xf32>, %dstV: memref<?x?x?xf32>,
    %dstB: memref<?x?xf32>, %db: index, %drow: index, %dcol: index,
    %dbcol: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %one64 = arith.constant 1.0 : f64
  %epsF64 = arith.extf %eps : f32 to f64
  %tAlloc = arith.maxui %tp, %c1 : index
  %invDen = memref.alloca(%tAlloc) : memref<?xf64>
  // bounds[t] = floor(t prefix / T'): segment t is rows [bounds[t],
  // bounds[t + 1]) of the sums.
  %tp1 = arith.addi %tp, %c1 : index
  %bounds = memref.alloca(%tp1) : memref<?xindex>
  memref.store %c0, %bounds[%c0] : memref<?xindex>
  scf.for %t = %c0 to %tp step %c1 {
    %s0 = memref.load %bounds[%t] : memref<?xindex>
    %t1 = arith.addi %t, %c1 : index
    %t1P = arith.muli %t1, %prefix : index
    %s1 = arith.divui %t1P, %tp : index
    memref.store %s1, %bounds[%t1] : memref<?xindex>
    %g1 = memref.load %pg[%b, %s1] : memref<?x?xf64>
    %g0 = memref.load %pg[%b, %s0] : memref<?x?xf64>
    %mass = arith.subf %g1, %g0 : f64
    %den = arith.addf %mass, %epsF64 : f64
    %inv = arith.divf %one64, %den : f64
    memref.store %inv, %invDen[%t] : memref<?xf64>
    %massF = arith.truncf %mass : f64 to f32
    %massE = arith.addf %massF, %eps : f32
    %massLog = math.log %massE : f32
    %massBias = arith.mulf %beta, %massLog : f32
    %bcol = arith.addi %dbcol, %t : index
    memref.store %massBias, %dstB[%db, %bcol] : memref<?x?xf32>
  }
  %d8a = arith.divui %d, %c8 : index
  %d8 = arith.muli %d8a, %c8 : index
  %c4 = arith.constant 4 : index
  %dLast = arith.subi %d, %c1 : index
  scf.for %t = %c0 to %tp step %c1 {
    %t1 = arith.addi %t, %c1 : index
    %s0 = memref.load %bounds[%t] : memref<?xindex>
    %s1 = memref.load %bounds[%t1] : memref<?xindex>
    // The end row three tokens ahead, from memory (the sums are written
    // with non-temporal stores and rows are far apart).
    %ta0 = arith.addi %t, %c4 : index
    %ta = arith.minui %ta0, %tp : index
    %sa = memref.load %bounds[%ta] : memref<?xindex>
    scf.for %pf = %c0 to %d step %c8 {
      %pfc = arith.minui %pf, %dLast : index
      %fcol = arith.addi %koff, %pfc : index
      memref.prefetch %pk[%b, %sa, %fcol], read, locality<3>, data : memref<?x?x?xf64>
      memref.prefetch %pv[%b, %sa, %fcol], read, locality<3>, data : memref<?x?x?xf64>
    }
    %inv = memref.load %invDen[%t] : memref<?xf64>
    %invV = vector.broadcast %inv : f64 to vector<8xf64>
    %row = arith.addi %drow, %t : index
    scf.for %x = %c0 to %d8 step %c8 {
      %f = arith.addi %koff, %x : index
      %col = arith.addi %dcol, %x : index
      %k0 = vector.load %pk[%b, %s0, %f] : memref<?x?x?xf64>, vector<8xf64>
      %v0 = vector.load %pv[%b, %s0, %f] : memref<?x?x?xf64>, vector<8xf64>
      %k1 = vector.load %pk[%b, %s1, %f] : memref<?x?x?xf64>, vector<8xf64>
      %v1 = vector.load %pv[%b, %s1, %f] : memref<?x?x?xf64>, vector<8xf64>
      %kd = arith.subf %k1, %k0 : vector<8xf64>
      %vd = arith.subf %v1, %v0 : vector<8xf64>
      %km = arith.mulf %kd, %invV : vector<8xf64>
      %vm = arith.mulf %vd, %invV : vector<8xf64>
      %kf = arith.truncf %km : vector<8xf64> to vector<8xf32>
      %vf = arith.truncf %vm : vector<8xf64> to vector<8xf32>
      vector.store %kf, %dstK[%db, %row, %col] : memref<?x?x?xf32>, vector<8xf32>
      vector.store %vf, %dstV[%db, %row, %col] : memref<?x?x?xf32>, vector<8xf32>
    }
  }
  scf.for %x = %d8 to %d step %c1 {
    %f = arith.addi %koff, %x : index
    %col = arith.addi %dcol, %x : index
    %k0 = memref.load %pk[%b, %c0, %f] : memref<?x?x?xf64>
    %v0 = memref.load %pv[%b, %c0, %f] : memref<?x?x?xf64>
    scf.for %t = %c0 to %tp step %c1 iter_args(%kPrev = %k0, %vPrev = %v0) -> (f64, f64) {
      %t1 = arith.addi %t, %c1 : index
      %s1 = memref.load %bounds[%t1] : memref<?xindex>
      %k1 = memref.load %pk[%b, %s1, %f] : memref<?x?x?xf64>
      %v1 = memref.load %pv[%b, %s1, %f] : memref<?x?x?xf64>
      %inv = memref.load %invDen[%t] : memref<?xf64>
      %kd = arith.subf %k1, %kPrev : f64
      %vd = arith.subf %v1, %vPrev : f64
      %km = arith.mulf %kd, %inv : f64
      %vm = arith.mulf %vd, %inv : f64
      %kf = arith.truncf %km : f64 to f32
      %vf = arith.truncf %vm : f64 to f32
      %row = arith.addi %drow, %t : index
      memref.store %kf, %dstK[%db, %row, %col] : memref<?x?x?xf32>
      memref.store %vf, %dstV[%db, %row, %col] : memref<?x?x?xf32>
      scf.yield %k1, %v1 : f64, f64
    }
  }
  return
}

// select_k (spec 4): the kp largest gates g[b, goff + c] among the raw
// tokens [0, a1) (and [e1, n) when bidirectional), ties to the lower index,
// picked in order (gate descending, index ascending) by repeated scans;
// picked token p (raw index j) goes to row drow + p, columns dcol .. dcol + d
// of dstK/dstV (features koff .. koff + d of k, v row j) and its mass bias
// gB[b, j] to dstB[db, dbcol + p].
func.func private @hag_select_tokens(
    %g: memref<?x?xf32>, %goff: index, %gB: memref<?x?xf32>,
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %b: index, %koff: index,
    %d: index, %a1: index, %e1: index, %n: index, %causal: i1, %kp: index,
    %picked: memref<?xindex>, %dstK: memref<?x?x?xf32>,
    %dstV: memref<?x?x?xf32>, %dstB: memref<?x?xf32>, %db: index,
    %drow: index, %dcol: index, %dbcol: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %ninf = arith.constant 0xFF800000 : f32
  %true = arith.constant true
  %pinf64 = arith.constant 0x7FF0000000000000 : f64
  scf.for %p = %c0 to %kp step %c1 iter_args(%gPrev = %pinf64, %iPrev = %n) -> (f64, index) {
    // Best candidate strictly after (gPrev, iPrev) in the order.
    %best:2 = scf.for %c = %c0 to %n step %c1 iter_args(%bg = %ninf, %bi = %n) -> (f32, index) {
      %inLeft = arith.cmpi ult, %c, %a1 : index
      %inRight0 = arith.cmpi uge, %c, %e1 : index
      %notCausal = arith.xori %causal, %true : i1
      %inRight = arith.andi %inRight0, %notCausal : i1
      %isCand = arith.ori %inLeft, %inRight : i1
      %gcol = arith.addi %goff, %c : index
      %gc = memref.load %g[%b, %gcol] : memref<?x?xf32>
      %gcd = arith.extf %gc : f32 to f64
      %lower = arith.cmpf olt, %gcd, %gPrev : f64
      %eqG = arith.cmpf oeq, %gcd, %gPrev : f64
      %later = arith.cmpi ugt, %c, %iPrev : index
      %tieLater = arith.andi %eqG, %later : i1
      %after = arith.ori %lower, %tieLater : i1
      %better = arith.cmpf ogt, %gc, %bg : f32
      %noneYet = arith.cmpi eq, %bi, %n : index
      %better2 = arith.ori %better, %noneYet : i1
      %ok0 = arith.andi %isCand, %after : i1
      %ok = arith.andi %ok0, %better2 : i1
      %ng = arith.select %ok, %gc, %bg : f32
      %ni = arith.select %ok, %c, %bi : index
      scf.yield %ng, %ni : f32, index
    }
    memref.store %best#1, %picked[%p] : memref<?xindex>
    %bgd = arith.extf %best#0 : f32 to f64
    scf.yield %bgd, %best#1 : f64, index
  }
  scf.for %p = %c0 to %kp step %c1 {
    %j = memref.load %picked[%p] : memref<?xindex>
    %gj = memref.load %gB[%b, %j] : memref<?x?xf32>
    %bcol = arith.addi %dbcol, %p : index
    memref.store %gj, %dstB[%db, %bcol] : memref<?x?xf32>
    %row = arith.addi %drow, %p : index
    scf.for %x = %c0 to %d step %c1 {
      %f = arith.addi %koff, %x : index
      %kx = memref.load %k[%b, %j, %f] : memref<?x?x?xf32>
      %vx = memref.load %v[%b, %j, %f] : memref<?x?x?xf32>
      %col = arith.addi %dcol, %x : index
      memref.store %kx, %dstK[%db, %row, %col] : memref<?x?x?xf32>
      memref.store %vx, %dstV[%db, %row, %col] : memref<?x?x?xf32>
    }
  }
  return
}

// Qt[x, r] = q[b, q0 + r, qoff + x] for r < nq, 0 for nq <= r < nqPad:
// the block's queries transposed (they are the lanes of the score tiles).
// 16 x 16 tiles: 16 row loads (masked off past the block), a transposition
// in registers (four rounds of 16 two-source shuffles), 16 stores; features
// past the last multiple of 16 are gathered.
func.func private @hag_pack_queries(
    %q: memref<?x?x?xf32>, %b: index, %q0: index, %nq: index, %qoff: index,
    %d: index, %Qt: memref<?x?xf32>, %nqPad: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c16 = arith.constant 16 : index
  %o0 = arith.constant 0 : index
  %o1 = arith.constant 1 : index
  %o2 = arith.constant 2 : index
  %o3 = arith.constant 3 : index
  %o4 = arith.constant 4 : index
  %o5 = arith.constant 5 : index
  %o6 = arith.constant 6 : index
  %o7 = arith.constant 7 : index
  %o8 = arith.constant 8 : index
  %o9 = arith.constant 9 : index
  %o10 = arith.constant 10 : index
  %o11 = arith.constant 11 : index
  %o12 = arith.constant 12 : index
  %o13 = arith.constant 13 : index
  %o14 = arith.constant 14 : index
  %o15 = arith.constant 15 : index
  %zv = arith.constant dense<0.0> : vector<16xf32>
  %lanes = arith.constant dense<[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]> : vector<16xi32>
  %n = memref.dim %q, %c1 : memref<?x?x?xf32>
  %S = memref.dim %q, %c2 : memref<?x?x?xf32>
  %nLast = arith.subi %n, %c1 : index
  %q1 = arith.addi %q0, %nq : index
  %d16a = arith.divui %d, %c16 : index
  %d16 = arith.muli %d16a, %c16 : index
  scf.for %rc = %c0 to %nqPad step %c16 {
    %qrow0 = arith.addi %q0, %rc : index
    scf.for %x0 = %c0 to %d16 step %c16 {
      %col = arith.addi %qoff, %x0 : index
      %qi0 = arith.addi %qrow0, %o0 : index
      %ok0 = arith.cmpi ult, %qi0, %q1 : index
      %qc0 = arith.minui %qi0, %nLast : index
      %m0 = vector.broadcast %ok0 : i1 to vector<16xi1>
      %r0 = vector.maskedload %q[%b, %qc0, %col], %m0, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi1 = arith.addi %qrow0, %o1 : index
      %ok1 = arith.cmpi ult, %qi1, %q1 : index
      %qc1 = arith.minui %qi1, %nLast : index
      %m1 = vector.broadcast %ok1 : i1 to vector<16xi1>
      %r1 = vector.maskedload %q[%b, %qc1, %col], %m1, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi2 = arith.addi %qrow0, %o2 : index
      %ok2 = arith.cmpi ult, %qi2, %q1 : index
      %qc2 = arith.minui %qi2, %nLast : index
      %m2 = vector.broadcast %ok2 : i1 to vector<16xi1>
      %r2 = vector.maskedload %q[%b, %qc2, %col], %m2, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi3 = arith.addi %qrow0, %o3 : index
      %ok3 = arith.cmpi ult, %qi3, %q1 : index
      %qc3 = arith.minui %qi3, %nLast : index
      %m3 = vector.broadcast %ok3 : i1 to vector<16xi1>
      %r3 = vector.maskedload %q[%b, %qc3, %col], %m3, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi4 = arith.addi %qrow0, %o4 : index
      %ok4 = arith.cmpi ult, %qi4, %q1 : index
      %qc4 = arith.minui %qi4, %nLast : index
      %m4 = vector.broadcast %ok4 : i1 to vector<16xi1>
      %r4 = vector.maskedload %q[%b, %qc4, %col], %m4, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi5 = arith.addi %qrow0, %o5 : index
      %ok5 = arith.cmpi ult, %qi5, %q1 : index
      %qc5 = arith.minui %qi5, %nLast : index
      %m5 = vector.broadcast %ok5 : i1 to vector<16xi1>
      %r5 = vector.maskedload %q[%b, %qc5, %col], %m5, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi6 = arith.addi %qrow0, %o6 : index
      %ok6 = arith.cmpi ult, %qi6, %q1 : index
      %qc6 = arith.minui %qi6, %nLast : index
      %m6 = vector.broadcast %ok6 : i1 to vector<16xi1>
      %r6 = vector.maskedload %q[%b, %qc6, %col], %m6, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi7 = arith.addi %qrow0, %o7 : index
      %ok7 = arith.cmpi ult, %qi7, %q1 : index
      %qc7 = arith.minui %qi7, %nLast : index
      %m7 = vector.broadcast %ok7 : i1 to vector<16xi1>
      %r7 = vector.maskedload %q[%b, %qc7, %col], %m7, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi8 = arith.addi %qrow0, %o8 : index
      %ok8 = arith.cmpi ult, %qi8, %q1 : index
      %qc8 = arith.minui %qi8, %nLast : index
      %m8 = vector.broadcast %ok8 : i1 to vector<16xi1>
      %r8 = vector.maskedload %q[%b, %qc8, %col], %m8, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi9 = arith.addi %qrow0, %o9 : index
      %ok9 = arith.cmpi ult, %qi9, %q1 : index
      %qc9 = arith.minui %qi9, %nLast : index
      %m9 = vector.broadcast %ok9 : i1 to vector<16xi1>
      %r9 = vector.maskedload %q[%b, %qc9, %col], %m9, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi10 = arith.addi %qrow0, %o10 : index
      %ok10 = arith.cmpi ult, %qi10, %q1 : index
      %qc10 = arith.minui %qi10, %nLast : index
      %m10 = vector.broadcast %ok10 : i1 to vector<16xi1>
      %r10 = vector.maskedload %q[%b, %qc10, %col], %m10, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi11 = arith.addi %qrow0, %o11 : index
      %ok11 = arith.cmpi ult, %qi11, %q1 : index
      %qc11 = arith.minui %qi11, %nLast : index
      %m11 = vector.broadcast %ok11 : i1 to vector<16xi1>
      %r11 = vector.maskedload %q[%b, %qc11, %col], %m11, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi12 = arith.addi %qrow0, %o12 : index
      %ok12 = arith.cmpi ult, %qi12, %q1 : index
      %qc12 = arith.minui %qi12, %nLast : index
      %m12 = vector.broadcast %ok12 : i1 to vector<16xi1>
      %r12 = vector.maskedload %q[%b, %qc12, %col], %m12, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi13 = arith.addi %qrow0, %o13 : index
      %ok13 = arith.cmpi ult, %qi13, %q1 : index
      %qc13 = arith.minui %qi13, %nLast : index
      %m13 = vector.broadcast %ok13 : i1 to vector<16xi1>
      %r13 = vector.maskedload %q[%b, %qc13, %col], %m13, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi14 = arith.addi %qrow0, %o14 : index
      %ok14 = arith.cmpi ult, %qi14, %q1 : index
      %qc14 = arith.minui %qi14, %nLast : index
      %m14 = vector.broadcast %ok14 : i1 to vector<16xi1>
      %r14 = vector.maskedload %q[%b, %qc14, %col], %m14, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %qi15 = arith.addi %qrow0, %o15 : index
      %ok15 = arith.cmpi ult, %qi15, %q1 : index
      %qc15 = arith.minui %qi15, %nLast : index
      %m15 = vector.broadcast %ok15 : i1 to vector<16xi1>
      %r15 = vector.maskedload %q[%b, %qc15, %col], %m15, %zv : memref<?x?x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
      %t8_0 = vector.shuffle %r0, %r8 [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
      %t8_8 = vector.shuffle %r0, %r8 [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t8_1 = vector.shuffle %r1, %r9 [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
      %t8_9 = vector.shuffle %r1, %r9 [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t8_2 = vector.shuffle %r2, %r10 [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
      %t8_10 = vector.shuffle %r2, %r10 [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t8_3 = vector.shuffle %r3, %r11 [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
      %t8_11 = vector.shuffle %r3, %r11 [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t8_4 = vector.shuffle %r4, %r12 [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
      %t8_12 = vector.shuffle %r4, %r12 [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t8_5 = vector.shuffle %r5, %r13 [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
      %t8_13 = vector.shuffle %r5, %r13 [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t8_6 = vector.shuffle %r6, %r14 [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
      %t8_14 = vector.shuffle %r6, %r14 [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t8_7 = vector.shuffle %r7, %r15 [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
      %t8_15 = vector.shuffle %r7, %r15 [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t4_0 = vector.shuffle %t8_0, %t8_4 [0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27] : vector<16xf32>, vector<16xf32>
      %t4_4 = vector.shuffle %t8_0, %t8_4 [4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t4_1 = vector.shuffle %t8_1, %t8_5 [0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27] : vector<16xf32>, vector<16xf32>
      %t4_5 = vector.shuffle %t8_1, %t8_5 [4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t4_2 = vector.shuffle %t8_2, %t8_6 [0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27] : vector<16xf32>, vector<16xf32>
      %t4_6 = vector.shuffle %t8_2, %t8_6 [4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t4_3 = vector.shuffle %t8_3, %t8_7 [0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27] : vector<16xf32>, vector<16xf32>
      %t4_7 = vector.shuffle %t8_3, %t8_7 [4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t4_8 = vector.shuffle %t8_8, %t8_12 [0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27] : vector<16xf32>, vector<16xf32>
      %t4_12 = vector.shuffle %t8_8, %t8_12 [4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t4_9 = vector.shuffle %t8_9, %t8_13 [0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27] : vector<16xf32>, vector<16xf32>
      %t4_13 = vector.shuffle %t8_9, %t8_13 [4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t4_10 = vector.shuffle %t8_10, %t8_14 [0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27] : vector<16xf32>, vector<16xf32>
      %t4_14 = vector.shuffle %t8_10, %t8_14 [4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t4_11 = vector.shuffle %t8_11, %t8_15 [0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27] : vector<16xf32>, vector<16xf32>
      %t4_15 = vector.shuffle %t8_11, %t8_15 [4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
      %t2_0 = vector.shuffle %t4_0, %t4_2 [0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29] : vector<16xf32>, vector<16xf32>
      %t2_2 = vector.shuffle %t4_0, %t4_2 [2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31] : vector<16xf32>, vector<16xf32>
      %t2_1 = vector.shuffle %t4_1, %t4_3 [0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29] : vector<16xf32>, vector<16xf32>
      %t2_3 = vector.shuffle %t4_1, %t4_3 [2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31] : vector<16xf32>, vector<16xf32>
      %t2_4 = vector.shuffle %t4_4, %t4_6 [0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29] : vector<16xf32>, vector<16xf32>
      %t2_6 = vector.shuffle %t4_4, %t4_6 [2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31] : vector<16xf32>, vector<16xf32>
      %t2_5 = vector.shuffle %t4_5, %t4_7 [0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29] : vector<16xf32>, vector<16xf32>
      %t2_7 = vector.shuffle %t4_5, %t4_7 [2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31] : vector<16xf32>, vector<16xf32>
      %t2_8 = vector.shuffle %t4_8, %t4_10 [0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29] : vector<16xf32>, vector<16xf32>
      %t2_10 = vector.shuffle %t4_8, %t4_10 [2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31] : vector<16xf32>, vector<16xf32>
      %t2_9 = vector.shuffle %t4_9, %t4_11 [0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29] : vector<16xf32>, vector<16xf32>
      %t2_11 = vector.shuffle %t4_9, %t4_11 [2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31] : vector<16xf32>, vector<16xf32>
      %t2_12 = vector.shuffle %t4_12, %t4_14 [0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29] : vector<16xf32>, vector<16xf32>
      %t2_14 = vector.shuffle %t4_12, %t4_14 [2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31] : vector<16xf32>, vector<16xf32>
      %t2_13 = vector.shuffle %t4_13, %t4_15 [0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29] : vector<16xf32>, vector<16xf32>
      %t2_15 = vector.shuffle %t4_13, %t4_15 [2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31] : vector<16xf32>, vector<16xf32>
      %t1_0 = vector.shuffle %t2_0, %t2_1 [0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30] : vector<16xf32>, vector<16xf32>
      %t1_1 = vector.shuffle %t2_0, %t2_1 [1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31] : vector<16xf32>, vector<16xf32>
      %t1_2 = vector.shuffle %t2_2, %t2_3 [0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30] : vector<16xf32>, vector<16xf32>
      %t1_3 = vector.shuffle %t2_2, %t2_3 [1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31] : vector<16xf32>, vector<16xf32>
      %t1_4 = vector.shuffle %t2_4, %t2_5 [0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30] : vector<16xf32>, vector<16xf32>
      %t1_5 = vector.shuffle %t2_4, %t2_5 [1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31] : vector<16xf32>, vector<16xf32>
      %t1_6 = vector.shuffle %t2_6, %t2_7 [0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30] : vector<16xf32>, vector<16xf32>
      %t1_7 = vector.shuffle %t2_6, %t2_7 [1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31] : vector<16xf32>, vector<16xf32>
      %t1_8 = vector.shuffle %t2_8, %t2_9 [0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30] : vector<16xf32>, vector<16xf32>
      %t1_9 = vector.shuffle %t2_8, %t2_9 [1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31] : vector<16xf32>, vector<16xf32>
      %t1_10 = vector.shuffle %t2_10, %t2_11 [0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30] : vector<16xf32>, vector<16xf32>
      %t1_11 = vector.shuffle %t2_10, %t2_11 [1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31] : vector<16xf32>, vector<16xf32>
      %t1_12 = vector.shuffle %t2_12, %t2_13 [0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30] : vector<16xf32>, vector<16xf32>
      %t1_13 = vector.shuffle %t2_12, %t2_13 [1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31] : vector<16xf32>, vector<16xf32>
      %t1_14 = vector.shuffle %t2_14, %t2_15 [0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30] : vector<16xf32>, vector<16xf32>
      %t1_15 = vector.shuffle %t2_14, %t2_15 [1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31] : vector<16xf32>, vector<16xf32>
      %xs0 = arith.addi %x0, %o0 : index
      vector.store %t1_0, %Qt[%xs0, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs1 = arith.addi %x0, %o1 : index
      vector.store %t1_1, %Qt[%xs1, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs2 = arith.addi %x0, %o2 : index
      vector.store %t1_2, %Qt[%xs2, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs3 = arith.addi %x0, %o3 : index
      vector.store %t1_3, %Qt[%xs3, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs4 = arith.addi %x0, %o4 : index
      vector.store %t1_4, %Qt[%xs4, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs5 = arith.addi %x0, %o5 : index
      vector.store %t1_5, %Qt[%xs5, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs6 = arith.addi %x0, %o6 : index
      vector.store %t1_6, %Qt[%xs6, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs7 = arith.addi %x0, %o7 : index
      vector.store %t1_7, %Qt[%xs7, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs8 = arith.addi %x0, %o8 : index
      vector.store %t1_8, %Qt[%xs8, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs9 = arith.addi %x0, %o9 : index
      vector.store %t1_9, %Qt[%xs9, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs10 = arith.addi %x0, %o10 : index
      vector.store %t1_10, %Qt[%xs10, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs11 = arith.addi %x0, %o11 : index
      vector.store %t1_11, %Qt[%xs11, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs12 = arith.addi %x0, %o12 : index
      vector.store %t1_12, %Qt[%xs12, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs13 = arith.addi %x0, %o13 : index
      vector.store %t1_13, %Qt[%xs13, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs14 = arith.addi %x0, %o14 : index
      vector.store %t1_14, %Qt[%xs14, %rc] : memref<?x?xf32>, vector<16xf32>
      %xs15 = arith.addi %x0, %o15 : index
      vector.store %t1_15, %Qt[%xs15, %rc] : memref<?x?xf32>, vector<16xf32>
    }
  }
  %hasRest = arith.cmpi ult, %d16, %d : index
  scf.if %hasRest {
    %qflat = memref.collapse_shape %q [[0, 1, 2]] : memref<?x?x?xf32> into memref<?xf32>
    %S32 = arith.index_cast %S : index to i32
    %Sv = vector.broadcast %S32 : i32 to vector<16xi32>
    %offs = arith.muli %lanes, %Sv : vector<16xi32>
    %bn = arith.muli %b, %n : index
    scf.for %rc = %c0 to %nqPad step %c16 {
      %left = arith.subi %nq, %rc : index
      %mask = vector.create_mask %left : vector<16xi1>
      %row = arith.addi %bn, %q0 : index
      %row2 = arith.addi %row, %rc : index
      %rowOff = arith.muli %row2, %S : index
      %base0 = arith.addi %rowOff, %qoff : index
      scf.for %x = %d16 to %d step %c1 {
        %base = arith.addi %base0, %x : index
        %gv = vector.gather %qflat[%base] [%offs], %mask, %zv
            : memref<?xf32>, vector<16xi32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
        vector.store %gv, %Qt[%x, %rc] : memref<?x?xf32>, vector<16xf32>
      }
    }
  }
  return
}

// Scores of keys [j0, j1) of one source (rows of `keys` at batch index kb,
// features koff .. koff + d; mass biases bias[bb, boff + j]) against the
// block's queries: St[row0 + j - j0, r] = (k_j . q_r) * scale + bias_j.
// Register tiles of 4 keys x 64 queries (16 accumulators: per feature 4
// vector loads of Qt, 4 broadcasts of key elements, 16 FMAs), then 4 x 16,
// then single keys.
func.func private @hag_range_scores(
    %keys: memref<?x?x?xf32>, %kb: index, %j0: index, %j1: index,
    %koff: index, %bias: memref<?x?xf32>, %bb: index, %boff: index,
    %Qt: memref<?x?xf32>, %nqPad: index, %d: index, %scale: f32,
    %St: memref<?x?xf32>, %row0: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  %c64 = arith.constant 64 : index
  %o0 = arith.constant 0 : index
  %o1 = arith.constant 1 : index
  %o2 = arith.constant 2 : index
  %o3 = arith.constant 3 : index
  %o16 = arith.constant 16 : index
  %o32 = arith.constant 32 : index
  %o48 = arith.constant 48 : index
  %zv = arith.constant dense<0.0> : vector<16xf32>
  %scaleV = vector.broadcast %scale : f32 to vector<16xf32>
  %len = arith.subi %j1, %j0 : index
  %len4a = arith.divui %len, %c4 : index
  %len4b = arith.muli %len4a, %c4 : index
  %j4 = arith.addi %j0, %len4b : index
  %r64a = arith.divui %nqPad, %c64 : index
  %r64 = arith.muli %r64a, %c64 : index
  %c8 = arith.constant 8 : index
  %jLast = arith.subi %j1, %c1 : index
  %dLast = arith.subi %d, %c1 : index
  scf.for %jb = %j0 to %j4 step %c4 {
    // The key rows two tiles ahead: every tile's rows are new to the
    // caches (their d floats are too short a run for the hardware
    // prefetcher), so their misses would stall the FMAs.
    %jp = arith.addi %jb, %c8 : index
    scf.for %pr = %c0 to %c4 step %c1 {
      %jpr0 = arith.addi %jp, %pr : index
      %jpr = arith.minui %jpr0, %jLast : index
      scf.for %pf = %c0 to %d step %c16 {
        %pfc = arith.minui %pf, %dLast : index
        %fcol = arith.addi %koff, %pfc : index
        memref.prefetch %keys[%kb, %jpr, %fcol], read, locality<3>, data : memref<?x?x?xf32>
      }
    }
    %jk0 = arith.addi %jb, %o0 : index
    %jk1 = arith.addi %jb, %o1 : index
    %jk2 = arith.addi %jb, %o2 : index
    %jk3 = arith.addi %jb, %o3 : index
    scf.for %r0 = %c0 to %r64 step %c64 {
      %acc:16 = scf.for %x = %c0 to %d step %c1 iter_args(%a0_0i = %zv, %a0_1i = %zv, %a0_2i = %zv, %a0_3i = %zv, %a1_0i = %zv, %a1_1i = %zv, %a1_2i = %zv, %a1_3i = %zv, %a2_0i = %zv, %a2_1i = %zv, %a2_2i = %zv, %a2_3i = %zv, %a3_0i = %zv, %a3_1i = %zv, %a3_2i = %zv, %a3_3i = %zv) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
        %rc0 = arith.addi %r0, %o0 : index
        %qt0 = vector.load %Qt[%x, %rc0] : memref<?x?xf32>, vector<16xf32>
        %rc1 = arith.addi %r0, %o16 : index
        %qt1 = vector.load %Qt[%x, %rc1] : memref<?x?xf32>, vector<16xf32>
        %rc2 = arith.addi %r0, %o32 : index
        %qt2 = vector.load %Qt[%x, %rc2] : memref<?x?xf32>, vector<16xf32>
        %rc3 = arith.addi %r0, %o48 : index
        %qt3 = vector.load %Qt[%x, %rc3] : memref<?x?xf32>, vector<16xf32>
        %f = arith.addi %koff, %x : index
        %kx0 = memref.load %keys[%kb, %jk0, %f] : memref<?x?x?xf32>
        %kv0 = vector.broadcast %kx0 : f32 to vector<16xf32>
        %n0_0 = vector.fma %kv0, %qt0, %a0_0i : vector<16xf32>
        %n0_1 = vector.fma %kv0, %qt1, %a0_1i : vector<16xf32>
        %n0_2 = vector.fma %kv0, %qt2, %a0_2i : vector<16xf32>
        %n0_3 = vector.fma %kv0, %qt3, %a0_3i : vector<16xf32>
        %kx1 = memref.load %keys[%kb, %jk1, %f] : memref<?x?x?xf32>
        %kv1 = vector.broadcast %kx1 : f32 to vector<16xf32>
        %n1_0 = vector.fma %kv1, %qt0, %a1_0i : vector<16xf32>
        %n1_1 = vector.fma %kv1, %qt1, %a1_1i : vector<16xf32>
        %n1_2 = vector.fma %kv1, %qt2, %a1_2i : vector<16xf32>
        %n1_3 = vector.fma %kv1, %qt3, %a1_3i : vector<16xf32>
        %kx2 = memref.load %keys[%kb, %jk2, %f] : memref<?x?x?xf32>
        %kv2 = vector.broadcast %kx2 : f32 to vector<16xf32>
        %n2_0 = vector.fma %kv2, %qt0, %a2_0i : vector<16xf32>
        %n2_1 = vector.fma %kv2, %qt1, %a2_1i : vector<16xf32>
        %n2_2 = vector.fma %kv2, %qt2, %a2_2i : vector<16xf32>
        %n2_3 = vector.fma %kv2, %qt3, %a2_3i : vector<16xf32>
        %kx3 = memref.load %keys[%kb, %jk3, %f] : memref<?x?x?xf32>
        %kv3 = vector.broadcast %kx3 : f32 to vector<16xf32>
        %n3_0 = vector.fma %kv3, %qt0, %a3_0i : vector<16xf32>
        %n3_1 = vector.fma %kv3, %qt1, %a3_1i : vector<16xf32>
        %n3_2 = vector.fma %kv3, %qt2, %a3_2i : vector<16xf32>
        %n3_3 = vector.fma %kv3, %qt3, %a3_3i : vector<16xf32>
        scf.yield %n0_0, %n0_1, %n0_2, %n0_3, %n1_0, %n1_1, %n1_2, %n1_3, %n2_0, %n2_1, %n2_2, %n2_3, %n3_0, %n3_1, %n3_2, %n3_3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
      }
      %bj0 = arith.addi %boff, %jk0 : index
      %bs0 = memref.load %bias[%bb, %bj0] : memref<?x?xf32>
      %bv0 = vector.broadcast %bs0 : f32 to vector<16xf32>
      %sr0a = arith.subi %jk0, %j0 : index
      %sr0 = arith.addi %row0, %sr0a : index
      %sc0_0 = arith.addi %r0, %o0 : index
      %m0_0 = vector.fma %acc#0, %scaleV, %bv0 : vector<16xf32>
      vector.store %m0_0, %St[%sr0, %sc0_0] : memref<?x?xf32>, vector<16xf32>
      %sc0_1 = arith.addi %r0, %o16 : index
      %m0_1 = vector.fma %acc#1, %scaleV, %bv0 : vector<16xf32>
      vector.store %m0_1, %St[%sr0, %sc0_1] : memref<?x?xf32>, vector<16xf32>
      %sc0_2 = arith.addi %r0, %o32 : index
      %m0_2 = vector.fma %acc#2, %scaleV, %bv0 : vector<16xf32>
      vector.store %m0_2, %St[%sr0, %sc0_2] : memref<?x?xf32>, vector<16xf32>
      %sc0_3 = arith.addi %r0, %o48 : index
      %m0_3 = vector.fma %acc#3, %scaleV, %bv0 : vector<16xf32>
      vector.store %m0_3, %St[%sr0, %sc0_3] : memref<?x?xf32>, vector<16xf32>
      %bj1 = arith.addi %boff, %jk1 : index
      %bs1 = memref.load %bias[%bb, %bj1] : memref<?x?xf32>
      %bv1 = vector.broadcast %bs1 : f32 to vector<16xf32>
      %sr1a = arith.subi %jk1, %j0 : index
      %sr1 = arith.addi %row0, %sr1a : index
      %sc1_0 = arith.addi %r0, %o0 : index
      %m1_0 = vector.fma %acc#4, %scaleV, %bv1 : vector<16xf32>
      vector.store %m1_0, %St[%sr1, %sc1_0] : memref<?x?xf32>, vector<16xf32>
      %sc1_1 = arith.addi %r0, %o16 : index
      %m1_1 = vector.fma %acc#5, %scaleV, %bv1 : vector<16xf32>
      vector.store %m1_1, %St[%sr1, %sc1_1] : memref<?x?xf32>, vector<16xf32>
      %sc1_2 = arith.addi %r0, %o32 : index
      %m1_2 = vector.fma %acc#6, %scaleV, %bv1 : vector<16xf32>
      vector.store %m1_2, %St[%sr1, %sc1_2] : memref<?x?xf32>, vector<16xf32>
      %sc1_3 = arith.addi %r0, %o48 : index
      %m1_3 = vector.fma %acc#7, %scaleV, %bv1 : vector<16xf32>
      vector.store %m1_3, %St[%sr1, %sc1_3] : memref<?x?xf32>, vector<16xf32>
      %bj2 = arith.addi %boff, %jk2 : index
      %bs2 = memref.load %bias[%bb, %bj2] : memref<?x?xf32>
      %bv2 = vector.broadcast %bs2 : f32 to vector<16xf32>
      %sr2a = arith.subi %jk2, %j0 : index
      %sr2 = arith.addi %row0, %sr2a : index
      %sc2_0 = arith.addi %r0, %o0 : index
      %m2_0 = vector.fma %acc#8, %scaleV, %bv2 : vector<16xf32>
      vector.store %m2_0, %St[%sr2, %sc2_0] : memref<?x?xf32>, vector<16xf32>
      %sc2_1 = arith.addi %r0, %o16 : index
      %m2_1 = vector.fma %acc#9, %scaleV, %bv2 : vector<16xf32>
      vector.store %m2_1, %St[%sr2, %sc2_1] : memref<?x?xf32>, vector<16xf32>
      %sc2_2 = arith.addi %r0, %o32 : index
      %m2_2 = vector.fma %acc#10, %scaleV, %bv2 : vector<16xf32>
      vector.store %m2_2, %St[%sr2, %sc2_2] : memref<?x?xf32>, vector<16xf32>
      %sc2_3 = arith.addi %r0, %o48 : index
      %m2_3 = vector.fma %acc#11, %scaleV, %bv2 : vector<16xf32>
      vector.store %m2_3, %St[%sr2, %sc2_3] : memref<?x?xf32>, vector<16xf32>
      %bj3 = arith.addi %boff, %jk3 : index
      %bs3 = memref.load %bias[%bb, %bj3] : memref<?x?xf32>
      %bv3 = vector.broadcast %bs3 : f32 to vector<16xf32>
      %sr3a = arith.subi %jk3, %j0 : index
      %sr3 = arith.addi %row0, %sr3a : index
      %sc3_0 = arith.addi %r0, %o0 : index
      %m3_0 = vector.fma %acc#12, %scaleV, %bv3 : vector<16xf32>
      vector.store %m3_0, %St[%sr3, %sc3_0] : memref<?x?xf32>, vector<16xf32>
      %sc3_1 = arith.addi %r0, %o16 : index
      %m3_1 = vector.fma %acc#13, %scaleV, %bv3 : vector<16xf32>
      vector.store %m3_1, %St[%sr3, %sc3_1] : memref<?x?xf32>, vector<16xf32>
      %sc3_2 = arith.addi %r0, %o32 : index
      %m3_2 = vector.fma %acc#14, %scaleV, %bv3 : vector<16xf32>
      vector.store %m3_2, %St[%sr3, %sc3_2] : memref<?x?xf32>, vector<16xf32>
      %sc3_3 = arith.addi %r0, %o48 : index
      %m3_3 = vector.fma %acc#15, %scaleV, %bv3 : vector<16xf32>
      vector.store %m3_3, %St[%sr3, %sc3_3] : memref<?x?xf32>, vector<16xf32>
    }
    scf.for %r0 = %r64 to %nqPad step %c16 {
      %acc:4 = scf.for %x = %c0 to %d step %c1 iter_args(%a0_0i = %zv, %a1_0i = %zv, %a2_0i = %zv, %a3_0i = %zv) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
        %rc0 = arith.addi %r0, %o0 : index
        %qt0 = vector.load %Qt[%x, %rc0] : memref<?x?xf32>, vector<16xf32>
        %f = arith.addi %koff, %x : index
        %kx0 = memref.load %keys[%kb, %jk0, %f] : memref<?x?x?xf32>
        %kv0 = vector.broadcast %kx0 : f32 to vector<16xf32>
        %n0_0 = vector.fma %kv0, %qt0, %a0_0i : vector<16xf32>
        %kx1 = memref.load %keys[%kb, %jk1, %f] : memref<?x?x?xf32>
        %kv1 = vector.broadcast %kx1 : f32 to vector<16xf32>
        %n1_0 = vector.fma %kv1, %qt0, %a1_0i : vector<16xf32>
        %kx2 = memref.load %keys[%kb, %jk2, %f] : memref<?x?x?xf32>
        %kv2 = vector.broadcast %kx2 : f32 to vector<16xf32>
        %n2_0 = vector.fma %kv2, %qt0, %a2_0i : vector<16xf32>
        %kx3 = memref.load %keys[%kb, %jk3, %f] : memref<?x?x?xf32>
        %kv3 = vector.broadcast %kx3 : f32 to vector<16xf32>
        %n3_0 = vector.fma %kv3, %qt0, %a3_0i : vector<16xf32>
        scf.yield %n0_0, %n1_0, %n2_0, %n3_0 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
      }
      %bj0 = arith.addi %boff, %jk0 : index
      %bs0 = memref.load %bias[%bb, %bj0] : memref<?x?xf32>
      %bv0 = vector.broadcast %bs0 : f32 to vector<16xf32>
      %sr0a = arith.subi %jk0, %j0 : index
      %sr0 = arith.addi %row0, %sr0a : index
      %sc0_0 = arith.addi %r0, %o0 : index
      %m0_0 = vector.fma %acc#0, %scaleV, %bv0 : vector<16xf32>
      vector.store %m0_0, %St[%sr0, %sc0_0] : memref<?x?xf32>, vector<16xf32>
      %bj1 = arith.addi %boff, %jk1 : index
      %bs1 = memref.load %bias[%bb, %bj1] : memref<?x?xf32>
      %bv1 = vector.broadcast %bs1 : f32 to vector<16xf32>
      %sr1a = arith.subi %jk1, %j0 : index
      %sr1 = arith.addi %row0, %sr1a : index
      %sc1_0 = arith.addi %r0, %o0 : index
      %m1_0 = vector.fma %acc#1, %scaleV, %bv1 : vector<16xf32>
      vector.store %m1_0, %St[%sr1, %sc1_0] : memref<?x?xf32>, vector<16xf32>
      %bj2 = arith.addi %boff, %jk2 : index
      %bs2 = memref.load %bias[%bb, %bj2] : memref<?x?xf32>
      %bv2 = vector.broadcast %bs2 : f32 to vector<16xf32>
      %sr2a = arith.subi %jk2, %j0 : index
      %sr2 = arith.addi %row0, %sr2a : index
      %sc2_0 = arith.addi %r0, %o0 : index
      %m2_0 = vector.fma %acc#2, %scaleV, %bv2 : vector<16xf32>
      vector.store %m2_0, %St[%sr2, %sc2_0] : memref<?x?xf32>, vector<16xf32>
      %bj3 = arith.addi %boff, %jk3 : index
      %bs3 = memref.load %bias[%bb, %bj3] : memref<?x?xf32>
      %bv3 = vector.broadcast %bs3 : f32 to vector<16xf32>
      %sr3a = arith.subi %jk3, %j0 : index
      %sr3 = arith.addi %row0, %sr3a : index
      %sc3_0 = arith.addi %r0, %o0 : index
      %m3_0 = vector.fma %acc#3, %scaleV, %bv3 : vector<16xf32>
      vector.store %m3_0, %St[%sr3, %sc3_0] : memref<?x?xf32>, vector<16xf32>
    }
  }
  scf.for %js = %j4 to %j1 step %c1 {
    %jk0 = arith.addi %js, %o0 : index
    scf.for %r0 = %c0 to %nqPad step %c16 {
      %acc:1 = scf.for %x = %c0 to %d step %c1 iter_args(%a0_0i = %zv) -> (vector<16xf32>) {
        %rc0 = arith.addi %r0, %o0 : index
        %qt0 = vector.load %Qt[%x, %rc0] : memref<?x?xf32>, vector<16xf32>
        %f = arith.addi %koff, %x : index
        %kx0 = memref.load %keys[%kb, %jk0, %f] : memref<?x?x?xf32>
        %kv0 = vector.broadcast %kx0 : f32 to vector<16xf32>
        %n0_0 = vector.fma %kv0, %qt0, %a0_0i : vector<16xf32>
        scf.yield %n0_0 : vector<16xf32>
      }
      %bj0 = arith.addi %boff, %jk0 : index
      %bs0 = memref.load %bias[%bb, %bj0] : memref<?x?xf32>
      %bv0 = vector.broadcast %bs0 : f32 to vector<16xf32>
      %sr0a = arith.subi %jk0, %j0 : index
      %sr0 = arith.addi %row0, %sr0a : index
      %sc0_0 = arith.addi %r0, %o0 : index
      %m0_0 = vector.fma %acc#0, %scaleV, %bv0 : vector<16xf32>
      vector.store %m0_0, %St[%sr0, %sc0_0] : memref<?x?xf32>, vector<16xf32>
    }
  }
  return
}

// The softmax's two passes over rows [r0, r1) of St, for the 16 queries in
// columns rc .. rc + 15 (the lanes: no horizontal reductions).
// @hag_col_max: max(m, rows' scores). @hag_col_exp: replaces the rows by
// p = exp(s - m), in place, and returns l + sum p. The max ignores NaN
// semantics (nnan): a NaN score makes its query's sum NaN anyway.
func.func private @hag_col_max(%St: memref<?x?xf32>, %r0: index, %r1: index,
                               %rc: index, %m0: vector<16xf32>) -> vector<16xf32> {
  %c1 = arith.constant 1 : index
  %mv = scf.for %j = %r0 to %r1 step %c1 iter_args(%m = %m0) -> (vector<16xf32>) {
    %s = vector.load %St[%j, %rc] : memref<?x?xf32>, vector<16xf32>
    %m2 = arith.maximumf %m, %s fastmath<nnan,nsz> : vector<16xf32>
    scf.yield %m2 : vector<16xf32>
  }
  return %mv : vector<16xf32>
}

func.func private @hag_col_exp(%St: memref<?x?xf32>, %r0: index, %r1: index,
                               %rc: index, %mv: vector<16xf32>,
                               %l0: vector<16xf32>) -> vector<16xf32> {
  %c1 = arith.constant 1 : index
  %lv = scf.for %j = %r0 to %r1 step %c1 iter_args(%l = %l0) -> (vector<16xf32>) {
    %s = vector.load %St[%j, %rc] : memref<?x?xf32>, vector<16xf32>
    %sm = arith.subf %s, %mv : vector<16xf32>
    %p = math.exp %sm : vector<16xf32>
    vector.store %p, %St[%j, %rc] : memref<?x?xf32>, vector<16xf32>
    %l2 = arith.addf %l, %p : vector<16xf32>
    scf.yield %l2 : vector<16xf32>
  }
  return %lv : vector<16xf32>
}

// Softmax numerators over all Kn keys, per query (a column of St[0 .. Kn,
// 0 .. nqPad)): p = exp(s - max_j s), in place, and lS[r] = sum_j p, both
// passes per 16-query column group (its rows' lines stay in L1). Every real
// query has a finite score (it sees itself at level 1).
func.func private @hag_block_softmax(%St: memref<?x?xf32>, %Kn: index,
                                     %nqPad: index, %lS: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  %ninfV = arith.constant dense<0xFF800000> : vector<16xf32>
  %zv = arith.constant dense<0.0> : vector<16xf32>
  scf.for %rc = %c0 to %nqPad step %c16 {
    %mv = func.call @hag_col_max(%St, %c0, %Kn, %rc, %ninfV)
        : (memref<?x?xf32>, index, index, index, vector<16xf32>) -> vector<16xf32>
    %lv = func.call @hag_col_exp(%St, %c0, %Kn, %rc, %mv, %zv)
        : (memref<?x?xf32>, index, index, index, vector<16xf32>, vector<16xf32>) -> vector<16xf32>
    vector.store %lv, %lS[%rc] : memref<?xf32>, vector<16xf32>
  }
  return
}

// The same two passes range by range (the forward's block kernel), so that
// each reads rows of St still in L1: @hag_rows_max, right after a range's
// scores, raises mS[r] to the maximum of rows [r0, r1); @hag_rows_exp,
// right before the range's P V, replaces the rows by exp(s - mS[r]) and
// adds them to lS[r]. Every range's maximum must be in mS before the first
// exp.
func.func private @hag_rows_max(%St: memref<?x?xf32>, %r0: index, %r1: index,
                                %nqPad: index, %mS: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  scf.for %rc = %c0 to %nqPad step %c16 {
    %m0 = vector.load %mS[%rc] : memref<?xf32>, vector<16xf32>
    %mv = func.call @hag_col_max(%St, %r0, %r1, %rc, %m0)
        : (memref<?x?xf32>, index, index, index, vector<16xf32>) -> vector<16xf32>
    vector.store %mv, %mS[%rc] : memref<?xf32>, vector<16xf32>
  }
  return
}

func.func private @hag_rows_exp(%St: memref<?x?xf32>, %r0: index, %r1: index,
                                %nqPad: index, %mS: memref<?xf32>,
                                %lS: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  scf.for %rc = %c0 to %nqPad step %c16 {
    %mv = vector.load %mS[%rc] : memref<?xf32>, vector<16xf32>
    %l0 = vector.load %lS[%rc] : memref<?xf32>, vector<16xf32>
    %lv = func.call @hag_col_exp(%St, %r0, %r1, %rc, %mv, %l0)
        : (memref<?x?xf32>, index, index, index, vector<16xf32>, vector<16xf32>) -> vector<16xf32>
    vector.store %lv, %lS[%rc] : memref<?xf32>, vector<16xf32>
  }
  return
}

// O[ob, q0 + r, qoff + f] += sum_{j in [j0, j1)} P[row0 + j - j0, r] v_j[f]
// for the values of one source (rows of `vals` at batch index kb, features
// koff .. koff + d); the features are the lanes, O is the layer output
// (accumulated range by range, normalised at the end). Register tiles of
// 4 queries x 64 features (per key 4 vector loads of the value row, 4
// broadcasts of P, 16 FMAs), then 4 x 16, then scalar features; single
// queries likewise.
func.func private @hag_range_pv_rows(
    %vals: memref<?x?x?xf32>, %kb: index, %j0: index, %j1: index,
    %koff: index, %St: memref<?x?xf32>, %row0: index, %nq: index,
    %d: index, %O: memref<?x?x?xf32>, %ob: index, %q0: index,
    %qoff: index, %jcap: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  %c64 = arith.constant 64 : index
  %o0 = arith.constant 0 : index
  %o1 = arith.constant 1 : index
  %o2 = arith.constant 2 : index
  %o3 = arith.constant 3 : index
  %o16 = arith.constant 16 : index
  %o32 = arith.constant 32 : index
  %o48 = arith.constant 48 : index
  %zv = arith.constant dense<0.0> : vector<16xf32>
  %nq4a = arith.divui %nq, %c4 : index
  %nq4 = arith.muli %nq4a, %c4 : index
  %d64a = arith.divui %d, %c64 : index
  %d64 = arith.muli %d64a, %c64 : index
  %d16a = arith.divui %d, %c16 : index
  %d16 = arith.muli %d16a, %c16 : index
  scf.for %rb = %c0 to %nq4 step %c4 {
    // Keys past jcap + rb + 3 have P = 0 for all four queries.
    %jc0 = arith.addi %jcap, %rb : index
    %jc1 = arith.addi %jc0, %c4 : index
    %jEnd = arith.minui %jc1, %j1 : index
    %lr0 = arith.addi %rb, %o0 : index
    %qr0 = arith.addi %q0, %lr0 : index
    %lr1 = arith.addi %rb, %o1 : index
    %qr1 = arith.addi %q0, %lr1 : index
    %lr2 = arith.addi %rb, %o2 : index
    %qr2 = arith.addi %q0, %lr2 : index
    %lr3 = arith.addi %rb, %o3 : index
    %qr3 = arith.addi %q0, %lr3 : index
    scf.for %f0 = %c0 to %d64 step %c64 {
      %oc0_0a = arith.addi %qoff, %f0 : index
      %oc0_0 = arith.addi %oc0_0a, %o0 : index
      %oi0_0 = vector.load %O[%ob, %qr0, %oc0_0] : memref<?x?x?xf32>, vector<16xf32>
      %oc0_1a = arith.addi %qoff, %f0 : index
      %oc0_1 = arith.addi %oc0_1a, %o16 : index
      %oi0_1 = vector.load %O[%ob, %qr0, %oc0_1] : memref<?x?x?xf32>, vector<16xf32>
      %oc0_2a = arith.addi %qoff, %f0 : index
      %oc0_2 = arith.addi %oc0_2a, %o32 : index
      %oi0_2 = vector.load %O[%ob, %qr0, %oc0_2] : memref<?x?x?xf32>, vector<16xf32>
      %oc0_3a = arith.addi %qoff, %f0 : index
      %oc0_3 = arith.addi %oc0_3a, %o48 : index
      %oi0_3 = vector.load %O[%ob, %qr0, %oc0_3] : memref<?x?x?xf32>, vector<16xf32>
      %oc1_0a = arith.addi %qoff, %f0 : index
      %oc1_0 = arith.addi %oc1_0a, %o0 : index
      %oi1_0 = vector.load %O[%ob, %qr1, %oc1_0] : memref<?x?x?xf32>, vector<16xf32>
      %oc1_1a = arith.addi %qoff, %f0 : index
      %oc1_1 = arith.addi %oc1_1a, %o16 : index
      %oi1_1 = vector.load %O[%ob, %qr1, %oc1_1] : memref<?x?x?xf32>, vector<16xf32>
      %oc1_2a = arith.addi %qoff, %f0 : index
      %oc1_2 = arith.addi %oc1_2a, %o32 : index
      %oi1_2 = vector.load %O[%ob, %qr1, %oc1_2] : memref<?x?x?xf32>, vector<16xf32>
      %oc1_3a = arith.addi %qoff, %f0 : index
      %oc1_3 = arith.addi %oc1_3a, %o48 : index
      %oi1_3 = vector.load %O[%ob, %qr1, %oc1_3] : memref<?x?x?xf32>, vector<16xf32>
      %oc2_0a = arith.addi %qoff, %f0 : index
      %oc2_0 = arith.addi %oc2_0a, %o0 : index
      %oi2_0 = vector.load %O[%ob, %qr2, %oc2_0] : memref<?x?x?xf32>, vector<16xf32>
      %oc2_1a = arith.addi %qoff, %f0 : index
      %oc2_1 = arith.addi %oc2_1a, %o16 : index
      %oi2_1 = vector.load %O[%ob, %qr2, %oc2_1] : memref<?x?x?xf32>, vector<16xf32>
      %oc2_2a = arith.addi %qoff, %f0 : index
      %oc2_2 = arith.addi %oc2_2a, %o32 : index
      %oi2_2 = vector.load %O[%ob, %qr2, %oc2_2] : memref<?x?x?xf32>, vector<16xf32>
      %oc2_3a = arith.addi %qoff, %f0 : index
      %oc2_3 = arith.addi %oc2_3a, %o48 : index
      %oi2_3 = vector.load %O[%ob, %qr2, %oc2_3] : memref<?x?x?xf32>, vector<16xf32>
      %oc3_0a = arith.addi %qoff, %f0 : index
      %oc3_0 = arith.addi %oc3_0a, %o0 : index
      %oi3_0 = vector.load %O[%ob, %qr3, %oc3_0] : memref<?x?x?xf32>, vector<16xf32>
      %oc3_1a = arith.addi %qoff, %f0 : index
      %oc3_1 = arith.addi %oc3_1a, %o16 : index
      %oi3_1 = vector.load %O[%ob, %qr3, %oc3_1] : memref<?x?x?xf32>, vector<16xf32>
      %oc3_2a = arith.addi %qoff, %f0 : index
      %oc3_2 = arith.addi %oc3_2a, %o32 : index
      %oi3_2 = vector.load %O[%ob, %qr3, %oc3_2] : memref<?x?x?xf32>, vector<16xf32>
      %oc3_3a = arith.addi %qoff, %f0 : index
      %oc3_3 = arith.addi %oc3_3a, %o48 : index
      %oi3_3 = vector.load %O[%ob, %qr3, %oc3_3] : memref<?x?x?xf32>, vector<16xf32>
      %acc:16 = scf.for %j = %j0 to %jEnd step %c1 iter_args(%a0_0i = %oi0_0, %a0_1i = %oi0_1, %a0_2i = %oi0_2, %a0_3i = %oi0_3, %a1_0i = %oi1_0, %a1_1i = %oi1_1, %a1_2i = %oi1_2, %a1_3i = %oi1_3, %a2_0i = %oi2_0, %a2_1i = %oi2_1, %a2_2i = %oi2_2, %a2_3i = %oi2_3, %a3_0i = %oi3_0, %a3_1i = %oi3_1, %a3_2i = %oi3_2, %a3_3i = %oi3_3) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
        %sra = arith.subi %j, %j0 : index
        %sr = arith.addi %row0, %sra : index
        %fc0a = arith.addi %koff, %f0 : index
        %fc0 = arith.addi %fc0a, %o0 : index
        %vv0 = vector.load %vals[%kb, %j, %fc0] : memref<?x?x?xf32>, vector<16xf32>
        %fc1a = arith.addi %koff, %f0 : index
        %fc1 = arith.addi %fc1a, %o16 : index
        %vv1 = vector.load %vals[%kb, %j, %fc1] : memref<?x?x?xf32>, vector<16xf32>
        %fc2a = arith.addi %koff, %f0 : index
        %fc2 = arith.addi %fc2a, %o32 : index
        %vv2 = vector.load %vals[%kb, %j, %fc2] : memref<?x?x?xf32>, vector<16xf32>
        %fc3a = arith.addi %koff, %f0 : index
        %fc3 = arith.addi %fc3a, %o48 : index
        %vv3 = vector.load %vals[%kb, %j, %fc3] : memref<?x?x?xf32>, vector<16xf32>
        %px0 = memref.load %St[%sr, %lr0] : memref<?x?xf32>
        %pb0 = vector.broadcast %px0 : f32 to vector<16xf32>
        %n0_0 = vector.fma %pb0, %vv0, %a0_0i : vector<16xf32>
        %n0_1 = vector.fma %pb0, %vv1, %a0_1i : vector<16xf32>
        %n0_2 = vector.fma %pb0, %vv2, %a0_2i : vector<16xf32>
        %n0_3 = vector.fma %pb0, %vv3, %a0_3i : vector<16xf32>
        %px1 = memref.load %St[%sr, %lr1] : memref<?x?xf32>
        %pb1 = vector.broadcast %px1 : f32 to vector<16xf32>
        %n1_0 = vector.fma %pb1, %vv0, %a1_0i : vector<16xf32>
        %n1_1 = vector.fma %pb1, %vv1, %a1_1i : vector<16xf32>
        %n1_2 = vector.fma %pb1, %vv2, %a1_2i : vector<16xf32>
        %n1_3 = vector.fma %pb1, %vv3, %a1_3i : vector<16xf32>
        %px2 = memref.load %St[%sr, %lr2] : memref<?x?xf32>
        %pb2 = vector.broadcast %px2 : f32 to vector<16xf32>
        %n2_0 = vector.fma %pb2, %vv0, %a2_0i : vector<16xf32>
        %n2_1 = vector.fma %pb2, %vv1, %a2_1i : vector<16xf32>
        %n2_2 = vector.fma %pb2, %vv2, %a2_2i : vector<16xf32>
        %n2_3 = vector.fma %pb2, %vv3, %a2_3i : vector<16xf32>
        %px3 = memref.load %St[%sr, %lr3] : memref<?x?xf32>
        %pb3 = vector.broadcast %px3 : f32 to vector<16xf32>
        %n3_0 = vector.fma %pb3, %vv0, %a3_0i : vector<16xf32>
        %n3_1 = vector.fma %pb3, %vv1, %a3_1i : vector<16xf32>
        %n3_2 = vector.fma %pb3, %vv2, %a3_2i : vector<16xf32>
        %n3_3 = vector.fma %pb3, %vv3, %a3_3i : vector<16xf32>
        scf.yield %n0_0, %n0_1, %n0_2, %n0_3, %n1_0, %n1_1, %n1_2, %n1_3, %n2_0, %n2_1, %n2_2, %n2_3, %n3_0, %n3_1, %n3_2, %n3_3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
      }
      vector.store %acc#0, %O[%ob, %qr0, %oc0_0] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#1, %O[%ob, %qr0, %oc0_1] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#2, %O[%ob, %qr0, %oc0_2] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#3, %O[%ob, %qr0, %oc0_3] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#4, %O[%ob, %qr1, %oc1_0] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#5, %O[%ob, %qr1, %oc1_1] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#6, %O[%ob, %qr1, %oc1_2] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#7, %O[%ob, %qr1, %oc1_3] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#8, %O[%ob, %qr2, %oc2_0] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#9, %O[%ob, %qr2, %oc2_1] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#10, %O[%ob, %qr2, %oc2_2] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#11, %O[%ob, %qr2, %oc2_3] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#12, %O[%ob, %qr3, %oc3_0] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#13, %O[%ob, %qr3, %oc3_1] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#14, %O[%ob, %qr3, %oc3_2] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#15, %O[%ob, %qr3, %oc3_3] : memref<?x?x?xf32>, vector<16xf32>
    }
    scf.for %f0 = %d64 to %d16 step %c16 {
      %oc0_0a = arith.addi %qoff, %f0 : index
      %oc0_0 = arith.addi %oc0_0a, %o0 : index
      %oi0_0 = vector.load %O[%ob, %qr0, %oc0_0] : memref<?x?x?xf32>, vector<16xf32>
      %oc1_0a = arith.addi %qoff, %f0 : index
      %oc1_0 = arith.addi %oc1_0a, %o0 : index
      %oi1_0 = vector.load %O[%ob, %qr1, %oc1_0] : memref<?x?x?xf32>, vector<16xf32>
      %oc2_0a = arith.addi %qoff, %f0 : index
      %oc2_0 = arith.addi %oc2_0a, %o0 : index
      %oi2_0 = vector.load %O[%ob, %qr2, %oc2_0] : memref<?x?x?xf32>, vector<16xf32>
      %oc3_0a = arith.addi %qoff, %f0 : index
      %oc3_0 = arith.addi %oc3_0a, %o0 : index
      %oi3_0 = vector.load %O[%ob, %qr3, %oc3_0] : memref<?x?x?xf32>, vector<16xf32>
      %acc:4 = scf.for %j = %j0 to %jEnd step %c1 iter_args(%a0_0i = %oi0_0, %a1_0i = %oi1_0, %a2_0i = %oi2_0, %a3_0i = %oi3_0) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
        %sra = arith.subi %j, %j0 : index
        %sr = arith.addi %row0, %sra : index
        %fc0a = arith.addi %koff, %f0 : index
        %fc0 = arith.addi %fc0a, %o0 : index
        %vv0 = vector.load %vals[%kb, %j, %fc0] : memref<?x?x?xf32>, vector<16xf32>
        %px0 = memref.load %St[%sr, %lr0] : memref<?x?xf32>
        %pb0 = vector.broadcast %px0 : f32 to vector<16xf32>
        %n0_0 = vector.fma %pb0, %vv0, %a0_0i : vector<16xf32>
        %px1 = memref.load %St[%sr, %lr1] : memref<?x?xf32>
        %pb1 = vector.broadcast %px1 : f32 to vector<16xf32>
        %n1_0 = vector.fma %pb1, %vv0, %a1_0i : vector<16xf32>
        %px2 = memref.load %St[%sr, %lr2] : memref<?x?xf32>
        %pb2 = vector.broadcast %px2 : f32 to vector<16xf32>
        %n2_0 = vector.fma %pb2, %vv0, %a2_0i : vector<16xf32>
        %px3 = memref.load %St[%sr, %lr3] : memref<?x?xf32>
        %pb3 = vector.broadcast %px3 : f32 to vector<16xf32>
        %n3_0 = vector.fma %pb3, %vv0, %a3_0i : vector<16xf32>
        scf.yield %n0_0, %n1_0, %n2_0, %n3_0 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
      }
      vector.store %acc#0, %O[%ob, %qr0, %oc0_0] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#1, %O[%ob, %qr1, %oc1_0] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#2, %O[%ob, %qr2, %oc2_0] : memref<?x?x?xf32>, vector<16xf32>
      vector.store %acc#3, %O[%ob, %qr3, %oc3_0] : memref<?x?x?xf32>, vector<16xf32>
    }
    scf.for %f = %d16 to %d step %c1 {
      %ocs0 = arith.addi %qoff, %f : index
      %ois0 = memref.load %O[%ob, %qr0, %ocs0] : memref<?x?x?xf32>
      %ocs1 = arith.addi %qoff, %f : index
      %ois1 = memref.load %O[%ob, %qr1, %ocs1] : memref<?x?x?xf32>
      %ocs2 = arith.addi %qoff, %f : index
      %ois2 = memref.load %O[%ob, %qr2, %ocs2] : memref<?x?x?xf32>
      %ocs3 = arith.addi %qoff, %f : index
      %ois3 = memref.load %O[%ob, %qr3, %ocs3] : memref<?x?x?xf32>
      %acc:4 = scf.for %j = %j0 to %jEnd step %c1 iter_args(%s0i = %ois0, %s1i = %ois1, %s2i = %ois2, %s3i = %ois3) -> (f32, f32, f32, f32) {
        %sra = arith.subi %j, %j0 : index
        %sr = arith.addi %row0, %sra : index
        %fk = arith.addi %koff, %f : index
        %vx = memref.load %vals[%kb, %j, %fk] : memref<?x?x?xf32>
        %px0 = memref.load %St[%sr, %lr0] : memref<?x?xf32>
        %n0 = math.fma %px0, %vx, %s0i : f32
        %px1 = memref.load %St[%sr, %lr1] : memref<?x?xf32>
        %n1 = math.fma %px1, %vx, %s1i : f32
        %px2 = memref.load %St[%sr, %lr2] : memref<?x?xf32>
        %n2 = math.fma %px2, %vx, %s2i : f32
        %px3 = memref.load %St[%sr, %lr3] : memref<?x?xf32>
        %n3 = math.fma %px3, %vx, %s3i : f32
        scf.yield %n0, %n1, %n2, %n3 : f32, f32, f32, f32
      }
      memref.store %acc#0, %O[%ob, %qr0, %ocs0] : memref<?x?x?xf32>
      memref.store %acc#1, %O[%ob, %qr1, %ocs1] : memref<?x?x?xf32>
      memref.store %acc#2, %O[%ob, %qr2, %ocs2] : memref<?x?x?xf32>
      memref.store %acc#3, %O[%ob, %qr3, %ocs3] : memref<?x?x?xf32>
    }
  }
  scf.for %rs = %nq4 to %nq step %c1 {
    %jc0 = arith.addi %jcap, %rs : index
    %jc1 = arith.addi %jc0, %c1 : index
    %jEnd = arith.minui %jc1, %j1 : index
    %lr0 = arith.addi %rs, %o0 : index
    %qr0 = arith.addi %q0, %lr0 : index
    scf.for %f0 = %c0 to %d16 step %c16 {
      %oc0_0a = arith.addi %qoff, %f0 : index
      %oc0_0 = arith.addi %oc0_0a, %o0 : index
      %oi0_0 = vector.load %O[%ob, %qr0, %oc0_0] : memref<?x?x?xf32>, vector<16xf32>
      %acc:1 = scf.for %j = %j0 to %jEnd step %c1 iter_args(%a0_0i = %oi0_0) -> (vector<16xf32>) {
        %sra = arith.subi %j, %j0 : index
        %sr = arith.addi %row0, %sra : index
        %fc0a = arith.addi %koff, %f0 : index
        %fc0 = arith.addi %fc0a, %o0 : index
        %vv0 = vector.load %vals[%kb, %j, %fc0] : memref<?x?x?xf32>, vector<16xf32>
        %px0 = memref.load %St[%sr, %lr0] : memref<?x?xf32>
        %pb0 = vector.broadcast %px0 : f32 to vector<16xf32>
        %n0_0 = vector.fma %pb0, %vv0, %a0_0i : vector<16xf32>
        scf.yield %n0_0 : vector<16xf32>
      }
      vector.store %acc#0, %O[%ob, %qr0, %oc0_0] : memref<?x?x?xf32>, vector<16xf32>
    }
    scf.for %f = %d16 to %d step %c1 {
      %ocs0 = arith.addi %qoff, %f : index
      %ois0 = memref.load %O[%ob, %qr0, %ocs0] : memref<?x?x?xf32>
      %acc:1 = scf.for %j = %j0 to %jEnd step %c1 iter_args(%s0i = %ois0) -> (f32) {
        %sra = arith.subi %j, %j0 : index
        %sr = arith.addi %row0, %sra : index
        %fk = arith.addi %koff, %f : index
        %vx = memref.load %vals[%kb, %j, %fk] : memref<?x?x?xf32>
        %px0 = memref.load %St[%sr, %lr0] : memref<?x?xf32>
        %n0 = math.fma %px0, %vx, %s0i : f32
        scf.yield %n0 : f32
      }
      memref.store %acc#0, %O[%ob, %qr0, %ocs0] : memref<?x?x?xf32>
    }
  }
  return
}

// @hag_range_pv_rows on a packed copy of the value rows when the block has
// many queries: the rows of `vals` are Hkv d floats apart (2 KiB for the
// defaults), so a range's rows, each read once per 4-query tile, fall into a
// few L1 sets and evict each other; copied into a contiguous [j1 - j0, d]
// buffer (at most 256 KiB, on the stack for this call) they stay in L1.
// Sources whose rows are already contiguous (the block's summary tokens and
// picks, single-kv-head layers) are read in place. Keys past jcap + r have
// P = 0 for query r (causal masking; jcap = j1 for none): they are skipped.
func.func private @hag_range_pv(
    %vals: memref<?x?x?xf32>, %kb: index, %j0: index, %j1: index,
    %koff: index, %St: memref<?x?xf32>, %row0: index, %nq: index,
    %d: index, %O: memref<?x?x?xf32>, %ob: index, %q0: index,
    %qoff: index, %jcap: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %cMax = arith.constant 65536 : index
  %len = arith.subi %j1, %j0 : index
  %size = arith.muli %len, %d : index
  %manyQ = arith.cmpi uge, %nq, %c16 : index
  %fits = arith.cmpi ule, %size, %cMax : index
  %d16a = arith.divui %d, %c16 : index
  %d16 = arith.muli %d16a, %c16 : index
  %c2 = arith.constant 2 : index
  %rowLen = memref.dim %vals, %c2 : memref<?x?x?xf32>
  %strided = arith.cmpi ne, %rowLen, %d : index
  %pack0 = arith.andi %manyQ, %fits : i1
  %pack = arith.andi %pack0, %strided : i1
  scf.if %pack {
    memref.alloca_scope {
      %Vp = memref.alloca(%len, %d) : memref<1x?x?xf32>
      scf.for %j = %c0 to %len step %c1 {
        %src = arith.addi %j0, %j : index
        scf.for %f = %c0 to %d16 step %c16 {
          %fs = arith.addi %koff, %f : index
          %x = vector.load %vals[%kb, %src, %fs] : memref<?x?x?xf32>, vector<16xf32>
          vector.store %x, %Vp[%c0, %j, %f] : memref<1x?x?xf32>, vector<16xf32>
        }
        scf.for %f = %d16 to %d step %c1 {
          %fs = arith.addi %koff, %f : index
          %x = memref.load %vals[%kb, %src, %fs] : memref<?x?x?xf32>
          memref.store %x, %Vp[%c0, %j, %f] : memref<1x?x?xf32>
        }
      }
      %jcapP = arith.subi %jcap, %j0 : index
      %Vd = memref.cast %Vp : memref<1x?x?xf32> to memref<?x?x?xf32>
      func.call @hag_range_pv_rows(%Vd, %c0, %c0, %len, %c0, %St, %row0, %nq, %d, %O, %ob, %q0, %qoff, %jcapP)
          : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index, index) -> ()
    }
  } else {
    func.call @hag_range_pv_rows(%vals, %kb, %j0, %j1, %koff, %St, %row0, %nq, %d, %O, %ob, %q0, %qoff, %jcap)
        : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index, index) -> ()
  }
  return
}


// One (batch, head, query block): the block's summary tokens and select_k
// picks, then every query of the block through one online softmax. A
// function of its own (never inlined) so its stack scratch is released at
// every return: allocas in a loop body would grow the stack per iteration.
func.func private @hag_attend_block(
    %q: memref<?x?x?xf32>, %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>,
    %g: memref<?x?xf32>, %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>,
    %levB: memref<?x?xf32>, %gB: memref<?x?xf32>, %pk: memref<?x?x?xf64>,
    %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>, %out: memref<?x?x?xf32>,
    %b: index, %h: index, %qb: index, %n: index,
    %H: index, %Hkv: index, %d: index, %B: index, %r: index, %L: index,
    %W: index, %T: index, %causal: i1, %selectK: index,
    %beta: f32, %eps: f32, %scale: f32) attributes {no_inline} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %kAlloc = arith.maxui %selectK, %c1 : index
  %tAlloc = arith.maxui %T, %c1 : index
  // kv(h) = floor(h Hkv / H); columns of the head and of its kv head.
  %hk = arith.muli %h, %Hkv : index
  %kvh = arith.divui %hk, %H : index
  %qoff = arith.muli %h, %d : index
  %koff = arith.muli %kvh, %d : index
  %q0 = arith.muli %qb, %B : index
  %q1r = arith.addi %q0, %B : index
  %q1 = arith.minui %q1r, %n : index
  // Level 1: a_1 = max(0, (b-1) B); bidirectional end e_1 = min(N, (b+2) B).
  %a1r = arith.subi %q0, %B : index
  %a1 = arith.maxsi %a1r, %c0 : index
  %b2 = arith.addi %q1r, %B : index
  %e1b = arith.minui %b2, %n : index
  %e1 = arith.select %causal, %q1, %e1b : index
  // Summary prefix: causal [0, a_{L-1} sigma_{L-1}), bidirectional [0, N).
  %last:3 = scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1, %e = %e1, %nPrev = %n) -> (index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%a, %e, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    scf.yield %w#0, %w#3, %nl : index, index, index
  }
  %Lm2 = arith.subi %L, %c2 : index
  %sigma = scf.for %x = %c0 to %Lm2 step %c1 iter_args(%s = %c1) -> (index) {
    %s2 = arith.muli %s, %r : index
    scf.yield %s2 : index
  }
  %pc = arith.muli %last#0, %sigma : index
  %prefix = arith.select %causal, %pc, %n : index
  %tp = arith.minui %T, %prefix : index
  // The T' summary tokens of this block and kv head: gated means of the
  // floor-rule segments, from the f64 prefix sums.
  %sK = memref.alloca(%tAlloc, %d) : memref<?x?xf32>
  %sV = memref.alloca(%tAlloc, %d) : memref<?x?xf32>
  %sM = memref.alloca(%tAlloc) : memref<?xf32>
  %sK3 = memref.expand_shape %sK [[0, 1], [2]] output_shape [1, %tAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %sV3 = memref.expand_shape %sV [[0, 1], [2]] output_shape [1, %tAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %sKd = memref.cast %sK3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %sVd = memref.cast %sV3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %sM2 = memref.expand_shape %sM [[0, 1]] output_shape [1, %tAlloc] : memref<?xf32> into memref<1x?xf32>
  %sMd = memref.cast %sM2 : memref<1x?xf32> to memref<?x?xf32>
  func.call @hag_summary_tokens(%pk, %pv, %pg, %b, %koff, %prefix, %tp, %d, %beta, %eps, %sKd, %sVd, %sMd, %c0, %c0, %c0, %c0)
      : (memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>, index, index, index, index, index, f32, f32,
         memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index) -> ()
  // select_k: the k largest gates left of level 1's window (and right of
  // it when bidirectional), gathered into the shape of a range.
  %nb = arith.subi %n, %e1 : index
  %rightCand = arith.select %causal, %c0, %nb : index
  %cands = arith.addi %a1, %rightCand : index
  %kp = arith.minui %selectK, %cands : index
  %picked = memref.alloca(%kAlloc) : memref<?xindex>
  %selK = memref.alloca(%kAlloc, %d) : memref<?x?xf32>
  %selV = memref.alloca(%kAlloc, %d) : memref<?x?xf32>
  %selB = memref.alloca(%kAlloc) : memref<?xf32>
  %selK3 = memref.expand_shape %selK [[0, 1], [2]] output_shape [1, %kAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %selV3 = memref.expand_shape %selV [[0, 1], [2]] output_shape [1, %kAlloc, %d] : memref<?x?xf32> into memref<1x?x?xf32>
  %selKd = memref.cast %selK3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %selVd = memref.cast %selV3 : memref<1x?x?xf32> to memref<?x?x?xf32>
  %selB2 = memref.expand_shape %selB [[0, 1]] output_shape [1, %kAlloc] : memref<?xf32> into memref<1x?xf32>
  %selBd = memref.cast %selB2 : memref<1x?xf32> to memref<?x?xf32>
  func.call @hag_select_tokens(%g, %c0, %gB, %k, %v, %b, %koff, %d, %a1, %e1, %n, %causal, %kp, %picked, %selKd, %selVd, %selBd, %c0, %c0, %c0, %c0)
      : (memref<?x?xf32>, index, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index,
         index, index, index, i1, index, memref<?xindex>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
         index, index, index, index) -> ()

  // The block's queries, transposed (they are the lanes of every tile), and
  // the number of keys it sees: level 1, every level's windows, the
  // summary tokens, the select_k picks.
  %c16 = arith.constant 16 : index
  %nq = arith.subi %q1, %q0 : index
  %nqPad0 = func.call @hag_ceil_div(%nq, %c16) : (index, index) -> index
  %nqPad = arith.muli %nqPad0, %c16 : index
  %Qt = memref.alloc(%d, %nqPad) : memref<?x?xf32>
  func.call @hag_pack_queries(%q, %b, %q0, %nq, %qoff, %d, %Qt, %nqPad)
      : (memref<?x?x?xf32>, index, index, index, index, index, memref<?x?xf32>, index) -> ()
  %n1 = arith.subi %e1, %a1 : index
  %levKeys:4 = scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1, %e = %e1, %nPrev = %n, %cnt = %c0) -> (index, index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%a, %e, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %left = arith.subi %w#1, %w#0 : index
    %right = arith.subi %w#3, %w#2 : index
    %cnt1 = arith.addi %cnt, %left : index
    %cnt2 = arith.addi %cnt1, %right : index
    scf.yield %w#0, %w#3, %nl, %cnt2 : index, index, index, index
  }
  %kn0 = arith.addi %n1, %levKeys#3 : index
  %kn1 = arith.addi %kn0, %tp : index
  %Kn = arith.addi %kn1, %kp : index

  // St[key, query]: every key's scores, keys in the order above (row c of
  // level 1 is raw position a_1 + c). The whole key set is known up front,
  // so the softmax is exact in two passes (no online rescaling), each done
  // range by range while the range's rows are in L1: the row maxima right
  // after a range's scores, exp and the sums right before its P V.
  %St = memref.alloc(%Kn, %nqPad) : memref<?x?xf32>
  %lS = memref.alloc(%nqPad) : memref<?xf32>
  %mS = memref.alloc(%nqPad) : memref<?xf32>
  %ninfV = vector.broadcast %ninf : f32 to vector<16xf32>
  %zeroV = vector.broadcast %zero : f32 to vector<16xf32>
  scf.for %rc = %c0 to %nqPad step %c16 {
    vector.store %ninfV, %mS[%rc] : memref<?xf32>, vector<16xf32>
    vector.store %zeroV, %lS[%rc] : memref<?xf32>, vector<16xf32>
  }
  func.call @hag_range_scores(%k, %b, %a1, %e1, %koff, %gB, %b, %c0, %Qt, %nqPad, %d, %scale, %St, %c0)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, index) -> ()
  // The causal mask on level 1: key a_1 + c is after query q0 + r when
  // r < a_1 + c - q0.
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
  func.call @hag_rows_max(%St, %c0, %n1, %nqPad, %mS) : (memref<?x?xf32>, index, index, index, memref<?xf32>) -> ()
  %rowL:5 = scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1, %e = %e1, %nPrev = %n, %off = %c0, %row = %n1) -> (index, index, index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%a, %e, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %la = arith.addi %off, %w#0 : index
    %lc = arith.addi %off, %w#1 : index
    func.call @hag_range_scores(%levK, %b, %la, %lc, %koff, %levB, %b, %c0, %Qt, %nqPad, %d, %scale, %St, %row)
        : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, index) -> ()
    %rowA0 = arith.subi %lc, %la : index
    %rowA = arith.addi %row, %rowA0 : index
    func.call @hag_rows_max(%St, %row, %rowA, %nqPad, %mS) : (memref<?x?xf32>, index, index, index, memref<?xf32>) -> ()
    %ra = arith.addi %off, %w#2 : index
    %rc = arith.addi %off, %w#3 : index
    func.call @hag_range_scores(%levK, %b, %ra, %rc, %koff, %levB, %b, %c0, %Qt, %nqPad, %d, %scale, %St, %rowA)
        : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, index) -> ()
    %rowB0 = arith.subi %rc, %ra : index
    %rowB = arith.addi %rowA, %rowB0 : index
    func.call @hag_rows_max(%St, %rowA, %rowB, %nqPad, %mS) : (memref<?x?xf32>, index, index, index, memref<?xf32>) -> ()
    %offNext = arith.addi %off, %nl : index
    scf.yield %w#0, %w#3, %nl, %offNext, %rowB : index, index, index, index, index
  }
  func.call @hag_range_scores(%sKd, %c0, %c0, %tp, %c0, %sMd, %c0, %c0, %Qt, %nqPad, %d, %scale, %St, %rowL#4)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, index) -> ()
  %rowS = arith.addi %rowL#4, %tp : index
  func.call @hag_rows_max(%St, %rowL#4, %rowS, %nqPad, %mS) : (memref<?x?xf32>, index, index, index, memref<?xf32>) -> ()
  func.call @hag_range_scores(%selKd, %c0, %c0, %kp, %c0, %selBd, %c0, %c0, %Qt, %nqPad, %d, %scale, %St, %rowS)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, memref<?x?xf32>, index, index, f32, memref<?x?xf32>, index) -> ()
  func.call @hag_rows_max(%St, %rowS, %Kn, %nqPad, %mS) : (memref<?x?xf32>, index, index, index, memref<?xf32>) -> ()

  // out[b, q0 + r, qoff + f] = sum over keys of p[key, r] v[f], range by
  // range, then divided by l[r].
  scf.for %rr = %c0 to %nq step %c1 {
    %qi = arith.addi %q0, %rr : index
    scf.for %x = %c0 to %d step %c1 {
      %col = arith.addi %qoff, %x : index
      memref.store %zero, %out[%b, %qi, %col] : memref<?x?x?xf32>
    }
  }
  // Level 1 in two halves (each half's P rows and packed values stay in
  // L1): the keys before the block, then the block's own keys, where a
  // causal query r needs keys up to q0 + r only.
  %ownRow = arith.subi %q0, %a1 : index
  func.call @hag_rows_exp(%St, %c0, %ownRow, %nqPad, %mS, %lS) : (memref<?x?xf32>, index, index, index, memref<?xf32>, memref<?xf32>) -> ()
  func.call @hag_range_pv(%v, %b, %a1, %q0, %koff, %St, %c0, %nq, %d, %out, %b, %q0, %qoff, %q0)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index, index) -> ()
  %ownCap = arith.select %causal, %q0, %e1 : index
  func.call @hag_rows_exp(%St, %ownRow, %n1, %nqPad, %mS, %lS) : (memref<?x?xf32>, index, index, index, memref<?xf32>, memref<?xf32>) -> ()
  func.call @hag_range_pv(%v, %b, %q0, %e1, %koff, %St, %ownRow, %nq, %d, %out, %b, %q0, %qoff, %ownCap)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index, index) -> ()
  %rowP:5 = scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1, %e = %e1, %nPrev = %n, %off = %c0, %row = %n1) -> (index, index, index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%a, %e, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %la = arith.addi %off, %w#0 : index
    %lc = arith.addi %off, %w#1 : index
    %rowA0 = arith.subi %lc, %la : index
    %rowA = arith.addi %row, %rowA0 : index
    func.call @hag_rows_exp(%St, %row, %rowA, %nqPad, %mS, %lS) : (memref<?x?xf32>, index, index, index, memref<?xf32>, memref<?xf32>) -> ()
    func.call @hag_range_pv(%levV, %b, %la, %lc, %koff, %St, %row, %nq, %d, %out, %b, %q0, %qoff, %lc)
        : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index, index) -> ()
    %ra = arith.addi %off, %w#2 : index
    %rc = arith.addi %off, %w#3 : index
    %rowB0 = arith.subi %rc, %ra : index
    %rowB = arith.addi %rowA, %rowB0 : index
    func.call @hag_rows_exp(%St, %rowA, %rowB, %nqPad, %mS, %lS) : (memref<?x?xf32>, index, index, index, memref<?xf32>, memref<?xf32>) -> ()
    func.call @hag_range_pv(%levV, %b, %ra, %rc, %koff, %St, %rowA, %nq, %d, %out, %b, %q0, %qoff, %rc)
        : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index, index) -> ()
    %offNext = arith.addi %off, %nl : index
    scf.yield %w#0, %w#3, %nl, %offNext, %rowB : index, index, index, index, index
  }
  %rowSP = arith.addi %rowP#4, %tp : index
  func.call @hag_rows_exp(%St, %rowP#4, %rowSP, %nqPad, %mS, %lS) : (memref<?x?xf32>, index, index, index, memref<?xf32>, memref<?xf32>) -> ()
  func.call @hag_range_pv(%sVd, %c0, %c0, %tp, %c0, %St, %rowP#4, %nq, %d, %out, %b, %q0, %qoff, %tp)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index, index) -> ()
  func.call @hag_rows_exp(%St, %rowSP, %Kn, %nqPad, %mS, %lS) : (memref<?x?xf32>, index, index, index, memref<?xf32>, memref<?xf32>) -> ()
  func.call @hag_range_pv(%selVd, %c0, %c0, %kp, %c0, %St, %rowSP, %nq, %d, %out, %b, %q0, %qoff, %kp)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, memref<?x?x?xf32>, index, index, index, index) -> ()
  scf.for %rr = %c0 to %nq step %c1 {
    %qi = arith.addi %q0, %rr : index
    %l = memref.load %lS[%rr] : memref<?xf32>
    %inv = arith.divf %one, %l : f32
    scf.for %x = %c0 to %d step %c1 {
      %col = arith.addi %qoff, %x : index
      %o = memref.load %out[%b, %qi, %col] : memref<?x?x?xf32>
      %y = arith.mulf %o, %inv : f32
      memref.store %y, %out[%b, %qi, %col] : memref<?x?x?xf32>
    }
  }
  return
}

// Builds the compressed levels 2 .. L-1 of every batch row into levK, levV
// [batch, sum n_l, Hkv*d] and levM [batch, sum n_l], one level after the
// other (each from the level below: raw k, v, g for level 2).
func.func private @hag_build_levels(
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %g: memref<?x?xf32>,
    %convK: memref<?x?x?x?xf32>, %convV: memref<?x?x?x?xf32>,
    %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>, %levM: memref<?x?xf32>,
    %r: index, %L: index, %d: index, %compress: index, %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %bt = memref.dim %k, %c0 : memref<?x?x?xf32>
  %n = memref.dim %k, %c1 : memref<?x?x?xf32>
  %kvD = memref.dim %k, %c2 : memref<?x?x?xf32>
  scf.for %l = %c2 to %L step %c1 iter_args(%offPrev = %c0, %off = %c0, %nPrev = %n) -> (index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %fromRaw = arith.cmpi eq, %l, %c2 : index
    %lc = arith.subi %l, %c2 : index
    // Children: raw k, v, g at level 2, level l-1's rows otherwise.
    %src:4 = scf.if %fromRaw -> (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index) {
      scf.yield %k, %v, %g, %c0 : memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index
    } else {
      scf.yield %levK, %levV, %levM, %offPrev : memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index
    }
    scf.parallel (%b, %j) = (%c0, %c0) to (%bt, %nl) step (%c1, %c1) {
      %dst = arith.addi %off, %j : index
      %mass = func.call @hag_level_token(%src#0, %src#1, %src#2, %src#3, %src#3, %fromRaw,
          %levK, %levV, %levM, %dst, %dst, %b, %j, %nPrev, %r, %kvD, %d, %lc,
          %convK, %convV, %compress, %eps)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, i1,
             memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index,
             index, index, index, index, index, index, index,
             memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, index, f32) -> f32
      scf.reduce
    }
    %offNext = arith.addi %off, %nl : index
    scf.yield %off, %offNext, %nl : index, index, index
  }
  return
}

// f64 running prefix sums pk[b, i] = sum_{i' < i} g k (likewise pv, pg) over
// [batch, N + 1] rows, for the summaries. Each element is the running
// fma(g_i, k_i, pk[i]) in position order, as a decoding step computes it.
// In parallel over (batch, 64-feature chunks), plus 16-feature scalar chunks
// for the features past the last full chunk (all of them when the rows are
// not 64-byte aligned) and one task per batch row for g. A chunk's 64
// running sums of k and of v stay in registers (16 vector<8xf64>); the new
// rows go out with non-temporal stores: pk and pv are written once here
// (2 x N x Hkv d f64, 134 MB at N = 16K) and read later, rows at a time, by
// the summaries, so caching them on the way out only evicts k and v.
func.func private @hag_prefix_sums(
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %g: memref<?x?xf32>,
    %pk: memref<?x?x?xf64>, %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c64 = arith.constant 64 : index
  %o0 = arith.constant 0 : index
  %o1 = arith.constant 8 : index
  %o2 = arith.constant 16 : index
  %o3 = arith.constant 24 : index
  %o4 = arith.constant 32 : index
  %o5 = arith.constant 40 : index
  %o6 = arith.constant 48 : index
  %o7 = arith.constant 56 : index
  %zero64 = arith.constant 0.0 : f64
  %z8 = arith.constant dense<0.0> : vector<8xf64>
  %bt = memref.dim %k, %c0 : memref<?x?x?xf32>
  %n = memref.dim %k, %c1 : memref<?x?x?xf32>
  %kvD = memref.dim %k, %c2 : memref<?x?x?xf32>
  // Non-temporal stores need 64-byte aligned rows: pk and pv aligned (the
  // kernels allocate them so) and rows a multiple of 8 f64 long. Without
  // that, every feature takes the scalar chunks.
  %c8i = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %c64b = arith.constant 64 : index
  %pkPtr = memref.extract_aligned_pointer_as_index %pk : memref<?x?x?xf64> -> index
  %pvPtr = memref.extract_aligned_pointer_as_index %pv : memref<?x?x?xf64> -> index
  %pkMis = arith.remui %pkPtr, %c64b : index
  %pvMis = arith.remui %pvPtr, %c64b : index
  %rowMis = arith.remui %kvD, %c8i : index
  %mis0 = arith.ori %pkMis, %pvMis : index
  %mis = arith.ori %mis0, %rowMis : index
  %aligned = arith.cmpi eq, %mis, %c0 : index
  %nFull = arith.divui %kvD, %c64 : index
  %nVec = arith.select %aligned, %nFull, %c0 : index
  %fTail = arith.muli %nVec, %c64 : index
  %tailLen = arith.subi %kvD, %fTail : index
  %nScalar = func.call @hag_ceil_div(%tailLen, %c16) : (index, index) -> index
  // Tasks: [0, nVec) 64-feature vector chunks, then nScalar 16-feature
  // scalar chunks of the features from fTail on, last g.
  %tG = arith.addi %nVec, %nScalar : index
  %nTasks = arith.addi %tG, %c1 : index
  scf.parallel (%b, %t) = (%c0, %c0) to (%bt, %nTasks) step (%c1, %c1) {
    %isG = arith.cmpi eq, %t, %tG : index
    %isScalar = arith.cmpi uge, %t, %nVec : index
    scf.if %isG {
      memref.store %zero64, %pg[%b, %c0] : memref<?x?xf64>
      scf.for %i = %c0 to %n step %c1 {
        %i1 = arith.addi %i, %c1 : index
        %gi = memref.load %g[%b, %i] : memref<?x?xf32>
        %gd = arith.extf %gi : f32 to f64
        %pgi = memref.load %pg[%b, %i] : memref<?x?xf64>
        %pgn = arith.addf %pgi, %gd : f64
        memref.store %pgn, %pg[%b, %i1] : memref<?x?xf64>
      }
    } else {
      scf.if %isScalar {
        %tc = arith.subi %t, %nVec : index
        %fo = arith.muli %tc, %c16 : index
        %fs0 = arith.addi %fTail, %fo : index
        %fs1r = arith.addi %fs0, %c16 : index
        %fs1 = arith.minui %fs1r, %kvD : index
        scf.for %f = %fs0 to %fs1 step %c1 {
          memref.store %zero64, %pk[%b, %c0, %f] : memref<?x?x?xf64>
          memref.store %zero64, %pv[%b, %c0, %f] : memref<?x?x?xf64>
        }
        scf.for %i = %c0 to %n step %c1 {
          %i1 = arith.addi %i, %c1 : index
          %gi = memref.load %g[%b, %i] : memref<?x?xf32>
          %gd = arith.extf %gi : f32 to f64
          scf.for %f = %fs0 to %fs1 step %c1 {
            %kx = memref.load %k[%b, %i, %f] : memref<?x?x?xf32>
            %vx = memref.load %v[%b, %i, %f] : memref<?x?x?xf32>
            %kd = arith.extf %kx : f32 to f64
            %vd = arith.extf %vx : f32 to f64
            %pki = memref.load %pk[%b, %i, %f] : memref<?x?x?xf64>
            %pvi = memref.load %pv[%b, %i, %f] : memref<?x?x?xf64>
            %pkn = math.fma %gd, %kd, %pki : f64
            %pvn = math.fma %gd, %vd, %pvi : f64
            memref.store %pkn, %pk[%b, %i1, %f] : memref<?x?x?xf64>
            memref.store %pvn, %pv[%b, %i1, %f] : memref<?x?x?xf64>
          }
        }
      } else {
        %f0 = arith.muli %t, %c64 : index
        %zo0 = arith.addi %f0, %o0 : index
        vector.store %z8, %pk[%b, %c0, %zo0] : memref<?x?x?xf64>, vector<8xf64>
        vector.store %z8, %pv[%b, %c0, %zo0] : memref<?x?x?xf64>, vector<8xf64>
        %zo1 = arith.addi %f0, %o1 : index
        vector.store %z8, %pk[%b, %c0, %zo1] : memref<?x?x?xf64>, vector<8xf64>
        vector.store %z8, %pv[%b, %c0, %zo1] : memref<?x?x?xf64>, vector<8xf64>
        %zo2 = arith.addi %f0, %o2 : index
        vector.store %z8, %pk[%b, %c0, %zo2] : memref<?x?x?xf64>, vector<8xf64>
        vector.store %z8, %pv[%b, %c0, %zo2] : memref<?x?x?xf64>, vector<8xf64>
        %zo3 = arith.addi %f0, %o3 : index
        vector.store %z8, %pk[%b, %c0, %zo3] : memref<?x?x?xf64>, vector<8xf64>
        vector.store %z8, %pv[%b, %c0, %zo3] : memref<?x?x?xf64>, vector<8xf64>
        %zo4 = arith.addi %f0, %o4 : index
        vector.store %z8, %pk[%b, %c0, %zo4] : memref<?x?x?xf64>, vector<8xf64>
        vector.store %z8, %pv[%b, %c0, %zo4] : memref<?x?x?xf64>, vector<8xf64>
        %zo5 = arith.addi %f0, %o5 : index
        vector.store %z8, %pk[%b, %c0, %zo5] : memref<?x?x?xf64>, vector<8xf64>
        vector.store %z8, %pv[%b, %c0, %zo5] : memref<?x?x?xf64>, vector<8xf64>
        %zo6 = arith.addi %f0, %o6 : index
        vector.store %z8, %pk[%b, %c0, %zo6] : memref<?x?x?xf64>, vector<8xf64>
        vector.store %z8, %pv[%b, %c0, %zo6] : memref<?x?x?xf64>, vector<8xf64>
        %zo7 = arith.addi %f0, %o7 : index
        vector.store %z8, %pk[%b, %c0, %zo7] : memref<?x?x?xf64>, vector<8xf64>
        vector.store %z8, %pv[%b, %c0, %zo7] : memref<?x?x?xf64>, vector<8xf64>
        %sums:16 = scf.for %i = %c0 to %n step %c1 iter_args(%ak0 = %z8, %ak1 = %z8, %ak2 = %z8, %ak3 = %z8, %ak4 = %z8, %ak5 = %z8, %ak6 = %z8, %ak7 = %z8, %av0 = %z8, %av1 = %z8, %av2 = %z8, %av3 = %z8, %av4 = %z8, %av5 = %z8, %av6 = %z8, %av7 = %z8) -> (vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>) {
          %i1 = arith.addi %i, %c1 : index
          %gi = memref.load %g[%b, %i] : memref<?x?xf32>
          %gd = arith.extf %gi : f32 to f64
          %gv = vector.broadcast %gd : f64 to vector<8xf64>
          %fo0 = arith.addi %f0, %o0 : index
          %kx0 = vector.load %k[%b, %i, %fo0] : memref<?x?x?xf32>, vector<8xf32>
          %vx0 = vector.load %v[%b, %i, %fo0] : memref<?x?x?xf32>, vector<8xf32>
          %kd0 = arith.extf %kx0 : vector<8xf32> to vector<8xf64>
          %vd0 = arith.extf %vx0 : vector<8xf32> to vector<8xf64>
          %nk0 = math.fma %gv, %kd0, %ak0 : vector<8xf64>
          %nv0 = math.fma %gv, %vd0, %av0 : vector<8xf64>
          vector.store %nk0, %pk[%b, %i1, %fo0] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          vector.store %nv0, %pv[%b, %i1, %fo0] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          %fo1 = arith.addi %f0, %o1 : index
          %kx1 = vector.load %k[%b, %i, %fo1] : memref<?x?x?xf32>, vector<8xf32>
          %vx1 = vector.load %v[%b, %i, %fo1] : memref<?x?x?xf32>, vector<8xf32>
          %kd1 = arith.extf %kx1 : vector<8xf32> to vector<8xf64>
          %vd1 = arith.extf %vx1 : vector<8xf32> to vector<8xf64>
          %nk1 = math.fma %gv, %kd1, %ak1 : vector<8xf64>
          %nv1 = math.fma %gv, %vd1, %av1 : vector<8xf64>
          vector.store %nk1, %pk[%b, %i1, %fo1] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          vector.store %nv1, %pv[%b, %i1, %fo1] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          %fo2 = arith.addi %f0, %o2 : index
          %kx2 = vector.load %k[%b, %i, %fo2] : memref<?x?x?xf32>, vector<8xf32>
          %vx2 = vector.load %v[%b, %i, %fo2] : memref<?x?x?xf32>, vector<8xf32>
          %kd2 = arith.extf %kx2 : vector<8xf32> to vector<8xf64>
          %vd2 = arith.extf %vx2 : vector<8xf32> to vector<8xf64>
          %nk2 = math.fma %gv, %kd2, %ak2 : vector<8xf64>
          %nv2 = math.fma %gv, %vd2, %av2 : vector<8xf64>
          vector.store %nk2, %pk[%b, %i1, %fo2] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          vector.store %nv2, %pv[%b, %i1, %fo2] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          %fo3 = arith.addi %f0, %o3 : index
          %kx3 = vector.load %k[%b, %i, %fo3] : memref<?x?x?xf32>, vector<8xf32>
          %vx3 = vector.load %v[%b, %i, %fo3] : memref<?x?x?xf32>, vector<8xf32>
          %kd3 = arith.extf %kx3 : vector<8xf32> to vector<8xf64>
          %vd3 = arith.extf %vx3 : vector<8xf32> to vector<8xf64>
          %nk3 = math.fma %gv, %kd3, %ak3 : vector<8xf64>
          %nv3 = math.fma %gv, %vd3, %av3 : vector<8xf64>
          vector.store %nk3, %pk[%b, %i1, %fo3] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          vector.store %nv3, %pv[%b, %i1, %fo3] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          %fo4 = arith.addi %f0, %o4 : index
          %kx4 = vector.load %k[%b, %i, %fo4] : memref<?x?x?xf32>, vector<8xf32>
          %vx4 = vector.load %v[%b, %i, %fo4] : memref<?x?x?xf32>, vector<8xf32>
          %kd4 = arith.extf %kx4 : vector<8xf32> to vector<8xf64>
          %vd4 = arith.extf %vx4 : vector<8xf32> to vector<8xf64>
          %nk4 = math.fma %gv, %kd4, %ak4 : vector<8xf64>
          %nv4 = math.fma %gv, %vd4, %av4 : vector<8xf64>
          vector.store %nk4, %pk[%b, %i1, %fo4] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          vector.store %nv4, %pv[%b, %i1, %fo4] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          %fo5 = arith.addi %f0, %o5 : index
          %kx5 = vector.load %k[%b, %i, %fo5] : memref<?x?x?xf32>, vector<8xf32>
          %vx5 = vector.load %v[%b, %i, %fo5] : memref<?x?x?xf32>, vector<8xf32>
          %kd5 = arith.extf %kx5 : vector<8xf32> to vector<8xf64>
          %vd5 = arith.extf %vx5 : vector<8xf32> to vector<8xf64>
          %nk5 = math.fma %gv, %kd5, %ak5 : vector<8xf64>
          %nv5 = math.fma %gv, %vd5, %av5 : vector<8xf64>
          vector.store %nk5, %pk[%b, %i1, %fo5] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          vector.store %nv5, %pv[%b, %i1, %fo5] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          %fo6 = arith.addi %f0, %o6 : index
          %kx6 = vector.load %k[%b, %i, %fo6] : memref<?x?x?xf32>, vector<8xf32>
          %vx6 = vector.load %v[%b, %i, %fo6] : memref<?x?x?xf32>, vector<8xf32>
          %kd6 = arith.extf %kx6 : vector<8xf32> to vector<8xf64>
          %vd6 = arith.extf %vx6 : vector<8xf32> to vector<8xf64>
          %nk6 = math.fma %gv, %kd6, %ak6 : vector<8xf64>
          %nv6 = math.fma %gv, %vd6, %av6 : vector<8xf64>
          vector.store %nk6, %pk[%b, %i1, %fo6] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          vector.store %nv6, %pv[%b, %i1, %fo6] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          %fo7 = arith.addi %f0, %o7 : index
          %kx7 = vector.load %k[%b, %i, %fo7] : memref<?x?x?xf32>, vector<8xf32>
          %vx7 = vector.load %v[%b, %i, %fo7] : memref<?x?x?xf32>, vector<8xf32>
          %kd7 = arith.extf %kx7 : vector<8xf32> to vector<8xf64>
          %vd7 = arith.extf %vx7 : vector<8xf32> to vector<8xf64>
          %nk7 = math.fma %gv, %kd7, %ak7 : vector<8xf64>
          %nv7 = math.fma %gv, %vd7, %av7 : vector<8xf64>
          vector.store %nk7, %pk[%b, %i1, %fo7] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          vector.store %nv7, %pv[%b, %i1, %fo7] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf64>, vector<8xf64>
          scf.yield %nk0, %nk1, %nk2, %nk3, %nk4, %nk5, %nk6, %nk7, %nv0, %nv1, %nv2, %nv3, %nv4, %nv5, %nv6, %nv7 : vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>, vector<8xf64>
        }
      }
    }
    scf.reduce
  }
  return
}

// The mass biases beta log(m + eps) of every raw token (gB [batch, N]) and
// of every compressed-level token (levB [batch, total]).
func.func private @hag_mass_biases(
    %g: memref<?x?xf32>, %levM: memref<?x?xf32>, %gB: memref<?x?xf32>,
    %levB: memref<?x?xf32>, %total: index, %beta: f32, %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %bt = memref.dim %g, %c0 : memref<?x?xf32>
  %n = memref.dim %g, %c1 : memref<?x?xf32>
  scf.parallel (%b, %j) = (%c0, %c0) to (%bt, %n) step (%c1, %c1) {
    %x = memref.load %g[%b, %j] : memref<?x?xf32>
    %xe = arith.addf %x, %eps : f32
    %lx = math.log %xe : f32
    %bx = arith.mulf %beta, %lx : f32
    memref.store %bx, %gB[%b, %j] : memref<?x?xf32>
    scf.reduce
  }
  scf.parallel (%b, %j) = (%c0, %c0) to (%bt, %total) step (%c1, %c1) {
    %x = memref.load %levM[%b, %j] : memref<?x?xf32>
    %xe = arith.addf %x, %eps : f32
    %lx = math.log %xe : f32
    %bx = arith.mulf %beta, %lx : f32
    memref.store %bx, %levB[%b, %j] : memref<?x?xf32>
    scf.reduce
  }
  return
}

func.func private @hag_pyramid_attention(
    %q: memref<?x?x?xf32>, %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>,
    %g: memref<?x?xf32>, %convK: memref<?x?x?x?xf32>,
    %convV: memref<?x?x?x?xf32>, %out: memref<?x?x?xf32>,
    %H: index, %Hkv: index, %d: index, %B: index, %r: index, %L: index,
    %W: index, %T: index, %causal: i1, %selectK: index, %compress: index,
    %beta: f32, %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %one = arith.constant 1.0 : f32
  %zero64 = arith.constant 0.0 : f64
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  %n = memref.dim %q, %c1 : memref<?x?x?xf32>
  %kvD = arith.muli %Hkv, %d : index

  // ---- 1. Compressed levels 2 .. L-1, packed one after the other. --------
  // total = sum_{l=2}^{L-1} n_l (at least 1 so that the buffers exist).
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

  // ---- 2. f64 prefix sums of g*k, g*v and g (summaries). ----------------
  %n1 = arith.addi %n, %c1 : index
  %pk = memref.alloc(%bt, %n1, %kvD) {alignment = 64 : i64} : memref<?x?x?xf64>
  %pv = memref.alloc(%bt, %n1, %kvD) {alignment = 64 : i64} : memref<?x?x?xf64>
  %pg = memref.alloc(%bt, %n1) : memref<?x?xf64>
  func.call @hag_prefix_sums(%k, %v, %g, %pk, %pv, %pg)
      : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>) -> ()

  // ---- 3. Mass biases beta log(m + eps), once per key. --------------------
  %gB = memref.alloc(%bt, %n) : memref<?x?xf32>
  %levB = memref.alloc(%bt, %alloc) : memref<?x?xf32>
  func.call @hag_mass_biases(%g, %levM, %gB, %levB, %total#0, %beta, %eps)
      : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, index, f32, f32) -> ()

  // ---- 4. Attention per (batch, query block, head). ---------------------
  // Heads innermost: a thread runs a query block's heads one after the
  // other, and they read the same rows of q, k, v, the levels and the
  // prefix sums (each head its own d columns), so the rows' other columns
  // are still in L2 when the next head needs them (-11% at N = 16K and 64K
  // on 2 threads, against heads outside the query blocks).
  %blocks = func.call @hag_ceil_div(%n, %B) : (index, index) -> index
  %dI64 = arith.index_cast %d : index to i64
  %dF = arith.sitofp %dI64 : i64 to f32
  %sqrtD = math.sqrt %dF : f32
  %scale = arith.divf %one, %sqrtD : f32
  scf.parallel (%b, %qb, %h) = (%c0, %c0, %c0) to (%bt, %blocks, %H) step (%c1, %c1, %c1) {
    func.call @hag_attend_block(%q, %k, %v, %g, %levK, %levV, %levB, %gB, %pk, %pv, %pg, %out,
        %b, %h, %qb, %n, %H, %Hkv, %d, %B, %r, %L, %W, %T, %causal, %selectK,
        %beta, %eps, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
           memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?xf32>,
           memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>, memref<?x?x?xf32>,
           index, index, index, index, index, index, index, index, index, index, index, index,
           i1, index, f32, f32, f32) -> ()
    scf.reduce
  }
  return
}

//===----------------------------------------------------------------------===//
// Incremental decoding (spec section 10)
//===----------------------------------------------------------------------===//
//
// @hag_pyramid_decode appends raw token `pos` of every batch row to the
// layer's cache and computes its attention output. Cache layout (rows of
// cK/cV [batch, R, Hkv*d]; ::hag::DecodeCacheLayout): raw tokens [0, S),
// levels 2 .. L-1 at their max_seq lengths ceil(S / sigma_l), one after the
// other, the query block's T summary tokens, its select_k picks. aux
// [batch, 2R]: the mass bias of every row, then the masses (g for raw rows).
// pk, pv [batch, S + 1, Hkv*d] and pg [batch, S + 1]: f64 running prefix
// sums. Levels, summaries and select_k picks come from the forward kernel's
// own functions (@hag_level_token, @hag_summary_tokens, @hag_select_tokens),
// so the keys are the forward's; the one-query attention
// (@hag_attend_range) sums them in another order (online softmax in 16-key
// tiles), which changes the output in the last bits only.

// The summary tokens and select_k picks of the query block starting at the
// current position, for batch row b (a function of its own for its stack
// scratch, see @hag_attend_block).
func.func private @hag_decode_block_context(
    %cK: memref<?x?x?xf32>, %cV: memref<?x?x?xf32>, %aux: memref<?x?xf32>,
    %pk: memref<?x?x?xf64>, %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>,
    %b: index, %n: index, %a1: index, %prefix: index, %tp: index,
    %kp: index, %kvD: index, %R: index, %sumOff: index, %selOff: index,
    %beta: f32, %eps: f32) attributes {no_inline} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %true = arith.constant true
  func.call @hag_summary_tokens(%pk, %pv, %pg, %b, %c0, %prefix, %tp, %kvD, %beta, %eps, %cK, %cV, %aux, %b, %sumOff, %c0, %sumOff)
      : (memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>, index, index, index, index, index, f32, f32,
         memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index) -> ()
  %kAlloc = arith.maxui %kp, %c1 : index
  %picked = memref.alloca(%kAlloc) : memref<?xindex>
  func.call @hag_select_tokens(%aux, %R, %aux, %cK, %cV, %b, %c0, %kvD, %a1, %n, %n, %true, %kp, %picked, %cK, %cV, %aux, %b, %selOff, %c0, %selOff)
      : (memref<?x?xf32>, index, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index,
         index, index, index, i1, index, memref<?xindex>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
         index, index, index, index) -> ()
  return
}

// The new token's attention for batch row b and head h: level 1
// [a_1, pos + 1), every compressed level's window, the block's summary
// tokens and select_k picks, under one online softmax.
func.func private @hag_decode_attend(
    %q: memref<?x?x?xf32>, %cK: memref<?x?x?xf32>, %cV: memref<?x?x?xf32>,
    %aux: memref<?x?xf32>, %out: memref<?x?x?xf32>, %b: index, %h: index,
    %pos: index, %a1: index, %S: index, %H: index, %Hkv: index, %d: index,
    %r: index, %L: index, %W: index, %tp: index, %kp: index, %sumOff: index,
    %selOff: index, %scale: f32) attributes {no_inline} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %true = arith.constant true
  %hk = arith.muli %h, %Hkv : index
  %kvh = arith.divui %hk, %H : index
  %qoff = arith.muli %h, %d : index
  %koff = arith.muli %kvh, %d : index
  %mS = memref.alloca(%c1) : memref<?xf32>
  %lS = memref.alloca(%c1) : memref<?xf32>
  %acc = memref.alloca(%c1, %d) : memref<?x?xf32>
  %kt = memref.alloca(%d) : memref<?x16xf32>
  %pt = memref.alloca() : memref<16xf32>
  memref.store %ninf, %mS[%c0] : memref<?xf32>
  memref.store %zero, %lS[%c0] : memref<?xf32>
  scf.for %x = %c0 to %d step %c1 {
    memref.store %zero, %acc[%c0, %x] : memref<?x?xf32>
  }
  // Level 1: raw [a_1, pos] (every key is at or before the query).
  %n = arith.addi %pos, %c1 : index
  func.call @hag_attend_range(%q, %b, %qoff, %cK, %cV, %b, %a1, %n, %koff, %aux, %b, %c0, %d, %scale, %mS, %lS, %acc, %kt, %pt)
      : (memref<?x?x?xf32>, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<16xf32>) -> ()
  // Compressed levels: the left windows, at each level's rows.
  scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1, %off = %S, %nMaxPrev = %S) -> (index, index, index) {
    %nMax = func.call @hag_ceil_div(%nMaxPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%a, %c0, %l, %L, %r, %W, %nMax, %true)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %la = arith.addi %off, %w#0 : index
    %lc = arith.addi %off, %w#1 : index
    func.call @hag_attend_range(%q, %b, %qoff, %cK, %cV, %b, %la, %lc, %koff, %aux, %b, %c0, %d, %scale, %mS, %lS, %acc, %kt, %pt)
        : (memref<?x?x?xf32>, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<16xf32>) -> ()
    %offNext = arith.addi %off, %nMax : index
    scf.yield %w#0, %offNext, %nMax : index, index, index
  }
  // Summary tokens, then the select_k tokens.
  %sEnd = arith.addi %sumOff, %tp : index
  func.call @hag_attend_range(%q, %b, %qoff, %cK, %cV, %b, %sumOff, %sEnd, %koff, %aux, %b, %c0, %d, %scale, %mS, %lS, %acc, %kt, %pt)
      : (memref<?x?x?xf32>, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<16xf32>) -> ()
  %kEnd = arith.addi %selOff, %kp : index
  func.call @hag_attend_range(%q, %b, %qoff, %cK, %cV, %b, %selOff, %kEnd, %koff, %aux, %b, %c0, %d, %scale, %mS, %lS, %acc, %kt, %pt)
      : (memref<?x?x?xf32>, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<16xf32>) -> ()
  %l = memref.load %lS[%c0] : memref<?xf32>
  %inv = arith.divf %one, %l : f32
  scf.for %x = %c0 to %d step %c1 {
    %a = memref.load %acc[%c0, %x] : memref<?x?xf32>
    %o = arith.mulf %a, %inv : f32
    %col = arith.addi %qoff, %x : index
    memref.store %o, %out[%b, %c0, %col] : memref<?x?x?xf32>
  }
  return
}

func.func private @hag_pyramid_decode(
    %q: memref<?x?x?xf32>, %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>,
    %g: memref<?x?xf32>, %convK: memref<?x?x?x?xf32>,
    %convV: memref<?x?x?x?xf32>, %out: memref<?x?x?xf32>,
    %cK: memref<?x?x?xf32>, %cV: memref<?x?x?xf32>, %aux: memref<?x?xf32>,
    %pk: memref<?x?x?xf64>, %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>,
    %pos: index, %S: index,
    %H: index, %Hkv: index, %d: index, %B: index, %r: index, %L: index,
    %W: index, %T: index, %causal: i1, %selectK: index, %compress: index,
    %beta: f32, %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %one = arith.constant 1.0 : f32
  %true = arith.constant true
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  %kvD = arith.muli %Hkv, %d : index
  %n = arith.addi %pos, %c1 : index
  // The cache's rows (as ::hag::DecodeCacheLayout).
  %levRows:2 = scf.for %l = %c2 to %L step %c1 iter_args(%acc = %c0, %nPrev = %S) -> (index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %acc2 = arith.addi %acc, %nl : index
    scf.yield %acc2, %nl : index, index
  }
  %sumOff = arith.addi %S, %levRows#0 : index
  %selOff = arith.addi %sumOff, %T : index
  %R = arith.addi %selOff, %selectK : index

  // ---- 1. Append the token; rebuild the token of every level holding it. --
  scf.parallel (%b) = (%c0) to (%bt) step (%c1) {
    %gi = memref.load %g[%b, %c0] : memref<?x?xf32>
    %massCol = arith.addi %R, %pos : index
    memref.store %gi, %aux[%b, %massCol] : memref<?x?xf32>
    %ge = arith.addf %gi, %eps : f32
    %gl = math.log %ge : f32
    %gb = arith.mulf %beta, %gl : f32
    memref.store %gb, %aux[%b, %pos] : memref<?x?xf32>
    %gd = arith.extf %gi : f32 to f64
    %pgi = memref.load %pg[%b, %pos] : memref<?x?xf64>
    %pgn = arith.addf %pgi, %gd : f64
    memref.store %pgn, %pg[%b, %n] : memref<?x?xf64>
    scf.for %f = %c0 to %kvD step %c1 {
      %kx = memref.load %k[%b, %c0, %f] : memref<?x?x?xf32>
      %vx = memref.load %v[%b, %c0, %f] : memref<?x?x?xf32>
      memref.store %kx, %cK[%b, %pos, %f] : memref<?x?x?xf32>
      memref.store %vx, %cV[%b, %pos, %f] : memref<?x?x?xf32>
      %kd = arith.extf %kx : f32 to f64
      %vd = arith.extf %vx : f32 to f64
      %pki = memref.load %pk[%b, %pos, %f] : memref<?x?x?xf64>
      %pvi = memref.load %pv[%b, %pos, %f] : memref<?x?x?xf64>
      %pkn = math.fma %gd, %kd, %pki : f64
      %pvn = math.fma %gd, %vd, %pvi : f64
      memref.store %pkn, %pk[%b, %n, %f] : memref<?x?x?xf64>
      memref.store %pvn, %pv[%b, %n, %f] : memref<?x?x?xf64>
    }
    // Level l's last token j = n_l - 1 (finished or partial) from its
    // children one level down, as the forward builds it for N = pos + 1.
    scf.for %l = %c2 to %L step %c1 iter_args(%offPrev = %c0, %off = %S, %nPrev = %n, %nMaxPrev = %S) -> (index, index, index, index) {
      %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
      %j = arith.subi %nl, %c1 : index
      %fromRaw = arith.cmpi eq, %l, %c2 : index
      %lc = arith.subi %l, %c2 : index
      %dst = arith.addi %off, %j : index
      %srcM = arith.addi %R, %offPrev : index
      %dstM = arith.addi %R, %dst : index
      %mass = func.call @hag_level_token(%cK, %cV, %aux, %offPrev, %srcM, %fromRaw,
          %cK, %cV, %aux, %dst, %dstM, %b, %j, %nPrev, %r, %kvD, %d, %lc,
          %convK, %convV, %compress, %eps)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, i1,
             memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index,
             index, index, index, index, index, index, index,
             memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, index, f32) -> f32
      %me = arith.addf %mass, %eps : f32
      %ml = math.log %me : f32
      %mb = arith.mulf %beta, %ml : f32
      memref.store %mb, %aux[%b, %dst] : memref<?x?xf32>
      %nMax = func.call @hag_ceil_div(%nMaxPrev, %r) : (index, index) -> index
      %offNext = arith.addi %off, %nMax : index
      scf.yield %off, %offNext, %nl, %nMax : index, index, index, index
    }
    scf.reduce
  }

  // ---- 2. The query block's windows; its context at its first token. -----
  %qb = arith.divui %pos, %B : index
  %q0 = arith.muli %qb, %B : index
  %a1r = arith.subi %q0, %B : index
  %a1 = arith.maxsi %a1r, %c0 : index
  %aLast = scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1) -> (index) {
    %w:4 = func.call @hag_level_window(%a, %c0, %l, %L, %r, %W, %S, %true)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    scf.yield %w#0 : index
  }
  %Lm2 = arith.subi %L, %c2 : index
  %sigma = scf.for %x = %c0 to %Lm2 step %c1 iter_args(%s = %c1) -> (index) {
    %s2 = arith.muli %s, %r : index
    scf.yield %s2 : index
  }
  %prefix = arith.muli %aLast, %sigma : index
  %tp = arith.minui %T, %prefix : index
  %kp = arith.minui %selectK, %a1 : index
  %blockStart = arith.cmpi eq, %pos, %q0 : index
  scf.if %blockStart {
    scf.parallel (%b) = (%c0) to (%bt) step (%c1) {
      func.call @hag_decode_block_context(%cK, %cV, %aux, %pk, %pv, %pg, %b, %n, %a1, %prefix, %tp, %kp, %kvD, %R, %sumOff, %selOff, %beta, %eps)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>,
             index, index, index, index, index, index, index, index, index, index, f32, f32) -> ()
      scf.reduce
    }
  }

  // ---- 3. Attention of the new token per (batch, head). ----------------
  %dI64 = arith.index_cast %d : index to i64
  %dF = arith.sitofp %dI64 : i64 to f32
  %sqrtD = math.sqrt %dF : f32
  %scale = arith.divf %one, %sqrtD : f32
  scf.parallel (%b, %h) = (%c0, %c0) to (%bt, %H) step (%c1, %c1) {
    func.call @hag_decode_attend(%q, %cK, %cV, %aux, %out, %b, %h, %pos, %a1, %S, %H, %Hkv, %d, %r, %L, %W, %tp, %kp, %sumOff, %selOff, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>,
           index, index, index, index, index, index, index, index, index, index, index, index, index, index, index, f32) -> ()
    scf.reduce
  }
  return
}
