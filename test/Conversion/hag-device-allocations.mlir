// RUN: hag-opt %s --hag-device-allocations | FileCheck %s

// The host's buffers (memref.alloc/dealloc through the generic allocation
// functions) go to device memory; other malloc/free calls and the kernels'
// code are untouched.
// CHECK-LABEL: llvm.func @hagrt_cuda_alloc(i64) -> !llvm.ptr
// CHECK-LABEL: llvm.func @hagrt_cuda_free(!llvm.ptr)
// CHECK-LABEL: llvm.func @malloc(i64) -> !llvm.ptr
// CHECK-LABEL: llvm.func @f
// CHECK: %[[P:.+]] = llvm.call @hagrt_cuda_alloc(%{{.+}}) : (i64) -> !llvm.ptr
// CHECK: %[[H:.+]] = llvm.call @malloc(%{{.+}}) : (i64) -> !llvm.ptr
// CHECK: llvm.call @hagrt_cuda_free(%[[P]]) : (!llvm.ptr) -> ()
// CHECK-NOT: @_mlir_memref_to_llvm
// CHECK: gpu.module @kernels
// CHECK: llvm.call @_mlir_memref_to_llvm_alloc
module attributes {gpu.container_module} {
  llvm.func @_mlir_memref_to_llvm_alloc(i64) -> !llvm.ptr
  llvm.func @_mlir_memref_to_llvm_free(!llvm.ptr)
  llvm.func @malloc(i64) -> !llvm.ptr
  llvm.func @f(%n: i64) {
    %p = llvm.call @_mlir_memref_to_llvm_alloc(%n) : (i64) -> !llvm.ptr
    %h = llvm.call @malloc(%n) : (i64) -> !llvm.ptr
    llvm.call @_mlir_memref_to_llvm_free(%p) : (!llvm.ptr) -> ()
    llvm.return
  }
  gpu.module @kernels {
    llvm.func @_mlir_memref_to_llvm_alloc(i64) -> !llvm.ptr
    llvm.func @k(%n: i64) {
      %p = llvm.call @_mlir_memref_to_llvm_alloc(%n) : (i64) -> !llvm.ptr
      llvm.return
    }
  }
}
