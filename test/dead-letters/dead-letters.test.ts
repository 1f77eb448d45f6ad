import { appendFileSync, copyFileSync, mkdirSync, unlinkSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { runDeadLetters } from '../../src/commands/dead-letters.js';
import { CliError, UsageError } from '../../src/errors.js';
import { REPLAY_PATH, REPLAY_TOKEN_HEADER } from '../../src/forwarder/admin-types.js';
import { startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { injectFaults, type FaultController } from '../helpers/faults.js';
import { cef, makeConfig, readNdjson, readRows, silent, tempDir, waitFor } from '../forwarder/helpers.js';

const bin = new URL('../../bin/sentinel-cef', import.meta.url).pathname;

let fwd: RunningForwarder | null = null;
let faults: FaultController | null = null;
afterEach(async () => {
  faults?.clear();
  faults = null;
  await fwd?.shutdown();
  fwd = null;
});

const row = (i: number) => ({
  TimeGenerated: new Date(1_700_000_000_000 + i * 1000).toISOString(),
  DeviceVendor: 'Acme',
  DeviceProduct: 'FW',
  DeviceEventClassID: String(i),
  Activity: `event ${i}`,
});
const line = (e: Record<string, unknown>) => JSON.stringify(e) + '\n';
const rowEntry = (i: number, time: string, reason = 'Data Collector API HTTP 403: InvalidAuthorization') => ({
  time,
  reason,
  httpStatus: 403,
  row: row(i),
});

/** A config file for the CLI; `admin` is what a running forwarder bound (port 0 is no address for a client). */
function writeConfig(dir: string, admin: string | false = '127.0.0.1:1'): string {
  const path = join(dir, 'forwarder.json');
  writeFileSync(
    path,
    JSON.stringify({
      listen: ['tcp://127.0.0.1:0'],
      queue: { dir: join(dir, 'queue') },
      sink: { type: 'file', path: join(dir, 'rows.ndjson') },
      deadLetterFile: join(dir, 'dead-letter.ndjson'),
      admin,
    }),
  );
  return path;
}

/** Dead letters as the forwarder leaves them: `.2` oldest, `.1`, the live file last (with a line still being written). */
function seedRotated(dir: string): void {
  const dl = join(dir, 'dead-letter.ndjson');
  writeFileSync(`${dl}.2`, line(rowEntry(0, '2026-12-01T00:00:00.000Z')) + line(rowEntry(1, '2026-12-01T00:00:01.000Z')), { mode: 0o600 });
  writeFileSync(
    `${dl}.1`,
    line({
      time: '2026-12-02T00:00:00.000Z',
      reason: 'parse failure: no CEF header',
      raw: '<134>garbage',
      receivedAt: '2026-12-01T23:59:59.000Z',
    }) +
      '{not json\n' +
      line({ time: '2026-12-02T00:00:01.000Z', reason: 'accepted truncated: Message:70000', accepted: true, row: row(2) }),
    { mode: 0o600 },
  );
  writeFileSync(dl, line(rowEntry(3, '2026-12-03T00:00:00.000Z')) + '{"time":"2026-12-03T00:00:02', { mode: 0o600 });
}

async function startFwd(dir: string, over: Record<string, unknown> = {}) {
  const config = makeConfig(dir, { listen: ['tcp://127.0.0.1:0'], ...over });
  fwd = await startForwarder(config, { logger: silent, random: () => 0.5 });
  return { f: fwd, configFile: writeConfig(dir, fwd.adminAddress!) };
}

describe('dead-letters list', () => {
  it('reads rotations oldest first, counts per reason, the time range; malformed, partial and accepted lines are told apart', async () => {
    const dir = tempDir('dl-');
    seedRotated(dir);
    const r = await runDeadLetters({ action: 'list', config: writeConfig(dir) });
    expect(r.files.map((f) => f.path.slice(dir.length + 1))).toEqual([
      'dead-letter.ndjson.2',
      'dead-letter.ndjson.1',
      'dead-letter.ndjson',
    ]);
    expect(r.files.map((f) => f.entries)).toEqual([2, 3, 1]);
    expect(r).toMatchObject({
      total: 5,
      malformed: 1,
      accepted: 1,
      replayed: 0,
      from: '2026-12-01T00:00:00.000Z',
      to: '2026-12-03T00:00:00.000Z',
    });
    expect(r.byReason).toEqual([
      { reason: 'Data Collector API HTTP 403: InvalidAuthorization', count: 3 },
      { reason: 'accepted truncated: Message:70000', count: 1 },
      { reason: 'parse failure: no CEF header', count: 1 },
    ]);
    expect(r.entries.map((e) => [e.kind, e.time])).toEqual([
      ['row', '2026-12-01T00:00:00.000Z'],
      ['row', '2026-12-01T00:00:01.000Z'],
      ['raw', '2026-12-02T00:00:00.000Z'],
      ['row', '2026-12-02T00:00:01.000Z'],
      ['row', '2026-12-03T00:00:00.000Z'],
    ]);
    const filtered = await runDeadLetters({
      action: 'list',
      config: writeConfig(dir),
      reason: 'invalidauth',
      since: new Date('2026-12-01T00:00:01Z'),
      limit: 1,
    });
    expect(filtered).toMatchObject({ total: 2, entries: [{ time: '2026-12-03T00:00:00.000Z' }] });
    const one = await runDeadLetters({ action: 'list', file: join(dir, 'dead-letter.ndjson.1') });
    expect(one.total).toBe(2);
  });

  it('--json from the CLI is one JSON document on stdout', async () => {
    const dir = tempDir('dl-');
    seedRotated(dir);
    const r = await execa(bin, ['dead-letters', 'list', '--json', '--config', writeConfig(dir), '--limit', '0'], {
      env: { CI: 'true', NO_COLOR: '1' },
      reject: false,
    });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ total: 5, byReason: [{ count: 3 }, {}, {}] });
  });
});

