import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { readerRoleCommand } from '../../src/azure/role-commands.js';

const dir = mkdtempSync(path.join(tmpdir(), 'scef-az-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WS = '11111111-2222-3333-4444-555555555555';
const WS_ID =
  '/subscriptions/aaaaaaaa-0000-0000-0000-000000000000/resourceGroups/sentinel-rg/providers/Microsoft.OperationalInsights/workspaces/ws';
const ME = 'bbbbbbbb-0000-0000-0000-000000000000';

/** A fake `az` on PATH: answers the two look-ups the advice makes and logs each call's argv, one per line. */
function fakeAz(): string {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    path.join(bin, 'az'),
    `#!/bin/sh
printf '%s|' "$@" >> ${dir}/az.log; echo >> ${dir}/az.log
case "$1 $2" in
  "ad signed-in-user") echo ${ME} ;;
  "monitor log-analytics") case "$*" in *"customerId=='${WS}'"*) echo ${WS_ID} ;; esac ;;
esac
`,
  );
  chmodSync(path.join(bin, 'az'), 0o755);
  return bin;
}

describe('az advice runs as printed', () => {
  it.each([
    ['the workspace id only: az looks up its resource id', undefined],
    ['the workspace resource id known', WS_ID],
  ])('reader role, %s', async (_, resourceId) => {
    const bin = fakeAz();
    rmSync(path.join(dir, 'az.log'), { force: true });
    const cmd = readerRoleCommand('Log Analytics Reader', WS, resourceId);
    const r = await execa('bash', ['-c', cmd], { env: { PATH: `${bin}:${process.env.PATH}` }, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    const create = readFileSync(path.join(dir, 'az.log'), 'utf8')
      .split('\n')
      .find((l) => l.startsWith('role|'));
    expect(create).toBe(`role|assignment|create|--role|Log Analytics Reader|--assignee|${ME}|--scope|${WS_ID}|`);
  });
});
