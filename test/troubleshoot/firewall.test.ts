import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Context } from '../../src/troubleshoot/context.js';
import * as system from '../../src/troubleshoot/checks/system.js';
import { evaluateIptables, evaluateNft, parseIptablesSave, parseNftJson, type Packet } from '../../src/troubleshoot/netfilter.js';
import { troubleshootOptionsSchema, type TroubleshootDeps } from '../../src/troubleshoot/types.js';
import { cleanup, fakeExec, healthyTree, makeRoot, testDeps } from './helpers.js';

const fixture = (name: string) => readFileSync(join(__dirname, '../fixtures/firewall', name), 'utf8');
const pkt = (protocol: 'tcp' | 'udp', iface: 'ext' | 'lo' = 'ext'): Packet => ({ protocol, port: 514, iface });

// Issue 16 item 3: the first rule that matches decides, following jumps; a specific DROP is not "allows".
describe('netfilter evaluation (recorded iptables-save / nft -j output)', () => {
  it.each([
    ['iptables-specific-drop.txt', pkt('udp'), 'drop', 'rule 3 of chain INPUT (-A INPUT -p udp -m udp --dport 514 -j DROP)'],
    ['iptables-specific-drop.txt', pkt('udp', 'lo'), 'drop', 'rule 3 of chain INPUT (-A INPUT -p udp -m udp --dport 514 -j DROP)'],
    ['iptables-specific-drop.txt', pkt('tcp'), 'accept', 'the ACCEPT policy of chain INPUT'],
    // The source-limited accept applies to some senders only; the jump's chain drops the rest.
    ['iptables-user-chain.txt', pkt('tcp'), 'drop', 'rule 2 of chain LOGDROP (-A LOGDROP -j DROP)'],
    [
      'iptables-user-chain.txt',
      pkt('udp'),
      'accept',
      'rule 4 of chain INPUT (-A INPUT -p udp -m udp --dport 514 -m comment --comment "syslog from anywhere" -j ACCEPT)',
    ],
    ['iptables-open.txt', pkt('tcp'), 'accept', 'rule 2 of chain INPUT (-A INPUT -p tcp -m tcp --dport 514 -j ACCEPT)'],
    ['iptables-open.txt', pkt('udp', 'lo'), 'accept', 'rule 1 of chain INPUT (-A INPUT -i lo -j ACCEPT)'],
  ] as const)('%s %o: %s by %s', (file, p, action, by) => {
    const v = evaluateIptables(parseIptablesSave(fixture(file))!, p);
    expect(v).toMatchObject({ action, by });
  });

  it.each([
    [pkt('udp'), 'drop', 'rule handle 9 of chain syslog_in in table inet filter (udp dport 514 counter drop)'],
    [pkt('udp', 'lo'), 'accept', 'rule handle 6 of chain input in table inet filter (meta iifname lo accept)'],
    [pkt('tcp'), 'accept', 'rule handle 7 of chain input in table inet filter (tcp dport { 22, 514 } accept)'],
  ] as const)('nft-specific-drop.json %o: %s by %s', (p, action, by) => {
    const v = evaluateNft(parseNftJson(fixture('nft-specific-drop.json'))!, p);
    expect(v).toMatchObject({ action, by, chain: 'input', table: { family: 'inet', name: 'filter' } });
  });
});

describe('system.firewall with iptables/nftables rules', () => {
  let root: string;
  beforeEach(async () => {
    root = await makeRoot();
    await healthyTree(root, { adminPort: 1, daemonPort: 514 });
  });
  afterEach(() => cleanup(root));
  const ctxFor = (deps: Partial<TroubleshootDeps>) =>
    new Context(troubleshootOptionsSchema.parse({ configPath: '/etc/sentinel-cef/forwarder.json', probes: 0 }), testDeps(root, deps));

  it('names the iptables rule that drops 514/udp, opens it and persists it where netfilter-persistent exists', async () => {
    const calls: string[] = [];
    const programs: Record<string, object> = { 'iptables-save -t filter': { stdout: fixture('iptables-specific-drop.txt') } };
    const r = await system.checkFirewall(ctxFor({ exec: fakeExec(programs as never, calls) }));
    expect(r.status).toBe('fail');
    expect(r.message).toBe(
      '514/udp is dropped by rule 3 of chain INPUT (-A INPUT -p udp -m udp --dport 514 -j DROP): remote devices cannot reach the daemon',
    );
    expect(r.fix).toBe(
      'iptables -I INPUT 1 -p udp --dport 514 -j ACCEPT; rules added with iptables are lost at reboot: save them with `iptables-save > /etc/iptables/rules.v4` (package iptables-persistent)',
    );
    expect(r.details?.blocked).toEqual(['514/udp']);

    const persistent: Record<string, object> = { ...programs, 'netfilter-persistent': {}, iptables: {} };
    const calls2: string[] = [];
    const exec = fakeExec(persistent as never, calls2);
    const r2 = await system.checkFirewall(ctxFor({ exec }));
    expect(r2.fix).toBe('iptables -I INPUT 1 -p udp --dport 514 -j ACCEPT && netfilter-persistent save');
    await r2.safeFix!.apply();
    expect(calls2.slice(-2)).toEqual(['iptables -I INPUT 1 -p udp --dport 514 -j ACCEPT', 'netfilter-persistent save']);
  });

  it('names the nft rule, inserts the accept in the base chain and says it does not survive a reboot', async () => {
    const r = await system.checkFirewall(
      ctxFor({ exec: fakeExec({ 'nft -j list ruleset': { stdout: fixture('nft-specific-drop.json') } }) }),
    );
    expect(r.status).toBe('fail');
    expect(r.message).toContain('514/udp is dropped by rule handle 9 of chain syslog_in in table inet filter');
    expect(r.fix).toMatch(/^nft insert rule inet filter input udp dport 514 accept; rules added with nft are lost at reboot/);
  });

  it('names nftables when its rule accepts the port and iptables(-nft) shows only empty chains', async () => {
    // As after `troubleshoot --fix` opened the port in an nft ruleset on Debian 12 (fault matrix row firewall-nft).
    const rule = (handle: number, protocol: string) => ({
      rule: {
        family: 'inet',
        table: 'filter',
        chain: 'input',
        handle,
        expr: [{ match: { op: '==', left: { payload: { protocol, field: 'dport' } }, right: 514 } }, { accept: null }],
      },
    });
    const nft = {
      nftables: [
        { table: { family: 'inet', name: 'filter', handle: 1 } },
        { chain: { family: 'inet', table: 'filter', name: 'input', handle: 1, type: 'filter', hook: 'input', prio: 0, policy: 'accept' } },
        rule(6, 'udp'),
        rule(5, 'tcp'),
        {
          rule: {
            family: 'inet',
            table: 'filter',
            chain: 'input',
            handle: 3,
            expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 514 } }, { drop: null }],
          },
        },
      ],
    };
    const r = await system.checkFirewall(
      ctxFor({
        exec: fakeExec({
          'iptables-save -t filter': { stdout: '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' },
          'nft -j list ruleset': { stdout: JSON.stringify(nft) },
        }),
      }),
    );
    expect(r).toMatchObject({ status: 'pass', message: 'nftables allows 514/tcp and /udp' });
  });

  it('passes when the rules accept both transports', async () => {
    const r = await system.checkFirewall(
      ctxFor({ exec: fakeExec({ 'iptables-save -t filter': { stdout: fixture('iptables-open.txt') } }) }),
    );
    expect(r).toMatchObject({ status: 'pass', message: 'iptables allows 514/tcp and /udp' });
  });
});
