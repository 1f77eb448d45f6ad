import { describe, expect, it } from 'vitest';
import { isRetryableStatus, parseRetryAfter, proxyFor, serviceErrorText } from '../../src/sinks/http.js';

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each([
    [{ 'retry-after': '5' }, 5000],
    [{ 'retry-after': ' 0 ' }, 0],
    [{ 'retry-after': '1.5' }, 1500],
    [{ 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' }, 30_000],
    [{ 'retry-after': 'Wed, 31 Dec 2025 23:59:00 GMT' }, 0], // in the past: go now
    [{ 'retry-after-ms': '250' }, 250],
    [{ 'x-ms-retry-after-ms': '1200' }, 1200],
    [{ 'retry-after-ms': '250', 'retry-after': '60' }, 250],
    [{ 'retry-after': 'soon' }, undefined],
    [{}, undefined],
  ])('%j → %s', (headers, expected) => {
    expect(parseRetryAfter(headers, now)).toBe(expected);
  });
});

describe('serviceErrorText', () => {
  it('reads each service error shape', () => {
    expect(serviceErrorText('{"Error":"InvalidLogType","Message":"bad type"}')).toBe('InvalidLogType: bad type');
    expect(serviceErrorText('{"error":{"code":"OperationFailed","message":"no access"}}')).toBe('OperationFailed: no access');
    expect(serviceErrorText('{"error":"invalid_client","error_description":"AADSTS7000215: x"}')).toBe('invalid_client: AADSTS7000215: x');
    expect(serviceErrorText('  <html>\n bad gateway </html> ')).toBe('<html> bad gateway </html>');
    expect(serviceErrorText('x'.repeat(600)).length).toBe(501);
  });
});

describe('isRetryableStatus', () => {
  it.each([408, 429, 500, 502, 503, 504])('%i retryable', (s) => expect(isRetryableStatus(s)).toBe(true));
  it.each([400, 401, 403, 404, 413])('%i not', (s) => expect(isRetryableStatus(s)).toBe(false));
});

describe('proxyFor', () => {
  const url = new URL('https://x.ods.opinsights.azure.com/api/logs');
  it('uses HTTPS_PROXY unless NO_PROXY matches', () => {
    expect(proxyFor(url, { HTTPS_PROXY: 'http://proxy:3128' })).toBe('http://proxy:3128');
    expect(proxyFor(url, { https_proxy: 'http://p:1' })).toBe('http://p:1');
    expect(proxyFor(url, { HTTPS_PROXY: 'http://p:1', NO_PROXY: 'localhost,.azure.com' })).toBeUndefined();
    expect(proxyFor(url, { HTTPS_PROXY: 'http://p:1', NO_PROXY: '*' })).toBeUndefined();
    expect(proxyFor(url, { HTTPS_PROXY: 'http://p:1', NO_PROXY: 'azure.co' })).toBe('http://p:1');
    expect(proxyFor(url, {})).toBeUndefined();
  });
  it('never sends plain http to loopback (a local mock or relay) through a proxy: it would carry the token in clear', () => {
    const proxies = { HTTPS_PROXY: 'http://p:1', HTTP_PROXY: 'http://p:1', ALL_PROXY: 'http://p:1' };
    for (const u of ['http://127.0.0.1:8080/x', 'http://127.9.9.9/x', 'http://[::1]:1/x', 'http://localhost/x'])
      expect(proxyFor(new URL(u), proxies), u).toBeUndefined();
    // A tunnel (CONNECT) to an https loopback service carries only ciphertext: the proxy still applies.
    expect(proxyFor(new URL('https://127.0.0.1:8443/x'), proxies)).toBe('http://p:1');
  });
});
