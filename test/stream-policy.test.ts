// HomeKit stream policy: advertised resolutions, requests kept inside them, how long a stream
// lives without RTCP, the encoder command line, and the warm encoder's decisions: which cameras
// keep one, the START it predicts, hit or miss, where it sends, its key and salt as
// SetupEndpoints answers them, and its retry delays.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { AudioRequest, RequestedVideo, VideoChoice } from '../src/homekit/stream-policy';
import {
  buildEncoderArgs,
  clampVideo,
  describeClamp,
  isRtcpPacket,
  MAX_BITRATE_KBPS,
  maxBitrateKbps,
  MIN_BITRATE_KBPS,
  RTCP_TIMEOUT_CEILING_MS,
  RTCP_TIMEOUT_FLOOR_MS,
  rtcpTimeoutMs,
  sameAudio,
  packetSize,
  predictVideoChoice,
  relayTarget,
  sameVideoChoice,
  splitKeyAndSalt,
  srtpUrl,
  supportedResolutions,
  videoChoiceOf,
  WARM_FAILURES_BEFORE_WARNING,
  WARM_STABLE_MS,
  wantsWarmEncoder,
  warmFailuresAfterExit,
  WARM_RETRY_BASE_MS,
  WARM_RETRY_MAX_MS,
  warmVerdict,
} from '../src/homekit/stream-policy';
import { backoffDelay } from '../src/util/backoff';

const after = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

const request = {
  width: 640,
  height: 360,
  fps: 15,
  bitrate: 299,
  profile: 'main' as const,
  level: '3.1' as const,
  payloadType: 99,
  ssrc: 12345678,
  mtu: 1378,
  srtpKeyAndSalt: Buffer.alloc(30, 7),
  targetAddress: '192.0.2.10',
  targetPort: 51000,
};

describe('supportedResolutions', () => {
  it("caps HomeKit's list at the capture size and rate", () => {
    const list = supportedResolutions({ width: 1280, height: 720, fps: 30 });
    assert.deepEqual(list[0], [1280, 720, 30]);
    assert.ok(!list.some(([w]) => w > 1280));
    assert.ok(list.some(([w, h, f]) => w === 320 && h === 240 && f === 15), 'Apple Watch size kept');
    assert.ok(!list.some(([w, h]) => w === 1024 && h === 768), '1024x768 does not fit in 720 lines');
  });

  it('never advertises more frames than the camera makes, and no duplicates', () => {
    const list = supportedResolutions({ width: 640, height: 480, fps: 10 });
    assert.ok(list.every(([, , f]) => f <= 10));
    assert.equal(new Set(list.map((r) => r.join('x'))).size, list.length);
  });

  it('offers a tiny capture its own size', () => {
    assert.deepEqual(supportedResolutions({ width: 160, height: 120, fps: 5 }), [[160, 120, 5]]);
  });
});

