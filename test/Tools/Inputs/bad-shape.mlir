// A projection whose weight does not fit its input.
func.func @forward(%x: tensor<?x?x8xf32>, %w: tensor<4x6xf32>) -> tensor<?x?x4xf32> {
  // The verifier must name both sizes.
  %y = hag.linear %x, %w : (tensor<?x?x8xf32>, tensor<4x6xf32>) -> tensor<?x?x4xf32>
  return %y : tensor<?x?x4xf32>
}
