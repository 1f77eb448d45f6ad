import type { FsRoot } from './fs-root.js';

export type DistroFamily = 'debian' | 'rhel' | 'suse' | 'amazon' | 'unknown';
export type PackageManager = 'apt-get' | 'dnf' | 'yum' | 'zypper';

export interface Distro {
  id: string;
  name: string;
  version: string;
  family: DistroFamily;
  packageManager: PackageManager | null;
  /** In the list of distributions the installer is tested against (RHEL-like 7–9, Amazon 2/2023, ...). */
  supported: boolean;
}

/** Parses os-release(5): KEY=value lines, values optionally quoted with shell-style escapes. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2];
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) {
      v = v.slice(1, -1).replace(/\\(["'$`\\])/g, '$1');
    }
    out[m[1]] = v;
  }
  return out;
}

const RHEL_IDS = ['rhel', 'centos', 'rocky', 'almalinux', 'ol', 'fedora'];
const SUSE_IDS = ['sles', 'sled', 'opensuse', 'opensuse-leap', 'suse'];

export function classifyDistro(osRelease: Record<string, string>): Distro {
  const id = (osRelease.ID ?? 'unknown').toLowerCase();
  const like = (osRelease.ID_LIKE ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const version = osRelease.VERSION_ID ?? '';
  const major = Number.parseInt(version, 10);
  const name = osRelease.PRETTY_NAME ?? osRelease.NAME ?? id;
  const is = (ids: string[]) => ids.includes(id) || like.some((l) => ids.includes(l));

  let family: DistroFamily = 'unknown';
  let packageManager: PackageManager | null = null;
  let supported = false;
  if (id === 'amzn') {
    family = 'amazon';
    packageManager = major >= 2022 ? 'dnf' : 'yum';
    supported = version === '2' || major === 2023;
  } else if (id === 'debian' || id === 'ubuntu' || is(['debian', 'ubuntu'])) {
    family = 'debian';
    packageManager = 'apt-get';
    if (id === 'debian') supported = major >= 10 && major <= 12;
    else if (id === 'ubuntu') supported = ['18.04', '20.04', '22.04', '24.04'].includes(version);
  } else if (is(SUSE_IDS) || id.startsWith('opensuse')) {
    family = 'suse';
    packageManager = 'zypper';
    supported = major >= 12 && major <= 15;
  } else if (is(RHEL_IDS)) {
    family = 'rhel';
    packageManager = major >= 8 || id === 'fedora' ? 'dnf' : 'yum';
    supported = id !== 'fedora' && major >= 7 && major <= 9;
  }
  return { id, name, version, family, packageManager, supported };
}

/** Reads /etc/os-release (falling back to /usr/lib/os-release) under the given root. */
export async function detectDistro(fs: FsRoot): Promise<Distro> {
  const text = (await fs.readText('/etc/os-release')) ?? (await fs.readText('/usr/lib/os-release'));
  if (text === null) {
    return { id: 'unknown', name: 'unknown (no /etc/os-release)', version: '', family: 'unknown', packageManager: null, supported: false };
  }
  return classifyDistro(parseOsRelease(text));
}
