// A language model without attention layers: embedding, a SwiGLU MLP
// block with RMSNorm and RoPE'd projection, the tied output projection.
// What --target=cuda compiles today (the fused attention kernel is not
// written yet): the CUDA lit tests and the runtime's CUDA-artifact tests
// use it.
#pyramid = #hag.pyramid<heads = 4, kv_heads = 4, head_dim = 32, block = 64, ratio = 4, levels = 3, window = 64, summary = 64, max_seq = 2048>
module @mlp_lm attributes {hag.config = #pyramid, hag.model = {d_model = 128 : i64, gate_hidden = 128 : i64, kind = "lm", layers = 1 : i64, mlp_hidden = 512 : i64, rope = true, rope_base = 1.000000e+04 : f64, tie_embeddings = true, vocab = 256 : i64}} {
  func.func @forward(%tokens: tensor<?x?xi32> {hag.input, hag.name = "tokens"},
                     %embed: tensor<256x128xf32> {hag.name = "embed"},
                     %norm: tensor<128xf32> {hag.name = "layers.0.mlp_norm.scale"},
                     %wq: tensor<128x128xf32> {hag.name = "layers.0.attn.wq"},
                     %wgate: tensor<512x128xf32> {hag.name = "layers.0.mlp.w_gate"},
                     %wup: tensor<512x128xf32> {hag.name = "layers.0.mlp.w_up"},
                     %wdown: tensor<128x512xf32> {hag.name = "layers.0.mlp.w_down"},
                     %fnorm: tensor<128xf32> {hag.name = "final_norm.scale"})
      -> tensor<?x?x256xf32> {
    %0 = hag.embedding %tokens, %embed : (tensor<?x?xi32>, tensor<256x128xf32>) -> tensor<?x?x128xf32>
    %1 = hag.rms_norm %0, %norm : (tensor<?x?x128xf32>, tensor<128xf32>) -> tensor<?x?x128xf32>
    %2 = hag.linear %1, %wq : (tensor<?x?x128xf32>, tensor<128x128xf32>) -> tensor<?x?x128xf32>
    %3 = hag.rope %2 {head_dim = 32 : i64} : (tensor<?x?x128xf32>) -> tensor<?x?x128xf32>
    %4 = hag.add %0, %3 : tensor<?x?x128xf32>
    %5 = hag.swiglu %4, %wgate, %wup, %wdown : (tensor<?x?x128xf32>, tensor<512x128xf32>, tensor<512x128xf32>, tensor<128x512xf32>) -> tensor<?x?x128xf32>
    %6 = hag.add %4, %5 : tensor<?x?x128xf32>
    %7 = hag.rms_norm %6, %fnorm : (tensor<?x?x128xf32>, tensor<128xf32>) -> tensor<?x?x128xf32>
    %8 = hag.linear %7, %embed : (tensor<?x?x128xf32>, tensor<256x128xf32>) -> tensor<?x?x256xf32>
    return %8 : tensor<?x?x256xf32>
  }
  func.func @loss(%tokens: tensor<?x?xi32> {hag.input, hag.name = "tokens"},
                  %embed: tensor<256x128xf32> {hag.name = "embed"},
                  %norm: tensor<128xf32> {hag.name = "layers.0.mlp_norm.scale"},
                  %wq: tensor<128x128xf32> {hag.name = "layers.0.attn.wq"},
                  %wgate: tensor<512x128xf32> {hag.name = "layers.0.mlp.w_gate"},
                  %wup: tensor<512x128xf32> {hag.name = "layers.0.mlp.w_up"},
                  %wdown: tensor<128x512xf32> {hag.name = "layers.0.mlp.w_down"},
                  %fnorm: tensor<128xf32> {hag.name = "final_norm.scale"})
      -> tensor<f32> {
    %0 = call @forward(%tokens, %embed, %norm, %wq, %wgate, %wup, %wdown, %fnorm)
        : (tensor<?x?xi32>, tensor<256x128xf32>, tensor<128xf32>, tensor<128x128xf32>, tensor<512x128xf32>, tensor<512x128xf32>, tensor<128x512xf32>, tensor<128xf32>) -> tensor<?x?x256xf32>
    %1 = hag.cross_entropy %0, %tokens : (tensor<?x?x256xf32>, tensor<?x?xi32>) -> tensor<f32>
    return %1 : tensor<f32>
  }
}
