#!/usr/bin/env bash
# Runs inside `scripts/sandbox run --daemon D`: the whole install life cycle against the real daemon.
# Writes facts into $1 (a host directory); install-sandbox.test.ts asserts on them.
set -uo pipefail
out="$1"; daemon="$2"; repo="$(cd "$(dirname "$0")/../.." && pwd)"
cli=(node "$repo/bin/sentinel-cef")
sink="$out/sink/rows.ndjson"
export CI=true NO_COLOR=1
cd "$repo"
. "$repo/test/sandbox/lib.sh"

snapshot() { # every config file that install may touch, with content hashes
  find /etc/rsyslog.conf /etc/rsyslog.d /etc/syslog-ng /etc/sentinel-cef /usr/lib/sentinel-cef /etc/systemd/system \
    -type f 2>/dev/null | grep -v -e "${1:-^$}" | sort | xargs -r sha256sum
}
daemon_pid() { pgrep -x "$([ "$daemon" = rsyslog ] && echo rsyslogd || echo syslog-ng)" | tail -1; }
step() { local name="$1"; shift; "$@" >"$out/$name.out" 2>"$out/$name.err"; echo $? >"$out/$name.rc"; }

snapshot >"$out/pre.sha"
# A config that is broken before install: refused before anything changes, with the daemon's own error line.
if [ "$daemon" = rsyslog ]; then prebroken=/etc/rsyslog.d/99-prebroken.conf; else prebroken=/etc/syslog-ng/conf.d/zz-prebroken.conf; fi
echo 'this is { not valid' >"$prebroken"
step prebroken "${cli[@]}" install --sink "file:$sink" --yes --no-verify
snapshot "$prebroken" >"$out/prebroken.sha"
getent passwd sentinel-cef >"$out/prebroken.user" || true
rm -f "$prebroken"
step install1 "${cli[@]}" install --sink "file:$sink" --yes

logger -n 127.0.0.1 -P 514 -d -p local4.warn -t CEF: "0|Acme|FW|1.0|100|udp event|5|src=10.0.0.1 dst=10.0.0.2 msg=over udp"
logger -n 127.0.0.1 -P 514 -T -p local4.warn -t CEF: "0|Acme|FW|1.0|101|tcp event|5|src=10.0.0.3 dst=10.0.0.4 msg=over tcp"
logger -n 127.0.0.1 -P 514 -d --rfc3164 -p local4.warn "%ASA-6-302013: Built outbound TCP connection 1 for outside:10.1.1.1/443 (10.1.1.1/443) to inside:10.2.2.2/5000 (10.2.2.2/5000)"
logger -n 127.0.0.1 -P 514 -d -p user.notice "plain-not-cef-marker"
rows_in() {
  copy_rows "$sink" "$out/rows.ndjson"
  [ "$(grep -c -e 'udp event' -e 'tcp event' -e '302013' "$out/rows.ndjson")" -ge 3 ] && grep -q plain-not-cef-marker /var/log/syslog /var/log/messages 2>/dev/null
}
wait_for 30 rows_in
findmnt -no FSTYPE --mountpoint /dev | tail -1 >"$out/dev.fstype"
stat -c %F /dev/log >"$out/devlog.type" 2>&1
cat /var/log/syslog /var/log/messages >"$out/syslog.txt" 2>/dev/null
snapshot >"$out/installed.sha"

step install2 "${cli[@]}" install --sink "file:$sink" --yes --no-verify
snapshot >"$out/installed2.sha"
step dryrun "${cli[@]}" install --sink "file:$sink" --protocol udp --dry-run
snapshot >"$out/dryrun.sha"

# A broken drop-in that is not ours, after install: refused before anything changes, the daemon left running.
if [ "$daemon" = rsyslog ]; then broken=/etc/rsyslog.d/99-broken.conf; else broken=/etc/syslog-ng/conf.d/zz-broken.conf; fi
echo 'this is { not valid' >"$broken"
daemon_pid >"$out/pid.before"
step broken "${cli[@]}" install --sink "file:$sink" --protocol udp --yes --no-verify
daemon_pid >"$out/pid.after"
snapshot "$broken" >"$out/broken.sha"
rm -f "$broken"

step uninstall "${cli[@]}" uninstall --yes
snapshot >"$out/post.sha"
pgrep -f forwarder.mjs >"$out/forwarder.after" || true
daemon_pid >"$out/pid.final"

# rsyslog.conf that already loads imudp with an input on 514: reused, not loaded or bound a second time.
if [ "$daemon" = rsyslog ]; then
  sed -i -e 's/^#module(load="imudp")/module(load="imudp")/' -e 's/^#input(type="imudp" port="514")/input(type="imudp" port="514")/' /etc/rsyslog.conf
  sha256sum /etc/rsyslog.conf >"$out/reuse.pre"
  step reuse-install "${cli[@]}" install --sink "file:$sink" --yes
  cp /etc/rsyslog.d/10-sentinel-cef.conf "$out/reuse.dropin"
  logger -n 127.0.0.1 -P 514 -d -p local4.warn -t CEF: "0|Acme|FW|1.0|300|reused udp input|5|src=10.0.0.5"
  reused_in() { copy_rows "$sink" "$out/reuse.ndjson"; grep -q 'reused udp input' "$out/reuse.ndjson"; }
  wait_for 30 reused_in
  grep -c 'reused udp input' "$out/reuse.ndjson" >"$out/reuse.rows"
  step reuse-uninstall "${cli[@]}" uninstall --yes
  sha256sum /etc/rsyslog.conf >"$out/reuse.post"
fi

# RHEL-style syslog-ng.conf without the conf.d include: install appends it (backed up), uninstall restores it.
if [ "$daemon" = syslog-ng ]; then
  sed -i '/conf.d\/\*.conf/d' /etc/syslog-ng/syslog-ng.conf
  sha256sum /etc/syslog-ng/syslog-ng.conf >"$out/noinclude.pre"
  step noinclude-install "${cli[@]}" install --sink "file:$sink" --yes
  tail -1 /etc/syslog-ng/syslog-ng.conf >"$out/noinclude.tail"
  step noinclude-uninstall "${cli[@]}" uninstall --yes
  sha256sum /etc/syslog-ng/syslog-ng.conf >"$out/noinclude.post"
fi
# Issue 14: a link planted at our drop-in (to /etc/shadow): --dry-run and install refuse in one line, show none of it.
if [ "$daemon" = rsyslog ]; then dropin=/etc/rsyslog.d/10-sentinel-cef.conf; else dropin=/etc/syslog-ng/conf.d/sentinel-cef.conf; fi
ln -s /etc/shadow "$dropin"
snapshot >"$out/link.pre"; stat -c '%a %U' /etc/shadow >"$out/shadow.pre" 2>&1
step link-dryrun "${cli[@]}" install --sink "file:$sink" --dry-run
step link-install "${cli[@]}" install --sink "file:$sink" --yes --no-verify
snapshot >"$out/link.post"; stat -c '%a %U' /etc/shadow >"$out/shadow.post" 2>&1
readlink "$dropin" >"$out/link.target"
rm -f "$dropin"
exit 0
