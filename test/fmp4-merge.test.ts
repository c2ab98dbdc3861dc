// mergeFragments (src/media/fmp4-merge.ts) on real ffmpeg output: a fragmented MP4 cut every
// 250 ms as the H.264 stage cuts it (with and without AAC sound, with and without B-frames) is
// regrouped into one moof + mdat per GOP, and the result must decode to exactly the same frames
// and sound (ffmpeg's framemd5 of every packet, timestamps included) as the original.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import type { Fmp4Fragment, Fmp4Init } from '../src/media/fmp4';
import { BoxSplitter, childBoxes, Fmp4Assembler, payloadOf, readFragment } from '../src/media/fmp4';
import { mergeFragments, trackDefaults } from '../src/media/fmp4-merge';
import { execFileAsync, nth, tempDir } from './helpers';

async function fragmented(extra: { audio?: boolean; bframes?: boolean }): Promise<{ init: Fmp4Init; fragments: Fmp4Fragment[] }> {
  const args = ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x180:rate=15'];
  if (extra.audio) args.push('-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=16000');
  args.push('-t', '4', '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-preset', 'veryfast', '-g', '30', '-keyint_min', '30', '-sc_threshold', '0');
  args.push('-bf', extra.bframes ? '2' : '0');
  if (extra.audio) args.push('-c:a', 'aac', '-ar', '16000', '-ac', '1');
  args.push('-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof+skip_trailer', '-frag_duration', '250000', '-write_prft', 'wallclock', 'pipe:1');
  const { stdout } = await execFileAsync('ffmpeg', args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: 60_000 });
  let init: Fmp4Init | undefined;
  const fragments: Fmp4Fragment[] = [];
  const assembler = new Fmp4Assembler(
    (i) => (init = i),
    (f) => fragments.push(f),
  );
  for (const box of new BoxSplitter().push(stdout)) assembler.push(box);
  assert.ok(init, 'ffmpeg wrote an init segment');
  return { init, fragments };
}

/** ffmpeg's per-packet hashes of a file after decoding (timestamps, sizes, hashes), header comments left out. */
async function framemd5(file: string): Promise<string[]> {
  const { stdout } = await execFileAsync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', file, '-f', 'framemd5', '-'], { maxBuffer: 16 * 1024 * 1024 });
  return stdout.split('\n').filter((line) => line && !line.startsWith('#'));
}

/** The first box of `data`. */
const firstBox = (data: Buffer) => nth(new BoxSplitter().push(data), 0, 'the boxes');

/** The fragments grouped by GOP (a new group at every key frame), moof + mdat alone. */
function gops(fragments: Fmp4Fragment[]): Buffer[][] {
  const groups: Buffer[][] = [];
  let group: Buffer[] | undefined;
  for (const f of fragments) {
    if (f.key || !group) {
      group = [];
      groups.push(group);
    }
    group.push(f.data.subarray(f.moofOffset));
  }
  return groups;
}

describe('mergeFragments', () => {
  for (const variant of [{}, { audio: true }, { bframes: true }, { audio: true, bframes: true }]) {
    it(`makes one moof + mdat per GOP that decodes exactly as the 250 ms fragments did (${JSON.stringify(variant)})`, async () => {
      const dir = tempDir();
      const { init, fragments } = await fragmented(variant);
      const groups = gops(fragments);
      assert.ok(groups.length >= 2 && groups.every((g) => g.length > 1), `several fragments per GOP: ${groups.map((g) => g.length).join(', ')}`);
      const defaults = trackDefaults(init.data);
      assert.equal(defaults.size, variant.audio ? 2 : 1);

      const merged = groups.map((group) => mergeFragments(group, defaults));
      for (const [i, packet] of merged.entries()) {
        const boxes = new BoxSplitter().push(packet);
        assert.deepEqual(boxes.map((b) => b.type), ['moof', 'mdat'], `packet ${i}: one moof + mdat`);
        const moof = nth(boxes, 0, 'the boxes');
        const trafs = childBoxes(payloadOf(moof)).filter((b) => b.type === 'traf');
        assert.equal(trafs.length, defaults.size, 'one traf per track');
        const info = readFragment(moof, init.video);
        // A fragment may carry sound alone (no video traf): it counts for nothing here.
        const parts = nth(groups, i, 'the GOPs').map((part) => readFragment(firstBox(part), init.video)).filter((p) => p !== undefined);
        assert.ok(info?.key, 'starts with a key frame');
        assert.equal(info.samples, parts.reduce((sum, p) => sum + p.samples, 0), 'every frame of the GOP');
        assert.equal(info.startMs, parts[0]?.startMs);
        assert.ok(Math.abs(info.durationMs - parts.reduce((sum, p) => sum + p.durationMs, 0)) < 1e-6, 'the same duration');
      }

      const original = join(dir, 'original.mp4');
      const joined = join(dir, 'merged.mp4');
      writeFileSync(original, Buffer.concat([init.data, ...fragments.map((f) => f.data.subarray(f.moofOffset))]));
      writeFileSync(joined, Buffer.concat([init.data, ...merged]));
      const [a, b] = await Promise.all([framemd5(original), framemd5(joined)]);
      assert.ok(a.length >= 60, `frames decoded: ${a.length}`);
      assert.deepEqual(b, a, 'the same frames (and sound), with the same timestamps');
    });
  }

  it('gives a gap between fragments to the sample before it, and leaves a lone moof + mdat as it is', async () => {
    const { init, fragments } = await fragmented({});
    const defaults = trackDefaults(init.data);
    const [head, next] = gops(fragments)[0] ?? [];
    assert.ok(head && next, 'a GOP of two fragments or more');
    assert.equal(mergeFragments([head], defaults), head, 'one fragment: unchanged');
    // Move the second fragment's decode time 1 s later: the first fragment's last frame fills the gap.
    const second = Buffer.from(next);
    const tfdt = second.indexOf('tfdt');
    const version = second[tfdt + 4];
    const timescale = init.video.timescale;
    if (version === 1) second.writeBigUInt64BE(second.readBigUInt64BE(tfdt + 8) + BigInt(timescale), tfdt + 8);
    else second.writeUInt32BE(second.readUInt32BE(tfdt + 8) + timescale, tfdt + 8);
    const first = readFragment(firstBox(head), init.video)!;
    const secondInfo = readFragment(firstBox(second), init.video)!;
    const merged = readFragment(firstBox(mergeFragments([head, second], defaults)), init.video)!;
    assert.ok(Math.abs(merged.durationMs - (first.durationMs + 1000 + secondInfo.durationMs)) < 1e-6, `${merged.durationMs} ms`);
    assert.throws(() => mergeFragments([Buffer.from('not a fragment at all')], defaults), /fragment/);
  });
});
