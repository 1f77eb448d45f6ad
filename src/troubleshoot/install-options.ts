import { createFsRoot } from '../system/fs-root.js';
import { readState, type InstalledOptions } from '../install/transaction.js';
import type { Setting, TroubleshootDeps, TroubleshootOptionsInput } from './types.js';

/** What the last install recorded, or null (no install, an install older than the record, unreadable state). */
export async function readInstalledOptions(deps: Pick<TroubleshootDeps, 'root'>): Promise<InstalledOptions | null> {
  try {
    return (await readState(createFsRoot(deps.root)))?.options ?? null;
  } catch {
    return null;
  }
}

/**
 * Fills what the user did not pass with what install rendered from, so checks, drift comparison and fixes
 * agree with the installed drop-in (a custom --port stays custom). A flag wins, and the settings say so.
 */
export async function applyInstalledOptions(
  input: TroubleshootOptionsInput,
  deps: Pick<TroubleshootDeps, 'root'>,
): Promise<{ input: TroubleshootOptionsInput; settings: Setting[] }> {
  const inst = await readInstalledOptions(deps);
  const out: TroubleshootOptionsInput = { ...input };
  const settings: Setting[] = [];
  const pick = <K extends 'port' | 'protocol' | 'daemon' | 'configPath'>(
    key: K,
    name: Setting['name'],
    installed: TroubleshootOptionsInput[K] | undefined,
  ) => {
    const flag = input[key];
    if (flag !== undefined) {
      const differs = installed !== undefined && installed !== flag;
      settings.push({
        name,
        value: flag as string | number,
        from: 'flag',
        ...(differs ? { installed: installed as string | number } : {}),
      });
    } else if (installed !== undefined) {
      out[key] = installed;
      settings.push({ name, value: installed as string | number, from: 'install' });
    }
  };
  pick('port', 'port', inst?.port);
  pick('protocol', 'protocol', inst?.protocol);
  pick('daemon', 'daemon', inst?.daemon === 'rsyslog' || inst?.daemon === 'syslog-ng' ? inst.daemon : undefined);
  pick('configPath', 'config', inst?.configPath);
  if (inst && out.forwarderPort === undefined) out.forwarderPort = inst.forwarderPort;
  if (inst?.mode === 'forwarder-only' && out.forwarderOnly === undefined) out.forwarderOnly = true;
  // The workspace install set up: readback runs without --workspace (a flag, or --readback-timeout 0, wins).
  if (inst?.workspaceId && input.workspaceId === undefined) {
    out.workspaceId = inst.workspaceId;
    settings.push({ name: 'workspace', value: inst.workspaceId, from: 'install' });
  }
  if (inst?.durable && out.durable === undefined) out.durable = true;
  if (inst?.transport && out.transport === undefined) out.transport = inst.transport;
  if (inst && inst.intakeStateFile !== undefined && out.intakeStateFile === undefined) out.intakeStateFile = inst.intakeStateFile;
  return { input: out, settings };
}

/** One line per explicit flag that overrides what install recorded. */
export function describeOverrides(settings: Setting[] | undefined): string[] {
  const flag: Record<Setting['name'], string> = {
    port: '--port',
    protocol: '--protocol',
    daemon: '--daemon',
    config: '--config',
    workspace: '--workspace',
  };
  return (settings ?? [])
    .filter((s) => s.from === 'flag' && s.installed !== undefined)
    .map((s) => `${flag[s.name]} ${s.value} overrides ${s.name} ${s.installed} recorded by install`);
}
