// The HomeKit tests' receiver reports are real SRTCP: an ffmpeg RTP receiver holding the key
// (AES_CM_128_HMAC_SHA1_80 from an SDP, as the Home app's side is set up in homekit.test.ts)
// authenticates the reports SrtcpSender makes with that key, and rejects ones made with another.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { bindUdp, freeUdpPair, SrtcpSender, udpBound } from './hap-udp';
import { sleep, waitUntil } from './helpers';

describe('SrtcpSender', () => {
  it("makes receiver reports an SRTP receiver holding the key authenticates, and one with another key does not", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'webcam-srtcp-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const key = randomBytes(30);
    const port = await freeUdpPair();
    const sdp = join(dir, 'receiver.sdp');
    writeFileSync(
      sdp,
      ['v=0', 'o=- 0 0 IN IP4 127.0.0.1', 's=SRTCP check', 'c=IN IP4 127.0.0.1', 't=0 0', `m=video ${port} RTP/SAVP 99`, 'a=rtpmap:99 H264/90000', `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${key.toString('base64')}`, ''].join('\n'),
    );
    // RTP on `port`, RTCP on `port + 1`; each packet there is authenticated (srtp.c says "HMAC mismatch" when it fails).
    const receiver = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'warning', '-nostdin', '-protocol_whitelist', 'file,udp,rtp,crypto', '-i', sdp, '-f', 'null', '-']);
    t.after(() => receiver.kill('SIGKILL'));
    let log = '';
    receiver.stderr.on('data', (d: Buffer) => (log += d.toString()));
    await waitUntil('the receiver to bind its RTCP port', () => udpBound(port + 1) || receiver.exitCode !== null);
    assert.equal(receiver.exitCode, null, log);
    const socket = await bindUdp(0);
    t.after(() => socket.close());

    const reports = new SrtcpSender(key, 0x1234);
    for (let i = 0; i < 5; i++) {
      socket.send(reports.receiverReport(i % 2 ? { ssrc: 42, highestSeq: 1000 + i } : undefined), port + 1, '127.0.0.1');
      await sleep(50);
    }
    const forged = new SrtcpSender(randomBytes(30), 0x1234);
    // Sent last, so once its mismatch shows, the good ones before it have been read too.
    socket.send(forged.receiverReport(), port + 1, '127.0.0.1');
    await waitUntil('the forged report to be rejected', () => /HMAC mismatch/.test(log));
    assert.equal(log.match(/HMAC mismatch/g)?.length, 1, `only the forged report fails:\n${log}`);
  });
});
