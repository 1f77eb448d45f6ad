import type { Context } from '../context.js';
import type { CheckOutcome } from '../types.js';
import { clockFix, clockText } from '../advice.js';
import { runProbes, settledHealth } from './e2e.js';
import { clockFault, endpointProbe, SKEW_FAIL_SEC } from '../facts.js';

const G = 'azure' as const;
const SKEW_WARN_SEC = 60;

export async function checkEndpoint(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'azure.endpoint', title: 'Azure endpoint reachable', group: G };
  const c = await ctx.config();
  if (!c.config) return { ...base, status: 'skip', message: 'no valid config' };
  if (c.config.sink.type === 'file') return { ...base, status: 'skip', message: 'file sink: no Azure endpoint' };
  const p = (await endpointProbe(ctx))!;
  const via = p.via ? ` via proxy ${p.via}` : '';
  const details = { ...p };
  if (p.dnsError) {
    return {
      ...base,
      status: 'fail',
      message: `cannot resolve ${p.host}${via}: ${p.dnsError}`,
      fix: p.via
        ? `the proxy ${p.via} cannot be resolved: check HTTPS_PROXY`
        : `check /etc/resolv.conf and that ${p.host} resolves (private link needs the privatelink DNS zone)`,
      details,
    };
  }
  if (p.tcpError) {
    return {
      ...base,
      status: 'fail',
      message: `TCP to ${p.via ?? `${p.host}:${p.port}`} failed: ${p.tcpError}`,
      fix: p.via
        ? `check the proxy ${p.via} (HTTPS_PROXY) accepts CONNECT to ${p.host}:${p.port}, or add the host to NO_PROXY`
        : `allow outbound TCP ${p.port} to ${p.host} (or set HTTPS_PROXY if egress goes through a proxy)`,
      details,
    };
  }
  if (p.tlsError) {
    return {
      ...base,
      status: 'fail',
      message: `TLS handshake with ${p.host} failed${via}: ${p.tlsError}`,
      fix: 'a TLS-inspecting proxy or an old CA bundle: install ca-certificates, or add the proxy CA with NODE_EXTRA_CA_CERTS',
      details,
    };
  }
  return {
    ...base,
    status: 'pass',
    message: `${p.host}:${p.port} resolved (${(p.resolved ?? []).slice(0, 2).join(', ') || 'via proxy'}), ${p.url.startsWith('https:') ? 'TLS ok' : 'plain HTTP'}${via}, HTTP ${p.httpStatus} in ${p.elapsedMs} ms`,
    details,
  };
}

export async function checkClock(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'azure.clock', title: 'Clock skew against Azure', group: G };
  const c = await ctx.config();
  if (!c.config || c.config.sink.type === 'file') return { ...base, status: 'skip', message: 'no Azure sink' };
  const p = await endpointProbe(ctx);
  if (!p?.serverDate || !p.localDate) {
    return { ...base, status: 'skip', message: 'no Date header from the Azure endpoint (see azure.endpoint)' };
  }
  const skew = Math.round((p.localDate - p.serverDate) / 1000);
  const details = { skewSec: skew, serverDate: new Date(p.serverDate).toISOString(), localDate: new Date(p.localDate).toISOString() };
  const msg = `local clock is ${Math.abs(skew)}s ${skew >= 0 ? 'ahead of' : 'behind'} ${p.host}`;
  if (Math.abs(skew) > SKEW_FAIL_SEC) {
    return {
      ...base,
      status: 'fail',
      message: `${msg}: more than 5 minutes breaks SharedKey signatures and tokens; refused deliveries (forwarder.delivery, azure.credentials, e2e.probes) follow from it`,
      fix: clockFix(),
      details,
    };
  }
  if (Math.abs(skew) > SKEW_WARN_SEC) {
    return { ...base, status: 'warn', message: msg, fix: 'enable NTP before the drift reaches 5 minutes', details };
  }
  return { ...base, status: 'pass', message: msg, details };
}

