import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import https from 'node:https';
import tls from 'node:tls';
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { forwarderConfigSchema } from '../../src/config/schema.js';
import type { RunningForwarder } from '../../src/forwarder/forwarder.js';
import { createSink } from '../../src/sinks/index.js';
import { createReadbackClient } from '../../src/azure/readback.js';
import { buildDcrTemplate, DCR_STREAM } from '../../src/dcr/render.js';
import { Context } from '../../src/troubleshoot/context.js';
import { checkReadback, hopRows, type ProbeHopRow } from '../../src/troubleshoot/checks/readback.js';
import { createDefaultDeps } from '../../src/troubleshoot/deps.js';
import { renderHops, renderHuman, troubleshootExitCode } from '../../src/troubleshoot/render.js';
import { summarize } from '../../src/troubleshoot/run.js';
import type { CheckResult } from '../../src/troubleshoot/types.js';
import { troubleshootOptionsSchema } from '../../src/troubleshoot/types.js';
import { startMockAzure, type MockAzure } from '../helpers/mock-azure.js';
import { startMockControl, type MockControl } from '../helpers/mock-azure-control.js';
import { startProbedForwarder } from './helpers.js';

// The real forwarder (in process) sends to the ingestion mock over TLS; readback goes through @azure/monitor-query-logs
// and @azure/identity to the Logs Query and ARM mock, which shows rows through the DCR as Azure would.
describe('e2e.readback: the probes read back from CommonSecurityLog', () => {
  let dir: string;
  let edge: MockAzure;
  let ctl: MockControl;
  let forwarder: RunningForwarder;
  let port: number;
  let ruleId: string;

  const rule = (edit: (p: ReturnType<typeof buildDcrTemplate>['properties']) => void = () => {}) => {
    const t = buildDcrTemplate();
    const w = ctl.workspaces[0];
    t.properties.destinations.logAnalytics[0].workspaceResourceId = `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.OperationalInsights/workspaces/${w.name}`;
    edit(t.properties);
    return { location: w.location, kind: 'Direct', properties: { ...t.properties, immutableId: edge.dcrImmutableId } };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ts-readback-'));
    edge = await startMockAzure({ https: true, quiet: true, certDir: dir });
    ctl = await startMockControl({ edge });
    const w = ctl.workspaces[0];
    ruleId = `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.Insights/dataCollectionRules/sentinel-cef-dcr`;
    await writeFile(join(dir, 'client.secret'), `${edge.clientSecret}\n`, { mode: 0o600 });
    const sink = {
      type: 'logs-ingestion',
      endpoint: edge.url,
      dcrImmutableId: edge.dcrImmutableId,
      stream: DCR_STREAM,
      authorityHost: edge.url,
      auth: { kind: 'client-secret', tenantId: edge.tenantId, clientId: edge.clientId, clientSecretFile: join(dir, 'client.secret') },
    };
    const config = forwarderConfigSchema.shape.sink.parse(sink);
    ({ forwarder, port } = await startProbedForwarder(dir, sink, {
      sink: createSink(config, { ca: edge.caPem, logger: { info() {}, warn() {} } }),
    }));
  });

  afterAll(async () => {
    await forwarder?.shutdown();
    await ctl?.close();
    await edge?.close();
    await rm(dir, { recursive: true, force: true });
  });

  afterEach(() => {
    ctl.dcrs.clear();
    ctl.setIngestionDelay(0);
    ctl.setSyslogCopies(false);
    ctl.setReader(true);
    ctl.failQueries(0, { status: 200, code: '', message: '' });
    ctl.partialQueries(0);
    ctl.setGraphPageSize(1000);
    ctl.setGraphLag(undefined);
    ctl.allow('Microsoft.Insights/dataCollectionRules/read');
  });

  // One credential for every case: its token cache keeps sign-in out of the timings ("late" must poll before the rows show).
  let credential: ClientSecretCredential | undefined;
  function ctx(readbackTimeoutSec: number, progress: string[] = []) {
    credential ??= new ClientSecretCredential(edge.tenantId, edge.clientId, edge.clientSecret, {
      authorityHost: edge.url,
      disableInstanceDiscovery: true,
      agent: new https.Agent({ ca: [...tls.rootCertificates, edge.caPem!] }),
    });
    const cred = credential;
    const deps = createDefaultDeps({ root: '/', env: {} });
    deps.progress = (t) => progress.push(t);
    deps.readbackClient = (o) =>
      createReadbackClient({ env: {}, logsQueryUrl: o.logsQueryUrl, armUrl: o.armUrl, ca: edge.caPem, credential: cred });
    return new Context(
      troubleshootOptionsSchema.parse({
        configPath: join(dir, 'forwarder.json'),
        port,
        probes: 2,
        timeoutSec: 20,
        workspaceId: edge.workspaceId,
        readbackTimeoutSec,
        logsQueryEndpoint: ctl.url,
        armEndpoint: ctl.url,
        // The probes go straight to the in-process forwarder: no syslog daemon is in this path.
        forwarderOnly: true,
      }),
      deps,
    );
  }

  // One probe run serves the cases that differ only in what Azure does with accepted rows (the mock applies the
  // DCR, delay and failures at query time), so the file stays short.
  let sharedCtx: Context | undefined;
  function shared(readbackTimeoutSec: number) {
    sharedCtx ??= ctx(readbackTimeoutSec);
    (sharedCtx.opts as { readbackTimeoutSec: number }).readbackTimeoutSec = readbackTimeoutSec;
    return sharedCtx;
  }

  type Hop = ProbeHopRow;

  it('found: every accepted probe is in the table, each hop timed, and the query shape is what the API takes', async () => {
    ctl.addDcr(ruleId, rule());
    const r = await checkReadback(ctx(30));
    expect(r.status, r.message).toBe('pass');
    expect(r.message).toMatch(/^4\/4 probes in CommonSecurityLog; accepted → table p50/);
    const hops = r.details!.hops as Hop[];
    expect(hops).toHaveLength(4);
    for (const h of hops) {
      // No daemon in this path: its hop is n/a, not a made-up "yes".
      expect(h).toMatchObject({ daemon: null, daemonMs: null, inSyslog: false });
      for (const v of [h.forwarderMs, h.apiMs, h.tableMs]) expect(v).toBeTypeOf('number');
    }
    const q = ctl.requests.filter((x) => x.path.endsWith('/query'));
    expect(q.length).toBeGreaterThan(0);
    expect(q.every((x) => x.status === 200)).toBe(true);
    const human = renderHuman({ ok: true, checks: [r] }, { colour: false });
    expect(human).toMatch(/probe\s+sent\s+daemon\s+forwarder\s+API accepted\s+in table\s+Syslog copy/);
    for (const h of hops) expect(human).toMatch(new RegExp(`${h.id}\\s+\\d\\d:\\d\\d:\\d\\d\\s+n/a\\s+\\+\\d`));
    expect(human).not.toContain('through');
  }, 60_000);

  it('late: rows that take a while are waited for, with a progress line per poll', async () => {
    ctl.addDcr(ruleId, rule());
    ctl.setIngestionDelay(8000);
    const progress: string[] = [];
    const r = await checkReadback(ctx(30, progress));
    expect(r.status, r.message).toBe('pass');
    expect(
      progress.some((l) => /^readback: [0-3]\/4 probes in CommonSecurityLog after \d+s/.test(l)),
      progress.join('\n'),
    ).toBe(true);
    expect(Math.min(...(r.details!.hops as Hop[]).map((h) => h.tableMs!))).toBeGreaterThanOrEqual(7000);
  }, 60_000);

  it('never: not in the table by --readback-timeout is a failure (never all green), with the longer timeout to try', async () => {
    ctl.addDcr(ruleId, rule());
    ctl.setIngestionDelay(600_000);
    const r = await checkReadback(shared(3));
    expect(r.status).toBe('fail');
    expect(r.message).toMatch(/^4\/4 probes accepted by the ingestion API are not in CommonSecurityLog after \d/);
    expect(r.message).toContain('the rule looks right');
    expect(r.fix).toContain('--readback-timeout');
    expect((r.details!.hops as Hop[]).every((h) => h.tableMs === null && h.apiMs !== null)).toBe(true);
  }, 60_000);

  it('dropped by the transform: the rule and its transform are named', async () => {
    const kql = 'source | where DeviceVendor != "TestCommonEventFormat"';
    ctl.addDcr(
      ruleId,
      rule((p) => void (p.dataFlows[0].transformKql = kql)),
    );
    const r = await checkReadback(shared(3));
    expect(r.status).toBe('fail');
    expect(r.message).toContain(`the transform of rule sentinel-cef-dcr drops the probes: ${kql}`);
  }, 60_000);

  it('an undeclared column or another output stream: named from the DCR read through ARM', async () => {
    ctl.addDcr(
      ruleId,
      rule((p) => {
        p.streamDeclarations[DCR_STREAM].columns = p.streamDeclarations[DCR_STREAM].columns.filter((c) => c.name !== 'DeviceCustomString2');
        p.dataFlows[0].outputStream = 'Custom-CEF_CL';
      }),
    );
    const r = await checkReadback(shared(3));
    expect(r.status).toBe('fail');
    expect(r.message).toContain(`rule sentinel-cef-dcr sends ${DCR_STREAM} to Custom-CEF_CL, not Microsoft-CommonSecurityLog`);
    expect(r.message).toContain('does not declare DeviceCustomString2');
  }, 60_000);

  /** A rule another tool made that also sends CEF to CommonSecurityLog (AMA's), in our workspace. */
  function otherCslRule(name: string, immutableId: string, more: Record<string, unknown> = {}) {
    const w = ctl.workspaces[0];
    ctl.addDcr(
      `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.Insights/dataCollectionRules/${name}`,
      {
        location: w.location,
        properties: {
          immutableId,
          ...more,
          destinations: {
            logAnalytics: [
              {
                name: 'la',
                workspaceResourceId: `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.OperationalInsights/workspaces/${w.name}`,
                workspaceId: w.customerId,
              },
            ],
          },
          dataFlows: [{ streams: ['Microsoft-CommonSecurityLog'], destinations: ['la'] }],
        },
      },
    );
  }

  it('the rule is found by immutable id on any Resource Graph page ($skipToken) and read through ARM (2023-03-11)', async () => {
    // Three other rules come first and a page holds two: ours is on page 2.
    for (const n of [1, 2, 3]) otherCslRule(`ama-cef-${n}`, `dcr-other${n}`);
    const kql = 'source | where false';
    ctl.addDcr(
      ruleId,
      rule((p) => void (p.dataFlows[0].transformKql = kql)),
    );
    ctl.setGraphPageSize(2);
    const before = ctl.requests.length;
    const r = await checkReadback(shared(1));
    expect(r.status).toBe('fail');
    expect(r.message).toContain(`the transform of rule sentinel-cef-dcr drops the probes: ${kql}`);
    expect(r.message).toContain('Other rules also sending to CommonSecurityLog: ama-cef-1, ama-cef-2, ama-cef-3');
    const sent = ctl.requests.slice(before);
    const graph = sent.filter((x) => x.path === '/providers/Microsoft.ResourceGraph/resources');
    expect(graph.map((x) => x.status)).toEqual([200, 200]);
    const bodies = graph.map((x) => x.body as { query: string; options: { $top?: number; $skipToken?: string } });
    expect(bodies[0].query).toContain(`properties.immutableId =~ '${edge.dcrImmutableId}'`);
    expect(bodies[0].options.$skipToken).toBeUndefined();
    expect(bodies[1].options.$skipToken).toBeTypeOf('string');
    expect(sent.filter((x) => x.method === 'GET' && x.path === ruleId)).toEqual([
      expect.objectContaining({ apiVersion: '2023-03-11', status: 200 }),
    ]);
  }, 60_000);

  it('the rule read through ARM, not the Resource Graph copy that lags a just-fixed rule', async () => {
    ctl.addDcr(ruleId, rule());
    ctl.setIngestionDelay(600_000);
    // Resource Graph still indexes yesterday's broken rule; ARM holds today's fixed one.
    ctl.setGraphLag(ruleId, rule((p) => void (p.dataFlows[0].outputStream = 'Custom-CEF_CL')).properties);
    const r = await checkReadback(shared(1));
    expect(r.status).toBe('fail');
    expect(r.message).not.toContain('Custom-CEF_CL');
    expect(r.message).toContain('the rule looks right');
  }, 60_000);

  it('a rule the identity may not read: one line naming the role and where', async () => {
    ctl.addDcr(
      ruleId,
      rule((p) => void (p.dataFlows[0].transformKql = 'source | where false')),
    );
    ctl.deny('Microsoft.Insights/dataCollectionRules/read');
    const r = await checkReadback(shared(1));
    expect(r.status).toBe('fail');
    expect(r.message).toContain(
      `no data collection rule with immutable id ${edge.dcrImmutableId} is visible to the signed-in identity: reading it needs "Monitoring Reader" (or "Reader") on the rule's resource group`,
    );
  }, 60_000);

  it('duplicated: probes also in Syslog warn, name the other rule and give the AMA 1.41 transform', async () => {
    ctl.addDcr(ruleId, rule());
    otherCslRule('ama-cef', 'dcr-ama', {
      dataSources: { syslog: [{ name: 'cef', streams: ['Microsoft-CommonSecurityLog'], facilityNames: ['local4'], logLevels: ['*'] }] },
    });
    ctl.setSyslogCopies(true);
    const r = await checkReadback(shared(30));
    expect(r.status, r.message).toBe('warn');
    expect(r.message).toMatch(/^4\/4 probes in CommonSecurityLog.*but 4 also landed in Syslog/);
    expect(r.message).toContain('Other rules also sending to CommonSecurityLog: ama-cef');
    expect(r.fix).toContain('SyslogMessage !contains "CEF:0"');
    expect((r.details!.hops as Hop[]).every((h) => h.inSyslog)).toBe(true);
  }, 60_000);

  /** The whole run's verdict with this readback in it: never "OK" / exit 0 while the probes are not proven in the table. */
  function verdict(r: CheckResult) {
    const report = summarize([r]);
    return {
      ok: report.ok,
      unfinished: report.unfinished,
      exit: troubleshootExitCode(report),
      human: renderHuman(report, { colour: false }),
    };
  }

  it('a missing reader role is one line naming "Log Analytics Reader", and the run is not OK (exit 3)', async () => {
    ctl.addDcr(ruleId, rule());
    ctl.setReader(false);
    const r = await checkReadback(shared(30));
    expect(r.status).toBe('warn');
    expect(r.message).toBe(
      `cannot query workspace ${edge.workspaceId}: the signed-in identity needs "Log Analytics Reader" on it (probes not verified in the table)`,
    );
    expect(r.fix).toContain('az role assignment create --role "Log Analytics Reader"');
    expect(verdict(r)).toMatchObject({ ok: false, unfinished: ['e2e.readback'], exit: 3 });
    expect(verdict(r).human).toMatch(/^NOT OK: .*\(e2e\.readback could not verify the probes: nothing proven there\)$/m);
  }, 60_000);

  // A query that fails says nothing about the rows: the check cannot pass, and the run cannot end "OK", exit 0.
  const queryFailures: Array<[string, () => void, RegExp]> = [
    ['throttled past the retries (429)', () => ctl.throttleQueries(20, 0), /throttl/i],
    [
      'a 5xx past the retries',
      () => ctl.failQueries(20, { status: 503, code: 'ServiceUnavailable', message: 'The service is unavailable.', retryAfterSec: 0 }),
      /unavailable/i,
    ],
    ['a partial result', () => ctl.partialQueries(1), /partial result/],
  ];
  it.each(queryFailures)(
    '%s: could not verify, the run is NOT OK with exit 3',
    async (_name, fail, why) => {
      ctl.addDcr(ruleId, rule());
      fail();
      const r = await checkReadback(shared(30));
      expect(r.status, r.message).toBe('warn');
      expect(verdict(r)).toMatchObject({ ok: false, unfinished: ['e2e.readback'], exit: 3 });
      expect(r.message).toMatch(new RegExp(`^cannot query workspace ${edge.workspaceId}: .*\\(probes not verified in the table\\)$`));
      expect(r.message).toMatch(why);
      expect(verdict(r).human).not.toMatch(/^OK:/m);
      expect(verdict(r).human).toContain('e2e.readback could not verify the probes');
    },
    60_000,
  );

  it('a failed sign-in: could not verify, the run is NOT OK with exit 3', async () => {
    ctl.addDcr(ruleId, rule());
    const c = shared(30);
    const deps = c.deps;
    const good = deps.readbackClient;
    const wrong = new ClientSecretCredential(edge.tenantId, edge.clientId, 'not-the-secret', {
      authorityHost: edge.url,
      disableInstanceDiscovery: true,
      agent: new https.Agent({ ca: [...tls.rootCertificates, edge.caPem!] }),
    });
    deps.readbackClient = (o) =>
      createReadbackClient({ env: {}, logsQueryUrl: o.logsQueryUrl, armUrl: o.armUrl, ca: edge.caPem, credential: wrong });
    try {
      const r = await checkReadback(c);
      expect(r.status, r.message).toBe('warn');
      expect(verdict(r)).toMatchObject({ ok: false, unfinished: ['e2e.readback'], exit: 3 });
      expect(r.message).toContain('Invalid client secret');
      expect(r.message).not.toContain('not-the-secret');
      expect(r.fix).toContain('az login');
    } finally {
      deps.readbackClient = good;
    }
  }, 60_000);

  it('a 429 from the Logs Query API is waited out (Retry-After), not reported', async () => {
    ctl.addDcr(ruleId, rule());
    ctl.throttleQueries(1, 1);
    const r = await checkReadback(shared(30));
    expect(r.status, r.message).toBe('pass');
    expect(ctl.requests.some((x) => x.path.endsWith('/query') && x.status === 429)).toBe(true);
  }, 60_000);

  it('the legacy Data Collector path: an honest notice that CommonSecurityLog_CL is not CommonSecurityLog', async () => {
    const cfg = join(dir, 'legacy.json');
    await writeFile(join(dir, 'ws.key'), `${edge.sharedKey}\n`, { mode: 0o600 });
    await writeFile(
      cfg,
      JSON.stringify({
        admin: '127.0.0.1:9',
        sink: { type: 'log-analytics', workspaceId: edge.workspaceId, sharedKeyFile: join(dir, 'ws.key') },
      }),
    );
    const c = new Context(
      troubleshootOptionsSchema.parse({ configPath: cfg, probes: 1, workspaceId: edge.workspaceId }),
      createDefaultDeps({ root: '/', env: {} }),
    );
    const r = await checkReadback(c);
    expect(r.status).toBe('warn');
    expect(r.message).toContain('CommonSecurityLog_CL, not CommonSecurityLog');
    expect(r.fix).toContain(`sentinel-cef install --workspace ${edge.workspaceId}`);
    // Without --workspace it does not suggest passing one: that would read CommonSecurityLog, where these rows never go.
    const without = new Context(troubleshootOptionsSchema.parse({ configPath: cfg, probes: 1 }), createDefaultDeps({ root: '/', env: {} }));
    const s = await checkReadback(without);
    expect(s).toMatchObject({ status: 'skip' });
    expect(s.message).toContain('CommonSecurityLog_CL');
    expect(s.message).not.toContain('--workspace');
  });

  it('a file sink: skipped as nothing goes to a workspace, with or without --workspace', async () => {
    const cfg = join(dir, 'file.json');
    await writeFile(cfg, JSON.stringify({ admin: '127.0.0.1:9', sink: { type: 'file', path: join(dir, 'rows.ndjson') } }));
    for (const workspaceId of [undefined, edge.workspaceId]) {
      const c = new Context(
        troubleshootOptionsSchema.parse({ configPath: cfg, probes: 1, workspaceId }),
        createDefaultDeps({ root: '/', env: {} }),
      );
      expect(await checkReadback(c)).toMatchObject({ status: 'skip', message: 'file sink: nothing goes to a workspace' });
    }
  });

  it('without a workspace, readback is skipped and says how to ask for it', async () => {
    const c = new Context(
      troubleshootOptionsSchema.parse({ configPath: join(dir, 'forwarder.json'), probes: 1 }),
      createDefaultDeps({ root: '/', env: {} }),
    );
    const r = await checkReadback(c);
    expect(r).toMatchObject({ status: 'skip' });
    expect(r.message).toContain('--workspace');
  });
});

