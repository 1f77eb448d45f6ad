#!/usr/bin/env bash
# Inside the sandbox: install with the original's `<workspaceId> <key>` form against the mock workspace
# (scripts/mock-azure.ts checks the SharedKey signature as Azure does), then send CEF through the chain.
set -uo pipefail
out="$1"; repo="$(cd "$(dirname "$0")/../.." && pwd)"
export CI=true NO_COLOR=1
cd "$repo"
ws=0b5e7c1a-3f1d-4c2e-9a8b-1234567890ab
node_modules/.bin/tsx scripts/mock-azure.ts --http --port 0 --key-file "$out/ws.key" --workspace-id "$ws" --info-file "$out/mock.json" >/dev/null 2>"$out/mock.err" &
for _ in $(seq 1 100); do [ -s "$out/mock.json" ] && break; sleep 0.1; done
url="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).url)' "$out/mock.json")"
node bin/sentinel-cef install "$ws" --key-file "$out/ws.key" --endpoint "$url" --yes >"$out/install.out" 2>"$out/install.err"
echo $? >"$out/install.rc"
logger -n 127.0.0.1 -P 514 -T -p local4.warn -t CEF: "0|Acme|FW|1.0|200|to the workspace|7|src=10.9.9.9 dst=10.8.8.8"
for _ in $(seq 1 100); do
  curl -s "$url/_mock/rows" >"$out/rows.json" 2>/dev/null || node -e 'fetch(process.argv[1]).then(r=>r.text()).then(t=>process.stdout.write(t))' "$url/_mock/rows" >"$out/rows.json"
  grep -q 'to the workspace' "$out/rows.json" && break
  sleep 0.2
done
ls -l /etc/sentinel-cef/ >"$out/etc.ls"
node bin/sentinel-cef uninstall --yes --purge >"$out/uninstall.out" 2>"$out/uninstall.err"; echo $? >"$out/uninstall.rc"
kill %1 2>/dev/null
exit 0
