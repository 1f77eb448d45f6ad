/**
 * What the two scale-out rigs share (scale-out.ts: forwarders in namespaces; scale-out-vm.ts: systemd VMs): HAProxy's
 * common settings, start and stats socket, counting the sinks' rows, waiting for them to drain, and the loss figures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { SeqReport } from './chkseq.js';
import type { GenResult } from './gen.js';
import { sleep, waitFor } from './harness.js';

/** HAProxy's global and defaults sections, with an admin stats socket at `sock`. */
export function haproxyGlobals(sock: string): string {
  return `global
  maxconn 4096
  stats socket ${sock} mode 600 level admin
defaults
  mode tcp
  timeout connect 1s
  # Generous: on a loaded machine a node may answer late; a not-ready node answers 503 at once.
  timeout check 3s
  timeout client 60s
  # A powered-off node never acknowledges: its sessions end after this long without progress.
  timeout server 10s
  option redispatch
  retries 2
`;
}

/** Writes `config` to dir/haproxy.cfg and runs `argv` with it (haproxy.log beside it) until its stats socket is there. */
export async function startHaproxy(dir: string, sock: string, config: string, argv: string[]): Promise<ChildProcess> {
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, config);
  const log = createWriteStream(join(dir, 'haproxy.log'));
  const child = spawn(argv[0], [...argv.slice(1), '-db', '-f', cfg], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LD_LIBRARY_PATH: process.env.SCALE_OUT_HAPROXY_LIBS ?? '' },
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  await waitFor('haproxy stats socket', () => existsSync(sock), 10_000, 50);
  return child;
}

/** One command over HAProxy's stats socket; its whole answer. */
export function haproxyCommand(sock: string, cmd: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const s = connect(sock);
    let out = '';
    s.on('connect', () => s.write(`${cmd}\n`));
    s.on('data', (d) => (out += d.toString()));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

/** `show stat` for the servers of one backend: server name → column → value. */
export async function haproxyServerStats(sock: string, backend: string): Promise<Record<string, Record<string, string>>> {
  const lines = (await haproxyCommand(sock, 'show stat')).trim().split('\n');
  const head = lines[0].replace(/^# /, '').split(',');
  const out: Record<string, Record<string, string>> = {};
  for (const l of lines.slice(1)) {
    const f = l.split(',');
    if (f[0] !== backend || f[1] === 'BACKEND' || f[1] === 'FRONTEND') continue;
    out[f[1]] = Object.fromEntries(head.map((h, i) => [h, f[i]]));
  }
  return out;
}

/** Counts a growing NDJSON file's lines by reading only what was appended since the last call. */
export class LineCounter {
  private offset = 0;
  lines = 0;
  private readonly buf = Buffer.allocUnsafe(1 << 20);
  constructor(private readonly path: () => string) {}
  poll(): number {
    const p = this.path();
    let fd: number;
    try {
      if (!statSync(p).isFile()) return this.lines;
      fd = openSync(p, 'r');
    } catch {
      return this.lines;
    }
    try {
      for (;;) {
        const n = readSync(fd, this.buf, 0, this.buf.length, this.offset);
        if (n <= 0) break;
        for (let i = 0; i < n; i++) if (this.buf[i] === 0x0a) this.lines++;
        this.offset += n;
      }
    } finally {
      closeSync(fd);
    }
    return this.lines;
  }
}

/** Waits until `delivered()` reaches `want`, or stops growing for `quietMs`; returns when the last row came. */
export async function drained(delivered: () => number, want: number, quietMs: number, maxMs: number, pollMs: number): Promise<number> {
  const end = Date.now() + maxMs;
  let last = delivered();
  let lastAt = Date.now();
  while (Date.now() < end) {
    const d = delivered();
    if (d !== last) {
      last = d;
      lastAt = Date.now();
    }
    if (d >= want || Date.now() - lastAt > quietMs) break;
    await sleep(pollMs);
  }
  return lastAt;
}

/** A run's sent and loss figures, as both rigs report them. */
export function lossFigures(g: GenResult, r: SeqReport) {
  return {
    sent: g.sent,
    received: r.received,
    unknown: r.unknown,
    lost: r.lost,
    tail: r.tail,
    holes: r.holes,
    duplicated: r.duplicates,
  };
}

export const fmtMs = (ms: number | null) => (ms === null ? '-' : `${(ms / 1000).toFixed(1)} s`);
