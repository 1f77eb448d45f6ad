import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execa } from 'execa';
import path from 'node:path';
import { installCommand } from '../../src/commands/install.js';
import { formatError, UsageError } from '../../src/errors.js';
import { installOptionsSchema } from '../../src/install/options.js';
import { renderForwarderUnit } from '../../src/install/service.js';
import { renderRsyslogDropin } from '../../src/install/render-rsyslog.js';
import { renderSyslogNgDropin } from '../../src/install/render-syslog-ng.js';
import { firstSystemdWord, UnsafeValueError } from '../../src/install/config-escape.js';
import type { RsyslogScan } from '../../src/install/rsyslog-config.js';
import type { SyslogNgScan } from '../../src/install/syslog-ng-config.js';
import { CONTROL_CHARS } from '../../src/util/control-chars.js';

// Every flag whose value reaches a rendered file, with a value it accepts.
const FLAGS: Array<[flag: string, valid: string]> = [
  ['--sink', 'file:/var/lib/x/rows.ndjson'],
  ['--dce', 'https://my-dce.eastus-1.ingest.monitor.azure.com'],
  ['--endpoint', 'https://ws.ods.opinsights.azure.com'],
  ['--dcr', 'dcr-0123456789abcdef0123456789abcdef'],
  ['--stream', 'Custom-CommonSecurityLog'],
  ['--tenant', 'contoso.onmicrosoft.com'],
  ['--client-id', '00000000-0000-4000-8000-000000000001'],
  ['--key-file', 'key file.txt'],
  ['--client-secret-file', '/root/secret'],
  ['--cloud', 'AzureCloud'],
  ['--port', '514'],
  ['--forwarder-port', '25226'],
  ['<workspaceId>', '11111111-2222-3333-4444-555555555555'],
];

// Appended to a valid value: each would add a line, a directive, a specifier, or end a quoted string.
const CONTROL = ['\nExecStartPre=/bin/touch /tmp/pwned', '\r\nUser=root', '\u0000', '\t', '\u007f', '\u2028', '\u0085'];
const SYNTAX = ['"', '`id`', ' x', '\\'];
const PATH_ONLY = ['%h', '$HOME', "'", '/../etc', '/'];
// Files install only reads (their content goes to a 0600 secret file): any name, but on one line.
const READ_ONLY = new Set(['--key-file', '--client-secret-file']);
const hostile = FLAGS.flatMap(([flag, valid]) => [
  ...CONTROL.map((s) => [flag, valid + s] as const),
  ...(READ_ONLY.has(flag) ? [] : SYNTAX.map((s) => [flag, valid + s] as const)),
  ...(flag === '--sink' ? PATH_ONLY.map((s) => [flag, valid + s] as const) : []),
]);

function argvFor(flag: string, value: string): string[] {
  if (flag === '<workspaceId>') return [value, 'a2V5a2V5a2V5a2V5a2V5a2V5', '--dry-run'];
  return [flag, value, '--dry-run'];
}

describe('values that reach rendered files', () => {
  it.each(hostile)('%s %j: a one-line usage error, exit 2', async (flag, value) => {
    const err = await installCommand()
      .exitOverride()
      .parseAsync(argvFor(flag, value), { from: 'user' })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
    const line = formatError(err);
    expect(line.startsWith(flag), line).toBe(true);
    expect(line).not.toMatch(CONTROL_CHARS);
  });

  it.each(FLAGS)('%s accepts %j', (flag, valid) => {
    const key = flag === '<workspaceId>' ? 'workspaceId' : flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    expect(installOptionsSchema.safeParse({ [key]: valid }).success).toBe(true);
  });

  it('the port message names the flag, the range and the value', () => {
    const r = installOptionsSchema.safeParse({ forwarderPort: '70000' });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0].message).toBe("--forwarder-port must be an integer from 1 to 65535, got '70000'");
  });

  const bin = path.resolve(import.meta.dirname, '../../bin/sentinel-cef');
  // Whole CLI runs on a loaded machine: one at a time, with room.
  it.each([
    ['--sink', 'file:/var/lib/x\nExecStartPre=/bin/touch /tmp/pwned\n#/rows.ndjson'],
    ['--dce', 'https://x.example.com/\nExecStartPre=/bin/true'],
    ['--cloud', 'AzureCloud\nUser=root'],
    ['--protocol', 'tcp\nUser=root'],
    ['--port', '514\n'],
  ])(
    'the built CLI: %s with a newline is exit 2 and one line on stderr',
    async (flag, value) => {
      const r = await execa(
        bin,
        ['install', '--sink', 'file:/var/tmp/scef/rows.ndjson', flag, value, '--dry-run', '--root', '/nonexistent'],
        {
          env: { CI: 'true', NO_COLOR: '1' },
          reject: false,
        },
      );
      expect(r.exitCode).toBe(2);
      expect(r.stderr.trimEnd().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stdout).toBe('');
    },
    60_000,
  );
});

