import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Context } from '../../src/troubleshoot/context.js';
import * as system from '../../src/troubleshoot/checks/system.js';
import { evaluateIptables, evaluateNft, parseIptablesSave, parseNftJson, type Packet } from '../../src/troubleshoot/netfilter.js';
import { troubleshootOptionsSchema, type TroubleshootDeps } from '../../src/troubleshoot/types.js';
import { cleanup, healthyTree, makeRoot, testDeps } from './helpers.js';
import { commandLines, fakeExec } from '../helpers/fake-exec.js';

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
    const programs: Record<string, object> = { 'iptables-save -t filter': { stdout: fixture('iptables-specific-drop.txt') } };
    const r = await system.checkFirewall(ctxFor({ exec: fakeExec(programs as never) }));
    expect(r.status).toBe('fail');
    expect(r.message).toBe(
      '514/udp is dropped by rule 3 of chain INPUT (-A INPUT -p udp -m udp --dport 514 -j DROP): remote devices cannot reach the daemon',
    );
    expect(r.fix).toBe(
      'iptables -I INPUT 1 -p udp --dport 514 -j ACCEPT; rules added with iptables are lost at reboot: save them with `iptables-save > /etc/iptables/rules.v4` (package iptables-persistent)',
    );
    expect(r.details?.blocked).toEqual(['514/udp']);

    const persistent: Record<string, object> = { ...programs, 'netfilter-persistent': {}, iptables: {} };
    const exec = fakeExec(persistent as never);
    const r2 = await system.checkFirewall(ctxFor({ exec }));
    expect(r2.fix).toBe('iptables -I INPUT 1 -p udp --dport 514 -j ACCEPT && netfilter-persistent save');
    await r2.safeFix!.apply();
    expect(commandLines(exec.calls).slice(-2)).toEqual(['iptables -I INPUT 1 -p udp --dport 514 -j ACCEPT', 'netfilter-persistent save']);
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

