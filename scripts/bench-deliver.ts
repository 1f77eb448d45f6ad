/**
 * CPU per event of BatchProcessor.deliver alone: a sink that accepts at once, 1,000-row batches in
 * 4 parallel slices. The module path makes a side-by-side run against another checkout possible.
 *
 *   npx tsx scripts/bench-deliver.ts [--module PATH_TO_BATCH_PROCESSOR_MODULE] [--batches 20000]
 */
import path from 'node:path';

const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const mod = (await import(
  path.resolve(arg('module', new URL('../src/forwarder/delivery/batch-processor.ts', import.meta.url).pathname))
)) as {
  BatchProcessor: new (o: unknown) => { deliver(p: unknown, signal: AbortSignal): Promise<unknown> };
};
const batches = Number(arg('batches', '20000'));
const sink = {
  name: 'noop',
  async send(rows: unknown[]) {
    return { status: 'success', accepted: rows.length };
  },
};
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const effects = { retried() {}, lastDelivery() {}, backgroundError() {}, sinkDuration() {}, probeFailed() {}, probeDeadLettered() {} };
const p = new mod.BatchProcessor({
  sink,
  deadLetter: { write() {} },
  logger: quiet,
  effects,
  parallelSends: 4,
  retry: { initialMs: 10, maxMs: 100 },
  maxMessageBytes: 65536,
});
const rows = Array.from({ length: 1000 }, (_, i) => ({ DeviceEventClassID: String(i) }));
const receivedAt = rows.map(() => Date.now());
const signal = new AbortController().signal;
const run = async (n: number) => {
  for (let k = 0; k < n; k++) await p.deliver({ rows, prepared: false, receivedAt, parseFailures: [], probes: new Map() }, signal);
};
await run(2000); // warm-up
const t0 = process.cpuUsage();
await run(batches);
const c = process.cpuUsage(t0);
console.log(`${((c.user + c.system) / batches / 1000).toFixed(3)} µs of CPU per event in deliver (${batches} batches of 1,000 rows)`);
