/**
 * Parser throughput: lines/s and MB/s, single thread, over a generated corpus of realistic CEF events
 * (300–1,000 bytes) framed as rsyslog forwards them (RFC 5424, RSYSLOG_SyslogProtocol23Format).
 * Also the forwarder's path, lineJsonParser (row JSON written straight into a buffer), with the
 * WebAssembly kernel and with the JavaScript loops.
 * Run: npm run bench-parse [-- --lines 20000 --rounds 7]
 */
import { lineJsonParser, parseLine, type CslRow, type JsonTarget } from '../src/parser/index.js';
import { setJsonKernel } from '../src/parser/cef.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? def : Number(args[i + 1]);
};
const LINES = opt('lines', 20_000);
const ROUNDS = opt('rounds', 7);

// Small deterministic PRNG so every run parses the same corpus.
let seed = 0x2f6b_1d3e;
const rnd = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 4294967296;
};
const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)];
const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
const ip = () => `${int(1, 223)}.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}`;
const word = () => pick(['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet']);
const user = () => `${word()}.${word()}@corp.example`;

const templates: Array<() => string> = [
  // Palo Alto TRAFFIC
  () =>
    `0|Palo Alto Networks|PAN-OS|10.2.3|end|TRAFFIC|1|rt=Nov 22 2026 10:00:${String(int(10, 59))} GMT deviceExternalId=0123456789 src=${ip()} dst=${ip()} sourceTranslatedAddress=${ip()} destinationTranslatedAddress=${ip()} cs1Label=Rule cs1=allow-${word()} suser=${user()} duser= app=ssl cs3Label=Virtual System cs3=vsys1 cs4Label=Source Zone cs4=trust cs5Label=Destination Zone cs5=untrust deviceInboundInterface=ethernet1/2 deviceOutboundInterface=ethernet1/1 cs6Label=LogProfile cs6=default cn1Label=SessionID cn1=${int(1, 9999999)} cnt=1 spt=${int(1024, 65535)} dpt=443 sourceTranslatedPort=${int(1024, 65535)} destinationTranslatedPort=443 flexString1Label=Flags flexString1=0x400019 proto=tcp act=allow flexNumber1Label=Total bytes flexNumber1=${int(100, 999999)} in=${int(100, 99999)} out=${int(100, 99999)} cn2Label=Packets cn2=${int(1, 999)} PanOSPacketsReceived=${int(1, 500)} PanOSPacketsSent=${int(1, 500)} start=Nov 22 2026 09:59:${String(int(10, 59))} GMT cn3Label=Elapsed time in seconds cn3=${int(0, 600)} cs2Label=URL Category cs2=${word()}-sites externalId=${int(1, 99999999)} reason=tcp-fin`,
  // Check Point
  () =>
    `0|Check Point|VPN-1 & FireWall-1|Check Point|Log|https|Unknown|act=Accept destinationTranslatedAddress=0.0.0.0 destinationTranslatedPort=0 deviceDirection=${int(0, 1)} rt=${1763805600000 + int(0, 999999)} sourceTranslatedAddress=${ip()} sourceTranslatedPort=${int(1024, 65535)} spt=${int(1024, 65535)} dpt=443 cs2Label=Rule Name cs2=Outbound-${word()} layer_name=Network layer_uuid=8e6ba6f2-2a3c-4b5e-8f1d-0c5b6a7e9d21 match_id=${int(1, 99)} parent_rule=0 rule_action=Accept rule_uid=4a6e5f3c-9b8d-4e7f-a1b2-c3d4e5f60718 ifname=eth1 logid=0 loguid={0x5e8f,0x1,0x2,0x3} origin=${ip()} originsicname=cn\\=fw01,o\\=mgmt..abc sequencenum=${int(1, 999)} version=5 dst=${ip()} inzone=Internal nat_addtnl_rulenum=1 nat_rule_uid=0 nat_rulenum=${int(1, 99)} outzone=External product=VPN-1 & FireWall-1 proto=6 service_id=https src=${ip()}`,
  // Fortinet
  () =>
    `0|Fortinet|Fortigate|v7.2.5|00013|traffic:forward close|3|deviceExternalId=FGT60F0000000000 FTNTFGTlogid=0000000013 cat=traffic:forward FTNTFGTsubtype=forward FTNTFGTlevel=notice FTNTFGTvd=root FTNTFGTeventtime=${1763805600000000000 + int(0, 999999)} FTNTFGTtz=+0000 src=${ip()} shost=${word()}-pc spt=${int(1024, 65535)} deviceInboundInterface=port2 FTNTFGTsrcintfrole=lan dst=${ip()} dpt=443 deviceOutboundInterface=wan1 FTNTFGTdstintfrole=wan FTNTFGTsrccountry=Reserved FTNTFGTdstcountry=United States externalId=${int(1, 99999999)} proto=6 act=close FTNTFGTpolicyid=1 FTNTFGTpolicytype=policy FTNTFGTpoluuid=2b0c3e4a-1d2f-51ee-8a9b-0c1d2e3f4a5b app=HTTPS FTNTFGTtrandisp=snat sourceTranslatedAddress=${ip()} sourceTranslatedPort=${int(1024, 65535)} FTNTFGTduration=${int(1, 999)} out=${int(100, 99999)} in=${int(100, 99999)} FTNTFGTsentpkt=${int(1, 99)} FTNTFGTrcvdpkt=${int(1, 99)}`,
  // Darktrace model breach
  () =>
    `0|Darktrace|DCIP|6.1.${int(0, 9)}|${int(100, 999)}|Anomalous Connection::Unusual Admin SMB Session|${int(1, 10)}|externalId=${int(1, 999999)} dvc=${ip()} dvchost=${word()}-srv.corp.example src=${ip()} shost=${word()}-ws.corp.example cs1Label=modelUrl cs1=https://darktrace.corp.example/#modelbreach/${int(1, 99999)} cs2Label=breachUrl cs2=https://darktrace.corp.example/#modelbreach/${int(1, 99999)} cs3Label=threatScore cs3=${int(1, 100)} msg=The device ${word()}-ws made an unusual SMB session to ${word()}-srv using admin credentials rt=${1763805600000 + int(0, 999999)} cat=Anomalous Connection`,
  // Thycotic Secret Server
  () =>
    `0|Thycotic Software|Secret Server|11.4.000002|500|SECRET - VIEW|2|msg=[[SecretServer]] Event: [Secret] Action: [View] By User: ${word()} Item name: ${word()} server (Item Id: ${int(1, 9999)}) Container name: IT Admin (Container Id: ${int(1, 99)}) Machine: ${word()}-SS01 suser=${word()} suid=${int(1, 999)} cs4=${word()} ${word()} cs4Label=Suser Display Name src=${ip()} rt=Nov 22 2026 10:00:${String(int(10, 59))} fname=${word()} server fileId=${int(1, 9999)} fileType=Secret`,
];

