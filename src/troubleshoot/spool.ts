import path from 'node:path';
import type { Context } from './context.js';
import { LAYOUT } from './layout.js';
import { stripConfigComments } from '../install/config-text.js';
import { scanRsyslogConfig } from '../install/rsyslog-config.js';

/**
 * What the syslog daemon holds on disk for our forwarding action: rsyslog's disk-assisted action queue
 * (`queue.filename` in our drop-in) or syslog-ng's reliable disk buffers. Read from files and /proc only.
 */
export interface SpoolFile {
  path: string;
  size: number;
  mtimeMs: number;
}

export interface SpoolState {
  daemon: 'rsyslog' | 'syslog-ng';
  dir: string;
  /** How `dir` was found, for the message. */
  dirSource: string;
  files: SpoolFile[];
  /** Bytes not yet handed to the forwarder; null when not knowable from here. */
  pendingBytes: number | null;
  /** Messages not yet handed over, where the files record it (rsyslog's .qi, syslog-ng's header). */
  pendingMessages: number | null;
  /** Set (to the missing index file) when the daemon will not read these files when it starts. */
  orphaned?: string;
  /** What limits the numbers above, one sentence each. */
  notes: string[];
}

/** rsyslog has no built-in work directory; these are where the distributions' rsyslog.conf put it. */
export const RSYSLOG_STOCK_WORKDIRS = ['/var/spool/rsyslog', '/var/lib/rsyslog'];
/** syslog-ng's persist directory (disk-buffer default) in the Debian and RHEL/EPEL packages. */
export const SYSLOG_NG_PERSIST_DIR = '/var/lib/syslog-ng';
export const DEFAULT_QUEUE_FILENAME = 'sentinel-cef-fwd';

function param(body: string, name: string): string | undefined {
  const m = new RegExp(`\\b${name.replace('.', '\\.')}\\s*=\\s*(?:"([^"]*)"|([^\\s)"]+))`, 'i').exec(body);
  return m ? (m[1] ?? m[2]) : undefined;
}

/** Our forwarding action's queue file name and spool directory, as the drop-in sets them. */
export function parseRsyslogDropInQueue(text: string): { filename: string; spoolDirectory?: string } | null {
  for (const m of stripConfigComments(text).matchAll(/\baction\s*\(([^)]*)\)/g)) {
    const filename = param(m[1], 'queue.filename');
    if (!filename) continue;
    if (!/omfwd|omrelp/i.test(param(m[1], 'type') ?? '')) continue;
    return { filename, spoolDirectory: param(m[1], 'queue.spoolDirectory') };
  }
  return null;
}

/** `iQueueSize` and `tVars.disk.sizeOnDisk` from rsyslog's queue info file (`+name:type:len:value:` lines). */
export function parseRsyslogQi(text: string): { messages: number | null; bytes: number | null } {
  const num = (name: string) => {
    const m = new RegExp(`^\\+${name.replace(/\./g, '\\.')}:\\d+:\\d+:(-?\\d+):`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  };
  return { messages: num('iQueueSize'), bytes: num('tVars.disk.sizeOnDisk') };
}

/** Where rsyslog reads: the read offset of each spool file rsyslogd holds open read-only (/proc/PID/fdinfo). */
async function rsyslogReadOffsets(ctx: Context, files: string[]): Promise<Map<string, number> | null> {
  const pids = await ctx.daemonPids();
  const offsets = new Map<string, number>();
  // By file name: the configured directory may be reached through a symlink, /proc shows the real path.
  const byName = new Map(files.map((f) => [path.posix.basename(f), f]));
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await ctx.fs.readdir(`/proc/${pid}/fd`);
    } catch {
      return null; // Not ours to look at (not root): the position is unknown, not zero.
    }
    for (const fd of fds) {
      const target = await ctx.fs.readlink(`/proc/${pid}/fd/${fd}`);
      const file = target && !target.endsWith(' (deleted)') ? byName.get(path.posix.basename(target)) : undefined;
      if (!file) continue;
      const info = await ctx.readText(`/proc/${pid}/fdinfo/${fd}`);
      if (info === null) return null;
      const pos = /^pos:\s*(\d+)/m.exec(info);
      const flags = /^flags:\s*([0-7]+)/m.exec(info);
      if (!pos || !flags) continue;
      if ((parseInt(flags[1], 8) & 0o3) !== 0) continue; // The writer's descriptor.
      offsets.set(file, Math.max(offsets.get(file) ?? 0, Number(pos[1])));
    }
  }
  return offsets;
}