describe('dead-letters: bad flags and no forwarder', () => {
  it.each([
    [
      ['list', '--since', 'yesterday'],
      /^sentinel-cef: --since must be an ISO time \(2026-12-01T08:00:00Z\) or an age \(30m, 2h, 7d\), got 'yesterday'$/,
    ],
    [['list', '--limit', '-1'], /--limit must be an integer from 0 to 1000000, got '-1'/],
    [['replay', '--chunk', '0'], /--chunk must be an integer from 1 to 10000, got '0'/],
    [['list', '--no-such-flag'], /unknown option '--no-such-flag'/],
    [['list', '--file', '/nonexistent/dead-letter.ndjson'], /--file \/nonexistent\/dead-letter.ndjson does not exist/],
    [['list', '--config', '/nonexistent/forwarder.json'], /^sentinel-cef: --config '\/nonexistent\/forwarder.json': no such file/],
  ])('%j → exit 2 with one line', async (args, message) => {
    const r = await execa(bin, ['dead-letters', ...args], { env: { CI: 'true', NO_COLOR: '1' }, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('replay without a running forwarder fails with one line that says so, and records nothing', async () => {
    const dir = tempDir('dl-');
    seedRotated(dir);
    mkdirSync(join(dir, 'queue'));
    writeFileSync(join(dir, 'queue', 'replay.token'), 'stale\n', { mode: 0o600 });
    const configFile = writeConfig(dir, '127.0.0.1:1');
    const r = await execa(bin, ['dead-letters', 'replay', '--config', configFile], { env: { CI: 'true', NO_COLOR: '1' }, reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/the forwarder is not running \(nothing answers at http:\/\/127\.0\.0\.1:1: ECONNREFUSED\).*start it/);
    await expect(runDeadLetters({ action: 'replay', config: writeConfig(dir, false) })).rejects.toThrow(/admin endpoint is off/);
    expect(() => statSync(join(dir, 'dead-letter.ndjson.replayed'))).toThrow();
  });

  it('the replay endpoint refuses a request without the token or without a JSON content type', async () => {
    const dir = tempDir('dl-');
    const { f } = await startFwd(dir);
    const url = `http://${f.adminAddress}${REPLAY_PATH}`;
    const body = JSON.stringify({ records: [{ row: row(1) }] });
    expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status).toBe(403);
    expect(
      (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', [REPLAY_TOKEN_HEADER]: 'x'.repeat(64) }, body }))
        .status,
    ).toBe(403);
    const token = readFileSync(join(dir, 'queue', 'replay.token'), 'utf8').trim();
    expect(statSync(join(dir, 'queue', 'replay.token')).mode & 0o777).toBe(0o600);
    expect(
      (await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain', [REPLAY_TOKEN_HEADER]: token }, body })).status,
    ).toBe(415);
    const bad = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [REPLAY_TOKEN_HEADER]: token },
      body: '{"records":[{"nope":1}]}',
    });
    expect(bad.status).toBe(400);
    expect(f.health().counters.received).toBe(0);
  });
});

describe('replay token', () => {
  it('a failed token write (full disk) leaves the forwarder running without the replay endpoint', async () => {
    const dir = tempDir('dl-');
    faults = injectFaults([{ ops: ['open', 'write'], path: /replay\.token/, codes: ['ENOSPC'] }]);
    const { f } = await startFwd(dir);
    faults.clear();
    expect(f.health().status).not.toBe('stopping');
    const r = await fetch(`http://${f.adminAddress}${REPLAY_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"records":[]}',
    });
    expect(r.status).toBe(405);
    expect(await f.metrics.registry.metrics()).toMatch(/sentinel_cef_background_errors_total\{where="replay_token"\} 1/);
  });
});

describe('dead-letters replay', () => {
  it('re-sends rows as they stand and raw messages through the parser, each once; a second replay sends nothing', async () => {
    const dir = tempDir('dl-');
    const dl = join(dir, 'dead-letter.ndjson');
    const N = 40;
    let text = '';
    for (let i = 0; i < N; i++) text += line(rowEntry(i, new Date(Date.UTC(2026, 11, 1, 0, 0, i)).toISOString()));
    // A parse failure whose message the parser now takes, one that still fails, and an accepted row (never replayed).
    text += line({
      time: '2026-12-01T01:00:00.000Z',
      reason: 'parse failure: old parser',
      raw: cef(1000),
      receivedAt: '2026-12-01T00:59:59.000Z',
    });
    text += line({
      time: '2026-12-01T01:00:01.000Z',
      reason: 'parse failure: no CEF header',
      raw: '<134>Nov 22 08:00:00 fw1 not cef at all',
      receivedAt: '2026-12-01T01:00:00.000Z',
    });
    text += line({ time: '2026-12-01T01:00:02.000Z', reason: 'accepted truncated: Message:70000', accepted: true, row: row(2000) });
    writeFileSync(dl, text, { mode: 0o600 });
    const { f, configFile } = await startFwd(dir);
    const first = await runDeadLetters({ action: 'replay', config: configFile, chunk: 7 });
    expect(first).toMatchObject({ replayed: N + 2, rows: N, raw: 2, accepted: 1, alreadyReplayed: 0, chunks: 6 });
    await waitFor(
      () => f.health().counters.delivered === N + 1 && f.health().counters.deadLettered === 1,
      10_000,
      'replayed rows delivered',
    );
    const ids = readRows(join(dir, 'rows.ndjson')).map((r) => Number(r.DeviceEventClassID));
    expect(ids.sort((a, b) => a - b)).toEqual([...Array.from({ length: N }, (_, i) => i), 1000]);
    // Rows go out as they were: no re-parse, no new columns.
    const sent = readRows(join(dir, 'rows.ndjson')).find((r) => r.DeviceEventClassID === '5');
    expect(sent).toEqual(row(5));
    // The still-bad message is dead-lettered again: a new entry at the end of the live file.
    const after = readNdjson(dl);
    expect(after).toHaveLength(N + 4);
    expect(after[N + 3]).toMatchObject({ reason: expect.stringMatching(/^parse failure/), raw: '<134>Nov 22 08:00:00 fw1 not cef at all' });
    expect(statSync(`${dl}.replayed`).mode & 0o777).toBe(0o600);

    // Rotation renames the file, copytruncate or a restore copies it: the ledger still knows its entries.
    renameSync(dl, `${dl}.1`);
    copyFileSync(`${dl}.1`, `${dl}.2`);
    const second = await runDeadLetters({ action: 'replay', config: configFile, reason: 'InvalidAuthorization' });
    expect(second).toMatchObject({ replayed: 0, alreadyReplayed: 2 * N });
    unlinkSync(`${dl}.2`);
    const listed = await runDeadLetters({ action: 'list', config: configFile, limit: 0 });
    expect(listed.replayed).toBe(N + 2);
    expect(listed.entries.filter((e) => !e.replayed).map((e) => e.reason)).toEqual([
      'accepted truncated: Message:70000',
      expect.stringMatching(/^parse failure/),
    ]);
    await new Promise((r) => setTimeout(r, 300));
    expect(readRows(join(dir, 'rows.ndjson'))).toHaveLength(N + 1);
  });

  it('a crash after the forwarder queued a chunk but before the ledger write resends that chunk only', async () => {
    const dir = tempDir('dl-');
    const dl = join(dir, 'dead-letter.ndjson');
    const N = 50;
    const CHUNK = 10;
    let text = '';
    for (let i = 0; i < N; i++) text += line(rowEntry(i, new Date(Date.UTC(2026, 11, 1, 0, 0, i)).toISOString()));
    writeFileSync(dl, text, { mode: 0o600 });
    const { f, configFile } = await startFwd(dir);
    // The third ledger record fails (as if the process died there): chunk 3 is queued but not recorded.
    faults = injectFaults([{ ops: ['write'], path: /\.replayed$/, codes: ['EIO'], after: 2, times: 1 }]);
    await expect(runDeadLetters({ action: 'replay', config: configFile, chunk: CHUNK })).rejects.toThrow(
      /cannot record the replay in .*dead-letter\.ndjson\.replayed: EIO/,
    );
    faults.clear();
    const again = await runDeadLetters({ action: 'replay', config: configFile, chunk: CHUNK });
    expect(again).toMatchObject({ alreadyReplayed: 2 * CHUNK, replayed: N - 2 * CHUNK });
    await waitFor(() => f.health().counters.delivered === N + CHUNK, 10_000, 'delivery');
    const ids = readRows(join(dir, 'rows.ndjson')).map((r) => Number(r.DeviceEventClassID));
    const seen = new Map<number, number>();
    for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
    // Every entry at least once; duplicates only from the one unrecorded chunk.
    expect([...seen.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect([...seen].filter(([, n]) => n > 1).map(([id]) => id)).toEqual(Array.from({ length: CHUNK }, (_, i) => 2 * CHUNK + i));
    const third = await runDeadLetters({ action: 'replay', config: configFile, chunk: CHUNK });
    expect(third).toMatchObject({ replayed: 0, alreadyReplayed: N });
    // A crash in the middle of a ledger write leaves a torn last line: ignored, the rest still counts.
    appendFileSync(`${dl}.replayed`, '{"file":"0123","ranges":[[0,');
    expect(await runDeadLetters({ action: 'replay', config: configFile, chunk: CHUNK, dryRun: true })).toMatchObject({
      replayed: 0,
      alreadyReplayed: N,
    });
    // The next record after it is still read back (not glued to the torn line).
    appendFileSync(dl, line(rowEntry(N, '2026-12-02T00:00:00.000Z')));
    expect(await runDeadLetters({ action: 'replay', config: configFile, chunk: CHUNK })).toMatchObject({ replayed: 1, alreadyReplayed: N });
    expect(await runDeadLetters({ action: 'replay', config: configFile, chunk: CHUNK })).toMatchObject({
      replayed: 0,
      alreadyReplayed: N + 1,
    });
  });

  it('a full queue refuses the chunk (disk budget applies) and replay stops with one line; what was queued is recorded', async () => {
    const dir = tempDir('dl-');
    const dl = join(dir, 'dead-letter.ndjson');
    let text = '';
    for (let i = 0; i < 20; i++) text += line(rowEntry(i, '2026-12-01T00:00:00.000Z'));
    writeFileSync(dl, text, { mode: 0o600 });
    appendFileSync(
      dl,
      line({ time: '2026-12-01T00:00:01.000Z', reason: 'sink refused', row: { ...row(99), Message: 'x'.repeat(20_000) } }),
    );
    const { configFile } = await startFwd(dir, { queue: { maxBytes: 16 * 1024 } });
    const err = await runDeadLetters({ action: 'replay', config: configFile, chunk: 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect(err).not.toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/HTTP 503: the queue has no room.*20 entries replayed and recorded before this/);
    expect(readNdjson(`${dl}.replayed`)).toMatchObject([{ entries: 20 }]);
  });
});
