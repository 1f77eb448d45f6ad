/**
 * Sequence-numbered CEF over RELP, as rsyslog's omrelp sends it: each message is kept until the
 * receiver answers `200 OK`; when a session breaks, a new one is opened and every unanswered message
 * is sent again (so a crash of the receiver costs duplicates, never losses). One stream per
 * connection (`<run>-c<k>`), numbered from 0, whatever the sessions; a GenResult for chkseq.
 */
import { connect, type Socket } from 'node:net';
import { cefLine } from './cef.js';
import type { GenResult } from './gen.js';

export interface RelpGenOptions {
  host: string;
  port: number;
  connections: number;
  events: number;
  /** Events per second in total; 0 = as fast as the receiver answers. */
  rate: number;
  size: number;
  run: string;
  /** Unanswered messages per connection before the sender waits (omrelp's window is 128 by default). */
  window: number;
  reconnectTimeoutMs?: number;
}

const OFFERS = 'relp_version=0\nrelp_software=sentinel-cef-loadgen\ncommands=syslog';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const frame = (txnr: number, cmd: string, data: string) => `${txnr} ${cmd} ${Buffer.byteLength(data)}${data ? ` ${data}` : ''}\n`;

/**
 * Answers (`TXNR rsp LEN DATA LF`, `0 serverclose 0 LF`) read from a session, in order. Like librelp
 * (cserverclose.c), the serverclose hint breaks the session: nothing after it is read, and what is
 * still unanswered is sent again on the next session.
 */
function answerReader(onAnswer: (txnr: number, ok: boolean) => void, onServerClose: () => void): (chunk: Buffer) => void {
  let buf = '';
  let done = false;
  return (chunk) => {
    if (done) return;
    buf += chunk.toString('latin1');
    for (;;) {
      const m = /^(\d+) (\w+) (\d+)/.exec(buf);
      if (!m) return;
      const end = m[0].length + Number(m[3]) + (Number(m[3]) > 0 ? 2 : 1);
      if (buf.length < end) return;
      const data = buf.slice(m[0].length + 1, m[0].length + 1 + Number(m[3]));
      buf = buf.slice(end);
      if (m[2] === 'rsp') onAnswer(Number(m[1]), data.startsWith('200'));
      else if (m[2] === 'serverclose') {
        done = true;
        onServerClose();
        return;
      }
    }
  };
}

/** serverCloses: sessions the receiver ended with the serverclose hint (ageing, shutdown). */
export async function relpGenerate(o: RelpGenOptions): Promise<GenResult & { serverCloses: number }> {
  const t0 = Date.now();
  const expect: Record<string, number> = {};
  let reconnects = 0;
  let serverCloses = 0;
  let sent = 0;
  const per = Math.ceil(o.events / o.connections);
  const allowed = () => (o.rate > 0 ? Math.min(o.events, Math.floor(((Date.now() - t0) / 1000) * o.rate) + 1) : o.events);

  const worker = async (k: number): Promise<void> => {
    const total = k === o.connections - 1 ? o.events - per * (o.connections - 1) : per;
    const stream = `${o.run}-c${k}`;
    expect[stream] = total;
    let next = 0; // next new sequence number
    let acked = 0;
    const unanswered = new Map<number, number>(); // txnr → seq, in send order
    const since = { t: Date.now() };
    while (acked < total) {
      let s: Socket;
      try {
        s = await new Promise<Socket>((resolve, reject) => {
          const c = connect({ host: o.host, port: o.port }, () => resolve(c));
          c.once('error', reject);
        });
      } catch (err) {
        if (Date.now() - since.t > (o.reconnectTimeoutMs ?? 60_000)) throw err;
        await sleep(50);
        continue;
      }
      let broken = false;
      let opened = false;
      let wake: (() => void) | null = null;
      const poke = () => {
        const w = wake;
        wake = null;
        w?.();
      };
      s.on('error', () => {});
      s.on('close', () => {
        broken = true;
        poke();
      });
      s.on(
        'data',
        answerReader(
          (txnr, ok) => {
            if (txnr === 1 && !opened) {
              opened = ok;
              if (!ok) s.destroy();
            } else if (unanswered.has(txnr) && ok) {
              unanswered.delete(txnr);
              acked++;
            }
            poke();
          },
          () => {
            serverCloses++;
            // librelp aborts the connection (a reset) and reconnects.
            s.destroy();
          },
        ),
      );
      let txnr = 1;
      s.write(frame(txnr++, 'open', OFFERS));
      // What the last session left unanswered goes first, in order, under new numbers.
      const resend = [...unanswered.values()];
      unanswered.clear();
      while (!broken && !opened) await new Promise<void>((r) => (wake = r));
      if (broken) {
        for (const q of resend) unanswered.set(-q - 1, q); // kept for the next session
        reconnects++;
        since.t = Date.now();
        continue;
      }
      let chunk = '';
      for (const q of resend) {
        unanswered.set(txnr, q);
        chunk += frame(txnr++, 'syslog', cefLine(stream, q, Date.now(), o.size).slice(0, -1));
      }
      if (chunk) s.write(chunk);
      while (!broken && acked < total) {
        const budget = o.rate > 0 ? Math.ceil(allowed() / o.connections) : total;
        const room = o.window - unanswered.size;
        const n = Math.min(total - next, budget - next, room, 64);
        if (n <= 0) {
          await Promise.race([new Promise<void>((r) => (wake = r)), sleep(5)]);
          continue;
        }
        chunk = '';
        const now = Date.now();
        for (let i = 0; i < n; i++) {
          unanswered.set(txnr, next);
          chunk += frame(txnr++, 'syslog', cefLine(stream, next++, now, o.size).slice(0, -1));
        }
        sent += n;
        s.write(chunk);
      }
      if (!broken) {
        s.write(frame(txnr, 'close', ''));
        await Promise.race([new Promise<void>((r) => s.once('close', () => r())), sleep(2000)]);
        s.destroy();
        return;
      }
      // Renumbered in the next session; negative keys keep them apart from this session's numbers.
      const left = [...unanswered.values()];
      unanswered.clear();
      for (const q of left) unanswered.set(-q - 1, q);
      reconnects++;
      since.t = Date.now();
    }
  };
  await Promise.all(Array.from({ length: o.connections }, (_, k) => worker(k)));
  const ms = Date.now() - t0;
  return { run: o.run, sent, ms, eps: Math.round(sent / (ms / 1000)), expect, reconnects, serverCloses };
}
