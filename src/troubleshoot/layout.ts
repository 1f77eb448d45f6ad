import { FORWARDER_PATH, LOG_DIR, RUN_DIR, SUPERVISOR_PATH, SUPERVISOR_PIDFILE, UNIT_NAME, UNIT_PATH } from '../install/service.js';
import { RSYSLOG_DROPIN } from '../install/render-rsyslog.js';
import { SYSLOG_NG_DROPIN } from '../install/render-syslog-ng.js';

/**
 * Where `install` puts things on the target system (its own constants), so the checks, `--fix` and
 * `--collect` agree with the installer.
 */
export const LAYOUT = {
  bundleCandidates: [FORWARDER_PATH],
  serviceName: UNIT_NAME,
  unitPath: UNIT_PATH,
  /** Without systemd: the supervisor and the forwarder it runs. */
  supervisorPidFile: SUPERVISOR_PIDFILE,
  supervisorName: SUPERVISOR_PATH.slice(SUPERVISOR_PATH.lastIndexOf('/') + 1),
  forwarderPidFile: `${RUN_DIR}/forwarder.pid`,
  logFiles: [`${LOG_DIR}/forwarder.log`],
  rsyslogDropIn: RSYSLOG_DROPIN,
  syslogNgDropIn: SYSLOG_NG_DROPIN,
  rsyslogMain: '/etc/rsyslog.conf',
  rsyslogDir: '/etc/rsyslog.d',
  syslogNgMain: '/etc/syslog-ng/syslog-ng.conf',
  syslogNgDir: '/etc/syslog-ng/conf.d',
  systemLogs: ['/var/log/syslog', '/var/log/messages'],
};

export function dropInPath(d: 'rsyslog' | 'syslog-ng'): string {
  return d === 'rsyslog' ? LAYOUT.rsyslogDropIn : LAYOUT.syslogNgDropIn;
}
