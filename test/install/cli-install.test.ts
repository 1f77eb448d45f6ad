import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// The built binary, as an operator runs it (CI=true: no prompts).
const bin = path.resolve(import.meta.dirname, '../../bin/sentinel-cef');
const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const env = { CI: 'true', NO_COLOR: '1' };

function copyFixture(c: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `scef-cli-${c}-`));
  cpSync(path.join(fixtures, c), dir, { recursive: true });
  return dir;
}

function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, n.name);
      if (n.isDirectory()) walk(p);
      else out.push(`${path.relative(dir, p)} ${statSync(p).mode.toString(8)} ${readFileSync(p).toString('base64')}`);
    }
  };
  walk(dir);
  return out.sort();
}

describe('sentinel-cef install / uninstall (built CLI)', () => {
  it('with no destination and no TTY: one line, exit 2', async () => {
    const root = copyFixture('debian12-rsyslog');
    const r = await execa(bin, ['install', '--root', root, '--dry-run'], { env, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n').pop()).toBe(
      'sentinel-cef: no destination given — pass <workspaceId> <primaryKey>, --dce URL --dcr ID, or --sink file:PATH',
    );
  });

  it('rejects a bad port with the flag named', async () => {
    const r = await execa(bin, ['install', '--port', 'abc', '--sink', 'file:/tmp/x.ndjson'], { env, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe("sentinel-cef: --port must be an integer from 1 to 65535, got 'abc'");
  });

  it('--dry-run on Ubuntu prints the plan and a unified diff, and changes nothing', async () => {
    const root = copyFixture('ubuntu2204-rsyslog');
    const before = tree(root);
    const r = await execa(bin, ['install', '--root', root, '--sink', 'file:/var/tmp/scef/rows.ndjson', '--protocol', 'udp', '--dry-run'], {
      env,
      reject: false,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('create    /etc/rsyslog.d/10-sentinel-cef.conf [0644]');
    expect(r.stdout).toContain('+++ b/etc/rsyslog.d/10-sentinel-cef.conf');
    expect(r.stdout).toContain('+module(load="imudp")');
    expect(r.stdout).toContain('Dry run: nothing was changed.');
    expect(r.stderr).toContain('distribution: Ubuntu 22.04.4 LTS');
    expect(tree(root)).toEqual(before);
  });

  it('warns that a key on argv is visible, and never prints it', async () => {
    const root = copyFixture('debian12-rsyslog');
    const key = Buffer.from('s'.repeat(64)).toString('base64');
    const r = await execa(bin, ['install', '11111111-2222-3333-4444-555555555555', key, '--root', root, '--dry-run', '-FF'], {
      env,
      reject: false,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain('visible to other local users in /proc');
    expect(r.stdout).toContain('AzureUSGovernment');
    expect(r.stdout + r.stderr).not.toContain(key);
    expect(r.stdout).toContain('/etc/sentinel-cef/shared-key: secret, content not shown (');
  });

  it('refuses a file sink that is a directory or a device in one line, exit 2, before anything changes', async () => {
    const root = copyFixture('debian12-rsyslog');
    const before = tree(root);
    const r = await execa(bin, ['install', '--sink', 'file:/etc', '--root', root, '--yes'], { env, reject: false });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr.trim()).toBe(
      'sentinel-cef: file sink /etc is a directory, not a regular file — choose a file path for --sink file:PATH (rows are appended to it as NDJSON)',
    );
    expect(tree(root)).toEqual(before);
  });

  it('uninstall with nothing installed says so', async () => {
    const root = copyFixture('debian12-rsyslog');
    const r = await execa(bin, ['uninstall', '--root', root, '--yes'], { env, reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Nothing to uninstall');
  });
});
