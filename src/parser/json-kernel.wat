;; Row JSON from byte spans (see json-kernel.ts). Memory layout, set up from JavaScript:
;;   [0, 128)      short escape letter per ASCII control/quote/backslash byte (0: write \u00XX)
;;   [128, 144)    hex digits
;;   [1024, ...)   per column: key offset (i32), key length (i32); the `"Name":` bytes follow the table
;; A row is described by n entries of three i32 at $d: column (bit 31 set: the value is already JSON,
;; copied as is; clear: ASCII bytes written as a JSON string), value start, value end.
(module
  (memory (export "memory") 16)

  ;; "…" from ASCII bytes [a, b) with JSON escapes; 16 bytes at a time while none needs one.
  (func $str (param $a i32) (param $b i32) (param $p i32) (result i32)
    (local $v v128)
    (local $c i32)
    (i32.store8 (local.get $p) (i32.const 34))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (block $done
      (loop $next
        (if (i32.le_u (i32.add (local.get $a) (i32.const 16)) (local.get $b))
          (then
            (local.set $v (v128.load align=1 (local.get $a)))
            (if (i32.eqz (v128.any_true
                  (v128.or
                    (i8x16.lt_u (local.get $v) (v128.const i8x16 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32))
                    (v128.or
                      (i8x16.eq (local.get $v) (v128.const i8x16 34 34 34 34 34 34 34 34 34 34 34 34 34 34 34 34))
                      (i8x16.eq (local.get $v) (v128.const i8x16 92 92 92 92 92 92 92 92 92 92 92 92 92 92 92 92))))))
              (then
                (v128.store align=1 (local.get $p) (local.get $v))
                (local.set $a (i32.add (local.get $a) (i32.const 16)))
                (local.set $p (i32.add (local.get $p) (i32.const 16)))
                (br $next)))))
        (br_if $done (i32.ge_u (local.get $a) (local.get $b)))
        (local.set $c (i32.load8_u (local.get $a)))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (if (i32.or (i32.lt_u (local.get $c) (i32.const 32))
              (i32.or (i32.eq (local.get $c) (i32.const 34)) (i32.eq (local.get $c) (i32.const 92))))
          (then
            (i32.store8 (local.get $p) (i32.const 92))
            (if (i32.load8_u (local.get $c))
              (then
                (i32.store8 offset=1 (local.get $p) (i32.load8_u (local.get $c)))
                (local.set $p (i32.add (local.get $p) (i32.const 2))))
              (else
                (i32.store offset=1 (local.get $p) (i32.const 0x303075)) ;; "u00", little-endian (its 4th byte is overwritten next)
                (i32.store8 offset=4 (local.get $p) (i32.load8_u offset=128 (i32.shr_u (local.get $c) (i32.const 4))))
                (i32.store8 offset=5 (local.get $p) (i32.load8_u offset=128 (i32.and (local.get $c) (i32.const 15))))
                (local.set $p (i32.add (local.get $p) (i32.const 6))))))
          (else
            (i32.store8 (local.get $p) (local.get $c))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))))
        (br $next)))
    (i32.store8 (local.get $p) (i32.const 34))
    (i32.add (local.get $p) (i32.const 1)))

  ;; Bytes [a, b) to p, 16 at a time: may write up to 15 bytes past the end (the caller leaves room).
  (func $copy (param $a i32) (param $b i32) (param $p i32) (result i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $p) (i32.sub (local.get $b) (local.get $a))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (v128.store align=1 (local.get $p) (v128.load align=1 (local.get $a)))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next)))
    (local.get $end))

  ;; The row `{"Key":value,…}` at p from n entries at d; returns its end.
  (func (export "row") (param $d i32) (param $n i32) (param $p i32) (result i32)
    (local $end i32)
    (local $col i32)
    (local $k i32)
    (local.set $end (i32.add (local.get $d) (i32.mul (local.get $n) (i32.const 12))))
    (i32.store8 (local.get $p) (i32.const 123))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $d) (local.get $end)))
        (local.set $col (i32.load (local.get $d)))
        (local.set $k (i32.add (i32.const 1024) (i32.shl (i32.and (local.get $col) (i32.const 0x7fffffff)) (i32.const 3))))
        (local.set $p (call $copy (i32.load (local.get $k)) (i32.add (i32.load (local.get $k)) (i32.load offset=4 (local.get $k))) (local.get $p)))
        (if (i32.lt_s (local.get $col) (i32.const 0))
          (then (local.set $p (call $copy (i32.load offset=4 (local.get $d)) (i32.load offset=8 (local.get $d)) (local.get $p))))
          (else (local.set $p (call $str (i32.load offset=4 (local.get $d)) (i32.load offset=8 (local.get $d)) (local.get $p)))))
        (i32.store8 (local.get $p) (i32.const 44))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $d (i32.add (local.get $d) (i32.const 12)))
        (br $next)))
    ;; The last comma becomes the closing brace (an empty row has none to replace).
    (if (i32.eqz (local.get $n))
      (then (local.set $p (i32.add (local.get $p) (i32.const 1)))))
    (i32.store8 (i32.sub (local.get $p) (i32.const 1)) (i32.const 125))
    (local.get $p))
)
