/**
 * A stand-in for the Azure edge that checks what Azure checks: the Data Collector API (SharedKey
 * signature, x-ms-date window, Content-Length, Log-Type, JSON, 30 MB), the Logs Ingestion API (bearer
 * token from its own authority, audience, gzip, 1 MB, JSON array, declared column types), an Entra ID
 * authority good enough for @azure/identity (OpenID discovery + client-credentials token endpoint) and
 * a managed-identity endpoint (IMDS and App Service shapes). Failure injection and a control API
 * (`/_mock/...`) serve tests, benchmarks and the sandbox.
 */
import { createHash, createHmac, createPublicKey, randomBytes, randomUUID, timingSafeEqual, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createExec } from '../system/exec.js';
import { CSL_COLUMN_TYPES, valueFitsType, type ColumnType } from '../sinks/columns.js';

export type MockApi = 'log-analytics' | 'logs-ingestion' | 'token' | 'msi';

export interface PoisonSpec {
  /** Column to look at. */
  field: string;
  equals?: string | number;
  contains?: string;
}

export interface FailRule {
  /** Which endpoint; 'data' = both ingestion APIs (default). */
  api?: MockApi | 'data' | 'any';
  /** Status to answer with. Omit with delayMs for a slow but otherwise normal answer. */
  status?: number;
  /** Apply to this many requests (default: unlimited, or until durationMs ends). */
  count?: number;
  /** Apply for this long from now. */
  durationMs?: number;
  /** Retry-After header value: seconds ("5") or an HTTP-date. */
  retryAfter?: string;
  /** retry-after-ms header value. */
  retryAfterMs?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Answer body (JSON text); a service-like default is used otherwise. */
  body?: string;
  /** Only requests carrying a matching row: answers 400 (or `status`) for the whole call, as Azure does. */
  poison?: PoisonSpec;
  /** Drop the connection without answering. */
  destroy?: boolean;
}

export interface AcceptedRow {
  api: 'log-analytics' | 'logs-ingestion';
  /** Log-Type + "_CL" for the Data Collector API, the stream name for Logs Ingestion. */
  table: string;
  row: Record<string, unknown>;
  at: number;
}

export interface RequestRecord {
  at: number;
  /** When the answer was sent (or the connection dropped). */
  doneAt?: number;
  api: MockApi | 'control' | 'other';
  method: string;
  path: string;
  status: number;
  /** Bytes on the wire (compressed when gzip). */
  bytes: number;
  /** Uncompressed JSON bytes. */
  rawBytes?: number;
  rows?: number;
  injected?: boolean;
  note?: string;
  /** First row of a data call, also when the call was refused (lets tests match a retry to its call). */
  firstRow?: Record<string, unknown>;
}

export interface MockStats {
  requests: number;
  byApi: Record<string, { requests: number; byStatus: Record<string, number> }>;
  rowsAccepted: { 'log-analytics': number; 'logs-ingestion': number };
  tokensIssued: number;
  /** Field values over the API's field limit (Azure truncates them silently). */
  overlongFields: number;
  /** Values whose JSON type does not fit the declared column (Azure nulls them). */
  typeMismatches: Array<{ column: string; expected: ColumnType; value: unknown }>;
  /** Columns not declared in the stream (Azure drops them). */
  undeclaredColumns: string[];
  maxConnections: number;
  connectionsOpened: number;
  /** Most data-API requests being handled at the same moment. */
  maxInFlight: number;
  /** Data-API requests being handled now (calls abandoned by a client may still be running). */
  inFlight: number;
  /** Logs Ingestion calls whose rows were checked column by column (see validateEvery). */
  validatedCalls: number;
  /** Logs Ingestion calls accepted on the scanBody fast path (no JSON.parse). */
  scannedCalls: number;
  /** Calls not due for column checks that were parsed in full anyway (scanBody declined or threw, or a poison rule was active). */
  scanFallbacks: number;
  /** Calls scanBody threw on (parsed in full instead, which decides); the first few messages. */
  scanErrors: number;
  scanErrorSamples: string[];
  /** Column-checked calls where scanBody's row count differed from JSON.parse's. */
  scanMismatches: number;
}

/** What a scanBody function read from one Logs Ingestion body. */
export interface ScannedBody {
  /** Rows in the body (must be exact: it is what the call is counted as accepting). */
  rows: number;
  /** Called once if the call is accepted, with the acceptance time. */
  accept(at: number): void;
}

