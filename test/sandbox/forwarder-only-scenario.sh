#!/usr/bin/env bash
# Runs inside `scripts/sandbox run --daemon none`: install --forwarder-only where PID 1 is not systemd (a container),
# so the forwarder runs under the supervisor as the service user. Writes facts into $1 for forwarder-only-sandbox.test.ts.
set -uo pipefail
out="$1"; repo="$(cd "$(dirname "$0")/../.." && pwd)"
cli=(node "$repo/bin/sentinel-cef")
sink="$out/sink/rows.ndjson"
export CI=true NO_COLOR=1
cd "$repo"
. "$repo/test/sandbox/lib.sh"

snapshot() { find /etc /usr/lib/sentinel-cef -xdev -type f ! -name 'passwd*' ! -name 'group*' ! -name 'shadow*' ! -name 'gshadow*' ! -name 'subuid*' ! -name 'subgid*' ! -name ld.so.cache 2>/dev/null | sort | xargs -r sha256sum; }
step() { local name="$1"; shift; "$@" >"$out/$name.out" 2>"$out/$name.err"; echo $? >"$out/$name.rc"; }

snapshot >"$out/pre.sha"
# No systemd to grant CAP_NET_BIND_SERVICE, and ports below 1024 are privileged: refused, nothing changed.
echo 1024 >/proc/sys/net/ipv4/ip_unprivileged_port_start
step refused "${cli[@]}" install --forwarder-only --sink "file:$sink" --yes
snapshot >"$out/refused.sha"
# A container runtime's network namespace lets any user bind any port (Docker sets this to 0).
echo 0 >/proc/sys/net/ipv4/ip_unprivileged_port_start
step install "${cli[@]}" install --forwarder-only --sink "file:$sink" --yes
ps -o user= -C node >"$out/users.txt" 2>&1 || true
n=0
for host in 127.0.0.1 ::1; do
  n=$((n + 1))
  logger -n "$host" -P 514 -d -p local4.warn -t CEF: "0|Acme|FW|1.0|1$n|udp $host|5|src=10.0.0.1"
  logger -n "$host" -P 514 -T -p local4.warn -t CEF: "0|Acme|FW|1.0|2$n|tcp $host|5|src=10.0.0.1"
done
rows_in() { copy_rows "$sink" "$out/rows.ndjson"; [ "$(grep -c -e 'udp ' -e 'tcp ' "$out/rows.ndjson")" -ge 4 ]; }
wait_for 30 rows_in
step uninstall "${cli[@]}" uninstall --yes --remove-user --purge
snapshot >"$out/post.sha"
pgrep -f forwarder.mjs >"$out/forwarder.after" || true
