#!/usr/bin/env bash
# Runs inside `scripts/sandbox run --daemon D`: for each input kind the daemon's own config may already define on
# port 514 (with and without rsyslog's input rate limiting), install with a file sink, send a burst of CEF in every
# header form over UDP or TCP, and keep what reached the forwarder: rows in $1/CASE.rows, dead letters in
# $1/CASE.dead. ratelimit-sandbox.test.ts asserts on them. Usage: ratelimit-scenario.sh OUT DAEMON COUNT
set -uo pipefail
out="$1"; daemon="$2"; count="$3"; repo="$(cd "$(dirname "$0")/../.." && pwd)"
cli=(node "$repo/bin/sentinel-cef")
dead=/var/lib/sentinel-cef/data/dead-letter.ndjson
export CI=true NO_COLOR=1
cd "$repo"
. "$repo/test/sandbox/lib.sh"

step() { local name="$1"; shift; "$@" >"$out/$name.out" 2>"$out/$name.err"; echo $? >"$out/$name.rc"; }
lines() { cat "$@" 2>/dev/null | grep -c . ; }
# Datagrams the kernel of this (private) network namespace refused: no socket bound yet (NoPorts) or a full receive
# buffer (InErrors, which counts RcvbufErrors). They never reached the daemon, so they cannot become rows.
udp_refused() {
  local v4 v6
  v4=$(awk '$1 == "Udp:" && $2 ~ /^[0-9]/ { print $3 + $4 }' /proc/net/snmp)
  v6=$(awk '$1 == "Udp6NoPorts" || $1 == "Udp6InErrors" { n += $2 } END { print n + 0 }' /proc/net/snmp6 2>/dev/null)
  echo $(( ${v4:-0} + ${v6:-0} ))
}

# run CASE PROTO [HOST [FRAMING]]: install over the config in place, send, wait until nothing more arrives, uninstall.
run() {
  local name="$1" proto="$2" host="${3:-127.0.0.1}" framing="${4:-newline}" sink="$out/sink-$1/rows.ndjson" prev=-1 now stable=0
  local before expect="$count"
  step "$name-install" "${cli[@]}" install --sink "file:$sink" --protocol "$proto" --yes --no-verify
  if [ "$(cat "$out/$name-install.rc")" = 0 ]; then
    before=$(udp_refused)
    step "$name-send" node "$repo/test/sandbox/send-burst.mjs" "$proto" "$count" "$name" "$host" "$framing"
    echo $(( $(udp_refused) - before )) >"$out/$name.refused"
    expect=$(( count - $(cat "$out/$name.refused") ))
    # Done when the counts hold still for 3 s (room for a late copy to show). A rate-limited input drops some at
    # once, so that is all; an unlimited one must also have every message as a row or a dead letter first (a daemon
    # that pauses mid-burst, for its action's retry on a loaded machine, would otherwise end the wait early).
    for _ in $(seq 1 120); do
      copy_rows "$sink" "$out/$name.rows"; copy_rows "$dead" "$out/$name.dead"
      now=$(( $(lines "$out/$name.rows") + $(lines "$out/$name.dead") ))
      if [ "$now" = "$prev" ] && [ "$now" -gt 0 ]; then stable=$((stable + 1)); else stable=0; fi
      if [ "$stable" -ge 6 ] && { [[ "$name" == *-limited ]] || [ "$now" -ge "$expect" ]; }; then break; fi
      prev=$now; sleep 0.5
    done
  fi
  copy_rows "$sink" "$out/$name.rows"
  copy_rows "$dead" "$out/$name.dead"
  [ "$daemon" = rsyslog ] && cp /etc/rsyslog.d/10-sentinel-cef.conf "$out/$name.dropin" 2>/dev/null
  [ "$daemon" = syslog-ng ] && cp /etc/syslog-ng/conf.d/sentinel-cef.conf "$out/$name.dropin" 2>/dev/null
  step "$name-uninstall" "${cli[@]}" uninstall --yes
  rm -f "$dead"
}

if [ "$daemon" = rsyslog ]; then
  hardened=/etc/rsyslog.d/05-hardened.conf
  # Our own inputs (nothing on 514 beforehand).
  run rsyslog-own-udp udp
  run rsyslog-own-tcp tcp
  run rsyslog-own-udp6 udp ::1
  run rsyslog-own-tcp6 tcp ::1
  for mod in imudp imtcp imptcp; do
    proto=tcp; [ "$mod" = imudp ] && proto=udp
    for limit in limited unlimited; do
      params=''; [ "$limit" = limited ] && params=' ratelimit.interval="5" ratelimit.burst="100"'
      printf 'module(load="%s")\ninput(type="%s" port="514"%s)\n' "$mod" "$mod" "$params" >"$hardened"
      run "rsyslog-$mod-$limit" "$proto"
      rm -f "$hardened"
    done
  done
else
  conf=/etc/syslog-ng/conf.d/05-existing.conf
  run syslog-ng-own-udp udp
  run syslog-ng-own-tcp tcp
  run syslog-ng-own-udp6 udp ::1
  run syslog-ng-own-tcp6 tcp ::1
  # Sources that the distribution's config already has on 514 (reused, so no raw message is kept).
  for drv in network syslog; do
    for proto in udp tcp; do
      printf 'source s_existing { %s(port(514) transport("%s")); };\nlog { source(s_existing); destination(d_syslog); };\n' \
        "$drv" "$proto" >"$conf"
      framing=newline; [ "$drv" = syslog ] && framing=octet
      run "syslog-ng-$drv-$proto" "$proto" 127.0.0.1 "$framing"
      rm -f "$conf"
    done
  done
fi
exit 0