describe('clampVideo', () => {
  const hd = supportedResolutions({ width: 1280, height: 720, fps: 30 });
  const ask = (width: number, height: number, fps = 30, bitrate = 802, payloadType = 99): RequestedVideo => ({ width, height, fps, bitrate, payloadType });
  const used = (c: RequestedVideo) => [c.width, c.height, c.fps, c.bitrate, c.payloadType];

  it('leaves a request for an advertised configuration as it is', () => {
    for (const [width, height, fps] of hd) {
      const clamped = clampVideo(ask(width, height, fps), hd);
      assert.deepEqual(used(clamped), [width, height, fps, 802, 99]);
      assert.deepEqual(clamped.changes, []);
      assert.equal(clamped.outsideOffer, false);
    }
  });

  it('brings a size beyond the offer down to the largest offered, never beyond the capture', () => {
    const clamped = clampVideo(ask(10_000, 10_000, 120, 65_535), hd);
    assert.deepEqual([clamped.width, clamped.height, clamped.fps], [1280, 720, 30]);
    assert.equal(clamped.bitrate, maxBitrateKbps(1280, 720, 30));
    assert.equal(clamped.outsideOffer, true);
    assert.deepEqual(clamped.changes, ['10000x10000 -> 1280x720', '120 fps -> 30 fps', `65535 kbit/s -> ${clamped.bitrate} kbit/s`]);
    // 1920x1080 is HomeKit's, not this capture's.
    assert.deepEqual(used(clampVideo(ask(1920, 1080), hd)).slice(0, 2), [1280, 720]);
    // A small capture: never above its own size or rate, whatever is asked.
    const small = supportedResolutions({ width: 320, height: 240, fps: 10 });
    for (const [width, height, fps] of [[1920, 1080, 30], [640, 480, 30], [320, 240, 30], [100, 100, 5], [65_535, 1, 255]] as const) {
      const c = clampVideo(ask(width, height, fps), small);
      assert.ok(c.width <= 320 && c.height <= 240 && c.fps <= 10, `${width}x${height}@${fps} -> ${c.width}x${c.height}@${c.fps}`);
      assert.ok(small.some(([w, h]) => w === c.width && h === c.height), 'an advertised size');
    }
  });

  it('picks the largest advertised size inside a size not offered, else the smallest offered', () => {
    assert.deepEqual(used(clampVideo(ask(800, 600), hd)).slice(0, 2), [640, 480], 'inside 800x600');
    assert.deepEqual(used(clampVideo(ask(1280, 1000), hd)).slice(0, 2), [1280, 720]);
    assert.deepEqual(used(clampVideo(ask(100, 100, 15), hd)).slice(0, 3), [320, 180, 15], 'smaller than everything offered');
    assert.deepEqual(used(clampVideo(ask(0, 0, 15), hd)).slice(0, 3), [320, 180, 15]);
  });

  it("caps the rate at the highest advertised for the size, keeping a lower one the Home app asks", () => {
    assert.equal(clampVideo(ask(320, 240, 60), hd).fps, 30, '320x240 is offered at 30 and 15');
    const lower = clampVideo(ask(640, 360, 10), hd);
    assert.equal(lower.fps, 10);
    assert.deepEqual(lower.changes, []);
    assert.equal(clampVideo(ask(640, 360, 0), hd).fps, 30, 'no rate: the advertised one');
    assert.equal(clampVideo(ask(640, 360, Number.NaN), hd).fps, 30);
  });

  it('keeps the bitrate in a sane range, and that alone is no request outside the offer', () => {
    const low = clampVideo(ask(640, 360, 30, 0), hd);
    assert.equal(low.bitrate, MIN_BITRATE_KBPS);
    assert.equal(low.outsideOffer, false);
    assert.deepEqual(low.changes, [`0 kbit/s -> ${MIN_BITRATE_KBPS} kbit/s`]);
    assert.equal(clampVideo(ask(640, 360, 30, 2_000), hd).bitrate, 2_000, 'what a Home app asks on a good network always fits');
    assert.equal(clampVideo(ask(320, 180, 15, 65_535), hd).bitrate, 2_000);
    const full = supportedResolutions({ width: 1920, height: 1080, fps: 30 });
    assert.equal(clampVideo(ask(1920, 1080, 30, 65_535), full).bitrate, MAX_BITRATE_KBPS);
    assert.ok(maxBitrateKbps(1280, 720, 30) > 2_000 && maxBitrateKbps(1280, 720, 30) < MAX_BITRATE_KBPS);
  });

  it('replaces a payload type RTP cannot carry', () => {
    const clamped = clampVideo(ask(640, 360, 30, 802, 200), hd);
    assert.equal(clamped.payloadType, 99);
    assert.equal(clamped.outsideOffer, true);
    assert.equal(clampVideo(ask(640, 360, 30, 802, 96), hd).payloadType, 96);
  });

  it('says what was asked and what is used', () => {
    const asked = ask(10_000, 10_000, 120, 65_535);
    assert.equal(
      describeClamp(asked, clampVideo(asked, hd)),
      `The Home app asked for 10000x10000 at 120 fps, 65535 kbit/s, which this camera does not offer (10000x10000 -> 1280x720, 120 fps -> 30 fps, 65535 kbit/s -> ${maxBitrateKbps(1280, 720, 30)} kbit/s): streaming 1280x720 at 30 fps, ${maxBitrateKbps(1280, 720, 30)} kbit/s.`,
    );
    const bitrateOnly = ask(640, 360, 30, 10);
    assert.equal(describeClamp(bitrateOnly, clampVideo(bitrateOnly, hd)), 'The Home app asked for 640x360 at 30 fps, 10 kbit/s (10 kbit/s -> 64 kbit/s): streaming 640x360 at 30 fps, 64 kbit/s.');
  });

  it("leaves the warm encoder's prediction as it is, so a START asking for it can still hit", () => {
    for (const capture of [{ width: 1280, height: 720, fps: 30 }, { width: 640, height: 360, fps: 15 }, { width: 320, height: 240, fps: 10 }, { width: 160, height: 120, fps: 5 }]) {
      const predicted = predictVideoChoice(capture, 'ipv4');
      const clamped = clampVideo({ width: predicted.width, height: predicted.height, fps: predicted.fps, bitrate: predicted.bitrate, payloadType: predicted.payloadType }, supportedResolutions(capture));
      assert.deepEqual(clamped.changes, [], JSON.stringify(capture));
    }
    // A START asking for more than a 720p camera has lands on the same encoder as the prediction.
    const predicted = predictVideoChoice({ width: 1280, height: 720, fps: 30 }, 'ipv4');
    const fullHd = clampVideo(ask(1920, 1080, 30, 802), hd);
    const start = videoChoiceOf({ width: fullHd.width, height: fullHd.height, fps: fullHd.fps, max_bit_rate: fullHd.bitrate, profile: 2, level: 2, pt: fullHd.payloadType, mtu: 1378 }, 30);
    assert.ok(sameVideoChoice(start, predicted));
  });
});

