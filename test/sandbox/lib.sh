# Helpers for the sandbox scenarios (sourced). Waits are conditions bounded in seconds, not in rounds (a round of
# several processes takes far longer than its sleep on a loaded machine): they return as soon as the condition
# holds, so the bound only matters when something is wrong.

# wait_for SECS CMD...: runs CMD every 0.1 s until it succeeds (0) or SECS seconds have passed (1).
wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.1
  done
}

# copy_rows SRC DST: SRC's complete lines. Text after the last newline is a row the forwarder is still appending
# (or one a kill cut, which its next append removes): not a row yet.
copy_rows() {
  cp "$1" "$2" 2>/dev/null || { : >"$2"; return 0; }
  if [ -s "$2" ] && [ -n "$(tail -c 1 "$2")" ]; then truncate -s "-$(tail -n 1 "$2" | wc -c)" "$2"; fi
}

# wait_gone PROG: until no process is named PROG (30 s).
no_process() { ! pgrep -x "$1" >/dev/null; }
wait_gone() { wait_for 30 no_process "$1"; }

# pid_gone PID: the process has exited (an empty PID: there was none).
pid_gone() { [ -z "$1" ] || [ ! -e "/proc/$1" ]; }

# stop_forwarder: stops the installed forwarder's supervisor (and so the forwarder) and waits for it to exit (60 s).
stop_forwarder() {
  local pid; pid="$(cat /run/sentinel-cef/supervisor.pid 2>/dev/null)"
  [ -n "$pid" ] && kill "$pid"
  wait_for 60 pid_gone "$pid"
}

# wait_port PORT: until something listens on TCP PORT (30 s).
wait_port() { wait_for 30 grep -q ":$(printf '%04X' "$1") 00000000:0000 0A" /proc/net/tcp /proc/net/tcp6; }