// Issue 16: the IPv6 rules were never read, so an ip6tables DROP on 514 was "allowed". Fixtures captured in the
// sandbox (ip6tables 1.8.9 nf_tables, nft 1.0.6): ip6tables-save, the same rules as nft sees them, and an inet table
// with family-specific rules.
describe('IPv6 rules (ip6tables-save, nft ip6 and inet tables)', () => {
  const v6 = (protocol: 'tcp' | 'udp', iface: 'ext' | 'lo' = 'ext'): Packet => ({ protocol, port: 514, iface, family: 6 });

  it.each([
    [v6('tcp'), 'drop', 'rule 3 of chain INPUT (-A INPUT -p tcp -m tcp --dport 514 -j DROP)'],
    [v6('udp'), 'drop', 'rule 4 of chain INPUT (-A INPUT -p udp -m udp --dport 514 -j DROP)'],
    [v6('tcp', 'lo'), 'accept', 'rule 1 of chain INPUT (-A INPUT -i lo -j ACCEPT)'],
  ] as const)('ip6tables-specific-drop.txt %o: %s by %s', (p, action, by) => {
    expect(evaluateIptables(parseIptablesSave(fixture('ip6tables-specific-drop.txt'))!, p)).toMatchObject({ action, by });
  });

  it.each([
    [pkt('tcp'), 'accept', 'rule handle 6 of chain input in table inet filter (ip protocol tcp tcp dport 514 accept)'],
    [pkt('udp'), 'accept', 'the accept policy of chain input in table inet filter'],
    // fd00::/8 senders only: not a verdict for every device, so the next rule decides.
    [v6('tcp'), 'drop', 'rule handle 7 of chain input in table inet filter (ip6 nexthdr tcp tcp dport 514 drop)'],
    [v6('udp'), 'drop', 'rule handle 4 of chain input in table inet filter (meta nfproto ipv6 udp dport 514 drop)'],
  ] as const)('nft-inet-ipv6-drop.json %o: %s by %s', (p, action, by) => {
    expect(evaluateNft(parseNftJson(fixture('nft-inet-ipv6-drop.json'))!, p)).toMatchObject({ action, by });
  });

  it('evaluates the ip6 table that ip6tables-nft writes for IPv6 packets only', () => {
    const chains = parseNftJson(fixture('nft-ip6tables-nft.json'))!;
    expect(evaluateNft(chains, v6('udp'))).toMatchObject({ action: 'drop', table: { family: 'ip6', name: 'filter' } });
    expect(evaluateNft(chains, pkt('udp'))?.action ?? 'accept').toBe('accept');
  });

  const root = { dir: '' };
  beforeEach(async () => {
    root.dir = await makeRoot();
    await healthyTree(root.dir, { adminPort: 1, daemonPort: 514 });
  });
  afterEach(() => cleanup(root.dir));
  const ctxFor = (deps: Partial<TroubleshootDeps>) =>
    new Context(troubleshootOptionsSchema.parse({ configPath: '/etc/sentinel-cef/forwarder.json', probes: 0 }), testDeps(root.dir, deps));
  const EMPTY = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';

  it('names the ip6tables rules that drop 514 over IPv6 and opens them with ip6tables', async () => {
    const programs: Record<string, object> = {
      'iptables-save -t filter': { stdout: EMPTY },
      'ip6tables-save -t filter': { stdout: fixture('ip6tables-specific-drop.txt') },
    };
    const r = await system.checkFirewall(ctxFor({ exec: fakeExec(programs as never) }));
    expect(r.status).toBe('fail');
    expect(r.message).toBe(
      '514/tcp over IPv6 is dropped by rule 3 of chain INPUT (-A INPUT -p tcp -m tcp --dport 514 -j DROP); ' +
        '514/udp over IPv6 is dropped by rule 4 of chain INPUT (-A INPUT -p udp -m udp --dport 514 -j DROP): remote devices cannot reach the daemon',
    );
    expect(r.fix).toBe(
      'ip6tables -I INPUT 1 -p tcp --dport 514 -j ACCEPT && ip6tables -I INPUT 1 -p udp --dport 514 -j ACCEPT; ' +
        'rules added with ip6tables are lost at reboot: save them with `ip6tables-save > /etc/iptables/rules.v6` (package iptables-persistent)',
    );
    expect(r.details?.blocked).toEqual(['514/tcp over IPv6', '514/udp over IPv6']);
    const calls: string[][] = [];
    const r2 = await system.checkFirewall(
      ctxFor({ exec: fakeExec({ ...programs, 'netfilter-persistent': {}, ip6tables: {} } as never, { calls }) }),
    );
    expect(r2.fix).toBe(
      'ip6tables -I INPUT 1 -p tcp --dport 514 -j ACCEPT && ip6tables -I INPUT 1 -p udp --dport 514 -j ACCEPT && netfilter-persistent save',
    );
    await r2.safeFix!.apply();
    expect(commandLines(calls).slice(-3)).toEqual([
      'ip6tables -I INPUT 1 -p tcp --dport 514 -j ACCEPT',
      'ip6tables -I INPUT 1 -p udp --dport 514 -j ACCEPT',
      'netfilter-persistent save',
    ]);
  });

  it('says once a drop that an inet rule makes for both families, and "over IPv6" for one it makes for IPv6 only', async () => {
    const both = await system.checkFirewall(
      ctxFor({ exec: fakeExec({ 'nft -j list ruleset': { stdout: fixture('nft-specific-drop.json') } }) }),
    );
    expect(both.details?.blocked).toEqual(['514/udp']);
    expect(both.fix).toMatch(/^nft insert rule inet filter input udp dport 514 accept; /);
    const only6 = await system.checkFirewall(
      ctxFor({ exec: fakeExec({ 'nft -j list ruleset': { stdout: fixture('nft-inet-ipv6-drop.json') } }) }),
    );
    expect(only6.details?.blocked).toEqual(['514/tcp over IPv6', '514/udp over IPv6']);
    expect(only6.fix).toMatch(
      /^nft insert rule inet filter input tcp dport 514 accept && nft insert rule inet filter input udp dport 514 accept; rules added with nft/,
    );
  });
});