export async function checkCredentials(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'azure.credentials', title: 'Azure accepts the credentials', group: G };
  const c = await ctx.config();
  if (!c.config) return { ...base, status: 'skip', message: 'no valid config' };
  const sink = c.config.sink;
  if (sink.type === 'file') return { ...base, status: 'skip', message: 'file sink: no credentials' };
  const ld = (await settledHealth(ctx)).health?.lastDelivery ?? null;

  const skew = await clockFault(ctx);
  // The service's own verdict is the strongest evidence: 401/403 mean the credentials or role were refused.
  if (ld && !ld.ok && (ld.httpStatus === 401 || ld.httpStatus === 403)) {
    if (skew !== null) return clockCaused(base, skew, `the last delivery was refused with HTTP ${ld.httpStatus}`, { lastDelivery: ld });
    return {
      ...base,
      status: 'fail',
      message: `the last delivery was refused with HTTP ${ld.httpStatus}: ${ld.error ?? ''}`.trim(),
      fix:
        sink.type === 'logs-ingestion'
          ? ld.httpStatus === 403
            ? 'grant the app "Monitoring Metrics Publisher" on the DCR (role assignments take up to 30 min to apply)'
            : 'check tenant id, client id and secret or certificate in the config'
          : 'the workspace key was rejected: store the current primary key with `sentinel-cef install`',
      details: { lastDelivery: ld },
    };
  }

  if (sink.type === 'logs-ingestion') {
    let token: string | undefined;
    try {
      const t = await ctx.deps.getToken(sink, { timeoutMs: 8000 });
      token = `token valid until ${new Date(t.expiresOn).toISOString()}`;
    } catch (err) {
      return {
        ...base,
        status: 'fail',
        message: `no token for ${sink.auth.kind}: ${firstLine((err as Error).message)}`,
        fix: tokenFix((err as Error).message, sink.auth.kind),
      };
    }
    if (ld?.ok) return { ...base, status: 'pass', message: `${token}; last delivery accepted at ${ld.at}` };
    return {
      ...base,
      status: 'pass',
      message: `${token} (the DCR role is proven only by an accepted delivery: see e2e.probes)`,
    };
  }

  // Data Collector API: the signature is proven by an accepted post.
  if (ld?.ok) return { ...base, status: 'pass', message: `shared key accepted (last delivery at ${ld.at})` };
  if (ctx.opts.probes > 0) {
    const e2e = await runProbes(ctx);
    if (e2e.results.some((r) => r.accepted)) {
      return { ...base, status: 'pass', message: 'shared key accepted (a probe was delivered)' };
    }
    const refused = e2e.results.find((r) => r.error && /\b40[13]\b|forbidden|unauthori[sz]ed|signature/i.test(r.error));
    if (refused && skew !== null) return clockCaused(base, skew, 'a probe was refused', { error: refused.error });
    if (refused) {
      return {
        ...base,
        status: 'fail',
        message: `a probe was refused: ${refused.error}`,
        fix: 'the workspace key was rejected: store the current primary key with `sentinel-cef install`',
      };
    }
  }
  return {
    ...base,
    status: 'warn',
    message: 'not verified: no delivery has completed yet',
    fix: 'run again with --probes 3 once the forwarder is running to prove the key end to end',
  };
}

/** A 401/403 that the clock explains: not a key or role problem, so say that and send the reader to azure.clock. */
function clockCaused(
  base: { id: string; title: string; group: 'azure' },
  skew: number,
  what: string,
  details: Record<string, unknown>,
): CheckOutcome {
  return {
    ...base,
    status: 'fail',
    message: `${what}; this follows from the clock (${clockText(skew)}, see azure.clock), not from the credentials`,
    fix: clockFix(),
    details: { ...details, clockSkewSec: skew },
  };
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 300);
}

function tokenFix(message: string, kind: string): string {
  if (/AADSTS7000215|invalid client secret/i.test(message))
    return 'the client secret is wrong or expired: create a new one and re-run `sentinel-cef install`';
  if (/AADSTS700016|not found in the directory/i.test(message))
    return 'the client id is not registered in that tenant: check tenantId and clientId';
  if (/AADSTS90002|tenant.*not found/i.test(message)) return 'the tenant id is wrong: check tenantId';
  if (/AADSTS7000222|expired/i.test(message)) return 'the client secret expired: create a new one and re-run `sentinel-cef install`';
  if (kind === 'managed-identity') return 'enable a managed identity on this VM (and pass its client id for a user-assigned one)';
  if (/ENOTFOUND|ECONNREFUSED|ETIMEDOUT|getaddrinfo|network/i.test(message)) {
    return 'cannot reach Entra ID (login.microsoftonline.com): allow HTTPS egress or set HTTPS_PROXY';
  }
  return 'check tenantId, clientId and the secret or certificate in the config';
}
