/** Watermark windows: a chunk never overwrites a key the stream changed between its watermarks. */
import { describe, expect, it } from 'vitest';
import type { SourceChange } from '../../src/mapping/changes.js';
import { Watermarks } from '../../src/router/watermarks.js';

const change = (id: string): SourceChange => ({
  kind: 'insert',
  key: { text: JSON.stringify({ id }), values: { id } },
  before: 'unknown',
  after: { identity: { thirdId: id }, groups: ['g'] },
  restate: true,
});
const mark = (w: string, m: 'low' | 'high') => JSON.stringify({ w, mark: m });

describe('watermarks', () => {
  it('drops from the chunk every key of its source the stream changed between low and high', async () => {
    const wm = new Watermarks();
    const buffered: Array<[string, string[]]> = [];
    const buffer = (source: string, changes: readonly SourceChange[]) => {
      buffered.push([source, changes.map((c) => c.key.values.id as string)]);
      return 42n;
    };
    const w = wm.open('1:a:0', 'profiles');
    wm.onChange('profiles', change('k0').key.text); // before the low watermark: not dropped
    wm.onMessage(mark('1:a:0', 'low'), buffer);
    wm.onChange('profiles', change('k1').key.text);
    wm.onChange('memberships', change('k2').key.text); // another source's key
    w.rows = ['k0', 'k1', 'k2', 'k3'].map(change);
    wm.onMessage(mark('1:a:0', 'high'), buffer);
    expect(buffered).toEqual([['profiles', ['k0', 'k2', 'k3']]]);
    expect(await w.buffered).toBe(42n);
  });

  it('buffers the chunk again when its high watermark comes again (a replay after a lost connection)', () => {
    const wm = new Watermarks();
    const buffered: string[][] = [];
    const buffer = (_source: string, changes: readonly SourceChange[]) => {
      buffered.push(changes.map((c) => c.key.values.id as string));
      return 7n;
    };
    const w = wm.open('2:b:0', 'profiles');
    wm.onMessage(mark('2:b:0', 'low'), buffer);
    wm.onChange('profiles', change('k1').key.text);
    w.rows = ['k0', 'k1'].map(change);
    wm.onMessage(mark('2:b:0', 'high'), buffer);
    // The replay starts past the low watermark: the keys changed before stay dropped.
    wm.onMessage(mark('2:b:0', 'high'), buffer);
    // Or at it: the keys changed between the two are read again.
    wm.onMessage(mark('2:b:0', 'low'), buffer);
    wm.onChange('profiles', change('k0').key.text);
    wm.onMessage(mark('2:b:0', 'high'), buffer);
    wm.close(w.id);
    wm.onMessage(mark('2:b:0', 'high'), buffer);
    expect(buffered).toEqual([['k0'], ['k0'], ['k1']]);
  });

  it('ignores watermarks it did not open (a replay after a restart) and malformed messages', () => {
    const wm = new Watermarks();
    let called = 0;
    const buffer = () => {
      called += 1;
      return 0n;
    };
    wm.onMessage(mark('9:x:0', 'low'), buffer);
    wm.onMessage(mark('9:x:0', 'high'), buffer);
    wm.onMessage('not json', buffer);
    const w = wm.open('1:a:0', 'profiles');
    wm.close(w.id);
    w.rows = [change('k')];
    wm.onMessage(mark('1:a:0', 'high'), buffer);
    expect(called).toBe(0);
  });
});