/** A directory's entries; unlike Context.list, an unreadable directory is an answer of its own, not "empty". */
async function listDir(ctx: Context, dir: string): Promise<string[] | { missing: string }> {
  try {
    return await ctx.fs.readdir(dir);
  } catch (err) {
    return { missing: `cannot read ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (run troubleshoot as root)` };
  }
}

async function statFiles(ctx: Context, dir: string, names: string[]): Promise<SpoolFile[]> {
  const out: SpoolFile[] = [];
  for (const n of names) {
    const p = path.posix.join(dir, n);
    const st = await ctx.stat(p);
    if (st?.isFile) out.push({ path: p, size: st.size, mtimeMs: st.mtimeMs });
  }
  return out;
}

export async function inspectRsyslogSpool(ctx: Context): Promise<SpoolState | { missing: string }> {
  const dropIn = await ctx.readText(LAYOUT.rsyslogDropIn);
  if (dropIn === null) return { missing: `${LAYOUT.rsyslogDropIn} is missing (see daemon.dropin)` };
  const q = parseRsyslogDropInQueue(dropIn);
  if (!q) return { missing: `${LAYOUT.rsyslogDropIn} gives the forwarding action no disk queue (queue.filename)` };

  let dirs: string[];
  let dirSource: string;
  if (q.spoolDirectory) {
    dirs = [q.spoolDirectory];
    dirSource = `queue.spoolDirectory in ${LAYOUT.rsyslogDropIn}`;
  } else {
    const scan = await scanRsyslogConfig(ctx.fs);
    if (scan.workDirectory) {
      dirs = [scan.workDirectory];
      dirSource = `rsyslog's workDirectory`;
    } else {
      dirs = RSYSLOG_STOCK_WORKDIRS;
      dirSource = "no queue.spoolDirectory and no workDirectory set; looked in the distributions' usual work directories";
    }
  }

  const dataRe = new RegExp(`^${q.filename.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d{8})$`);
  let dir = dirs[0];
  let names: string[] = [];
  for (const d of dirs) {
    const listed = await listDir(ctx, d);
    if (!Array.isArray(listed)) return listed;
    const found = listed.filter((n) => n === `${q.filename}.qi` || dataRe.test(n));
    if (found.length) {
      dir = d;
      names = found;
      break;
    }
  }
  const files = await statFiles(ctx, dir, names);
  const qiPath = path.posix.join(dir, `${q.filename}.qi`);
  const data = files.filter((f) => f.path !== qiPath).sort((a, b) => a.path.localeCompare(b.path));
  const qi = files.find((f) => f.path === qiPath);
  const qiText = qi ? await ctx.readText(qiPath) : null;
  const qiInfo = qiText ? parseRsyslogQi(qiText) : { messages: null, bytes: null };
  const notes: string[] = [];
  const state: SpoolState = { daemon: 'rsyslog', dir, dirSource, files, pendingBytes: null, pendingMessages: null, notes };
  if (data.length === 0) {
    state.pendingBytes = 0;
    state.pendingMessages = qiInfo.messages;
    return state;
  }

  const d = await ctx.daemon();
  if (!d.running) {
    // Stopped: the .qi written at shutdown is the queue's own account of what is left.
    state.pendingBytes = qiInfo.bytes ?? data.reduce((s, f) => s + f.size, 0);
    state.pendingMessages = qiInfo.messages;
    // rsyslog finds a saved queue through its .qi; data files without one are never read again.
    if (!qi) state.orphaned = `${q.filename}.qi`;
    return state;
  }
  const offsets = await rsyslogReadOffsets(
    ctx,
    data.map((f) => f.path),
  );
  if (offsets === null) {
    notes.push("rsyslogd's read position is not visible (/proc/PID/fdinfo needs root)");
    return state;
  }
  // rsyslog deletes a spool file once it has read past it and keeps the last one open until it stops
  // (rainer.gerhards.net, 2013-07, "why disk-assisted queues keep a file open"): what is not yet read is the
  // rest of the file it reads now plus every later file. The read buffer may run a few KiB ahead.
  let readIdx = -1;
  data.forEach((f, i) => {
    if (offsets.has(f.path)) readIdx = i;
  });
  if (readIdx < 0) {
    notes.push('rsyslogd holds none of these files open for reading: its disk queue is not being read');
    state.pendingBytes = data.reduce((s, f) => s + f.size, 0);
  } else {
    const cur = data[readIdx];
    state.pendingBytes = Math.max(0, cur.size - offsets.get(cur.path)!) + data.slice(readIdx + 1).reduce((s, f) => s + f.size, 0);
  }
  return state;
}

