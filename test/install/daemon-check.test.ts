import { describe, expect, it } from 'vitest';
import { syntaxErrorLine } from '../../src/install/service.js';

// Output of the real checks on a drop-in holding `this is { not valid` (rsyslog 8.2302, syslog-ng 3.38, Debian 12).
const RSYSLOG = `rsyslogd: version 8.2302.0, config validation run (level 1), master config /etc/rsyslog.conf
rsyslogd: error during parsing file /etc/rsyslog.d/99-prebroken.conf, on or before line 1: warnings occurred in file '/etc/rsyslog.d/99-prebroken.conf' around line 1 [v8.2302.0 try https://www.rsyslog.com/e/2207 ]
rsyslogd: error during parsing file /etc/rsyslog.d/99-prebroken.conf, on or before line 1: syntax error on token '{' [v8.2302.0 try https://www.rsyslog.com/e/2207 ]
rsyslogd: could not interpret master config file '/etc/rsyslog.conf'. [v8.2302.0 try https://www.rsyslog.com/e/2207 ]`;
const SYSLOG_NG = `Error parsing config, syntax error, unexpected LL_IDENTIFIER, expecting end of file in /etc/syslog-ng/conf.d/zz-prebroken.conf:1:1-1:5:

Included from /etc/syslog-ng/syslog-ng.conf:161:1-161:1:

syslog-ng documentation: https://www.syslog-ng.com/technical-documents/list/syslog-ng-open-source-edition`;

describe('syntaxErrorLine', () => {
  it.each([
    [
      RSYSLOG,
      "rsyslogd: error during parsing file /etc/rsyslog.d/99-prebroken.conf, on or before line 1: syntax error on token '{' [v8.2302.0 try https://www.rsyslog.com/e/2207 ]",
    ],
    [
      SYSLOG_NG,
      'Error parsing config, syntax error, unexpected LL_IDENTIFIER, expecting end of file in /etc/syslog-ng/conf.d/zz-prebroken.conf:1:1-1:5:',
    ],
    ['something odd\nmore', 'something odd'],
    ['', '(no output)'],
  ])('picks the line that names the fault', (output, line) => {
    expect(syntaxErrorLine(output)).toBe(line);
  });
});
