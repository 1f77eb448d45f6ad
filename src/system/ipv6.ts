import type { FsRoot } from './fs-root.js';

/**
 * How a daemon can listen on IPv6 here. `none`: the kernel has no IPv6 (or no address), so a v6 socket would fail
 * to bind. `dual-stack`: net.ipv6.bindv6only is 0, so a socket on [::] also takes IPv4 (as ::ffff:a.b.c.d) and a
 * second one on 0.0.0.0 would collide with it (syslog-ng sets no IPV6_V6ONLY). `separate`: v6 sockets are v6-only.
 */
export type Ipv6Mode = 'none' | 'dual-stack' | 'separate';

export async function detectIpv6(fs: FsRoot): Promise<Ipv6Mode> {
  const addrs = await fs.readText('/proc/net/if_inet6').catch(() => null);
  if (!addrs || addrs.trim() === '') return 'none';
  const v6only = await fs.readText('/proc/sys/net/ipv6/bindv6only').catch(() => null);
  return v6only?.trim() === '1' ? 'separate' : 'dual-stack';
}
