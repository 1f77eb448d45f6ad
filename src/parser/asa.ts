/**
 * Cisco ASA / FTD syslog messages (`%ASA-6-302013: Built …`) → CommonSecurityLog rows, the way Microsoft's
 * CEF collector files them: DeviceVendor Cisco, DeviceProduct ASA/FTD, DeviceEventClassID the message id,
 * LogSeverity the level, Message the full text. Addresses are extracted only for message ids whose layout
 * Cisco documents unambiguously ("Cisco Secure Firewall ASA Series Syslog Messages"); Message stays intact.
 */
import type { CslRow } from './types.js';

export interface AsaMatch {
  product: 'ASA' | 'FTD';
  level: string;
  id: string;
  textStart: number;
}

/** Finds `%ASA-<level>-<id>:` or `%FTD-<level>-<id>:` at or after `from`. */
export function findAsa(s: string, from: number): AsaMatch | undefined {
  let p = s.indexOf('%', from);
  while (p !== -1) {
    const prod = s.slice(p + 1, p + 5);
    if (prod === 'ASA-' || prod === 'FTD-') {
      const m = ASA_TAG.exec(s.slice(p + 5, p + 40));
      if (m) {
        let q = p + 5 + m[0].length;
        while (q < s.length && (s.charCodeAt(q) === 32 || s.charCodeAt(q) === 58)) q++;
        return { product: prod === 'ASA-' ? 'ASA' : 'FTD', level: m[1], id: m[2], textStart: q };
      }
    }
    p = s.indexOf('%', p + 1);
  }
  return undefined;
}

// Optional lower-case class (`%ASA-session-6-…` with `logging … class`), level 0-7, message id.
const ASA_TAG = /^(?:[a-z]+-)?([0-7])-(\d{4,7})(?::|$|\s)/;

/** Fill `row` from an ASA/FTD message; `row` already holds TimeGenerated and Computer. */
export function fillAsaRow(row: CslRow, s: string, m: AsaMatch): void {
  row.DeviceVendor = 'Cisco';
  row.DeviceProduct = m.product;
  row.DeviceEventClassID = m.id;
  row.LogSeverity = m.level;
  const text = s.slice(m.textStart).trimEnd();
  if (text !== '') row.Message = text;
  const extract = EXTRACTORS[m.id];
  if (extract && text !== '') extract(row, text);
}

type Extractor = (row: CslRow, text: string) => void;

const IP = '([0-9A-Fa-f:.]+)';
const INTF = '([^\\s:/]+)';

function port(row: CslRow, col: string, v: string | undefined): void {
  if (v === undefined) return;
  const n = Number(v);
  if (Number.isInteger(n) && n >= 0 && n <= 65535) row[col] = n;
}

// 302013/302015 Built {inbound|outbound} {TCP|UDP} connection id for intf:real/port (mapped/port) to
// intf:real/port (mapped/port). For outbound connections the initiator is the second endpoint.
const BUILT = new RegExp(
  `^Built (inbound|outbound) (TCP|UDP) connection \\d+ for ${INTF}:${IP}/(\\d+) \\(${IP}/(\\d+)\\)(?: \\([^)]*\\))? to ${INTF}:${IP}/(\\d+) \\(${IP}/(\\d+)\\)`,
);
const built: Extractor = (row, text) => {
  const m = BUILT.exec(text);
  if (!m) return;
  const first = { intf: m[3], ip: m[4], port: m[5], mip: m[6], mport: m[7] };
  const second = { intf: m[8], ip: m[9], port: m[10], mip: m[11], mport: m[12] };
  const [src, dst] = m[1] === 'inbound' ? [first, second] : [second, first];
  row.Protocol = m[2];
  row.CommunicationDirection = m[1] === 'inbound' ? 'Inbound' : 'Outbound';
  row.SourceIP = src.ip;
  port(row, 'SourcePort', src.port);
  row.DestinationIP = dst.ip;
  port(row, 'DestinationPort', dst.port);
  row.DeviceInboundInterface = src.intf;
  row.DeviceOutboundInterface = dst.intf;
  if (src.mip !== src.ip || src.mport !== src.port) {
    row.SourceTranslatedAddress = src.mip;
    port(row, 'SourceTranslatedPort', src.mport);
  }
  if (dst.mip !== dst.ip || dst.mport !== dst.port) {
    row.DestinationTranslatedAddress = dst.mip;
    port(row, 'DestinationTranslatedPort', dst.mport);
  }
};

