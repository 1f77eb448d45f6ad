/**
 * How long `troubleshoot` takes when all is well: the real forwarder (in process, file sink) behind a stand-in
 * daemon relay on real sockets, N runs of runTroubleshoot with --probes P, median and max wall time.
 *
 *   npx tsx scripts/bench-troubleshoot.ts [--runs 5] [--probes 3]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { forwarderConfigSchema } from '../src/config/schema.js';
import { startForwarder } from '../src/forwarder/forwarder.js';
import { createLogger } from '../src/forwarder/logger.js';
import { runTroubleshoot } from '../src/troubleshoot/run.js';
import { createDefaultDeps } from '../src/troubleshoot/deps.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, probes: { type: 'string', default: '3' } } });
const runs = Number(values.runs);
const probes = Number(values.probes);

const dir = await mkdtemp(join(tmpdir(), 'bench-ts-'));
const raw = {
  listen: ['tcp://127.0.0.1:0', 'udp://127.0.0.1:0'],
  admin: '127.0.0.1:0',
  queue: { dir: join(dir, 'queue') },
  batch: { flushMs: 20 },
  sink: { type: 'file', path: join(dir, 'rows.ndjson') },
};
const fwd = await startForwarder(forwarderConfigSchema.parse(raw), { logger: createLogger('fatal') });
const tcpPort = fwd.addresses.find((a) => a.protocol === 'tcp')!.port;
const udpPort = fwd.addresses.find((a) => a.protocol === 'udp')!.port;
await writeFile(join(dir, 'forwarder.json'), JSON.stringify({ ...raw, admin: fwd.adminAddress }));

// The "daemon": one TCP and one UDP socket on the same port, relaying each line to the forwarder.
const relayTcp = createServer((s) => {
  const up = connect(tcpPort, '127.0.0.1');
  s.pipe(up);
});
await new Promise<void>((r) => relayTcp.listen(0, '127.0.0.1', () => r()));
const port = (relayTcp.address() as { port: number }).port;
const relayUdp = createSocket('udp4');
const out = createSocket('udp4');
relayUdp.on('message', (m) => out.send(m, udpPort, '127.0.0.1'));
await new Promise<void>((r) => relayUdp.bind(port, '127.0.0.1', () => r()));

const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  const report = await runTroubleshoot(
    { configPath: join(dir, 'forwarder.json'), port, probes, timeoutSec: 10 },
    createDefaultDeps({ root: '/', env: {} }),
  );
  times.push(performance.now() - t);
  const e2e = report.checks.find((c) => c.id === 'e2e.probes')!;
  if (e2e.status !== 'pass') throw new Error(`run ${i}: e2e.probes ${e2e.status}: ${e2e.message}`);
}
times.sort((a, b) => a - b);
console.log(
  `troubleshoot, ${probes} probes per transport, all delivered: median ${Math.round(times[Math.floor(times.length / 2)])} ms, ` +
    `max ${Math.round(times.at(-1)!)} ms over ${runs} runs`,
);
relayTcp.close();
relayUdp.close();
out.close();
await fwd.shutdown();
await rm(dir, { recursive: true, force: true });