// ---- render: nothing the schema accepts adds a line or a directive ----

/** Strings built from pieces that break formats, plus arbitrary text. */
const nasty = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc
    .array(
      fc.constantFrom(
        '/',
        'a',
        'Z',
        '0',
        '.',
        '-',
        '_',
        '\n',
        '\r',
        '"',
        "'",
        '\\',
        '%',
        '$',
        '`',
        ' ',
        '#',
        ';',
        '=',
        '\u2028',
        '\u0000',
        'file:',
        'https://',
        '..',
      ),
      { maxLength: 30 },
    )
    .map((a) => a.join('')),
);

/** Path-like strings: mostly characters a path may hold, now and then one that breaks a format. */
const pathish = fc
  .array(
    fc.oneof(
      { weight: 12, arbitrary: fc.constantFrom('a', 'Z', '0', '.', '-', '_', '+', '@', ',', '=', '/', 'x/', 'rows.ndjson') },
      { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '"', "'", '\\', '%', '$', '`', ' ', '#', ';', '\u2028', '\u0000', '..', '//') },
    ),
    { minLength: 1, maxLength: 20 },
  )
  .map((a) => a.join(''));

/** systemd's view of a unit: sections and settings, in order (comments and blanks dropped). */
function unitDirectives(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '' && !/^[#;]/.test(l))
    .map((l) => {
      expect(l, `not a unit line: ${JSON.stringify(l)}`).toMatch(/^(\[[A-Za-z]+\]|[A-Za-z]+=.*)$/);
      return l.startsWith('[') ? l : l.slice(0, l.indexOf('='));
    });
}

/** Splits a command line as systemd does: double quotes with C escapes; `%%` and `$$` are literal. */
function systemdWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) {
    const raw = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
    words.push(raw.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return words;
}

const baseUnit = unitDirectives(renderForwarderUnit({ nodePath: '/usr/bin/node', sinkFile: '/var/lib/x/rows.ndjson' }));

describe('rendering what the schema accepts', () => {
  it('a --sink the schema accepts adds no line or directive to the unit, and ReadWritePaths reads back as its folder', () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.oneof(pathish, nasty), (tail) => {
        const r = installOptionsSchema.safeParse({ sink: `file:/${tail}` });
        if (!r.success) return;
        accepted++;
        const sinkFile = r.data.sink!.slice('file:'.length);
        const unit = renderForwarderUnit({ nodePath: '/usr/bin/node', sinkFile });
        const dirs = unitDirectives(unit);
        expect(dirs.filter((d) => d !== 'ReadWritePaths')).toEqual(baseUnit.filter((d) => d !== 'ReadWritePaths'));
        const rw = unit.split('\n').filter((l) => l.startsWith('ReadWritePaths='));
        if (path.dirname(sinkFile) === '/') expect(rw.length).toBeLessThanOrEqual(1);
        else expect(rw.map((l) => systemdWords(l.slice('ReadWritePaths='.length)))).toEqual([[path.dirname(sinkFile)]]);
      }),
      { numRuns: 2000 },
    );
    // The property says something only if the generator reaches accepted paths often.
    expect(accepted).toBeGreaterThan(300);
  });

  it('any node path renders into ExecStart as one word that reads back unchanged, or is refused', () => {
    fc.assert(
      fc.property(fc.oneof(pathish, nasty), (tail) => {
        const nodePath = `/${tail}`;
        let unit: string;
        try {
          unit = renderForwarderUnit({ nodePath, sinkFile: null });
        } catch (e) {
          expect(e).toBeInstanceOf(UnsafeValueError);
          expect(nodePath).toMatch(CONTROL_CHARS);
          return;
        }
        const exec = unit.split('\n').filter((l) => l.startsWith('ExecStart='));
        expect(exec).toHaveLength(1);
        expect(systemdWords(exec[0].slice('ExecStart='.length))[0]).toBe(nodePath);
        // What troubleshoot's forwarder.unit reads back from an install record older than its recorded inputs.
        expect(firstSystemdWord(exec[0].slice('ExecStart='.length))).toBe(nodePath);
        expect(unitDirectives(unit)).toEqual(baseUnit.filter((d) => d !== 'ReadWritePaths'));
      }),
      { numRuns: 500 },
    );
  });

  it('every string option the schema accepts reads back unchanged from the JSON config, one value per key', () => {
    const keys = ['dce', 'endpoint', 'dcr', 'stream', 'tenant', 'clientId', 'workspaceId'] as const;
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...keys),
        fc.oneof(pathish, nasty),
        fc.constantFrom('', 'https://a.example/', 'dcr-', 'Custom-', '00000000-0000-4000-8000-00000000000'),
        (key, tail, head) => {
          const r = installOptionsSchema.safeParse({ [key]: head + tail });
          if (!r.success) return;
          accepted++;
          const v = r.data[key]!;
          const text = `${JSON.stringify({ sink: { [key]: v } }, null, 2)}\n`;
          expect(text.split('\n')).toHaveLength(6);
          expect(JSON.parse(text).sink[key]).toBe(v);
          expect(v).not.toMatch(new RegExp(CONTROL_CHARS.source + '|["\\\\`]'));
        },
      ),
      { numRuns: 3000 },
    );
    expect(accepted).toBeGreaterThan(50);
  });

  const rsyslogScan: RsyslogScan = {
    mainFile: '/etc/rsyslog.conf',
    files: [],
    modules: new Set(),
    inputs: [],
    maxMessageSize: '64k',
    workDirectory: '/var/spool/rsyslog',
    includesDropins: true,
    dropinDir: '/etc/rsyslog.d',
  };
  const ngScan: SyslogNgScan = {
    mainFile: '/etc/syslog-ng/syslog-ng.conf',
    files: [],
    includesConfD: true,
    sources: [],
    destinations: ['d_syslog'],
    listeners: [],
    version: null,
  };
  // Lines with the numbers blanked: a port may change digits, never the shape of the file.
  const shape = (s: string) => s.split('\n').map((l) => l.replace(/[0-9]+/g, 'N'));

  it('ports the schema accepts change only digits in the rsyslog and syslog-ng drop-ins', () => {
    const base = { port: 514, forwarderPort: 25226, protocol: 'both' as const };
    const rs = shape(renderRsyslogDropin(rsyslogScan, base).content);
    const ng = shape(renderSyslogNgDropin(ngScan, base).content);
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 8 }), fc.integer().map(String), fc.double().map(String)),
        fc.constantFrom('port', 'forwarderPort'),
        (v, key) => {
          const r = installOptionsSchema.safeParse({ [key]: v });
          if (!r.success) return;
          const o = { ...base, [key]: r.data[key as 'port'] };
          expect(shape(renderRsyslogDropin(rsyslogScan, o).content)).toEqual(rs);
          expect(shape(renderSyslogNgDropin(ngScan, o).content)).toEqual(ng);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('the render sites refuse what the schema would have refused', () => {
    const base = { port: 514, forwarderPort: 25226, protocol: 'both' as const };
    expect(() => renderRsyslogDropin(rsyslogScan, { ...base, forwarderPort: Number.NaN })).toThrow(UnsafeValueError);
    expect(() => renderSyslogNgDropin(ngScan, { ...base, port: 70000 })).toThrow(UnsafeValueError);
    const reuse = { ...ngScan, listeners: [{ source: 's_x\n};', port: 514, protocol: 'udp' as const }] } as unknown as SyslogNgScan;
    expect(() => renderSyslogNgDropin(reuse, base)).toThrow(UnsafeValueError);
    expect(() => renderForwarderUnit({ nodePath: '/usr/bin/node', sinkFile: '/x\n/y' })).toThrow(UnsafeValueError);
  });

  it('ties the unit to rsyslog (After=, PartOf=, WantedBy=) only when rsyslog reads the intake state file (issue 15)', () => {
    const tied = (u: string) => u.split('\n').filter((l) => /^(After|PartOf|WantedBy)=.*rsyslog/.test(l));
    expect(tied(renderForwarderUnit({ nodePath: '/usr/bin/node', sinkFile: null }))).toEqual([]);
    expect(
      tied(renderForwarderUnit({ nodePath: '/usr/bin/node', sinkFile: null, intakeStateFile: '/run/sentinel-cef/intake.state' })),
    ).toEqual(['After=rsyslog.service', 'PartOf=rsyslog.service', 'WantedBy=rsyslog.service']);
  });
});
