import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SyslogFramer, type Frame } from '../../src/forwarder/framing.js';

const texts = (fs: Frame[]) => fs.map((f) => f.data.toString());

describe('SyslogFramer', () => {
  it('splits newline frames and strips CR', () => {
    const f = new SyslogFramer(1024);
    expect(texts(f.push(Buffer.from('<1>a\r\n<2>b\n\n<3>c')))).toEqual(['<1>a', '<2>b']);
    expect(texts(f.push(Buffer.from('c\n')))).toEqual(['<3>cc']);
  });

  it('reads octet-counted frames, also mixed with newline frames on one stream', () => {
    const f = new SyslogFramer(1024);
    const m1 = '<134>1 - h app - - - hello\nwith newline';
    const data = `${Buffer.byteLength(m1)} ${m1}<5>plain line\n11 <1>abcdefgh`;
    expect(texts(f.push(Buffer.from(data)))).toEqual([m1, '<5>plain line', '<1>abcdefgh']);
  });

  it('treats a digit run without a space as newline framing', () => {
    const f = new SyslogFramer(1024);
    expect(texts(f.push(Buffer.from('2024-01-01 CEF:0|a\n')))).toEqual(['2024-01-01 CEF:0|a']);
  });

  it('reassembles frames split at every byte boundary', () => {
    const m = '<134>CEF:0|A|B|1|2|n|3|msg=é';
    const stream = Buffer.from(`${Buffer.byteLength(m)} ${m}${m}\n${Buffer.byteLength(m)} ${m}`);
    for (let cut = 1; cut < stream.length; cut++) {
      const f = new SyslogFramer(1024);
      const out = [...f.push(stream.subarray(0, cut)), ...f.push(stream.subarray(cut))].map((x) => Buffer.from(x.data).toString());
      expect(out).toEqual([m, m, m]);
    }
  });

  it('truncates oversize newline and octet-counted frames and finds the next frame', () => {
    const f = new SyslogFramer(10);
    const big = 'x'.repeat(25);
    const out = f.push(Buffer.from(`${big}\n<1>ok\n25 ${big}<2>ok\n`));
    expect(out.map((x) => [x.data.toString(), x.truncated])).toEqual([
      ['x'.repeat(10), true],
      ['<1>ok', false],
      ['x'.repeat(10), true],
      ['<2>ok', false],
    ]);
  });

  it('truncates an oversize frame that arrives in pieces without buffering it whole', () => {
    const f = new SyslogFramer(10);
    const out: Frame[] = [];
    for (let i = 0; i < 100; i++) f.push(Buffer.from('y'.repeat(100)), out);
    expect(f.pendingBytes).toBeLessThanOrEqual(10);
    f.push(Buffer.from('\n<1>next\n'), out);
    expect(out.map((x) => [x.data.toString(), x.truncated])).toEqual([
      ['y'.repeat(10), true],
      ['<1>next', false],
    ]);
  });

  it('emits a last unterminated frame at end of stream', () => {
    const f = new SyslogFramer(100);
    f.push(Buffer.from('<1>tail'));
    expect(texts(f.end())).toEqual(['<1>tail']);
  });

  it('keeps a partial octet-counted frame at end of stream as a truncated message without its length', () => {
    const f = new SyslogFramer(100);
    expect(f.push(Buffer.from('<1>whole\n57 <2>cut sh'))).toHaveLength(1);
    expect(f.end().map((x) => [x.data.toString(), x.truncated])).toEqual([['<2>cut sh', true]]);
    const g = new SyslogFramer(100);
    g.push(Buffer.from('2024-01-01 <3>no count'));
    expect(g.end().map((x) => [x.data.toString(), x.truncated])).toEqual([['2024-01-01 <3>no count', false]]);
  });

  it('never loses or reorders frames for any chunking (property)', () => {
    const msg = fc.stringMatching(/^<[0-9]{1,3}>[ -~]{0,40}$/);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(msg, fc.boolean()), { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (msgs, cuts) => {
          const stream = Buffer.from(msgs.map(([m, oc]) => (oc ? `${Buffer.byteLength(m)} ${m}` : `${m}\n`)).join(''));
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const f = new SyslogFramer(1000);
          const out: string[] = [];
          let prev = 0;
          for (const p of [...points, stream.length]) {
            for (const fr of f.push(stream.subarray(prev, p))) out.push(fr.data.toString());
            prev = p;
          }
          for (const fr of f.end()) out.push(fr.data.toString());
          expect(out).toEqual(msgs.map(([m]) => m.replace(/[\r\n\0]+$/, '')).filter((m) => m.length > 0));
        },
      ),
    );
  });
  it('frames any chunking of a stream exactly as the whole stream at once, oversize frames included (property)', () => {
    // Frames that start with digits, CR/NUL padding, LF inside octet-counted frames, frames longer than the limit.
    const msg = fc.oneof(fc.stringMatching(/^[0-9<][ -~\r\n]{0,45}$/), fc.stringMatching(/^<[0-9]>x{20,50}$/));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(msg, fc.boolean()), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (msgs, cuts) => {
          const stream = Buffer.from(msgs.map(([m, oc]) => (oc ? `${Buffer.byteLength(m)} ${m}` : `${m}\n\0`)).join(''));
          const frames = (fs: Frame[]) => fs.map((x) => [x.data.toString('latin1'), x.truncated]);
          const whole = new SyslogFramer(30);
          const want = [...frames(whole.push(stream)), ...frames(whole.end())];
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const f = new SyslogFramer(30);
          const got: unknown[] = [];
          let prev = 0;
          for (const p of [...points, stream.length]) {
            got.push(...frames(f.push(stream.subarray(prev, p))));
            prev = p;
          }
          got.push(...frames(f.end()));
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 500 },
    );
  });
});
