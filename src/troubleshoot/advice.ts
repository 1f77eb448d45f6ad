/** One-line advice shared by several checks. */

export function clockText(skewSec: number): string {
  return `the local clock is ${Math.abs(skewSec)} s ${skewSec >= 0 ? 'ahead' : 'behind'}`;
}

/** The one fix for every refusal a skewed clock causes. */
export function clockFix(): string {
  return 'sync the clock with NTP: `timedatectl set-ntp true` (or start chronyd); the forwarder keeps the refused rows and sends them once the clock is right';
}

/**
 * What an HTTP status from a sink most likely means, as a one-line fix. With `clockSkewSec` (the clock is known to be
 * off), a 401/403 is the clock's doing, whatever the key.
 */
export function fixForDelivery(sinkType: string | undefined, httpStatus: number | undefined, error: string, clockSkewSec?: number | null): string {
  if ((httpStatus === 401 || httpStatus === 403) && clockSkewSec != null) {
    return `${clockText(clockSkewSec)} (see azure.clock), so Azure refuses the requests: ${clockFix()}`;
  }
  if (httpStatus === 403 && sinkType === 'logs-ingestion') {
    return 'grant the app "Monitoring Metrics Publisher" on the DCR (role assignments take up to 30 min to apply)';
  }
  if (httpStatus === 403) return 'the workspace rejected the shared key: store the current primary key with `sentinel-cef install`';
  if (httpStatus === 401) return 'the token was refused: check tenant, client id and secret (see azure.credentials)';
  if (httpStatus === 404) return 'wrong DCR immutable id, stream or endpoint: compare the config with `sentinel-cef dcr`';
  if (httpStatus === 413) return 'batches are too large: lower batch.maxBytes in the config';
  if (httpStatus === 400) return 'Azure rejected the records: check the DCR stream declaration matches (see `sentinel-cef dcr`)';
  if (httpStatus !== undefined && httpStatus >= 500) {
    return 'Azure answered with a server error: the forwarder keeps the rows queued and retries; check azure.endpoint and the Azure status page';
  }
  if (httpStatus === 429) return 'throttled by Azure: lower the send rate or spread over more DCRs';
  if (/ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ECONNRESET|certificate|TLS|socket/i.test(error)) {
    return 'the Azure endpoint is unreachable: see azure.endpoint (DNS, firewall, HTTPS_PROXY)';
  }
  return 'see the forwarder log for the full error';
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
