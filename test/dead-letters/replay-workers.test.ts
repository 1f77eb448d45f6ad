import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { runDeadLetters } from '../../src/commands/dead-letters.js';
import { buildForwarderBundle, cef, readRows, tempDir, waitFor } from '../forwarder/helpers.js';

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('dead-letters replay through the bundled forwarder', () => {
  it('replayed rows (FLAG_ROW) and raw messages cross a parse worker intact, each once', async () => {
    const bundle = await buildForwarderBundle();
    const dir = tempDir('dl-bundle-');
    const dl = join(dir, 'dead-letter.ndjson');
    const N = 30;
    let text = '';
    for (let i = 0; i < N; i++)
      text +=
        JSON.stringify({
          time: '2026-12-01T00:00:00.000Z',
          reason: 'Logs Ingestion API HTTP 403',
          httpStatus: 403,
          row: { DeviceVendor: 'Acme', DeviceEventClassID: String(i), Activity: `row ${i}` },
        }) + '\n';
    text +=
      JSON.stringify({
        time: '2026-12-01T00:00:01.000Z',
        reason: 'parse failure: old parser',
        raw: cef(1000),
        receivedAt: '2026-12-01T00:00:00.000Z',
      }) + '\n';
    writeFileSync(dl, text, { mode: 0o600 });
    const proc = spawn(
      process.execPath,
      [
        bundle,
        '--listen',
        'tcp://127.0.0.1:0',
        '--queue-dir',
        join(dir, 'queue'),
        '--sink',
        `file:${join(dir, 'rows.ndjson')}`,
        '--admin',
        '127.0.0.1:0',
        '--dead-letter-file',
        dl,
        '--parse-workers',
        '1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(proc);
    const started = await new Promise<{ admin: string; parseWorkers: number }>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        const j = JSON.parse(line) as { msg: string; admin?: string; parseWorkers?: number };
        if (j.msg === 'forwarder started') resolve({ admin: j.admin!, parseWorkers: j.parseWorkers! });
      });
      proc.once('exit', (code) => reject(new Error(`forwarder exited (${code})`)));
    });
    expect(started.parseWorkers).toBe(1);
    const configFile = join(dir, 'forwarder.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        queue: { dir: join(dir, 'queue') },
        sink: { type: 'file', path: join(dir, 'rows.ndjson') },
        deadLetterFile: dl,
        admin: started.admin,
      }),
    );
    const r = await runDeadLetters({ action: 'replay', config: configFile, chunk: 8 });
    expect(r).toMatchObject({ replayed: N + 1, rows: N, raw: 1 });
    await waitFor(() => readRows(join(dir, 'rows.ndjson')).length >= N + 1, 15_000, 'replayed rows written by the file sink');
    const rows = readRows(join(dir, 'rows.ndjson'));
    expect(rows.map((x) => Number(x.DeviceEventClassID)).sort((a, b) => a - b)).toEqual([...Array.from({ length: N }, (_, i) => i), 1000]);
    expect(rows.find((x) => x.DeviceEventClassID === '7')).toEqual({ DeviceVendor: 'Acme', DeviceEventClassID: '7', Activity: 'row 7' });
    proc.kill('SIGTERM');
    await new Promise((res) => proc.once('exit', res));
  }, 60_000);
});
