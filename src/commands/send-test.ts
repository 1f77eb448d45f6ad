import { Command, Option } from 'commander';
import { parseHostPort } from '../config/listen.js';
import { DEFAULT_FORWARDER_PORT } from '../config/schema.js';
import { CliError, UsageError, showValue } from '../errors.js';
import { buildProbeMessage, newProbeId, sendSyslog, type SyslogFormat } from '../forwarder/send-test.js';

export interface SendTestOptions {
  target?: string;
  protocol?: string;
  count?: string;
  rfc3164?: boolean;
  rfc5424?: boolean;
  octetCount?: boolean;
  json?: boolean;
}

export interface SendTestResult {
  target: string;
  protocol: 'tcp' | 'udp';
  format: SyslogFormat;
  ids: string[];
}

/** Sends `count` TestCommonEventFormat probes with unique ids; returns the ids. */
export async function runSendTest(opts: SendTestOptions): Promise<SendTestResult> {
  const target = opts.target ?? `127.0.0.1:${DEFAULT_FORWARDER_PORT}`;
  const { host, port } = parseHostPort(target, '--target', `127.0.0.1:${DEFAULT_FORWARDER_PORT}`);
  const protocol = (opts.protocol ?? 'tcp') as 'tcp' | 'udp';
  if (protocol !== 'tcp' && protocol !== 'udp') throw new UsageError(`--protocol must be one of tcp, udp, got ${showValue(opts.protocol)}`);
  if (opts.rfc3164 && opts.rfc5424) throw new UsageError('--rfc3164 and --rfc5424 exclude each other');
  const format: SyslogFormat = opts.rfc5424 ? 'rfc5424' : 'rfc3164';
  const count = Number(opts.count ?? '1');
  if (!Number.isInteger(count) || count < 1 || count > 100_000) throw new UsageError(`--count must be a whole number from 1 to 100000, got ${showValue(opts.count)}`);
  const ids = Array.from({ length: count }, () => newProbeId());
  try {
    await sendSyslog(ids.map((id) => buildProbeMessage(id, format)), { host, port, protocol, octetCount: opts.octetCount });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Nothing listening is a runtime failure (exit 1), not a usage error.
    throw new CliError(`cannot send to ${protocol}://${target}: ${code ?? (err as Error).message}`, {
      suggestion: code === 'ECONNREFUSED' ? 'is the forwarder running? start it with `sentinel-cef forward` or check --target' : 'check --target and --protocol',
    });
  }
  return { target, protocol, format, ids };
}

export function sendTestCommand(): Command {
  return new Command('send-test')
    .description('Send TestCommonEventFormat probe messages (like `logger -p local4.warn -t CEF:`) and print their ids')
    .option('--target <host:port>', 'where to send', `127.0.0.1:${DEFAULT_FORWARDER_PORT}`)
    .addOption(new Option('--protocol <protocol>', 'transport').choices(['tcp', 'udp']).default('tcp'))
    .option('--count <n>', 'number of probes', '1')
    .option('--rfc3164', 'BSD syslog header (default)')
    .option('--rfc5424', 'RFC 5424 syslog header')
    .option('--octet-count', 'TCP: RFC 6587 octet-counted framing instead of newlines')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  sentinel-cef send-test                                   # one probe to the local forwarder (127.0.0.1:${DEFAULT_FORWARDER_PORT})
  sentinel-cef send-test --target 127.0.0.1:514 --protocol udp --count 3   # through the syslog daemon`,
    )
    .action(async (opts: SendTestOptions) => {
      const r = await runSendTest(opts);
      if (opts.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        process.stderr.write(`sent ${r.ids.length} probe(s) to ${r.protocol}://${r.target} (${r.format}); ids:\n`);
        for (const id of r.ids) process.stdout.write(`${id}\n`);
      }
    });
}
