import path from 'node:path';
import { z } from 'zod';
import { CLOUDS, DEFAULT_FORWARDER_PORT } from '../config/schema.js';
import { showValue } from '../errors.js';
import { AZURE_URL, isAzureUrl } from '../util/option-schemas.js';
import { CONTROL_CHARS as CONTROL } from '../util/control-chars.js';

// Every value below can reach a rendered file (systemd unit, daemon drop-in, JSON config), so each has a strict
// grammar: no control characters, no newline, nothing a unit, RainerScript or syslog-ng string could read as syntax.
// The render sites escape as well (config-escape.ts); this is the first wall.

/** C0, DEL, C1 and the Unicode line and paragraph separators. */
/** An absolute path of plain characters: no spaces, quotes, `%`, `$` or `\`. */
const ABS_PATH = /^\/[A-Za-z0-9._+@,=/-]*$/;
const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const DCE_RESOURCE_ID =
  /^\/subscriptions\/[0-9a-fA-F-]{36}\/resourceGroups\/[A-Za-z0-9._()-]{1,90}\/providers\/Microsoft\.Insights\/dataCollectionEndpoints\/[A-Za-z0-9-]{3,44}$/i;
const WS_RESOURCE_ID =
  /^\/subscriptions\/[0-9a-fA-F-]{36}\/resourceGroups\/[A-Za-z0-9._()-]{1,90}\/providers\/Microsoft\.OperationalInsights\/workspaces\/[A-Za-z0-9-]{4,63}$/i;
/** RFC 3986 characters only (no spaces, quotes, backslashes, braces). */

export { showValue };

/** A string option checked against `ok`; the message reads `--flag must be WHAT, got 'value'`. */
function grammar(flag: string, what: string, ok: (v: string) => boolean, opts: { secret?: boolean } = {}) {
  return z.string().superRefine((v, ctx) => {
    if (CONTROL.test(v) || !ok(v)) {
      ctx.addIssue({ code: 'custom', message: `${flag} must be ${what}${opts.secret ? ' (value not shown)' : `, got ${showValue(v)}`}` });
    }
  });
}

// Normal form only (no //, /./, /../ or trailing /): what is checked is what the unit and the config name.
const isAbsPath = (v: string) => ABS_PATH.test(v) && v.length <= 4096 && v.length > 1 && path.posix.normalize(v) === v && !v.endsWith('/');
const isHostPort = (v: string) => {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(v);
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
};
const noControl = (flag: string) => grammar(flag, 'free of control characters and newlines', () => true);

function port(flag: string) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^[0-9]{1,5}$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      ctx.addIssue({ code: 'custom', message: `${flag} must be an integer from 1 to 65535, got ${showValue(v)}` });
      return z.NEVER;
    }
    return n;
  });
}

