// RUN: hag-opt %s -hag-lower-to-linalg -split-input-file -verify-diagnostics | FileCheck %s

// A projection calls the kernel library's register-tiled matmul on the rows
// of its input (W in [out, in] layout), writing through a collapsed view of
// the result in its final shape; the bias is a broadcast add.
// CHECK-LABEL: func.func @linear
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK: %[[ROWS:.+]] = tensor.collapse_shape %{{.+}} {{\[}}[0, 1], [2]] : tensor<?x?x8xf32> into tensor<?x8xf32>
// CHECK: bufferization.to_buffer %[[ROWS]] read_only
// CHECK: %[[C:.+]] = memref.alloc(%{{.+}}, %{{.+}}) : memref<?x?x4xf32>
// CHECK: %[[C2:.+]] = memref.collapse_shape %[[C]] {{\[}}[0, 1], [2]] : memref<?x?x4xf32> into memref<?x4xf32>
// CHECK: call @hag_matmul_nt(%{{.+}}, %{{.+}}, %{{.+}}) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
// CHECK: %[[Y:.+]] = bufferization.to_tensor %[[C]] restrict writable
// CHECK: linalg.generic {{.*}} ins(%[[Y]], %{{.+}} : tensor<?x?x4xf32>, tensor<4xf32>)
// CHECK-NOT: hag.
// CHECK: func.func private @hag_matmul_nt
func.func @linear(%x: tensor<?x?x8xf32>, %w: tensor<4x8xf32>, %b: tensor<4xf32>) -> tensor<?x?x4xf32> {
  %y = hag.linear %x, %w, %b : (tensor<?x?x8xf32>, tensor<4x8xf32>, tensor<4xf32>) -> tensor<?x?x4xf32>
  return %y : tensor<?x?x4xf32>
}

// -----

// RoPE's [N, d/2] cos and sin tables: the absolute position a = 64 c + l,
// f64 sincos tables of the 64 c parts (one row per 64 positions) and of the
// l parts (at most 64 rows), combined by the angle-sum identities in f64
// and truncated (the frequencies base^(-2j/d) are constants); then each
// element reads the partner element of its pair and the tables.
// CHECK-LABEL: func.func @rope
// CHECK: %[[FREQ:.+]] = arith.constant dense<[1.000000e+00, 1.000000e-02]> : tensor<2xf64>
// CHECK: %[[DIM:.+]] = tensor.dim %{{.+}}, %{{.+}} : tensor<?x?x8xf32>
// CHECK: %[[NFINE:.+]] = arith.minsi %[[DIM]], %{{.+}} : index
// CHECK: %[[COARSE:.+]]:2 = linalg.generic {{.*}} ins(%[[FREQ]] : tensor<2xf64>) outs(%{{.+}}, %{{.+}} : tensor<?x2xf64>, tensor<?x2xf64>)
// CHECK: %[[SC:.+]], %[[CC:.+]] = math.sincos %{{.+}} : f64
// CHECK: linalg.yield %[[CC]], %[[SC]]
// CHECK: tensor.empty(%[[NFINE]]) : tensor<?x2xf64>
// CHECK: %[[FINE:.+]]:2 = linalg.generic {{.*}} ins(%[[FREQ]] : tensor<2xf64>) outs(%{{.+}}, %{{.+}} : tensor<?x2xf64>, tensor<?x2xf64>)
// CHECK: arith.floordivsi
// CHECK: math.sincos %{{.+}} : f64
// CHECK: %[[TABLES:.+]]:2 = linalg.generic {{.*}} outs(%{{.+}}, %{{.+}} : tensor<?x2xf32>, tensor<?x2xf32>)
// CHECK-NOT: math.sincos
// CHECK: tensor.extract %[[COARSE]]#0
// CHECK: tensor.extract %[[COARSE]]#1
// CHECK: tensor.extract %[[FINE]]#0
// CHECK: tensor.extract %[[FINE]]#1
// CHECK: %[[COSA:.+]] = arith.subf %{{.+}}, %{{.+}} : f64
// CHECK: %[[SINA:.+]] = arith.addf %{{.+}}, %{{.+}} : f64
// CHECK: %[[CF:.+]] = arith.truncf %[[COSA]] : f64 to f32
// CHECK: %[[SF:.+]] = arith.truncf %[[SINA]] : f64 to f32
// CHECK: linalg.yield %[[CF]], %[[SF]]
// CHECK-NOT: math.sincos
// CHECK: linalg.generic {{.*}} ins(%{{.+}} : tensor<?x?x8xf32>)
// CHECK: tensor.extract %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}] : tensor<?x?x8xf32>
// CHECK: tensor.extract %[[TABLES]]#0
// CHECK: tensor.extract %[[TABLES]]#1
func.func @rope(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %y = hag.rope %x {head_dim = 4 : i64} : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// The fused attention: the gate (the hidden projection through the matmul
// kernel, the epilogue through @hag_gate_epilogue), then one call to the
// attention kernel on memrefs with the configuration as constants.
// CHECK-LABEL: func.func @attention
// CHECK: call @hag_matmul_nt
// CHECK: call @hag_gate_epilogue({{.*}}) : (memref<?x?x?xf32>, memref<?xf32>, memref<?xf32>, memref<?xf32>, f32, memref<?x?xf32>) -> ()
// CHECK: %[[OUT:.+]] = memref.alloc
// CHECK: %[[CAUSAL:.+]] = arith.constant true
// CHECK: call @hag_pyramid_attention({{.*}}, %[[CAUSAL]], {{.*}}) : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?xf32>, index, index, index, index, index, index, index, index, i1, index, index, f32, f32) -> ()
// CHECK: bufferization.to_tensor %[[OUT]] restrict writable
// CHECK: func.func private @hag_pyramid_attention
func.func @attention(%q: tensor<?x?x8xf32>, %h: tensor<?x?x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) -> tensor<?x?x8xf32> {
  %o = hag.pyramid_attention %q, %q, %q gate (%h, %w1, %b1, %w2, %b2) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?x8xf32>
  return %o : tensor<?x?x8xf32>
}

// -----

// The unfused form is not lowered: the error says what to run first.
func.func @unfused(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %g: tensor<?x?xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{cannot lower the unfused 'hag.build_level' to CPU code: run hag-fuse-pyramid first (hag-compile does)}}
  %k2, %v2, %m2 = hag.build_level %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 2 : i64}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  return %k2 : tensor<?x?x8xf32>
}

