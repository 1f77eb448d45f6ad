// TEMPORARY: only the file sink; the Azure sinks land with the sinks work.
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SinkConfig } from '../config/schema.js';
import type { Sink } from './types.js';
export type { Sink, SendResult } from './types.js';

export function createSink(config: SinkConfig): Sink {
  if (config.type !== 'file') throw new Error(`sink ${config.type} is not available in this build yet`);
  const path = config.path;
  return {
    name: 'file',
    async send(rows) {
      try {
        await mkdir(dirname(path), { recursive: true });
        await appendFile(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
        return { status: 'success', accepted: rows.length };
      } catch (err) {
        return { status: 'retryable', error: (err as Error).message };
      }
    },
  };
}
