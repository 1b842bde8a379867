// RUN: hag-opt %s -split-input-file -verify-diagnostics

// Every verifier message of the hag dialect and of #hag.pyramid.

// expected-error @+1 {{duplicate key 'heads'}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, heads = 3>}

// -----

// expected-error @+1 {{unknown key 'hedas' in #hag.pyramid}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, hedas = 3>}

// -----

// expected-error @+1 {{levels must be 3..12 or auto, got 0}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, levels = 0>}

// -----

// expected-error @+1 {{compress must be gated_mean, max or conv, got 'mean'}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, compress = mean>}

// -----

// expected-error @+1 {{causal must be true or false}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, causal = 1>}

// -----

// expected-error @+1 {{local_only must be true or false}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, local_only = yes>}

// -----

// expected-error @+1 {{#hag.pyramid needs 'heads' and 'head_dim'}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2>}

// -----

// expected-error @+1 {{invalid pyramid configuration: heads (0) must be >= 1}}
func.func private @f() attributes {c = #hag.pyramid<heads = 0, head_dim = 4>}

// -----

// expected-error @+1 {{invalid pyramid configuration: kv_heads (0) must be >= 1}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, kv_heads = 0, head_dim = 4>}

// -----

// expected-error @+1 {{invalid pyramid configuration: heads (4) must be a multiple of kv_heads (3)}}
func.func private @f() attributes {c = #hag.pyramid<heads = 4, kv_heads = 3, head_dim = 4>}

// -----

// expected-error @+1 {{invalid pyramid configuration: head_dim (0) must be >= 1}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 0>}

// -----

// expected-error @+1 {{invalid pyramid configuration: ratio (1) must be >= 2}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, ratio = 1>}

// -----

// expected-error @+1 {{invalid pyramid configuration: block (0) must be >= 1}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, block = 0>}

// -----

// expected-error @+1 {{invalid pyramid configuration: block (10) must be a multiple of ratio (4)}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, block = 10, ratio = 4>}

// -----

// expected-error @+1 {{invalid pyramid configuration: levels (2) must be in [3, 12] or auto}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, levels = 2>}

// -----

// expected-error @+1 {{invalid pyramid configuration: levels (13) must be in [3, 12] or auto}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, levels = 13>}

// -----

// expected-error @+1 {{invalid pyramid configuration: window (0) must be >= 1}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, window = 0>}

// -----

// expected-error @+1 {{invalid pyramid configuration: summary (0) must be in [1, 1024]}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, summary = 0>}

// -----

// expected-error @+1 {{invalid pyramid configuration: summary (1025) must be in [1, 1024]}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, summary = 1025>}

// -----

// expected-error @+1 {{invalid pyramid configuration: temperature (0) must be finite and > 0}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, temperature = 0.0>}

// -----

// expected-error @+1 {{invalid pyramid configuration: mass_bias (-1) must be finite and >= 0}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, mass_bias = -1.0>}

// -----

// expected-error @+1 {{invalid pyramid configuration: select_k (-1) must be >= 0}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, select_k = -1>}

// -----

// expected-error @+1 {{invalid pyramid configuration: eps (0) must be finite and > 0}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, eps = 0.0>}

// -----

// expected-error @+1 {{invalid pyramid configuration: max_seq (0) must be >= 1}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, max_seq = 0>}

// -----

// expected-error @+1 {{invalid pyramid configuration: levels = auto needs more than 12 levels at max_seq (1073741824) with block (2), ratio (2) and window (1)}}
func.func private @f() attributes {c = #hag.pyramid<heads = 2, head_dim = 4, levels = auto, ratio = 2, block = 2, window = 1, max_seq = 1073741824>}

// -----

func.func @f(%t: tensor<?xi32>, %e: tensor<16x8xf32>) {
  // expected-error @+1 {{expects tokens to have rank 2, got 1}}
  %x = hag.embedding %t, %e : (tensor<?xi32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%t: tensor<?x?xi32>, %e: tensor<16x8xf32>) {
  // expected-error @+1 {{expects feature size of result (9) to equal width of table (8)}}
  %x = hag.embedding %t, %e : (tensor<?x?xi32>, tensor<16x8xf32>) -> tensor<?x?x9xf32>
  return
}

// -----

func.func @f(%t: tensor<2x?xi32>, %e: tensor<16x8xf32>) {
  // expected-error @+1 {{expects batch of result (3) to equal batch of tokens (2)}}
  %x = hag.embedding %t, %e : (tensor<2x?xi32>, tensor<16x8xf32>) -> tensor<3x?x8xf32>
  return
}

// -----

func.func @f(%t: tensor<2x?xi32>, %e: tensor<16x8xf32>) {
  // expected-error @+1 {{expects every floating-point operand and result to have element type 'f32', but result #0 has 'f16'}}
  %x = hag.embedding %t, %e : (tensor<2x?xi32>, tensor<16x8xf32>) -> tensor<2x?x8xf16>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w: tensor<4x6xf32>) {
  // expected-error @+1 {{expects in-features of weight (6) to equal feature size of input (8)}}
  %y = hag.linear %x, %w : (tensor<?x?x8xf32>, tensor<4x6xf32>) -> tensor<?x?x4xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{expects feature size of result (5) to equal out-features of weight (4)}}
  %y = hag.linear %x, %w : (tensor<?x?x8xf32>, tensor<4x8xf32>) -> tensor<?x?x5xf32>
  return
}

// -----

func.func @f(%x: tensor<3x?x8xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{expects dim 0 of result (2) to equal dim 0 of input (3)}}
  %y = hag.linear %x, %w : (tensor<3x?x8xf32>, tensor<4x8xf32>) -> tensor<2x?x4xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w: tensor<4x8xf32>, %b: tensor<5xf32>) {
  // expected-error @+1 {{expects size of bias (5) to equal out-features of weight (4)}}
  %y = hag.linear %x, %w, %b : (tensor<?x?x8xf32>, tensor<4x8xf32>, tensor<5xf32>) -> tensor<?x?x4xf32>
  return
}

// -----

func.func @f(%x: tensor<f32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{expects input to have rank >= 1, got 'tensor<f32>'}}
  %y = hag.linear %x, %w : (tensor<f32>, tensor<4x8xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w: tensor<32xf32>) {
  // expected-error @+1 {{expects weight to have rank 2, got 1 ('tensor<32xf32>')}}
  %y = hag.linear %x, %w : (tensor<?x?x8xf32>, tensor<32xf32>) -> tensor<?x?x4xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>) {
  // expected-error @+1 {{expects an even head_dim, got 3}}
  %y = hag.rope %x {head_dim = 3 : i64} : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x10xf32>) {
  // expected-error @+1 {{expects the feature size of input (10) to be a multiple of head_dim (4)}}
  %y = hag.rope %x {head_dim = 4 : i64} : (tensor<?x?x10xf32>) -> tensor<?x?x10xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>) {
  // expected-error @+1 {{expects result type 'tensor<2x?x8xf32>' to equal input type 'tensor<?x?x8xf32>'}}
  %y = hag.rope %x {head_dim = 4 : i64} : (tensor<?x?x8xf32>) -> tensor<2x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>) {
  // expected-error @+1 {{expects base > 1, got 1}}
  %y = hag.rope %x {head_dim = 4 : i64, base = 1.0 : f64} : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>) {
  // expected-error @+1 {{expects offset >= 0, got -1}}
  %y = hag.rope %x {head_dim = 4 : i64, offset = -1 : i64} : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>) {
  // expected-error @+1 {{attribute 'head_dim' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %y = hag.rope %x {head_dim = 0 : i64} : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %s: tensor<7xf32>) {
  // expected-error @+1 {{expects size of scale (7) to equal feature size of input (8)}}
  %y = hag.rms_norm %x, %s : (tensor<?x?x8xf32>, tensor<7xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{expects eps > 0, got 0}}
  %y = hag.rms_norm %x, %s {eps = 0.0 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{expects result type 'tensor<?x4x8xf32>' to equal input type 'tensor<?x?x8xf32>'}}
  %y = hag.rms_norm %x, %s : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x4x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %g: tensor<32x7xf32>, %u: tensor<32x8xf32>, %d: tensor<8x32xf32>) {
  // expected-error @+1 {{expects in-features of w_gate (7) to equal feature size of input (8)}}
  %y = hag.swiglu %x, %g, %u, %d : (tensor<?x?x8xf32>, tensor<32x7xf32>, tensor<32x8xf32>, tensor<8x32xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %g: tensor<32x8xf32>, %u: tensor<31x8xf32>, %d: tensor<8x32xf32>) {
  // expected-error @+1 {{expects hidden size of w_up (31) to equal hidden size of w_gate (32)}}
  %y = hag.swiglu %x, %g, %u, %d : (tensor<?x?x8xf32>, tensor<32x8xf32>, tensor<31x8xf32>, tensor<8x32xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %g: tensor<32x8xf32>, %u: tensor<32x8xf32>, %d: tensor<8x30xf32>) {
  // expected-error @+1 {{expects in-features of w_down (30) to equal hidden size of w_gate (32)}}
  %y = hag.swiglu %x, %g, %u, %d : (tensor<?x?x8xf32>, tensor<32x8xf32>, tensor<32x8xf32>, tensor<8x30xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %g: tensor<32x8xf32>, %u: tensor<32x8xf32>, %d: tensor<9x32xf32>) {
  // expected-error @+1 {{expects out-features of w_down (9) to equal feature size of input (8)}}
  %y = hag.swiglu %x, %g, %u, %d : (tensor<?x?x8xf32>, tensor<32x8xf32>, tensor<32x8xf32>, tensor<9x32xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %g: tensor<32x8xf32>, %u: tensor<32x8xf32>, %d: tensor<8x32xf32>) {
  // expected-error @+1 {{expects result type 'tensor<?x?x9xf32>' to equal input type 'tensor<?x?x8xf32>'}}
  %y = hag.swiglu %x, %g, %u, %d : (tensor<?x?x8xf32>, tensor<32x8xf32>, tensor<32x8xf32>, tensor<8x32xf32>) -> tensor<?x?x9xf32>
  return
}

// -----

func.func @f(%a: tensor<?x?x8xf32>, %b: tensor<?x?x4xf32>) {
  // expected-error @+1 {{requires the same type for all operands and results}}
  %y = "hag.add"(%a, %b) : (tensor<?x?x8xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<2x5x16xf32>, %t: tensor<2x6xi32>) {
  // expected-error @+1 {{expects length of tokens (6) to equal length of logits (5)}}
  %y = hag.cross_entropy %l, %t : (tensor<2x5x16xf32>, tensor<2x6xi32>) -> tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<2x5x16xf32>, %t: tensor<3x5xi32>) {
  // expected-error @+1 {{expects batch of tokens (3) to equal batch of logits (2)}}
  %y = hag.cross_entropy %l, %t : (tensor<2x5x16xf32>, tensor<3x5xi32>) -> tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<2x5x16xf32>, %t: tensor<2x5xi32>) {
  // expected-error @+1 {{result #0 must be 0D tensor of 32-bit float values}}
  %y = hag.cross_entropy %l, %t : (tensor<2x5x16xf32>, tensor<2x5xi32>) -> tensor<1xf32>
  return
}

// -----

func.func @f(%l: tensor<2x5x16xf32>, %t: tensor<2x5xf32>) {
  // expected-error @+1 {{operand #1 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values}}
  %y = hag.cross_entropy %l, %t : (tensor<2x5x16xf32>, tensor<2x5xf32>) -> tensor<f32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w1: tensor<6x7xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects in-features of w1 (7) to equal feature size of the gate input (8)}}
  %g = hag.memory_gate %x, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<6x7xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<5xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects size of b1 (5) to equal out-features of w1 (6)}}
  %g = hag.memory_gate %x, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<5xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<5xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects size of w2 (5) to equal out-features of w1 (6)}}
  %g = hag.memory_gate %x, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<5xf32>, tensor<1xf32>) -> tensor<?x?xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<2xf32>) {
  // expected-error @+1 {{expects size of b2 (2) to equal one (1)}}
  %g = hag.memory_gate %x, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<2xf32>) -> tensor<?x?xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects result to have rank 2, got 3 ('tensor<?x?x1xf32>')}}
  %g = hag.memory_gate %x, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?x1xf32>
  return
}