/** Fields of a syslog-ng disk-buffer file header (modules/diskq/qdisk.c, QDiskFileHeader). */
export interface QdiskHeader {
  magic: string;
  readHead: number;
  writeHead: number;
  /** Messages not yet sent. */
  length: number;
  backlogHead: number;
  /** Sent but not yet acknowledged (reliable buffers keep them). */
  backlogLen: number;
}

export const QDISK_RESERVED_SPACE = 4096;

export function parseQdiskHeader(buf: Buffer): QdiskHeader | null {
  if (buf.length < 96) return null;
  const be = buf[5] !== 0;
  const i64 = (o: number) => Number(be ? buf.readBigInt64BE(o) : buf.readBigInt64LE(o));
  return {
    magic: buf.subarray(0, 4).toString('latin1'),
    readHead: i64(8),
    writeHead: i64(16),
    length: i64(24),
    backlogHead: i64(80),
    backlogLen: i64(88),
  };
}

/** Bytes between the oldest kept record (backlog head) and the write head, across the ring's wrap. */
function qdiskUsedBytes(h: QdiskHeader, fileSize: number): number {
  if (h.length === 0 && h.backlogLen === 0) return 0;
  if (h.writeHead >= h.backlogHead) return h.writeHead - h.backlogHead;
  return Math.max(0, fileSize - h.backlogHead) + Math.max(0, h.writeHead - QDISK_RESERVED_SPACE);
}

export async function inspectSyslogNgBuffers(ctx: Context): Promise<SpoolState | { missing: string }> {
  const dropIn = await ctx.readText(LAYOUT.syslogNgDropIn);
  if (dropIn === null) return { missing: `${LAYOUT.syslogNgDropIn} is missing (see daemon.dropin)` };
  const ours = stripConfigComments(dropIn);
  if (!/\breliable\s*\(\s*(yes|on|1)\s*\)/.test(ours)) {
    return { missing: `${LAYOUT.syslogNgDropIn} gives the forwarder destination no reliable disk buffer` };
  }
  const dirOpt = /disk-buffer\s*\([^;]*?\bdir\s*\(\s*"([^"]+)"/.exec(ours)?.[1];
  const dir = dirOpt ?? SYSLOG_NG_PERSIST_DIR;
  const listed = await listDir(ctx, dir);
  if (!Array.isArray(listed)) return listed;
  const names = listed.filter((n) => /^syslog-ng-\d{5}\.rqf$/.test(n));
  const files = await statFiles(ctx, dir, names);
  const notes: string[] = [];
  let bytes = 0;
  let messages = 0;
  const nonEmpty: SpoolFile[] = [];
  let unreadable = 0;
  for (const f of files) {
    const h = parseQdiskHeader((await ctx.fs.readHead(f.path, 96).catch(() => null)) ?? Buffer.alloc(0));
    if (!h) {
      notes.push(`${f.path}: header unreadable`);
      unreadable++;
      continue;
    }
    const n = h.length + h.backlogLen;
    if (n > 0) {
      nonEmpty.push(f);
      messages += n;
      bytes += qdiskUsedBytes(h, f.size);
    }
  }
  // The file-to-destination mapping lives in syslog-ng.persist (binary; `persist-tool dump` shows it), not in
  // the buffer files: attribute them to us only when no other destination has a reliable disk buffer.
  const others = (await ctx.daemonConfigFiles())
    .filter((f) => f.path !== LAYOUT.syslogNgDropIn)
    .some((f) => /\breliable\s*\(\s*(yes|on|1)\s*\)/.test(stripConfigComments(f.text)));
  if (files.length) {
    notes.push(
      others
        ? 'other destinations also have reliable disk buffers, and which file is whose is recorded only in syslog-ng.persist (`persist-tool dump`): these totals cover every reliable buffer'
        : 'ours is the only reliable disk buffer configured, so these files are ours (syslog-ng.persist records the mapping)',
    );
  }
  return {
    daemon: 'syslog-ng',
    dir,
    dirSource: dirOpt ? `dir() in ${LAYOUT.syslogNgDropIn}` : "syslog-ng's persist directory",
    files: nonEmpty.length ? nonEmpty : files,
    // A header we could not read may hold data: unknown, not empty.
    pendingBytes: unreadable && !bytes ? null : bytes,
    pendingMessages: unreadable && !bytes ? null : messages,
    notes,
  };
}
