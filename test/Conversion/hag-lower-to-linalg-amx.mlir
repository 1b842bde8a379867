// RUN: hag-opt %s -hag-lower-to-linalg=amx=true | FileCheck %s --check-prefix=AMX
// RUN: hag-opt %s -hag-lower-to-linalg | FileCheck %s --check-prefix=F32

// With amx, a projection calls the AMX kernel, which checks the shapes and
// the process's permission (arch_prctl) and otherwise calls the AVX-512
// kernel; B's three bf16 pieces are packed once per call, each task splits
// its 32 rows of A, and the K loop carries four f32 accumulator tiles
// through 24 tile products per step (hh hm hl mh mm lh on 2 x 2 tiles).
// AMX-LABEL: func.func @linear
// AMX: call @hag_matmul_nt_amx(%{{.+}}, %{{.+}}, %{{.+}}) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
// AMX-DAG: memref.global "private" @hag_amx_state : memref<i32> = dense<0>
// AMX-DAG: func.func private @syscall(i64, i64, i64) -> i64
// AMX-LABEL: func.func private @hag_amx_permitted
// AMX: %[[NR:.+]] = arith.constant 158 : i64
// AMX: %[[REQ:.+]] = arith.constant 4131 : i64
// AMX: %[[XTILE:.+]] = arith.constant 18 : i64
// AMX: call @syscall(%[[NR]], %[[REQ]], %[[XTILE]])
// AMX-LABEL: func.func private @hag_bf16x3
// AMX: %[[H:.+]] = arith.truncf %{{.+}} : vector<16xf32> to vector<16xbf16>
// AMX: %[[HF:.+]] = arith.extf %[[H]] : vector<16xbf16> to vector<16xf32>
// AMX: %[[R1:.+]] = arith.subf %{{.+}}, %[[HF]] : vector<16xf32>
// AMX: %[[M:.+]] = arith.truncf %[[R1]] : vector<16xf32> to vector<16xbf16>
// AMX: %[[MF:.+]] = arith.extf %[[M]] : vector<16xbf16> to vector<16xf32>
// AMX: %[[R2:.+]] = arith.subf %[[R1]], %[[MF]] : vector<16xf32>
// AMX: %[[L:.+]] = arith.truncf %[[R2]] : vector<16xf32> to vector<16xbf16>
// AMX: return %[[H]], %[[M]], %[[L]]
// AMX-LABEL: func.func private @hag_matmul_amx_rows
// AMX: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %{{.+}} iter_args({{.*}}) -> (!amx.tile<16x16xf32>, !amx.tile<16x16xf32>, !amx.tile<16x16xf32>, !amx.tile<16x16xf32>)
// AMX-COUNT-24: amx.tile_mulf %{{.+}}, %{{.+}}, %{{.+}} : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
// AMX: scf.yield
// AMX-COUNT-4: amx.tile_store %{{.+}}[%{{.+}}, %{{.+}}], %{{.+}} : memref<?x?xf32>, !amx.tile<16x16xf32>
// AMX-LABEL: func.func private @hag_matmul_nt_amx
// AMX: %[[PERMITTED:.+]] = func.call @hag_amx_permitted() : () -> i1
// AMX: func.call @hag_matmul_amx_rows
// AMX: } else {
// AMX: func.call @hag_matmul_nt(

// Without amx (the default, and any CPU without AMX-BF16): the AVX-512
// kernel, and no AMX code at all.
// F32-LABEL: func.func @linear
// F32: call @hag_matmul_nt(%{{.+}}, %{{.+}}, %{{.+}}) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
// F32-NOT: amx.
// F32-NOT: hag_matmul_nt_amx
func.func @linear(%x: tensor<?x?x64xf32>, %w: tensor<32x64xf32>, %b: tensor<32xf32>) -> tensor<?x?x32xf32> {
  %y = hag.linear %x, %w, %b : (tensor<?x?x64xf32>, tensor<32x64xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
  return %y : tensor<?x?x32xf32>
}