// -----

func.func @f(%x: tensor<1x100x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{sequence length of input (100) exceeds max_seq (64)}}
  %g = hag.memory_gate %x, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<1x100x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<1x100xf32>
  return
}

// -----

func.func @f(%x: tensor<1x10x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects length of result (11) to equal length of input (10)}}
  %g = hag.memory_gate %x, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<1x10x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<1x11xf32>
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %m: tensor<?x?xf32>, %ck: tensor<2x4x4xf32>, %cv: tensor<2x4x3xf32>) {
  // expected-error @+1 {{expects a compressed level in [2, 3] (the config has 4 levels), got level 1}}
  %a, %b, %c = hag.build_level %k, %v, %m {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 1 : i64} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %m: tensor<?x?xf32>, %ck: tensor<2x4x4xf32>, %cv: tensor<2x4x3xf32>) {
  // expected-error @+1 {{expects a compressed level in [2, 3] (the config has 4 levels), got level 4}}
  %a, %b, %c = hag.build_level %k, %v, %m {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 4 : i64} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x6xf32>, %v: tensor<?x?x6xf32>, %m: tensor<?x?xf32>, %ck: tensor<2x4x4xf32>, %cv: tensor<2x4x3xf32>) {
  // expected-error @+1 {{expects feature size of keys (6) to equal kv_heads * head_dim (8)}}
  %a, %b, %c = hag.build_level %k, %v, %m {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 2 : i64} : (tensor<?x?x6xf32>, tensor<?x?x6xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x10x8xf32>, %v: tensor<?x10x8xf32>, %m: tensor<?x11xf32>, %ck: tensor<2x4x4xf32>, %cv: tensor<2x4x3xf32>) {
  // expected-error @+1 {{expects length of mass (11) to equal length of keys (10)}}
  %a, %b, %c = hag.build_level %k, %v, %m {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 2 : i64} : (tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x11xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x10x8xf32>, %v: tensor<?x10x8xf32>, %m: tensor<?x10xf32>, %ck: tensor<2x4x4xf32>, %cv: tensor<2x4x3xf32>) {
  // expected-error @+1 {{expects length of result keys (4) to equal ceil(input length / ratio) (3)}}
  %a, %b, %c = hag.build_level %k, %v, %m {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 2 : i64} : (tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x10xf32>) -> (tensor<?x4x8xf32>, tensor<?x4x8xf32>, tensor<?x4xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %m: tensor<?x?xf32>, %ck: tensor<2x4x4xf32>, %cv: tensor<2x4x3xf32>) {
  // expected-error @+1 {{expects conv weights for compress = conv}}
  %a, %b, %c = hag.build_level %k, %v, %m {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, compress = conv>, level = 2 : i64} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %m: tensor<?x?xf32>, %ck: tensor<2x4x4xf32>, %cv: tensor<2x4x3xf32>) {
  // expected-error @+1 {{expects no conv weights for compress = gated_mean}}
  %a, %b, %c = hag.build_level %k, %v, %m conv (%ck, %cv) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 2 : i64} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<2x4x4xf32>, tensor<2x4x3xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %m: tensor<?x?xf32>, %ck: tensor<2x4x4xf32>, %cv: tensor<2x4x3xf32>) {
  // expected-error @+1 {{expects dim 2 of conv_values (3) to equal head_dim (4)}}
  %a, %b, %c = hag.build_level %k, %v, %m conv (%ck, %cv) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, compress = conv>, level = 2 : i64} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<2x4x4xf32>, tensor<2x4x3xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x20x8xf32>, %v: tensor<?x20x8xf32>, %m: tensor<?x20xf32>, %ck: tensor<2x4x4xf32>, %cv: tensor<2x4x3xf32>) {
  // expected-error @+1 {{input length (20) exceeds level 2's length at max_seq (16)}}
  %a, %b, %c = hag.build_level %k, %v, %m {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 3 : i64} : (tensor<?x20x8xf32>, tensor<?x20x8xf32>, tensor<?x20xf32>) -> (tensor<?x5x8xf32>, tensor<?x5x8xf32>, tensor<?x5xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x4xf32>, %m: tensor<?x?xf32>, %ck: tensor<2x4x4xf32>, %cv: tensor<2x4x3xf32>) {
  // expected-error @+1 {{expects feature size of values (4) to equal kv_heads * head_dim (8)}}
  %a, %b, %c = hag.build_level %k, %v, %m {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 2 : i64} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x20x8xf32>, %v: tensor<?x20x8xf32>, %g: tensor<?x20xf32>) {
  // expected-error @+1 {{expects block count of summary keys (2) to equal ceil(length / block) (3)}}
  %a, %b, %c = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x20x8xf32>, tensor<?x20x8xf32>, tensor<?x20xf32>) -> (tensor<?x2x2x8xf32>, tensor<?x2x2x8xf32>, tensor<?x2x2xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %g: tensor<?x?xf32>) {
  // expected-error @+1 {{expects token count of summary keys (3) to equal summary (2)}}
  %a, %b, %c = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x3x8xf32>, tensor<?x?x3x8xf32>, tensor<?x?x3xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %g: tensor<?x?xf32>) {
  // expected-error @+1 {{expects summary keys and values of one type, got 'tensor<?x?x2x8xf32>' and 'tensor<?x?x2x6xf32>'}}
  %a, %b, %c = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x2x8xf32>, tensor<?x?x2x6xf32>, tensor<?x?x2xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %g: tensor<?x?xf32>) {
  // expected-error @+1 {{expects dim 2 of summary mass (3) to equal dim 2 of summary keys (2)}}
  %a, %b, %c = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x3xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %g: tensor<?x?xf32>) {
  // expected-error @+1 {{expects block count of summary keys (2) to equal one block when bidirectional (1)}}
  %a, %b, %c = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, causal = false>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x2x2x8xf32>, tensor<?x2x2x8xf32>, tensor<?x2x2xf32>)
  return
}

// -----

func.func @f(%k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %g: tensor<?x?xf32>) {
  // expected-error @+1 {{expects summary mass to have rank 3, got 2 ('tensor<?x?xf32>')}}
  %a, %b, %c = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?xf32>)
  return
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %g: tensor<?x?xf32>, %lk0: tensor<?x?x8xf32>, %lm0: tensor<?x?xf32>, %sk: tensor<?x?x2x8xf32>, %sm: tensor<?x?x2xf32>) {
  // expected-error @+1 {{expects 2 compressed levels (levels 2..3 of 4), got 1 keys, 1 values and 1 masses}}
  %o = hag.cross_level_attention %q, %k, %k, %g levels [%lk0] [%lk0] [%lm0] summary (%sk, %sk, %sm) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x?x6xf32>, %k: tensor<?x?x8xf32>, %g: tensor<?x?xf32>, %lk0: tensor<?x?x8xf32>, %lk1: tensor<?x?x8xf32>, %lm0: tensor<?x?xf32>, %lm1: tensor<?x?xf32>, %sk: tensor<?x?x2x8xf32>, %sm: tensor<?x?x2xf32>) {
  // expected-error @+1 {{expects feature size of queries (6) to equal heads * head_dim (8)}}
  %o = hag.cross_level_attention %q, %k, %k, %g levels [%lk0, %lk1] [%lk0, %lk1] [%lm0, %lm1] summary (%sk, %sk, %sm) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x6xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>) -> tensor<?x?x6xf32>
  return
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %g: tensor<?x?xf32>, %lk0: tensor<?x?x8xf32>, %lk1: tensor<?x?x8xf32>, %lm0: tensor<?x?xf32>, %lm1: tensor<?x?xf32>, %sk: tensor<?x?x2x8xf32>, %sm: tensor<?x?x2xf32>) {
  // expected-error @+1 {{expects result type 'tensor<?x?x4xf32>' to equal the queries' type 'tensor<?x?x8xf32>'}}
  %o = hag.cross_level_attention %q, %k, %k, %g levels [%lk0, %lk1] [%lk0, %lk1] [%lm0, %lm1] summary (%sk, %sk, %sm) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>) -> tensor<?x?x4xf32>
  return
}