/** Parsed first, before anything is detected or asked. */
export const installOptionsSchema = z
  .object({
    workspaceId: grammar('<workspaceId>', 'a GUID (the workspace id)', (v) => GUID.test(v)).optional(),
    primaryKey: grammar('<primaryKey>', 'a base64 key', (v) => /^[A-Za-z0-9+/]+={0,2}$/.test(v.trim()), { secret: true }).optional(),
    // Read by install, never written into a file: any path will do, on one line.
    keyFile: noControl('--key-file').optional(),
    // A URL (the DCE's or the DCR's ingestion endpoint); with --workspace the resource id of a DCE for the new rule.
    dce: grammar('--dce', AZURE_URL, (v) => isAzureUrl(v) || DCE_RESOURCE_ID.test(v)).optional(),
    dcr: grammar('--dcr', 'a DCR immutable id (dcr- and 32 hex digits)', (v) => /^dcr-[0-9a-fA-F]{32}$/.test(v)).optional(),
    stream: grammar('--stream', 'a stream name (Custom-NAME or Microsoft-NAME)', (v) =>
      /^(Custom|Microsoft)-[A-Za-z0-9_]{1,200}$/.test(v),
    ).optional(),
    tenant: grammar('--tenant', 'a tenant GUID or domain name', (v) => GUID.test(v) || DNS_NAME.test(v)).optional(),
    clientId: grammar('--client-id', 'a GUID (the application id)', (v) => GUID.test(v)).optional(),
    clientSecretFile: noControl('--client-secret-file').optional(),
    managedIdentity: z.boolean().default(false),
    sink: grammar(
      '--sink',
      'file:/ABSOLUTE/PATH of letters, digits and ._+@,=/-',
      (v) => v.startsWith('file:') && isAbsPath(v.slice(5)) && v.length > 6,
    ).optional(),
    cloud: z
      .string()
      .superRefine((v, ctx) => {
        if (!(CLOUDS as readonly string[]).includes(v))
          ctx.addIssue({ code: 'custom', message: `--cloud must be one of ${CLOUDS.join(', ')}, got ${showValue(v)}` });
      })
      .transform((v) => v as (typeof CLOUDS)[number])
      .optional(),
    usGov: z.boolean().default(false),
    port: port('--port').default(514),
    forwarderPort: port('--forwarder-port').default(DEFAULT_FORWARDER_PORT),
    protocol: z.enum(['tcp', 'udp', 'both']).default('both'),
    daemon: z.enum(['rsyslog', 'syslog-ng']).optional(),
    endpoint: grammar('--endpoint', AZURE_URL, isAzureUrl).optional(),
    workspace: grammar(
      '--workspace',
      'a workspace id (GUID) or a workspace resource id',
      (v) => GUID.test(v) || WS_RESOURCE_ID.test(v),
    ).optional(),
    principalId: grammar('--principal-id', 'a GUID (the object id of the identity the forwarder sends as)', (v) => GUID.test(v)).optional(),
    armEndpoint: grammar('--arm-endpoint', AZURE_URL, isAzureUrl).optional(),
    /** The Entra ID authority the forwarder asks for its token (sink.authorityHost): sovereign or private clouds. */
    authorityHost: grammar('--authority-host', AZURE_URL, isAzureUrl).optional(),
    dryRun: z.boolean().default(false),
    diff: z.enum(['edited', 'all']).default('edited'),
    yes: z.boolean().default(false),
    root: noControl('--root').default('/'),
    verify: z.boolean().default(true),
    fixFirewall: z.boolean().optional(),
    /** No syslog daemon: the forwarder itself listens on --port (all addresses), for balancers and containers. */
    forwarderOnly: z.boolean().default(false),
    /** HOST:PORT of the balancer's readiness endpoint (forwarder-only: 0.0.0.0:8080 unless given; with a daemon: none unless given). */
    readiness: grammar('--readiness', 'HOST:PORT (IPv6 in brackets, e.g. [::]:8080)', isHostPort).optional(),
    /** With --forwarder-only: TCP connections start with this PROXY protocol header (the balancer sends it). */
    proxy: z.enum(['v1', 'v2']).optional(),
    /**
     * With --forwarder-only: limits.maxConnectionAgeSec, so senders reconnect and the balancer spreads them again
     * (0 = never). Unset: DEFAULT_MAX_CONNECTION_AGE_SEC.
     */
    maxConnectionAge: z
      .union([z.number(), z.string()])
      .transform((v, ctx) => {
        const n = typeof v === 'number' ? v : /^[0-9]{1,7}$/.test(v) ? Number(v) : NaN;
        if (!Number.isInteger(n) || n < 0 || n > 86_400) {
          ctx.addIssue({
            code: 'custom',
            message: `--max-connection-age must be whole seconds from 0 (never) to 86400, got ${showValue(v)}`,
          });
          return z.NEVER;
        }
        return n;
      })
      .optional(),
    /** The node binary the service runs (default: `node` on PATH); written into the unit's ExecStart. */
    node: grammar('--node', 'an absolute path of letters, digits and ._+@,=/-', isAbsPath).optional(),
    /** rsyslog without omrelp: install adds rsyslog-relp (apt) so rsyslog sends to the forwarder over RELP, acknowledged. */
    installRelp: z.boolean().default(true),
    /** The daemon's queues for the forwarder on disk and every write synced: a power cut loses nothing accepted. */
    durable: z.boolean().default(false),
  })
  .superRefine((o, ctx) => {
    // Flags that contradict each other, or do nothing without another, are refused rather than silently ignored.
    const refuse = (message: string) => ctx.addIssue({ code: 'custom', message });
    if (o.usGov && o.cloud !== undefined && o.cloud !== 'AzureUSGovernment')
      refuse(`--us-gov (-F) and --cloud ${o.cloud} exclude each other`);
    // Without any destination the interactive menu may still lead to "set up Logs Ingestion for me".
    const otherDestination =
      o.workspaceId !== undefined || o.keyFile !== undefined || o.dcr !== undefined || o.dce !== undefined || o.sink !== undefined;
    if (o.principalId !== undefined && o.workspace === undefined && otherDestination)
      refuse('--principal-id only applies with --workspace');
    // With --dce/--dcr install reads the rule through ARM to learn its workspace.
    if (o.armEndpoint !== undefined && o.workspace === undefined && o.dcr === undefined && otherDestination)
      refuse('--arm-endpoint only applies with --workspace or --dce/--dcr');
    if (o.dce !== undefined && o.workspace !== undefined && !DCE_RESOURCE_ID.test(o.dce))
      refuse(
        `with --workspace, --dce is the resource id of a data collection endpoint (/subscriptions/…/dataCollectionEndpoints/NAME), got ${showValue(o.dce)}`,
      );
    if (o.dce !== undefined && o.workspace === undefined && DCE_RESOURCE_ID.test(o.dce))
      refuse(`--dce must be an https URL (a data collection endpoint's resource id goes with --workspace), got ${showValue(o.dce)}`);
    if (o.managedIdentity && o.clientSecretFile !== undefined) refuse('--managed-identity and --client-secret-file exclude each other');
    if (o.authorityHost !== undefined && o.managedIdentity) refuse('--authority-host does not apply with --managed-identity');
    if (o.authorityHost !== undefined && o.dce === undefined && o.dcr === undefined && o.workspace === undefined && otherDestination)
      refuse('--authority-host only applies with --dce/--dcr or --workspace');
  });
export type InstallOptions = z.infer<typeof installOptionsSchema>;

export const uninstallOptionsSchema = z.object({
  yes: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  root: noControl('--root').default('/'),
  removeUser: z.boolean().default(false),
  purge: z.boolean().default(false),
});
export type UninstallOptions = z.infer<typeof uninstallOptionsSchema>;

/** install's positional arguments, for the one option-error formatter (errors.ts). */
export const INSTALL_ARGUMENTS = { workspaceId: '<workspaceId>', primaryKey: '<primaryKey>' };
