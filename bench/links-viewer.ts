// Benchmark child of bench/links.ts: one or more viewers of a live stream, run inside a network
// namespace (`ip netns exec NS node --import tsx bench/links-viewer.ts ...`: a Node process cannot
// enter another namespace itself). It prints one JSON line per event on stdout, for the
// orchestrator to cut into windows:
//   mjpeg URL AUTH [N]   N viewers of a multipart MJPEG stream; per whole frame
//                        {"e":"f","v":viewer,"at":Date.now(),"mono":monotonic ms,"seq":..,"stamp":..,"bytes":..}
//                        (seq and stamp from the corpus's JPEG comment, see corpus.ts)
//   mp4 URL AUTH [N]     N viewers of the fragmented MP4 H.264 view, read as a browser's Media Source
//                        player would (everything, as it comes); per whole fragment
//                        {"e":"g","v":..,"at":Date.now(),"prft":epoch ms of the fragment's prft box,
//                         "startMs":..,"durationMs":..,"samples":..,"key":..,"bytes":..}; {"e":"i"} per init
//                        segment. A stream that ends (the encoder was replaced) is opened again, as the page does.
// and for every viewer every 200 ms {"e":"b","v":..,"at":Date.now(),"total":bytes read from its socket}.
// Errors are {"e":"x","v":..,"message":..} lines, and the viewer carries on (a closed stream is
// opened again): the orchestrator decides. Runs until killed.
import { request } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import type { Socket } from 'node:net';

import type { Box, TrackInfo } from '../src/media/fmp4';
import { BoxSplitter, readFragment, readTracks } from '../src/media/fmp4';
import { nowMs } from './corpus';
import { MjpegReader } from './multipart';

const out: string[] = [];
function emit(event: Record<string, unknown>): void {
  out.push(JSON.stringify(event));
}
// One write per turn of the event loop keeps the cost of printing low.
setInterval(() => {
  if (out.length) process.stdout.write(`${out.splice(0).join('\n')}\n`);
}, 50);

/** NTP seconds at the Unix epoch. */
const NTP_EPOCH_OFFSET = 2_208_988_800;

/** The wall-clock time of a prft box (version 0 or 1), in ms since the Unix epoch. */
export function prftTime(box: Box): number | undefined {
  // size(4) type(4) version(1) flags(3) reference_track_ID(4) ntp_timestamp(8) media_time(4 or 8)
  if (box.data.length < 24) return undefined;
  const seconds = box.data.readUInt32BE(16);
  const fraction = box.data.readUInt32BE(20);
  return (seconds - NTP_EPOCH_OFFSET) * 1000 + (fraction / 2 ** 32) * 1000;
}

function watchBytes(v: number, socket: () => Socket | undefined): void {
  let base = 0;
  let last: Socket | undefined;
  setInterval(() => {
    const s = socket();
    if (s !== last) {
      // A new connection: keep counting from what the previous ones read.
      if (last) base += last.bytesRead;
      last = s;
    }
    emit({ e: 'b', v, at: Date.now(), total: base + (s?.bytesRead ?? 0) });
  }, 200);
}

function mjpegViewer(v: number, url: URL, authorization: string): void {
  let socket: Socket | undefined;
  const open = (): void => {
    const s = connect({ host: url.hostname, port: Number(url.port) || 80 });
    socket = s;
    s.setNoDelay(true);
    const reader = new MjpegReader(
      (frame) => emit({ e: 'f', v, at: Date.now(), mono: nowMs(), seq: frame.stamp?.seq, stamp: frame.stamp?.time, bytes: frame.bytes }),
      (message) => {
        emit({ e: 'x', v, message });
        s.destroy();
      },
    );
    s.on('connect', () => {
      s.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: ${authorization}\r\nAccept: */*\r\nUser-Agent: webcam-bench-links\r\n\r\n`);
    });
    s.on('data', (chunk: Buffer) => reader.push(chunk));
    s.on('error', (error) => emit({ e: 'x', v, message: error.message }));
    s.on('close', () => {
      emit({ e: 'x', v, message: 'the stream closed; opening it again' });
      setTimeout(open, 500);
    });
  };
  watchBytes(v, () => socket);
  open();
}

function mp4Viewer(v: number, url: URL, authorization: string): void {
  let socket: Socket | undefined;
  const open = (): void => {
    const req = request(url, { headers: { authorization, 'user-agent': 'webcam-bench-links' }, agent: false });
    req.on('socket', (s) => {
      socket = s;
      s.setNoDelay(true);
    });
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        emit({ e: 'x', v, message: `HTTP ${res.statusCode}` });
        res.resume();
        return;
      }
      const splitter = new BoxSplitter();
      let video: TrackInfo | undefined;
      let prft: number | undefined;
      let moof: Box | undefined;
      let moofBytes = 0;
      res.on('data', (chunk: Buffer) => {
        let boxes: Box[];
        try {
          boxes = splitter.push(chunk);
        } catch (error) {
          emit({ e: 'x', v, message: (error as Error).message });
          res.destroy();
          return;
        }
        for (const box of boxes) {
          if (box.type === 'moov') {
            video = readTracks(box).find((track) => track.handler === 'vide');
            emit({ e: 'i', v, at: Date.now() });
          } else if (box.type === 'prft') {
            prft = prftTime(box);
            moofBytes = box.data.length;
          } else if (box.type === 'moof') {
            moof = box;
            moofBytes += box.data.length;
          } else if (box.type === 'mdat' && moof && video) {
            const info = readFragment(moof, video);
            emit({ e: 'g', v, at: Date.now(), prft, ...info, bytes: moofBytes + box.data.length });
            prft = undefined;
            moof = undefined;
            moofBytes = 0;
          }
        }
      });
      res.on('end', () => {
        emit({ e: 'x', v, message: 'the stream ended; opening it again' });
        setTimeout(open, 200);
      });
      res.on('error', (error) => emit({ e: 'x', v, message: error.message }));
    });
    req.on('error', (error) => {
      emit({ e: 'x', v, message: error.message });
      setTimeout(open, 500);
    });
    req.end();
  };
  watchBytes(v, () => socket);
  open();
}

const [mode, rawUrl, authorization, count] = process.argv.slice(2);
if ((mode !== 'mjpeg' && mode !== 'mp4') || !rawUrl || !authorization) {
  process.stderr.write('usage: links-viewer.ts mjpeg|mp4 URL AUTHORIZATION [COUNT]\n');
  process.exit(2);
}
const url = new URL(rawUrl);
for (let v = 0; v < Math.max(1, Number(count) || 1); v++) {
  if (mode === 'mjpeg') mjpegViewer(v, url, authorization);
  else mp4Viewer(v, url, authorization);
}
