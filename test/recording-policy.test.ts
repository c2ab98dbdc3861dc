// HomeKit Secure Video's pure policy: the sizes offered, what a selection asks of the H.264 stage,
// and the packing of the stage's small fragments into HomeKit's packets (each starting with a key
// frame, none longer than the selected fragment length).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FragmentPacker, recordingResolutions, stageSettingsFor } from '../src/homekit/recording-policy';

const capture = { width: 1280, height: 720, fps: 30 };

describe('recording policy', () => {
  it('offers the live-stream sizes up to the capture, at its rate and at 15 fps', () => {
    const offered = recordingResolutions(capture);
    assert.deepEqual(offered.slice(0, 2), [
      [1280, 720, 30],
      [1280, 720, 15],
    ]);
    assert.ok(offered.every(([w, h]) => w <= 1280 && h <= 720), 'nothing larger than the capture');
    assert.deepEqual(recordingResolutions({ width: 640, height: 480, fps: 10 }).slice(0, 1), [[640, 480, 10]], 'a 10 fps camera offers 10 fps');
  });

  it("turns the hub's selection into stage settings: its size, profile and bitrate, a key frame per fragment", () => {
    const settings = stageSettingsFor(
      { prebufferLength: 4000, fragmentLength: 4000, width: 1280, height: 720, fps: 30, profile: 2, level: 2, bitrate: 2000, iFrameInterval: 4000 },
      capture,
      'libx264',
    );
    assert.deepEqual(settings, {
      width: 1280,
      height: 720,
      fps: 30,
      bitrateKbps: 2000,
      profile: 'high',
      level: '4.0',
      encoder: 'libx264',
      keyframeMs: 4000,
      fragmentMs: 250,
      audio: undefined,
    });
    const tooBig = stageSettingsFor({ prebufferLength: 4000, fragmentLength: 4000, width: 1920, height: 1080, fps: 30, profile: 0, level: 0, bitrate: 99_999, iFrameInterval: 8000 }, capture, 'h264_v4l2m2m');
    assert.deepEqual([tooBig.width, tooBig.height, tooBig.bitrateKbps, tooBig.keyframeMs], [1280, 720, 8000, 4000], 'never above the capture, the bitrate bounded, a key frame at least every fragment');
  });
});

describe('FragmentPacker', () => {
  const frag = (key: boolean, durationMs = 1000, name = key ? 'K' : 'f') => ({ data: Buffer.from(name), key, durationMs });

  it('packs whole GOPs: each packet starts with a key frame', () => {
    const packer = new FragmentPacker(4000);
    const out: string[] = [];
    for (const fragment of [frag(false, 1000, 'x'), frag(true, 1000, 'A'), frag(false, 1000, 'a'), frag(true, 1000, 'B'), frag(false, 1000, 'b'), frag(false, 1000, 'c')]) {
      for (const packet of packer.push(fragment)) out.push(packet.data.toString());
    }
    assert.deepEqual(out, ['Aa'], 'the fragment before the first key frame is dropped; a packet closes at the next key frame');
    assert.equal(packer.flush()?.data.toString(), 'Bbc');
  });

  it('never makes a packet longer than the fragment length', () => {
    const packer = new FragmentPacker(2000);
    const out: Array<[string, number]> = [];
    for (const fragment of [frag(true, 1000, 'A'), frag(false, 1000, 'a'), frag(false, 1000, 'z'), frag(false, 1000, 'y'), frag(true, 1000, 'B')]) {
      for (const packet of packer.push(fragment)) out.push([packet.data.toString(), packet.durationMs]);
    }
    // 'z' would pass 2 s and is not a key frame: the packet closes, and the rest of that GOP cannot start one.
    assert.deepEqual(out, [['Aa', 2000]]);
    assert.equal(packer.flush()?.data.toString(), 'B');
  });
});