// -----

// A decoding step: the cache arguments go to the kernel as they are (cast to
// dynamic shapes, no copy), followed by the position and max_seq; rope adds
// the position to the row index (the last generic before the kernel call is
// the rotation of the one new row).
// CHECK-LABEL: func.func @decode
// CHECK-SAME: %[[POS:[a-z0-9]+]]: index, %[[CK:[a-z0-9]+]]: memref<?x86x8xf32>
// CHECK: arith.addi %[[POS]], %{{.+}} : index
// CHECK: } -> tensor<?x1x8xf32>
// CHECK-NEXT: %[[S:.+]] = arith.constant 64 : index
// CHECK: %[[CKD:.+]] = memref.cast %[[CK]] : memref<?x86x8xf32> to memref<?x?x?xf32>
// CHECK: call @hag_pyramid_decode({{.*}}, %[[CKD]], {{.*}}, %[[POS]], %[[S]], {{.*}}) : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?xf32>, memref<?x?x?xf64>, memref<?x?x?xf64>, memref<?x?xf64>, index, index, index, index, index, index, index, index, index, index, i1, index, index, f32, f32) -> ()
// CHECK-NOT: memref.copy
// CHECK: func.func private @hag_pyramid_decode
func.func @decode(%q: tensor<?x1x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>,
                  %pos: index, %ck: memref<?x86x8xf32>, %cv: memref<?x86x8xf32>, %aux: memref<?x172xf32>,
                  %pk: memref<?x65x8xf64>, %pv: memref<?x65x8xf64>, %pg: memref<?x65xf64>) -> tensor<?x1x8xf32> {
  %qr = hag.rope %q at %pos {head_dim = 4 : i64} : (tensor<?x1x8xf32>, index) -> tensor<?x1x8xf32>
  %o = hag.pyramid_decode %qr, %qr, %q gate (%q, %w1, %b1, %w2, %b2) at %pos cache (%ck, %cv, %aux, %pk, %pv, %pg)
      {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>}
      : (tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>,
         index, memref<?x86x8xf32>, memref<?x86x8xf32>, memref<?x172xf32>, memref<?x65x8xf64>, memref<?x65x8xf64>, memref<?x65xf64>) -> tensor<?x1x8xf32>
  return %o : tensor<?x1x8xf32>
}

// -----

// AdamW: the step's scalars in f64 (bias corrections through powf), then one
// elementwise generic with three results; `if %ok` selects the old values.
// CHECK-LABEL: func.func @adamw
// CHECK: math.powf %{{.+}}, %{{.+}} : f64
// CHECK: math.sqrt %{{.+}} : f64
// CHECK: linalg.generic {{.*}} ins(%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} : tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>) outs(%{{.+}}, %{{.+}}, %{{.+}} : tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>)
// CHECK: math.sqrt %{{.+}} : f32
// CHECK-COUNT-3: arith.select
// CHECK: linalg.yield
func.func @adamw(%p: tensor<5x3xf32>, %t: tensor<i64>, %lr: tensor<f32>, %ok: tensor<i1>) -> tensor<5x3xf32> {
  %a:3 = hag.adamw %p, %p, %p, %p step %t lr %lr if %ok : (tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>, tensor<i64>, tensor<f32>, tensor<i1>) -> (tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>)
  return %a#0 : tensor<5x3xf32>
}

// -----

// Global-norm clipping: f64 sums of squares reduced to 0-d tensors, one
// scaled copy per gradient.
// CHECK-LABEL: func.func @clip
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "reduction"]
// CHECK: math.fma {{.*}} : f64
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction"]
// CHECK: math.sqrt %{{.+}} : f64
// CHECK: arith.cmpf olt
func.func @clip(%a: tensor<5x3xf32>, %b: tensor<7xf32>) -> tensor<f32> {
  %c:3 = hag.clip_grad_norm %a, %b : (tensor<5x3xf32>, tensor<7xf32>) -> (tensor<5x3xf32>, tensor<7xf32>, tensor<f32>)
  return %c#2 : tensor<f32>
}