// -----

func.func @f(%q: tensor<?x30x8xf32>, %k: tensor<?x30x8xf32>, %g: tensor<?x30xf32>, %lk0: tensor<?x7x8xf32>, %lk1: tensor<?x2x8xf32>, %lm0: tensor<?x7xf32>, %lm1: tensor<?x2xf32>, %sk: tensor<?x4x2x8xf32>, %sm: tensor<?x4x2xf32>) {
  // expected-error @+1 {{expects length of level 2 keys (7) to equal ceil(length / ratio^1) (8)}}
  %o = hag.cross_level_attention %q, %k, %k, %g levels [%lk0, %lk1] [%lk0, %lk1] [%lm0, %lm1] summary (%sk, %sk, %sm) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x30x8xf32>, tensor<?x30x8xf32>, tensor<?x30x8xf32>, tensor<?x30xf32>, tensor<?x7x8xf32>, tensor<?x2x8xf32>, tensor<?x7x8xf32>, tensor<?x2x8xf32>, tensor<?x7xf32>, tensor<?x2xf32>, tensor<?x4x2x8xf32>, tensor<?x4x2x8xf32>, tensor<?x4x2xf32>) -> tensor<?x30x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x30x8xf32>, %k: tensor<?x30x8xf32>, %g: tensor<?x30xf32>, %lk0: tensor<?x8x8xf32>, %lk1: tensor<?x2x8xf32>, %lm0: tensor<?x8xf32>, %lm1: tensor<?x2xf32>, %sk: tensor<?x3x2x8xf32>, %sm: tensor<?x3x2xf32>) {
  // expected-error @+1 {{expects block count of summary keys (3) to equal ceil(length / block) (4)}}
  %o = hag.cross_level_attention %q, %k, %k, %g levels [%lk0, %lk1] [%lk0, %lk1] [%lm0, %lm1] summary (%sk, %sk, %sm) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x30x8xf32>, tensor<?x30x8xf32>, tensor<?x30x8xf32>, tensor<?x30xf32>, tensor<?x8x8xf32>, tensor<?x2x8xf32>, tensor<?x8x8xf32>, tensor<?x2x8xf32>, tensor<?x8xf32>, tensor<?x2xf32>, tensor<?x3x2x8xf32>, tensor<?x3x2x8xf32>, tensor<?x3x2xf32>) -> tensor<?x30x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x31x8xf32>, %k: tensor<?x30x8xf32>, %g: tensor<?x30xf32>, %lk0: tensor<?x?x8xf32>, %lk1: tensor<?x?x8xf32>, %lm0: tensor<?x?xf32>, %lm1: tensor<?x?xf32>, %sk: tensor<?x?x2x8xf32>, %sm: tensor<?x?x2xf32>) {
  // expected-error @+1 {{expects length of keys (30) to equal length of queries (31)}}
  %o = hag.cross_level_attention %q, %k, %k, %g levels [%lk0, %lk1] [%lk0, %lk1] [%lm0, %lm1] summary (%sk, %sk, %sm) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x31x8xf32>, tensor<?x30x8xf32>, tensor<?x30x8xf32>, tensor<?x30xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>) -> tensor<?x31x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x100x8xf32>, %k: tensor<?x100x8xf32>, %g: tensor<?x100xf32>, %lk0: tensor<?x?x8xf32>, %lk1: tensor<?x?x8xf32>, %lm0: tensor<?x?xf32>, %lm1: tensor<?x?xf32>, %sk: tensor<?x?x2x8xf32>, %sm: tensor<?x?x2xf32>) {
  // expected-error @+1 {{sequence length of queries (100) exceeds max_seq (64)}}
  %o = hag.cross_level_attention %q, %k, %k, %g levels [%lk0, %lk1] [%lk0, %lk1] [%lm0, %lm1] summary (%sk, %sk, %sm) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x100x8xf32>, tensor<?x100x8xf32>, tensor<?x100x8xf32>, tensor<?x100xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>) -> tensor<?x100x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %g: tensor<?x?xf32>, %lk0: tensor<?x?x8xf32>, %lk1: tensor<?x?x8xf32>, %lm0: tensor<?x?x1xf32>, %lm1: tensor<?x?xf32>, %sk: tensor<?x?x2x8xf32>, %sm: tensor<?x?x2xf32>) {
  // expected-error @+1 {{expects level 2 mass to have rank 2, got 3 ('tensor<?x?x1xf32>')}}
  %o = hag.cross_level_attention %q, %k, %k, %g levels [%lk0, %lk1] [%lk0, %lk1] [%lm0, %lm1] summary (%sk, %sk, %sm) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x1xf32>, tensor<?x?xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %g: tensor<?x?xf32>, %lk0: tensor<?x?x8xf32>, %lk1: tensor<?x?x8xf32>, %lm0: tensor<?x?xf32>, %lm1: tensor<?x?xf32>, %sk: tensor<?x?x2x8xf32>, %sm: tensor<?x?x3xf32>) {
  // expected-error @+1 {{expects dim 2 of summary mass (3) to equal dim 2 of summary keys (2)}}
  %o = hag.cross_level_attention %q, %k, %k, %g levels [%lk0, %lk1] [%lk0, %lk1] [%lm0, %lm1] summary (%sk, %sk, %sm) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x3xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %h: tensor<?x?x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects 2 conv weights for keys and for values (compress = conv, 2 compressed levels), got 0 and 0}}
  %o = hag.pyramid_attention %q, %q, %q gate (%h, %w1, %b1, %w2, %b2) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, compress = conv>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %h: tensor<?x?x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>, %c0: tensor<2x4x4xf32>, %c1: tensor<2x4x4xf32>) {
  // expected-error @+1 {{expects 0 conv weights for keys and for values (compress = gated_mean, 2 compressed levels), got 2 and 2}}
  %o = hag.pyramid_attention %q, %q, %q gate (%h, %w1, %b1, %w2, %b2) conv [%c0, %c1] [%c0, %c1] {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %h: tensor<?x?x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>, %c0: tensor<2x4x4xf32>, %c1: tensor<2x2x4xf32>) {
  // expected-error @+1 {{expects dim 1 of conv_keys of level 3 (2) to equal ratio (4)}}
  %o = hag.pyramid_attention %q, %q, %q gate (%h, %w1, %b1, %w2, %b2) conv [%c0, %c1] [%c0, %c1] {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, compress = conv>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>, tensor<2x4x4xf32>, tensor<2x2x4xf32>, tensor<2x4x4xf32>, tensor<2x2x4xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %h: tensor<?x?x6xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects in-features of w1 (8) to equal feature size of the gate input (6)}}
  %o = hag.pyramid_attention %q, %q, %q gate (%h, %w1, %b1, %w2, %b2) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x6xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%q: tensor<2x?x8xf32>, %h: tensor<3x?x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects batch of gate input (3) to equal batch of queries (2)}}
  %o = hag.pyramid_attention %q, %q, %q gate (%h, %w1, %b1, %w2, %b2) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<3x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<2x?x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %h: tensor<?x?x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects feature size of keys (8) to equal kv_heads * head_dim (4)}}
  %o = hag.pyramid_attention %q, %q, %q gate (%h, %w1, %b1, %w2, %b2) {config = #hag.pyramid<heads = 2, kv_heads = 1, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x6xf32>, %w1: tensor<6x6xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects feature size of input (6) to equal heads * head_dim (8)}}
  %g = hag.memory_gate %x, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x6xf32>, tensor<6x6xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?xf32>
  return
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %h: tensor<?x?x6xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects in-features of w1 (8) to equal feature size of the gate input (6)}}
  %o = hag.pyramid_attention %q, %q, %q gate (%h, %w1, %b1, %w2, %b2) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x6xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x1x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>, %pos: index, %ck: memref<?x86x8xf32>, %aux: memref<?x172xf32>, %pk: memref<?x65x8xf64>, %pg: memref<?x65xf64>) {
  // expected-error @+1 {{incremental decoding needs causal attention (spec section 10), the config is bidirectional}}
  %o = hag.pyramid_decode %q, %q, %q gate (%q, %w1, %b1, %w2, %b2) at %pos cache (%ck, %ck, %aux, %pk, %pk, %pg) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, causal = false>} : (tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>, index, memref<?x86x8xf32>, memref<?x86x8xf32>, memref<?x172xf32>, memref<?x65x8xf64>, memref<?x65x8xf64>, memref<?x65xf64>) -> tensor<?x1x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x2x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>, %pos: index, %ck: memref<?x86x8xf32>, %aux: memref<?x172xf32>, %pk: memref<?x65x8xf64>, %pg: memref<?x65xf64>) {
  // expected-error @+1 {{expects length of queries (2) to equal one token per decoding step (1)}}
  %o = hag.pyramid_decode %q, %q, %q gate (%q, %w1, %b1, %w2, %b2) at %pos cache (%ck, %ck, %aux, %pk, %pk, %pg) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x2x8xf32>, tensor<?x2x8xf32>, tensor<?x2x8xf32>, tensor<?x2x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>, index, memref<?x86x8xf32>, memref<?x86x8xf32>, memref<?x172xf32>, memref<?x65x8xf64>, memref<?x65x8xf64>, memref<?x65xf64>) -> tensor<?x2x8xf32>
  return
}

