import { isIP } from 'node:net';

/**
 * PROXY protocol v1 and v2 headers, as HAProxy (send-proxy, send-proxy-v2), F5, AWS NLB and Azure
 * Private Link send them ahead of a TCP stream: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 *
 * Strict and bounded on purpose: a listener expects one version, every byte is checked as it
 * arrives (a wrong first byte fails at once, not at the timeout), and a header longer than the
 * spec's v1 maximum or MAX_V2_BYTES fails as soon as that is known. Hand-written rather than a
 * package because the forwarder must parse incrementally from a socket with these bounds.
 */
export type ProxyVersion = 'v1' | 'v2';

export interface ProxySource {
  address: string;
  port: number;
}

export type ProxyParse =
  /** Header complete: `length` bytes belong to it; source null for LOCAL/UNKNOWN/UNSPEC (use the peer). */
  { status: 'done'; length: number; source: ProxySource | null } | { status: 'more' } | { status: 'invalid'; reason: string };

/** The v1 spec's maximum: "PROXY UNKNOWN" with the longest TCP6 addresses, CRLF included. */
export const MAX_V1_BYTES = 107;
/** v2 header with its TLVs (AWS, Azure and HAProxy SSL TLVs are a few hundred bytes). */
export const MAX_V2_BYTES = 16 + 4096;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** Parses the start of a connection (call again with more bytes while it answers 'more'). */
export function parseProxyHeader(buf: Buffer, version: ProxyVersion): ProxyParse {
  return version === 'v1' ? parseV1(buf) : parseV2(buf);
}

function prefixMismatch(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.compare(prefix, 0, n, 0, n) !== 0;
}

const PORT = /^(0|[1-9][0-9]{0,4})$/;

function parseV1(buf: Buffer): ProxyParse {
  if (prefixMismatch(buf, V1_PREFIX)) return { status: 'invalid', reason: 'not a PROXY v1 header' };
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0 || end + 2 > MAX_V1_BYTES) {
    if (buf.length >= MAX_V1_BYTES) return { status: 'invalid', reason: `PROXY v1 header longer than ${MAX_V1_BYTES} bytes` };
    if (buf.indexOf(0x0a) >= 0) return { status: 'invalid', reason: 'PROXY v1 header not ended by CRLF' };
    return { status: 'more' };
  }
  const line = buf.toString('latin1', 0, end);
  const length = end + 2;
  const parts = line.split(' ');
  if (parts[1] === 'UNKNOWN') return { status: 'done', length, source: null };
  if (parts.length !== 6) return { status: 'invalid', reason: 'malformed PROXY v1 header' };
  const [, proto, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (family === 0) return { status: 'invalid', reason: `PROXY v1 protocol '${proto.slice(0, 8)}' is not TCP4, TCP6 or UNKNOWN` };
  if (isIP(src) !== family || isIP(dst) !== family) return { status: 'invalid', reason: `PROXY v1 address is not ${proto}` };
  if (!PORT.test(sport) || !PORT.test(dport) || Number(sport) > 65535 || Number(dport) > 65535)
    return { status: 'invalid', reason: 'PROXY v1 port out of range' };
  return { status: 'done', length, source: { address: src, port: Number(sport) } };
}

function parseV2(buf: Buffer): ProxyParse {
  if (prefixMismatch(buf, V2_SIG)) return { status: 'invalid', reason: 'not a PROXY v2 header' };
  if (buf.length < 16) return { status: 'more' };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { status: 'invalid', reason: `PROXY v2 version ${verCmd >> 4}` };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { status: 'invalid', reason: `PROXY v2 command ${cmd}` };
  const fam = buf[13]!;
  const length = 16 + buf.readUInt16BE(14);
  if (length > MAX_V2_BYTES) return { status: 'invalid', reason: `PROXY v2 header longer than ${MAX_V2_BYTES} bytes` };
  if (buf.length < length) return { status: 'more' };
  // LOCAL: the balancer's own connection (health checks); the address block is to be ignored.
  if (cmd === 0) return { status: 'done', length, source: null };
  let source: ProxySource | null;
  let tlvStart: number;
  if (fam === 0x11) {
    if (length < 16 + 12) return { status: 'invalid', reason: 'PROXY v2 TCP4 address block too short' };
    source = { address: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`, port: buf.readUInt16BE(24) };
    tlvStart = 28;
  } else if (fam === 0x21) {
    if (length < 16 + 36) return { status: 'invalid', reason: 'PROXY v2 TCP6 address block too short' };
    source = { address: formatIpv6(buf.subarray(16, 32)), port: buf.readUInt16BE(48) };
    tlvStart = 52;
  } else if ((fam & 0x0f) === 0x02) {
    return { status: 'invalid', reason: 'PROXY v2 header for a datagram connection on a stream listener' };
  } else if (fam !== 0x00 && fam !== 0x31) {
    return { status: 'invalid', reason: `PROXY v2 address family 0x${fam.toString(16)}` };
  } else {
    // UNSPEC or a UNIX socket: nothing usable; keep the connection's own addresses (as the spec says).
    return { status: 'done', length, source: null };
  }
  for (let i = tlvStart; i < length;) {
    if (i + 3 > length) return { status: 'invalid', reason: 'PROXY v2 TLV truncated' };
    i += 3 + buf.readUInt16BE(i + 1);
    if (i > length) return { status: 'invalid', reason: 'PROXY v2 TLV longer than the header' };
  }
  return { status: 'done', length, source };
}

function formatIpv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // The WHATWG URL parser gives the canonical compressed form.
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}
