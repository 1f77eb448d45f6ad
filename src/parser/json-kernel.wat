;; Row JSON and CEF extension keys from byte spans. The memory layout, the entry formats and the key
;; hash's constants are {{NAME}}s from json-kernel-layout.json (scripts/build-wasm.mjs substitutes them
;; and refuses a literal address); json-kernel.ts says which rules here must change together with
;; TypeScript, and which test catches a mismatch.
;; A row is described by n entries of {{ROW_ENTRY_BYTES}} bytes at $d: column in the ENTRY_COLUMN bits, then
;; either ENTRY_JSON (the sign bit: bytes [a, b) copied as they are), ENTRY_INT (an integer, f64 at +8,
;; |v| <= 2^53) or neither (ASCII bytes [a, b) written as a JSON string); a at +4, b at +8.
(module
  (memory (export "memory") {{INITIAL_PAGES}})

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
            (if (i32.load8_u offset={{SHORT_ESCAPES}} (local.get $c))
              (then
                (i32.store8 offset=1 (local.get $p) (i32.load8_u offset={{SHORT_ESCAPES}} (local.get $c)))
                (local.set $p (i32.add (local.get $p) (i32.const 2))))
              (else
                (i32.store offset=1 (local.get $p) (i32.const 0x303075)) ;; "u00", little-endian (its 4th byte is overwritten next)
                (i32.store8 offset=4 (local.get $p) (i32.load8_u offset={{HEX_DIGITS}} (i32.shr_u (local.get $c) (i32.const 4))))
                (i32.store8 offset=5 (local.get $p) (i32.load8_u offset={{HEX_DIGITS}} (i32.and (local.get $c) (i32.const 15))))
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

  ;; The first `=` in [p, end), or end.
  (func $eq (param $p i32) (param $end i32) (result i32)
    (local $m i32)
    (block $tail
      (loop $next
        (br_if $tail (i32.gt_u (i32.add (local.get $p) (i32.const 16)) (local.get $end)))
        (local.set $m (i8x16.bitmask (i8x16.eq (v128.load align=1 (local.get $p))
          (v128.const i8x16 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61))))
        (if (local.get $m) (then (return (i32.add (local.get $p) (i32.ctz (local.get $m))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (if (i32.eq (i32.load8_u (local.get $p)) (i32.const 61)) (then (return (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (local.get $end))

  ;; The slot of key [ks, ke) in the CEF key table, from its FNV-1a read backwards h; -1 when absent
  ;; (cef-key-table.ts finishHash and findKey: linear probing).
  (func $slot (param $h i32) (param $ks i32) (param $ke i32) (result i32)
    (local $mask i32)
    (local $e i32)
    (local $len i32)
    (local $i i32)
    (local.set $mask (i32.load (i32.const {{CEF_TABLE_MASK}})))
    (local.set $h (i32.and (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const {{HASH_FOLD}}))) (local.get $mask)))
    (local.set $len (i32.sub (local.get $ke) (local.get $ks)))
    (loop $probe
      (local.set $e (i32.add (i32.const {{CEF_TABLE}}) (i32.mul (local.get $h) (i32.const {{TABLE_ENTRY_BYTES}}))))
      (if (i32.eqz (i32.load offset=4 (local.get $e))) (then (return (i32.const -1))))
      (if (i32.eq (i32.load offset=4 (local.get $e)) (local.get $len))
        (then
          (local.set $i (i32.const 0))
          (block $differ
            (loop $cmp
              (if (i32.ge_u (local.get $i) (local.get $len)) (then (return (local.get $h))))
              (br_if $differ (i32.ne
                (i32.load8_u (i32.add (i32.load (local.get $e)) (local.get $i)))
                (i32.load8_u (i32.add (local.get $ks) (local.get $i)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $cmp)))))
      (local.set $h (i32.and (i32.add (local.get $h) (i32.const 1)) (local.get $mask)))
      (br $probe))
    (i32.const -1))

  ;; The decimal digits of integer v (|v| <= 2^53) as JSON.stringify writes them (-0 as 0).
  (func $int (param $v f64) (param $p i32) (result i32)
    (local $n i64)
    (local $q i32)
    (if (f64.lt (local.get $v) (f64.const 0))
      (then
        (i32.store8 (local.get $p) (i32.const 45))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $v (f64.neg (local.get $v)))))
    (local.set $n (i64.trunc_f64_u (local.get $v)))
    (local.set $q (i32.const {{INT_DIGITS_END}}))
    (loop $digit
      (local.set $q (i32.sub (local.get $q) (i32.const 1)))
      (i32.store8 (local.get $q) (i32.add (i32.wrap_i64 (i64.rem_u (local.get $n) (i64.const 10))) (i32.const 48)))
      (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $n) (i64.const 0))))
    (call $copy (local.get $q) (i32.const {{INT_DIGITS_END}}) (local.get $p)))

  ;; The keys of a CEF extension [from, end) (cef-extension.ts parseExtension, whose rules this follows): for
  ;; each `=` not escaped by an odd run of backslashes whose key starts with [A-Za-z_] and follows the
  ;; start, a blank or `#011`, four i32 at out: key start, key end (the `=`), the key's slot in the CEF
  ;; key table (-1: not a known key), and where the separator before the key starts ({{KEY_ENTRY_BYTES}} bytes).
  ;; Returns how many.
  (func (export "keys") (param $from i32) (param $end i32) (param $out i32) (result i32)
    (local $eq i32)
    (local $i i32)
    (local $ks i32)
    (local $walked i32)
    (local $h i32)
    (local $c i32)
    (local $sep i32)
    (local $n i32)
    (local.set $eq (call $eq (local.get $from) (local.get $end)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $eq) (local.get $end)))
        ;; Backslashes right before the `=`, not looking before from.
        (local.set $i (local.get $eq))
        (block $b
          (loop $l
            (br_if $b (i32.le_u (local.get $i) (local.get $from)))
            (br_if $b (i32.ne (i32.load8_u offset=0 (i32.sub (local.get $i) (i32.const 1))) (i32.const 92)))
            (local.set $i (i32.sub (local.get $i) (i32.const 1)))
            (br $l)))
        (if (i32.eqz (i32.and (i32.sub (local.get $eq) (local.get $i)) (i32.const 1)))
          (then
            ;; Back over key characters, hashing them.
            (local.set $ks (local.get $eq))
            (local.set $h (i32.const {{FNV_OFFSET}}))
            (block $b
              (loop $l
                (br_if $b (i32.le_u (local.get $ks) (local.get $from)))
                (local.set $c (i32.load8_u (i32.sub (local.get $ks) (i32.const 1))))
                (br_if $b (i32.eqz (i32.load8_u offset={{KEY_CHARS}} (local.get $c))))
                (local.set $ks (i32.sub (local.get $ks) (i32.const 1)))
                (local.set $h (i32.mul (i32.xor (local.get $h) (local.get $c)) (i32.const {{FNV_PRIME}})))
                (br $l)))
            (local.set $walked (local.get $ks))
            ;; A key starts with a letter or `_`.
            (block $b
              (loop $l
                (br_if $b (i32.ge_u (local.get $ks) (local.get $eq)))
                (br_if $b (i32.eq (i32.load8_u offset={{KEY_CHARS}} (i32.load8_u (local.get $ks))) (i32.const 2)))
                (local.set $ks (i32.add (local.get $ks) (i32.const 1)))
                (br $l)))
            (if (i32.lt_u (local.get $ks) (local.get $eq))
              (then
                (local.set $sep (i32.const -1))
                (if (i32.eq (local.get $ks) (local.get $from))
                  (then (local.set $sep (local.get $ks)))
                  (else
                    (local.set $c (i32.load8_u (i32.sub (local.get $ks) (i32.const 1))))
                    (if (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
                      (then (local.set $sep (i32.sub (local.get $ks) (i32.const 1))))
                      (else
                        ;; rsyslog writes a TAB separator as `#011`.
                        (if (i32.and
                              (i32.ge_u (local.get $ks) (i32.add (local.get $from) (i32.const 4)))
                              (i32.eq (i32.load align=1 (i32.sub (local.get $ks) (i32.const 4))) (i32.const 0x31313023)))
                          (then (local.set $sep (i32.sub (local.get $ks) (i32.const 4)))))))))
                (if (i32.ge_s (local.get $sep) (i32.const 0))
                  (then
                    ;; Leading characters skipped: hash the key itself.
                    (if (i32.ne (local.get $ks) (local.get $walked))
                      (then
                        (local.set $h (i32.const {{FNV_OFFSET}}))
                        (local.set $i (local.get $eq))
                        (block $b
                          (loop $l
                            (br_if $b (i32.le_u (local.get $i) (local.get $ks)))
                            (local.set $i (i32.sub (local.get $i) (i32.const 1)))
                            (local.set $h (i32.mul (i32.xor (local.get $h) (i32.load8_u (local.get $i))) (i32.const {{FNV_PRIME}})))
                            (br $l)))))
                    (i32.store (local.get $out) (local.get $ks))
                    (i32.store offset=4 (local.get $out) (local.get $eq))
                    (i32.store offset=8 (local.get $out) (call $slot (local.get $h) (local.get $ks) (local.get $eq)))
                    (i32.store offset=12 (local.get $out) (local.get $sep))
                    (local.set $out (i32.add (local.get $out) (i32.const {{KEY_ENTRY_BYTES}})))
                    (local.set $n (i32.add (local.get $n) (i32.const 1)))))))))
        (local.set $eq (call $eq (i32.add (local.get $eq) (i32.const 1)) (local.get $end)))
        (br $next)))
    (local.get $n))

  ;; The row `{"Key":value,…}` at p from n entries at d; returns its end.
  (func (export "row") (param $d i32) (param $n i32) (param $p i32) (result i32)
    (local $end i32)
    (local $col i32)
    (local $k i32)
    (local.set $end (i32.add (local.get $d) (i32.mul (local.get $n) (i32.const {{ROW_ENTRY_BYTES}}))))
    (i32.store8 (local.get $p) (i32.const 123))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $d) (local.get $end)))
        (local.set $col (i32.load (local.get $d)))
        (local.set $k (i32.add (i32.const {{KEY_TABLE}}) (i32.mul (i32.and (local.get $col) (i32.const {{ENTRY_COLUMN}})) (i32.const {{TABLE_ENTRY_BYTES}}))))
        (local.set $p (call $copy (i32.load (local.get $k)) (i32.add (i32.load (local.get $k)) (i32.load offset=4 (local.get $k))) (local.get $p)))
        (if (i32.lt_s (local.get $col) (i32.const 0))
          (then (local.set $p (call $copy (i32.load offset=4 (local.get $d)) (i32.load offset=8 (local.get $d)) (local.get $p))))
          (else
            (if (i32.and (local.get $col) (i32.const {{ENTRY_INT}}))
              (then (local.set $p (call $int (f64.load offset=8 (local.get $d)) (local.get $p))))
              (else (local.set $p (call $str (i32.load offset=4 (local.get $d)) (i32.load offset=8 (local.get $d)) (local.get $p)))))))
        (i32.store8 (local.get $p) (i32.const 44))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $d (i32.add (local.get $d) (i32.const {{ROW_ENTRY_BYTES}})))
        (br $next)))
    ;; The last comma becomes the closing brace (an empty row has none to replace).
    (if (i32.eqz (local.get $n))
      (then (local.set $p (i32.add (local.get $p) (i32.const 1)))))
    (i32.store8 (i32.sub (local.get $p) (i32.const 1)) (i32.const 125))
    (local.get $p))
)
