;; Decode-time attention over a paged KV cache, in WebAssembly SIMD.
;; Source of attention-wasm.ts (rebuild: node scripts/build-kernels.mjs).
;;
;; Memory (owned by kv-arena.ts): pages of `P` token rows; a page holds the
;; keys of P tokens ([P, kvd] f32) followed by their values (at byte offset
;; vOff = P * kvd * 4). A sequence's layer is a table of page byte offsets
;; (i32), so token t's key row is at table[t / P] + (t % P) * kvd * 4.
;; A key or value row holds `nKv` heads of hd floats (kvd = nKv * hd); the
;; query holds nKv * group heads of hd floats, and query head h reads key /
;; value head h / group (grouped-query attention; group 1 is multi-head).
;; hd must be a multiple of 8. All offsets are in bytes.
(module
  (memory (export "memory") 1 65536)

  ;; out[h * n + t] = scale * dot(query head h, key row t's head h / group), for t < n, h < nKv * group.
  (func (export "scores")
    (param $q i32) (param $table i32) (param $n i32) (param $P i32) (param $kvd i32)
    (param $hd i32) (param $nKv i32) (param $group i32) (param $scale f32) (param $out i32)
    (local $t i32) (local $h i32) (local $kvh i32) (local $g i32) (local $j i32) (local $row i32) (local $kp i32)
    (local $qp i32) (local $acc v128) (local $acc2 v128) (local $rowBytes i32) (local $hdBytes i32)
    (local.set $rowBytes (i32.shl (local.get $kvd) (i32.const 2)))
    (local.set $hdBytes (i32.shl (local.get $hd) (i32.const 2)))
    (block $tDone
      (loop $tLoop
        (br_if $tDone (i32.ge_u (local.get $t) (local.get $n)))
        (local.set $row
          (i32.add
            (i32.load (i32.add (local.get $table) (i32.shl (i32.div_u (local.get $t) (local.get $P)) (i32.const 2))))
            (i32.mul (i32.rem_u (local.get $t) (local.get $P)) (local.get $rowBytes))))
        (local.set $h (i32.const 0))
        (local.set $kvh (i32.const 0))
        (block $kvDone
          (loop $kvLoop
            (br_if $kvDone (i32.ge_u (local.get $kvh) (local.get $nKv)))
            (local.set $kp (i32.add (local.get $row) (i32.mul (local.get $kvh) (local.get $hdBytes))))
            (local.set $g (i32.const 0))
            (block $gDone
              (loop $gLoop
                (br_if $gDone (i32.ge_u (local.get $g) (local.get $group)))
                (local.set $qp (i32.add (local.get $q) (i32.mul (local.get $h) (local.get $hdBytes))))
                (local.set $acc (v128.const i32x4 0 0 0 0))
                (local.set $acc2 (v128.const i32x4 0 0 0 0))
                (local.set $j (i32.const 0))
                ;; Two lanes of 4 per iteration (hd is a multiple of 8).
                (block $jDone
                  (loop $jLoop
                    (br_if $jDone (i32.ge_u (local.get $j) (local.get $hdBytes)))
                    (local.set $acc
                      (f32x4.add (local.get $acc)
                        (f32x4.mul
                          (v128.load (i32.add (local.get $qp) (local.get $j)))
                          (v128.load (i32.add (local.get $kp) (local.get $j))))))
                    (local.set $acc2
                      (f32x4.add (local.get $acc2)
                        (f32x4.mul
                          (v128.load offset=16 (i32.add (local.get $qp) (local.get $j)))
                          (v128.load offset=16 (i32.add (local.get $kp) (local.get $j))))))
                    (local.set $j (i32.add (local.get $j) (i32.const 32)))
                    (br $jLoop)))
                (local.set $acc (f32x4.add (local.get $acc) (local.get $acc2)))
                (f32.store
                  (i32.add (local.get $out)
                    (i32.shl (i32.add (i32.mul (local.get $h) (local.get $n)) (local.get $t)) (i32.const 2)))
                  (f32.mul (local.get $scale)
                    (f32.add
                      (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
                      (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc))))))
                (local.set $h (i32.add (local.get $h) (i32.const 1)))
                (local.set $g (i32.add (local.get $g) (i32.const 1)))
                (br $gLoop)))
            (local.set $kvh (i32.add (local.get $kvh) (i32.const 1)))
            (br $kvLoop)))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $tLoop))))

  ;; out[h * hd + j] = sum over t < n of p[h * n + t] * (value row t)[(h / group) * hd + j], for h < nKv * group.
  (func (export "mix")
    (param $p i32) (param $table i32) (param $n i32) (param $P i32) (param $kvd i32)
    (param $hd i32) (param $nKv i32) (param $group i32) (param $vOff i32) (param $out i32)
    (local $t i32) (local $h i32) (local $kvh i32) (local $g i32) (local $j i32) (local $row i32) (local $w v128)
    (local $op i32) (local $vp i32) (local $rowBytes i32) (local $hdBytes i32)
    (local.set $rowBytes (i32.shl (local.get $kvd) (i32.const 2)))
    (local.set $hdBytes (i32.shl (local.get $hd) (i32.const 2)))
    ;; The output row: nKv * group heads.
    (memory.fill (local.get $out) (i32.const 0) (i32.mul (local.get $rowBytes) (local.get $group)))
    (block $tDone
      (loop $tLoop
        (br_if $tDone (i32.ge_u (local.get $t) (local.get $n)))
        (local.set $row
          (i32.add
            (i32.add
              (i32.load (i32.add (local.get $table) (i32.shl (i32.div_u (local.get $t) (local.get $P)) (i32.const 2))))
              (local.get $vOff))
            (i32.mul (i32.rem_u (local.get $t) (local.get $P)) (local.get $rowBytes))))
        (local.set $h (i32.const 0))
        (local.set $kvh (i32.const 0))
        (block $kvDone
          (loop $kvLoop
            (br_if $kvDone (i32.ge_u (local.get $kvh) (local.get $nKv)))
            (local.set $vp (i32.add (local.get $row) (i32.mul (local.get $kvh) (local.get $hdBytes))))
            (local.set $g (i32.const 0))
            (block $gDone
              (loop $gLoop
                (br_if $gDone (i32.ge_u (local.get $g) (local.get $group)))
                (local.set $w
                  (f32x4.splat
                    (f32.load
                      (i32.add (local.get $p)
                        (i32.shl (i32.add (i32.mul (local.get $h) (local.get $n)) (local.get $t)) (i32.const 2))))))
                (local.set $op (i32.add (local.get $out) (i32.mul (local.get $h) (local.get $hdBytes))))
                (local.set $j (i32.const 0))
                (block $jDone
                  (loop $jLoop
                    (br_if $jDone (i32.ge_u (local.get $j) (local.get $hdBytes)))
                    (v128.store (i32.add (local.get $op) (local.get $j))
                      (f32x4.add
                        (v128.load (i32.add (local.get $op) (local.get $j)))
                        (f32x4.mul (local.get $w) (v128.load (i32.add (local.get $vp) (local.get $j))))))
                    (v128.store offset=16 (i32.add (local.get $op) (local.get $j))
                      (f32x4.add
                        (v128.load offset=16 (i32.add (local.get $op) (local.get $j)))
                        (f32x4.mul (local.get $w) (v128.load offset=16 (i32.add (local.get $vp) (local.get $j))))))
                    (local.set $j (i32.add (local.get $j) (i32.const 32)))
                    (br $jLoop)))
                (local.set $h (i32.add (local.get $h) (i32.const 1)))
                (local.set $g (i32.add (local.get $g) (i32.const 1)))
                (br $gLoop)))
            (local.set $kvh (i32.add (local.get $kvh) (i32.const 1)))
            (br $kvLoop)))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $tLoop))))
)
