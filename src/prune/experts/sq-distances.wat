;; chunkSqDistances (sq-distances.ts) in WebAssembly SIMD, for the CLI's CPU threads: the same float64 operations
;; in the same order, so the distances are the same bits as the TypeScript reference (sq-distances-kernel.test.ts).
;; Compiled by tools/wasm/build-wasm.mjs into sq-distances-wasm.ts; wrapped by sq-distances-kernel.ts.
;;
;; For members' chunks x_0 … x_{k-1} of n values each:
;;   m[t]   = (((0 + x_0[t]) + x_1[t]) + …) / k
;;   s_i,l  = Σ over t ≡ l (mod 8), t ascending, of (x_i[t] − m[t])²        (eight lanes per member)
;;   out[i] = ((s_i,0 + s_i,1) + (s_i,2 + s_i,3)) + ((s_i,4 + s_i,5) + (s_i,6 + s_i,7))
;; Members are bfloat16 bit patterns (straight from a checkpoint) or float32. The chunk is walked in blocks of
;; 1024 values: each member's block is widened to float32 in `work` (zero-padded to a multiple of 8: a padded
;; value adds (0 − 0)² = +0, which changes no sum), the block's centroid is summed, then every member's eight
;; lane sums go on over the block while it is in cache.
;;
;; work (16-byte aligned, work_bytes(k) bytes): [k rows of 1040 f32][1024 f64 centroid][k × 8 f64 lanes][k f64 out]
;; A row holds a member's 1024-value block; rows are 4160 bytes apart, not 4096, so that many members' rows do not
;; fall into the same cache sets (measured: 12 members 1.4 → 1.0 ns per value and member, 5 members unchanged).
;; table: k i32 byte addresses of the members' chunks.
(module
  (memory (import "env" "memory") 1 65536 shared)

  (func (export "work_bytes") (param $k i32) (result i32)
    (i32.add (i32.mul (local.get $k) (i32.const 4232)) (i32.const 8192)))

  (func (export "sq_distances") (param $table i32) (param $k i32) (param $n i32) (param $bf16 i32) (param $work i32) (result i32)
    (local $cent i32) (local $acc i32) (local $out i32) (local $lo i32) (local $nb i32) (local $nb8 i32)
    (local $i i32) (local $j i32) (local $src i32) (local $dst i32) (local $p i32) (local $q i32)
    (local $kf v128) (local $d v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $cent (i32.add (local.get $work) (i32.mul (local.get $k) (i32.const 4160))))
    (local.set $acc (i32.add (local.get $cent) (i32.const 8192)))
    (local.set $out (i32.add (local.get $acc) (i32.shl (local.get $k) (i32.const 6))))
    (local.set $kf (f64x2.splat (f64.convert_i32_u (local.get $k))))
    (memory.fill (local.get $acc) (i32.const 0) (i32.shl (local.get $k) (i32.const 6)))

    (block $chunk_done
      (loop $blocks
        (br_if $chunk_done (i32.ge_u (local.get $lo) (local.get $n)))
        (local.set $nb (i32.sub (local.get $n) (local.get $lo)))
        (if (i32.gt_u (local.get $nb) (i32.const 1024)) (then (local.set $nb (i32.const 1024))))
        (local.set $nb8 (i32.and (i32.add (local.get $nb) (i32.const 7)) (i32.const -8)))

        ;; 1. Each member's block as float32 in its row of work, zero-padded to nb8.
        (local.set $i (i32.const 0))
        (loop $widen
          (local.set $dst (i32.add (local.get $work) (i32.mul (local.get $i) (i32.const 4160))))
          (local.set $src (i32.load (i32.add (local.get $table) (i32.shl (local.get $i) (i32.const 2)))))
          (local.set $j (i32.const 0))
          (if (local.get $bf16)
            (then
              (local.set $src (i32.add (local.get $src) (i32.shl (local.get $lo) (i32.const 1))))
              (block $b8_done
                (loop $b8
                  (br_if $b8_done (i32.gt_u (i32.add (local.get $j) (i32.const 8)) (local.get $nb)))
                  (local.set $d (v128.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 1)))))
                  (local.set $p (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2))))
                  (v128.store offset=0 (local.get $p) (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $d)) (i32.const 16)))
                  (v128.store offset=16 (local.get $p) (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $d)) (i32.const 16)))
                  (local.set $j (i32.add (local.get $j) (i32.const 8)))
                  (br $b8)))
              (block $b1_done
                (loop $b1
                  (br_if $b1_done (i32.ge_u (local.get $j) (local.get $nb)))
                  (i32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
                    (i32.shl (i32.load16_u (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 1)))) (i32.const 16)))
                  (local.set $j (i32.add (local.get $j) (i32.const 1)))
                  (br $b1))))
            (else
              (local.set $src (i32.add (local.get $src) (i32.shl (local.get $lo) (i32.const 2))))
              (memory.copy (local.get $dst) (local.get $src) (i32.shl (local.get $nb) (i32.const 2)))
              (local.set $j (local.get $nb))))
          (memory.fill (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2))) (i32.const 0)
            (i32.shl (i32.sub (local.get $nb8) (local.get $j)) (i32.const 2)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $widen (i32.lt_u (local.get $i) (local.get $k))))

