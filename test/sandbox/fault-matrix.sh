#!/usr/bin/env bash
# Runs inside `scripts/sandbox run --daemon D`: one install, then each fault named on the command line in turn:
# inject it, `troubleshoot --json` (F.json), `troubleshoot --fix --yes` (F.fix.json), a fresh troubleshoot
# (F.after.json), then undo it and make the install clean again for the next fault. fault-matrix.test.ts holds
# the table of faults and asserts on these files.
#   fault-matrix.sh OUT DAEMON FAULT...
set -uo pipefail
out="$1"; daemon="$2"; shift 2
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cli=(node "$repo/bin/sentinel-cef")
sink="$out/sink/rows.ndjson"
cfg=/etc/sentinel-cef/forwarder.json
export CI=true NO_COLOR=1
cd "$repo"
. "$repo/test/sandbox/lib.sh"

dproc() { [ "$daemon" = rsyslog ] && echo rsyslogd || echo syslog-ng; }
dropin() { [ "$daemon" = rsyslog ] && echo /etc/rsyslog.d/10-sentinel-cef.conf || echo /etc/syslog-ng/conf.d/sentinel-cef.conf; }
start_daemon() {
  if [ "$daemon" = rsyslog ]; then rsyslogd; else syslog-ng --pidfile /run/syslog-ng.pid; fi
  wait_port "${1:-514}"
}
stop_daemon() { pkill -x "$(dproc)"; wait_gone "$(dproc)"; }
restart_daemon() { stop_daemon; start_daemon "$@"; }
fwd_pid() { cat /run/sentinel-cef/forwarder.pid 2>/dev/null; }
# Kills the forwarder under its supervisor, which starts it again (on whatever config is there now).
restart_forwarder() {
  local old; old="$(fwd_pid)"
  kill "$old" 2>/dev/null
  for _ in $(seq 1 150); do [ "$(fwd_pid)" != "$old" ] && [ -e "/proc/$(fwd_pid)" ] && break; sleep 0.1; done
  sleep 1
  # Started means answering its admin endpoint (a loaded machine takes seconds); a forwarder that exits never does.
  for _ in $(seq 1 30); do node -e 'fetch("http://127.0.0.1:25227/health").then(()=>process.exit(0),()=>process.exit(1))' && break; sleep 0.5; done
}
# Edits the forwarder config with a JS expression over `c`.
edit_cfg() { node -e 'const fs=require("fs"),f=process.argv[1];const c=JSON.parse(fs.readFileSync(f,"utf8"));'"$1"';fs.writeFileSync(f,JSON.stringify(c,null,2))' "$cfg"; }
ms() { date +%s%3N; }
# troubleshoot NAME [ARGS...]: JSON report in NAME.json, exit code in NAME.rc, stderr in NAME.err.
ts() {
  local name="$1" t; shift; t=$(ms)
  "${cli[@]}" troubleshoot --json --probes 1 --timeout "${TS_TIMEOUT:-10}" "$@" >"$out/$name.json" 2>"$out/$name.err"
  echo $? >"$out/$name.rc"; echo $(($(ms) - t)) >"$out/$name.ms"
}
# A run that should pass: it ends as soon as the probes are in, so its bound is only reached when something is wrong
# (10 s left 7.5 s for the probes, around a daemon's retry of our action, resumeInterval 5 s, on a loaded machine).
ts_pass() { TS_TIMEOUT=30 ts "$@"; }
step() { local name="$1"; shift; "$@" >"$out/$name.out" 2>"$out/$name.err"; echo $? >"$out/$name.rc"; }
install_args=(install --sink "file:$sink" --yes)

# --- Faults: inject_F breaks the chain; restore_F (optional) undoes what a reinstall would not. ---------------

inject_forwarder-down() { stop_forwarder; }

inject_forwarder-frozen() { fwd_pid >"$out/frozen.pid"; kill -STOP "$(fwd_pid)"; }
restore_forwarder-frozen() { kill -CONT "$(cat "$out/frozen.pid")" 2>/dev/null || true; }

# A config the forwarder refuses (a listen address it cannot parse), and the forwarder restarted on it.
inject_forwarder-misconfigured() { cp "$cfg" "$out/cfg.orig"; edit_cfg 'c.listen=["tcp://127.0.0.1:notaport"]'; restart_forwarder; }
restore_forwarder-misconfigured() { cp "$out/cfg.orig" "$cfg"; restart_forwarder; }

