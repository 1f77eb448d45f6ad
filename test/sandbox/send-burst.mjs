// Sends N CEF messages to 127.0.0.1:514 over UDP (one datagram each) or TCP (newline-framed, one connection),
// cycling through the forms devices send: RFC 3164 with HOSTNAME, RFC 5424, RFC 5424 with the `CEF:` tag as
// APP-NAME, bare `CEF:` text with and without PRI, some with a trailing newline or NUL. cs1 carries the
// sequence number so the test can count every message exactly once.
// Usage: node send-burst.mjs udp|tcp COUNT TAG [HOST [FRAMING]]  (HOST 127.0.0.1 by default, ::1 for IPv6; TCP
// FRAMING newline by default, or octet for RFC 6587 octet counting, which syslog() sources expect)
import dgram from 'node:dgram';
import net from 'node:net';

const [proto, countArg, tag, host = '127.0.0.1', framing = 'newline'] = process.argv.slice(2);
const v6 = host.includes(':');
const count = Number(countArg);
const FORMS = [
  (i) => `<134>Dec  6 10:00:00 fw01 CEF:0|Acme|FW|1.0|100|${tag}|5|cs1Label=seq cs1=${i} src=10.0.0.1`,
  (i) => `<134>1 2026-12-06T10:00:00.000Z fw01 firewall - - - CEF:0|Acme|FW|1.0|100|${tag}|5|cs1Label=seq cs1=${i}`,
  (i) => `<134>1 2026-12-06T10:00:00.000Z fw01 CEF: - - - 0|Acme|FW|1.0|100|${tag}|5|cs1Label=seq cs1=${i}`,
  (i) => `CEF:0|Acme|FW|1.0|100|${tag}|5|cs1Label=seq cs1=${i}`,
  (i) => `<134>CEF:0|Acme|FW|1.0|100|${tag}|5|cs1Label=seq cs1=${i}`,
  (i) => `<134>Dec  6 10:00:00 fw01 CEF:0|Acme|FW|1.0|100|${tag}|5|cs1Label=seq cs1=${i}\n`,
  (i) => `<134>Dec  6 10:00:00 fw01 CEF:0|Acme|FW|1.0|100|${tag}|5|cs1Label=seq cs1=${i}\0`,
];
const message = (i) => FORMS[i % FORMS.length](i);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (proto === 'udp') {
  const sock = dgram.createSocket(v6 ? 'udp6' : 'udp4');
  for (let i = 0; i < count; i++) {
    await new Promise((res, rej) => sock.send(Buffer.from(message(i)), 514, host, (e) => (e ? rej(e) : res())));
    // Paced so the daemon's socket buffer never overflows on a loaded machine: what goes missing is the limiter's doing.
    if (i % 20 === 19) await sleep(2);
  }
  sock.close();
} else {
  const sock = net.connect(514, host);
  await new Promise((res, rej) => sock.once('connect', res).once('error', rej));
  for (let i = 0; i < count; i++) {
    // Newline framing: a message's own trailing newline or NUL would end it early, so send the text alone.
    const m = framing === 'octet' ? message(i) : message(i).replace(/[\n\0]$/, '');
    const frame = framing === 'octet' ? `${Buffer.byteLength(m)} ${m}` : `${m}\n`;
    if (!sock.write(frame)) await new Promise((r) => sock.once('drain', r));
  }
  await new Promise((r) => sock.end(r));
}
