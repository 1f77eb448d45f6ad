/**
 * Where `install` puts things on the target system. Kept in one place so the checks, `--fix` and
 * `--collect` agree with the installer.
 */
export const LAYOUT = {
  bundleCandidates: ['/opt/sentinel-cef/forwarder.mjs', '/usr/lib/sentinel-cef/forwarder.mjs'],
  serviceName: 'sentinel-cef-forwarder',
  pidFiles: ['/run/sentinel-cef/forwarder.pid', '/var/run/sentinel-cef/forwarder.pid'],
  logFiles: ['/var/log/sentinel-cef/forwarder.log'],
  rsyslogDropIn: '/etc/rsyslog.d/10-sentinel-cef.conf',
  syslogNgDropIn: '/etc/syslog-ng/conf.d/sentinel-cef.conf',
  rsyslogMain: '/etc/rsyslog.conf',
  rsyslogDir: '/etc/rsyslog.d',
  syslogNgMain: '/etc/syslog-ng/syslog-ng.conf',
  syslogNgDir: '/etc/syslog-ng/conf.d',
  systemLogs: ['/var/log/syslog', '/var/log/messages'],
};
