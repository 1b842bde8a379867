// RUN: hag-opt %s | hag-opt | FileCheck %s
// RUN: hag-opt %s --mlir-print-op-generic | hag-opt | FileCheck %s

// Every hag op round-trips through the custom and the generic syntax, with
// static and dynamic (`?`) batch and sequence dimensions.

// Configurations print once, as aliases, with every key spelled out.
// CHECK: #[[CFG:.+]] = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 16, ratio = 4, levels = 4, window = 8, summary = 4, temperature = 0.1, compress = gated_mean, causal = true, mass_bias = 1.0, select_k = 0, eps = 1.0e-06, max_seq = 4096>
// CHECK: #[[CONV:.+]] = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 16, ratio = 4, levels = auto, window = 8, summary = 4, temperature = 0.1, compress = conv, causal = false, mass_bias = 1.0, select_k = 0, eps = 1.0e-06, max_seq = 1024>
// CHECK: #[[SEL:.+]] = #hag.pyramid<heads = 4, kv_heads = 4, head_dim = 32, block = 64, ratio = 4, levels = 4, window = 64, summary = 64, temperature = 0.1, compress = gated_mean, causal = true, mass_bias = 0.0, select_k = 8, eps = 1.0e-06, max_seq = 8192>
// CHECK: #[[R2:.+]] = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 64, ratio = 2, levels = 4, window = 64, summary = 64, temperature = 0.1, compress = conv, causal = true, mass_bias = 1.0, select_k = 0, eps = 1.0e-06, max_seq = 8192>
// CHECK: #[[LOCAL:.+]] = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 64, ratio = 4, levels = 4, window = 64, summary = 64, temperature = 0.1, compress = gated_mean, causal = true, mass_bias = 1.0, select_k = 2, eps = 1.0e-06, max_seq = 4096, local_only = true>

// CHECK-LABEL: func.func @lm_ops
func.func @lm_ops(%tok: tensor<?x?xi32>, %table: tensor<256x128xf32>,
                  %w: tensor<64x128xf32>, %bias: tensor<64xf32>,
                  %scale: tensor<128xf32>, %wg: tensor<512x128xf32>,
                  %wu: tensor<512x128xf32>, %wd: tensor<128x512xf32>,
                  %tok64: tensor<2x16xi64>, %logits: tensor<2x16x256xf32>)
    -> (tensor<?x?x128xf32>, tensor<?x?x64xf32>, tensor<f32>) {
  // CHECK: %[[X:.+]] = hag.embedding %{{.+}}, %{{.+}} : (tensor<?x?xi32>, tensor<256x128xf32>) -> tensor<?x?x128xf32>
  %x = hag.embedding %tok, %table : (tensor<?x?xi32>, tensor<256x128xf32>) -> tensor<?x?x128xf32>
  // CHECK: %[[N:.+]] = hag.rms_norm %[[X]], %{{.+}} {eps = 1.000000e-03 : f64}
  %n = hag.rms_norm %x, %scale {eps = 1.0e-3 : f64} : (tensor<?x?x128xf32>, tensor<128xf32>) -> tensor<?x?x128xf32>
  // CHECK: hag.linear %[[N]], %{{.+}} : (tensor<?x?x128xf32>, tensor<64x128xf32>) -> tensor<?x?x64xf32>
  %y = hag.linear %n, %w : (tensor<?x?x128xf32>, tensor<64x128xf32>) -> tensor<?x?x64xf32>
  // CHECK: %[[YB:.+]] = hag.linear %[[N]], %{{.+}}, %{{.+}} : (tensor<?x?x128xf32>, tensor<64x128xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  %yb = hag.linear %n, %w, %bias : (tensor<?x?x128xf32>, tensor<64x128xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  // CHECK: hag.rope %[[YB]] {base = 5.000000e+05 : f64, head_dim = 32 : i64, offset = 3 : i64}
  %r = hag.rope %yb {head_dim = 32 : i64, base = 500000.0 : f64, offset = 3 : i64} : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  // CHECK: %[[M:.+]] = hag.swiglu %[[N]], %{{.+}}, %{{.+}}, %{{.+}} : (tensor<?x?x128xf32>, tensor<512x128xf32>, tensor<512x128xf32>, tensor<128x512xf32>) -> tensor<?x?x128xf32>
  %m = hag.swiglu %n, %wg, %wu, %wd : (tensor<?x?x128xf32>, tensor<512x128xf32>, tensor<512x128xf32>, tensor<128x512xf32>) -> tensor<?x?x128xf32>
  // CHECK: hag.add %[[X]], %[[M]] : tensor<?x?x128xf32>
  %s = hag.add %x, %m : tensor<?x?x128xf32>
  // CHECK: hag.cross_entropy %{{.+}}, %{{.+}} : (tensor<2x16x256xf32>, tensor<2x16xi64>) -> tensor<f32>
  %loss = hag.cross_entropy %logits, %tok64 : (tensor<2x16x256xf32>, tensor<2x16xi64>) -> tensor<f32>
  return %s, %r, %loss : tensor<?x?x128xf32>, tensor<?x?x64xf32>, tensor<f32>
}

