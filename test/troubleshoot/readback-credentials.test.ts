import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainedTokenCredential, DefaultAzureCredential } from '@azure/identity';
import { createReadbackCredential } from '../../src/azure/readback.js';
import { startMockAzure, type MockAzure } from '../helpers/mock-azure.js';
import { startMockControl, type MockControl } from '../helpers/mock-azure-control.js';

// The operator's sign-in paths for readback, each through the real @azure/identity chain in a child process (as the
// CLI runs it) against the mock Entra ID, IMDS and Logs Query; the token is never printed.
const root = new URL('../..', import.meta.url).pathname;
let dir: string;
let edge: MockAzure;
let ctl: MockControl;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ts-rb-cred-'));
  edge = await startMockAzure({ https: true, quiet: true, certDir: dir });
  ctl = await startMockControl({ edge });
});
afterAll(async () => {
  await ctl?.close();
  await edge?.close();
  await rm(dir, { recursive: true, force: true });
});

async function query(env: Record<string, string>) {
  const r = await execa(process.execPath, ['--import', 'tsx', 'test/troubleshoot/fixtures/readback-query.ts'], {
    cwd: root,
    env: {
      PATH: process.env.PATH!,
      HOME: dir,
      NODE_EXTRA_CA_CERTS: edge.caPath!,
      QUERY_URL: ctl.url,
      WORKSPACE_ID: edge.workspaceId,
      ...env,
    },
    extendEnv: false,
    reject: false,
    timeout: 60_000,
  });
  return { out: JSON.parse(r.stdout || '{}') as { rows?: number; error?: string; kind?: string }, all: r.stdout + r.stderr };
}

const queries = () => ctl.requests.filter((x) => x.path.endsWith('/query'));

describe('readback sign-in paths (DefaultAzureCredential against the mock Entra ID)', () => {
  it('a service principal from AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET', async () => {
    const n = queries().length;
    const { out, all } = await query({
      AZURE_AUTHORITY_HOST: edge.url,
      AZURE_TENANT_ID: edge.tenantId,
      AZURE_CLIENT_ID: edge.clientId,
      AZURE_CLIENT_SECRET: edge.clientSecret,
    });
    expect(out, all).toEqual({ rows: 0 });
    expect(
      queries()
        .slice(n)
        .map((q) => q.status),
    ).toEqual([200]);
    expect(all).not.toContain(edge.clientSecret);
  }, 70_000);

  it('a managed identity (Azure VM or Arc machine) through the IMDS endpoint override', async () => {
    const n = edge.requests.length;
    const { out, all } = await query({ AZURE_TOKEN_CREDENTIALS: 'prod', AZURE_POD_IDENTITY_AUTHORITY_HOST: edge.url });
    expect(out, all).toEqual({ rows: 0 });
    expect(edge.requests.slice(n).some((r) => r.path.startsWith('/metadata/identity/oauth2/token'))).toBe(true);
  }, 70_000);

  it('an Azure CLI login (`az account get-access-token`, a fake az on PATH)', async () => {
    const bin = join(dir, 'bin');
    await execa('mkdir', ['-p', bin]);
    // The fake az gets a real mock token for the resource asked for, and logs its argv (never the token).
    await writeFile(
      join(bin, 'az'),
      `#!/usr/bin/env node
const a = process.argv.slice(2);
require('fs').appendFileSync(${JSON.stringify(join(dir, 'az.log'))}, a.join(' ') + '\\n');
const res = a[a.indexOf('--resource') + 1] || (a[a.indexOf('--scope') + 1] || '').replace(/\\/\\.default$/, '');
fetch(${JSON.stringify(`${edge.url}/${edge.tenantId}/oauth2/v2.0/token`)}, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials', client_id: ${JSON.stringify(edge.clientId)}, client_secret: ${JSON.stringify(edge.clientSecret)}, scope: res.replace(/\\/+$/, '') + '/.default' }) })
  .then((r) => r.json())
  .then((t) => { const exp = Math.floor(Date.now() / 1000) + 3600; process.stdout.write(JSON.stringify({ accessToken: t.access_token, expiresOn: new Date(exp * 1000).toISOString().replace('T', ' ').slice(0, 19), expires_on: exp, tokenType: 'Bearer' })); });
`,
    );
    await chmod(join(bin, 'az'), 0o755);
    const { out, all } = await query({ AZURE_TOKEN_CREDENTIALS: 'dev', PATH: `${bin}:${process.env.PATH}` });
    expect(out, all).toEqual({ rows: 0 });
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(join(dir, 'az.log'), 'utf8')).toMatch(/^account get-access-token .*https:\/\/api\.loganalytics\.io/m);
  }, 70_000);

  it('device code is offered only on a terminal', async () => {
    const quiet = await createReadbackCredential({ env: {}, interactive: false });
    expect(quiet).toBeInstanceOf(DefaultAzureCredential);
    const tty = await createReadbackCredential({ env: {}, interactive: true, prompt: () => {} });
    expect(tty).toBeInstanceOf(ChainedTokenCredential);
  });
});
