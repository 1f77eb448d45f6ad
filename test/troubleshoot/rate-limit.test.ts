import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Context } from '../../src/troubleshoot/context.js';
import * as daemon from '../../src/troubleshoot/checks/daemon.js';
import { troubleshootOptionsSchema } from '../../src/troubleshoot/types.js';
import { cleanup, healthyTree, makeRoot, put, testDeps } from './helpers.js';

let root: string;
const ctxFor = (opts: Record<string, unknown> = {}) =>
  new Context(troubleshootOptionsSchema.parse({ configPath: '/etc/sentinel-cef/forwarder.json', probes: 0, ...opts }), testDeps(root));

beforeEach(async () => {
  root = await makeRoot();
  await healthyTree(root, { adminPort: 1, daemonPort: 514 });
});
afterEach(() => cleanup(root));

const MAIN = '/etc/rsyslog.conf';
const INCLUDE = '$IncludeConfig /etc/rsyslog.d/*.conf\n';

describe('daemon.rate-limit reads the inputs that carry the CEF port', () => {
  it.each([
    {
      name: 'imudp input limited to 100 per 5 s (the reused input)',
      conf: 'module(load="imudp")\ninput(type="imudp" port="514" ratelimit.interval="5" ratelimit.burst="100")\n',
      message: 'the imudp input on port 514 keeps 100 messages per 5 s',
      fix: 'set ratelimit.interval="0" on input(type="imudp" port="514") in /etc/rsyslog.conf',
    },
    {
      name: 'imtcp input, mixed case, burst left at its default',
      conf: 'module(load="imtcp")\ninput(type="imtcp" port="514" RateLimit.Interval="10")\n',
      message: 'the imtcp input on port 514 keeps 10000 messages per 10 s',
      fix: 'input(type="imtcp" port="514")',
    },
    {
      name: 'imptcp input',
      conf: 'module(load="imptcp")\ninput(type="imptcp" port="514" rateLimit.interval="2" rateLimit.burst="50")\n',
      message: 'the imptcp input on port 514 keeps 50 messages per 2 s',
      fix: 'input(type="imptcp" port="514")',
    },
    {
      name: 'a module-level default',
      conf: 'module(load="imudp" ratelimit.interval="5" ratelimit.burst="300")\ninput(type="imudp" port="514")\n',
      message: 'keeps 300 messages per 5 s and drops the rest (/etc/rsyslog.conf, module(load="imudp"))',
      fix: 'set ratelimit.interval="0" on module(load="imudp") in /etc/rsyslog.conf',
    },
  ])('warns for $name, naming the exact setting', async ({ conf, message, fix }) => {
    await put(root, MAIN, conf + INCLUDE);
    const r = await daemon.checkRateLimit(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain(message);
    expect(r.message).not.toContain('not limited');
    expect(r.fix).toContain(fix);
  });

  it.each([
    ['an input on another port', 'input(type="imudp" port="1514" ratelimit.interval="5" ratelimit.burst="100")\n'],
    ['interval 0 (rsyslog: no limit)', 'input(type="imudp" port="514" ratelimit.interval="0" ratelimit.burst="100")\n'],
    [
      'legacy inputs ($SystemLogRateLimit* limits only the local socket)',
      '$ModLoad imudp\n$UDPServerRun 514\n$ModLoad imtcp\n$InputTCPServerRun 514\n',
    ],
    ['a limit in a comment', '# input(type="imudp" port="514" ratelimit.interval="5")\ninput(type="imudp" port="514")\n'],
  ])('passes for %s', async (_n, conf) => {
    await put(root, MAIN, conf + INCLUDE);
    const r = await daemon.checkRateLimit(ctxFor());
    expect(r.status, r.message).toBe('pass');
  });

  it('a legacy input with $SystemLogRateLimit* is reported as a local limit, the port as unlimited', async () => {
    await put(root, MAIN, `$ModLoad imudp\n$UDPServerRun 514\n$SystemLogRateLimitInterval 5\n${INCLUDE}`);
    const r = await daemon.checkRateLimit(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('$SystemLogRateLimitInterval 5');
    expect(r.message).toContain('the inputs on port 514 are not limited');
  });

  it('follows the installed port and ignores a transport install did not open', async () => {
    await put(root, MAIN, `input(type="imudp" port="1514" ratelimit.interval="5" ratelimit.burst="100")\n${INCLUDE}`);
    expect((await daemon.checkRateLimit(ctxFor({ port: 1514 }))).status).toBe('warn');
    expect((await daemon.checkRateLimit(ctxFor({ port: 1514, protocol: 'tcp' }))).status).toBe('pass');
  });
});

// Fault matrix (rate-limit on syslog-ng): throttle() in our drop-in sits on the CEF path itself, so it limits the
// devices on the port, not only local senders, and the fix is syslog-ng's, not rsyslog's.
describe('daemon.rate-limit on syslog-ng', () => {
  it('reports throttle() in our drop-in as a limit on the CEF path, with the syslog-ng fix', async () => {
    await cleanup(root);
    root = await makeRoot();
    await healthyTree(root, { adminPort: 1, daemonPort: 514, daemon: 'syslog-ng' });
    const path = '/etc/syslog-ng/conf.d/sentinel-cef.conf';
    await put(
      root,
      path,
      '# Managed by sentinel-cef 0.1.0.\ndestination d { network("127.0.0.1" port(25226) transport("framed") time-reopen(2) throttle(100)); };\nlog { source(s); destination(d); flags(final); };\n',
    );
    const r = await daemon.checkRateLimit(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain(`throttle(100) on the CEF path keeps 100 messages per second and drops the rest (${path})`);
    expect(r.message).not.toContain('local senders');
    expect(r.fix).toContain(`remove throttle(100) from ${path}`);
    expect(r.fix).not.toContain('rsyslog');
  });
});
