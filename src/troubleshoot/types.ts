import { z } from 'zod';
import type { Exec } from '../system/exec.js';
import { DEFAULT_CONFIG_PATH } from '../config/schema.js';
import { hostPortOption } from '../config/listen.js';
import { azureUrlOption, intOption, secondsOption } from '../util/option-schemas.js';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';
export const CHECK_GROUPS = ['forwarder', 'azure', 'daemon', 'system', 'e2e'] as const;
export type CheckGroup = (typeof CHECK_GROUPS)[number];

/** One finding. Plain data: the renderer prints it, `--json` serialises it as is. */
export interface CheckResult {
  id: string;
  title: string;
  group: CheckGroup;
  status: CheckStatus;
  message: string;
  /** One line that says what to do; set on every fail and on most warns. */
  fix?: string;
  details?: Record<string, unknown>;
}

export interface TroubleshootReport {
  /** No check failed and every check finished within --timeout. */
  ok: boolean;
  /** Checks that did not finish within --timeout, or a readback that could not query the workspace (the run proved nothing about them); absent when all finished. */
  unfinished?: string[];
  checks: CheckResult[];
  /** Where each setting the checks use came from; an explicit flag that overrides the install says so. */
  settings?: Setting[];
}

export interface Setting {
  name: 'port' | 'protocol' | 'daemon' | 'config' | 'workspace';
  value: string | number;
  from: 'flag' | 'install' | 'default';
  /** What install recorded, when a flag overrides it. */
  installed?: string | number;
}

/** A fix `--fix` may apply on its own: restarts, re-rendering our own files, opening our port. */
export interface SafeFix {
  /** Shown in the prompt: what will be done. */
  description: string;
  apply(): Promise<void>;
}

/** What a check function returns: the result plus, optionally, the safe fix for it. */
export interface CheckOutcome extends CheckResult {
  safeFix?: SafeFix;
}

export const troubleshootOptionsSchema = z.object({
  /** Expected workspace id: when given, the configured sink must point at it. */
  workspaceId: z
    .string()
    .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'must be a GUID (the workspace id)')
    .optional(),
  /** Forwarder config; when absent, the one install recorded, else the default path. */
  configPath: z.string().min(1).default(DEFAULT_CONFIG_PATH),
  /** Admin endpoint HOST:PORT; when absent, taken from the config (default 127.0.0.1:25227). */
  admin: hostPortOption('--admin', '127.0.0.1:25227').optional(),
  /** The daemon's CEF port (the CLI fills it from the install state unless --port is given). */
  port: intOption(1, 65535).default(514),
  /** Transports the daemon was installed to accept. */
  protocol: z.enum(['tcp', 'udp', 'both'], { message: 'must be one of tcp, udp, both' }).default('both'),
  /** The daemon install configured, when it recorded one. */
  daemon: z.enum(['rsyslog', 'syslog-ng']).optional(),
  /** The forwarder port install recorded (used when the config cannot be read). */
  forwarderPort: z.number().int().min(1).max(65535).optional(),
  probes: intOption(0, 1000).default(3),
  /** Bytes per probe (the size the devices send); when absent, just under the smallest configured limit. */
  probeSize: intOption(256, 1024 * 1024).optional(),
  timeoutSec: secondsOption(600).default(10),
  /** How long to wait for the probes to show up in CommonSecurityLog (ingestion takes minutes); 0 turns readback off. */
  readbackTimeoutSec: secondsOption(3600, { allowZero: true }).default(300),
  /** Logs Query and ARM base URLs (private clouds, tests); default from the sink's cloud. */
  logsQueryEndpoint: azureUrlOption().optional(),
  armEndpoint: azureUrlOption().optional(),
  capture: z.boolean().default(false),
  fix: z.boolean().default(false),
  yes: z.boolean().default(false),
  /** Install recorded --forwarder-only: no syslog daemon, the forwarder itself listens on `port`. */
  forwarderOnly: z.boolean().default(false),
  /** Install recorded --durable: the drop-in keeps the daemon's queues on disk. */
  durable: z.boolean().default(false),
  /** rsyslog: the transport to the forwarder install recorded (absent in older states). */
  transport: z.enum(['relp', 'tcp']).optional(),
  /** rsyslog: the intake state file install recorded (null: none; absent in older states). */
  intakeStateFile: z.string().nullable().optional(),
});
export type TroubleshootOptions = z.infer<typeof troubleshootOptionsSchema>;
export type TroubleshootOptionsInput = z.input<typeof troubleshootOptionsSchema>;

