import type { FsRoot } from './fs-root.js';

export interface Listener {
  protocol: 'tcp' | 'udp';
  family: 4 | 6;
  address: string;
  port: number;
  inode: number;
  /** Owning process, when /proc/<pid>/fd could be read. */
  pid?: number;
  comm?: string;
}

const TCP_LISTEN = '0A';
const UDP_UNCONNECTED = '07';

/** Sockets that accept traffic: TCP in LISTEN, UDP bound and unconnected, from /proc/net/{tcp,udp}{,6}. */
export async function listListeners(fs: FsRoot, opts: { withProcesses?: boolean } = {}): Promise<Listener[]> {
  const out: Listener[] = [];
  for (const [file, protocol, family] of [
    ['tcp', 'tcp', 4],
    ['tcp6', 'tcp', 6],
    ['udp', 'udp', 4],
    ['udp6', 'udp', 6],
  ] as const) {
    const text = await fs.readText(`/proc/net/${file}`).catch(() => null);
    if (!text) continue;
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const state = cols[3];
      if (protocol === 'tcp' ? state !== TCP_LISTEN : state !== UDP_UNCONNECTED) continue;
      const [hexAddr, hexPort] = cols[1].split(':');
      out.push({
        protocol,
        family,
        address: family === 4 ? decodeIpv4(hexAddr) : decodeIpv6(hexAddr),
        port: Number.parseInt(hexPort, 16),
        inode: Number(cols[9]),
      });
    }
  }
  if (opts.withProcesses) await attachProcesses(fs, out);
  return out;
}

export function findListeners(listeners: Listener[], port: number, protocol?: 'tcp' | 'udp'): Listener[] {
  return listeners.filter((l) => l.port === port && (!protocol || l.protocol === protocol));
}

async function attachProcesses(fs: FsRoot, listeners: Listener[]): Promise<void> {
  const byInode = new Map(listeners.map((l) => [l.inode, l]));
  if (byInode.size === 0) return;
  for (const pid of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await fs.readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const link = await fs.readlink(`/proc/${pid}/fd/${fd}`);
      const m = link && /^socket:\[(\d+)\]$/.exec(link);
      const l = m ? byInode.get(Number(m[1])) : undefined;
      if (l && l.pid === undefined) {
        l.pid = Number(pid);
        l.comm = (await fs.readText(`/proc/${pid}/comm`).catch(() => null))?.trim();
      }
    }
  }
}

// /proc/net addresses are the kernel's 32-bit words printed in host (little-endian) byte order.
export function decodeIpv4(hex: string): string {
  const n = Number.parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.');
}

export function decodeIpv6(hex: string): string {
  const words: string[] = [];
  for (let i = 0; i < 32; i += 8) {
    const w = hex.slice(i, i + 8);
    const bytes = [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)].join('');
    words.push(bytes.slice(0, 4), bytes.slice(4, 8));
  }
  const full = words.map((w) => w.replace(/^0+(?=.)/, '').toLowerCase()).join(':');
  // Collapse the longest zero run for readability (::, ::1).
  const runs = [...full.matchAll(/(^|:)0(:0)+(:|$)/g)];
  if (runs.length === 0) return full;
  const longest = runs.reduce((a, b) => (b[0].length > a[0].length ? b : a));
  return `${full.slice(0, longest.index)}::${full.slice(longest.index! + longest[0].length)}`;
}
