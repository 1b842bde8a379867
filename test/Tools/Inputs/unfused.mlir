// The unfused attention layer of examples/pyramid_attention.yaml, as
// hag-compile --compile-to=input writes it.
#pyramid = #hag.pyramid<heads = 8, kv_heads = 8, head_dim = 64, block = 64, ratio = 4, levels = 4, window = 64, summary = 64, temperature = 0.1, compress = gated_mean, causal = true, mass_bias = 1.0, select_k = 0, eps = 1.0e-06, max_seq = 65536>
module @"examples/pyramid_attention.yaml" attributes {hag.config = #pyramid} {
  func.func @forward(%arg0: tensor<?x?x512xf32> {hag.name = "x"}, %arg1: tensor<512x512xf32> {hag.name = "attn.wq"}, %arg2: tensor<512x512xf32> {hag.name = "attn.wk"}, %arg3: tensor<512x512xf32> {hag.name = "attn.wv"}, %arg4: tensor<512x512xf32> {hag.name = "attn.wo"}, %arg5: tensor<512x512xf32> {hag.name = "attn.gate.w1"}, %arg6: tensor<512xf32> {hag.name = "attn.gate.b1"}, %arg7: tensor<512xf32> {hag.name = "attn.gate.w2"}, %arg8: tensor<1xf32> {hag.name = "attn.gate.b2"}) -> tensor<?x?x512xf32> {
    %0 = hag.linear %arg0, %arg1 : (tensor<?x?x512xf32>, tensor<512x512xf32>) -> tensor<?x?x512xf32>
    %1 = hag.linear %arg0, %arg2 : (tensor<?x?x512xf32>, tensor<512x512xf32>) -> tensor<?x?x512xf32>
    %2 = hag.linear %arg0, %arg3 : (tensor<?x?x512xf32>, tensor<512x512xf32>) -> tensor<?x?x512xf32>
    %3 = hag.rope %0 {head_dim = 64 : i64} : (tensor<?x?x512xf32>) -> tensor<?x?x512xf32>
    %4 = hag.rope %1 {head_dim = 64 : i64} : (tensor<?x?x512xf32>) -> tensor<?x?x512xf32>
    %5 = hag.memory_gate %arg0, %arg5, %arg6, %arg7, %arg8 {config = #pyramid} : (tensor<?x?x512xf32>, tensor<512x512xf32>, tensor<512xf32>, tensor<512xf32>, tensor<1xf32>) -> tensor<?x?xf32>
    %level_keys, %level_values, %level_mass = hag.build_level %4, %2, %5 {config = #pyramid, level = 2 : i64} : (tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x?xf32>) -> (tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x?xf32>)
    %level_keys_0, %level_values_1, %level_mass_2 = hag.build_level %level_keys, %level_values, %level_mass {config = #pyramid, level = 3 : i64} : (tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x?xf32>) -> (tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x?xf32>)
    %summary_keys, %summary_values, %summary_mass = hag.global_summary %4, %2, %5 {config = #pyramid} : (tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x?xf32>) -> (tensor<?x?x64x512xf32>, tensor<?x?x64x512xf32>, tensor<?x?x64xf32>)
    %6 = hag.cross_level_attention %3, %4, %2, %5 levels[%level_keys, %level_keys_0] [%level_values, %level_values_1] [%level_mass, %level_mass_2] summary(%summary_keys, %summary_values, %summary_mass) {config = #pyramid} : (tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x?xf32>, tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x64x512xf32>, tensor<?x?x64x512xf32>, tensor<?x?x64xf32>) -> tensor<?x?x512xf32>
    %7 = hag.linear %6, %arg4 : (tensor<?x?x512xf32>, tensor<512x512xf32>) -> tensor<?x?x512xf32>
    return %7 : tensor<?x?x512xf32>
  }
}