export interface MockAzureOptions {
  /** HTTPS with a generated self-signed certificate (default), or plain HTTP. */
  https?: boolean;
  port?: number;
  workspaceId?: string;
  /** Base64 workspace key; generated when omitted. */
  sharedKey?: string;
  tenantId?: string;
  clientId?: string;
  clientSecret?: string;
  /** Accepted as client_assertion for workload identity. */
  federatedToken?: string;
  /** PEM certificate of a registered client certificate: client assertions are verified against it. */
  clientCertificatePem?: string;
  dcrImmutableId?: string;
  streams?: string[];
  /** Audience the ingestion endpoint requires (the scope minus "//.default"). */
  audience?: string;
  tokenLifetimeSec?: number;
  /** Header value App Service MSI expects in X-IDENTITY-HEADER. */
  identityHeader?: string;
  maxDataCollectorBytes?: number;
  maxIngestionBytes?: number;
  maxDateSkewMs?: number;
  /** The service's clock minus the real one (skew mode): used for the x-ms-date window and the Date header. */
  clockOffsetMs?: number;
  /** Where to put the generated certificate (default: a fresh temp dir). */
  certDir?: string;
  quiet?: boolean;
  /** Keep accepted rows in `rows` (default true). Load tests turn it off and count through onRows. */
  keepRows?: boolean;
  /** Called with the rows of every accepted call (load tests: sequence checking without holding rows). */
  onRows?: (rows: AcceptedRow[]) => void;
  /**
   * Check column types and field sizes of every Nth Logs Ingestion call (default 1: every call). The
   * throughput benchmark samples, so the mock's share of the two cores goes to the forwarder instead;
   * token, gzip, size and JSON checks still apply to every call.
   */
  validateEvery?: number;
  /**
   * Fast path for load runs: on the Logs Ingestion calls that are not column-checked, the gunzipped
   * body bytes go to this function instead of JSON.parse + onRows (token, gzip and size checks still
   * apply); the text is decoded only when the call is parsed in full. Return undefined to have the call parsed in full; throw if the body is malformed (the
   * call is then parsed in full, which answers as Azure would). Column-checked calls are parsed and go
   * to onRows as usual, and the scan's row count is checked against the parse. Needs keepRows: false.
   */
  scanBody?: (body: Buffer) => ScannedBody | undefined;
}

export interface MockAzure {
  readonly url: string;
  readonly port: number;
  readonly https: boolean;
  /** PEM path of the self-signed certificate (HTTPS only): trust it with NODE_EXTRA_CA_CERTS or `ca`. */
  readonly caPath?: string;
  readonly caPem?: string;
  readonly workspaceId: string;
  readonly sharedKey: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly dcrImmutableId: string;
  readonly stream: string;
  readonly identityHeader: string;
  readonly audience: string;
  readonly rows: AcceptedRow[];
  readonly requests: RequestRecord[];
  fail(rule: FailRule): void;
  clearFailures(): void;
  /** Close the listener and drop open connections: clients get ECONNREFUSED / ECONNRESET. */
  refuseConnections(): Promise<void>;
  /** Listen again on the same port. */
  acceptConnections(): Promise<void>;
  /** Invalidate every token issued so far (the next data call gets 401). */
  revokeTokens(): void;
  /** Tokens issued from now on are valid for this many seconds. */
  setTokenLifetime(sec: number): void;
  /** Moves the service's clock (x-ms-date check, Date header) this far from the real one: a client clock skew seen from the other side. */
  setClockOffset(ms: number): void;
  stats(): MockStats;
  /** Forget rows, requests and counters (failures stay). */
  reset(): void;
  close(): Promise<void>;
  /** Why a bearer token this authority issued is refused for `audience` (null: valid). Lets sibling mocks (ARM, Logs Query) trust its tokens. */
  checkToken(authorization: string | undefined, audience: string): string | null;
}

const DEFAULT_STREAM = 'Custom-CommonSecurityLog';
const ROW_SEP = Buffer.from('},{"');
const LOG_TYPE_RE = /^[A-Za-z0-9_]{1,100}$/;

interface ActiveRule extends FailRule {
  id: number;
  until?: number;
  remaining?: number;
}

interface IssuedToken {
  audience: string;
  expiresAt: number;
  generation: number;
}

