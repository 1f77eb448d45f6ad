# Helpers for the sandbox scenarios (sourced). Waits are conditions with room for a loaded machine: they return as
# soon as the condition holds, so the bound only matters when something is wrong.

# copy_rows SRC DST: SRC's complete lines. Text after the last newline is a row the forwarder is still appending
# (or one a kill cut, which its next append removes): not a row yet.
copy_rows() {
  cp "$1" "$2" 2>/dev/null || { : >"$2"; return 0; }
  if [ -s "$2" ] && [ -n "$(tail -c 1 "$2")" ]; then truncate -s "-$(tail -n 1 "$2" | wc -c)" "$2"; fi
}

# wait_gone PROG: until no process is named PROG (30 s).
wait_gone() { for _ in $(seq 1 300); do pgrep -x "$1" >/dev/null || return 0; sleep 0.1; done; return 1; }

# wait_port PORT: until something listens on TCP PORT (30 s).
wait_port() { for _ in $(seq 1 300); do grep -q ":$(printf '%04X' "$1") 00000000:0000 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null && return 0; sleep 0.1; done; return 1; }
