// The CUDA kernel library's pyramid attention (spec sections 3-5) on the
// CUDA cores: parallel loops that hag-map-loops-to-gpu turns into kernels.
// Same signature as the CPU kernel's @hag_pyramid_attention; the compressed
// levels from @hag_gpu_build_levels (the CPU builder's arithmetic, parallel
// over features), the mass biases from the CPU library's @hag_mass_biases
// (parsed together with this file; parallel loops over tokens), the
// summaries from f64 prefix sums.
//
// The cross-level attention runs one thread per (batch, head, query): each
// walks the query's whole key set (the level-1 window, the windows of every
// compressed level, the summary segments, the select_k picks) once, with
// an online softmax in f32; the summary tokens come precomputed per query
// block (@hag_gpu_summary_rows) for both versions. For head sizes 32, 64
// and 128 the query and its output live in registers
// (attention_vector.mlir); for other sizes the generic loop
// below accumulates the unnormalised output in the query's own row of
// `out` (rescaled when the running max grows) and divides by the
// denominator at the end. CUDA cores, no Tensor Cores: the fused mma
// kernel of issue 5 will replace both.
//
// select_k: one thread per (batch, query block) picks the block's tokens
// first (@hag_gpu_select_tokens), and the attention threads read them as
// raw keys.
//
// Layouts as on the CPU: q [batch, N, H*d], k and v [batch, N, Hkv*d],
// g [batch, N], out [batch, N, H*d].

// Running f64 prefix sums pk[b, i] = sum_{i' < i} g k (pv, pg likewise),
// as a blocked scan: the sequence in C ~ sqrt(N) chunks of S tokens,
//  1. each chunk's sums, one thread per (batch, chunk, feature);
//  2. the chunks' exclusive prefix, one thread per (batch, feature) walking
//     the C chunks;
//  3. each chunk's running sums from its prefix, one thread per (batch,
//     chunk, feature) walking the chunk's S tokens.
// O(sqrt N) sequential steps per thread instead of N (a thread per feature
// walking the whole sequence was 55 ms of a 128K layer on an H200). The
// sums are the CPU's up to the order of f64 additions.
func.func private @hag_gpu_prefix_sums(
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %g: memref<?x?xf32>,
    %pk: memref<?x?x?xf64>, %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %z = arith.constant 0.0 : f64
  %bt = memref.dim %k, %c0 : memref<?x?x?xf32>
  %n = memref.dim %k, %c1 : memref<?x?x?xf32>
  %kvD = memref.dim %k, %c2 : memref<?x?x?xf32>
  // S = ceil(sqrt(N)) (at least 1), C = ceil(N / S).
  %nI = arith.index_cast %n : index to i64
  %nF = arith.uitofp %nI : i64 to f64
  %rt = math.sqrt %nF : f64
  %rtc = math.ceil %rt : f64
  %sI = arith.fptoui %rtc : f64 to i64
  %sRaw = arith.index_cast %sI : i64 to index
  %S = arith.maxui %sRaw, %c1 : index
  %C = func.call @hag_ceil_div(%n, %S) : (index, index) -> index
  %Ca = arith.maxui %C, %c1 : index
  %ck = memref.alloc(%bt, %Ca, %kvD) : memref<?x?x?xf64>
  %cv = memref.alloc(%bt, %Ca, %kvD) : memref<?x?x?xf64>
  %cg = memref.alloc(%bt, %Ca) : memref<?x?xf64>
  // 1. Chunk sums.
  scf.parallel (%b, %c, %f) = (%c0, %c0, %c0) to (%bt, %C, %kvD) step (%c1, %c1, %c1) {
    %lo = arith.muli %c, %S : index
    %hiRaw = arith.addi %lo, %S : index
    %hi = arith.minui %hiRaw, %n : index
    %s:2 = scf.for %i = %lo to %hi step %c1 iter_args(%sk = %z, %sv = %z) -> (f64, f64) {
      %gi = memref.load %g[%b, %i] : memref<?x?xf32>
      %ki = memref.load %k[%b, %i, %f] : memref<?x?x?xf32>
      %vi = memref.load %v[%b, %i, %f] : memref<?x?x?xf32>
      %g64 = arith.extf %gi : f32 to f64
      %k64 = arith.extf %ki : f32 to f64
      %v64 = arith.extf %vi : f32 to f64
      %sk2 = math.fma %g64, %k64, %sk : f64
      %sv2 = math.fma %g64, %v64, %sv : f64
      scf.yield %sk2, %sv2 : f64, f64
    }
    memref.store %s#0, %ck[%b, %c, %f] : memref<?x?x?xf64>
    memref.store %s#1, %cv[%b, %c, %f] : memref<?x?x?xf64>
    scf.reduce
  }
  scf.parallel (%b, %c) = (%c0, %c0) to (%bt, %C) step (%c1, %c1) {
    %lo = arith.muli %c, %S : index
    %hiRaw = arith.addi %lo, %S : index
    %hi = arith.minui %hiRaw, %n : index
    %s = scf.for %i = %lo to %hi step %c1 iter_args(%sg = %z) -> (f64) {
      %gi = memref.load %g[%b, %i] : memref<?x?xf32>
      %g64 = arith.extf %gi : f32 to f64
      %sg2 = arith.addf %sg, %g64 : f64
      scf.yield %sg2 : f64
    }
    memref.store %s, %cg[%b, %c] : memref<?x?xf64>
    scf.reduce
  }
  // 2. The chunks' exclusive prefix, in place.
  scf.parallel (%b, %f) = (%c0, %c0) to (%bt, %kvD) step (%c1, %c1) {
    %s:2 = scf.for %c = %c0 to %C step %c1 iter_args(%sk = %z, %sv = %z) -> (f64, f64) {
      %xk = memref.load %ck[%b, %c, %f] : memref<?x?x?xf64>
      %xv = memref.load %cv[%b, %c, %f] : memref<?x?x?xf64>
      memref.store %sk, %ck[%b, %c, %f] : memref<?x?x?xf64>
      memref.store %sv, %cv[%b, %c, %f] : memref<?x?x?xf64>
      %sk2 = arith.addf %sk, %xk : f64
      %sv2 = arith.addf %sv, %xv : f64
      scf.yield %sk2, %sv2 : f64, f64
    }
    scf.reduce
  }
  scf.parallel (%b) = (%c0) to (%bt) step (%c1) {
    %s = scf.for %c = %c0 to %C step %c1 iter_args(%sg = %z) -> (f64) {
      %xg = memref.load %cg[%b, %c] : memref<?x?xf64>
      memref.store %sg, %cg[%b, %c] : memref<?x?xf64>
      %sg2 = arith.addf %sg, %xg : f64
      scf.yield %sg2 : f64
    }
    scf.reduce
  }
  // 3. Every token's running sums; row 0 is zero.
  scf.parallel (%b, %c, %f) = (%c0, %c0, %c0) to (%bt, %C, %kvD) step (%c1, %c1, %c1) {
    %first = arith.cmpi eq, %c, %c0 : index
    scf.if %first {
      memref.store %z, %pk[%b, %c0, %f] : memref<?x?x?xf64>
      memref.store %z, %pv[%b, %c0, %f] : memref<?x?x?xf64>
    }
    %lo = arith.muli %c, %S : index
    %hiRaw = arith.addi %lo, %S : index
    %hi = arith.minui %hiRaw, %n : index
    %k0 = memref.load %ck[%b, %c, %f] : memref<?x?x?xf64>
    %v0 = memref.load %cv[%b, %c, %f] : memref<?x?x?xf64>
    %s:2 = scf.for %i = %lo to %hi step %c1 iter_args(%sk = %k0, %sv = %v0) -> (f64, f64) {
      %gi = memref.load %g[%b, %i] : memref<?x?xf32>
      %ki = memref.load %k[%b, %i, %f] : memref<?x?x?xf32>
      %vi = memref.load %v[%b, %i, %f] : memref<?x?x?xf32>
      %g64 = arith.extf %gi : f32 to f64
      %k64 = arith.extf %ki : f32 to f64
      %v64 = arith.extf %vi : f32 to f64
      %sk2 = math.fma %g64, %k64, %sk : f64
      %sv2 = math.fma %g64, %v64, %sv : f64
      %i1 = arith.addi %i, %c1 : index
      memref.store %sk2, %pk[%b, %i1, %f] : memref<?x?x?xf64>
      memref.store %sv2, %pv[%b, %i1, %f] : memref<?x?x?xf64>
      scf.yield %sk2, %sv2 : f64, f64
    }
    scf.reduce
  }
  scf.parallel (%b, %c) = (%c0, %c0) to (%bt, %C) step (%c1, %c1) {
    %first = arith.cmpi eq, %c, %c0 : index
    scf.if %first {
      memref.store %z, %pg[%b, %c0] : memref<?x?xf64>
    }
    %lo = arith.muli %c, %S : index
    %hiRaw = arith.addi %lo, %S : index
    %hi = arith.minui %hiRaw, %n : index
    %g0 = memref.load %cg[%b, %c] : memref<?x?xf64>
    %s = scf.for %i = %lo to %hi step %c1 iter_args(%sg = %g0) -> (f64) {
      %gi = memref.load %g[%b, %i] : memref<?x?xf32>
      %g64 = arith.extf %gi : f32 to f64
      %sg2 = arith.addf %sg, %g64 : f64
      %i1 = arith.addi %i, %c1 : index
      memref.store %sg2, %pg[%b, %i1] : memref<?x?xf64>
      scf.yield %sg2 : f64
    }
    scf.reduce
  }
  return
}