describe('the hop table', () => {
  const sentAt = Date.parse('2026-12-06T10:00:00.000Z');
  const probes = [
    { id: 'p-1', transport: 'tcp', sentAt, receivedAt: sentAt + 40, acceptedAt: sentAt + 1040, accepted: true, visibleAt: sentAt + 61_040 },
    { id: 'p-2', transport: 'udp', sentAt, accepted: false },
  ];

  it('with a daemon in the path: its hop is measured (sent → forwarder through it) and labelled so', () => {
    const rows = hopRows(probes, 'rsyslog');
    expect(rows[0]).toMatchObject({ daemon: 'rsyslog', daemonMs: 40, forwarderMs: null, apiMs: 1000, tableMs: 60_000 });
    expect(rows[1]).toMatchObject({ daemon: 'rsyslog', daemonMs: null, forwarderMs: null, apiMs: null, tableMs: null });
    const text = renderHops(rows);
    expect(text[1]).toMatch(/^p-1\s+10:00:00\s+\+40 ms\*\s+\*\s+\+1\.0 s\s+\+60\.0 s\s+no$/);
    expect(text[2]).toMatch(/^p-2\s+10:00:00\s+—\s+—\s+—\s+—\s+no$/);
    expect(text.at(-1)).toMatch(/^\* sent → received by the forwarder through rsyslog: the daemon's own receive time/);
  });

  it('with no daemon in the path (demo, --forwarder-only): n/a, never "yes"', () => {
    const rows = hopRows(probes, null);
    expect(rows[0]).toMatchObject({ daemon: null, daemonMs: null, forwarderMs: 40 });
    const text = renderHops(rows);
    expect(text[1]).toMatch(/^p-1\s+10:00:00\s+n\/a\s+\+40 ms\s+/);
    expect(text.join('\n')).not.toMatch(/yes|\*/);
  });
});
