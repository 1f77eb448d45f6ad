import { createSocket, type Socket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { runSendTest } from '../../src/commands/send-test.js';
import { CliError } from '../../src/errors.js';

/** A UDP port on `host` that nothing holds: bound, then released. */
async function closedPort(type: 'udp4' | 'udp6', host: string): Promise<number> {
  const s = createSocket(type);
  await new Promise<void>((r) => s.bind(0, host, () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

// Issue 19: over UDP to loopback, nothing listening is observable (ICMP port unreachable -> ECONNREFUSED).
describe('send-test over UDP', () => {
  it.each([
    ['udp6', '::1', (p: number) => `[::1]:${p}`],
    ['udp4', '127.0.0.1', (p: number) => `127.0.0.1:${p}`],
  ] as const)('to a loopback %s port where nothing listens: "nothing listens", exit 1', async (type, host, target) => {
    const port = await closedPort(type, host);
    const err = await runSendTest({ target: target(port), protocol: 'udp', count: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(1);
    expect((err as CliError).message).toBe(`cannot send to udp://${target(port)}: ECONNREFUSED (nothing listens there)`);
  });

  it('to a loopback port that listens: every probe arrives, and it is confirmed', async () => {
    const s: Socket = createSocket('udp6');
    const got: string[] = [];
    s.on('message', (m) => got.push(m.toString()));
    await new Promise<void>((r) => s.bind(0, '::1', () => r()));
    try {
      const r = await runSendTest({ target: `[::1]:${s.address().port}`, protocol: 'udp', count: 3 });
      expect(r.unconfirmed).toBeUndefined();
      await expect.poll(() => got.length).toBe(3);
      for (const id of r.ids) expect(got.filter((m) => m.includes(id))).toHaveLength(1);
    } finally {
      s.close();
    }
  });

  it('to a host that is not loopback: sent, and says UDP cannot confirm receipt', async () => {
    // TEST-NET-1 (RFC 5737): routable syntax, never answers; a datagram send does not wait for it.
    const r = await runSendTest({ target: '192.0.2.1:514', protocol: 'udp' }).catch((e: unknown) => e);
    // A host without a route refuses the send itself (ENETUNREACH): that is the error path, not a silent success.
    if (r instanceof CliError) expect(r.message).toMatch(/^cannot send to udp:\/\/192\.0\.2\.1:514: E/);
    else expect((r as { unconfirmed?: string }).unconfirmed).toMatch(/^UDP cannot confirm receipt/);
  });
});
