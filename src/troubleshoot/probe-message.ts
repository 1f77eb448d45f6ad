import { hostname } from 'node:os';
import { PROBE_ID_KEY, PROBE_ID_LABEL, PROBE_VENDOR } from '../forwarder/admin-types.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * A probe in the shape Microsoft's troubleshooter sent with `logger -p local4.warn -t CEF:` (RFC 3164,
 * PRI 164), carrying its id as cs2 with cs2Label=ProbeId so the forwarder can report on it.
 */
export function buildProbeMessage(id: string, now: Date, host = hostname()): string {
  const ts = `${MONTHS[now.getMonth()]} ${String(now.getDate()).padStart(2, ' ')} ${[now.getHours(), now.getMinutes(), now.getSeconds()]
    .map((n) => String(n).padStart(2, '0'))
    .join(':')}`;
  const ext = [
    `rt=${now.getTime()}`,
    'deviceExternalId=0002D01655',
    'src=1.1.1.1',
    'dst=2.2.2.2',
    'sourceTranslatedAddress=1.1.1.1',
    'destinationTranslatedAddress=3.3.3.3',
    'cs1Label=Rule',
    'cs1=CEF_TEST_InternetDNS',
    `${PROBE_ID_KEY}Label=${PROBE_ID_LABEL}`,
    `${PROBE_ID_KEY}=${id}`,
  ].join(' ');
  return `<164>${ts} ${host} CEF:0|${PROBE_VENDOR}|MOCK|common=event-format-test|end|TRAFFIC|1|${ext}`;
}
