// RUN: hag-opt %s -hag-amx-tiles-to-llvm-types -split-input-file | FileCheck %s

// A tile accumulator carried by scf.for becomes !llvm.x86_amx on the loop;
// the amx ops see it through unrealized casts (the AMX lowering consumes
// them), so convert-scf-to-cf leaves branches of an LLVM type.
// CHECK-LABEL: func.func @carried
// CHECK: %[[Z:.+]] = amx.tile_zero : !amx.tile<16x16xf32>
// CHECK: %[[ZL:.+]] = builtin.unrealized_conversion_cast %[[Z]] : !amx.tile<16x16xf32> to !llvm.x86_amx
// CHECK: %[[R:.+]] = scf.for %{{.+}} = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[ACC:.+]] = %[[ZL]]) -> (!llvm.x86_amx) {
// CHECK: %[[ACCT:.+]] = builtin.unrealized_conversion_cast %[[ACC]] : !llvm.x86_amx to !amx.tile<16x16xf32>
// CHECK: %[[P:.+]] = amx.tile_mulf %{{.+}}, %{{.+}}, %[[ACCT]]
// CHECK: %[[PL:.+]] = builtin.unrealized_conversion_cast %[[P]] : !amx.tile<16x16xf32> to !llvm.x86_amx
// CHECK: scf.yield %[[PL]] : !llvm.x86_amx
// CHECK: %[[RT:.+]] = builtin.unrealized_conversion_cast %[[R]] : !llvm.x86_amx to !amx.tile<16x16xf32>
// CHECK: amx.tile_store %{{.+}}[%{{.+}}, %{{.+}}], %[[RT]]
func.func @carried(%a: memref<16x32xbf16>, %c: memref<16x16xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %z = amx.tile_zero : !amx.tile<16x16xf32>
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %z) -> (!amx.tile<16x16xf32>) {
    %t = amx.tile_load %a[%c0, %c0] : memref<16x32xbf16> into !amx.tile<16x32xbf16>
    %p = amx.tile_mulf %t, %t, %acc : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
    scf.yield %p : !amx.tile<16x16xf32>
  }
  amx.tile_store %c[%c0, %c0], %r : memref<16x16xf32>, !amx.tile<16x16xf32>
  return
}

// -----

// A module without tiles in scf ops is left as it is.
// CHECK-LABEL: func.func @no_tiles
// CHECK: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%{{.+}} = %{{.+}}) -> (f32)
// CHECK-NOT: unrealized_conversion_cast
func.func @no_tiles(%n: index, %x: f32) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %x) -> (f32) {
    %y = arith.addf %acc, %x : f32
    scf.yield %y : f32
  }
  return %r : f32
}