describe('RTCP', () => {
  it('ends a stream after five of the intervals the Home app asked for, kept between a floor and a ceiling', () => {
    assert.equal(rtcpTimeoutMs(2), 10_000, 'five intervals of 2 s');
    assert.equal(rtcpTimeoutMs(0.5), RTCP_TIMEOUT_FLOOR_MS, "the Home app's 0.5 s: the floor, so a lost report or two never ends it");
    assert.equal(rtcpTimeoutMs(0.01), RTCP_TIMEOUT_FLOOR_MS);
    assert.equal(rtcpTimeoutMs(1_000), RTCP_TIMEOUT_CEILING_MS, 'a huge interval keeps no encoder for long');
    for (const broken of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, undefined]) assert.equal(rtcpTimeoutMs(broken), RTCP_TIMEOUT_FLOOR_MS, String(broken));
    assert.ok(RTCP_TIMEOUT_CEILING_MS - RTCP_TIMEOUT_FLOOR_MS > 0, 'the floor below the ceiling');
  });

  it('tells RTCP (and SRTCP) from anything else arriving at the port', () => {
    assert.equal(isRtcpPacket(Buffer.from([0x81, 0xc9, 0, 1, 0, 0, 0, 1])), true, 'a receiver report');
    assert.equal(isRtcpPacket(Buffer.from([0x80, 0xc8, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0])), true, 'a sender report');
    assert.equal(isRtcpPacket(Buffer.from([0x80, 0x63, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0])), false, 'RTP (payload type 99)');
    assert.equal(isRtcpPacket(Buffer.from([0x40, 0xc9, 0, 1, 0, 0, 0, 1])), false, 'not version 2');
    assert.equal(isRtcpPacket(Buffer.from([0x81, 0xc9])), false, 'too short');
    assert.equal(isRtcpPacket(Buffer.from('hello world')), false);
  });
});