// The compressed levels 2 .. L-1 (spec section 3), packed one after the
// other as the CPU library's @hag_build_levels packs them, with the same
// per-element arithmetic as @hag_level_token (so decoding, which rebuilds
// tokens with it, sees the same bits), but in parallel over features: per
// level, the tokens' masses one thread per (batch, token), then every
// (batch, token, feature) of the keys and values. One thread per token
// walking all Hkv d features was ~0.7 ms per level on an H200 whatever N
// (a level of 1K tokens had 4 blocks).
func.func private @hag_gpu_build_levels(
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %g: memref<?x?xf32>,
    %convK: memref<?x?x?x?xf32>, %convV: memref<?x?x?x?xf32>,
    %levK: memref<?x?x?xf32>, %levV: memref<?x?x?xf32>, %levM: memref<?x?xf32>,
    %r: index, %L: index, %d: index, %compress: index, %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %isMax = arith.cmpi eq, %compress, %c1 : index
  %isConv = arith.cmpi eq, %compress, %c2 : index
  %bt = memref.dim %k, %c0 : memref<?x?x?xf32>
  %n = memref.dim %k, %c1 : memref<?x?x?xf32>
  %kvD = memref.dim %k, %c2 : memref<?x?x?xf32>
  scf.for %l = %c2 to %L step %c1 iter_args(%offPrev = %c0, %off = %c0, %nPrev = %n) -> (index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %fromRaw = arith.cmpi eq, %l, %c2 : index
    %lc = arith.subi %l, %c2 : index
    %src:4 = scf.if %fromRaw -> (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index) {
      scf.yield %k, %v, %g, %c0 : memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index
    } else {
      scf.yield %levK, %levV, %levM, %offPrev : memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index
    }
    // m_l(j): the sum of the children's masses, in order.
    scf.parallel (%b, %j) = (%c0, %c0) to (%bt, %nl) step (%c1, %c1) {
      %first = arith.muli %j, %r : index
      %endR = arith.addi %first, %r : index
      %end = arith.minui %endR, %nPrev : index
      %mass = scf.for %c = %first to %end step %c1 iter_args(%ms = %zero) -> (f32) {
        %ci = arith.addi %src#3, %c : index
        %mc = memref.load %src#2[%b, %ci] : memref<?x?xf32>
        %ms2 = arith.addf %ms, %mc : f32
        scf.yield %ms2 : f32
      }
      %dst = arith.addi %off, %j : index
      memref.store %mass, %levM[%b, %dst] : memref<?x?xf32>
      scf.reduce
    }
    scf.parallel (%b, %j, %f) = (%c0, %c0, %c0) to (%bt, %nl, %kvD) step (%c1, %c1, %c1) {
      %first = arith.muli %j, %r : index
      %endR = arith.addi %first, %r : index
      %end = arith.minui %endR, %nPrev : index
      %dst = arith.addi %off, %j : index
      %mass = memref.load %levM[%b, %dst] : memref<?x?xf32>
      %den = arith.addf %mass, %eps : f32
      %kvh = arith.divui %f, %d : index
      %dd = arith.remui %f, %d : index
      %init = arith.select %isMax, %ninf, %zero : f32
      %res:2 = scf.for %c = %first to %end step %c1 iter_args(%ak = %init, %av = %init) -> (f32, f32) {
        %ci = arith.addi %src#3, %c : index
        %ch0 = memref.load %src#0[%b, %ci, %f] : memref<?x?x?xf32>
        %ch1 = memref.load %src#1[%b, %ci, %f] : memref<?x?x?xf32>
        %ch2 = memref.load %src#2[%b, %ci] : memref<?x?xf32>
        %out2:2 = scf.if %isMax -> (f32, f32) {
          %mk = arith.maximumf %ak, %ch0 : f32
          %mv = arith.maximumf %av, %ch1 : f32
          scf.yield %mk, %mv : f32, f32
        } else {
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
      memref.store %kOut, %levK[%b, %dst, %f] : memref<?x?x?xf32>
      memref.store %vOut, %levV[%b, %dst, %f] : memref<?x?x?xf32>
      scf.reduce
    }
    %offNext = arith.addi %off, %nl : index
    scf.yield %off, %offNext, %nl : index, index, index
  }
  return
}

// The summary's span for a query block whose last compressed level's left
// window starts at aLast = a_{L-1} (a_1 when L = 2): the prefix it covers
// (causal, a_{L-1} r^{L-2} raw tokens; bidirectional, all N) and its
// segment count T' = min(T, prefix).
func.func private @hag_gpu_summary_span(%aLast: index, %n: index, %r: index,
    %L: index, %T: index, %causal: i1) -> (index, index) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %sigma = scf.for %l = %c2 to %L step %c1 iter_args(%s = %c1) -> (index) {
    %s2 = arith.muli %s, %r : index
    scf.yield %s2 : index
  }
  %prefC = arith.muli %aLast, %sigma : index
  %pref = arith.select %causal, %prefC, %n : index
  %tp = arith.minui %T, %pref : index
  return %pref, %tp : index, index
}

// a_{L-1} of query block qb (a_1 when L = 2): the level windows' chain.
func.func private @hag_gpu_block_last_a(%qb: index, %B: index, %n: index,
    %r: index, %L: index, %W: index, %causal: i1) -> index {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %a1, %e1b, %kp = func.call @hag_gpu_block_bounds(%qb, %B, %n, %causal, %c0)
      : (index, index, index, i1, index) -> (index, index, index)
  %lv:3 = scf.for %l = %c2 to %L step %c1
      iter_args(%aPrev = %a1, %ePrev = %e1b, %nPrev = %n) -> (index, index, index) {
    %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
    %w:4 = func.call @hag_level_window(%aPrev, %ePrev, %l, %L, %r, %W, %nl, %causal)
        : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
    scf.yield %w#0, %w#3, %nl : index, index, index
  }
  return %lv#0 : index
}

// Every query block's summary tokens (spec section 5) as rows, which both
// attention kernels attend like any other rows: block qb's token t < T' is
// row qb T + t of sumK/sumV (the gated means of keys and values over
// segment t of the floor rule, from the f64 prefix sums, rounded to f32)
// with bias sumB[b, qb T + t] = beta log(float(mass) + eps), once per block
// instead of once per query. One
// thread per (batch, block, feature) walking the block's T' tokens; rows
// t >= T' are not written (nothing reads them).
func.func private @hag_gpu_summary_rows(
    %pk: memref<?x?x?xf64>, %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>,
    %sumK: memref<?x?x?xf32>, %sumV: memref<?x?x?xf32>, %sumB: memref<?x?xf32>,
    %B: index, %r: index, %L: index, %W: index, %T: index, %causal: i1,
    %beta: f32, %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %bt = memref.dim %pk, %c0 : memref<?x?x?xf64>
  %n1 = memref.dim %pk, %c1 : memref<?x?x?xf64>
  %n = arith.subi %n1, %c1 : index
  %kvD = memref.dim %pk, %c2 : memref<?x?x?xf64>
  %blocks = func.call @hag_ceil_div(%n, %B) : (index, index) -> index
  %eps64 = arith.extf %eps : f32 to f64
  %one64 = arith.constant 1.0 : f64
  scf.parallel (%b, %qb, %f) = (%c0, %c0, %c0) to (%bt, %blocks, %kvD) step (%c1, %c1, %c1) {
    %aLast = func.call @hag_gpu_block_last_a(%qb, %B, %n, %r, %L, %W, %causal)
        : (index, index, index, index, index, index, i1) -> index
    %span:2 = func.call @hag_gpu_summary_span(%aLast, %n, %r, %L, %T, %causal)
        : (index, index, index, index, index, i1) -> (index, index)
    %row0 = arith.muli %qb, %T : index
    // Segment t ends where t + 1 begins: its end's sums are carried into
    // the next step (3 loads per token instead of 6). One reciprocal of
    // the f64 denominator scales keys and values, as decoding computes the
    // same rows (@hag_gpu_decode_block_context), so the two agree bit for
    // bit.
    %gStart = memref.load %pg[%b, %c0] : memref<?x?xf64>
    %kStart = memref.load %pk[%b, %c0, %f] : memref<?x?x?xf64>
    %vStart = memref.load %pv[%b, %c0, %f] : memref<?x?x?xf64>
    %walk:3 = scf.for %t = %c0 to %span#1 step %c1
        iter_args(%g0 = %gStart, %k0 = %kStart, %v0 = %vStart) -> (f64, f64, f64) {
      %t1 = arith.addi %t, %c1 : index
      %t1P = arith.muli %t1, %span#0 : index
      %s1 = arith.divui %t1P, %span#1 : index
      %g1 = memref.load %pg[%b, %s1] : memref<?x?xf64>
      %mass = arith.subf %g1, %g0 : f64
      %den64 = arith.addf %mass, %eps64 : f64
      %inv = arith.divf %one64, %den64 : f64
      %k1 = memref.load %pk[%b, %s1, %f] : memref<?x?x?xf64>
      %kd = arith.subf %k1, %k0 : f64
      %km = arith.mulf %kd, %inv : f64
      %kf = arith.truncf %km : f64 to f32
      %v1 = memref.load %pv[%b, %s1, %f] : memref<?x?x?xf64>
      %vd = arith.subf %v1, %v0 : f64
      %vm = arith.mulf %vd, %inv : f64
      %vf = arith.truncf %vm : f64 to f32
      %row = arith.addi %row0, %t : index
      memref.store %kf, %sumK[%b, %row, %f] : memref<?x?x?xf32>
      memref.store %vf, %sumV[%b, %row, %f] : memref<?x?x?xf32>
      // The bias once per token, by the thread of feature 0.
      %f0 = arith.cmpi eq, %f, %c0 : index
      scf.if %f0 {
        %mass32 = arith.truncf %mass : f64 to f32
        %me = arith.addf %mass32, %eps : f32
        %lg = math.log %me : f32
        %bias = arith.mulf %beta, %lg : f32
        memref.store %bias, %sumB[%b, %row] : memref<?x?xf32>
      }
      scf.yield %g1, %k1, %v1 : f64, f64, f64
    }
    scf.reduce
  }
  return
}

// Every query block's key sources as row ranges, for the Tensor Core
// attention (attention_vector.mlir): row qb holds 2 S indices, S = 2 (L - 2)
// + 3 ranges [start, end) in the order the softmax walks them:
//   0: level 1, raw rows of k/v/gB: [a_1, min(N, (qb + 1) B)) causal (a
//      query i masks keys past i), [a_1, e_1) bidirectional;
//   1 .. 2 (L - 2): level l = 2 + (s - 1) / 2's left window (odd s) and
//      right window (even s; empty when causal), rows of levK/levV/levB
//      (the level's offset in the packed levels added);
//   S - 2: the block's summary rows [qb T, qb T + T') of sumK/sumV/sumB;
//   S - 1: the select_k picks [0, k'), positions in sel[b, qb, :].
// The same windows, in the same order, as the register kernels' per-query
// walk (@hag_gpu_attention_v<d>); one thread per block.
func.func private @hag_gpu_block_segments(%segs: memref<?x?xindex>,
    %n: index, %B: index, %r: index, %L: index, %W: index, %T: index,
    %causal: i1, %selectK: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %blocks = memref.dim %segs, %c0 : memref<?x?xindex>
  %width = memref.dim %segs, %c1 : memref<?x?xindex>
  scf.parallel (%qb) = (%c0) to (%blocks) step (%c1) {
    %a1, %e1b, %kp = func.call @hag_gpu_block_bounds(%qb, %B, %n, %causal, %selectK)
        : (index, index, index, i1, index) -> (index, index, index)
    %qb1 = arith.addi %qb, %c1 : index
    %blockEnd = arith.muli %qb1, %B : index
    %endC = arith.minui %blockEnd, %n : index
    %e1 = arith.select %causal, %endC, %e1b : index
    memref.store %a1, %segs[%qb, %c0] : memref<?x?xindex>
    memref.store %e1, %segs[%qb, %c1] : memref<?x?xindex>
    %lv:4 = scf.for %l = %c2 to %L step %c1
        iter_args(%aPrev = %a1, %ePrev = %e1b, %nPrev = %n, %off = %c0) -> (index, index, index, index) {
      %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
      %w:4 = func.call @hag_level_window(%aPrev, %ePrev, %l, %L, %r, %W, %nl, %causal)
          : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
      // Ranges 2 (l - 2) + 1 and + 2: columns 4 (l - 2) + 2 .. + 5.
      %lm2 = arith.subi %l, %c2 : index
      %x4 = arith.muli %lm2, %c4 : index
      %col = arith.addi %x4, %c2 : index
      %col1 = arith.addi %col, %c1 : index
      %col2 = arith.addi %col, %c2 : index
      %col3 = arith.addi %col, %c3 : index
      %ls = arith.addi %off, %w#0 : index
      %le = arith.addi %off, %w#1 : index
      %rs = arith.addi %off, %w#2 : index
      %re = arith.addi %off, %w#3 : index
      memref.store %ls, %segs[%qb, %col] : memref<?x?xindex>
      memref.store %le, %segs[%qb, %col1] : memref<?x?xindex>
      memref.store %rs, %segs[%qb, %col2] : memref<?x?xindex>
      memref.store %re, %segs[%qb, %col3] : memref<?x?xindex>
      %offN = arith.addi %off, %nl : index
      scf.yield %w#0, %w#3, %nl, %offN : index, index, index, index
    }
    %span:2 = func.call @hag_gpu_summary_span(%lv#0, %n, %r, %L, %T, %causal)
        : (index, index, index, index, index, i1) -> (index, index)
    %sBase = arith.muli %qb, %T : index
    %sEnd = arith.addi %sBase, %span#1 : index
    %sCol = arith.subi %width, %c4 : index
    %sCol1 = arith.subi %width, %c3 : index
    %pCol = arith.subi %width, %c2 : index
    %pCol1 = arith.subi %width, %c1 : index
    memref.store %sBase, %segs[%qb, %sCol] : memref<?x?xindex>
    memref.store %sEnd, %segs[%qb, %sCol1] : memref<?x?xindex>
    memref.store %c0, %segs[%qb, %pCol] : memref<?x?xindex>
    memref.store %kp, %segs[%qb, %pCol1] : memref<?x?xindex>
    scf.reduce
  }
  return
}

// Query block qb's level-1 window bounds a_1 = max(0, (qb-1) B) and (for
// bidirectional) e_1 = min(N, (qb+2) B), and its select_k count k' =
// min(select_k, candidates), the candidates [0, a_1) (and [e_1, N) when
// bidirectional).
func.func private @hag_gpu_block_bounds(%qb: index, %B: index, %n: index,
    %causal: i1, %selectK: index) -> (index, index, index) {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %qbB = arith.muli %qb, %B : index
  %a1raw = arith.subi %qbB, %B : index
  %a1 = arith.maxsi %a1raw, %c0 : index
  %qb2 = arith.addi %qb, %c2 : index
  %e1raw = arith.muli %qb2, %B : index
  %e1 = arith.minsi %e1raw, %n : index
  %nb = arith.subi %n, %e1 : index
  %rightCand = arith.select %causal, %c0, %nb : index
  %cands = arith.addi %a1, %rightCand : index
  %kp = arith.minui %selectK, %cands : index
  return %a1, %e1, %kp : index, index, index
}

// One key of the online softmax: with logit l, the running max m and
// denominator den become mN and den', and the output accumulated so far is
// to be scaled by alpha before p v is added.
func.func private @hag_gpu_online_step(%m: f32, %den: f32, %l: f32)
    -> (f32, f32, f32, f32) {
  %mN = arith.maximumf %m, %l : f32
  %dm = arith.subf %m, %mN : f32
  %alpha = math.exp %dm : f32
  %dl = arith.subf %l, %mN : f32
  %p = math.exp %dl : f32
  %den1 = math.fma %den, %alpha, %p : f32
  return %mN, %den1, %alpha, %p : f32, f32, f32, f32
}

// select_k (spec section 4): per (batch, query block), the k raw tokens
// with the largest g among those left of the level-1 window [0, a1) (and
// right of it, [e1, N), when bidirectional), ties to the lower index,
// into sel[b, qb, 0 .. k'), k' = min(select_k, candidates). Pick p is the
// best candidate strictly after pick p-1 in that order (as the CPU
// kernel's @hag_select_tokens).
func.func private @hag_gpu_select_tokens(%g: memref<?x?xf32>,
    %sel: memref<?x?x?xindex>, %B: index, %causal: i1, %selectK: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %true = arith.constant true
  %ninf = arith.constant 0xFF800000 : f32
  %pinf64 = arith.constant 0x7FF0000000000000 : f64
  %bt = memref.dim %g, %c0 : memref<?x?xf32>
  %n = memref.dim %g, %c1 : memref<?x?xf32>
  %blocks = memref.dim %sel, %c1 : memref<?x?x?xindex>
  %notCausal = arith.xori %causal, %true : i1
  scf.parallel (%b, %qb) = (%c0, %c0) to (%bt, %blocks) step (%c1, %c1) {
    %a1, %e1, %kp = func.call @hag_gpu_block_bounds(%qb, %B, %n, %causal, %selectK)
        : (index, index, index, i1, index) -> (index, index, index)
    scf.for %p = %c0 to %kp step %c1 iter_args(%gPrev = %pinf64, %iPrev = %n) -> (f64, index) {
      %best:2 = scf.for %c = %c0 to %n step %c1 iter_args(%bg = %ninf, %bi = %n) -> (f32, index) {
        %inLeft = arith.cmpi ult, %c, %a1 : index
        %inRight0 = arith.cmpi uge, %c, %e1 : index
        %inRight = arith.andi %inRight0, %notCausal : i1
        %isCand = arith.ori %inLeft, %inRight : i1
        %gc = memref.load %g[%b, %c] : memref<?x?xf32>
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
      memref.store %best#1, %sel[%b, %qb, %p] : memref<?x?x?xindex>
      %bgd = arith.extf %best#0 : f32 to f64
      scf.yield %bgd, %best#1 : f64, index
    }
    scf.reduce
  }
  return
}

// The online softmax over key rows [s, e) of K/V (columns [kcol, kcol + d))
// with mass biases `bias`, for query row (b, i) of q at column qcol: the
// running max and denominator go in and out, the unnormalised output
// accumulates in out[b, i, qcol .. qcol + d).
func.func private @hag_gpu_attend_rows(
    %q: memref<?x?x?xf32>, %K: memref<?x?x?xf32>, %V: memref<?x?x?xf32>,
    %bias: memref<?x?xf32>, %out: memref<?x?x?xf32>, %b: index, %i: index,
    %qcol: index, %kcol: index, %s: index, %e: index, %d: index,
    %scale: f32, %m0: f32, %den0: f32) -> (f32, f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %res:2 = scf.for %j = %s to %e step %c1 iter_args(%m = %m0, %den = %den0) -> (f32, f32) {
    %dot = scf.for %t = %c0 to %d step %c1 iter_args(%acc = %zero) -> (f32) {
      %qt = arith.addi %qcol, %t : index
      %kt = arith.addi %kcol, %t : index
      %qv = memref.load %q[%b, %i, %qt] : memref<?x?x?xf32>
      %kv = memref.load %K[%b, %j, %kt] : memref<?x?x?xf32>
      %a2 = math.fma %qv, %kv, %acc : f32
      scf.yield %a2 : f32
    }
    %bj = memref.load %bias[%b, %j] : memref<?x?xf32>
    %l = math.fma %dot, %scale, %bj : f32
    %mN, %den1, %alpha, %p = func.call @hag_gpu_online_step(%m, %den, %l)
        : (f32, f32, f32) -> (f32, f32, f32, f32)
    scf.for %t = %c0 to %d step %c1 {
      %ot = arith.addi %qcol, %t : index
      %vt = arith.addi %kcol, %t : index
      %o = memref.load %out[%b, %i, %ot] : memref<?x?x?xf32>
      %vv = memref.load %V[%b, %j, %vt] : memref<?x?x?xf32>
      %pv = arith.mulf %p, %vv : f32
      %o2 = math.fma %o, %alpha, %pv : f32
      memref.store %o2, %out[%b, %i, %ot] : memref<?x?x?xf32>
    }
    scf.yield %mN, %den1 : f32, f32
  }
  return %res#0, %res#1 : f32, f32
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
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %bt = memref.dim %q, %c0 : memref<?x?x?xf32>
  %n = memref.dim %q, %c1 : memref<?x?x?xf32>
  %kvD = arith.muli %Hkv, %d : index

  // Compressed levels 2 .. L-1, packed one after the other (the CPU
  // library's layout), and every key's mass bias beta log(m + eps).
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
  // Every query block's summary tokens as rows (shared by both kernels).
  %rows0 = arith.muli %blocks, %T : index
  %rows = arith.maxui %rows0, %c1 : index
  %sumK = memref.alloc(%bt, %rows, %kvD) : memref<?x?x?xf32>
  %sumV = memref.alloc(%bt, %rows, %kvD) : memref<?x?x?xf32>
  %sumB = memref.alloc(%bt, %rows) : memref<?x?xf32>
  func.call @hag_gpu_summary_rows(%pk, %pv, %pg, %sumK, %sumV, %sumB, %B, %r, %L, %W, %T, %causal, %beta, %eps)
      : (memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, index, index, index, index, index, i1, f32, f32) -> ()
  // Head sizes 32, 64 and 128 take attention_vector.mlir's kernels
  // (instantiated for exactly these): the Tensor Core kernel when B % 64 =
  // 0, else the register kernel; others the generic loop below.
  scf.index_switch %d
  case 32 {
    func.call @hag_gpu_attention_d32(%q, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel, %out, %H, %Hkv, %B, %r, %L, %W, %T, %causal, %selectK, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xindex>, memref<?x?x?xf32>, index, index, index, index, index, index, index, i1, index, f32) -> ()
    scf.yield
  }
  case 64 {
    func.call @hag_gpu_attention_d64(%q, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel, %out, %H, %Hkv, %B, %r, %L, %W, %T, %causal, %selectK, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xindex>, memref<?x?x?xf32>, index, index, index, index, index, index, index, i1, index, f32) -> ()
    scf.yield
  }
  case 128 {
    func.call @hag_gpu_attention_d128(%q, %k, %v, %gB, %levK, %levV, %levB, %sumK, %sumV, %sumB, %sel, %out, %H, %Hkv, %B, %r, %L, %W, %T, %causal, %selectK, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xindex>, memref<?x?x?xf32>, index, index, index, index, index, index, index, i1, index, f32) -> ()
    scf.yield
  }
  default {
    scf.parallel (%b, %h, %i) = (%c0, %c0, %c0) to (%bt, %H, %n) step (%c1, %c1, %c1) {
      %hH = arith.muli %h, %Hkv : index
      %kvh = arith.divui %hH, %H : index
      %qcol = arith.muli %h, %d : index
      %kcol = arith.muli %kvh, %d : index
      %qb = arith.divui %i, %B : index
      scf.for %t = %c0 to %d step %c1 {
        %ot = arith.addi %qcol, %t : index
        memref.store %zero, %out[%b, %i, %ot] : memref<?x?x?xf32>
      }
      // Level 1: [a1, i] causal; [a1, e1) bidirectional.
      %a1, %e1b, %kp = func.call @hag_gpu_block_bounds(%qb, %B, %n, %causal, %selectK)
          : (index, index, index, i1, index) -> (index, index, index)
      %i1 = arith.addi %i, %c1 : index
      %e1 = arith.select %causal, %i1, %e1b : index
      %s1:2 = func.call @hag_gpu_attend_rows(%q, %k, %v, %gB, %out, %b, %i, %qcol, %kcol, %a1, %e1, %d, %scale, %ninf, %zero)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
      // Levels 2 .. L-1: the left window [a_l, c_l) and the right [e'_l, e_l).
      %lv:6 = scf.for %l = %c2 to %L step %c1
          iter_args(%aPrev = %a1, %ePrev = %e1b, %nPrev = %n, %off = %c0, %m = %s1#0, %den = %s1#1)
          -> (index, index, index, index, f32, f32) {
        %nl = func.call @hag_ceil_div(%nPrev, %r) : (index, index) -> index
        %w:4 = func.call @hag_level_window(%aPrev, %ePrev, %l, %L, %r, %W, %nl, %causal)
            : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
        %ls = arith.addi %off, %w#0 : index
        %le = arith.addi %off, %w#1 : index
        %t1:2 = func.call @hag_gpu_attend_rows(%q, %levK, %levV, %levB, %out, %b, %i, %qcol, %kcol, %ls, %le, %d, %scale, %m, %den)
            : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
        %rs = arith.addi %off, %w#2 : index
        %re = arith.addi %off, %w#3 : index
        %t2:2 = func.call @hag_gpu_attend_rows(%q, %levK, %levV, %levB, %out, %b, %i, %qcol, %kcol, %rs, %re, %d, %scale, %t1#0, %t1#1)
            : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
        %offN = arith.addi %off, %nl : index
        scf.yield %w#0, %w#3, %nl, %offN, %t2#0, %t2#1 : index, index, index, index, f32, f32
      }
      // The block's T' summary rows (@hag_gpu_summary_rows).
      %span:2 = func.call @hag_gpu_summary_span(%lv#0, %n, %r, %L, %T, %causal)
          : (index, index, index, index, index, i1) -> (index, index)
      %sBase = arith.muli %qb, %T : index
      %sEnd = arith.addi %sBase, %span#1 : index
      %sum:2 = func.call @hag_gpu_attend_rows(%q, %sumK, %sumV, %sumB, %out, %b, %i, %qcol, %kcol, %sBase, %sEnd, %d, %scale, %lv#4, %lv#5)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
      // select_k picks: raw keys, as many as the block has candidates.
      %fin:2 = scf.for %p = %c0 to %kp step %c1 iter_args(%m = %sum#0, %den = %sum#1) -> (f32, f32) {
        %j = memref.load %sel[%b, %qb, %p] : memref<?x?x?xindex>
        %j1 = arith.addi %j, %c1 : index
        %t3:2 = func.call @hag_gpu_attend_rows(%q, %k, %v, %gB, %out, %b, %i, %qcol, %kcol, %j, %j1, %d, %scale, %m, %den)
            : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
        scf.yield %t3#0, %t3#1 : f32, f32
      }
      %inv = arith.divf %one, %fin#1 : f32
      scf.for %t = %c0 to %d step %c1 {
        %ot = arith.addi %qcol, %t : index
        %o = memref.load %out[%b, %i, %ot] : memref<?x?x?xf32>
        %o2 = arith.mulf %o, %inv : f32
        memref.store %o2, %out[%b, %i, %ot] : memref<?x?x?xf32>
      }
      scf.reduce
    }
    scf.yield
  }
  return
}

// ---------------------------------------------------------------------------
// Incremental decoding (spec section 10) on the same caches as the CPU
// library's @hag_pyramid_decode (as ::hag::DecodeCacheLayout: raw rows
// [0, S), the compressed levels, the block's summary rows [sumOff,
// sumOff + T) and select_k rows [selOff, selOff + select_k); aux[b, row]
// the rows' mass biases, aux[b, R + row] their masses; f64 running prefix
// sums pk, pv, pg). Same signature; every step is a few small kernels:
//  1. the token appended: its k, v and prefix sums one thread per
//     (batch, feature), then the last token of every compressed level
//     rebuilt one thread per batch row (the CPU library's
//     @hag_level_token, as the forward's level builder);
//  2. at a query block's first token, the block's summary tokens one
//     thread per (batch, feature) and its select_k picks one thread per
//     batch row;
//  3. the new token's attention one thread per (batch, head), an online
//     softmax over level 1, every compressed level's left window, the
//     summary and the picks (@hag_gpu_attend_rows).
// The host code only computes indices from the position.
// ---------------------------------------------------------------------------

// Step 1's first half: row pos of the raw cache and the prefix sums' row
// pos + 1, the gate's bias and mass.
func.func private @hag_gpu_decode_append(
    %k: memref<?x?x?xf32>, %v: memref<?x?x?xf32>, %g: memref<?x?xf32>,
    %cK: memref<?x?x?xf32>, %cV: memref<?x?x?xf32>, %aux: memref<?x?xf32>,
    %pk: memref<?x?x?xf64>, %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>,
    %pos: index, %R: index, %beta: f32, %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %bt = memref.dim %k, %c0 : memref<?x?x?xf32>
  %kvD = memref.dim %k, %c2 : memref<?x?x?xf32>
  %n = arith.addi %pos, %c1 : index
  scf.parallel (%b, %f) = (%c0, %c0) to (%bt, %kvD) step (%c1, %c1) {
    %gi = memref.load %g[%b, %c0] : memref<?x?xf32>
    %gd = arith.extf %gi : f32 to f64
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
    scf.reduce
  }
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
    scf.reduce
  }
  return
}

// Step 1's second half: level l's last token j = n_l - 1 (finished or
// partial) from its children one level down, as the forward builds it for
// N = pos + 1; levels in order, one thread per batch row.
func.func private @hag_gpu_decode_levels(
    %cK: memref<?x?x?xf32>, %cV: memref<?x?x?xf32>, %aux: memref<?x?xf32>,
    %convK: memref<?x?x?x?xf32>, %convV: memref<?x?x?x?xf32>,
    %pos: index, %S: index, %R: index, %r: index, %L: index, %kvD: index,
    %d: index, %compress: index, %beta: f32, %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %bt = memref.dim %cK, %c0 : memref<?x?x?xf32>
  %n = arith.addi %pos, %c1 : index
  scf.parallel (%b) = (%c0) to (%bt) step (%c1) {
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
  return
}

// Step 2: the query block's context at its first token -- T' summary
// tokens over the raw prefix [0, prefix) (rows [sumOff, sumOff + T'), the
// floor rule's segments as gated means of the f64 sums) and the k' select_k
// picks among the raw tokens [0, a1) (rows [selOff, selOff + k'), by gate
// descending, index ascending; the gates are the raw rows' masses).
func.func private @hag_gpu_decode_block_context(
    %cK: memref<?x?x?xf32>, %cV: memref<?x?x?xf32>, %aux: memref<?x?xf32>,
    %pk: memref<?x?x?xf64>, %pv: memref<?x?x?xf64>, %pg: memref<?x?xf64>,
    %n: index, %a1: index, %prefix: index, %tp: index, %kp: index,
    %kvD: index, %R: index, %sumOff: index, %selOff: index, %beta: f32,
    %eps: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %one64 = arith.constant 1.0 : f64
  %ninf = arith.constant 0xFF800000 : f32
  %pinf64 = arith.constant 0x7FF0000000000000 : f64
  %bt = memref.dim %cK, %c0 : memref<?x?x?xf32>
  %eps64 = arith.extf %eps : f32 to f64
  // Summary tokens: one thread per (batch, feature) walks the segments.
  scf.parallel (%b, %f) = (%c0, %c0) to (%bt, %kvD) step (%c1, %c1) {
    scf.for %t = %c0 to %tp step %c1 {
      %tP = arith.muli %t, %prefix : index
      %s0 = arith.divui %tP, %tp : index
      %t1 = arith.addi %t, %c1 : index
      %t1P = arith.muli %t1, %prefix : index
      %s1 = arith.divui %t1P, %tp : index
      %g0 = memref.load %pg[%b, %s0] : memref<?x?xf64>
      %g1 = memref.load %pg[%b, %s1] : memref<?x?xf64>
      %mass = arith.subf %g1, %g0 : f64
      %den = arith.addf %mass, %eps64 : f64
      %inv = arith.divf %one64, %den : f64
      %k0 = memref.load %pk[%b, %s0, %f] : memref<?x?x?xf64>
      %k1 = memref.load %pk[%b, %s1, %f] : memref<?x?x?xf64>
      %v0 = memref.load %pv[%b, %s0, %f] : memref<?x?x?xf64>
      %v1 = memref.load %pv[%b, %s1, %f] : memref<?x?x?xf64>
      %kd = arith.subf %k1, %k0 : f64
      %vd = arith.subf %v1, %v0 : f64
      %km = arith.mulf %kd, %inv : f64
      %vm = arith.mulf %vd, %inv : f64
      %kf = arith.truncf %km : f64 to f32
      %vf = arith.truncf %vm : f64 to f32
      %row = arith.addi %sumOff, %t : index
      memref.store %kf, %cK[%b, %row, %f] : memref<?x?x?xf32>
      memref.store %vf, %cV[%b, %row, %f] : memref<?x?x?xf32>
    }
    scf.reduce
  }
  // Their mass biases, and the picks: one thread per batch row.
  scf.parallel (%b) = (%c0) to (%bt) step (%c1) {
    scf.for %t = %c0 to %tp step %c1 {
      %tP = arith.muli %t, %prefix : index
      %s0 = arith.divui %tP, %tp : index
      %t1 = arith.addi %t, %c1 : index
      %t1P = arith.muli %t1, %prefix : index
      %s1 = arith.divui %t1P, %tp : index
      %g0 = memref.load %pg[%b, %s0] : memref<?x?xf64>
      %g1 = memref.load %pg[%b, %s1] : memref<?x?xf64>
      %mass = arith.subf %g1, %g0 : f64
      %massF = arith.truncf %mass : f64 to f32
      %massE = arith.addf %massF, %eps : f32
      %massLog = math.log %massE : f32
      %bias = arith.mulf %beta, %massLog : f32
      %col = arith.addi %sumOff, %t : index
      memref.store %bias, %aux[%b, %col] : memref<?x?xf32>
    }
    scf.for %p = %c0 to %kp step %c1 iter_args(%gPrev = %pinf64, %iPrev = %n) -> (f64, index) {
      %best:2 = scf.for %c = %c0 to %a1 step %c1 iter_args(%bg = %ninf, %bi = %n) -> (f32, index) {
        %gcol = arith.addi %R, %c : index
        %gc = memref.load %aux[%b, %gcol] : memref<?x?xf32>
        %gcd = arith.extf %gc : f32 to f64
        %lower = arith.cmpf olt, %gcd, %gPrev : f64
        %eqG = arith.cmpf oeq, %gcd, %gPrev : f64
        %later = arith.cmpi ugt, %c, %iPrev : index
        %tieLater = arith.andi %eqG, %later : i1
        %after = arith.ori %lower, %tieLater : i1
        %better = arith.cmpf ogt, %gc, %bg : f32
        %noneYet = arith.cmpi eq, %bi, %n : index
        %better2 = arith.ori %better, %noneYet : i1
        %ok = arith.andi %after, %better2 : i1
        %ng = arith.select %ok, %gc, %bg : f32
        %ni = arith.select %ok, %c, %bi : index
        scf.yield %ng, %ni : f32, index
      }
      %j = arith.minui %best#1, %a1 : index
      %row = arith.addi %selOff, %p : index
      %gj = memref.load %aux[%b, %j] : memref<?x?xf32>
      memref.store %gj, %aux[%b, %row] : memref<?x?xf32>
      scf.for %x = %c0 to %kvD step %c1 {
        %kx = memref.load %cK[%b, %j, %x] : memref<?x?x?xf32>
        %vx = memref.load %cV[%b, %j, %x] : memref<?x?x?xf32>
        memref.store %kx, %cK[%b, %row, %x] : memref<?x?x?xf32>
        memref.store %vx, %cV[%b, %row, %x] : memref<?x?x?xf32>
      }
      %bgd = arith.extf %best#0 : f32 to f64
      scf.yield %bgd, %best#1 : f64, index
    }
    scf.reduce
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
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
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

  // 1. Append the token; rebuild the token of every level holding it.
  func.call @hag_gpu_decode_append(%k, %v, %g, %cK, %cV, %aux, %pk, %pv, %pg, %pos, %R, %beta, %eps)
      : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>,
         memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>, index, index, f32, f32) -> ()
  func.call @hag_gpu_decode_levels(%cK, %cV, %aux, %convK, %convV, %pos, %S, %R, %r, %L, %kvD, %d, %compress, %beta, %eps)
      : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>,
         index, index, index, index, index, index, index, index, f32, f32) -> ()

  // 2. The query block's windows; its context at its first token.
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
    func.call @hag_gpu_decode_block_context(%cK, %cV, %aux, %pk, %pv, %pg, %n, %a1, %prefix, %tp, %kp, %kvD, %R, %sumOff, %selOff, %beta, %eps)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>,
           index, index, index, index, index, index, index, index, index, f32, f32) -> ()
  }

  // 3. The new token's attention, one thread per (batch, head).
  %dI64 = arith.index_cast %d : index to i64
  %dF = arith.sitofp %dI64 : i64 to f32
  %sqrtD = math.sqrt %dF : f32
  %scale = arith.divf %one, %sqrtD : f32
  // Head sizes 32, 64 and 128: the forward's register kernel arithmetic
  // (attention_vector.mlir); others the generic loop.
  scf.index_switch %d
  case 32 {
    func.call @hag_gpu_decode_attention_v32(%q, %cK, %cV, %aux, %out, %H, %Hkv, %a1, %n, %S, %L, %r, %W, %sumOff, %tp, %selOff, %kp, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, index, index, index, index, index, f32) -> ()
    scf.yield
  }
  case 64 {
    func.call @hag_gpu_decode_attention_v64(%q, %cK, %cV, %aux, %out, %H, %Hkv, %a1, %n, %S, %L, %r, %W, %sumOff, %tp, %selOff, %kp, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, index, index, index, index, index, f32) -> ()
    scf.yield
  }
  case 128 {
    func.call @hag_gpu_decode_attention_v128(%q, %cK, %cV, %aux, %out, %H, %Hkv, %a1, %n, %S, %L, %r, %W, %sumOff, %tp, %selOff, %kp, %scale)
        : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, index, index, index, index, index, f32) -> ()
    scf.yield
  }
  default {
    scf.parallel (%b, %h) = (%c0, %c0) to (%bt, %H) step (%c1, %c1) {
      %hH = arith.muli %h, %Hkv : index
      %kvh = arith.divui %hH, %H : index
      %qcol = arith.muli %h, %d : index
      %kcol = arith.muli %kvh, %d : index
      scf.for %t = %c0 to %d step %c1 {
        %ot = arith.addi %qcol, %t : index
        memref.store %zero, %out[%b, %c0, %ot] : memref<?x?x?xf32>
      }
      // Level 1: raw [a_1, pos] (every key is at or before the query).
      %s1:2 = func.call @hag_gpu_attend_rows(%q, %cK, %cV, %aux, %out, %b, %c0, %qcol, %kcol, %a1, %n, %d, %scale, %ninf, %zero)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
      // Compressed levels: the left windows, at each level's rows.
      %lv:5 = scf.for %l = %c2 to %L step %c1
          iter_args(%a = %a1, %off = %S, %nMaxPrev = %S, %m = %s1#0, %den = %s1#1)
          -> (index, index, index, f32, f32) {
        %nMax = func.call @hag_ceil_div(%nMaxPrev, %r) : (index, index) -> index
        %w:4 = func.call @hag_level_window(%a, %c0, %l, %L, %r, %W, %nMax, %true)
            : (index, index, index, index, index, index, index, i1) -> (index, index, index, index)
        %la = arith.addi %off, %w#0 : index
        %lc = arith.addi %off, %w#1 : index
        %t1:2 = func.call @hag_gpu_attend_rows(%q, %cK, %cV, %aux, %out, %b, %c0, %qcol, %kcol, %la, %lc, %d, %scale, %m, %den)
            : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
        %offNext = arith.addi %off, %nMax : index
        scf.yield %w#0, %offNext, %nMax, %t1#0, %t1#1 : index, index, index, f32, f32
      }
      // Summary tokens, then the select_k tokens.
      %sEnd = arith.addi %sumOff, %tp : index
      %s2:2 = func.call @hag_gpu_attend_rows(%q, %cK, %cV, %aux, %out, %b, %c0, %qcol, %kcol, %sumOff, %sEnd, %d, %scale, %lv#3, %lv#4)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
      %kEnd = arith.addi %selOff, %kp : index
      %s3:2 = func.call @hag_gpu_attend_rows(%q, %cK, %cV, %aux, %out, %b, %c0, %qcol, %kcol, %selOff, %kEnd, %d, %scale, %s2#0, %s2#1)
          : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, f32, f32, f32) -> (f32, f32)
      %inv = arith.divf %one, %s3#1 : f32
      scf.for %t = %c0 to %d step %c1 {
        %ot = arith.addi %qcol, %t : index
        %o = memref.load %out[%b, %c0, %ot] : memref<?x?x?xf32>
        %o2 = arith.mulf %o, %inv : f32
        memref.store %o2, %out[%b, %c0, %ot] : memref<?x?x?xf32>
      }
      scf.reduce
    }
    scf.yield
  }
  return
}
