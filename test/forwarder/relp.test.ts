import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseListenUrl } from '../../src/config/listen.js';
import type { DiskQueue } from '../../src/forwarder/disk-queue.js';
import { startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { Intake } from '../../src/forwarder/intake.js';
import { ForwarderMetrics } from '../../src/forwarder/metrics.js';
import { ProbeTracker } from '../../src/forwarder/probes.js';
import { RelpParser, RelpProtocolError, relpAcks, relpOpenResponse, type RelpCommand } from '../../src/forwarder/relp.js';
import { SeqChecker } from '../../scripts/load/chkseq.js';
import { relpGenerate } from '../../scripts/load/relp-gen.js';
import {
  cef,
  makeConfig,
  readNdjson,
  readRows,
  RELP_OFFERS as OFFERS,
  relpAnswers as collectAnswers,
  relpFrame as frame,
  silent,
  tcpConnect,
  tempDir,
  waitFor,
} from './helpers.js';
const session = (msgs: string[], first = 1): string =>
  frame(first, 'open', OFFERS) + msgs.map((m, i) => frame(first + 1 + i, 'syslog', m)).join('');

function parseAll(p: RelpParser, chunks: Buffer[]): Array<Omit<RelpCommand, 'data'> & { data: string }> {
  const out: Array<Omit<RelpCommand, 'data'> & { data: string }> = [];
  for (const c of chunks) for (const cmd of p.push(c)) out.push({ ...cmd, data: cmd.data.toString() });
  return out;
}

describe('RELP frame parser', () => {
  const msgs = ['<134>1 - h app - - - CEF:0|A|B|1|1|x|3|', 'second with spaces and a\nnewline inside', 'x'.repeat(300)];
  const stream = Buffer.from(session(msgs) + frame(5, 'close'));
  const expected = [
    { txnr: 1, command: 'open', data: OFFERS, truncated: false },
    ...msgs.map((m, i) => ({ txnr: i + 2, command: 'syslog', data: m, truncated: false })),
    { txnr: 5, command: 'close', data: '', truncated: false },
  ];

  it.each([1, 2, 3, 7, 64, 1000, stream.length])('parses every frame exactly once whatever the read size (%i bytes)', (size) => {
    const chunks: Buffer[] = [];
    for (let off = 0; off < stream.length; off += size) chunks.push(Buffer.from(stream.subarray(off, off + size)));
    const p = new RelpParser(64 * 1024);
    expect(parseAll(p, chunks)).toEqual(expected);
    expect(p.pendingBytes).toBe(0);
  });

  it('holds a partial frame until its trailer arrives', () => {
    const p = new RelpParser(1024);
    const f = Buffer.from(frame(1, 'syslog', 'hello world'));
    expect(p.push(f.subarray(0, f.length - 1))).toEqual([]);
    expect(p.pendingBytes).toBeGreaterThan(0);
    expect(parseAll(p, [f.subarray(f.length - 1)])).toEqual([{ txnr: 1, command: 'syslog', data: 'hello world', truncated: false }]);
  });

  it('cuts DATA longer than the limit, flags it, and finds the next frame', () => {
    const p = new RelpParser(10);
    const big = 'A'.repeat(50);
    const s = Buffer.from(frame(1, 'syslog', big) + frame(2, 'syslog', 'short'));
    const out = parseAll(p, [s.subarray(0, 20), s.subarray(20, 33), s.subarray(33)]);
    expect(out).toEqual([
      { txnr: 1, command: 'syslog', data: 'A'.repeat(10), truncated: true },
      { txnr: 2, command: 'syslog', data: 'short', truncated: false },
    ]);
  });

  it('accepts hints on TXNR 0 outside the numbering', () => {
    const p = new RelpParser(100);
    expect(
      parseAll(p, [Buffer.from(frame(1, 'open', 'relp_version=0') + frame(0, 'abort') + frame(2, 'syslog', 'm'))]).map((c) => c.txnr),
    ).toEqual([1, 0, 2]);
  });

  it.each([
    ['a letter in the TXNR', 'x1 syslog 1 a\n'],
    ['no SP after TXNR', '1\n'],
    ['a digit in the command', '1 sys1og 1 a\n'],
    ['a command over 32 letters', `1 ${'a'.repeat(33)} 0\n`],
    ['a DATALEN over 9 digits', '1 syslog 1234567890 a\n'],
    ['a missing DATALEN', '1 syslog \n'],
    ['a wrong trailer', '1 syslog 1 ab\n'],
    ['data length 0 followed by data', '1 close 0 x\n'],
    ['a TXNR out of sequence', `${frame(1, 'open', 'relp_version=0')}3 syslog 1 a\n`],
    ['a repeated TXNR', `${frame(1, 'open', 'relp_version=0')}1 syslog 1 a\n`],
  ])('rejects %s', (_what, text) => {
    const p = new RelpParser(100);
    expect(() => p.push(Buffer.from(text))).toThrow(RelpProtocolError);
  });

  it('answers open with version 0 and the syslog command, and refuses a client without syslog', () => {
    const ok = relpOpenResponse(1, Buffer.from(OFFERS));
    expect(ok.ok).toBe(true);
    const body = '200 OK\nrelp_version=0\nrelp_software=sentinel-cef\ncommands=syslog';
    expect(ok.response).toBe(`1 rsp ${body.length} ${body}\n`);
    expect(relpOpenResponse(1, Buffer.from('relp_version=0\ncommands=eventlog')).ok).toBe(false);
    expect(relpOpenResponse(1, Buffer.from('commands=syslog')).ok).toBe(false);
    expect(relpAcks([2, 3])).toBe('2 rsp 6 200 OK\n3 rsp 6 200 OK\n');
  });
});

interface Appended {
  messages: string[];
}

/** An Intake over a fake queue that records appends and can be told to fail them. */
async function startIntake(limits: { maxConnectionAgeSec?: number; idleTimeoutSec?: number } = {}): Promise<{
  intake: Intake;
  port: number;
  appended: Appended[];
  failNext: { n: number; after: number };
  events: string[];
  metrics: ForwarderMetrics;
}> {
  const appended: Appended[] = [];
  // n appends fail after `after` more succeed.
  const failNext = { n: 0, after: 0 };
  const events: string[] = [];
  const queue = {
    full: false,
    bytes: 0,
    maxBytes: 1 << 30,
    append(messages: ReadonlyArray<{ data: Buffer }>) {
      if (failNext.n > 0 && failNext.after > 0) failNext.after--;
      else if (failNext.n > 0) {
        failNext.n--;
        events.push('append-failed');
        throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      }
      events.push(`append ${messages.length}`);
      appended.push({ messages: messages.map((m) => m.data.toString()) });
    },
  } as unknown as DiskQueue;
  const metrics = new ForwarderMetrics(() => ({ bytes: 0, records: 0, oldestAgeSec: null, paused: {} }));
  const intake = new Intake({
    queue,
    metrics,
    probes: new ProbeTracker(),
    logger: silent,
    limits: {
      maxMessageBytes: 64 * 1024,
      maxConnections: 16,
      idleTimeoutSec: 300,
      udpReceiveBufferBytes: 0,
      tlsHandshakeTimeoutSec: 10,
      maxConnectionAgeSec: 0,
      proxyHeaderTimeoutSec: 5,
      ...limits,
    },
    diskRetryMs: 20,
  });
  await intake.listen([parseListenUrl('relp://127.0.0.1:0')]);
  return { intake, port: intake.addresses[0]!.port, appended, failNext, events, metrics };
}

let stopMe: Intake | null = null;
let fwd: RunningForwarder | null = null;
afterEach(async () => {
  await stopMe?.stop();
  stopMe = null;
  await fwd?.shutdown();
  fwd = null;
});

describe('RELP input', () => {
  it('answers every syslog command with 200 only after its message was appended, in command order', async () => {
    const t = await startIntake();
    stopMe = t.intake;
    const s = await tcpConnect(t.port);
    const { answers } = collectAnswers(s);
    const msgs = Array.from({ length: 50 }, (_, i) => `m${i}`);
    const text = Buffer.from(session(msgs));
    // Odd read sizes: frames split anywhere, several frames per read.
    for (let off = 0; off < text.length; off += 37) {
      s.write(text.subarray(off, off + 37));
      await new Promise((r) => setTimeout(r, 2));
    }
    await waitFor(() => answers.length === 51, 5000);
    expect(answers[0]!.text).toMatch(/^200 OK\nrelp_version=0\n/);
    expect(answers.slice(1)).toEqual(msgs.map((_, i) => ({ txnr: i + 2, text: '200 OK' })));
    // Every message appended exactly once, in order.
    expect(t.appended.flatMap((a) => a.messages)).toEqual(msgs);
    s.destroy();
  });

  it('answers nothing for messages whose append failed and closes the session; a resend after the disk recovers is appended', async () => {
    const t = await startIntake();
    stopMe = t.intake;
    const s = await tcpConnect(t.port);
    const { answers, closed } = collectAnswers(s);
    s.write(frame(1, 'open', OFFERS));
    await waitFor(() => answers.length === 1, 5000);
    t.failNext.n = 1;
    s.write(frame(2, 'syslog', 'a') + frame(3, 'syslog', 'b'));
    await closed;
    expect(answers).toHaveLength(1); // only the open: no 200 and no 500 for a and b
    expect(t.appended).toEqual([]);
    expect(await metricOf(t.metrics, unansweredMetric)).toBe(2);
    // The sender keeps unanswered frames and sends them again on a new session once intake resumes.
    await waitFor(() => !t.intake.intakePaused, 5000);
    const s2 = await tcpConnect(t.port);
    const r2 = collectAnswers(s2);
    s2.write(session(['a', 'b']));
    await waitFor(() => r2.answers.length === 3, 5000);
    expect(r2.answers.slice(1).map((a) => a.text)).toEqual(['200 OK', '200 OK']);
    expect(t.appended.flatMap((a) => a.messages)).toEqual(['a', 'b']);
    s2.destroy();
  });

  it('closes the session on a bad frame without answering the messages of that read', async () => {
    const t = await startIntake();
    stopMe = t.intake;
    const s = await tcpConnect(t.port);
    const { answers, closed } = collectAnswers(s);
    s.write(frame(1, 'open', OFFERS));
    await waitFor(() => answers.length === 1, 5000);
    s.write(`${frame(2, 'syslog', 'ok')}3 syslog 3 abcd\n`);
    await closed;
    expect(answers).toHaveLength(1);
    expect(t.appended).toEqual([]);
    expect(await metricOf(t.metrics, unansweredMetric)).toBe(1);
  });

  it('refuses syslog before open, and answers close with 200 then a serverclose hint', async () => {
    const t = await startIntake();
    stopMe = t.intake;
    const early = await tcpConnect(t.port);
    const e = collectAnswers(early);
    early.write(frame(1, 'syslog', 'too early'));
    await e.closed;
    expect(e.answers).toEqual([]);
    expect(t.appended).toEqual([]);

    const s = await tcpConnect(t.port);
    const { answers, closed } = collectAnswers(s);
    s.write(session(['x']) + frame(3, 'close'));
    await closed;
    expect(answers.map((a) => [a.txnr, a.text.split('\n')[0]])).toEqual([
      [1, '200 OK'],
      [2, '200 OK'],
      [3, '200 OK'],
      [0, 'serverclose'],
    ]);
    expect(t.appended.flatMap((a) => a.messages)).toEqual(['x']);
  });

  it('on stop, sends the serverclose hint after every answer, then closes', async () => {
    const t = await startIntake();
    const s = await tcpConnect(t.port);
    const { answers, closed } = collectAnswers(s);
    s.write(session(['a', 'b']));
    await waitFor(() => answers.length === 3, 5000);
    await t.intake.stop();
    await closed;
    expect(answers.map((a) => a.text.split('\n')[0])).toEqual(['200 OK', '200 OK', '200 OK', 'serverclose']);
  });

  it('delivers RELP messages end to end through the disk queue to the sink', async () => {
    const dir = tempDir();
    const config = makeConfig(dir, { listen: ['relp://127.0.0.1:0'] });
    fwd = await startForwarder(config, { logger: silent });
    const port = fwd.addresses.find((a) => a.protocol === 'relp')!.port;
    const s = await tcpConnect(port);
    const { answers } = collectAnswers(s);
    s.write(session(Array.from({ length: 30 }, (_, i) => cef(i))));
    await waitFor(() => answers.length === 31, 5000);
    const path = (config.sink as { path: string }).path;
    await waitFor(() => readRows(path).length === 30, 10_000);
    expect(
      readRows(path)
        .map((r) => Number(r.DeviceEventClassID))
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(fwd.health().counters.received).toBe(30);
    s.destroy();
  });
});

/** Half-open like librelp: the forwarder's FIN does not end the sender's side. */
function halfOpenConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(c));
    c.once('error', reject);
  });
}