// -----

func.func @f(%q: tensor<?x1x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>, %pos: index, %ck: memref<?x86x8xf32>, %cv: memref<?x84x8xf32>, %aux: memref<?x172xf32>, %pk: memref<?x65x8xf64>, %pg: memref<?x65xf64>) {
  // expected-error @+1 {{expects dimension 1 of cache values to be 86 (the decoding cache of this config at max_seq = 64), got 84}}
  %o = hag.pyramid_decode %q, %q, %q gate (%q, %w1, %b1, %w2, %b2) at %pos cache (%ck, %cv, %aux, %pk, %pk, %pg) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>, index, memref<?x86x8xf32>, memref<?x84x8xf32>, memref<?x172xf32>, memref<?x65x8xf64>, memref<?x65x8xf64>, memref<?x65xf64>) -> tensor<?x1x8xf32>
  return
}

// -----

func.func @f(%q: tensor<3x1x8xf32>, %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>, %pos: index, %ck: memref<?x86x8xf32>, %aux: memref<?x172xf32>, %pk: memref<2x65x8xf64>, %pg: memref<?x65xf64>) {
  // expected-error @+1 {{expects the batch of prefix keys (2) to equal the queries' batch (3)}}
  %o = hag.pyramid_decode %q, %q, %q gate (%q, %w1, %b1, %w2, %b2) at %pos cache (%ck, %ck, %aux, %pk, %pk, %pg) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>} : (tensor<3x1x8xf32>, tensor<3x1x8xf32>, tensor<3x1x8xf32>, tensor<3x1x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>, index, memref<?x86x8xf32>, memref<?x86x8xf32>, memref<?x172xf32>, memref<2x65x8xf64>, memref<2x65x8xf64>, memref<?x65xf64>) -> tensor<3x1x8xf32>
  return
}

