// RUN: hag-opt %s -hag-autodiff -split-input-file -verify-diagnostics | FileCheck %s

// @loss_grad: @forward inlined, d loss = 1, the VJPs in reverse order, fan-in
// summed with hag.add (x feeds both the residual and the projection; the
// tied embedding is used twice), every weight's gradient returned by name.
// CHECK-LABEL: func.func @loss_grad
// CHECK-SAME: -> (tensor<f32>, tensor<16x8xf32> {hag.grad_of = "embed"}, tensor<8x8xf32> {hag.grad_of = "w"}, tensor<8xf32> {hag.grad_of = "bias"})
// CHECK-NOT: func.call
// CHECK: %[[LOSS:.+]] = hag.cross_entropy
// CHECK: %[[ONE:.+]] = arith.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[DL:.+]] = hag.cross_entropy_backward %[[ONE]]
// CHECK: %[[DR:.+]], %[[DE1:.+]] = hag.linear_backward %[[DL]]
// CHECK: %[[DX1:.+]], %[[DW:.+]] = hag.linear_backward %[[DR]]
// CHECK: %[[DB:.+]] = hag.sum_rows %[[DR]]
// CHECK: %[[DX:.+]] = hag.add %[[DR]], %[[DX1]]
// CHECK: %[[DE2:.+]] = hag.embedding_backward %[[DX]]
// CHECK: %[[DE:.+]] = hag.add %[[DE1]], %[[DE2]]
// CHECK: return %[[LOSS]], %[[DE]], %[[DW]], %[[DB]]
func.func @forward(%tokens: tensor<2x7xi32> {hag.input, hag.name = "tokens"}, %embed: tensor<16x8xf32> {hag.name = "embed"},
                   %w: tensor<8x8xf32> {hag.name = "w"}, %bias: tensor<8xf32> {hag.name = "bias"}) -> tensor<2x7x16xf32> {
  %x = hag.embedding %tokens, %embed : (tensor<2x7xi32>, tensor<16x8xf32>) -> tensor<2x7x8xf32>
  %h = hag.linear %x, %w, %bias : (tensor<2x7x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<2x7x8xf32>
  %r = hag.add %x, %h : tensor<2x7x8xf32>
  %logits = hag.linear %r, %embed : (tensor<2x7x8xf32>, tensor<16x8xf32>) -> tensor<2x7x16xf32>
  return %logits : tensor<2x7x16xf32>
}
func.func @loss(%tokens: tensor<2x7xi32> {hag.input, hag.name = "tokens"}, %embed: tensor<16x8xf32> {hag.name = "embed"},
                %w: tensor<8x8xf32> {hag.name = "w"}, %bias: tensor<8xf32> {hag.name = "bias"}) -> tensor<f32> {
  %logits = func.call @forward(%tokens, %embed, %w, %bias) : (tensor<2x7xi32>, tensor<16x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<2x7x16xf32>
  %l = hag.cross_entropy %logits, %tokens : (tensor<2x7x16xf32>, tensor<2x7xi32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A weight that does not reach the loss gets zeros.
// CHECK-LABEL: func.func @loss_grad
// CHECK: %[[Z:.+]] = arith.constant dense<0.000000e+00> : tensor<4x8xf32>
// CHECK: return %{{.+}}, %{{.+}}, %[[Z]]
func.func @loss(%tokens: tensor<2x7xi32> {hag.input}, %embed: tensor<16x8xf32> {hag.name = "embed"},
                %unused: tensor<4x8xf32> {hag.name = "unused"}) -> tensor<f32> {
  %x = hag.embedding %tokens, %embed : (tensor<2x7xi32>, tensor<16x8xf32>) -> tensor<2x7x8xf32>
  %logits = hag.linear %x, %embed : (tensor<2x7x8xf32>, tensor<16x8xf32>) -> tensor<2x7x16xf32>
  %l = hag.cross_entropy %logits, %tokens : (tensor<2x7x16xf32>, tensor<2x7xi32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// The fused pyramid attention: the gate's hidden projection and g
// recomputed, the backward kernel, the gate's backward, the projection's.
// CHECK-LABEL: func.func @loss_grad
// CHECK: %[[O:.+]] = hag.pyramid_attention
// CHECK: %[[HID:.+]] = hag.linear %[[X:[^ ]+]], %[[W1:[^ ]+]] : ({{.*}}) -> tensor<2x8x6xf32>
// CHECK: %[[G:.+]] = hag.gate_activation %[[HID]], %[[B1:[^ ,]+]], %[[W2:[^ ,]+]], %{{.+}} {temperature = 1.000000e-01 : f64}
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]], %[[DG:.+]] = hag.pyramid_attention_backward %{{.+}}, %[[X]], %[[X]], %[[X]], %[[G]], %[[O]] {config =
// CHECK: %[[DH:.+]], %[[DW2:.+]], %[[DB2:.+]] = hag.gate_backward %[[DG]], %[[HID]], %[[B1]], %[[G]], %[[W2]]
// CHECK: %{{.+}}, %[[DW1:.+]] = hag.linear_backward %[[DH]], %[[X]], %[[W1]]
// CHECK: %[[DB1:.+]] = hag.sum_rows %[[DH]]
// CHECK: return %{{.+}}, %{{.+}}, %[[DW1]], %[[DB1]], %[[DW2]], %[[DB2]]
func.func @loss(%tokens: tensor<2x8xi32> {hag.input}, %embed: tensor<16x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>,
                %w2: tensor<6xf32>, %b2: tensor<1xf32>) -> tensor<f32> {
  %x = hag.embedding %tokens, %embed : (tensor<2x8xi32>, tensor<16x8xf32>) -> tensor<2x8x8xf32>
  %o = hag.pyramid_attention %x, %x, %x gate (%x, %w1, %b1, %w2, %b2) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 4, window = 2, summary = 2, max_seq = 64>}
      : (tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<2x8x8xf32>
  %logits = hag.linear %o, %embed : (tensor<2x8x8xf32>, tensor<16x8xf32>) -> tensor<2x8x16xf32>
  %l = hag.cross_entropy %logits, %tokens : (tensor<2x8x16xf32>, tensor<2x8xi32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// The unfused pyramid has no VJP of its own: the error says to fuse first.
func.func @loss(%tokens: tensor<2x2xi32> {hag.input}, %x: tensor<2x8x8xf32>, %g: tensor<2x8xf32>,
                %embed: tensor<16x8xf32>) -> tensor<f32> {
  // expected-error @+1 {{hag-autodiff: 'hag.build_level' has no vector-Jacobian product: differentiate the fused hag.pyramid_attention (run hag-fuse-pyramid first; hag-compile does)}}
  %k2, %v2, %m2 = hag.build_level %x, %x, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 4, window = 2, summary = 2, max_seq = 64>, level = 2 : i64}
      : (tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8xf32>) -> (tensor<2x2x8xf32>, tensor<2x2x8xf32>, tensor<2x2xf32>)
  %logits = hag.linear %k2, %embed : (tensor<2x2x8xf32>, tensor<16x8xf32>) -> tensor<2x2x16xf32>
  %l = hag.cross_entropy %logits, %tokens : (tensor<2x2x16xf32>, tensor<2x2xi32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// RMSNorm, RoPE and SwiGLU: their gradient ops, the SwiGLU activation
// recomputed, RoPE's VJP the inverse rotation.
// CHECK-LABEL: func.func @loss_grad
// CHECK: hag.swiglu_act
// CHECK: hag.linear_backward
// CHECK: hag.swiglu_act_backward
// CHECK: hag.rms_norm_backward
// CHECK: hag.rope %{{.+}} {head_dim = 4 : i64, inverse}
// CHECK: hag.rms_norm_backward
func.func @loss(%tokens: tensor<2x7xi32> {hag.input}, %embed: tensor<16x8xf32>, %s: tensor<8xf32>, %wg: tensor<12x8xf32>,
                %wu: tensor<12x8xf32>, %wd: tensor<8x12xf32>) -> tensor<f32> {
  %x = hag.embedding %tokens, %embed : (tensor<2x7xi32>, tensor<16x8xf32>) -> tensor<2x7x8xf32>
  %n = hag.rms_norm %x, %s : (tensor<2x7x8xf32>, tensor<8xf32>) -> tensor<2x7x8xf32>
  %r = hag.rope %n {head_dim = 4 : i64} : (tensor<2x7x8xf32>) -> tensor<2x7x8xf32>
  %n2 = hag.rms_norm %r, %s : (tensor<2x7x8xf32>, tensor<8xf32>) -> tensor<2x7x8xf32>
  %m = hag.swiglu %n2, %wg, %wu, %wd : (tensor<2x7x8xf32>, tensor<12x8xf32>, tensor<12x8xf32>, tensor<8x12xf32>) -> tensor<2x7x8xf32>
  %logits = hag.linear %m, %embed : (tensor<2x7x8xf32>, tensor<16x8xf32>) -> tensor<2x7x16xf32>
  %l = hag.cross_entropy %logits, %tokens : (tensor<2x7x16xf32>, tensor<2x7xi32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{hag-autodiff: @loss must return one 0-d f32 loss}}
func.func @loss(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