// 106023 Deny protocol src intf:addr[/port] [(user)] dst intf:addr[/port] [(user)] … by access-group "acl"
const DENY_ACL = new RegExp(
  `^Deny (\\S+) src ${INTF}:${IP}(?:/(\\d+))?(?: \\([^)]*\\))? dst ${INTF}:${IP}(?:/(\\d+))?`,
);
const denyAcl: Extractor = (row, text) => {
  const m = DENY_ACL.exec(text);
  if (!m) return;
  row.DeviceAction = 'Deny';
  row.Protocol = m[1];
  row.DeviceInboundInterface = m[2];
  row.SourceIP = m[3];
  port(row, 'SourcePort', m[4]);
  row.DestinationIP = m[6];
  port(row, 'DestinationPort', m[7]);
};

// 106100 access-list acl {permitted|denied|est-allowed} proto intf/addr(port) [(user)] -> intf/addr(port)
const ACL_HIT = new RegExp(
  `^access-list (\\S+) (permitted|denied|est-allowed) (\\S+) ${INTF}/${IP}\\((\\d+)\\)(?: \\([^)]*\\))? -> ${INTF}/${IP}\\((\\d+)\\)`,
);
const aclHit: Extractor = (row, text) => {
  const m = ACL_HIT.exec(text);
  if (!m) return;
  row.DeviceAction = m[2];
  row.Protocol = m[3];
  row.DeviceInboundInterface = m[4];
  row.SourceIP = m[5];
  port(row, 'SourcePort', m[6]);
  row.DeviceOutboundInterface = m[7];
  row.DestinationIP = m[8];
  port(row, 'DestinationPort', m[9]);
};

// 106001 Inbound TCP connection denied from addr/port to addr/port flags … on interface intf
// 106006/106007 Deny inbound UDP from addr/port to addr/port …
// 106015 Deny TCP (no connection) from addr/port to addr/port flags … on interface intf
const FROM_TO = new RegExp(
  `^(?:Inbound (TCP) connection denied|Deny inbound (UDP)|Deny (TCP) \\(no connection\\)) from ${IP}/(\\d+) to ${IP}/(\\d+)`,
);
const fromTo: Extractor = (row, text) => {
  const m = FROM_TO.exec(text);
  if (!m) return;
  row.DeviceAction = 'Deny';
  row.Protocol = m[1] ?? m[2] ?? m[3];
  row.SourceIP = m[4];
  port(row, 'SourcePort', m[5]);
  row.DestinationIP = m[6];
  port(row, 'DestinationPort', m[7]);
};

// FTD 430001–430005 (intrusion, connection, file, malware events) write `Name: value` pairs separated by
// `, `; only the unambiguous address, port and action fields are lifted out.
const FTD_FIELD = /(?:^|, )(SrcIP|DstIP|SrcPort|DstPort|Protocol|AccessControlRuleAction): ([^,]*)/g;
const ftdEvent: Extractor = (row, text) => {
  for (const m of text.matchAll(FTD_FIELD)) {
    const v = m[2].trim();
    if (v === '') continue;
    switch (m[1]) {
      case 'SrcIP':
        row.SourceIP ??= v;
        break;
      case 'DstIP':
        row.DestinationIP ??= v;
        break;
      case 'SrcPort':
        if (row.SourcePort === undefined) port(row, 'SourcePort', v);
        break;
      case 'DstPort':
        if (row.DestinationPort === undefined) port(row, 'DestinationPort', v);
        break;
      case 'Protocol':
        row.Protocol ??= v;
        break;
      case 'AccessControlRuleAction':
        row.DeviceAction ??= v;
        break;
    }
  }
};

const EXTRACTORS: Record<string, Extractor> = {
  '430001': ftdEvent,
  '430002': ftdEvent,
  '430003': ftdEvent,
  '430004': ftdEvent,
  '430005': ftdEvent,
  '302013': built,
  '302015': built,
  '106023': denyAcl,
  '106100': aclHit,
  '106001': fromTo,
  '106006': fromTo,
  '106007': fromTo,
  '106015': fromTo,
};
