#!/usr/bin/env bash
# Runs inside `scripts/sandbox run --daemon rsyslog --extra rsyslog-relp`: a real rsyslog sends over omrelp to the
# forwarder's RELP input, whose sessions are aged every few seconds, under steady load across several ages.
# Writes facts into $1 (a host directory); relp-age-sandbox.test.ts asserts on them.
set -uo pipefail
out="$1"; repo="$(cd "$(dirname "$0")/../.." && pwd)"
age="${RELP_AGE_SEC:-1}" events="${RELP_AGE_EVENTS:-3600}" rate="${RELP_AGE_RATE:-600}"
cd "$repo"
. "$repo/test/sandbox/lib.sh"
mkdir -p "$out/queue" "$out/spool"

cat >"$out/forwarder.json" <<JSON
{ "listen": ["relp://127.0.0.1:2514"], "queue": { "dir": "$out/queue" }, "admin": "127.0.0.1:25227",
  "sink": { "type": "file", "path": "$out/sink.ndjson" }, "deadLetterFile": "$out/dead-letter.ndjson",
  "limits": { "maxConnectionAgeSec": $age, "idleTimeoutSec": 1 } }
JSON
node "$repo/dist/forwarder.mjs" --config "$out/forwarder.json" >"$out/forwarder.log" 2>&1 &
fwd=$!
wait_port 2514 || { echo "forwarder did not listen" >"$out/error"; exit 1; }

# rsyslog's own messages (omrelp errors, action suspended/resumed) land in the default ruleset's file; the load
# comes in on imtcp and goes out over omrelp as it arrived, as install's drop-in sends it.
cat >"$out/rsyslog.conf" <<CONF
global(workDirectory="$out/spool")
module(load="imtcp")
module(load="omrelp")
template(name="raw" type="string" string="%rawmsg%")
input(type="imtcp" port="10514" ruleset="to-forwarder")
ruleset(name="to-forwarder") {
  action(type="omrelp" name="to-forwarder" target="127.0.0.1" port="2514" template="raw"
         queue.type="LinkedList" queue.size="100000" action.resumeRetryCount="-1")
}
*.* action(type="omfile" file="$out/rsyslog-internal.log")
CONF
# Each line of rsyslogd's own output with the second it came, to tell ageing from shutdown.
rsyslogd -n -f "$out/rsyslog.conf" -i "$out/rsyslogd.pid" 2>&1 | while IFS= read -r l; do printf '%(%s)T %s\n' -1 "$l"; done >"$out/rsyslogd.out" &
wait_for 60 test -s "$out/rsyslogd.pid"
rsy="$(cat "$out/rsyslogd.pid")"
wait_port 10514 || { echo "rsyslogd did not listen" >"$out/error"; cat "$out/rsyslogd.out" >>"$out/error"; exit 1; }

date +%s.%N >"$out/t0"
npx tsx scripts/load/gen.ts --port 10514 --connections 2 --events "$events" --rate "$rate" --size 300 --run sbx \
  --expect-file "$out/expect.json" >"$out/gen.json" 2>"$out/gen.err"
date +%s.%N >"$out/t1"
all_in() { copy_rows "$out/sink.ndjson" "$out/rows.ndjson"; [ "$(wc -l <"$out/rows.ndjson")" -ge "$events" ]; }
wait_for 180 all_in
date +%s.%N >"$out/t2"
sleep 1
copy_rows "$out/sink.ndjson" "$out/rows.ndjson"
node -e 'fetch("http://127.0.0.1:25227/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))' >"$out/metrics.txt"
date +%s >"$out/t3"
npx tsx scripts/load/chkseq.ts --file "$out/rows.ndjson" --expect-file "$out/expect.json" --json >"$out/chkseq.json" 2>&1
# rsyslogd first: what it logs when the forwarder stops is not ageing.
kill "$rsy" 2>/dev/null
wait_gone rsyslogd
kill "$fwd" 2>/dev/null
wait "$fwd" 2>/dev/null
exit 0
