// RUN: hag-opt %s -hag-fuse-pyramid -split-input-file | FileCheck %s
// RUN: hag-opt %s -hag-pipeline-hag -split-input-file | FileCheck %s

// The whole unfused pyramid becomes one hag.pyramid_attention; the gate,
// levels and summary are erased.
// CHECK-LABEL: func.func @fuse
// CHECK-SAME: (%[[H:[^:]+]]: tensor<?x?x8xf32>, %[[Q:[^:]+]]: tensor<?x?x8xf32>, %[[K:[^:]+]]: tensor<?x?x8xf32>, %[[V:[^:]+]]: tensor<?x?x8xf32>, %[[W1:[^:]+]]: tensor<6x8xf32>, %[[B1:[^:]+]]: tensor<6xf32>, %[[W2:[^:]+]]: tensor<6xf32>, %[[B2:[^:]+]]: tensor<1xf32>)
// CHECK-NOT: hag.memory_gate
// CHECK-NOT: hag.build_level
// CHECK-NOT: hag.global_summary
// CHECK: %[[O:.+]] = hag.pyramid_attention %[[Q]], %[[K]], %[[V]] gate(%[[H]], %[[W1]], %[[B1]], %[[W2]], %[[B2]]) {config = #pyramid}
// CHECK-NOT: hag.cross_level_attention
// CHECK: return %[[O]]
func.func @fuse(%h: tensor<?x?x8xf32>, %q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>,
                %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) -> tensor<?x?x8xf32> {
  %g = hag.memory_gate %h, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>}
      : (tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?xf32>
  %k2, %v2, %m2 = hag.build_level %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 2 : i64}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  %k3, %v3, %m3 = hag.build_level %k2, %v2, %m2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 3 : i64}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  %sk, %sv, %sm = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>)
  %o = hag.cross_level_attention %q, %k, %v, %g levels [%k2, %k3] [%v2, %v3] [%m2, %m3] summary (%sk, %sv, %sm)
      {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>,
         tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>) -> tensor<?x?x8xf32>
  return %o : tensor<?x?x8xf32>
}

// -----

// conv: each level's weights are carried over in level order; a gate that is
// also returned stays alive.
// CHECK-LABEL: func.func @fuse_conv
// CHECK-SAME: %[[CK2:[^:]+]]: tensor<2x4x4xf32>, %[[CV2:[^:]+]]: tensor<2x4x4xf32>, %[[CK3:[^:]+]]: tensor<2x4x4xf32>, %[[CV3:[^:]+]]: tensor<2x4x4xf32>)
// CHECK: %[[G:.+]] = hag.memory_gate
// CHECK-NOT: hag.build_level
// CHECK: %[[O:.+]] = hag.pyramid_attention {{.*}} conv[%[[CK2]], %[[CK3]]] [%[[CV2]], %[[CV3]]]
// CHECK: return %[[O]], %[[G]]
func.func @fuse_conv(%h: tensor<?x?x8xf32>, %q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>,
                     %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>,
                     %ck2: tensor<2x4x4xf32>, %cv2: tensor<2x4x4xf32>, %ck3: tensor<2x4x4xf32>, %cv3: tensor<2x4x4xf32>) -> (tensor<?x?x8xf32>, tensor<?x?xf32>) {
  %g = hag.memory_gate %h, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, compress = conv>}
      : (tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?xf32>
  %k2, %v2, %m2 = hag.build_level %k, %v, %g conv (%ck2, %cv2) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, compress = conv>, level = 2 : i64}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  %k3, %v3, %m3 = hag.build_level %k2, %v2, %m2 conv (%ck3, %cv3) {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, compress = conv>, level = 3 : i64}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  %sk, %sv, %sm = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, compress = conv>}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>)
  %o = hag.cross_level_attention %q, %k, %v, %g levels [%k2, %k3] [%v2, %v3] [%m2, %m3] summary (%sk, %sv, %sm)
      {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64, compress = conv>}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>,
         tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>) -> tensor<?x?x8xf32>
  return %o, %g : tensor<?x?x8xf32>, tensor<?x?xf32>
}

// -----

// Level 3 is built from level 2 of *other* keys: fusing would change the
// result, so nothing is touched.
// CHECK-LABEL: func.func @no_fuse_foreign_level
// CHECK: hag.memory_gate
// CHECK-COUNT-3: hag.build_level
// CHECK: hag.global_summary
// CHECK: hag.cross_level_attention
// CHECK-NOT: hag.pyramid_attention
func.func @no_fuse_foreign_level(%h: tensor<?x?x8xf32>, %q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>,
                %w1: tensor<6x8xf32>, %b1: tensor<6xf32>, %w2: tensor<6xf32>, %b2: tensor<1xf32>) -> tensor<?x?x8xf32> {
  %g = hag.memory_gate %h, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>}
      : (tensor<?x?x8xf32>, tensor<6x8xf32>, tensor<6xf32>, tensor<6xf32>, tensor<1xf32>) -> tensor<?x?xf32>
  %k2, %v2, %m2 = hag.build_level %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 2 : i64}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  %x2, %y2, %z2 = hag.build_level %q, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 2 : i64}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  %k3, %v3, %m3 = hag.build_level %x2, %y2, %z2 {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>, level = 3 : i64}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>)
  %sk, %sv, %sm = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>) -> (tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>)
  %o = hag.cross_level_attention %q, %k, %v, %g levels [%k2, %k3] [%v2, %v3] [%m2, %m3] summary (%sk, %sv, %sm)
      {config = #hag.pyramid<heads = 2, head_dim = 4, block = 8, window = 2, summary = 2, max_seq = 64>}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>,
         tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2xf32>) -> tensor<?x?x8xf32>
  return %o : tensor<?x?x8xf32>
}
