import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listSockets, parseProcNet } from '../../src/troubleshoot/proc.js';
import { addProcess, cleanup, makeRoot, procNet, put } from './helpers.js';

describe('/proc/net parsing', () => {
  it('decodes IPv4 listeners and connections as the kernel prints them', () => {
    const text = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:844F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 29997 1 0000000036ef2484 100 0 0 10 0
   1: 0100007F:9C40 0100007F:627A 01 00000000:00000000 00:00000000 00000000     0        0 30001 1 0000000036ef2484 20 4 30 10 -1
   2: 00000000:0202 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 30002 1 0000000036ef2484 100 0 0 10 0
`;
    const s = parseProcNet(text, 'tcp', 4);
    expect(s[0]).toMatchObject({ localAddress: '127.0.0.1', localPort: 0x844f, state: 'LISTEN', inode: 29997 });
    expect(s[1]).toMatchObject({ localPort: 40000, remoteAddress: '127.0.0.1', remotePort: 25210, state: 'ESTABLISHED' });
    expect(s[2]).toMatchObject({ localAddress: '0.0.0.0', localPort: 514 });
  });

  it('decodes IPv6 any, loopback and v4-mapped addresses', () => {
    const text = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0202 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:0202 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0202 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
   3: 000080FE00000000FF020000D40E2AFE:0202 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0
`;
    const s = parseProcNet(text, 'tcp', 6);
    expect(s.map((x) => x.localAddress)).toEqual(['::', '::1', '::ffff:127.0.0.1', 'fe80::2ff:fe2a:ed4']);
  });

  it('treats unconnected UDP sockets as listeners', () => {
    const s = parseProcNet(procNet([{ local: ['0.0.0.0', 514], st: '07', inode: 5 }]), 'udp', 4);
    expect(s[0]).toMatchObject({ transport: 'udp', state: 'UNCONN', localPort: 514 });
  });

  describe('owners', () => {
    let root: string;
    afterEach(() => cleanup(root));
    it('maps socket inodes to processes through /proc/PID/fd', async () => {
      root = await makeRoot();
      await put(root, '/proc/net/tcp', procNet([{ local: ['0.0.0.0', 514], st: '0A', inode: 77 }]));
      await addProcess(root, 12, 'rsyslogd', ['/usr/sbin/rsyslogd', '-n'], [77]);
      const s = await listSockets(root);
      expect(s).toHaveLength(1);
      expect(s[0]).toMatchObject({ pid: 12, process: 'rsyslogd' });
    });
  });

  it('sees a real listener of this process in the real /proc', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const s = (await listSockets('/')).find((x) => x.localPort === port && x.state === 'LISTEN');
      expect(s).toBeDefined();
      expect(s!.pid).toBe(process.pid);
    } finally {
      srv.close();
    }
  });
});
