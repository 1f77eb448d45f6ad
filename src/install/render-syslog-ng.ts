import { VERSION } from '../version.js';
import { loadTemplate, renderTemplate } from './templates.js';
import { protocolsOf, type DaemonRenderOptions, type RenderedDropin } from './render-rsyslog.js';
import { SYSLOG_NG_CONF_D, type SyslogNgScan } from './syslog-ng-config.js';
import { portValue, syslogNgIdentifier } from './config-escape.js';

export const SYSLOG_NG_DROPIN = `${SYSLOG_NG_CONF_D}/sentinel-cef.conf`;
export const SYSLOG_NG_INCLUDE_LINE = `@include "${SYSLOG_NG_CONF_D}/*.conf"`;

/** Destinations that distributions use for "everything else" (Debian, RHEL, SUSE). */
const CATCH_ALL = ['d_syslog', 'd_mesg', 'd_messages'];

export function renderSyslogNgDropin(scan: SyslogNgScan, input: DaemonRenderOptions): RenderedDropin {
  // Numbers only reach this file; they are checked again here, as are the source names we reuse from the scan.
  const opts = {
    ...input,
    port: portValue('the syslog-ng drop-in', input.port),
    forwarderPort: portValue('the syslog-ng drop-in', input.forwarderPort),
  };
  const warnings: string[] = [];
  const drivers: string[] = [];
  const reused = new Set<string>();
  for (const proto of protocolsOf(opts.protocol)) {
    const existing = scan.listeners.find((l) => l.port === opts.port && l.protocol === proto);
    if (existing) {
      // A second listener on the port would fail to bind: log from the existing source instead.
      reused.add(syslogNgIdentifier('the syslog-ng drop-in', existing.source));
      continue;
    }
    // rsyslog binds every address family by default; syslog-ng's network() binds IPv4 only unless told.
    const ipv6 = opts.ipv6 ?? 'none';
    if (ipv6 !== 'dual-stack') drivers.push(`    network(port(${opts.port}) transport("${proto}") flags(store-raw-message));`);
    if (ipv6 !== 'none')
      drivers.push(`    network(ip("::") ip-protocol(6) port(${opts.port}) transport("${proto}") flags(store-raw-message));`);
  }
  let source = '';
  const logPaths: string[] = [];
  // One [::] socket also takes IPv4: HOST of an IPv4 sender reads ::ffff:a.b.c.d, made a.b.c.d again here.
  const unmap = drivers.length > 0 && opts.ipv6 === 'dual-stack' ? ' rewrite(r_sentinel_cef_unmap);' : '';
  if (drivers.length > 0) {
    source = `source s_sentinel_cef {\n${drivers.join('\n')}\n};`;
    if (unmap) source += `\nrewrite r_sentinel_cef_unmap { subst("^::ffff:", "", value("HOST")); };`;
    logPaths.push(
      `log { source(s_sentinel_cef);${unmap} filter(f_sentinel_cef); destination(d_sentinel_cef); flags(flow-control, final); };`,
    );
  }
  let reusedDestination = '';
  if (reused.size > 0) {
    // A source we do not own has no raw message: send the parsed one as RFC 5424, octet-counted.
    reusedDestination =
      `\n# Sources we reuse do not keep the raw message: RFC 5424 rebuilt from the parsed fields, octet-counted. A network()\n` +
      `# source reads RFC 5424 as 3164, taking the version "1" for PROGRAM and leaving the rest of the header in MSG:\n` +
      `# "<PRI>1 MSG" is then the message as sent (an APP-NAME "CEF:" apart from "0|..." would otherwise be lost).\n` +
      `destination d_sentinel_cef_parsed {\n` +
      `    network("127.0.0.1" port(${opts.forwarderPort}) transport("framed")\n` +
      `        template("$(if ('\${PROGRAM}' eq '1') '<\${PRI}>1 \${MSG}' '<\${PRI}>1 \${ISODATE} \${HOST:--} \${PROGRAM:--} \${PID:--} \${MSGID:--} \${SDATA:--} \${MSG}')")\n` +
      `        persist-name("sentinel-cef-parsed") time-reopen(2)\n` +
      `        disk-buffer(reliable(yes) disk-buf-size(${opts.queueMaxBytes ?? 1024 ** 3}) mem-buf-size(16777216) dir("/var/lib/syslog-ng")));\n};`;
  }
  // A reused source is the admin's: we add no listener to it, but say what IPv6 senders need (one line).
  const ipv6 = opts.ipv6 ?? 'none';
  const v4only = protocolsOf(opts.protocol).filter(
    (proto) =>
      scan.listeners.some((l) => l.port === opts.port && l.protocol === proto) &&
      !scan.listeners.some((l) => l.port === opts.port && l.protocol === proto && l.ipv6),
  );
  if (ipv6 !== 'none' && v4only.length > 0) {
    const src = [...new Set(v4only.map((p) => scan.listeners.find((l) => l.port === opts.port && l.protocol === p)!.source))].join(', ');
    const drv = v4only.map((p) => `network(ip("::") ip-protocol(6) port(${opts.port}) transport("${p}"))`).join(' and ');
    // On a dual-stack host a [::] socket takes IPv4 too, and would collide with the IPv4 one on the same port.
    warnings.push(
      ipv6 === 'dual-stack'
        ? `source ${src} listens on port ${opts.port} over IPv4 only: IPv6 senders are not heard; replace its listener with ${drv} (it takes IPv4 too)`
        : `source ${src} listens on port ${opts.port} over IPv4 only: IPv6 senders are not heard; add ${drv} to it`,
    );
  }
  for (const s of reused) {
    logPaths.push(`log { source(${s}); filter(f_sentinel_cef); destination(d_sentinel_cef_parsed); flags(flow-control, final); };`);
    warnings.push(
      `source ${s} already listens on port ${opts.port}; it is reused. Log paths in the main file that read ${s} ` +
        `come before ours and may still store CEF in the Syslog table`,
    );
  }
  const catchAll = CATCH_ALL.find((d) => scan.destinations.includes(d));
  let fallthrough = '';
  if (drivers.length > 0) {
    if (catchAll) {
      fallthrough =
        `\n# Everything else that arrives on port ${opts.port} keeps its normal place: the distribution's ${catchAll}.\n` +
        `log { source(s_sentinel_cef);${unmap} destination(${catchAll}); };`;
    } else {
      warnings.push(
        `no catch-all destination (${CATCH_ALL.join(', ')}) found: non-CEF messages arriving on port ${opts.port} are not stored`,
      );
    }
  }
  if (!scan.includesConfD) {
    warnings.push(`${scan.mainFile} has no ${SYSLOG_NG_INCLUDE_LINE}: one line is appended (backed up first)`);
  }
  const content = renderTemplate(loadTemplate('syslog-ng/sentinel-cef.conf'), {
    version: VERSION,
    port: opts.port,
    forwarderPort: opts.forwarderPort,
    source,
    logPaths: logPaths.join('\n'),
    reusedDestination,
    diskBufSize: opts.queueMaxBytes ?? 1024 ** 3,
    fallthrough,
  });
  return {
    path: SYSLOG_NG_DROPIN,
    content,
    warnings,
    added: { modules: [], inputs: drivers.map((d) => d.trim()) },
  };
}

/** The main file with the conf.d include appended, for configs that lack it (some RHEL builds). */
export function appendSyslogNgInclude(mainText: string): string {
  const sep = mainText.endsWith('\n') || mainText === '' ? '' : '\n';
  return `${mainText}${sep}\n# Added by sentinel-cef: load drop-ins.\n${SYSLOG_NG_INCLUDE_LINE}\n`;
}