/** Self-signed certificate for 127.0.0.1/localhost; it is its own CA. */
export async function generateCertificate(dir: string): Promise<{ certPath: string; keyPath: string }> {
  const certPath = join(dir, 'mock-azure-cert.pem');
  const keyPath = join(dir, 'mock-azure-key.pem');
  const r = await createExec().run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '7',
    '-subj',
    '/CN=sentinel-cef mock azure',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,digitalSignature,keyCertSign',
  ]);
  if (r.exitCode !== 0) throw new Error(`openssl could not make the mock's certificate: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  return { certPath, keyPath };
}

/** Signature the Data Collector API expects (computed here independently of the sink). */
function expectedSignature(keyB64: string, contentLength: number, date: string): string {
  const toSign = ['POST', String(contentLength), 'application/json', `x-ms-date:${date}`, '/api/logs'].join('\n');
  return createHmac('sha256', Buffer.from(keyB64, 'base64')).update(Buffer.from(toSign, 'utf8')).digest('base64');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function b64urlJson(part: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export async function startMockAzure(options: MockAzureOptions = {}): Promise<MockAzure> {
  const useHttps = options.https ?? true;
  const workspaceId = options.workspaceId ?? randomUUID();
  const sharedKey = options.sharedKey ?? randomBytes(64).toString('base64');
  const tenantId = options.tenantId ?? randomUUID();
  const clientId = options.clientId ?? randomUUID();
  const clientSecret = options.clientSecret ?? randomBytes(24).toString('base64url');
  const dcrImmutableId = options.dcrImmutableId ?? `dcr-${randomBytes(16).toString('hex')}`;
  const streams = options.streams ?? [DEFAULT_STREAM];
  const audience = (options.audience ?? 'https://monitor.azure.com').replace(/\/+$/, '');
  const identityHeader = options.identityHeader ?? randomBytes(16).toString('hex');
  const maxDcBytes = options.maxDataCollectorBytes ?? 30 * 1024 * 1024;
  const maxLiBytes = options.maxIngestionBytes ?? 1024 * 1024;
  const maxSkew = options.maxDateSkewMs ?? 15 * 60_000;
  let tokenLifetimeSec = options.tokenLifetimeSec ?? 3600;
  let clockOffsetMs = options.clockOffsetMs ?? 0;
  const serviceNow = () => Date.now() + clockOffsetMs;

  const rows: AcceptedRow[] = [];
  const requests: RequestRecord[] = [];
  const tokens = new Map<string, IssuedToken>();
  let tokenGeneration = 0;
  let rules: ActiveRule[] = [];
  let ruleSeq = 0;
  const counters = {
    tokensIssued: 0,
    overlongFields: 0,
    typeMismatches: [] as MockStats['typeMismatches'],
    undeclared: new Set<string>(),
    maxConnections: 0,
    connectionsOpened: 0,
    inFlight: 0,
    maxInFlight: 0,
    accepted: { 'log-analytics': 0, 'logs-ingestion': 0 },
    validatedCalls: 0,
    scannedCalls: 0,
    scanFallbacks: 0,
    scanErrors: 0,
    scanErrorSamples: [] as string[],
    scanMismatches: 0,
  };
  const keepRows = options.keepRows ?? true;
  const validateEvery = Math.max(1, options.validateEvery ?? 1);
  if (options.scanBody && keepRows) throw new Error('startMockAzure: scanBody needs keepRows: false (scanned rows are not kept)');
  let liCalls = 0;
  const accept = (batch: AcceptedRow[]) => {
    counters.accepted[batch[0]?.api ?? 'log-analytics'] += batch.length;
    if (keepRows) for (const r of batch) rows.push(r);
    options.onRows?.(batch);
  };

  let caPath: string | undefined;
  let caPem: string | undefined;
  let tlsOpts: https.ServerOptions | undefined;
  if (useHttps) {
    const dir = options.certDir ?? mkdtempSync(join(tmpdir(), 'mock-azure-'));
    const { certPath, keyPath } = await generateCertificate(dir);
    caPath = certPath;
    caPem = readFileSync(certPath, 'utf8');
    tlsOpts = { cert: caPem, key: readFileSync(keyPath) };
  }

  const sockets = new Set<Socket>();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    void handle(req, res).catch((err) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'MockError', message: String(err) } }));
      }
    });
  };
  const server: http.Server = useHttps ? https.createServer(tlsOpts!, handler) : http.createServer(handler);
  server.keepAliveTimeout = 30_000;
  const onConnection = (s: Socket) => {
    sockets.add(s);
    counters.connectionsOpened++;
    counters.maxConnections = Math.max(counters.maxConnections, sockets.size);
    s.on('close', () => sockets.delete(s));
  };
  server.on(useHttps ? 'secureConnection' : 'connection', onConnection);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const base = `${useHttps ? 'https' : 'http'}://127.0.0.1:${port}`;

  function readBody(req: http.IncomingMessage, limit: number): Promise<{ body: Buffer; tooBig: boolean; total: number }> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let total = 0;
      req.on('data', (c: Buffer) => {
        total += c.length;
        if (total <= limit) chunks.push(c);
      });
      req.on('end', () => resolve({ body: Buffer.concat(chunks), tooBig: total > limit, total }));
      req.on('error', reject);
    });
  }

  function send(res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) {
    const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      date: new Date(serviceNow()).toUTCString(),
      ...(text ? { 'content-type': 'application/json' } : {}),
      ...headers,
    });
    res.end(text);
  }

  function activeRules(api: MockApi): ActiveRule[] {
    const now = Date.now();
    rules = rules.filter((r) => (r.until === undefined || r.until > now) && (r.remaining === undefined || r.remaining > 0));
    return rules.filter((r) => {
      const a = r.api ?? 'data';
      return a === 'any' || a === api || (a === 'data' && (api === 'log-analytics' || api === 'logs-ingestion'));
    });
  }

  function rowMatches(p: PoisonSpec, row: Record<string, unknown>): boolean {
    const v = row[p.field];
    if (v === undefined) return false;
    if (p.equals !== undefined) return v === p.equals || String(v) === String(p.equals);
    if (p.contains !== undefined) return String(v).includes(p.contains);
    return true;
  }

  /** Applies the first matching rule; returns true when it answered. */
  async function inject(
    api: MockApi,
    res: http.ServerResponse,
    record: RequestRecord,
    rowsInCall?: Record<string, unknown>[],
  ): Promise<boolean> {
    for (const r of activeRules(api)) {
      if (r.poison && !(rowsInCall ?? []).some((row) => rowMatches(r.poison!, row))) continue;
      if (r.remaining !== undefined) r.remaining--;
      if (r.delayMs) await new Promise((resolve) => setTimeout(resolve, r.delayMs));
      if (r.destroy) {
        record.status = 0;
        record.injected = true;
        res.socket?.destroy();
        return true;
      }
      const status = r.status ?? (r.poison ? 400 : undefined);
      if (status === undefined) continue; // slow only: carry on normally
      const headers: Record<string, string> = {};
      if (r.retryAfter !== undefined) headers['retry-after'] = r.retryAfter;
      if (r.retryAfterMs !== undefined) headers['retry-after-ms'] = String(r.retryAfterMs);
      record.status = status;
      record.injected = true;
      send(res, status, r.body ?? defaultErrorBody(api, status), headers);
      return true;
    }
    return false;
  }

  function defaultErrorBody(api: MockApi, status: number): unknown {
    const messages: Record<number, [string, string]> = {
      400: ['InvalidArgument', 'The request contains an invalid record.'],
      401: ['InvalidToken', 'The provided token is invalid or expired.'],
      403: ['OperationFailed', 'The authentication token provided does not have access to ingest data for the data collection rule.'],
      404: ['NotFound', 'The resource was not found.'],
      413: ['ContentLengthLimitExceeded', 'Maximum request body size exceeded.'],
      429: ['TooManyRequests', 'Request rate exceeded the limit.'],
      500: ['InternalServerError', 'An unexpected error occurred.'],
      502: ['BadGateway', 'Bad gateway.'],
      503: ['ServiceUnavailable', 'The service is unavailable.'],
      504: ['GatewayTimeout', 'Gateway timeout.'],
    };
    const [code, message] = messages[status] ?? ['Error', `HTTP ${status}`];
    if (api === 'log-analytics') return { Error: code, Message: message };
    if (api === 'token') return { error: 'temporarily_unavailable', error_description: message };
    return { error: { code, message } };
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', base);
    const path = url.pathname;
    const record: RequestRecord = { at: Date.now(), api: 'other', method: req.method ?? '', path, status: 0, bytes: 0 };
    try {
      if (path.startsWith('/_mock/')) {
        record.api = 'control';
        await control(req, res, url, record);
      } else if (path === '/api/logs' || path.endsWith('/api/logs') || path.startsWith('/dataCollectionRules/')) {
        record.api = path.startsWith('/dataCollectionRules/') ? 'logs-ingestion' : 'log-analytics';
        counters.maxInFlight = Math.max(counters.maxInFlight, ++counters.inFlight);
        try {
          await (record.api === 'log-analytics' ? dataCollector(req, res, url, record) : ingestion(req, res, url, record));
        } finally {
          counters.inFlight--;
        }
      } else if (
        /^\/[^/]+\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)$/.test(path) ||
        path === '/common/discovery/instance'
      ) {
        record.api = 'token';
        await authority(req, res, url, record);
      } else if (/^\/(metadata\/identity\/oauth2\/token|msi\/token)\/?$/.test(path)) {
        record.api = 'msi';
        await managedIdentity(req, res, url, record);
      } else {
        record.status = 404;
        send(res, 404, { error: { code: 'NotFound', message: `no route ${path}` } });
      }
    } finally {
      record.doneAt = Date.now();
      if (record.api !== 'control') requests.push(record);
    }
  }

  async function dataCollector(req: http.IncomingMessage, res: http.ServerResponse, url: URL, record: RequestRecord) {
    const { body, tooBig, total } = await readBody(req, maxDcBytes);
    record.bytes = total;
    record.rawBytes = total;
    const fail = (status: number, code: string, message: string) => {
      record.status = status;
      record.note = code;
      send(res, status, { Error: code, Message: message });
    };
    if (req.method !== 'POST') return fail(405, 'MethodNotAllowed', 'Only POST is supported');
    const bodyRows = tryParseRows(body);
    if (bodyRows?.[0]) record.firstRow = bodyRows[0];
    if (await inject('log-analytics', res, record, bodyRows)) return;
    const apiVersion = url.searchParams.get('api-version');
    if (!apiVersion) return fail(400, 'MissingApiVersion', 'The API version was not specified');
    if (apiVersion !== '2016-04-01') return fail(400, 'InvalidApiVersion', 'The API version specified was not recognized by the service');
    const ct = req.headers['content-type'];
    if (!ct) return fail(400, 'MissingContentType', 'The content type was not specified');
    if (!/^application\/json\b/i.test(ct)) return fail(400, 'UnsupportedContentType', 'The content type was not set to application/json');
    const logType = req.headers['log-type'];
    if (typeof logType !== 'string' || !logType) return fail(400, 'MissingLogType', 'The value type log type was not specified');
    if (!LOG_TYPE_RE.test(logType)) return fail(400, 'InvalidLogType', 'The log type contained special characters or numerics');
    const date = req.headers['x-ms-date'];
    const auth = req.headers.authorization;
    const cl = req.headers['content-length'];
    if (typeof date !== 'string' || Number.isNaN(Date.parse(date)))
      return fail(403, 'InvalidAuthorization', 'x-ms-date is missing or not an RFC 1123 date');
    if (Math.abs(serviceNow() - Date.parse(date)) > maxSkew)
      return fail(403, 'InvalidAuthorization', 'x-ms-date is more than 15 minutes from the service time');
    if (cl === undefined) return fail(411, 'LengthRequired', 'Content-Length is required');
    if (Number(cl) !== total) return fail(400, 'InvalidDataFormat', 'Content-Length does not match the body');
    const m = /^SharedKey ([^:]+):(.+)$/.exec(auth ?? '');
    if (!m) return fail(403, 'InvalidAuthorization', 'An invalid scheme was specified in the Authorization header');
    if (m[1] !== workspaceId)
      return fail(403, 'InvalidAuthorization', 'The workspace id in the Authorization header is not this workspace');
    if (!safeEqual(m[2]!, expectedSignature(sharedKey, total, date))) {
      return fail(403, 'InvalidAuthorization', 'The signature in the Authorization header does not match');
    }
    if (tooBig) return fail(413, 'RequestEntityTooLarge', `The request body exceeds ${maxDcBytes} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return fail(400, 'InvalidDataFormat', 'The request body is not valid JSON');
    }
    const records = Array.isArray(parsed) ? parsed : [parsed];
    if (!records.every((r) => r && typeof r === 'object' && !Array.isArray(r)))
      return fail(400, 'InvalidDataFormat', 'Records must be JSON objects');
    const tgf = req.headers['time-generated-field'];
    for (const r of records as Record<string, unknown>[]) {
      if (Object.keys(r).length > 500) return fail(400, 'InvalidDataFormat', 'A record has more than 500 columns');
      if (typeof tgf === 'string' && r[tgf] !== undefined && !valueFitsType(r[tgf], 'datetime')) {
        return fail(400, 'InvalidDataFormat', `The time-generated-field ${tgf} is not an ISO 8601 date`);
      }
      for (const v of Object.values(r)) if (typeof v === 'string' && Buffer.byteLength(v) > 32 * 1024) counters.overlongFields++;
    }
    const at = Date.now();
    accept((records as Record<string, unknown>[]).map((r) => ({ api: 'log-analytics' as const, table: `${logType}_CL`, row: r, at })));
    record.rows = records.length;
    record.status = 200;
    send(res, 200);
  }

  /** scanBody's view of a body; a throw is counted and the call parsed in full. */
  function scanOf(raw: Buffer): ScannedBody | undefined {
    try {
      return options.scanBody!(raw);
    } catch (err) {
      counters.scanErrors++;
      if (counters.scanErrorSamples.length < 5) counters.scanErrorSamples.push((err as Error).message);
      return undefined;
    }
  }

  /**
   * Where the first row of a compact `[{...},{...}]` body ends (after its `}`). A `},{"` followed by
   * `,` or `}` is a string value ending in `},{`, not the next row.
   */
  function firstRowEnd(raw: Buffer): number {
    for (let at = raw.indexOf(ROW_SEP); at >= 0; at = raw.indexOf(ROW_SEP, at + 1)) {
      const c = raw[at + ROW_SEP.length];
      if (c !== 0x2c && c !== 0x7d) return at + 1;
    }
    return raw.length - 1;
  }

  function tryParseRows(body: Buffer): Record<string, unknown>[] | undefined {
    try {
      const v = JSON.parse(body.toString('utf8')) as unknown;
      return Array.isArray(v) ? (v as Record<string, unknown>[]) : undefined;
    } catch {
      return undefined;
    }
  }

  async function ingestion(req: http.IncomingMessage, res: http.ServerResponse, url: URL, record: RequestRecord) {
    // Read up to 4x the limit so an oversize body still gets a clean 413 rather than a reset.
    const { body, total } = await readBody(req, Math.max(maxLiBytes * 4, 4 * 1024 * 1024));
    record.bytes = total;
    const fail = (status: number, code: string, message: string, headers: Record<string, string> = {}) => {
      record.status = status;
      record.note = code;
      send(res, status, { error: { code, message } }, headers);
    };
    if (req.method !== 'POST') return fail(405, 'MethodNotAllowed', 'Only POST is supported');
    const m = /^\/dataCollectionRules\/([^/]+)\/streams\/([^/]+)$/.exec(url.pathname);
    const authz = req.headers.authorization ?? '';
    const bearer = /^Bearer (.+)$/.exec(authz)?.[1];
    const tok = bearer ? tokens.get(bearer) : undefined;
    const challenge = { 'www-authenticate': `Bearer authorization_uri="${base}/${tenantId}", error="invalid_token"` };
    if (!tok || tok.generation !== tokenGeneration) return fail(401, 'InvalidToken', 'The provided token is missing or invalid', challenge);
    if (tok.expiresAt <= Date.now()) return fail(401, 'InvalidToken', 'The provided token has expired', challenge);
    if (tok.audience !== audience) return fail(401, 'InvalidAudience', `The token audience ${tok.audience} is not ${audience}`, challenge);
    if (!m || decodeURIComponent(m[1]!) !== dcrImmutableId)
      return fail(404, 'NotFound', 'Data collection rule with immutable Id not found');
    const stream = decodeURIComponent(m[2]!);
    if (!streams.includes(stream)) return fail(404, 'InvalidStream', `Stream ${stream} is not declared in the data collection rule`);
    const apiVersion = url.searchParams.get('api-version');
    if (apiVersion !== '2023-01-01' && apiVersion !== '2021-11-01-preview')
      return fail(400, 'InvalidApiVersion', 'Unsupported api-version');
    if (total > maxLiBytes) return fail(413, 'ContentLengthLimitExceeded', `Request body (compressed) exceeds ${maxLiBytes} bytes`);
    let raw = body;
    const enc = req.headers['content-encoding'];
    if (enc === 'gzip') {
      try {
        // One output chunk sized from the gzip trailer (ISIZE) spares zlib gathering and joining
        // 16 KB pieces; maxOutputLength still caps what a hostile trailer could ask for.
        const isize = body.length >= 18 ? body.readUInt32LE(body.length - 4) : 0;
        const chunkSize = Math.min(Math.max(isize + 1, 64 * 1024), maxLiBytes * 8);
        raw = gunzipSync(body, { maxOutputLength: maxLiBytes * 8, chunkSize });
      } catch {
        return fail(400, 'InvalidContentEncoding', 'The body is not valid gzip');
      }
    } else if (enc && enc !== 'identity') return fail(400, 'InvalidContentEncoding', `Unsupported Content-Encoding ${enc}`);
    record.rawBytes = raw.length;
    if (raw.length > maxLiBytes) return fail(413, 'ContentLengthLimitExceeded', `Request body (uncompressed) exceeds ${maxLiBytes} bytes`);
    const validateNext = (liCalls + 1) % validateEvery === 0;
    const scan = options.scanBody ? scanOf(raw) : undefined;
    if (scan && !validateNext && !activeRules('logs-ingestion').some((r) => r.poison)) {
      // The first row parsed in full (decoded alone: the body itself is never decoded here): tests
      // and failure rules match calls by it.
      try {
        record.firstRow = JSON.parse(raw.toString('utf8', 1, firstRowEnd(raw))) as Record<string, unknown>;
      } catch {
        return fail(400, 'InvalidJson', 'The request body is not valid JSON');
      }
      if (await inject('logs-ingestion', res, record)) return;
      liCalls++;
      counters.scannedCalls++;
      counters.accepted['logs-ingestion'] += scan.rows;
      scan.accept(Date.now());
      record.rows = scan.rows;
      record.status = 204;
      return send(res, 204);
    }
    if (options.scanBody && !validateNext) counters.scanFallbacks++;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      return fail(400, 'InvalidJson', 'The request body is not valid JSON');
    }
    if (!Array.isArray(parsed) || !parsed.every((r) => r && typeof r === 'object' && !Array.isArray(r))) {
      return fail(400, 'InvalidPayload', 'The request body must be a JSON array of objects');
    }
    const records = parsed as Record<string, unknown>[];
    if (records[0]) record.firstRow = records[0];
    if (await inject('logs-ingestion', res, record, records)) return;
    const validate = ++liCalls % validateEvery === 0;
    if (validate) counters.validatedCalls++;
    if (validate && scan && scan.rows !== records.length) counters.scanMismatches++;
    if (validate)
      for (const r of records) {
        for (const [k, v] of Object.entries(r)) {
          const type = CSL_COLUMN_TYPES[k];
          if (!type) {
            counters.undeclared.add(k);
            continue;
          }
          if (!valueFitsType(v, type)) counters.typeMismatches.push({ column: k, expected: type, value: v });
          if (typeof v === 'string' && Buffer.byteLength(v) > 64 * 1024) counters.overlongFields++;
        }
      }
    const at = Date.now();
    accept(records.map((r) => ({ api: 'logs-ingestion' as const, table: stream, row: r, at })));
    record.rows = records.length;
    record.status = 204;
    send(res, 204);
  }

  function issueToken(aud: string): { token: string; expiresIn: number } {
    const token = randomBytes(32).toString('base64url');
    tokens.set(token, { audience: aud.replace(/\/+$/, ''), expiresAt: Date.now() + tokenLifetimeSec * 1000, generation: tokenGeneration });
    counters.tokensIssued++;
    return { token, expiresIn: tokenLifetimeSec };
  }

  async function authority(req: http.IncomingMessage, res: http.ServerResponse, url: URL, record: RequestRecord) {
    const { body } = await readBody(req, 1024 * 1024);
    record.bytes = body.length;
    const tenant = url.pathname.split('/')[1]!;
    if (url.pathname === '/common/discovery/instance') {
      record.status = 200;
      return send(res, 200, {
        tenant_discovery_endpoint: `${base}/${tenantId}/v2.0/.well-known/openid-configuration`,
        'api-version': '1.1',
        metadata: [{ preferred_network: `127.0.0.1:${port}`, preferred_cache: `127.0.0.1:${port}`, aliases: [`127.0.0.1:${port}`] }],
      });
    }
    if (await inject('token', res, record)) return;
    const oauthFail = (status: number, error: string, description: string) => {
      record.status = status;
      record.note = error;
      send(res, status, { error, error_description: description, error_codes: [], timestamp: new Date().toISOString() });
    };
    if (tenant !== tenantId) return oauthFail(400, 'invalid_tenant', `AADSTS90002: Tenant '${tenant}' not found.`);
    if (url.pathname.endsWith('/openid-configuration')) {
      record.status = 200;
      return send(res, 200, {
        token_endpoint: `${base}/${tenantId}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/${tenantId}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/${tenantId}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${base}/${tenantId}/oauth2/v2.0/logout`,
        jwks_uri: `${base}/${tenantId}/discovery/v2.0/keys`,
        issuer: `${base}/${tenantId}/v2.0`,
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        tenant_region_scope: 'NA',
        cloud_instance_name: 'mock.azure',
      });
    }
    if (req.method !== 'POST') return oauthFail(405, 'invalid_request', 'POST required');
    const form = new URLSearchParams(body.toString('utf8'));
    if (form.get('grant_type') !== 'client_credentials')
      return oauthFail(400, 'unsupported_grant_type', 'AADSTS70003: only client_credentials');
    if (form.get('client_id') !== clientId) {
      return oauthFail(
        400,
        'unauthorized_client',
        `AADSTS700016: Application with identifier '${form.get('client_id')}' was not found in the directory.`,
      );
    }
    const secret = form.get('client_secret');
    const assertion = form.get('client_assertion');
    if (secret !== null) {
      if (!safeEqual(secret, clientSecret)) return oauthFail(401, 'invalid_client', 'AADSTS7000215: Invalid client secret provided.');
    } else if (assertion !== null) {
      const problem = checkAssertion(assertion, form.get('client_assertion_type'), `${base}/${tenantId}/oauth2/v2.0/token`);
      if (problem) return oauthFail(401, 'invalid_client', problem);
    } else {
      return oauthFail(401, 'invalid_client', 'AADSTS7000216: client_assertion, client_secret or request is required.');
    }
    const scope = form.get('scope') ?? '';
    const target = scope.split(' ').find((s) => s.endsWith('/.default'));
    if (!target) return oauthFail(400, 'invalid_scope', `AADSTS1002012: The provided value for scope ${scope} is not valid.`);
    const { token, expiresIn } = issueToken(target.slice(0, -'/.default'.length));
    record.status = 200;
    send(res, 200, { token_type: 'Bearer', expires_in: expiresIn, ext_expires_in: expiresIn, access_token: token });
  }

  /** A workload-identity assertion must equal the federated token; a certificate one must verify. */
  function checkAssertion(assertion: string, type: string | null, tokenEndpoint: string): string | undefined {
    if (type !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return 'AADSTS700025: bad client_assertion_type';
    if (options.federatedToken !== undefined && safeEqual(assertion, options.federatedToken)) return undefined;
    const [h, p, s] = assertion.split('.');
    const header = h ? b64urlJson(h) : undefined;
    const payload = p ? b64urlJson(p) : undefined;
    if (!header || !payload || !s) return 'AADSTS50027: JWT token is invalid or malformed.';
    if (payload.aud !== tokenEndpoint) return `AADSTS700024: Client assertion audience ${String(payload.aud)} is not ${tokenEndpoint}.`;
    if (payload.iss !== clientId || payload.sub !== clientId) return 'AADSTS700023: Client assertion issuer/subject mismatch.';
    if (typeof payload.exp !== 'number' || payload.exp * 1000 < Date.now()) return 'AADSTS700027: Client assertion has expired.';
    if (!options.clientCertificatePem) return 'AADSTS700027: no certificate is registered for this application.';
    const cert = new X509Certificate(options.clientCertificatePem);
    const thumbS256 = createHash('sha256').update(cert.raw).digest('base64url');
    const thumbS1 = createHash('sha1').update(cert.raw).digest('base64url');
    if (header['x5t#S256'] !== thumbS256 && header.x5t !== thumbS1)
      return 'AADSTS700027: Client assertion contains an unknown certificate thumbprint.';
    const key = createPublicKey(cert.publicKey.export({ type: 'spki', format: 'pem' }));
    const data = Buffer.from(`${h}.${p}`);
    const sig = Buffer.from(s, 'base64url');
    const ok =
      header.alg === 'PS256'
        ? verify('sha256', data, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }, sig)
        : header.alg === 'RS256'
          ? verify('sha256', data, key, sig)
          : false;
    return ok ? undefined : 'AADSTS700027: Client assertion failed signature validation.';
  }

  async function managedIdentity(req: http.IncomingMessage, res: http.ServerResponse, url: URL, record: RequestRecord) {
    await readBody(req, 64 * 1024);
    if (await inject('msi', res, record)) return;
    const resource = url.searchParams.get('resource');
    const imds = url.pathname.startsWith('/metadata/');
    const authorized = imds ? req.headers.metadata === 'true' : req.headers['x-identity-header'] === identityHeader;
    if (!authorized) {
      record.status = 400;
      return send(res, 400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
    }
    if (!resource) {
      record.status = 400;
      return send(res, 400, { error: 'invalid_request', error_description: 'resource is required' });
    }
    const { token, expiresIn } = issueToken(resource);
    record.status = 200;
    const expiresOn = Math.floor(Date.now() / 1000) + expiresIn;
    send(res, 200, {
      access_token: token,
      expires_in: String(expiresIn),
      expires_on: String(expiresOn),
      not_before: String(expiresOn - expiresIn),
      resource,
      token_type: 'Bearer',
      client_id: url.searchParams.get('client_id') ?? clientId,
    });
  }

  async function control(req: http.IncomingMessage, res: http.ServerResponse, url: URL, record: RequestRecord) {
    const { body } = await readBody(req, 1024 * 1024);
    const cmd = url.pathname.slice('/_mock/'.length);
    const json = () => (body.length ? (JSON.parse(body.toString('utf8')) as unknown) : {});
    record.status = 200;
    switch (`${req.method} ${cmd}`) {
      case 'POST fail':
        api.fail(json() as FailRule);
        return send(res, 200, { ok: true, rules: rules.length });
      case 'POST clear':
        api.clearFailures();
        return send(res, 200, { ok: true });
      case 'POST reset':
        api.reset();
        return send(res, 200, { ok: true });
      case 'POST revoke-tokens':
        api.revokeTokens();
        return send(res, 200, { ok: true });
      case 'POST clock':
        api.setClockOffset(Number((json() as { offsetMs?: number }).offsetMs ?? 0));
        return send(res, 200, { ok: true });
      case 'POST refuse': {
        // Refuse for `ms` milliseconds (the listener must come back to serve the control API again).
        const ms = Number((json() as { ms?: number }).ms ?? 5000);
        send(res, 200, { ok: true, ms });
        setTimeout(() => {
          void api.refuseConnections().then(() => setTimeout(() => void api.acceptConnections(), ms));
        }, 20);
        return;
      }
      case 'GET stats':
        return send(res, 200, api.stats());
      case 'GET rows': {
        const since = Number(url.searchParams.get('since') ?? 0);
        const which = url.searchParams.get('api');
        return send(
          res,
          200,
          rows.filter((r) => r.at >= since && (!which || r.api === which)),
        );
      }
      case 'GET requests':
        return send(res, 200, requests);
      case 'GET info':
        return send(res, 200, info());
      default:
        record.status = 404;
        return send(res, 404, { error: `unknown control command ${req.method} ${cmd}` });
    }
  }

  function info() {
    return { url: base, port, https: useHttps, caPath, workspaceId, tenantId, clientId, dcrImmutableId, stream: streams[0], audience };
  }

  let listening = true;
  const checkToken = (authorization: string | undefined, aud: string): string | null => {
    const bearer = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
    const tok = bearer ? tokens.get(bearer) : undefined;
    if (!tok || tok.generation !== tokenGeneration) return 'The provided token is missing or invalid';
    if (tok.expiresAt <= Date.now()) return 'The provided token has expired';
    if (tok.audience !== aud.replace(/\/+$/, '')) return `The token audience ${tok.audience} is not ${aud}`;
    return null;
  };
  const api: MockAzure = {
    checkToken,
    url: base,
    port,
    https: useHttps,
    caPath,
    caPem,
    workspaceId,
    sharedKey,
    tenantId,
    clientId,
    clientSecret,
    dcrImmutableId,
    stream: streams[0]!,
    identityHeader,
    audience,
    rows,
    requests,
    fail(rule) {
      const now = Date.now();
      rules.push({
        ...rule,
        id: ++ruleSeq,
        until: rule.durationMs !== undefined ? now + rule.durationMs : undefined,
        remaining: rule.count,
      });
    },
    clearFailures() {
      rules = [];
    },
    async refuseConnections() {
      if (!listening) return;
      listening = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    async acceptConnections() {
      if (listening) return;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      listening = true;
    },
    revokeTokens() {
      tokenGeneration++;
    },
    setClockOffset(ms) {
      clockOffsetMs = ms;
    },
    setTokenLifetime(sec) {
      tokenLifetimeSec = sec;
    },
    stats() {
      const byApi: MockStats['byApi'] = {};
      for (const r of requests) {
        const a = (byApi[r.api] ??= { requests: 0, byStatus: {} });
        a.requests++;
        a.byStatus[String(r.status)] = (a.byStatus[String(r.status)] ?? 0) + 1;
      }
      return {
        requests: requests.length,
        byApi,
        rowsAccepted: { ...counters.accepted },
        tokensIssued: counters.tokensIssued,
        overlongFields: counters.overlongFields,
        typeMismatches: counters.typeMismatches.slice(0, 100),
        undeclaredColumns: [...counters.undeclared],
        maxConnections: counters.maxConnections,
        connectionsOpened: counters.connectionsOpened,
        maxInFlight: counters.maxInFlight,
        inFlight: counters.inFlight,
        validatedCalls: counters.validatedCalls,
        scannedCalls: counters.scannedCalls,
        scanFallbacks: counters.scanFallbacks,
        scanErrors: counters.scanErrors,
        scanErrorSamples: [...counters.scanErrorSamples],
        scanMismatches: counters.scanMismatches,
      };
    },
    reset() {
      rows.length = 0;
      requests.length = 0;
      counters.accepted = { 'log-analytics': 0, 'logs-ingestion': 0 };
      counters.tokensIssued = 0;
      counters.overlongFields = 0;
      counters.typeMismatches = [];
      counters.undeclared.clear();
      counters.maxConnections = sockets.size;
      counters.connectionsOpened = 0;
      counters.maxInFlight = counters.inFlight;
      counters.scannedCalls = 0;
      counters.scanFallbacks = 0;
      counters.scanErrors = 0;
      counters.scanErrorSamples = [];
      counters.scanMismatches = 0;
    },
    async close() {
      rules = [];
      if (!listening) return;
      listening = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
  return api;
}

/** Writes `value` to a fresh 0600 file in `dir` and returns its path (for sink configs in tests). */
export function writeSecretFile(dir: string, name: string, value: string): string {
  const p = join(dir, name);
  writeFileSync(p, `${value}\n`, { mode: 0o600 });
  return p;
}