function framed(): string {
  const body = pick(templates)();
  const host = `${pick(['fw', 'edge', 'core', 'dc'])}${int(1, 40)}.corp.example`;
  const ts = `2026-11-22T10:00:${String(int(10, 59))}.${String(int(100000, 999999))}+00:00`;
  return `<${pick([132, 134, 164, 166])}>1 ${ts} ${host} CEF - - -  ${body}`;
}

const corpus: string[] = [];
let bytes = 0;
while (corpus.length < LINES) {
  const l = framed();
  const n = Buffer.byteLength(l);
  if (n < 300 || n > 1000) continue;
  corpus.push(l);
  bytes += n;
}
const buffers = corpus.map((l) => Buffer.from(l));
const at = new Date('2026-11-22T10:00:30Z');

// Sanity: every line must parse, or the figures mean nothing.
for (const l of corpus) {
  const r = parseLine(l, at);
  if (!r.ok) throw new Error(`bench corpus line failed to parse (${r.reason}): ${l}`);
}

let sink = 0;
/** Wall seconds and process CPU seconds (all threads, so GC helpers count against us) of one round. */
type Timing = { wall: number; cpu: number };
function timed(fn: () => void): Timing {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6 };
}
function roundParse(input: ReadonlyArray<string | Buffer>): Timing {
  return timed(() => {
    for (let i = 0; i < input.length; i++) {
      const r = parseLine(input[i], at);
      if (r.ok) sink += r.row.DeviceVendor === undefined ? 0 : 1;
    }
  });
}
const rows: CslRow[] = corpus.map((l) => (parseLine(l, at) as { ok: true; row: CslRow }).row);
function roundStringify(): Timing {
  return timed(() => {
    for (let i = 0; i < rows.length; i++) sink += JSON.stringify(rows[i]).length;
  });
}

// The forwarder's path: rows' JSON into one reused buffer (the sink's chunks are not what is measured).
const parseJson = lineJsonParser({ maxFieldBytes: 64 * 1024, maxColumns: 500 });
const out = Buffer.allocUnsafe(1 << 22);
const target: JsonTarget = {
  at: 0,
  room(n: number) {
    if (this.at + n > out.length) this.at = 0;
    return out;
  },
};
for (const b of buffers) {
  const r = parseJson(b, at, target);
  if (!('kind' in r) || r.kind !== 'json') throw new Error('bench corpus line not written as JSON');
}
function roundJson(): Timing {
  return timed(() => {
    for (let i = 0; i < buffers.length; i++) {
      const r = parseJson(buffers[i], at, target);
      if (r.ok) sink += r.kind === 'json' ? 1 : 0;
    }
  });
}

function measure(name: string, round: () => Timing): void {
  for (let i = 0; i < 3; i++) round(); // warm-up: let the JIT settle
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t = round();
    wall.push(LINES / t.wall);
    cpu.push(LINES / t.cpu);
  }
  const fmt = (rates: number[]) => {
    rates.sort((a, b) => a - b);
    const best = rates[rates.length - 1];
    const median = rates[Math.floor(rates.length / 2)];
    const mb = (r: number) => ((r * bytes) / LINES / 1e6).toFixed(1);
    const n = (r: number) => Math.round(r).toLocaleString('en-US').padStart(9);
    return `best ${n(best)} lines/s ${mb(best).padStart(6)} MB/s, median ${n(median)} lines/s ${mb(median).padStart(6)} MB/s`;
  };
  console.log(`${name.padEnd(30)} wall: ${fmt(wall)}`);
  console.log(`${''.padEnd(30)} cpu:  ${fmt(cpu)}`);
}

console.log('wall = elapsed time; cpu = process CPU time (the fairer figure when other processes share the cores)');
console.log(
  `corpus: ${LINES.toLocaleString('en-US')} lines, ${(bytes / 1e6).toFixed(1)} MB, mean ${Math.round(bytes / LINES)} bytes/line; ` +
    `${ROUNDS} rounds after 3 warm-up rounds; node ${process.version}`,
);
measure('parseLine(string)', () => roundParse(corpus));
measure('parseLine(Buffer)', () => roundParse(buffers));
measure('baseline: JSON.stringify(row)', roundStringify);
if (!setJsonKernel(true)) throw new Error('the WebAssembly kernel does not load here');
measure('lineJsonParser, kernel', roundJson);
setJsonKernel(false);
measure('lineJsonParser, JS loops', roundJson);
setJsonKernel(true);
if (sink === 42) console.log('');