// CHECK-LABEL: func.func @pyramid_unfused
func.func @pyramid_unfused(%h: tensor<?x?x128xf32>, %q: tensor<?x?x128xf32>,
                           %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>,
                           %w1: tensor<96x128xf32>, %b1: tensor<96xf32>,
                           %w2: tensor<96xf32>, %b2: tensor<1xf32>)
    -> tensor<?x?x128xf32> {
  // CHECK: %[[G:.+]] = hag.memory_gate %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} {config = #[[CFG]]}
  %g = hag.memory_gate %h, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 16, window = 8, summary = 4, max_seq = 4096>}
      : (tensor<?x?x128xf32>, tensor<96x128xf32>, tensor<96xf32>, tensor<96xf32>, tensor<1xf32>) -> tensor<?x?xf32>
  // CHECK: %[[K2:[^,]+]], %[[V2:[^,]+]], %[[M2:[^ ]+]] = hag.build_level %{{.+}}, %{{.+}}, %[[G]] {config = #[[CFG]], level = 2 : i64}
  %k2, %v2, %m2 = hag.build_level %k, %v, %g {config = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 16, window = 8, summary = 4, max_seq = 4096>, level = 2 : i64}
      : (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?xf32>) -> (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?xf32>)
  // CHECK: %[[K3:[^,]+]], %[[V3:[^,]+]], %[[M3:[^ ]+]] = hag.build_level %[[K2]], %[[V2]], %[[M2]] {config = #[[CFG]], level = 3 : i64}
  %k3, %v3, %m3 = hag.build_level %k2, %v2, %m2 {config = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 16, window = 8, summary = 4, max_seq = 4096>, level = 3 : i64}
      : (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?xf32>) -> (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?xf32>)
  // CHECK: %[[SK:[^,]+]], %[[SV:[^,]+]], %[[SM:[^ ]+]] = hag.global_summary %{{.+}}, %{{.+}}, %[[G]] {config = #[[CFG]]}
  %sk, %sv, %sm = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 16, window = 8, summary = 4, max_seq = 4096>}
      : (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?xf32>) -> (tensor<?x?x4x64xf32>, tensor<?x?x4x64xf32>, tensor<?x?x4xf32>)
  // CHECK: hag.cross_level_attention %{{.+}}, %{{.+}}, %{{.+}}, %[[G]] levels[%[[K2]], %[[K3]]] [%[[V2]], %[[V3]]] [%[[M2]], %[[M3]]] summary(%[[SK]], %[[SV]], %[[SM]]) {config = #[[CFG]]}
  %o = hag.cross_level_attention %q, %k, %v, %g levels [%k2, %k3] [%v2, %v3] [%m2, %m3] summary (%sk, %sv, %sm)
      {config = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 16, window = 8, summary = 4, max_seq = 4096>}
      : (tensor<?x?x128xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?xf32>,
         tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?xf32>, tensor<?x?xf32>,
         tensor<?x?x4x64xf32>, tensor<?x?x4x64xf32>, tensor<?x?x4xf32>) -> tensor<?x?x128xf32>
  return %o : tensor<?x?x128xf32>
}

