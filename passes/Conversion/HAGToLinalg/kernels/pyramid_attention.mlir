// The CPU pyramid-attention kernel (spec sections 3-5 and 12), on memrefs.
//
// hag-lower-to-linalg clones these functions into the module and calls
// @hag_pyramid_attention with the layer's configuration as constants; after
// inlining, the constants fold into the loop bounds. One call:
//   1. builds every compressed level once from the level below (exact gated
//      mean via S_c = (m_c + eps) K_c for compressed children; max; conv),
//   2. forms f64 running prefix sums of g*k, g*v and g for the summaries,
//   3. runs every (batch, head, query block) in parallel; per block it forms
//      the T' summary tokens once and picks the select_k tokens once, and
//      per query it streams the keys of every window through one online
//      softmax (no N x N buffer, no gathered copies of keys).
//
// @hag_pyramid_decode is one incremental-decoding step on per-layer caches
// (spec section 10, at the end of this file); it shares the level, summary,
// select_k and attention code with the forward kernel.
//
// Workspace buffers are freed by the buffer-deallocation pipeline that
// runs after inlining; per-block scratch is stack-allocated in
// @hag_attend_block.
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
  scf.for %f = %c0 to %kvD step %c1 {
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

// Streams the keys [j0, j1) of one source through the online softmax of the
// block's nq queries, 16 keys at a time (FlashAttention-style tiles):
//   S = Q K_tile^T * scale + bias        one vector<16> per query row,
//   m' = max(m, max S), l = l e^(m-m') + sum e^(S-m'),
//   acc = acc e^(m-m') + e^(S-m') V_tile.
// The tile's keys are transposed into kt [d, 16] once and reused by every
// query. `diag` masks keys j > query position (level 1 of causal blocks):
// key j and query q0 + r are raw positions there. Lanes past j1 are masked.
func.func private @hag_attend_range(
    %q: memref<?x?x?xf32>, %b: index, %q0: index, %nq: index, %qoff: index,
    %keys: memref<?x?x?xf32>, %vals: memref<?x?x?xf32>, %kb: index,
    %j0: index, %j1: index, %koff: index,
    %bias: memref<?x?xf32>, %bb: index, %boff: index, %diag: i1,
    %d: index, %scale: f32,
    %mS: memref<?xf32>, %lS: memref<?xf32>, %acc: memref<?x?xf32>,
    %kt: memref<?x16xf32>, %pt4: memref<4x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %ninfV = arith.constant dense<0xFF800000> : vector<16xf32>
  %zv = arith.constant dense<0.0> : vector<16xf32>
  %scaleV = vector.broadcast %scale : f32 to vector<16xf32>
  %lanes = vector.step : vector<16xindex>
  %cR = arith.constant 4 : index
  %o0 = arith.constant 0 : index
  %o1 = arith.constant 1 : index
  %o2 = arith.constant 2 : index
  %o3 = arith.constant 3 : index
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
    %diagV = vector.broadcast %diag : i1 to vector<16xi1>
    // Rows in groups of 4: each kt row and each V chunk is loaded once per
    // group. Branch-free: a row with no key in this tile (all masked) uses
    // m' = 0 for the exponentials, which makes its p and corr 0.
    %nqR0 = arith.divui %nq, %cR : index
    %nqR = arith.muli %nqR0, %cR : index
    scf.for %rb = %c0 to %nqR step %cR {
      %r0 = arith.addi %rb, %o0 : index
      %qi0 = arith.addi %q0, %r0 : index
      %r1 = arith.addi %rb, %o1 : index
      %qi1 = arith.addi %q0, %r1 : index
      %r2 = arith.addi %rb, %o2 : index
      %qi2 = arith.addi %q0, %r2 : index
      %r3 = arith.addi %rb, %o3 : index
      %qi3 = arith.addi %q0, %r3 : index
      %sAcc:4 = scf.for %x = %c0 to %d step %c1 iter_args(%sa0 = %zv, %sa1 = %zv, %sa2 = %zv, %sa3 = %zv) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
        %f = arith.addi %qoff, %x : index
        %ktx = vector.load %kt[%x, %c0] : memref<?x16xf32>, vector<16xf32>
        %qx0 = memref.load %q[%b, %qi0, %f] : memref<?x?x?xf32>
        %qxV0 = vector.broadcast %qx0 : f32 to vector<16xf32>
        %sn0 = vector.fma %qxV0, %ktx, %sa0 : vector<16xf32>
        %qx1 = memref.load %q[%b, %qi1, %f] : memref<?x?x?xf32>
        %qxV1 = vector.broadcast %qx1 : f32 to vector<16xf32>
        %sn1 = vector.fma %qxV1, %ktx, %sa1 : vector<16xf32>
        %qx2 = memref.load %q[%b, %qi2, %f] : memref<?x?x?xf32>
        %qxV2 = vector.broadcast %qx2 : f32 to vector<16xf32>
        %sn2 = vector.fma %qxV2, %ktx, %sa2 : vector<16xf32>
        %qx3 = memref.load %q[%b, %qi3, %f] : memref<?x?x?xf32>
        %qxV3 = vector.broadcast %qx3 : f32 to vector<16xf32>
        %sn3 = vector.fma %qxV3, %ktx, %sa3 : vector<16xf32>
        scf.yield %sn0, %sn1, %sn2, %sn3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
      }
      %sc0 = arith.mulf %sAcc#0, %scaleV : vector<16xf32>
      %sb0 = arith.addf %sc0, %biasV : vector<16xf32>
      %qiV0 = vector.broadcast %qi0 : index to vector<16xindex>
      %fut0 = arith.cmpi ugt, %jV, %qiV0 : vector<16xindex>
      %msk0 = arith.andi %fut0, %diagV : vector<16xi1>
      %s0 = arith.select %msk0, %ninfV, %sb0 : vector<16xi1>, vector<16xf32>
      %tmax0 = vector.reduction <maximumf>, %s0 : vector<16xf32> into f32
      %mOld0 = memref.load %mS[%r0] : memref<?xf32>
      %mNew0 = arith.maximumf %mOld0, %tmax0 : f32
      %none0 = arith.cmpf oeq, %mNew0, %ninf : f32
      %mSafe0 = arith.select %none0, %zero, %mNew0 : f32
      %dm0 = arith.subf %mOld0, %mSafe0 : f32
      %corr0 = math.exp %dm0 : f32
      %mSafeV0 = vector.broadcast %mSafe0 : f32 to vector<16xf32>
      %smn0 = arith.subf %s0, %mSafeV0 : vector<16xf32>
      %p0 = math.exp %smn0 : vector<16xf32>
      %psum0 = vector.reduction <add>, %p0 : vector<16xf32> into f32
      %lOld0 = memref.load %lS[%r0] : memref<?xf32>
      %lNew0 = math.fma %lOld0, %corr0, %psum0 : f32
      memref.store %lNew0, %lS[%r0] : memref<?xf32>
      memref.store %mNew0, %mS[%r0] : memref<?xf32>
      vector.store %p0, %pt4[%o0, %c0] : memref<4x16xf32>, vector<16xf32>
      %corrV0 = vector.broadcast %corr0 : f32 to vector<16xf32>
      %sc1 = arith.mulf %sAcc#1, %scaleV : vector<16xf32>
      %sb1 = arith.addf %sc1, %biasV : vector<16xf32>
      %qiV1 = vector.broadcast %qi1 : index to vector<16xindex>
      %fut1 = arith.cmpi ugt, %jV, %qiV1 : vector<16xindex>
      %msk1 = arith.andi %fut1, %diagV : vector<16xi1>
      %s1 = arith.select %msk1, %ninfV, %sb1 : vector<16xi1>, vector<16xf32>
      %tmax1 = vector.reduction <maximumf>, %s1 : vector<16xf32> into f32
      %mOld1 = memref.load %mS[%r1] : memref<?xf32>
      %mNew1 = arith.maximumf %mOld1, %tmax1 : f32
      %none1 = arith.cmpf oeq, %mNew1, %ninf : f32
      %mSafe1 = arith.select %none1, %zero, %mNew1 : f32
      %dm1 = arith.subf %mOld1, %mSafe1 : f32
      %corr1 = math.exp %dm1 : f32
      %mSafeV1 = vector.broadcast %mSafe1 : f32 to vector<16xf32>
      %smn1 = arith.subf %s1, %mSafeV1 : vector<16xf32>
      %p1 = math.exp %smn1 : vector<16xf32>
      %psum1 = vector.reduction <add>, %p1 : vector<16xf32> into f32
      %lOld1 = memref.load %lS[%r1] : memref<?xf32>
      %lNew1 = math.fma %lOld1, %corr1, %psum1 : f32
      memref.store %lNew1, %lS[%r1] : memref<?xf32>
      memref.store %mNew1, %mS[%r1] : memref<?xf32>
      vector.store %p1, %pt4[%o1, %c0] : memref<4x16xf32>, vector<16xf32>
      %corrV1 = vector.broadcast %corr1 : f32 to vector<16xf32>
      %sc2 = arith.mulf %sAcc#2, %scaleV : vector<16xf32>
      %sb2 = arith.addf %sc2, %biasV : vector<16xf32>
      %qiV2 = vector.broadcast %qi2 : index to vector<16xindex>
      %fut2 = arith.cmpi ugt, %jV, %qiV2 : vector<16xindex>
      %msk2 = arith.andi %fut2, %diagV : vector<16xi1>
      %s2 = arith.select %msk2, %ninfV, %sb2 : vector<16xi1>, vector<16xf32>
      %tmax2 = vector.reduction <maximumf>, %s2 : vector<16xf32> into f32
      %mOld2 = memref.load %mS[%r2] : memref<?xf32>
      %mNew2 = arith.maximumf %mOld2, %tmax2 : f32
      %none2 = arith.cmpf oeq, %mNew2, %ninf : f32
      %mSafe2 = arith.select %none2, %zero, %mNew2 : f32
      %dm2 = arith.subf %mOld2, %mSafe2 : f32
      %corr2 = math.exp %dm2 : f32
      %mSafeV2 = vector.broadcast %mSafe2 : f32 to vector<16xf32>
      %smn2 = arith.subf %s2, %mSafeV2 : vector<16xf32>
      %p2 = math.exp %smn2 : vector<16xf32>
      %psum2 = vector.reduction <add>, %p2 : vector<16xf32> into f32
      %lOld2 = memref.load %lS[%r2] : memref<?xf32>
      %lNew2 = math.fma %lOld2, %corr2, %psum2 : f32
      memref.store %lNew2, %lS[%r2] : memref<?xf32>
      memref.store %mNew2, %mS[%r2] : memref<?xf32>
      vector.store %p2, %pt4[%o2, %c0] : memref<4x16xf32>, vector<16xf32>
      %corrV2 = vector.broadcast %corr2 : f32 to vector<16xf32>
      %sc3 = arith.mulf %sAcc#3, %scaleV : vector<16xf32>
      %sb3 = arith.addf %sc3, %biasV : vector<16xf32>
      %qiV3 = vector.broadcast %qi3 : index to vector<16xindex>
      %fut3 = arith.cmpi ugt, %jV, %qiV3 : vector<16xindex>
      %msk3 = arith.andi %fut3, %diagV : vector<16xi1>
      %s3 = arith.select %msk3, %ninfV, %sb3 : vector<16xi1>, vector<16xf32>
      %tmax3 = vector.reduction <maximumf>, %s3 : vector<16xf32> into f32
      %mOld3 = memref.load %mS[%r3] : memref<?xf32>
      %mNew3 = arith.maximumf %mOld3, %tmax3 : f32
      %none3 = arith.cmpf oeq, %mNew3, %ninf : f32
      %mSafe3 = arith.select %none3, %zero, %mNew3 : f32
      %dm3 = arith.subf %mOld3, %mSafe3 : f32
      %corr3 = math.exp %dm3 : f32
      %mSafeV3 = vector.broadcast %mSafe3 : f32 to vector<16xf32>
      %smn3 = arith.subf %s3, %mSafeV3 : vector<16xf32>
      %p3 = math.exp %smn3 : vector<16xf32>
      %psum3 = vector.reduction <add>, %p3 : vector<16xf32> into f32
      %lOld3 = memref.load %lS[%r3] : memref<?xf32>
      %lNew3 = math.fma %lOld3, %corr3, %psum3 : f32
      memref.store %lNew3, %lS[%r3] : memref<?xf32>
      memref.store %mNew3, %mS[%r3] : memref<?xf32>
      vector.store %p3, %pt4[%o3, %c0] : memref<4x16xf32>, vector<16xf32>
      %corrV3 = vector.broadcast %corr3 : f32 to vector<16xf32>
      scf.for %x = %c0 to %d16 step %c16 {
        %f = arith.addi %koff, %x : index
        %a00 = vector.load %acc[%r0, %x] : memref<?x?xf32>, vector<16xf32>
        %a01 = arith.mulf %a00, %corrV0 : vector<16xf32>
        %a10 = vector.load %acc[%r1, %x] : memref<?x?xf32>, vector<16xf32>
        %a11 = arith.mulf %a10, %corrV1 : vector<16xf32>
        %a20 = vector.load %acc[%r2, %x] : memref<?x?xf32>, vector<16xf32>
        %a21 = arith.mulf %a20, %corrV2 : vector<16xf32>
        %a30 = vector.load %acc[%r3, %x] : memref<?x?xf32>, vector<16xf32>
        %a31 = arith.mulf %a30, %corrV3 : vector<16xf32>
        %an:4 = scf.for %c = %c0 to %nk step %c1 iter_args(%aa0 = %a01, %aa1 = %a11, %aa2 = %a21, %aa3 = %a31) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
          %jc = arith.addi %t0, %c : index
          %vv = vector.load %vals[%kb, %jc, %f] : memref<?x?x?xf32>, vector<16xf32>
          %pc0 = memref.load %pt4[%o0, %c] : memref<4x16xf32>
          %pcV0 = vector.broadcast %pc0 : f32 to vector<16xf32>
          %ab0 = vector.fma %pcV0, %vv, %aa0 : vector<16xf32>
          %pc1 = memref.load %pt4[%o1, %c] : memref<4x16xf32>
          %pcV1 = vector.broadcast %pc1 : f32 to vector<16xf32>
          %ab1 = vector.fma %pcV1, %vv, %aa1 : vector<16xf32>
          %pc2 = memref.load %pt4[%o2, %c] : memref<4x16xf32>
          %pcV2 = vector.broadcast %pc2 : f32 to vector<16xf32>
          %ab2 = vector.fma %pcV2, %vv, %aa2 : vector<16xf32>
          %pc3 = memref.load %pt4[%o3, %c] : memref<4x16xf32>
          %pcV3 = vector.broadcast %pc3 : f32 to vector<16xf32>
          %ab3 = vector.fma %pcV3, %vv, %aa3 : vector<16xf32>
          scf.yield %ab0, %ab1, %ab2, %ab3 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
        }
        vector.store %an#0, %acc[%r0, %x] : memref<?x?xf32>, vector<16xf32>
        vector.store %an#1, %acc[%r1, %x] : memref<?x?xf32>, vector<16xf32>
        vector.store %an#2, %acc[%r2, %x] : memref<?x?xf32>, vector<16xf32>
        vector.store %an#3, %acc[%r3, %x] : memref<?x?xf32>, vector<16xf32>
      }
      scf.for %x = %d16 to %d step %c1 {
        %f = arith.addi %koff, %x : index
        %b00 = memref.load %acc[%r0, %x] : memref<?x?xf32>
        %b01 = arith.mulf %b00, %corr0 : f32
        %b10 = memref.load %acc[%r1, %x] : memref<?x?xf32>
        %b11 = arith.mulf %b10, %corr1 : f32
        %b20 = memref.load %acc[%r2, %x] : memref<?x?xf32>
        %b21 = arith.mulf %b20, %corr2 : f32
        %b30 = memref.load %acc[%r3, %x] : memref<?x?xf32>
        %b31 = arith.mulf %b30, %corr3 : f32
        %bn:4 = scf.for %c = %c0 to %nk step %c1 iter_args(%bb0 = %b01, %bb1 = %b11, %bb2 = %b21, %bb3 = %b31) -> (f32, f32, f32, f32) {
          %jc = arith.addi %t0, %c : index
          %vv = memref.load %vals[%kb, %jc, %f] : memref<?x?x?xf32>
          %pc0 = memref.load %pt4[%o0, %c] : memref<4x16xf32>
          %bc0 = math.fma %pc0, %vv, %bb0 : f32
          %pc1 = memref.load %pt4[%o1, %c] : memref<4x16xf32>
          %bc1 = math.fma %pc1, %vv, %bb1 : f32
          %pc2 = memref.load %pt4[%o2, %c] : memref<4x16xf32>
          %bc2 = math.fma %pc2, %vv, %bb2 : f32
          %pc3 = memref.load %pt4[%o3, %c] : memref<4x16xf32>
          %bc3 = math.fma %pc3, %vv, %bb3 : f32
          scf.yield %bc0, %bc1, %bc2, %bc3 : f32, f32, f32, f32
        }
        memref.store %bn#0, %acc[%r0, %x] : memref<?x?xf32>
        memref.store %bn#1, %acc[%r1, %x] : memref<?x?xf32>
        memref.store %bn#2, %acc[%r2, %x] : memref<?x?xf32>
        memref.store %bn#3, %acc[%r3, %x] : memref<?x?xf32>
      }
    }
    // The remaining rows one at a time.
    scf.for %r = %nqR to %nq step %c1 {
      %qi = arith.addi %q0, %r : index
      // Scores of query r against the 16 keys.
      %sAcc = scf.for %x = %c0 to %d step %c1 iter_args(%sa = %zv) -> (vector<16xf32>) {
        %f = arith.addi %qoff, %x : index
        %qx = memref.load %q[%b, %qi, %f] : memref<?x?x?xf32>
        %qxV = vector.broadcast %qx : f32 to vector<16xf32>
        %ktx = vector.load %kt[%x, %c0] : memref<?x16xf32>, vector<16xf32>
        %sa2 = vector.fma %qxV, %ktx, %sa : vector<16xf32>
        scf.yield %sa2 : vector<16xf32>
      }
      %sc = arith.mulf %sAcc, %scaleV : vector<16xf32>
      %sb = arith.addf %sc, %biasV : vector<16xf32>
      // Causal mask on the diagonal: key j > query i is not a key.
      %qiV = vector.broadcast %qi : index to vector<16xindex>
      %future = arith.cmpi ugt, %jV, %qiV : vector<16xindex>
      %masked = arith.andi %future, %diagV : vector<16xi1>
      %s = arith.select %masked, %ninfV, %sb : vector<16xi1>, vector<16xf32>
      %tileMax = vector.reduction <maximumf>, %s : vector<16xf32> into f32
      %mOld = memref.load %mS[%r] : memref<?xf32>
      %mNew = arith.maximumf %mOld, %tileMax : f32
      %anyKey = arith.cmpf ogt, %mNew, %ninf : f32
      scf.if %anyKey {
        %dm = arith.subf %mOld, %mNew : f32
        %corr = math.exp %dm : f32
        %mNewV = vector.broadcast %mNew : f32 to vector<16xf32>
        %sm = arith.subf %s, %mNewV : vector<16xf32>
        %p = math.exp %sm : vector<16xf32>
        %pSum = vector.reduction <add>, %p : vector<16xf32> into f32
        %lOld = memref.load %lS[%r] : memref<?xf32>
        %lScaled = arith.mulf %lOld, %corr : f32
        %lNew = arith.addf %lScaled, %pSum : f32
        memref.store %lNew, %lS[%r] : memref<?xf32>
        memref.store %mNew, %mS[%r] : memref<?xf32>
        vector.store %p, %pt4[%c0, %c0] : memref<4x16xf32>, vector<16xf32>
        // acc[r] = acc[r] * corr + sum_c p[c] V[t0 + c].
        %corrV = vector.broadcast %corr : f32 to vector<16xf32>
        scf.for %x = %c0 to %d16 step %c16 {
          %a0 = vector.load %acc[%r, %x] : memref<?x?xf32>, vector<16xf32>
          %a1 = arith.mulf %a0, %corrV : vector<16xf32>
          %f = arith.addi %koff, %x : index
          %a2 = scf.for %c = %c0 to %nk step %c1 iter_args(%aa = %a1) -> (vector<16xf32>) {
            %jc = arith.addi %t0, %c : index
            %pc = memref.load %pt4[%c0, %c] : memref<4x16xf32>
            %pcV = vector.broadcast %pc : f32 to vector<16xf32>
            %vv = vector.load %vals[%kb, %jc, %f] : memref<?x?x?xf32>, vector<16xf32>
            %aa2 = vector.fma %pcV, %vv, %aa : vector<16xf32>
            scf.yield %aa2 : vector<16xf32>
          }
          vector.store %a2, %acc[%r, %x] : memref<?x?xf32>, vector<16xf32>
        }
        scf.for %x = %d16 to %d step %c1 {
          %a0 = memref.load %acc[%r, %x] : memref<?x?xf32>
          %a1 = arith.mulf %a0, %corr : f32
          %f = arith.addi %koff, %x : index
          %a2 = scf.for %c = %c0 to %nk step %c1 iter_args(%aa = %a1) -> (f32) {
            %jc = arith.addi %t0, %c : index
            %pc = memref.load %pt4[%c0, %c] : memref<4x16xf32>
            %vv = memref.load %vals[%kb, %jc, %f] : memref<?x?x?xf32>
            %aa2 = math.fma %pc, %vv, %aa : f32
            scf.yield %aa2 : f32
          }
          memref.store %a2, %acc[%r, %x] : memref<?x?xf32>
        }
      }
    }
  }
  return
}

