#!/usr/bin/env bash
# Runs inside `scripts/sandbox run --daemon D`: install, then break the chain one way at a time and record what
# `troubleshoot` says each time (and what `--fix --yes` repairs). Writes into $1 (a host directory);
# troubleshoot-sandbox.test.ts asserts on the files.
set -uo pipefail
out="$1"; daemon="$2"; repo="$(cd "$(dirname "$0")/../.." && pwd)"
cli=(node "$repo/bin/sentinel-cef")
sink="$out/sink/rows.ndjson"
export CI=true NO_COLOR=1
cd "$repo"
. "$repo/test/sandbox/lib.sh"

dproc() { [ "$daemon" = rsyslog ] && echo rsyslogd || echo syslog-ng; }
dropin() { [ "$daemon" = rsyslog ] && echo /etc/rsyslog.d/10-sentinel-cef.conf || echo /etc/syslog-ng/conf.d/sentinel-cef.conf; }
start_daemon() {
  if [ "$daemon" = rsyslog ]; then rsyslogd; else syslog-ng --pidfile /run/syslog-ng.pid; fi
  wait_port 514
}
stop_daemon() { pkill -x "$(dproc)"; wait_gone "$(dproc)"; }
# troubleshoot NAME [ARGS...]: JSON report in NAME.json, exit code in NAME.rc, stderr in NAME.err.
ts() { local name="$1"; shift; "${cli[@]}" troubleshoot --json --probes 2 --timeout "${TS_TIMEOUT:-8}" "$@" >"$out/$name.json" 2>"$out/$name.err"; echo $? >"$out/$name.rc"; }
# A run that must pass: it ends as soon as the probes are in, so its bound is only reached when something is wrong.
# 8 s left 6 s for the probes, around a daemon's retry of our action (resumeInterval 5 s) on a loaded machine.
ts_pass() { TS_TIMEOUT=30 ts "$@"; }
step() { local name="$1"; shift; "$@" >"$out/$name.out" 2>"$out/$name.err"; echo $? >"$out/$name.rc"; }
reinstall() { step "reinstall-$1" "${cli[@]}" install --sink "file:$sink" --yes --no-verify; }

# 1. A healthy install with the file sink: every check passes, every probe is delivered.
step install "${cli[@]}" install --sink "file:$sink" --yes
ts_pass healthy
"${cli[@]}" troubleshoot --probes 1 >"$out/healthy-human.out" 2>"$out/healthy-human.err"; echo $? >"$out/healthy-human.rc"
ts healthy-bundle --collect "$out/bundle.tar.gz"

# 2. Forwarder stopped; then --fix --yes starts it again.
stop_forwarder
ts forwarder-stopped
ts forwarder-fixed --fix --yes
reinstall forwarder

# 2b. rsyslog: a burst past the forwarding action's queue.highWatermark (40,000) while the forwarder is down
# spills into the disk queue; troubleshoot reports what waits there, and once --fix starts the forwarder rsyslog
# delivers all of it and the check passes. spool.env records counts and timings for the test.
if [ "$daemon" = rsyslog ]; then
  spool_events=60000
  spooled() { compgen -G "/var/spool/rsyslog/sentinel-cef-fwd.[0-9]*" >/dev/null; }
  ms() { date +%s%3N; }
  t0=$(ms)
  stop_forwarder
  npx tsx scripts/load/gen.ts --port 514 --events "$spool_events" --connections 2 --size 300 \
    >"$out/spool-gen.json" 2>"$out/spool-gen.err"
  t_sent=$(ms)
  wait_for 60 spooled
  t_spooled=$(ms)
  ls -l /var/spool/rsyslog >"$out/spool-files-down.txt" 2>&1
  ts spool-down --probes 0
  t_down=$(ms)
  ts spool-fix --probes 0 --fix --yes
  t_fixed=$(ms)
  run="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).run)' "$out/spool-gen.json")"
  # Distinct events of the burst (stream + sequence number): rsyslog may send a message twice when it
  # resumes its action (at-least-once), which is not loss; rows counts those too.
  distinct() { grep -- "$run" "$sink" | sed -n 's/.*"ExtID":"\([0-9]*\)".*"DeviceCustomString6":"\([^"]*\)".*/\2 \1/p' | sort -u | wc -l; }
  delivered=0
  deadline=$(( $(ms) + 120000 ))
  while [ "$(ms)" -lt "$deadline" ]; do
    delivered="$(distinct)"
    [ "$delivered" -ge "$spool_events" ] && break
    sleep 0.2
  done
  rows="$(grep -c -- "$run" "$sink")"
  t_delivered=$(ms)
  ls -l /var/spool/rsyslog >"$out/spool-files-drained.txt" 2>&1
  ts spool-drained --probes 0
  # deliver_ms: from the forwarder's start to the last event in the sink (rsyslog resumes its suspended action
  # on its own retry schedule, action.resumeInterval: up to 30 s here).
  printf 'sent=%s\ndelivered=%s\nrows=%s\nsend_ms=%s\nspill_ms=%s\nts_down_ms=%s\nts_fix_ms=%s\ndeliver_ms=%s\ntotal_ms=%s\n' \
    "$spool_events" "$delivered" "$rows" $((t_sent - t0)) $((t_spooled - t_sent)) $((t_down - t_spooled)) $((t_fixed - t_down)) \
    $((t_delivered - t_fixed)) $(($(ms) - t0)) >"$out/spool.env"
  reinstall spool