describe('buildEncoderArgs', () => {
  it('reads JPEG frames on stdin and sends H.264 over SRTP with the requested parameters', () => {
    const args = buildEncoderArgs(request, { encoder: 'libx264' });
    assert.equal(after(args, '-f'), 'mpjpeg');
    assert.equal(after(args, '-i'), 'pipe:0');
    assert.equal(after(args, '-c:v'), 'libx264');
    assert.equal(after(args, '-preset'), 'ultrafast');
    assert.equal(after(args, '-tune'), 'zerolatency');
    assert.equal(after(args, '-profile:v'), 'main');
    assert.equal(after(args, '-level:v'), '3.1');
    assert.equal(after(args, '-r'), '15');
    assert.equal(after(args, '-g'), '30', 'a keyframe every 2 s');
    assert.equal(after(args, '-b:v'), '299k');
    assert.equal(after(args, '-payload_type'), '99');
    assert.equal(after(args, '-ssrc'), '12345678');
    assert.equal(after(args, '-srtp_out_suite'), 'AES_CM_128_HMAC_SHA1_80');
    assert.equal(after(args, '-srtp_out_params'), Buffer.alloc(30, 7).toString('base64'));
    assert.match(after(args, '-vf') ?? '', /^scale=640:360:force_original_aspect_ratio=increase.*,crop=640:360/, 'fills and crops, never stretches');
    assert.equal(args.at(-1), 'srtp://192.0.2.10:51000?rtcpport=51000&pkt_size=1378');
    assert.ok(!args.includes('-nostdin'), 'stdin carries the frames');
    assert.ok(!args.some((a) => a.includes('/dev/video')), 'the encoder never opens the camera');
  });

  it('leaves out x264-only options for a hardware encoder, and names the profile by number', () => {
    const args = buildEncoderArgs(request, { encoder: 'h264_v4l2m2m' });
    assert.equal(after(args, '-c:v'), 'h264_v4l2m2m');
    assert.equal(after(args, '-profile:v'), '77', 'h264_v4l2m2m takes profile_idc, not "main"');
    assert.ok(!args.includes('-preset') && !args.includes('-tune') && !args.includes('-level:v'));
  });

  it('brackets IPv6 addresses and bounds the packet size', () => {
    assert.equal(srtpUrl({ targetAddress: 'fe80::1', targetPort: 5000, mtu: 1228 }), 'srtp://[fe80::1]:5000?rtcpport=5000&pkt_size=1228');
    assert.equal(packetSize(0), 1378);
    assert.equal(packetSize(9000), 1378);
    assert.equal(packetSize(100), 188);
  });

  it('adds OPUS sound as a second output when asked, from ALSA or the test tone', () => {
    const audio = { codec: 'opus' as const, source: 'dsnoop:CARD=C920,DEV=0', sampleRate: 24, bitrate: 24, channels: 1, packetTime: 30, payloadType: 110, ssrc: 42, srtpKeyAndSalt: Buffer.alloc(30, 9), targetPort: 51002 };
    const args = buildEncoderArgs(request, { encoder: 'libx264' }, audio);
    assert.deepEqual(args.slice(args.indexOf('alsa') - 1, args.indexOf('alsa') + 5), ['-f', 'alsa', '-thread_queue_size', '512', '-i', 'dsnoop:CARD=C920,DEV=0']);
    const second = args.slice(args.lastIndexOf('-map'));
    assert.equal(after(second, '-map'), '1:a:0');
    assert.equal(after(second, '-c:a'), 'libopus');
    assert.equal(after(second, '-frame_duration'), '20', "HomeKit's 30 ms becomes a frame size libopus has");
    assert.equal(after(second, '-ar'), '24000');
    assert.equal(after(second, '-payload_type'), '110');
    assert.equal(second.at(-1), 'srtp://192.0.2.10:51002?rtcpport=51002&pkt_size=188');
    assert.equal(after(args, '-map'), '0:v:0', 'video is mapped from the frames on stdin');
    const tone = buildEncoderArgs(request, { encoder: 'libx264' }, { ...audio, source: 'sine' });
    assert.ok(tone.includes('sine=frequency=440:sample_rate=48000'));
    assert.ok(!buildEncoderArgs(request, { encoder: 'libx264' }).includes('-c:a'), 'no sound unless asked');
    const eld = buildEncoderArgs(request, { encoder: 'libx264' }, { ...audio, codec: 'aac-eld' });
    assert.equal(after(eld, '-c:a'), 'libfdk_aac');
    assert.equal(after(eld, '-profile:a'), 'aac_eld');
    assert.ok(!eld.includes('-frame_duration'));
  });
});