// The T' summary tokens over the raw prefix [0, prefix) for the features
// [koff, koff + d): gated means of the floor-rule segments (spec 4), from the
// f64 prefix sums, and their mass biases beta log(m + eps). Token t goes to
// row drow + t, columns dcol .. dcol + d of dstK/dstV (batch index db) and
// its bias to dstB[db, dbcol + t].
func.func private @hag_summary_tokens(
    %pk: memref<?x?x?xf64>, %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>,
    %b: index, %koff: index, %prefix: index, %tp: index, %d: index,
    %beta: f32, %eps: f32, %dstK: memref<?x?x?xf32>, %dstV: memref<?x?x?xf32>,
    %dstB: memref<?x?xf32>, %db: index, %drow: index, %dcol: index,
    %dbcol: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %epsF64 = arith.extf %eps : f32 to f64
  scf.for %t = %c0 to %tp step %c1 {
    %tP = arith.muli %t, %prefix : index
    %s0 = arith.divui %tP, %tp : index
    %t1 = arith.addi %t, %c1 : index
    %t1P = arith.muli %t1, %prefix : index
    %s1 = arith.divui %t1P, %tp : index
    %g1 = memref.load %pg[%b, %s1] : memref<?x?xf64>
    %g0 = memref.load %pg[%b, %s0] : memref<?x?xf64>
    %mass = arith.subf %g1, %g0 : f64
    %den = arith.addf %mass, %epsF64 : f64
    %massF = arith.truncf %mass : f64 to f32
    %massE = arith.addf %massF, %eps : f32
    %massLog = math.log %massE : f32
    %massBias = arith.mulf %beta, %massLog : f32
    %bcol = arith.addi %dbcol, %t : index
    memref.store %massBias, %dstB[%db, %bcol] : memref<?x?xf32>
    %row = arith.addi %drow, %t : index
    scf.for %x = %c0 to %d step %c1 {
      %f = arith.addi %koff, %x : index
      %k1 = memref.load %pk[%b, %s1, %f] : memref<?x?x?xf64>
      %k0 = memref.load %pk[%b, %s0, %f] : memref<?x?x?xf64>
      %v1 = memref.load %pv[%b, %s1, %f] : memref<?x?x?xf64>
      %v0 = memref.load %pv[%b, %s0, %f] : memref<?x?x?xf64>
      %kd = arith.subf %k1, %k0 : f64
      %vd = arith.subf %v1, %v0 : f64
      %km = arith.divf %kd, %den : f64
      %vm = arith.divf %vd, %den : f64
      %kf = arith.truncf %km : f64 to f32
      %vf = arith.truncf %vm : f64 to f32
      %col = arith.addi %dcol, %x : index
      memref.store %kf, %dstK[%db, %row, %col] : memref<?x?x?xf32>
      memref.store %vf, %dstV[%db, %row, %col] : memref<?x?x?xf32>
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

  // Online-softmax state of the block's queries and the tile scratch.
  %nq = arith.subi %q1, %q0 : index
  %mS = memref.alloca(%B) : memref<?xf32>
  %lS = memref.alloca(%B) : memref<?xf32>
  %acc = memref.alloca(%B, %d) : memref<?x?xf32>
  %kt = memref.alloca(%d) : memref<?x16xf32>
  %pt = memref.alloca() : memref<4x16xf32>
  scf.for %row = %c0 to %nq step %c1 {
    memref.store %ninf, %mS[%row] : memref<?xf32>
    memref.store %zero, %lS[%row] : memref<?xf32>
    scf.for %x = %c0 to %d step %c1 {
      memref.store %zero, %acc[%row, %x] : memref<?x?xf32>
    }
  }
  %false = arith.constant false

  // Level 1: raw [a_1, q1) with the causal mask on the diagonal, or
  // [a_1, e_1) when bidirectional.
  func.call @hag_attend_range(%q, %b, %q0, %nq, %qoff, %k, %v, %b, %a1, %e1, %koff, %gB, %b, %c0, %causal, %d, %scale, %mS, %lS, %acc, %kt, %pt)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, i1, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<4x16xf32>) -> ()
  // Compressed levels: left [a_l, c_l) and right [e'_l, e_l).
  scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1, %e = %e1, %nPrev = %n, %off = %c0) -> (index, index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%a, %e, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %la = arith.addi %off, %w#0 : index
    %lc = arith.addi %off, %w#1 : index
    func.call @hag_attend_range(%q, %b, %q0, %nq, %qoff, %levK, %levV, %b, %la, %lc, %koff, %levB, %b, %c0, %false, %d, %scale, %mS, %lS, %acc, %kt, %pt)
        : (memref<?x?x?xf32>, index, index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, i1, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<4x16xf32>) -> ()
    %ra = arith.addi %off, %w#2 : index
    %rc = arith.addi %off, %w#3 : index
    func.call @hag_attend_range(%q, %b, %q0, %nq, %qoff, %levK, %levV, %b, %ra, %rc, %koff, %levB, %b, %c0, %false, %d, %scale, %mS, %lS, %acc, %kt, %pt)
        : (memref<?x?x?xf32>, index, index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, i1, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<4x16xf32>) -> ()
    %offNext = arith.addi %off, %nl : index
    scf.yield %w#0, %w#3, %nl, %offNext : index, index, index, index
  }
  // Summary tokens, then the select_k tokens.
  func.call @hag_attend_range(%q, %b, %q0, %nq, %qoff, %sKd, %sVd, %c0, %c0, %tp, %c0, %sMd, %c0, %c0, %false, %d, %scale, %mS, %lS, %acc, %kt, %pt)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, i1, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<4x16xf32>) -> ()
  func.call @hag_attend_range(%q, %b, %q0, %nq, %qoff, %selKd, %selVd, %c0, %c0, %kp, %c0, %selBd, %c0, %c0, %false, %d, %scale, %mS, %lS, %acc, %kt, %pt)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, i1, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<4x16xf32>) -> ()

  // o = acc / l.
  scf.for %row = %c0 to %nq step %c1 {
    %qi = arith.addi %q0, %row : index
    %l = memref.load %lS[%row] : memref<?xf32>
    %inv = arith.divf %one, %l : f32
    scf.for %x = %c0 to %d step %c1 {
      %a = memref.load %acc[%row, %x] : memref<?x?xf32>
      %o = arith.mulf %a, %inv : f32
      %col = arith.addi %qoff, %x : index
      memref.store %o, %out[%b, %qi, %col] : memref<?x?x?xf32>
    }
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

  // ---- 2. f64 prefix sums of g*k, g*v and g (summaries). ----------------
  %n1 = arith.addi %n, %c1 : index
  %pk = memref.alloc(%bt, %n1, %kvD) : memref<?x?x?xf64>
  %pv = memref.alloc(%bt, %n1, %kvD) : memref<?x?x?xf64>
  %pg = memref.alloc(%bt, %n1) : memref<?x?xf64>
  scf.parallel (%b) = (%c0) to (%bt) step (%c1) {
    memref.store %zero64, %pg[%b, %c0] : memref<?x?xf64>
    scf.for %f = %c0 to %kvD step %c1 {
      memref.store %zero64, %pk[%b, %c0, %f] : memref<?x?x?xf64>
      memref.store %zero64, %pv[%b, %c0, %f] : memref<?x?x?xf64>
    }
    scf.for %i = %c0 to %n step %c1 {
      %i1 = arith.addi %i, %c1 : index
      %gi = memref.load %g[%b, %i] : memref<?x?xf32>
      %gd = arith.extf %gi : f32 to f64
      %pgi = memref.load %pg[%b, %i] : memref<?x?xf64>
      %pgn = arith.addf %pgi, %gd : f64
      memref.store %pgn, %pg[%b, %i1] : memref<?x?xf64>
      scf.for %f = %c0 to %kvD step %c1 {
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
    scf.reduce
  }

  // ---- 3. Mass biases beta log(m + eps), once per key. --------------------
  %gB = memref.alloc(%bt, %n) : memref<?x?xf32>
  %levB = memref.alloc(%bt, %alloc) : memref<?x?xf32>
  scf.parallel (%b, %j) = (%c0, %c0) to (%bt, %n) step (%c1, %c1) {
    %x = memref.load %g[%b, %j] : memref<?x?xf32>
    %xe = arith.addf %x, %eps : f32
    %lx = math.log %xe : f32
    %bx = arith.mulf %beta, %lx : f32
    memref.store %bx, %gB[%b, %j] : memref<?x?xf32>
    scf.reduce
  }
  scf.parallel (%b, %j) = (%c0, %c0) to (%bt, %total#0) step (%c1, %c1) {
    %x = memref.load %levM[%b, %j] : memref<?x?xf32>
    %xe = arith.addf %x, %eps : f32
    %lx = math.log %xe : f32
    %bx = arith.mulf %beta, %lx : f32
    memref.store %bx, %levB[%b, %j] : memref<?x?xf32>
    scf.reduce
  }

  // ---- 4. Attention per (batch, head, query block). ---------------------
  %blocks = func.call @hag_ceil_div(%n, %B) : (index, index) -> index
  %dI64 = arith.index_cast %d : index to i64
  %dF = arith.sitofp %dI64 : i64 to f32
  %sqrtD = math.sqrt %dF : f32
  %scale = arith.divf %one, %sqrtD : f32
  scf.parallel (%b, %h, %qb) = (%c0, %c0, %c0) to (%bt, %H, %blocks) step (%c1, %c1, %c1) {
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
// sums. Every value is computed by the same code as the forward kernel
// (@hag_level_token, @hag_summary_tokens, @hag_select_tokens,
// @hag_attend_range), so decoding reproduces the forward's row `pos`.

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
  %false = arith.constant false
  %hk = arith.muli %h, %Hkv : index
  %kvh = arith.divui %hk, %H : index
  %qoff = arith.muli %h, %d : index
  %koff = arith.muli %kvh, %d : index
  %mS = memref.alloca(%c1) : memref<?xf32>
  %lS = memref.alloca(%c1) : memref<?xf32>
  %acc = memref.alloca(%c1, %d) : memref<?x?xf32>
  %kt = memref.alloca(%d) : memref<?x16xf32>
  %pt = memref.alloca() : memref<4x16xf32>
  memref.store %ninf, %mS[%c0] : memref<?xf32>
  memref.store %zero, %lS[%c0] : memref<?xf32>
  scf.for %x = %c0 to %d step %c1 {
    memref.store %zero, %acc[%c0, %x] : memref<?x?xf32>
  }
  // Level 1: raw [a_1, pos] (every key is at or before the query).
  %n = arith.addi %pos, %c1 : index
  func.call @hag_attend_range(%q, %b, %c0, %c1, %qoff, %cK, %cV, %b, %a1, %n, %koff, %aux, %b, %c0, %false, %d, %scale, %mS, %lS, %acc, %kt, %pt)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, i1, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<4x16xf32>) -> ()
  // Compressed levels: the left windows, at each level's rows.
  scf.for %l = %c2 to %L step %c1 iter_args(%a = %a1, %off = %S, %nMaxPrev = %S) -> (index, index, index) {
    %nMax = func.call @hag_ceil_div(%nMaxPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%a, %c0, %l, %L, %r, %W, %nMax, %true)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    %la = arith.addi %off, %w#0 : index
    %lc = arith.addi %off, %w#1 : index
    func.call @hag_attend_range(%q, %b, %c0, %c1, %qoff, %cK, %cV, %b, %la, %lc, %koff, %aux, %b, %c0, %false, %d, %scale, %mS, %lS, %acc, %kt, %pt)
        : (memref<?x?x?xf32>, index, index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, i1, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<4x16xf32>) -> ()
    %offNext = arith.addi %off, %nMax : index
    scf.yield %w#0, %offNext, %nMax : index, index, index
  }
  // Summary tokens, then the select_k tokens.
  %sEnd = arith.addi %sumOff, %tp : index
  func.call @hag_attend_range(%q, %b, %c0, %c1, %qoff, %cK, %cV, %b, %sumOff, %sEnd, %koff, %aux, %b, %c0, %false, %d, %scale, %mS, %lS, %acc, %kt, %pt)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, i1, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<4x16xf32>) -> ()
  %kEnd = arith.addi %selOff, %kp : index
  func.call @hag_attend_range(%q, %b, %c0, %c1, %qoff, %cK, %cV, %b, %selOff, %kEnd, %koff, %aux, %b, %c0, %false, %d, %scale, %mS, %lS, %acc, %kt, %pt)
      : (memref<?x?x?xf32>, index, index, index, index, memref<?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, memref<?x?xf32>, index, index, i1, index, f32, memref<?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x16xf32>, memref<4x16xf32>) -> ()
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