;; 2. The block's centroid, eight values at a time: each value's members added in member order, then divided
        ;; by k. Four independent sums (values j..j+1, +2..3, +4..5, +6..7) so the additions do not wait on each other.
        (local.set $j (i32.const 0))
        (block $cent_done
          (loop $centroid
            (br_if $cent_done (i32.ge_u (local.get $j) (local.get $nb8)))
            (local.set $a0 (f64x2.splat (f64.const 0)))
            (local.set $a1 (local.get $a0))
            (local.set $a2 (local.get $a0))
            (local.set $a3 (local.get $a0))
            (local.set $p (i32.add (local.get $work) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $i (i32.const 0))
            (loop $members
              (local.set $a0 (f64x2.add (local.get $a0) (f64x2.promote_low_f32x4 (v128.load64_zero offset=0 (local.get $p)))))
              (local.set $a1 (f64x2.add (local.get $a1) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p)))))
              (local.set $a2 (f64x2.add (local.get $a2) (f64x2.promote_low_f32x4 (v128.load64_zero offset=16 (local.get $p)))))
              (local.set $a3 (f64x2.add (local.get $a3) (f64x2.promote_low_f32x4 (v128.load64_zero offset=24 (local.get $p)))))
              (local.set $p (i32.add (local.get $p) (i32.const 4160)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $members (i32.lt_u (local.get $i) (local.get $k))))
            (local.set $q (i32.add (local.get $cent) (i32.shl (local.get $j) (i32.const 3))))
            (v128.store offset=0 (local.get $q) (f64x2.div (local.get $a0) (local.get $kf)))
            (v128.store offset=16 (local.get $q) (f64x2.div (local.get $a1) (local.get $kf)))
            (v128.store offset=32 (local.get $q) (f64x2.div (local.get $a2) (local.get $kf)))
            (v128.store offset=48 (local.get $q) (f64x2.div (local.get $a3) (local.get $kf)))
            (local.set $j (i32.add (local.get $j) (i32.const 8)))
            (br $centroid)))

                ;; 3. Each member's eight lane sums over the block (four independent f64x2 sums: t mod 8 = 0-1, 2-3, 4-5, 6-7).
        (local.set $i (i32.const 0))
        (loop $dist
          (local.set $q (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 6))))
          (local.set $a0 (v128.load offset=0 (local.get $q)))
          (local.set $a1 (v128.load offset=16 (local.get $q)))
          (local.set $a2 (v128.load offset=32 (local.get $q)))
          (local.set $a3 (v128.load offset=48 (local.get $q)))
          (local.set $p (i32.add (local.get $work) (i32.mul (local.get $i) (i32.const 4160))))
          (local.set $src (local.get $cent))
          (local.set $dst (i32.add (local.get $p) (i32.shl (local.get $nb8) (i32.const 2))))
          (block $row_done
            (loop $row
              (br_if $row_done (i32.ge_u (local.get $p) (local.get $dst)))
              (local.set $d (f64x2.sub (f64x2.promote_low_f32x4 (v128.load64_zero offset=0 (local.get $p))) (v128.load offset=0 (local.get $src))))
              (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $d) (local.get $d))))
              (local.set $d (f64x2.sub (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p))) (v128.load offset=16 (local.get $src))))
              (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $d) (local.get $d))))
              (local.set $d (f64x2.sub (f64x2.promote_low_f32x4 (v128.load64_zero offset=16 (local.get $p))) (v128.load offset=32 (local.get $src))))
              (local.set $a2 (f64x2.add (local.get $a2) (f64x2.mul (local.get $d) (local.get $d))))
              (local.set $d (f64x2.sub (f64x2.promote_low_f32x4 (v128.load64_zero offset=24 (local.get $p))) (v128.load offset=48 (local.get $src))))
              (local.set $a3 (f64x2.add (local.get $a3) (f64x2.mul (local.get $d) (local.get $d))))
              (local.set $p (i32.add (local.get $p) (i32.const 32)))
              (local.set $src (i32.add (local.get $src) (i32.const 64)))
              (br $row)))
          (v128.store offset=0 (local.get $q) (local.get $a0))
          (v128.store offset=16 (local.get $q) (local.get $a1))
          (v128.store offset=32 (local.get $q) (local.get $a2))
          (v128.store offset=48 (local.get $q) (local.get $a3))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $dist (i32.lt_u (local.get $i) (local.get $k))))

        (local.set $lo (i32.add (local.get $lo) (i32.const 1024)))
        (br $blocks)))

    ;; out[i] = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    (local.set $i (i32.const 0))
    (loop $sum
      (local.set $q (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 6))))
      (f64.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 3)))
        (f64.add
          (f64.add
            (f64.add (f64.load offset=0 (local.get $q)) (f64.load offset=8 (local.get $q)))
            (f64.add (f64.load offset=16 (local.get $q)) (f64.load offset=24 (local.get $q))))
          (f64.add
            (f64.add (f64.load offset=32 (local.get $q)) (f64.load offset=40 (local.get $q)))
            (f64.add (f64.load offset=48 (local.get $q)) (f64.load offset=56 (local.get $q))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $sum (i32.lt_u (local.get $i) (local.get $k))))
    (local.get $out))
)