// Static shapes, bidirectional (one summary block), conv compression, auto levels.
// CHECK-LABEL: func.func @pyramid_static_conv
func.func @pyramid_static_conv(%k: tensor<2x100x64xf32>, %v: tensor<2x100x64xf32>,
                               %g: tensor<2x100xf32>, %ck: tensor<2x4x32xf32>,
                               %cv: tensor<2x4x32xf32>)
    -> (tensor<2x25x64xf32>, tensor<2x1x4x64xf32>) {
  // CHECK: hag.build_level %{{.+}}, %{{.+}}, %{{.+}} conv(%{{.+}}, %{{.+}}) {config = #[[CONV]], level = 2 : i64}
  %k2, %v2, %m2 = hag.build_level %k, %v, %g conv (%ck, %cv) {config = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 16, window = 8, summary = 4, levels = auto, compress = conv, causal = false, max_seq = 1024>, level = 2 : i64}
      : (tensor<2x100x64xf32>, tensor<2x100x64xf32>, tensor<2x100xf32>, tensor<2x4x32xf32>, tensor<2x4x32xf32>) -> (tensor<2x25x64xf32>, tensor<2x25x64xf32>, tensor<2x25xf32>)
  // CHECK: hag.global_summary {{.*}} {config = #[[CONV]]} : {{.*}} -> (tensor<2x1x4x64xf32>, tensor<2x1x4x64xf32>, tensor<2x1x4xf32>)
  %sk, %sv, %sm = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, block = 16, window = 8, summary = 4, levels = auto, compress = conv, causal = false, max_seq = 1024>}
      : (tensor<2x100x64xf32>, tensor<2x100x64xf32>, tensor<2x100xf32>) -> (tensor<2x1x4x64xf32>, tensor<2x1x4x64xf32>, tensor<2x1x4xf32>)
  return %k2, %sk : tensor<2x25x64xf32>, tensor<2x1x4x64xf32>
}