# The forwarder listens on UDP only while the daemon sends over TCP.
inject_protocol-mismatch() { cp "$cfg" "$out/cfg.orig"; edit_cfg 'c.listen=c.listen.filter(u=>u.startsWith("udp:"))'; restart_forwarder; }
restore_protocol-mismatch() { cp "$out/cfg.orig" "$cfg"; restart_forwarder; }

inject_daemon-down() { stop_daemon; }

inject_dropin-missing() { rm -f "$(dropin)"; restart_daemon; }

# Our drop-in edited by hand (sends to a port nothing listens on), daemon restarted on it.
inject_dropin-altered() { sed -i 's/25226/25299/g' "$(dropin)"; restart_daemon; }

inject_include-removed() {
  cp /etc/rsyslog.conf "$out/rsyslog.conf.orig"
  sed -i '/^\$IncludeConfig/d; /^include(/d' /etc/rsyslog.conf
  restart_daemon
}
restore_include-removed() { cp "$out/rsyslog.conf.orig" /etc/rsyslog.conf; }

# Installed on a custom port (TCP only), then the drop-in altered: --fix must render it back on 1514.
inject_custom-port() {
  step install-1514 "${cli[@]}" install --sink "file:$sink" --port 1514 --protocol tcp --yes --no-verify
  wait_port 1514
  sed -i 's/port="1514"/port="1515"/; s/port(1514)/port(1515)/' "$(dropin)"
  restart_daemon 1515
}
# Keeps the drop-in --fix rendered for the test, then installs on the defaults again (the rows after it use 514).
restore_custom-port() {
  cp "$(dropin)" "$out/custom-port.dropin"
  step custom-port.reinstall "${cli[@]}" "${install_args[@]}" --no-verify
  wait_port 514
}

# Another program on 514 before the daemon starts: rsyslog runs without its listeners, syslog-ng exits.
squatter=""
inject_port-taken() {
  stop_daemon
  node -e '
    const net = require("net"), dgram = require("dgram");
    net.createServer((s) => s.resume()).listen(514, "0.0.0.0");
    dgram.createSocket("udp4").bind(514, "0.0.0.0");
    setTimeout(() => process.exit(0), 300000);
  ' &
  squatter=$!
  wait_port 514
  if [ "$daemon" = rsyslog ]; then rsyslogd; else syslog-ng --pidfile /run/syslog-ng.pid; fi
  sleep 1
}
restore_port-taken() { kill "$squatter"; wait "$squatter" 2>/dev/null; restart_daemon; }

# The file sink's path is a directory (EISDIR on open).
inject_sink-eisdir() { mv "$sink" "$sink.keep"; mkdir "$sink"; restart_forwarder; }
restore_sink-eisdir() { rmdir "$sink"; mv "$sink.keep" "$sink"; restart_forwarder; }

# The file sink's directory not writable by the service user.
inject_sink-eperm() { stat -c '%u:%g %a' "$out/sink" >"$out/sink.owner"; mv "$sink" "$sink.keep"; chown root:root "$out/sink"; chmod 0755 "$out/sink"; restart_forwarder; }
restore_sink-eperm() { read -r own mode <"$out/sink.owner"; chown "$own" "$out/sink"; chmod "$mode" "$out/sink"; mv "$sink.keep" "$sink"; restart_forwarder; }

# The queue directory taken from the service user (as after a restore from backup as root).
inject_queue-unwritable() {
  local q; q="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).queue?.dir ?? "/var/lib/sentinel-cef/queue")' "$cfg")"
  echo "$q" >"$out/queue.dir"
  stat -c '%u:%g %a' "$q" >"$out/queue.owner"
  chown -R root:root "$q"; chmod 0700 "$q"; restart_forwarder
}
restore_queue-unwritable() { local q own mode; q="$(cat "$out/queue.dir")"; read -r own mode <"$out/queue.owner"; chown -R "$own" "$q"; chmod "$mode" "$q"; restart_forwarder; }

# A rate limit on the CEF input (edited into our drop-in, as someone tuning the daemon would).
inject_rate-limit() {
  if [ "$daemon" = rsyslog ]; then
    sed -i 's/input(type="imudp" port="514"/& ratelimit.interval="5" ratelimit.burst="100"/' "$(dropin)"
  else
    sed -i 's/time-reopen(2)/& throttle(100)/' "$(dropin)"
  fi
  restart_daemon
}