// -----

func.func @f(%p: tensor<5x3xf32>, %g: tensor<3x5xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{expects grad to have the parameter's type 'tensor<5x3xf32>', got 'tensor<3x5xf32>'}}
  %a:3 = hag.adamw %p, %g, %p, %p step %t lr %lr : (tensor<5x3xf32>, tensor<3x5xf32>, tensor<5x3xf32>, tensor<5x3xf32>, tensor<i64>, tensor<f32>) -> (tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>)
  return
}

// -----

func.func @f(%p: tensor<5x3xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{expects betas in [0, 1), got (9.000000e-01, 1.000000e+00)}}
  %a:3 = hag.adamw %p, %p, %p, %p step %t lr %lr {beta2 = 1.0} : (tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>, tensor<i64>, tensor<f32>) -> (tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>)
  return
}

// -----

func.func @f(%p: tensor<5x3xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{expects eps > 0, got 0}}
  %a:3 = hag.adamw %p, %p, %p, %p step %t lr %lr {eps = 0.0} : (tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>, tensor<i64>, tensor<f32>) -> (tensor<5x3xf32>, tensor<5x3xf32>, tensor<5x3xf32>)
  return
}

// -----

func.func @f(%g: tensor<5x3xf32>) {
  // expected-error @+1 {{expects result 0 to have the type of gradient 0 ('tensor<5x3xf32>'), got 'tensor<3x5xf32>'}}
  %c:2 = hag.clip_grad_norm %g : (tensor<5x3xf32>) -> (tensor<3x5xf32>, tensor<f32>)
  return
}

