import { SERVICE_USER } from '../install/service.js';
import { STATE_DIR } from '../install/transaction.js';
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
export function fixForDelivery(
  sinkType: string | undefined,
  httpStatus: number | undefined,
  error: string,
  clockSkewSec?: number | null,
  sinkPath?: string,
): string {
  if (sinkType === 'file' && sinkPath) {
    const fileFix = fixForFileSink(error, sinkPath);
    if (fileFix) return fileFix;
  }
  if ((httpStatus === 401 || httpStatus === 403) && clockSkewSec != null) {
    return `${clockText(clockSkewSec)} (see azure.clock), so Azure refuses the requests: ${clockFix()}`;
  }
  // No HTTP status: the token authority refused before any call to the endpoint (the sink's "cannot get an Entra ID token").
  if (httpStatus === undefined && /cannot get an Entra ID token|\bAADSTS\d+/.test(error)) {
    return /AADSTS7000(215|222)\b/.test(error)
      ? 'the client secret is wrong or expired (see azure.credentials): create a new one and re-run `sentinel-cef install`'
      : 'Entra ID refused the credentials (see azure.credentials): check the tenant, client id and secret or certificate';
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

/** The file sink's write errors, each with the object, the cause and the command that fixes it. */
export function fixForFileSink(error: string, path: string): string | undefined {
  const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) || '/' : '.';
  const code = /\b(EISDIR|EACCES|EPERM|ENOTDIR|EROFS|ENOSPC|EDQUOT|ENOENT)\b/.exec(error)?.[1];
  switch (code) {
    case 'EISDIR':
      return `${path} is a directory, not a file: point sink.path at a file inside it (e.g. ${path.replace(/\/$/, '')}/rows.ndjson) in the forwarder config, then restart the forwarder`;
    case 'EACCES':
      // Our root-owned state (install record, backups uninstall restores into /etc) or a top-level system directory
      // is never handed to the network-facing service user: the sink moves into a directory of its own instead.
      if (dir === STATE_DIR || dir.split('/').filter(Boolean).length < 2)
        return `the service user ${SERVICE_USER} may not write ${path}, and ${dir} is not the forwarder's to own: point sink.path into a directory of its own (e.g. ${STATE_DIR}/data/${path.slice(dir.length + 1) || 'rows.ndjson'}) and re-run \`sentinel-cef install\`; the rows stay queued and are written once it can`;
      return `the service user ${SERVICE_USER} may not write ${path}: \`chown ${SERVICE_USER}: ${dir}\` (and \`chown ${SERVICE_USER}: ${path}\` if it exists); the rows stay queued and are written once it can`;
    case 'EPERM':
      return `${path} refuses writes even to its owner (immutable or append-only attribute?): check \`lsattr ${path}\` and clear it with \`chattr -i -a ${path}\``;
    case 'ENOTDIR':
      return `a part of ${dir} is a file, not a directory: fix sink.path in the forwarder config`;
    case 'EROFS':
      return `${dir} is on a read-only filesystem: point sink.path at a writable one`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `the filesystem of ${dir} is full (${code}): free space there (\`df -h ${dir}\`); the rows stay queued`;
    case 'ENOENT':
      return `${dir} does not exist: \`mkdir -p ${dir} && chown ${SERVICE_USER}: ${dir}\``;
    default:
      return undefined;
  }
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
