// RUN: hag-opt %s -hag-approximate-math | FileCheck %s

// exp becomes a polynomial (no math.exp left, vectors stay vectors); log is
// left alone.
// CHECK-LABEL: func.func @softmax_tile
// CHECK-NOT: math.exp
// CHECK: math.fma {{.*}} : vector<16xf32>
// CHECK-NOT: math.exp
// CHECK: math.log %{{.+}} : f32
func.func @softmax_tile(%s: vector<16xf32>, %m: f32) -> (vector<16xf32>, f32) {
  %e = math.exp %s : vector<16xf32>
  %l = math.log %m : f32
  return %e, %l : vector<16xf32>, f32
}
