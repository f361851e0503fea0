;; The LoRA delta of a run of rows that share one adapter, in WebAssembly SIMD.
;; Source of lora-wasm.ts (rebuild: node scripts/build-kernels.mjs); used by host-lora.ts.
;;
;; dst[i, :] = scale * (x[i, :] @ A) @ B for i < rows, with x [rows, in],
;; A [in, r] and B [r, out] row-major, t a scratch of r floats. r and out must
;; be multiples of 4. All offsets are in bytes.
(module
  (memory (export "memory") 1 65536)

  (func (export "lora")
    (param $x i32) (param $rows i32) (param $in i32) (param $a i32) (param $r i32)
    (param $b i32) (param $out i32) (param $scale f32) (param $t i32) (param $dst i32)
    (local $i i32) (local $k i32) (local $j i32) (local $o i32) (local $xRow i32) (local $dRow i32)
    (local $aRow i32) (local $bp i32) (local $xk v128) (local $acc v128) (local $rB i32) (local $oB i32)
    (local.set $rB (i32.shl (local.get $r) (i32.const 2)))
    (local.set $oB (i32.shl (local.get $out) (i32.const 2)))
    (block $iDone
      (loop $iLoop
        (br_if $iDone (i32.ge_u (local.get $i) (local.get $rows)))
        (local.set $xRow (i32.add (local.get $x) (i32.mul (local.get $i) (i32.shl (local.get $in) (i32.const 2)))))
        (local.set $dRow (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $oB))))
        ;; t = x[i, :] @ A
        (memory.fill (local.get $t) (i32.const 0) (local.get $rB))
        (local.set $k (i32.const 0))
        (block $kDone
          (loop $kLoop
            (br_if $kDone (i32.ge_u (local.get $k) (local.get $in)))
            (local.set $xk (f32x4.splat (f32.load (i32.add (local.get $xRow) (i32.shl (local.get $k) (i32.const 2))))))
            (local.set $aRow (i32.add (local.get $a) (i32.mul (local.get $k) (local.get $rB))))
            (local.set $j (i32.const 0))
            (block $jDone
              (loop $jLoop
                (br_if $jDone (i32.ge_u (local.get $j) (local.get $rB)))
                (v128.store (i32.add (local.get $t) (local.get $j))
                  (f32x4.add
                    (v128.load (i32.add (local.get $t) (local.get $j)))
                    (f32x4.mul (local.get $xk) (v128.load (i32.add (local.get $aRow) (local.get $j))))))
                (local.set $j (i32.add (local.get $j) (i32.const 16)))
                (br $jLoop)))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $kLoop)))
        ;; dst[i, o..o+4] = scale * sum over j of t[j] * B[j, o..o+4]
        (local.set $o (i32.const 0))
        (block $oDone
          (loop $oLoop
            (br_if $oDone (i32.ge_u (local.get $o) (local.get $oB)))
            (local.set $acc (v128.const i32x4 0 0 0 0))
            (local.set $bp (i32.add (local.get $b) (local.get $o)))
            (local.set $j (i32.const 0))
            (block $sDone
              (loop $sLoop
                (br_if $sDone (i32.ge_u (local.get $j) (local.get $r)))
                (local.set $acc
                  (f32x4.add (local.get $acc)
                    (f32x4.mul
                      (f32x4.splat (f32.load (i32.add (local.get $t) (i32.shl (local.get $j) (i32.const 2)))))
                      (v128.load (local.get $bp)))))
                (local.set $bp (i32.add (local.get $bp) (local.get $oB)))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $sLoop)))
            (v128.store (i32.add (local.get $dRow) (local.get $o)) (f32x4.mul (local.get $acc) (f32x4.splat (local.get $scale))))
            (local.set $o (i32.add (local.get $o) (i32.const 16)))
            (br $oLoop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $iLoop))))
)
