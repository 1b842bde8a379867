// RUN: hag-opt %s --hag-check-host-code --split-input-file --verify-diagnostics

// Kernels' own accesses are fine; the host's are not.
func.func @ok(%x: memref<4xf32>) {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  gpu.launch blocks(%a, %b, %c) in (%d = %c1, %e = %c1, %f = %c1) threads(%g, %h, %i) in (%j = %c1, %k = %c1, %l = %c1) {
    %v = memref.load %x[%c0] : memref<4xf32>
    memref.store %v, %x[%c1] : memref<4xf32>
    gpu.terminator
  }
  return
}

// -----

func.func @host_read(%x: memref<4xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{'memref.load' in host function 'host_read' reads device memory on the host: the CUDA lowering could not move it into a kernel}}
  %v = memref.load %x[%c0] : memref<4xf32>
  return %v : f32
}

// -----

// A scalar input marked hagrt.host (the decoding position) is host memory.
func.func @host_argument(%pos: memref<i64> {hagrt.host}) -> i64 {
  %v = memref.load %pos[] : memref<i64>
  return %v : i64
}

// -----

func.func @host_write(%x: memref<4xf32>, %v: vector<4xf32>) {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{'vector.store' in host function 'host_write' writes device memory on the host}}
  vector.store %v, %x[%c0] : memref<4xf32>, vector<4xf32>
  return
}

// -----

func.func @host_copy(%x: memref<4xf32>, %y: memref<4xf32>) {
  // expected-error @+1 {{'memref.copy' in host function 'host_copy' copies device memory on the host}}
  memref.copy %x, %y : memref<4xf32> to memref<4xf32>
  return
}

// -----

// The host's own stack is the host's to touch; handing it to a kernel is
// not.
memref.global "private" constant @c : memref<4xf32> = dense<1.0>
func.func @host_stack(%x: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %s = memref.alloca() : memref<4xf32>
  %g = memref.get_global @c : memref<4xf32>
  %v = memref.load %g[%c0] : memref<4xf32>
  memref.store %v, %s[%c0] : memref<4xf32>
  // expected-error @+1 {{'func.call' in host function 'host_stack' passes host memory (a stack buffer or host global) where device memory is expected}}
  func.call @launcher(%s) : (memref<4xf32>) -> ()
  return
}
func.func private @launcher(memref<4xf32>)