# The daemon's maximum message size below what devices send (--probe-size 4000).
inject_message-size() {
  if [ "$daemon" = rsyslog ]; then
    cp /etc/rsyslog.conf "$out/rsyslog.conf.orig"
    sed -i '1i $MaxMessageSize 2k' /etc/rsyslog.conf
  else
    printf 'options { log-msg-size(2048); };\n' >/etc/syslog-ng/conf.d/00-size.conf
  fi
  restart_daemon
}
restore_message-size() {
  if [ "$daemon" = rsyslog ]; then cp "$out/rsyslog.conf.orig" /etc/rsyslog.conf; else rm -f /etc/syslog-ng/conf.d/00-size.conf; fi
  restart_daemon
}

# A rule that also writes CEF to /var/log/syslog.
inject_duplicates() {
  if [ "$daemon" = rsyslog ]; then
    printf '*.* /var/log/syslog\n' >/etc/rsyslog.d/05-everything.conf
  else
    # d_syslog is Debian's own file("/var/log/syslog") destination (a second file() on it would clash).
    printf 'log { source(s_sentinel_cef); destination(d_syslog); };\n' >/etc/syslog-ng/conf.d/05-everything.conf
  fi
  restart_daemon
}
restore_duplicates() { rm -f /etc/rsyslog.d/05-everything.conf /etc/syslog-ng/conf.d/05-everything.conf; restart_daemon; }

# An OMS agent's leftover rsyslog/syslog-ng forwarding to 25226/25224.
inject_legacy-agent() {
  mkdir -p /etc/opt/microsoft/omsagent/conf
  if [ "$daemon" = rsyslog ]; then
    printf 'if $rawmsg contains "CEF:" then @@127.0.0.1:25226\n' >/etc/rsyslog.d/security-config-omsagent.conf
  else
    printf 'filter f_oms_filter { match("CEF\\|ASA" ); };\ndestination oms_destination { tcp("127.0.0.1" port(25226)); };\nlog { source(src); filter(f_oms_filter); destination(oms_destination); };\n' >/etc/syslog-ng/conf.d/security-config-omsagent.conf
  fi
}
restore_legacy-agent() { rm -rf /etc/opt/microsoft /etc/rsyslog.d/security-config-omsagent.conf /etc/syslog-ng/conf.d/security-config-omsagent.conf; restart_daemon; }

# A specific DROP on 514 (tcp and udp) after an unrelated rule, in iptables (iptables-nft, Debian's default).
inject_firewall-iptables() {
  iptables -A INPUT -p tcp --dport 22 -j ACCEPT
  iptables -A INPUT -p tcp --dport 514 -j DROP
  iptables -A INPUT -p udp --dport 514 -j DROP
}
restore_firewall-iptables() { iptables -F INPUT; }

# The same DROPs for IPv6 only (ip6tables): devices that send over IPv6 are dropped, IPv4 ones are not.
inject_firewall-ip6tables() {
  ip6tables -A INPUT -p tcp --dport 22 -j ACCEPT
  ip6tables -A INPUT -p tcp --dport 514 -j DROP
  ip6tables -A INPUT -p udp --dport 514 -j DROP
}
restore_firewall-ip6tables() { ip6tables -F INPUT; }

# The same in a plain nftables ruleset (as /etc/nftables.conf writes it).
inject_firewall-nft() {
  nft -f - <<'NFT'
table inet filter {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 22 accept
    tcp dport 514 drop
    udp dport 514 drop
  }
}
NFT
}
restore_firewall-nft() { nft delete table inet filter; }

# The file sink's filesystem full: a 1 MiB tmpfs over the sink directory, filled, the forwarder restarted on it.
inject_sink-disk-full() {
  stat -c '%u:%g %a' "$out/sink" >"$out/sink.owner"
  read -r own mode <"$out/sink.owner"
  mount -t tmpfs -o size=1m tmpfs "$out/sink"
  chown "$own" "$out/sink"; chmod "$mode" "$out/sink"
  dd if=/dev/zero of="$out/sink/filler" bs=64k 2>/dev/null
  restart_forwarder
}
restore_sink-disk-full() { umount -l "$out/sink"; restart_forwarder; }

