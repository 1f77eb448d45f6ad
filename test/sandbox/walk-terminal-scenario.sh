#!/usr/bin/env bash
# Runs inside `scripts/sandbox run --daemon D`: the walk on a real terminal (tmux, 120x50, CI unset), each prompt
# answered by keystroke. Writes facts into $1 (a host directory) for walk-sandbox.test.ts: per step the pane's final
# text with wrapped lines joined (NAME.pane) and as shown (NAME.wrapped), the bytes the terminal got (NAME.raw), the
# exit code (NAME.rc), and /etc (pre.* before the first step, NAME.etc.* after install-* and uninstall).
#   $1 out dir, $2 NO_COLOR value for the session ("" = colour allowed), $3 steps file: one
#   `name<TAB>command line<TAB>prompt ERE<TAB>keys<TAB>timeout s` line per step, `-` for no prompt and no keys
set -uo pipefail
out="$1"; nocolor="$2"; steps="$3"; repo="$(cd "$(dirname "$0")/../.." && pwd)"
sock="$out/tmux.sock"
# -u: UTF-8 whatever the locale (the prompts' ✔ and the spinner frames are not ASCII).
tm() { tmux -u -S "$sock" "$@"; }
command -v tmux >/dev/null || { echo "walk-terminal: tmux is not installed (.ci/run installs it)" >&2; exit 1; }
cd /tmp

etc_snapshot() { find /etc -xdev \( -type f -o -type l \) -print0 | sort -z | xargs -0 stat -c '%n %a %U:%G' | sort >"$1.stat"; find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum >"$1.sha"; }

# Waits until the pane shows a line matching $1 (ERE), up to $2 seconds.
wait_for() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    tm capture-pane -p -J -S - | grep -Eq -- "$1" && return 0
    sleep 0.1
  done
  echo "timed out waiting for /$1/" >>"$out/terminal.err"
  tm capture-pane -p -J -S - >>"$out/terminal.err"
  return 1
}

# One step: a fresh screen and log, the command, the keys to send once $prompt shows (if any), then its exit code.
#   $1 name, $2 command line, $3 prompt ERE or -, $4 keys (tmux send-keys words), $5 timeout s
step() {
  local name="$1" cmdline="$2" prompt="$3" keys="$4" limit="$5"
  tm send-keys -t walk 'clear' Enter
  # The rc line this step reads must be its own: wait until the screen no longer shows the last one (a fixed sleep
  # was not always enough on a loaded machine), then drop the scrollback.
  local end=$((SECONDS + 20))
  while tm capture-pane -p -J -t walk | grep -q '^<rc='; do
    if [ "$SECONDS" -ge "$end" ]; then echo "$name: the screen still showed the last step's rc after clear" >>"$out/terminal.err"; break; fi
    sleep 0.1
  done
  tm clear-history -t walk
  tm pipe-pane -t walk -o "cat >'$out/$name.raw'"
  tm send-keys -t walk -l "$cmdline; echo \"<rc=\$?>\""
  tm send-keys -t walk Enter
  if [ "$prompt" != - ] && wait_for "$prompt" 120; then
    sleep 0.3
    # shellcheck disable=SC2086 # tmux key names, one word each
    tm send-keys -t walk $keys
  fi
  wait_for '^<rc=[0-9]+>$' "$limit"
  tm pipe-pane -t walk
  tm capture-pane -p -J -S - -t walk >"$out/$name.pane"
  tm capture-pane -p -S - -t walk >"$out/$name.wrapped"
  sed -n 's/^<rc=\([0-9]*\)>$/\1/p' "$out/$name.pane" >"$out/$name.rc"
}

env_line="export TERM=xterm-256color; unset CI; export PATH=\"$repo/bin:\$PATH\""
[ -n "$nocolor" ] && env_line="$env_line; export NO_COLOR=$nocolor" || env_line="$env_line; unset NO_COLOR"
tm -f /dev/null new-session -d -s walk -x 120 -y 50 "env PS1='\$ ' bash --norc --noprofile"
tm send-keys -t walk "$env_line" Enter

# A new user's machine: the daemon installed but not started (the CI walk before this one left it running).
for pidfile in /run/rsyslogd.pid /run/syslog-ng.pid /var/lib/syslog-ng/syslog-ng.pid; do
  [ -s "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done

# /etc before the first step, and after each step that must leave it as it was (seconds each on a loaded machine).
etc_snapshot "$out/pre"
while IFS=$'\t' read -r name cmdline prompt keys limit; do
  [ -n "$name" ] || continue
  step "$name" "$cmdline" "$prompt" "$keys" "$limit"
  case "$name" in install-* | uninstall) etc_snapshot "$out/$name.etc" ;; esac
done <"$steps"
tm kill-server
exit 0