fi

# 3. Our drop-in removed (and the daemon restarted without it); --fix re-renders it.
rm -f "$(dropin)"; stop_daemon; start_daemon
ts dropin-removed
ts dropin-fixed --fix --yes
reinstall dropin

# 4. Daemon stopped; --fix starts it.
stop_daemon
ts daemon-stopped
ts daemon-fixed --fix --yes
reinstall daemon

# 5. Port 514 taken by another program.
stop_daemon
node -e '
  const net = require("net"), dgram = require("dgram");
  net.createServer((s) => s.resume()).listen(514, "0.0.0.0");
  dgram.createSocket("udp4").bind(514, "0.0.0.0");
  setTimeout(() => process.exit(0), 120000);
' &
squatter=$!
wait_port 514
ts port-taken
kill "$squatter"; wait "$squatter" 2>/dev/null
start_daemon
reinstall port

# 5b. Installed on a custom port (TCP only): plain troubleshoot checks that port, and --fix keeps it there.
step install-1514 "${cli[@]}" install --sink "file:$sink" --port 1514 --protocol tcp --yes --no-verify
wait_port 1514
ts_pass custom-port
sed -i 's/port="1514"/port="1515"/; s/port(1514)/port(1515)/' "$(dropin)"
ts custom-port-fixed --fix --yes
cp "$(dropin)" "$out/custom-port-dropin.conf"
ts custom-port-flag --port 514
reinstall custom-port

# 5c. rsyslog: rsyslog.conf without the rsyslog.d include. troubleshoot catches it, --fix appends it; with it
# removed again, install appends it (shown in its plan) instead of saying there is nothing to change.
if [ "$daemon" = rsyslog ]; then
  cp /etc/rsyslog.conf "$out/rsyslog.conf.orig"
  sed -i '/^\$IncludeConfig/d; /^include(/d' /etc/rsyslog.conf
  stop_daemon; start_daemon
  ts include-missing
  ts include-fixed --fix --yes
  cp /etc/rsyslog.conf "$out/rsyslog.conf.fixed"
  sed -i '/^\$IncludeConfig/d; /^include(/d; /^# Added by sentinel-cef/d' /etc/rsyslog.conf
  stop_daemon; start_daemon
  step include-install "${cli[@]}" install --sink "file:$sink" --yes --no-verify
  cp /etc/rsyslog.conf "$out/rsyslog.conf.installed"
  ts_pass include-installed
fi

# 6. An Azure workspace (the mock): healthy, then refusing the key (403), then down (503: the queue grows).
ws=11111111-2222-3333-4444-555555555555
npx tsx scripts/mock-azure.ts --http --key-file "$out/workspace.key" --workspace-id "$ws" --info-file "$out/mock.json" \
  >"$out/mock.out" 2>"$out/mock.err" &
mock=$!
wait_for 120 test -s "$out/mock.json"
url="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).url)' "$out/mock.json")"
control() { node -e 'fetch(process.argv[1] + process.argv[2], { method: "POST", headers: { "content-type": "application/json" }, body: process.argv[3] }).then((r) => process.exit(r.ok ? 0 : 1))' "$url" "$1" "${2:-{\}}"; }
step install-azure "${cli[@]}" install "$ws" --key-file "$out/workspace.key" --endpoint "$url" --yes
# The new forwarder replaced the old one: a daemon still waiting to reconnect (syslog-ng: time-reopen, 60 s) is
# what troubleshoot reports, and --fix reconnects it.
ts azure-reconnect "$ws" --fix --yes
ts_pass azure-healthy "$ws"
control /_mock/fail '{"api":"data","status":403}'
ts azure-403 "$ws"
control /_mock/clear
control /_mock/fail '{"api":"data","status":503}'
ts azure-down "$ws"
control /_mock/clear
kill "$mock"
exit 0