# The queue's filesystem full: a 1 MiB tmpfs over the queue directory, filled, the forwarder restarted on it.
inject_queue-disk-full() {
  local q; q="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).queue?.dir ?? "/var/lib/sentinel-cef/queue")' "$cfg")"
  echo "$q" >"$out/queue.dir"
  read -r own mode < <(stat -c '%u:%g %a' "$q")
  mount -t tmpfs -o size=1m tmpfs "$q"
  chown "$own" "$q"; chmod "$mode" "$q"
  dd if=/dev/zero of="$q/filler" bs=64k 2>/dev/null
  restart_forwarder
}
restore_queue-disk-full() { umount -l "$(cat "$out/queue.dir")"; restart_forwarder; }

# --- Azure rows: the forwarder reinstalled on the Data Collector sink of a mock workspace (scripts/mock-azure.ts, which
# checks the SharedKey signature and the x-ms-date window as Azure does); they run last and stay on it. -----------
ws=0b5e7c1a-3f1d-4c2e-9a8b-1234567890ab
mock_url=""
mockctl() { node -e 'fetch(process.argv[1],{method:"POST",body:process.argv[2]}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$mock_url/_mock/$1" "${2:-}"; }
use_azure() {
  [ -n "$mock_url" ] && return 0
  node_modules/.bin/tsx scripts/mock-azure.ts --http --port 0 --key-file "$out/ws.key" --workspace-id "$ws" --info-file "$out/mock.json" >/dev/null 2>"$out/mock.err" &
  mock_pid=$!
  wait_for 120 test -s "$out/mock.json"
  mock_url="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).url)' "$out/mock.json")"
  install_args=(install "$ws" --key-file "$out/ws.key" --endpoint "$mock_url" --yes)
  step azure-install "${cli[@]}" "${install_args[@]}" --no-verify
  restart_forwarder
}

# The workspace refuses every post: 401, 403 (a rotated key), 503 with Retry-After (a service outage).
inject_sink-401() { use_azure; mockctl fail '{"api":"data","status":401}'; }
restore_sink-401() { mockctl clear; }
inject_sink-403() { use_azure; mockctl fail '{"api":"data","status":403}'; }
restore_sink-403() { mockctl clear; }
inject_sink-503() { use_azure; mockctl fail '{"api":"data","status":503,"retryAfter":"30"}'; }
restore_sink-503() { mockctl clear; }

# This machine's clock 20 minutes behind the service's (the mock's clock moved ahead).
inject_clock-skew() { use_azure; mockctl clock '{"offsetMs":1200000}'; }
restore_clock-skew() { mockctl clock '{"offsetMs":0}'; }

# --- Logs Ingestion rows: the forwarder reinstalled on the Logs Ingestion sink of the mock over HTTPS (scripts/mock-azure.ts:
# token authority and ingestion endpoint, which check the bearer token, the DCR immutable id and the stream as Azure
# does). The forwarder trusts the mock's CA as an operator adds a private CA: NODE_EXTRA_CA_CERTS in its environment
# (the supervisor is restarted with it). They run after the Data Collector rows and stay on this sink. ------------
li_url=""
li_ca=""
# Restarts the supervisor with the command line install gave it, plus the mock's CA.
li_restart() {
  local pid; pid="$(cat /run/sentinel-cef/supervisor.pid)"
  local -a cmd; mapfile -d '' cmd <"/proc/$pid/cmdline"
  stop_forwarder
  (cd / && setsid runuser -u sentinel-cef -- env NODE_EXTRA_CA_CERTS="$li_ca" "${cmd[@]}" </dev/null >/dev/null 2>&1 &)
  for _ in $(seq 1 60); do node -e 'fetch("http://127.0.0.1:25227/health").then(()=>process.exit(0),()=>process.exit(1))' && break; sleep 0.5; done
}
use_li() {
  [ -n "$li_url" ] && return 0
  mkdir -p "$out/li-certs"
  node_modules/.bin/tsx scripts/mock-azure.ts --port 0 --cert-dir "$out/li-certs" --client-secret-file "$out/li.secret" --info-file "$out/li.json" >/dev/null 2>"$out/li-mock.err" &
  li_pid=$!
  wait_for 120 test -s "$out/li.json"
  li() { node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"))[process.argv[2]])' "$out/li.json" "$1"; }
  li_url="$(li url)"; li_ca="$(li caPath)"; chmod 0644 "$li_ca"
  # troubleshoot's own Azure checks trust it the same way.
  export NODE_EXTRA_CA_CERTS="$li_ca"
  install_args=(install --dce "$li_url" --dcr "$(li dcrImmutableId)" --stream "$(li stream)" --tenant "$(li tenantId)" --client-id "$(li clientId)" --client-secret-file "$out/li.secret" --yes)
  step li-install "${cli[@]}" "${install_args[@]}" --no-verify
  # install has no flag for the token authority: point it at the mock, as after every reinstall.
  after_reinstall() { edit_cfg "c.sink.authorityHost=\"$li_url\""; li_restart; }
  after_reinstall
}
limockctl() { node -e 'fetch(process.argv[1],{method:"POST",body:process.argv[2]}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$li_url/_mock/$1" "${2:-}"; }

# The authority refuses the client secret (rotated in Entra ID, the old one still in the file).
inject_li-token-refused() {
  use_li
  secret_file="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).sink.auth.clientSecretFile)' "$cfg")"
  cp -p "$secret_file" "$out/li.secret.orig"
  printf 'a-rotated-away-secret-0123456789\n' >"$secret_file"
  li_restart
}
restore_li-token-refused() { cp -p "$out/li.secret.orig" "$secret_file"; li_restart; }
# The ingestion endpoint refuses the token (401), or the app lacks the role on the DCR (403, as Azure words it).
inject_li-401() { use_li; limockctl fail '{"api":"logs-ingestion","status":401}'; }
restore_li-401() { limockctl clear; li_restart; }
inject_li-403() { use_li; limockctl fail '{"api":"logs-ingestion","status":403,"body":"{\"error\":{\"code\":\"OperationFailed\",\"message\":\"The authentication token provided does not have access to ingest data for the data collection rule with immutable Id. PipelineAccessResult: AccessGranted: False, IsRbacPresent: False\"}}"}'; }
restore_li-403() { limockctl clear; li_restart; }
# A DCR immutable id or a stream the DCR does not have (404 NotFound / InvalidStream from the endpoint).
inject_li-wrong-dcr() { use_li; cp "$cfg" "$out/cfg.orig"; edit_cfg 'c.sink.dcrImmutableId="dcr-00000000000000000000000000000000"'; li_restart; }
restore_li-wrong-dcr() { cp "$out/cfg.orig" "$cfg"; li_restart; }
inject_li-wrong-stream() { use_li; cp "$cfg" "$out/cfg.orig"; edit_cfg 'c.sink.stream="Custom-NotInTheDcr"'; li_restart; }
restore_li-wrong-stream() { cp "$out/cfg.orig" "$cfg"; li_restart; }

# --- The run ---------------------------------------------------------------------------------------------------

t0=$(ms)
step install "${cli[@]}" "${install_args[@]}"
ts_pass baseline
echo "install_ms=$(($(ms) - t0))" >"$out/timing.env"
for f in "$@"; do
  t=$(ms)
  extra=()
  [ "$f" = message-size ] && extra=(--probe-size 4000)
  "inject_$f" >"$out/$f.inject.log" 2>&1
  ts "$f" "${extra[@]}"
  ts "$f.fix" --fix --yes "${extra[@]}"
  if [ "$(cat "$out/$f.fix.rc")" = 0 ]; then ts_pass "$f.after" "${extra[@]}"; else ts "$f.after" "${extra[@]}"; fi
  if declare -F "restore_$f" >/dev/null; then "restore_$f" >>"$out/$f.inject.log" 2>&1; fi
  # Clean state for the next fault: the fix (F.after) or the restore may have left it so; otherwise one
  # reinstall (kept in F.reinstall.*).
  if [ "$(cat "$out/$f.after.rc")" != 0 ] || declare -F "restore_$f" >/dev/null; then ts_pass "$f.clean"; else cp "$out/$f.after.rc" "$out/$f.clean.rc"; fi
  if [ "$(cat "$out/$f.clean.rc")" != 0 ]; then
    step "$f.reinstall" "${cli[@]}" "${install_args[@]}" --no-verify
    if declare -F after_reinstall >/dev/null; then after_reinstall >>"$out/$f.inject.log" 2>&1; fi
    ts_pass "$f.clean"
  fi
  echo "$f=$(($(ms) - t))" >>"$out/timing.env"
done
echo "total_ms=$(($(ms) - t0))" >>"$out/timing.env"
[ -z "$mock_url" ] || kill "$mock_pid" 2>/dev/null
[ -z "$li_url" ] || kill "$li_pid" 2>/dev/null
exit 0