// -----

func.func @f(%g: tensor<5x3xf32>) {
  // expected-error @+1 {{expects max_norm > 0, got -1}}
  %c:2 = hag.clip_grad_norm %g {max_norm = -1.0} : (tensor<5x3xf32>) -> (tensor<5x3xf32>, tensor<f32>)
  return
}

// -----

func.func @f(%t: tensor<i64>) {
  // expected-error @+1 {{expects schedule 'constant' or 'cosine', got 'linear'}}
  %l = hag.lr_schedule %t {lr = 1.0e-3, schedule = "linear"} : (tensor<i64>) -> tensor<f32>
  return
}

// -----

func.func @f(%t: tensor<i64>) {
  // expected-error @+1 {{expects total (10) > warmup (10) for the cosine schedule}}
  %l = hag.lr_schedule %t {lr = 1.0e-3, warmup = 10 : i64, total = 10 : i64, schedule = "cosine"} : (tensor<i64>) -> tensor<f32>
  return
}

// -----

func.func @f(%ok: tensor<i1>, %s: tensor<f32>, %n: tensor<i64>) {
  // expected-error @+1 {{expects backoff_factor in (0, 1), got 2}}
  %r:2 = hag.loss_scale_update %ok, %s, %n {backoff_factor = 2.0} : (tensor<i1>, tensor<f32>, tensor<i64>) -> (tensor<f32>, tensor<i64>)
  return
}