const unansweredMetric = /sentinel_cef_relp_unanswered_total\{input="relp"\} (\d+)/;
const metricOf = async (m: ForwarderMetrics, re: RegExp): Promise<number> => Number(re.exec(await m.registry.metrics())?.[1] ?? 0);
/** The messages the client was answered 200 OK for (message `m<txnr>`), in order. */
const answeredOk = (answers: Array<{ txnr: number; text: string }>): string[] =>
  answers.filter((a) => a.txnr >= 2 && a.text === '200 OK').map((a) => `m${a.txnr}`);

describe('RELP session end: every queued frame answered, a FIN and never a reset', () => {
  it('on stop while a sender sends continuously: queued exactly what was answered, and the sender sees a FIN', async () => {
    const t = await startIntake();
    const s = await halfOpenConnect(t.port);
    const { answers, closed } = collectAnswers(s);
    let error: string | undefined;
    let sawEnd = false;
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('end', () => (sawEnd = true));
    s.write(frame(1, 'open', OFFERS));
    // librelp: at most 128 unanswered frames in flight; at the serverclose hint it stops sending and closes. With 4 KiB
    // messages a full window is more than a paused socket buffers: a reset at stop is certain if the intake resets.
    const pad = ` ${'x'.repeat(4000)}`;
    let next = 2;
    let hint = false;
    const pump = (): void => {
      if (hint || s.destroyed || !s.writable) return;
      let out = '';
      while (next - 2 - Math.max(0, answers.length - 1) < 128) out += frame(next, 'syslog', `m${next++}${pad}`);
      if (out) s.write(out);
      setImmediate(pump);
    };
    s.on('data', () => {
      if (!hint && answers.some((a) => a.txnr === 0)) {
        hint = true;
        // What it was writing when the hint came in still goes out (unanswered, sent again later); then its FIN.
        let last = '';
        for (let i = 0; i < 4; i++) last += frame(next, 'syslog', `m${next++}${pad}`);
        s.write(last);
        setTimeout(() => s.end(), 100);
      }
    });
    await waitFor(() => answers.length === 1, 5000);
    pump();
    await waitFor(() => answers.length > 300, 10_000, 'answers');
    await t.intake.stop();
    await closed;
    expect({ error, sawEnd, last: answers.at(-1)?.text }).toEqual({ error: undefined, sawEnd: true, last: 'serverclose' });
    // The sender resends what it was not answered for: exactly once overall iff the queue holds exactly the answered.
    const queued = t.appended.flatMap((a) => a.messages.map((m) => m.slice(0, -pad.length)));
    expect(queued).toEqual(answeredOk(answers));
    expect(queued.length).toBeGreaterThan(300);
  });

  it('when a second queue write in one read fails, the answers of the first still reach the sender', async () => {
    const t = await startIntake();
    stopMe = t.intake;
    const s = await tcpConnect(t.port);
    const { answers, closed } = collectAnswers(s);
    s.write(frame(1, 'open', OFFERS));
    await waitFor(() => answers.length === 1, 5000);
    t.failNext.after = 1;
    t.failNext.n = 1;
    // One read: m2 m3 are queued at the control command, then m5's write fails.
    s.write(frame(2, 'syslog', 'm2') + frame(3, 'syslog', 'm3') + frame(4, 'nosuchcmd') + frame(5, 'syslog', 'm5'));
    await closed;
    expect(t.events).toEqual(['append 2', 'append-failed']);
    expect(await metricOf(t.metrics, unansweredMetric)).toBe(1); // m5
    expect(answers.slice(1).map((a) => [a.txnr, a.text])).toEqual([
      [2, '200 OK'],
      [3, '200 OK'],
      [4, '500 command not supported'],
    ]);
    expect(t.appended.flatMap((a) => a.messages)).toEqual(answeredOk(answers));
  });

  it('queues nothing a sender sends after its close command', async () => {
    const t = await startIntake();
    stopMe = t.intake;
    const s = await halfOpenConnect(t.port);
    const { answers, closed } = collectAnswers(s);
    s.write(frame(1, 'open', OFFERS) + frame(2, 'syslog', 'm2') + frame(3, 'close'));
    await waitFor(() => answers.length === 4, 5000);
    s.write(frame(4, 'syslog', 'm4'));
    await waitFor(async () => (await metricOf(t.metrics, unansweredMetric)) === 1, 5000, 'counted');
    s.end();
    await closed;
    expect(answers.map((a) => a.text.split('\n')[0])).toEqual(['200 OK', '200 OK', '200 OK', 'serverclose']);
    expect(t.appended.flatMap((a) => a.messages)).toEqual(['m2']);
  });

  it('counts what a sender sends while the intake stops, and queues none of it', async () => {
    const t = await startIntake();
    const s = await halfOpenConnect(t.port);
    const { answers, closed } = collectAnswers(s);
    s.write(session(['a']));
    await waitFor(() => answers.length === 2, 5000);
    const stopping = t.intake.stop();
    await waitFor(() => answers.some((a) => a.txnr === 0), 5000, 'serverclose');
    s.write(frame(3, 'syslog', 'late-1') + frame(4, 'syslog', 'late-2'));
    await waitFor(async () => (await metricOf(t.metrics, unansweredMetric)) === 2, 5000, 'counted');
    s.end();
    await Promise.all([stopping, closed]);
    expect(t.appended.flatMap((a) => a.messages)).toEqual(['a']);
  });

  // Every message read and not queued is counted, however the session ended in the middle of a read.
  it.each([
    [
      'after close, in the same read',
      frame(1, 'open', OFFERS) + frame(2, 'syslog', 'm2') + frame(3, 'close') + frame(4, 'syslog', 'm4'),
      ['m2'],
      1,
    ],
    [
      'after a refused open, in the same read',
      frame(1, 'open', 'relp_version=0\ncommands=nosuch') + frame(2, 'syslog', 'm2') + frame(3, 'syslog', 'm3'),
      [],
      2,
    ],
    ['syslog before open', frame(1, 'syslog', 'm1') + frame(2, 'syslog', 'm2'), [], 2],
  ])('counts the messages left unanswered %s', async (_name, text, queued, count) => {
    const t = await startIntake();
    stopMe = t.intake;
    const s = await halfOpenConnect(t.port);
    const { closed } = collectAnswers(s);
    s.write(text);
    await waitFor(async () => (await metricOf(t.metrics, unansweredMetric)) === count, 5000, 'counted');
    // A refused session takes nothing that comes later either.
    if (!s.destroyed && s.writable) s.write(frame(9, 'syslog', 'late'));
    s.end();
    await closed;
    expect(t.appended.flatMap((a) => a.messages)).toEqual(queued);
  });
});

