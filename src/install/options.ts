import { z } from 'zod';
import { CLOUDS, DEFAULT_FORWARDER_PORT } from '../config/schema.js';

const port = z.coerce.number().int().min(1).max(65535);

/** Parsed first, before anything is detected or asked. */
export const installOptionsSchema = z.object({
  workspaceId: z.string().optional(),
  primaryKey: z.string().optional(),
  keyFile: z.string().optional(),
  dce: z.string().url().optional(),
  dcr: z.string().optional(),
  stream: z.string().optional(),
  tenant: z.string().optional(),
  clientId: z.string().optional(),
  clientSecretFile: z.string().optional(),
  managedIdentity: z.boolean().default(false),
  sink: z.string().regex(/^file:\/.+/, 'use --sink file:/ABSOLUTE/PATH').optional(),
  cloud: z.enum(CLOUDS).optional(),
  usGov: z.boolean().default(false),
  port: port.default(514),
  forwarderPort: port.default(DEFAULT_FORWARDER_PORT),
  protocol: z.enum(['tcp', 'udp', 'both']).default('both'),
  daemon: z.enum(['rsyslog', 'syslog-ng']).optional(),
  endpoint: z.string().url().optional(),
  dryRun: z.boolean().default(false),
  yes: z.boolean().default(false),
  root: z.string().default('/'),
  verify: z.boolean().default(true),
  fixFirewall: z.boolean().optional(),
});
export type InstallOptions = z.infer<typeof installOptionsSchema>;

export const uninstallOptionsSchema = z.object({
  yes: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  root: z.string().default('/'),
  removeUser: z.boolean().default(false),
  purge: z.boolean().default(false),
});
export type UninstallOptions = z.infer<typeof uninstallOptionsSchema>;

/** The first zod issue as one line naming the flag. */
export function formatOptionError(err: z.ZodError): string {
  const issue = err.issues[0];
  const flag = issue.path.length ? `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : 'options';
  return `${flag}: ${issue.message}`;
}
