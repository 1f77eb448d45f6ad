// Managed by sentinel-cef. Keeps the forwarder running where PID 1 is not systemd (containers, chroots):
// restarts it on a crash with backoff, writes pidfiles, passes SIGTERM/SIGINT on and exits with it.
// Usage: node sentinel-cef-supervise.mjs --pidfile F --child-pidfile F --log F -- CMD [ARGS...]
import { spawn } from 'node:child_process';
import { openSync, renameSync, statSync, writeFileSync, rmSync } from 'node:fs';

// The log is kept below 50 MB: on each (re)start a larger one becomes <log>.1.
const MAX_LOG = 50 * 1024 * 1024;

const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
const opts = {};
for (let i = 0; i < (sep < 0 ? argv.length : sep); i += 2) opts[argv[i].replace(/^--/, '')] = argv[i + 1];
const command = sep < 0 ? [] : argv.slice(sep + 1);
if (command.length === 0 || !opts.pidfile) {
  process.stderr.write('usage: sentinel-cef-supervise.mjs --pidfile F [--child-pidfile F] [--log F] -- CMD...\n');
  process.exit(2);
}

writeFileSync(opts.pidfile, `${process.pid}\n`);
let child = null;
let stopping = false;
let failures = 0;
let startedAt = 0;

function start() {
  if (opts.log) {
    try {
      if (statSync(opts.log).size > MAX_LOG) renameSync(opts.log, `${opts.log}.1`);
    } catch {
      // No log yet (nothing to rotate), or it cannot be rotated: keep appending to it.
    }
  }
  const out = opts.log ? openSync(opts.log, 'a', 0o640) : 'ignore';
  startedAt = Date.now();
  child = spawn(command[0], command.slice(1), { stdio: ['ignore', out, out] });
  if (opts['child-pidfile'] && child.pid) writeFileSync(opts['child-pidfile'], `${child.pid}\n`);
  child.on('exit', (code, signal) => {
    child = null;
    if (stopping) return finish(0);
    // A child that ran for a minute counts as healthy again; otherwise back off up to 30 s.
    failures = Date.now() - startedAt > 60_000 ? 1 : failures + 1;
    const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
    log(`forwarder exited (code ${code}, signal ${signal}); restarting in ${delay} ms`);
    setTimeout(start, delay);
  });
  child.on('error', (err) => log(`cannot start forwarder: ${err.message}`));
}

function log(msg) {
  if (!opts.log) return;
  try {
    writeFileSync(opts.log, `${new Date().toISOString()} supervisor: ${msg}\n`, { flag: 'a' });
  } catch {
    // The log is best effort: a full or unwritable disk must not stop the supervisor.
  }
}

function finish(code) {
  for (const f of [opts.pidfile, opts['child-pidfile']]) if (f) rmSync(f, { force: true });
  process.exit(code);
}

function stop() {
  stopping = true;
  if (!child) return finish(0);
  child.kill('SIGTERM');
  // The forwarder flushes on SIGTERM; give it time, then insist.
  setTimeout(() => child && child.kill('SIGKILL'), 25_000).unref();
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('SIGHUP', () => {});
start();