describe('RELP session ageing (limits.maxConnectionAgeSec)', () => {
  const metric = async (m: ForwarderMetrics, re: RegExp): Promise<number> => Number(re.exec(await m.registry.metrics())?.[1] ?? 0);
  const maxAge = /sentinel_cef_connections_closed_total\{input="relp",reason="max_age"\} (\d+)/;

  it('ends a quiet session past its age with the serverclose hint after every answer', async () => {
    const t = await startIntake({ maxConnectionAgeSec: 0.3, idleTimeoutSec: 1 });
    stopMe = t.intake;
    const s = await tcpConnect(t.port);
    const { answers, closed } = collectAnswers(s);
    s.write(session(['a', 'b']));
    await closed;
    expect(answers.map((a) => [a.txnr, a.text.split('\n')[0]])).toEqual([
      [1, '200 OK'],
      [2, '200 OK'],
      [3, '200 OK'],
      [0, 'serverclose'],
    ]);
    expect(t.appended.flatMap((a) => a.messages)).toEqual(['a', 'b']);
    expect(await metric(t.metrics, maxAge)).toBe(1);
  });

  it('ages a session whose reads always end mid-frame; the part is left to the sender, every message once after its resend', async () => {
    const t = await startIntake({ maxConnectionAgeSec: 0.3, idleTimeoutSec: 4 });
    stopMe = t.intake;
    const s = await halfOpenConnect(t.port);
    const { answers, closed } = collectAnswers(s);
    s.write(frame(1, 'open', OFFERS));
    await waitFor(() => answers.length === 1, 5000);
    // Each write completes the previous frame and starts the next: the session is never between frames.
    const sent: string[] = [];
    let rest = '';
    const until = Date.now() + 5000;
    while (!answers.some((a) => a.txnr === 0) && Date.now() < until) {
      const txnr = sent.length + 2;
      const f = frame(txnr, 'syslog', `m${txnr}`);
      sent.push(`m${txnr}`);
      s.write(rest + f.slice(0, 6));
      rest = f.slice(6);
      await new Promise((r) => setTimeout(r, 20));
    }
    // librelp reads nothing after the hint and closes; it sends every unanswered frame again on a new session.
    expect(answers.at(-1)?.text).toBe('serverclose');
    s.end();
    await closed;
    const answered = answeredOk(answers);
    expect(t.appended.flatMap((a) => a.messages)).toEqual(answered);
    const unanswered = sent.filter((m) => !answered.includes(m));
    expect(unanswered.length).toBeGreaterThan(0); // at least the frame in progress
    const s2 = await tcpConnect(t.port);
    const r2 = collectAnswers(s2);
    s2.write(session(unanswered));
    await waitFor(() => r2.answers.filter((a) => a.txnr > 0).length === 1 + unanswered.length, 5000, 'resent');
    s2.destroy();
    expect(t.appended.flatMap((a) => a.messages)).toEqual([...answered, ...unanswered]);
    expect(new Set([...answered, ...unanswered])).toEqual(new Set(sent));
    expect(await metric(t.metrics, maxAge)).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it('under continuous load across several ages: every message exactly once, sessions closed and reopened', async () => {
    const dir = tempDir();
    const config = makeConfig(dir, { listen: ['relp://127.0.0.1:0'], limits: { maxConnectionAgeSec: 0.4, idleTimeoutSec: 1 } });
    fwd = await startForwarder(config, { logger: silent });
    const port = fwd.addresses.find((a) => a.protocol === 'relp')!.port;
    // 2 senders at 1,500 events/s each for ~4 s, omrelp's window: the forwarder ages each session every 0.4-1 s.
    const g = await relpGenerate({
      host: '127.0.0.1',
      port,
      connections: 2,
      events: 12_000,
      rate: 3000,
      size: 200,
      run: 'age',
      window: 128,
    });
    const path = (config.sink as { path: string }).path;
    await waitFor(
      () => fwd!.health().counters.delivered >= fwd!.health().counters.received && readNdjson(path).length >= 12_000,
      30_000,
      'rows',
    );
    const checker = new SeqChecker();
    for (const [stream, n] of Object.entries(g.expect)) checker.expect(stream, n);
    for (const row of readNdjson(path)) checker.addRow(row);
    const r = checker.report();
    expect({ lost: r.lost, duplicates: r.duplicates, unknown: r.unknown, received: r.received }).toEqual({
      lost: 0,
      duplicates: 0,
      unknown: 0,
      received: 12_000,
    });
    // At least 3 ages per sender. Every session ends with exactly one serverclose hint (an age, or the answer to the
    // sender's own close) and all but each sender's last are followed by a new one; an age may land after a sender's
    // last answer, ending its last session (then no reconnect follows it).
    const aged = await metric(fwd.metrics, maxAge);
    expect(aged).toBeGreaterThanOrEqual(6);
    expect(g.serverCloses).toBe(g.reconnects + 2);
    expect(aged - g.reconnects).toBeGreaterThanOrEqual(0);
    expect(aged - g.reconnects).toBeLessThanOrEqual(2);
  }, 60_000);
});
