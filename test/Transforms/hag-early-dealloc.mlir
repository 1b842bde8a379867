// RUN: hag-opt %s -hag-early-dealloc -split-input-file | FileCheck %s

// Each buffer is freed right after its last use (through a view too), not
// at the end of the block.
// CHECK-LABEL: func.func @straight_line
// CHECK: %[[A:.+]] = memref.alloc() : memref<8xf32>
// CHECK: %[[B:.+]] = memref.alloc() : memref<8xf32>
// CHECK: call @use(%[[A]], %[[B]])
// CHECK-NEXT: memref.dealloc %[[A]]
// CHECK: %[[V:.+]] = memref.expand_shape %[[B]]
// CHECK: scf.for
// CHECK: memref.store %{{.+}}, %[[V]]
// CHECK: }
// CHECK-NEXT: memref.dealloc %[[B]]
// CHECK: call @other()
// CHECK-NEXT: return
func.func private @use(memref<8xf32>, memref<8xf32>)
func.func private @other()
func.func @straight_line(%x: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %a = memref.alloc() : memref<8xf32>
  %b = memref.alloc() : memref<8xf32>
  call @use(%a, %b) : (memref<8xf32>, memref<8xf32>) -> ()
  %v = memref.expand_shape %b [[0, 1]] output_shape [2, 4] : memref<8xf32> into memref<2x4xf32>
  scf.for %i = %c0 to %c2 step %c1 {
    memref.store %x, %v[%i, %c0] : memref<2x4xf32>
  }
  call @other() : () -> ()
  memref.dealloc %a : memref<8xf32>
  memref.dealloc %b : memref<8xf32>
  return
}

// -----

// A buffer that may escape (here returned through a view) keeps its
// dealloc where it was (the pass does not judge such programs).
// CHECK-LABEL: func.func @escapes
// CHECK: call @other()
// CHECK-NEXT: memref.dealloc
// CHECK-NEXT: return
func.func private @other()
func.func @escapes() -> memref<2x4xf32> {
  %a = memref.alloc() : memref<8xf32>
  %w = memref.expand_shape %a [[0, 1]] output_shape [2, 4] : memref<8xf32> into memref<2x4xf32>
  call @other() : () -> ()
  memref.dealloc %a : memref<8xf32>
  return %w : memref<2x4xf32>
}
