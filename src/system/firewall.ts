import type { Exec } from './exec.js';

export type FirewallKind = 'firewalld' | 'ufw' | 'none';

export interface FirewallState {
  kind: FirewallKind;
  active: boolean;
  /** Ports/protocols already allowed, as "514/udp". */
  allowed: string[];
}

export interface PortSpec {
  port: number;
  protocol: 'tcp' | 'udp';
}

/** firewalld (firewall-cmd --state) or ufw (ufw status), whichever is active. */
export async function detectFirewall(exec: Exec): Promise<FirewallState> {
  if (await exec.which('firewall-cmd')) {
    const state = await exec.run('firewall-cmd', ['--state'], { timeoutMs: 15_000 });
    if (state.exitCode === 0 && state.stdout.trim() === 'running') {
      const ports = await exec.run('firewall-cmd', ['--list-ports'], { timeoutMs: 15_000 });
      const services = await exec.run('firewall-cmd', ['--list-services'], { timeoutMs: 15_000 });
      const allowed = ports.stdout.split(/\s+/).filter(Boolean);
      if (/\bsyslog\b/.test(services.stdout)) allowed.push('514/udp');
      return { kind: 'firewalld', active: true, allowed };
    }
  }
  if (await exec.which('ufw')) {
    const st = await exec.run('ufw', ['status'], { timeoutMs: 15_000 });
    if (st.exitCode === 0 && /Status:\s*active/i.test(st.stdout)) {
      const allowed = [...st.stdout.matchAll(/^(\d+)(?:\/(tcp|udp))?\s+ALLOW/gim)].flatMap((m) =>
        m[2] ? [`${m[1]}/${m[2]}`] : [`${m[1]}/tcp`, `${m[1]}/udp`],
      );
      return { kind: 'ufw', active: true, allowed };
    }
  }
  return { kind: 'none', active: false, allowed: [] };
}

/** Commands that open the given ports, for what is not already allowed. Empty when nothing is needed. */
export function planFirewallFix(state: FirewallState, ports: PortSpec[]): string[][] {
  if (!state.active) return [];
  const missing = ports.filter((p) => !state.allowed.includes(`${p.port}/${p.protocol}`));
  if (missing.length === 0) return [];
  if (state.kind === 'firewalld') {
    return [...missing.map((p) => ['firewall-cmd', '--permanent', `--add-port=${p.port}/${p.protocol}`]), ['firewall-cmd', '--reload']];
  }
  return missing.map((p) => ['ufw', 'allow', `${p.port}/${p.protocol}`]);
}