// -----

func.func @f(%ok: tensor<i1>, %s: tensor<f32>, %n: tensor<i64>) {
  // expected-error @+1 {{expects growth_interval >= 1, got 0}}
  %r:2 = hag.loss_scale_update %ok, %s, %n {growth_interval = 0 : i64} : (tensor<i1>, tensor<f32>, tensor<i64>) -> (tensor<f32>, tensor<i64>)
  return
}


// -----

func.func @f(%dy: tensor<2x7x16xf32>, %x: tensor<2x7x8xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{expects weight_grad to have the type of weight ('tensor<16x8xf32>'), got 'tensor<8x16xf32>'}}
  %dx, %dw = hag.linear_backward %dy, %x, %w : (tensor<2x7x16xf32>, tensor<2x7x8xf32>, tensor<16x8xf32>) -> (tensor<2x7x8xf32>, tensor<8x16xf32>)
  return
}

// -----

func.func @f(%dy: tensor<2x7x12xf32>, %x: tensor<2x7x8xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{expects feature size of result gradient (12) to equal out-features of weight (16)}}
  %dx, %dw = hag.linear_backward %dy, %x, %w : (tensor<2x7x12xf32>, tensor<2x7x8xf32>, tensor<16x8xf32>) -> (tensor<2x7x8xf32>, tensor<16x8xf32>)
  return
}

// -----

func.func @f(%dy: tensor<2x7x16xf32>) {
  // expected-error @+1 {{expects size of result (8) to equal feature size of input (16)}}
  %db = hag.sum_rows %dy : (tensor<2x7x16xf32>) -> tensor<8xf32>
  return
}

// -----

func.func @f(%dy: tensor<2x7x8xf32>, %tok: tensor<2x6xi32>) {
  // expected-error @+1 {{expects dim 1 of tokens (6) to equal dim 1 of result gradient (7)}}
  %dt = hag.embedding_backward %dy, %tok : (tensor<2x7x8xf32>, tensor<2x6xi32>) -> tensor<16x8xf32>
  return
}

// -----

