import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createScriptedPrompter } from '../../src/system/prompts.js';
import { DESTINATION_CHOICES, runInstall } from '../../src/install/run-install.js';
import { installDeps } from './install-helpers.js';
import { installOptionsSchema } from '../../src/install/options.js';
import { legacyNotice, probeDataCollector } from '../../src/install/legacy-notice.js';
import { startMockAzure, type MockAzure } from '../helpers/mock-azure.js';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const bin = path.resolve(import.meta.dirname, '../../bin/sentinel-cef');
const temps: string[] = [];
const temp = (p: string) => {
  const d = mkdtempSync(path.join(tmpdir(), p));
  temps.push(d);
  return d;
};
const copyFixture = (c: string) => {
  const dir = temp(`scef-legacy-${c}-`);
  cpSync(path.join(fixtures, c), dir, { recursive: true });
  return dir;
};

// What Azure's retired endpoint answers is unknown ahead of time: the notice must carry whatever it is.
const RETIRED_BODY = JSON.stringify({
  Error: 'ApiRetired',
  Message: 'The HTTP Data Collector API was retired on 2026-09-14. Use the Logs Ingestion API.',
});

const opts = (o: Record<string, unknown>) => installOptionsSchema.parse({ yes: true, verify: false, ...o });

let mock: MockAzure;
beforeAll(async () => {
  mock = await startMockAzure({ https: false, quiet: true });
});
afterAll(async () => {
  await mock.close();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

describe('probeDataCollector', () => {
  it('signs as the sink does: the mock (which checks the signature) accepts it, and no row is written', async () => {
    mock.reset();
    const p = await probeDataCollector({ workspaceId: mock.workspaceId, cloud: 'AzureCloud', endpoint: mock.url }, mock.sharedKey);
    expect(p.status).toBe(200);
    expect(mock.rows).toHaveLength(0);
    expect(p.url).toBe(`${mock.url}/api/logs?api-version=2016-04-01`);
  });

  it('a wrong key is reported as the service words it', async () => {
    const p = await probeDataCollector(
      { workspaceId: mock.workspaceId, cloud: 'AzureCloud', endpoint: mock.url },
      Buffer.from('w'.repeat(64)).toString('base64'),
    );
    expect(p.status).toBe(403);
    expect(p.body).toContain('signature');
  });

  it('never echoes the key, even when the service does', async () => {
    mock.fail({
      api: 'log-analytics',
      status: 403,
      count: 1,
      body: JSON.stringify({ Error: 'Forbidden', Message: `bad key ${mock.sharedKey}` }),
    });
    const p = await probeDataCollector({ workspaceId: mock.workspaceId, cloud: 'AzureCloud', endpoint: mock.url }, mock.sharedKey);
    mock.clearFailures();
    expect(p.status).toBe(403);
    expect(JSON.stringify(p)).not.toContain(mock.sharedKey);
  });

  it('an unreachable endpoint is an answer too (no throw)', async () => {
    const p = await probeDataCollector(
      { workspaceId: mock.workspaceId, cloud: 'AzureCloud', endpoint: 'http://127.0.0.1:9' },
      mock.sharedKey,
      { timeoutMs: 3000 },
    );
    expect(p.status).toBeUndefined();
    expect(p.error).toMatch(/ECONNREFUSED|refused/i);
  });
});

describe('legacyNotice', () => {
  it('says what the probe got, in a sentence that reads: an answer, or none and why', () => {
    const url = 'https://x.ods.opinsights.azure.com/api/logs?api-version=2016-04-01';
    expect(legacyNotice({ url, error: 'ENOTFOUND' }, 'w')[1]).toBe(`  a signed probe to POST ${url} got no answer (ENOTFOUND)`);
    expect(legacyNotice({ url, status: 403, body: '' }, 'w')[1]).toBe(`  a signed probe to POST ${url} answered HTTP 403 (empty body)`);
  });
});

describe('install <workspaceId> <key>: the truth before applying', () => {
  it('says retired, the real status and body, CommonSecurityLog_CL and the switch command, before the plan; never the key', async () => {
    mock.fail({ api: 'log-analytics', status: 410, body: RETIRED_BODY });
    const root = copyFixture('debian12-rsyslog');
    const d = installDeps(temp, root, { env: { SENTINEL_CEF_KEY: mock.sharedKey } });
    const r = await runInstall(opts({ workspaceId: mock.workspaceId, endpoint: mock.url, dryRun: true }), d.deps);
    mock.clearFailures();
    const text = d.text();
    expect(text).toContain('retired by Microsoft on 2026-09-14');
    expect(text).toContain('answered HTTP 410: {"Error":"ApiRetired"');
    // The probe can take up to 8 s: it is announced before it starts, and its answer comes after.
    expect(text.indexOf('asking the Data Collector API what it answers today (up to 8 s)…')).toBeGreaterThan(-1);
    expect(text.indexOf('asking the Data Collector API')).toBeLessThan(text.indexOf('answered HTTP 410'));
    expect(text).toContain('CommonSecurityLog_CL');
    expect(text).toContain(`\`sentinel-cef install --workspace ${mock.workspaceId}\``);
    expect(text).not.toContain(mock.sharedKey);
    expect(r.warnings.some((w) => w.includes('retired'))).toBe(true);
    const noticeAt = d.stream.findIndex(([, l]) => l.includes('retired by Microsoft'));
    const planAt = d.stream.findIndex(([k, l]) => k === 'out' && l.startsWith('Plan ('));
    expect(noticeAt).toBeGreaterThanOrEqual(0);
    expect(noticeAt).toBeLessThan(planAt);
    // The original syntax still works: the config is the legacy sink.
    expect(r.dryRun).toBe(true);
  });

  it('the built CLI prints it too (original positional syntax, no TTY)', async () => {
    mock.fail({ api: 'log-analytics', status: 403, body: RETIRED_BODY });
    const root = copyFixture('debian12-rsyslog');
    const r = await execa(bin, ['install', mock.workspaceId, '--root', root, '--dry-run', '--endpoint', mock.url], {
      env: { CI: 'true', NO_COLOR: '1', SENTINEL_CEF_KEY: mock.sharedKey },
      reject: false,
    });
    mock.clearFailures();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain('retired by Microsoft on 2026-09-14');
    expect(r.stderr).toContain('answered HTTP 403: {"Error":"ApiRetired"');
    expect(r.stderr).toContain('CommonSecurityLog_CL');
    expect(r.stdout + r.stderr).not.toContain(mock.sharedKey);
  });
});

describe('install on a terminal with no destination', () => {
  it('offers set-up-for-me, an existing DCR, a file, then the legacy key last (marked retired)', async () => {
    expect(DESTINATION_CHOICES.map((c) => c.value)).toEqual(['workspace-setup', 'dcr', 'file', 'legacy']);
    expect(DESTINATION_CHOICES.every((c) => !c.disabled)).toBe(true);
    expect(DESTINATION_CHOICES[3].name).toMatch(/retired 2026-09-14.*CommonSecurityLog_CL/);
  });

  it('an existing DCR: asks endpoint and id (checked like the flags), then the identity', async () => {
    const root = copyFixture('debian12-rsyslog');
    const p = createScriptedPrompter([
      'dcr',
      'https://x-abcd.eastus-1.ingest.monitor.azure.com',
      `dcr-${'a'.repeat(32)}`,
      'contoso.onmicrosoft.com',
      '11111111-2222-3333-4444-555555555555',
      's3cret-value',
    ]);
    const d = installDeps(temp, root, { prompter: p });
    await runInstall(opts({ dryRun: true }), d.deps);
    expect(p.menus[0].map((c) => c.value)).toEqual(['workspace-setup', 'dcr', 'file', 'legacy']);
    expect(p.asked.slice(0, 3)).toEqual([
      'Where should the forwarder send events?',
      'Logs ingestion endpoint of the DCR (or of its DCE)',
      'DCR immutable id (dcr-…)',
    ]);
    expect(d.text()).toContain(`Logs Ingestion https://x-abcd.eastus-1.ingest.monitor.azure.com (DCR dcr-${'a'.repeat(32)})`);
    expect(d.text()).not.toContain('s3cret-value');
  });

  // A refused answer is worded as the flag's error is, and asked again (inquirer shows the line under the prompt).
  it('words a refused answer as the flag would be, and asks again', async () => {
    const root = copyFixture('debian12-rsyslog');
    const p = createScriptedPrompter([
      'dcr',
      'not a url',
      // Plain http to another host would carry the bearer token and the events in clear text.
      'http://x-abcd.eastus-1.ingest.monitor.azure.com',
      'https://x-abcd.eastus-1.ingest.monitor.azure.com',
      'dcr-123',
      `dcr-${'a'.repeat(32)}`,
      'contoso.onmicrosoft.com',
      '11111111-2222-3333-4444-555555555555',
      's3cret-value',
    ]);
    await runInstall(opts({ dryRun: true }), installDeps(temp, root, { prompter: p }).deps);
    expect(p.refused).toHaveLength(3);
    expect(p.refused[0]).toMatch(/^--dce must be .*, got 'not a url'$/);
    expect(p.refused[1]).toBe(
      "--dce must be an https URL (http only to a loopback address, for a local mock or relay), got 'http://x-abcd.eastus-1.ingest.monitor.azure.com'",
    );
    expect(p.refused[2]).toBe("--dcr must be a DCR immutable id (dcr- and 32 hex digits), got 'dcr-123'");
  });

  it('a local file: asks the path', async () => {
    const root = copyFixture('debian12-rsyslog');
    const p = createScriptedPrompter(['file', '/var/tmp/scef/rows.ndjson']);
    const d = installDeps(temp, root, { prompter: p });
    await runInstall(opts({ dryRun: true }), d.deps);
    expect(d.text()).toContain('sink file /var/tmp/scef/rows.ndjson');
  });
});