/** The one process runner's result (system/exec.ts): troubleshoot runs programs through the same seam as install. */
export type { ExecResult } from '../system/exec.js';

export type Transport = 'tcp' | 'udp';

export interface EndpointProbe {
  url: string;
  host: string;
  port: number;
  via?: string;
  resolved?: string[];
  dnsError?: string;
  tcpError?: string;
  tlsError?: string;
  /** TLS (or plain HTTP for http:// endpoints) handshake and a request completed. */
  ok: boolean;
  httpStatus?: number;
  /** The Date header of the response, epoch ms. */
  serverDate?: number;
  /** Local clock at the moment the response arrived. */
  localDate?: number;
  elapsedMs?: number;
}

/** What install rendered the daemon's drop-in from, for troubleshoot's drift comparison and --fix. */
export interface DropInRenderOptions {
  port: number;
  forwarderPort: number;
  queueMaxBytes?: number;
  protocol?: 'tcp' | 'udp' | 'both';
  intakeStateFile?: string | null;
  durable?: boolean;
  /** rsyslog: render this transport, whatever the omrelp module's presence says. */
  transport?: 'relp' | 'tcp';
}

/**
 * The outside world, injectable so tests run against fixture trees, fake programs and a fake admin server.
 * Paths given to the checks are absolute paths of the target system; `root` is prepended to reach them.
 */
export interface TroubleshootDeps {
  root: string;
  env: Record<string, string | undefined>;
  /** The one process runner (system/exec.ts): programs run without a shell; a non-zero exit or a missing program is a result. */
  exec: Exec;
  fetch: typeof fetch;
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Sends one syslog message; rejects when it cannot be sent (e.g. TCP connection refused). */
  sendSyslog(target: { host: string; port: number; transport: Transport }, message: string): Promise<void>;
  /** DNS, TCP and TLS to an HTTPS endpoint (through HTTPS_PROXY unless NO_PROXY covers it), reading the Date header. */
  probeEndpoint(url: string, opts: { timeoutMs: number; env: Record<string, string | undefined> }): Promise<EndpointProbe>;
  /** Obtains an Entra ID token for the logs-ingestion sink; rejects with the identity error. */
  getToken(sink: unknown, opts: { timeoutMs: number }): Promise<{ expiresOn: number }>;
  /** Signs in and returns a Logs Query + ARM client for readback (tests pass one backed by the mocks). */
  readbackClient?(opts: {
    cloud: import('../config/schema.js').Cloud;
    logsQueryUrl?: string;
    armUrl?: string;
  }): Promise<import('../azure/readback.js').ReadbackClient>;
  /** Free and total bytes of the filesystem holding `path` (a target-system path). */
  statfs(path: string): Promise<{ free: number; total: number } | null>;
  /**
   * Starts a packet capture (tcpdump) of the given ports; null with a reason when it cannot run.
   * stop() ends it and returns the text it printed.
   */
  startCapture(ports: number[]): Promise<{ stop(): Promise<string> } | { unavailable: string }>;
  /**
   * What `install` would write as the daemon drop-in today: for the recorded protocol, or (none recorded) one
   * candidate per install choice (both, TCP, UDP); each excluding our own file from the scan. Null when this build cannot render it.
   */
  renderDropIn(daemon: 'rsyslog' | 'syslog-ng', opts: DropInRenderOptions): Promise<Array<{ path: string; content: string }> | null>;
  /** Starting services where PID 1 is not systemd: the installer's supervisor and daemon start-up. */
  services: {
    startForwarder(configPath: string): Promise<string>;
    restartDaemon(daemon: 'rsyslog' | 'syslog-ng', listen: { port: number; protocols: Array<'tcp' | 'udp'> }): Promise<string>;
    /** Waits until the forwarder's admin endpoint answers (it opens after the intake listens); false on timeout. */
    forwarderReady?(adminBase: string, timeoutMs: number): Promise<boolean>;
  };
  /** Writes a target-system file atomically with the given mode (used by --fix only). */
  writeFile(path: string, content: string, mode: number): Promise<void>;
  /** Asks a yes/no question (only called when stdin is a TTY and --yes was not given). */
  confirm(question: string): Promise<boolean>;
  /** Progress line for people (stderr); silent in tests. */
  progress(text: string): void;
  isTTY: boolean;
}