// CHECK-LABEL: func.func @pyramid_fused
func.func @pyramid_fused(%h: tensor<?x?x128xf32>, %q: tensor<?x?x128xf32>,
                         %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>,
                         %w1: tensor<96x128xf32>, %b1: tensor<96xf32>,
                         %w2: tensor<96xf32>, %b2: tensor<1xf32>,
                         %ck2: tensor<2x2x32xf32>, %cv2: tensor<2x2x32xf32>,
                         %ck3: tensor<2x2x32xf32>, %cv3: tensor<2x2x32xf32>)
    -> (tensor<?x?x128xf32>, tensor<?x?x128xf32>) {
  // CHECK: hag.pyramid_attention %{{.+}}, %{{.+}}, %{{.+}} gate(%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}) {config = #[[SEL]]}
  %o = hag.pyramid_attention %q, %q, %q gate (%h, %w1, %b1, %w2, %b2) {config = #hag.pyramid<heads = 4, head_dim = 32, select_k = 8, mass_bias = 0.0>}
      : (tensor<?x?x128xf32>, tensor<?x?x128xf32>, tensor<?x?x128xf32>, tensor<?x?x128xf32>, tensor<96x128xf32>, tensor<96xf32>, tensor<96xf32>, tensor<1xf32>) -> tensor<?x?x128xf32>
  // CHECK: hag.pyramid_attention %{{.+}}, %{{.+}}, %{{.+}} gate({{.*}}) conv[%{{.+}}, %{{.+}}] [%{{.+}}, %{{.+}}] {config = #[[R2]]}
  %oc = hag.pyramid_attention %q, %k, %v gate (%h, %w1, %b1, %w2, %b2) conv [%ck2, %ck3] [%cv2, %cv3]
      {config = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, ratio = 2, compress = conv>}
      : (tensor<?x?x128xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x128xf32>, tensor<96x128xf32>, tensor<96xf32>, tensor<96xf32>, tensor<1xf32>,
         tensor<2x2x32xf32>, tensor<2x2x32xf32>, tensor<2x2x32xf32>, tensor<2x2x32xf32>) -> tensor<?x?x128xf32>
  return %o, %oc : tensor<?x?x128xf32>, tensor<?x?x128xf32>
}

// Incremental decoding: rope at a dynamic position, the decode step on
// caches (rows 84 + T = 86 for max_seq 64, L 4, r 4: see DecodeCacheLayout).

// CHECK-LABEL: func.func @decode_step
func.func @decode_step(%q: tensor<?x1x8xf32>, %h: tensor<?x1x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>,
                       %pos: index, %ck: memref<?x86x8xf32>, %cv: memref<?x86x8xf32>, %aux: memref<?x172xf32>,
                       %pk: memref<?x65x8xf64>, %pv: memref<?x65x8xf64>, %pg: memref<?x65xf64>) -> tensor<?x1x8xf32> {
  // CHECK: hag.rope %{{.+}} at %{{.+}} {head_dim = 4 : i64}
  %qr = hag.rope %q at %pos {head_dim = 4 : i64} : (tensor<?x1x8xf32>, index) -> tensor<?x1x8xf32>
  // CHECK: hag.pyramid_decode %{{.+}}, %{{.+}}, %{{.+}} gate(%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}) at %{{.+}} cache(%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}})
  %o = hag.pyramid_decode %qr, %qr, %q gate (%h, %w1, %b1, %w2, %b2) at %pos cache (%ck, %cv, %aux, %pk, %pv, %pg)
      {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>}
      : (tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>,
         index, memref<?x86x8xf32>, memref<?x86x8xf32>, memref<?x172xf32>, memref<?x65x8xf64>, memref<?x65x8xf64>, memref<?x65xf64>) -> tensor<?x1x8xf32>
  return %o : tensor<?x1x8xf32>
}

// Optimizer ops (spec section 8).
// CHECK-LABEL: func.func @optimizer
func.func @optimizer(%p: tensor<5x3xf32>, %g: tensor<5x3xf32>, %m: tensor<5x3xf32>, %v: tensor<5x3xf32>, %t: tensor<i64>,
                     %lr: tensor<f32>, %g2: tensor<7xf32>, %s: tensor<f32>, %n: tensor<i64>)
    -> (tensor<5x3xf32>, tensor<f32>, tensor<f32>, tensor<i64>) {
  // CHECK: hag.all_finite %{{.+}}, %{{.+}} : (tensor<5x3xf32>, tensor<7xf32>) -> tensor<i1>
  %ok = hag.all_finite %g, %g2 : (tensor<5x3xf32>, tensor<7xf32>) -> tensor<i1>
  // CHECK: hag.clip_grad_norm %{{.+}}, %{{.+}} {max_norm = 5.000000e-01 : f64}
  %c:3 = hag.clip_grad_norm %g, %g2 {max_norm = 0.5} : (tensor<5x3xf32>, tensor<7xf32>) -> (tensor<5x3xf32>, tensor<7xf32>, tensor<f32>)
  // CHECK: hag.lr_schedule %{{.+}} {lr = 3.000000e-04 : f64, schedule = "cosine", total = 100 : i64, warmup = 10 : i64}
  %l = hag.lr_schedule %t {lr = 3.0e-4, warmup = 10 : i64, total = 100 : i64, schedule = "cosine"} : (tensor<i64>) -> tensor<f32>
  // CHECK: hag.adamw %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} step %{{.+}} lr %{{.+}} if %{{.+}} {weight_decay = 0.000000e+00 : f64}
  %a:3 = hag.adamw %p, %c#0, %m, %v step %t lr %l if %ok {weight_decay = 0.0}
      : (tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>, tensor<i64>, tensor<f32>, tensor<i1>) -> (tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>)
  // CHECK: hag.loss_scale_update %{{.+}}, %{{.+}}, %{{.+}} {growth_interval = 3 : i64}
  %r:2 = hag.loss_scale_update %ok, %s, %n {growth_interval = 3 : i64} : (tensor<i1>, tensor<f32>, tensor<i64>) -> (tensor<f32>, tensor<i64>)
  return %a#0, %c#2, %r#0, %r#1 : tensor<5x3xf32>, tensor<f32>, tensor<f32>, tensor<i64>
}

// Gradient ops (made by hag-autodiff).
// CHECK-LABEL: func.func @gradients
func.func @gradients(%dy: tensor<2x7x16xf32>, %x: tensor<2x7x8xf32>, %w: tensor<16x8xf32>, %tok: tensor<2x7xi32>, %dl: tensor<f32>)
    -> (tensor<2x7x8xf32>, tensor<16x8xf32>, tensor<16xf32>, tensor<16x8xf32>, tensor<2x7x16xf32>) {
  // CHECK: hag.linear_backward %{{.+}}, %{{.+}}, %{{.+}} : (tensor<2x7x16xf32>, tensor<2x7x8xf32>, tensor<16x8xf32>) -> (tensor<2x7x8xf32>, tensor<16x8xf32>)
  %dx, %dw = hag.linear_backward %dy, %x, %w : (tensor<2x7x16xf32>, tensor<2x7x8xf32>, tensor<16x8xf32>) -> (tensor<2x7x8xf32>, tensor<16x8xf32>)
  // CHECK: hag.sum_rows %{{.+}} : (tensor<2x7x16xf32>) -> tensor<16xf32>
  %db = hag.sum_rows %dy : (tensor<2x7x16xf32>) -> tensor<16xf32>
  // CHECK: hag.embedding_backward %{{.+}}, %{{.+}} : (tensor<2x7x8xf32>, tensor<2x7xi32>) -> tensor<16x8xf32>
  %dt = hag.embedding_backward %x, %tok : (tensor<2x7x8xf32>, tensor<2x7xi32>) -> tensor<16x8xf32>
  // CHECK: hag.cross_entropy_backward %{{.+}}, %{{.+}}, %{{.+}} : (tensor<f32>, tensor<2x7x16xf32>, tensor<2x7xi32>) -> tensor<2x7x16xf32>
  %dlg = hag.cross_entropy_backward %dl, %dy, %tok : (tensor<f32>, tensor<2x7x16xf32>, tensor<2x7xi32>) -> tensor<2x7x16xf32>
  return %dx, %dw, %db, %dt, %dlg : tensor<2x7x8xf32>, tensor<16x8xf32>, tensor<16xf32>, tensor<16x8xf32>, tensor<2x7x16xf32>
}

// CHECK-LABEL: func.func @more_gradients
func.func @more_gradients(%dy: tensor<2x7x8xf32>, %x: tensor<2x7x8xf32>, %s: tensor<8xf32>, %a: tensor<2x7x12xf32>)
    -> (tensor<2x7x8xf32>, tensor<8xf32>, tensor<2x7x12xf32>, tensor<2x7x12xf32>, tensor<2x7x8xf32>) {
  // CHECK: hag.rms_norm_backward %{{.+}}, %{{.+}}, %{{.+}} {eps = 9.9999999999999995E-7 : f64}
  %dx, %ds = hag.rms_norm_backward %dy, %x, %s {eps = 1.0e-6} : (tensor<2x7x8xf32>, tensor<2x7x8xf32>, tensor<8xf32>) -> (tensor<2x7x8xf32>, tensor<8xf32>)
  // CHECK: hag.swiglu_act %{{.+}}, %{{.+}} : tensor<2x7x12xf32>
  %h = hag.swiglu_act %a, %a : tensor<2x7x12xf32>
  // CHECK: hag.swiglu_act_backward %{{.+}}, %{{.+}}, %{{.+}} : (tensor<2x7x12xf32>, tensor<2x7x12xf32>, tensor<2x7x12xf32>) -> (tensor<2x7x12xf32>, tensor<2x7x12xf32>)
  %da, %du = hag.swiglu_act_backward %h, %a, %a : (tensor<2x7x12xf32>, tensor<2x7x12xf32>, tensor<2x7x12xf32>) -> (tensor<2x7x12xf32>, tensor<2x7x12xf32>)
  // CHECK: hag.rope %{{.+}} {head_dim = 4 : i64, inverse}
  %ri = hag.rope %x {head_dim = 4 : i64, inverse} : (tensor<2x7x8xf32>) -> tensor<2x7x8xf32>
  return %dx, %ds, %da, %du, %ri : tensor<2x7x8xf32>, tensor<8xf32>, tensor<2x7x12xf32>, tensor<2x7x12xf32>, tensor<2x7x8xf32>
}

// The pyramid attention's gradient ops (made by hag-autodiff).
// CHECK-LABEL: func.func @pyramid_gradients
func.func @pyramid_gradients(%do: tensor<?x?x128xf32>, %q: tensor<?x?x128xf32>, %k: tensor<?x?x64xf32>,
                             %v: tensor<?x?x64xf32>, %o: tensor<?x?x128xf32>, %a: tensor<?x?x96xf32>,
                             %b1: tensor<96xf32>, %w2: tensor<96xf32>, %b2: tensor<1xf32>,
                             %ck2: tensor<2x2x32xf32>, %ck3: tensor<2x2x32xf32>) -> tensor<?x?xf32> {
  // CHECK: hag.gate_activation %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} {temperature = 1.000000e-01 : f64}
  %g = hag.gate_activation %a, %b1, %w2, %b2 {temperature = 0.1 : f64}
      : (tensor<?x?x96xf32>, tensor<96xf32>, tensor<96xf32>, tensor<1xf32>) -> tensor<?x?xf32>
  // CHECK: hag.pyramid_attention_backward %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} conv[%{{.+}}, %{{.+}}] [%{{.+}}, %{{.+}}] {config =
  %dq, %dk, %dv, %dg, %dc:4 = hag.pyramid_attention_backward %do, %q, %k, %v, %g, %o conv [%ck2, %ck3] [%ck2, %ck3]
      {config = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, ratio = 2, compress = conv>}
      : (tensor<?x?x128xf32>, tensor<?x?x128xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?xf32>, tensor<?x?x128xf32>,
         tensor<2x2x32xf32>, tensor<2x2x32xf32>, tensor<2x2x32xf32>, tensor<2x2x32xf32>)
      -> (tensor<?x?x128xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?xf32>,
          tensor<2x2x32xf32>, tensor<2x2x32xf32>, tensor<2x2x32xf32>, tensor<2x2x32xf32>)
  // CHECK: hag.gate_backward %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} {temperature = 1.000000e-01 : f64}
  %da, %dw2, %db2 = hag.gate_backward %dg, %a, %b1, %g, %w2 {temperature = 0.1 : f64}
      : (tensor<?x?xf32>, tensor<?x?x96xf32>, tensor<96xf32>, tensor<?x?xf32>, tensor<96xf32>)
      -> (tensor<?x?x96xf32>, tensor<96xf32>, tensor<1xf32>)
  return %dg : tensor<?x?xf32>
}

// The local_only ablation prints only when set.
// CHECK-LABEL: func.func @local_only_config
func.func @local_only_config(%h: tensor<?x?x128xf32>, %w1: tensor<96x128xf32>, %b1: tensor<96xf32>,
                             %w2: tensor<96xf32>, %b2: tensor<1xf32>) -> tensor<?x?xf32> {
  // CHECK: hag.memory_gate %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} {config = #[[LOCAL]]}
  %g = hag.memory_gate %h, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 4, kv_heads = 2, head_dim = 32, local_only = true, select_k = 2, max_seq = 4096>}
      : (tensor<?x?x128xf32>, tensor<96x128xf32>, tensor<96xf32>, tensor<96xf32>, tensor<1xf32>) -> tensor<?x?xf32>
  return %g : tensor<?x?xf32>
}

// CHECK-LABEL: func.func @all_reduce
// CHECK: hag.all_reduce %{{.*}} group("tensor") : tensor<2x8xf32>
// CHECK: hag.all_reduce %{{.*}} group("data") mean : tensor<f32>
func.func @all_reduce(%x: tensor<2x8xf32>, %l: tensor<f32>) -> (tensor<2x8xf32>, tensor<f32>) {
  %0 = hag.all_reduce %x group("tensor") : tensor<2x8xf32>
  %1 = hag.all_reduce %l group("data") mean : tensor<f32>
  return %0, %1 : tensor<2x8xf32>, tensor<f32>
}