func.func @f(%dl: tensor<f32>, %l: tensor<2x7x16xf32>, %tok: tensor<2x7xi32>) {
  // expected-error @+1 {{expects logits_grad to have the type of logits ('tensor<2x7x16xf32>'), got 'tensor<2x7x8xf32>'}}
  %g = hag.cross_entropy_backward %dl, %l, %tok : (tensor<f32>, tensor<2x7x16xf32>, tensor<2x7xi32>) -> tensor<2x7x8xf32>
  return
}

// -----

func.func @f(%dy: tensor<2x7x8xf32>, %x: tensor<2x7x8xf32>, %s: tensor<6xf32>) {
  // expected-error @+1 {{expects size of scale (6) to equal feature size of input (8)}}
  %dx, %ds = hag.rms_norm_backward %dy, %x, %s : (tensor<2x7x8xf32>, tensor<2x7x8xf32>, tensor<6xf32>) -> (tensor<2x7x8xf32>, tensor<6xf32>)
  return
}

// -----

func.func @f(%dh: tensor<2x7x12xf32>, %a: tensor<2x7x12xf32>, %u: tensor<2x7x10xf32>) {
  // expected-error @+1 {{expects up to have the type of gate ('tensor<2x7x12xf32>'), got 'tensor<2x7x10xf32>'}}
  %da, %du = hag.swiglu_act_backward %dh, %a, %u : (tensor<2x7x12xf32>, tensor<2x7x12xf32>, tensor<2x7x10xf32>) -> (tensor<2x7x12xf32>, tensor<2x7x12xf32>)
  return
}

// -----

func.func @f(%a: tensor<2x7x12xf32>, %b1: tensor<10xf32>, %w2: tensor<12xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects size of b1 (10) to equal feature size of hidden (12)}}
  %g = hag.gate_activation %a, %b1, %w2, %b2 {temperature = 0.1 : f64} : (tensor<2x7x12xf32>, tensor<10xf32>, tensor<12xf32>, tensor<1xf32>) -> tensor<2x7xf32>
  return
}

// -----

func.func @f(%a: tensor<2x7x12xf32>, %b1: tensor<12xf32>, %w2: tensor<12xf32>, %b2: tensor<1xf32>) {
  // expected-error @+1 {{expects temperature > 0, got 0}}
  %g = hag.gate_activation %a, %b1, %w2, %b2 {temperature = 0.0 : f64} : (tensor<2x7x12xf32>, tensor<12xf32>, tensor<12xf32>, tensor<1xf32>) -> tensor<2x7xf32>
  return
}

// -----

func.func @f(%dg: tensor<2x6xf32>, %a: tensor<2x7x12xf32>, %b1: tensor<12xf32>, %g: tensor<2x7xf32>, %w2: tensor<12xf32>) {
  // expected-error @+1 {{expects length of gate_grad (6) to equal length of hidden (7)}}
  %da, %dw2, %db2 = hag.gate_backward %dg, %a, %b1, %g, %w2 {temperature = 0.1 : f64}
      : (tensor<2x6xf32>, tensor<2x7x12xf32>, tensor<12xf32>, tensor<2x7xf32>, tensor<12xf32>) -> (tensor<2x7x12xf32>, tensor<12xf32>, tensor<1xf32>)
  return
}

// -----

func.func @f(%do: tensor<2x8x8xf32>, %q: tensor<2x8x8xf32>, %g: tensor<2x8xf32>) {
  // expected-error @+1 {{expects keys_grad to have the type of keys ('tensor<2x8x8xf32>'), got 'tensor<2x8x4xf32>'}}
  %dq, %dk, %dv, %dg = hag.pyramid_attention_backward %do, %q, %q, %q, %g, %q {config = #hag.pyramid<heads = 2, head_dim = 4, block = 4, window = 2, summary = 2, max_seq = 64>}
      : (tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8xf32>, tensor<2x8x8xf32>)
      -> (tensor<2x8x8xf32>, tensor<2x8x4xf32>, tensor<2x8x8xf32>, tensor<2x8xf32>)
  return
}

// -----

func.func @f(%do: tensor<2x8x8xf32>, %q: tensor<2x8x8xf32>, %g: tensor<2x8xf32>, %c: tensor<2x4x4xf32>) {
  // expected-error @+1 {{expects 0 conv weights for keys and for values (compress = gated_mean, 2 compressed levels), got 1 and 1}}
  %dq, %dk, %dv, %dg, %d1, %d2 = hag.pyramid_attention_backward %do, %q, %q, %q, %g, %q conv [%c] [%c] {config = #hag.pyramid<heads = 2, head_dim = 4, block = 4, window = 2, summary = 2, max_seq = 64>}
      : (tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8xf32>, tensor<2x8x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>)
      -> (tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>)
  return
}

// -----

func.func @all_reduce_group(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{group must be "tensor", "data", "pipeline" or "embedding", got "stage"}}
  %0 = hag.all_reduce %x group("stage") mean : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @inner_product_types(%a: tensor<4xf32>, %b: tensor<5xf32>) -> tensor<f32> {
  // expected-error @+1 {{operands must have the same type, got 'tensor<4xf32>' and 'tensor<5xf32>'}}
  %0 = hag.inner_product %a, %b : (tensor<4xf32>, tensor<5xf32>) -> tensor<f32>
  return %0 : tensor<f32>
}
