// Malformed IR: a missing type.
func.func @forward(%x: tensor<?x?x8xf32>) {
  %y = hag.add %x, %x :
  return
}
