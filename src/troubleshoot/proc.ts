import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Transport } from './types.js';

/** One socket from /proc/net/{tcp,tcp6,udp,udp6}, with the process holding it when known. */
export interface SocketEntry {
  transport: Transport;
  family: 4 | 6;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** LISTEN, ESTABLISHED, ... (UDP sockets: UNCONN or ESTABLISHED). */
  state: string;
  inode: number;
  pid?: number;
  process?: string;
}

export interface ProcessEntry {
  pid: number;
  comm: string;
  cmdline: string[];
}

const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED',
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
};

/** Kernel hex addresses are 32-bit words in host (little-endian on x86/arm) order. */
function decodeAddress(hex: string): string {
  if (hex.length === 8) {
    const n = Number.parseInt(hex, 16);
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.');
  }
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const n = Number.parseInt(hex.slice(w * 8, w * 8 + 8), 16);
    bytes.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  // ::ffff:a.b.c.d mapped addresses read better as IPv4.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${bytes.slice(12).join('.')}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return compressIPv6(groups);
}

function compressIPv6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export function parseProcNet(text: string, transport: Transport, family: 4 | 6): SocketEntry[] {
  const out: SocketEntry[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [local, remote, st] = [f[1], f[2], f[3]];
    const [lAddr, lPort] = local.split(':');
    const [rAddr, rPort] = remote.split(':');
    if (!lPort || !rPort) continue;
    let state = TCP_STATES[st.toUpperCase()] ?? st;
    if (transport === 'udp') state = st === '01' ? 'ESTABLISHED' : 'UNCONN';
    out.push({
      transport,
      family,
      localAddress: decodeAddress(lAddr),
      localPort: Number.parseInt(lPort, 16),
      remoteAddress: decodeAddress(rAddr),
      remotePort: Number.parseInt(rPort, 16),
      state,
      inode: Number(f[9]),
    });
  }
  return out;
}

async function readOr(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

export async function listProcesses(root: string): Promise<ProcessEntry[]> {
  let names: string[];
  try {
    names = await readdir(join(root, 'proc'));
  } catch {
    return [];
  }
  const out: ProcessEntry[] = [];
  await Promise.all(
    names
      .filter((n) => /^\d+$/.test(n))
      .map(async (n) => {
        const comm = await readOr(join(root, 'proc', n, 'comm'));
        if (comm === null) return;
        const cmdline = (await readOr(join(root, 'proc', n, 'cmdline'))) ?? '';
        out.push({ pid: Number(n), comm: comm.trim(), cmdline: cmdline.split('\0').filter(Boolean) });
      }),
  );
  return out.sort((a, b) => a.pid - b.pid);
}

/** Maps socket inodes to the process holding them (needs root to see other users' fds). */
async function socketOwners(root: string, procs: ProcessEntry[]): Promise<Map<number, ProcessEntry>> {
  const owners = new Map<number, ProcessEntry>();
  await Promise.all(
    procs.map(async (p) => {
      let fds: string[];
      try {
        fds = await readdir(join(root, 'proc', String(p.pid), 'fd'));
      } catch {
        return;
      }
      await Promise.all(
        fds.map(async (fd) => {
          try {
            const target = await readlink(join(root, 'proc', String(p.pid), 'fd', fd));
            const m = /^socket:\[(\d+)\]$/.exec(target);
            if (m && !owners.has(Number(m[1]))) owners.set(Number(m[1]), p);
          } catch {
            /* fd closed meanwhile */
          }
        }),
      );
    }),
  );
  return owners;
}

/** Every TCP/UDP socket of the (target) system, with owners. */
export async function listSockets(root: string, procs?: ProcessEntry[]): Promise<SocketEntry[]> {
  const files: Array<[string, Transport, 4 | 6]> = [
    ['tcp', 'tcp', 4],
    ['tcp6', 'tcp', 6],
    ['udp', 'udp', 4],
    ['udp6', 'udp', 6],
  ];
  const sockets: SocketEntry[] = [];
  for (const [name, transport, family] of files) {
    const text = await readOr(join(root, 'proc', 'net', name));
    if (text) sockets.push(...parseProcNet(text, transport, family));
  }
  const owners = await socketOwners(root, procs ?? (await listProcesses(root)));
  for (const s of sockets) {
    const o = owners.get(s.inode);
    if (o) {
      s.pid = o.pid;
      s.process = o.comm;
    }
  }
  return sockets;
}

export function isListening(s: SocketEntry): boolean {
  return s.transport === 'tcp' ? s.state === 'LISTEN' : s.state === 'UNCONN';
}

const ANY = new Set(['0.0.0.0', '::', '::ffff:0.0.0.0']);
const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/** Does a listener on `addr` accept connections sent to 127.0.0.1? */
export function reachableFromLoopback(addr: string): boolean {
  return ANY.has(addr) || LOOPBACK.test(addr);
}

export function isLoopback(addr: string): boolean {
  return LOOPBACK.test(addr);
}

/** The daemon's established loopback connections to the forwarder's intake ports (pid unknown counts as the daemon's). */
export function daemonToForwarder(sockets: SocketEntry[], fwdPorts: number[], daemonPids: ReadonlySet<number>): SocketEntry[] {
  return sockets.filter(
    (s) =>
      s.state === 'ESTABLISHED' &&
      fwdPorts.includes(s.remotePort) &&
      isLoopback(s.remoteAddress) &&
      (s.pid === undefined || daemonPids.has(s.pid)),
  );
}

export function isAny(addr: string): boolean {
  return ANY.has(addr);
}
