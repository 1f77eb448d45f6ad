import { Command, Option } from 'commander';
import { z } from 'zod';
import { hostPortOption, isLoopback, parseHostPort } from '../config/listen.js';
import { DEFAULT_FORWARDER_PORT } from '../config/schema.js';
import { CliError, optionError } from '../errors.js';
import { intOption } from '../util/option-schemas.js';
import { buildProbeMessage, newProbeId, sendSyslog, type SyslogFormat } from '../forwarder/send-test.js';

export const sendTestOptionsSchema = z
  .object({
    target: hostPortOption('--target', `127.0.0.1:${DEFAULT_FORWARDER_PORT}`).default(`127.0.0.1:${DEFAULT_FORWARDER_PORT}`),
    protocol: z.enum(['tcp', 'udp'], { message: 'must be one of tcp, udp' }).default('tcp'),
    count: intOption(1, 100_000).default(1),
    rfc3164: z.boolean().default(false),
    rfc5424: z.boolean().default(false),
    octetCount: z.boolean().default(false),
    json: z.boolean().default(false),
  })
  .refine((o) => !(o.rfc3164 && o.rfc5424), { message: '--rfc3164 and --rfc5424 exclude each other' })
  .refine((o) => !(o.octetCount && o.protocol === 'udp'), {
    message: '--octet-count applies to --protocol tcp only (a UDP datagram is one message)',
  });
export type SendTestOptions = z.input<typeof sendTestOptionsSchema>;

export interface SendTestResult {
  target: string;
  protocol: 'tcp' | 'udp';
  format: SyslogFormat;
  ids: string[];
  /** UDP to a host that is not loopback: sent, but nothing can say whether it arrived. */
  unconfirmed?: string;
}

/** Sends `count` TestCommonEventFormat probes with unique ids; returns the ids. */
export async function runSendTest(input: SendTestOptions): Promise<SendTestResult> {
  const parsed = sendTestOptionsSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) throw optionError(parsed.error);
  const { target, protocol, count, octetCount } = parsed.data;
  const { host, port } = parseHostPort(target, '--target');
  const format: SyslogFormat = parsed.data.rfc5424 ? 'rfc5424' : 'rfc3164';
  const ids = Array.from({ length: count }, () => newProbeId());
  try {
    await sendSyslog(
      ids.map((id) => buildProbeMessage(id, format)),
      // Loopback answers a closed UDP port at once (ICMP port unreachable); a quarter second is ample on a loaded host.
      { host, port, protocol, octetCount, confirmMs: 250 },
    );
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Nothing listening is a runtime failure (exit 1), not a usage error.
    const what = code === 'ECONNREFUSED' ? ' (nothing listens there)' : '';
    throw new CliError(`cannot send to ${protocol}://${target}: ${code ?? (err as Error).message}${what}`, {
      suggestion:
        code === 'ECONNREFUSED'
          ? 'is the forwarder running? start it with `sentinel-cef forward` or check --target'
          : 'check --target and --protocol',
    });
  }
  const unconfirmed =
    protocol === 'udp' && !isLoopback(host)
      ? 'UDP cannot confirm receipt: check the receiver (for the forwarder, its /probes/ID)'
      : undefined;
  return { target, protocol, format, ids, ...(unconfirmed ? { unconfirmed } : {}) };
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
        if (r.unconfirmed) process.stderr.write(`${r.unconfirmed}\n`);
        process.stderr.write(`sent ${r.ids.length} probe(s) to ${r.protocol}://${r.target} (${r.format}); ids:\n`);
        for (const id of r.ids) process.stdout.write(`${id}\n`);
      }
    });
}
