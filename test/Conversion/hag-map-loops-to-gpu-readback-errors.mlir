// RUN: hag-opt %s --hag-map-loops-to-gpu --verify-diagnostics

// The runtime reads back f64, f32, i64, i32 and i8 (i1, index) scalars; a
// device f16 the host needs is a compile error, not an unresolved symbol
// when the artifact loads on the GPU.
func.func @half(%h: memref<f16>) -> f16 {
  // expected-error @below {{host code reads a device scalar of type 'f16', which the runtime cannot copy back}}
  %x = memref.load %h[] : memref<f16>
  return %x : f16
}