describe('the warm encoder', () => {
  const target = { ssrc: 12345678, srtpKeyAndSalt: Buffer.alloc(30, 7), targetAddress: '192.0.2.10', targetPort: 51000 };
  const command = (choice: VideoChoice) => ({ choice, args: buildEncoderArgs({ ...choice, ...target }, { encoder: 'libx264' }) });
  /** What HAP-NodeJS hands startStream for an iPhone on the local network (High 4.0, PT 99). */
  const start = { width: 1280, height: 720, fps: 30, max_bit_rate: 802, profile: 2, level: 2, pt: 99, mtu: 1378 };

  it("expects the Home app's usual START at the largest size offered when nothing is known", () => {
    assert.deepEqual(predictVideoChoice({ width: 1280, height: 720, fps: 30 }, 'ipv4'), {
      width: 1280, height: 720, fps: 30, bitrate: 802, profile: 'high', level: '4.0', payloadType: 99, mtu: 1378,
    });
    const webcam = predictVideoChoice({ width: 1920, height: 1080, fps: 60 }, 'ipv6');
    assert.deepEqual([webcam.width, webcam.height, webcam.fps, webcam.mtu], [1920, 1080, 30, 1228], 'at most 30 fps; IPv6 MTU');
    const slow = predictVideoChoice({ width: 640, height: 360, fps: 15 }, 'ipv4');
    assert.deepEqual([slow.width, slow.height, slow.fps], [640, 360, 15]);
  });

  it("expects the camera's previous START when there was one", () => {
    const previous = videoChoiceOf({ ...start, width: 640, height: 360, fps: 15, max_bit_rate: 299, profile: 1, level: 0 }, 30);
    assert.deepEqual(predictVideoChoice({ width: 1280, height: 720, fps: 30 }, 'ipv4', previous), previous);
  });

  it("reads HAP's START as the encoder takes it: names for numbers, the rate capped at the capture's", () => {
    assert.deepEqual(videoChoiceOf(start, 30), { width: 1280, height: 720, fps: 30, bitrate: 802, profile: 'high', level: '4.0', payloadType: 99, mtu: 1378 });
    assert.equal(videoChoiceOf(start, 15).fps, 15);
  });

  it('is a hit when the real START gives exactly its command', () => {
    const predicted = command(predictVideoChoice({ width: 1280, height: 720, fps: 30 }, 'ipv4'));
    assert.deepEqual(warmVerdict(predicted, command(videoChoiceOf(start, 30))), { hit: true }, 'the default guess matches a typical START');
    // A START for 30 fps from a 15 fps camera is the same command as one for 15 fps.
    const slow = command(videoChoiceOf({ ...start, fps: 15 }, 15));
    assert.deepEqual(warmVerdict(slow, command(videoChoiceOf(start, 15))), { hit: true });
  });

  it('is a miss naming what differed, and compares the whole command, not only the video', () => {
    const predicted = command(videoChoiceOf(start, 30));
    assert.deepEqual(warmVerdict(predicted, command(videoChoiceOf({ ...start, width: 640, height: 360 }, 30))), { hit: false, reason: 'width 1280 -> 640, height 720 -> 360' });
    assert.deepEqual(warmVerdict(predicted, command(videoChoiceOf({ ...start, max_bit_rate: 299 }, 30))), { hit: false, reason: 'bitrate 802 -> 299' });
    assert.deepEqual(warmVerdict(predicted, command(videoChoiceOf({ ...start, mtu: 1228 }, 30))), { hit: false, reason: 'mtu 1378 -> 1228' });
    const withSound = { choice: predicted.choice, args: [...predicted.args, '-map', '1:a:0'] };
    assert.deepEqual(warmVerdict(predicted, withSound), { hit: false, reason: 'the command differs' });
    assert.equal(warmVerdict(predicted, { choice: predicted.choice, args: predicted.args.slice(0, -1) }).hit, false);
  });

  it('is kept by silent cameras that allow it; a camera with sound starts its encoder at START', () => {
    assert.equal(wantsWarmEncoder({ warmEncoder: true }, []), true);
    assert.equal(wantsWarmEncoder({ warmEncoder: false }, []), false, 'homekit.warmEncoder: false');
    assert.equal(wantsWarmEncoder({ warmEncoder: true }, ['opus']), false, 'sound needs the Home app\'s audio port in the command');
    assert.equal(wantsWarmEncoder({ warmEncoder: true }, ['opus', 'aac-eld']), false);
  });

  it('sends to its relay on loopback, and is a hit only for a START built for that same relay, key and SSRC', () => {
    const relay = { ssrc: 99, srtpKeyAndSalt: Buffer.alloc(30, 1), ...relayTarget(40_000) };
    assert.deepEqual(relayTarget(40_000), { targetAddress: '127.0.0.1', targetPort: 40_000 });
    const choice = videoChoiceOf(start, 30);
    const warm = { choice, args: buildEncoderArgs({ ...choice, ...relay }, { encoder: 'libx264' }) };
    assert.ok(warm.args.includes('srtp://127.0.0.1:40000?rtcpport=40000&pkt_size=1378'), 'RTP and RTCP to the relay port, packets of the MTU');
    assert.equal(warm.args[warm.args.indexOf('-srtp_out_params') + 1], Buffer.alloc(30, 1).toString('base64'));
    assert.deepEqual(warmVerdict(warm, { choice, args: buildEncoderArgs({ ...choice, ...relay }, { encoder: 'libx264' }) }), { hit: true });
    const direct = buildEncoderArgs({ ...choice, ...relay, targetAddress: '192.0.2.10', targetPort: 51000 }, { encoder: 'libx264' });
    assert.deepEqual(warmVerdict(warm, { choice, args: direct }), { hit: false, reason: 'the command differs' }, 'built for another destination');
    const otherKey = buildEncoderArgs({ ...choice, ...relay, srtpKeyAndSalt: Buffer.alloc(30, 2) }, { encoder: 'libx264' });
    assert.equal(warmVerdict(warm, { choice, args: otherKey }).hit, false, 'built with another key');
  });

  it('tells the same sound from another', () => {
    const opus: AudioRequest = { codec: 'opus', source: 'sine', sampleRate: 16, bitrate: 24, channels: 1, packetTime: 20, payloadType: 110, ssrc: 5, srtpKeyAndSalt: Buffer.alloc(30, 1), targetPort: 9 };
    assert.equal(sameAudio(opus, { ...opus, srtpKeyAndSalt: Buffer.alloc(30, 1) }), true, 'equal keys in other buffers');
    assert.equal(sameAudio(opus, { ...opus, sampleRate: 24 }), false);
    assert.equal(sameAudio(opus, { ...opus, srtpKeyAndSalt: Buffer.alloc(30, 2) }), false);
    assert.equal(sameAudio(undefined, undefined), true);
    assert.equal(sameAudio(opus, undefined), false);
  });

  it('tells the same START video from another', () => {
    const choice = videoChoiceOf(start, 30);
    assert.equal(sameVideoChoice(choice, { ...choice }), true);
    assert.equal(sameVideoChoice(choice, { ...choice, bitrate: 299 }), false);
    assert.equal(sameVideoChoice(choice, { ...choice, mtu: 1228 }), false);
  });

  it("answers SetupEndpoints with its key and salt: 16 and 14 bytes of one 30-byte buffer", () => {
    const keyAndSalt = Buffer.from(Array.from({ length: 30 }, (_, i) => i));
    const { key, salt } = splitKeyAndSalt(keyAndSalt);
    assert.deepEqual([...key], Array.from({ length: 16 }, (_, i) => i));
    assert.deepEqual([...salt], Array.from({ length: 14 }, (_, i) => i + 16));
    assert.throws(() => splitKeyAndSalt(Buffer.alloc(16)), /30 bytes, not 16/);
  });

  it('is replaced after 1, 2, 4 ... 60 s when it keeps exiting, with a warning after three in a row', () => {
    const warmRetryDelayMs = (failures: number, baseMs = WARM_RETRY_BASE_MS) => backoffDelay(failures, baseMs, WARM_RETRY_MAX_MS);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((n) => warmRetryDelayMs(n)), [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
    assert.equal(warmRetryDelayMs(1, 50), 50);
    assert.equal(warmRetryDelayMs(3, 50), 200);
    let failures = 0;
    for (let i = 0; i < WARM_FAILURES_BEFORE_WARNING; i++) failures = warmFailuresAfterExit(failures, 30);
    assert.equal(failures, 3, 'three quick exits in a row');
    assert.equal(WARM_FAILURES_BEFORE_WARNING, 3);
    assert.equal(warmFailuresAfterExit(failures, WARM_STABLE_MS), 1, 'one that ran a minute starts the count again');
  });
});
