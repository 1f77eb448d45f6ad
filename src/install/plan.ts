import { createTwoFilesPatch } from 'diff';
import type { FsRoot } from '../system/fs-root.js';

export interface DesiredFile {
  path: string;
  content: string | Buffer;
  mode: number;
  /** User and group names; resolved to ids at apply time. */
  owner?: { user: string; group: string };
  /** Never shown in a diff or a log (keys, secrets). */
  secret?: boolean;
  /** Built by us, never edited by a person (bundle, supervisor): a one-line summary unless `--diff all`. */
  generated?: boolean;
  why: string;
}

export type ChangeKind = 'create' | 'update' | 'unchanged';

export interface FileChange {
  file: DesiredFile;
  kind: ChangeKind;
  /** Content differs (a mode-only change is an update with contentChanged false). */
  contentChanged: boolean;
  before: Buffer | null;
  beforeMode: number | null;
  diff: string;
}

function toBuffer(c: string | Buffer): Buffer {
  return typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
}

/** Compares each desired file with what is on disk. */
export async function planFiles(fs: FsRoot, files: DesiredFile[]): Promise<FileChange[]> {
  const out: FileChange[] = [];
  for (const file of files) {
    // Never through a link: a planted link would show a file that is not ours in the diff (issue 14).
    const found = await fs.inspect(file.path);
    const before = found?.bytes ?? null;
    const meta = found?.meta ?? null;
    const want = toBuffer(file.content);
    const contentChanged = before === null || !before.equals(want);
    const modeChanged = meta !== null && meta.mode !== file.mode;
    const kind: ChangeKind = before === null ? 'create' : contentChanged || modeChanged ? 'update' : 'unchanged';
    out.push({ file, kind, contentChanged, before, beforeMode: meta?.mode ?? null, diff: diffOf(file, before, want) });
  }
  return out;
}

function isText(b: Buffer): boolean {
  return !b.subarray(0, 8000).includes(0);
}

function diffOf(file: DesiredFile, before: Buffer | null, after: Buffer): string {
  if (before !== null && before.equals(after)) return '';
  // Named like the generated files' lines: after the plan, a bare "(not shown)" could be any of them.
  if (file.secret) return `${file.path}: secret, content not shown (${after.length} bytes)\n`;
  if (after.length > 256 * 1024 || !isText(after)) return `${file.path}: ${after.length} bytes, not shown\n`;
  return createTwoFilesPatch(
    before === null ? '/dev/null' : `a${file.path}`,
    `b${file.path}`,
    before === null ? '' : before.toString('utf8'),
    after.toString('utf8'),
    undefined,
    undefined,
    { context: 3 },
  )
    .split('\n')
    .slice(1) // the "Index/====" header line adds nothing here
    .join('\n');
}

export function summarizePlan(changes: FileChange[]): { create: number; update: number; unchanged: number } {
  return {
    create: changes.filter((c) => c.kind === 'create').length,
    update: changes.filter((c) => c.kind === 'update').length,
    unchanged: changes.filter((c) => c.kind === 'unchanged').length,
  };
}

/** The plan for people: one line per file, then the diffs when asked. */
export function formatPlan(changes: FileChange[], opts: { diffs: boolean; all?: boolean }): string {
  const lines: string[] = [];
  for (const c of changes) {
    const mode = c.file.mode.toString(8).padStart(4, '0');
    const modeNote = c.kind === 'update' && !c.contentChanged ? ` (mode ${c.beforeMode?.toString(8)} -> ${mode})` : '';
    lines.push(`  ${c.kind.padEnd(9)} ${c.file.path} [${mode}]${modeNote}  ${c.file.why}`);
  }
  if (opts.diffs) {
    for (const c of changes) {
      if (c.kind === 'unchanged' || !c.diff) continue;
      if (c.file.generated && !opts.all && c.contentChanged) {
        const size = Buffer.byteLength(c.file.content);
        lines.push('', `${c.file.path}: generated, ${c.before ? `${c.before.length} -> ` : ''}${size} bytes (see it with --diff all)`);
      } else lines.push('', c.diff.trimEnd());
    }
  }
  return lines.join('\n');
}
