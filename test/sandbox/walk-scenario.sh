#!/usr/bin/env bash
# Runs inside `scripts/sandbox run --daemon D`: the README's walkthrough as a new user runs it, then the original's
# legacy form `install <workspaceId> <key>` against the mock workspace. Writes facts into $1 (a host directory);
# walk-sandbox.test.ts compares them with the README and asserts the invariants.
#   $1 out dir, $2 daemon, $3 steps file: one `name<TAB>args` line per README command (args split on spaces)
set -uo pipefail
out="$1"; daemon="$2"; steps="$3"; repo="$(cd "$(dirname "$0")/../.." && pwd)"
. "$repo/test/sandbox/lib.sh"
cli=(node "$repo/bin/sentinel-cef")
export CI=true NO_COLOR=1
cd /tmp # where a new user's shell would be, not the repo

# Every file under /etc with its content, mode and owner: uninstall must leave it byte-identical.
etc_snapshot() { find /etc -xdev \( -type f -o -type l \) -print0 | sort -z | xargs -0 stat -c '%n %a %U:%G' | sort >"$1.stat"; find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum >"$1.sha"; }

etc_snapshot "$out/walk.pre"
while IFS=$'\t' read -r name args; do
  [ -n "$name" ] || continue
  # shellcheck disable=SC2086 # the README's arguments, split on spaces as a shell would
  "${cli[@]}" $args >"$out/$name.out" 2>&1
  echo $? >"$out/$name.rc"
done <"$steps"
etc_snapshot "$out/walk.post"

# The legacy walk: the original's syntax, the key on the command line as Microsoft's instructions have it.
ws=0b5e7c1a-3f1d-4c2e-9a8b-1234567890ab
keyfile="$out/ws.key"
"$repo/node_modules/.bin/tsx" "$repo/scripts/mock-azure.ts" --http --port 0 --key-file "$keyfile" --workspace-id "$ws" \
  --info-file "$out/mock.json" >/dev/null 2>"$out/mock.err" &
mock=$!
wait_for 120 test -s "$out/mock.json"
url="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).url)' "$out/mock.json")"
key="$(cat "$keyfile")"
# Every process whose argv or environment holds the key, while install, troubleshoot and uninstall run.
(
  while [ ! -e "$out/watch.stop" ]; do
    for p in /proc/[0-9]*; do
      [ "${p#/proc/}" = "$BASHPID" ] && continue
      # Read once: a process that exits between a check and a second read would show an empty command line.
      c="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
      if [[ $c == *"$key"* ]]; then echo "cmdline ${c:0:80}"; fi
      if grep -qaF -f "$keyfile" "$p/environ" 2>/dev/null; then echo "environ ${c:0:80}"; fi
    done
    sleep 0.05
  done | sort -u >"$out/key-seen"
) &
watcher=$!
etc_snapshot "$out/legacy.pre"
"${cli[@]}" install "$ws" "$key" --endpoint "$url" --yes >"$out/legacy-install.out" 2>&1
echo $? >"$out/legacy-install.rc"
stat -c '%n %a %U:%G' /etc/sentinel-cef/* >"$out/legacy.files" 2>&1
logger -n 127.0.0.1 -P 514 -T -p local4.warn -t CEF: "0|Acme|FW|1.0|200|legacy walk|7|src=10.9.9.9 dst=10.8.8.8"
for _ in $(seq 1 150); do
  node -e 'fetch(process.argv[1]).then(r=>r.text()).then(t=>process.stdout.write(t))' "$url/_mock/rows" >"$out/legacy-rows.json" 2>/dev/null
  grep -q 'legacy walk' "$out/legacy-rows.json" && break
  sleep 0.2
done
"${cli[@]}" troubleshoot >"$out/legacy-troubleshoot.out" 2>&1
echo $? >"$out/legacy-troubleshoot.rc"
"${cli[@]}" uninstall --yes --purge >"$out/legacy-uninstall.out" 2>&1
echo $? >"$out/legacy-uninstall.rc"
touch "$out/watch.stop"
wait "$watcher"
etc_snapshot "$out/legacy.post"
kill "$mock" 2>/dev/null
wait "$mock" 2>/dev/null
exit 0
