// The H.264 live view: reads the server's fragmented MP4 (/stream.mp4: init segment, then fragments
// of prft + moof + mdat) with fetch() and plays it through Media Source Extensions
// (ManagedMediaSource where it exists: iPhone Safari). It stays live: a few seconds buffered at
// most, the playhead kept near the newest frame (a jump when more than a second behind or stuck at
// a gap, a slightly faster rate when a little behind), and a new request with backoff when the
// response ends (the encoder was replaced) or fails. Each fragment's prft box gives the wall-clock
// time of its first frame, so the player reports the delay of the frame on screen.
'use strict';

(function () {
  const MS = window.ManagedMediaSource || window.MediaSource;
  /** Seconds from 1900 (NTP) to 1970 (Unix). */
  const NTP_UNIX_OFFSET = 2208988800;

  /** Where the playhead should sit behind the newest buffered frame (fragments come every ~250 ms). */
  const TARGET_LAG = 0.35;
  /** Further behind than this: jump to the target. Between SPEED_UP_LAG and this: play 10% faster. */
  const MAX_LAG = 1.0;
  const SPEED_UP_LAG = 0.6;
  /** Buffer kept behind the playhead: trimmed to KEEP_BEHIND once it exceeds TRIM_BEHIND (seconds). */
  const TRIM_BEHIND = 10;
  const KEEP_BEHIND = 5;
  /** Bytes waiting to be appended before the connection is restarted (the decoder fell behind). */
  const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

  /** True when this browser can play `type` (`video/mp4; codecs="avc1.PPCCLL"`) through MSE. */
  function canPlayH264(type) {
    return Boolean(MS && typeof MS.isTypeSupported === 'function' && MS.isTypeSupported(type));
  }

  // --- MP4 boxes -------------------------------------------------------------------------------

  const u32 = (b, o) => ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
  const u64 = (b, o) => u32(b, o) * 4294967296 + u32(b, o + 4);
  const fourcc = (b, o) => String.fromCharCode(b[o], b[o + 1], b[o + 2], b[o + 3]);

  /** The boxes inside bytes [start, end) of `b`: { type, start (payload), end }. */
  function boxesIn(b, start, end) {
    const boxes = [];
    let at = start;
    while (end - at >= 8) {
      let size = u32(b, at);
      let header = 8;
      if (size === 1) {
        size = u64(b, at + 8);
        header = 16;
      } else if (size === 0) {
        size = end - at;
      }
      if (size < header || at + size > end) break;
      boxes.push({ type: fourcc(b, at + 4), start: at + header, end: at + size });
      at += size;
    }
    return boxes;
  }

  const child = (b, box, type) => boxesIn(b, box.start, box.end).find((c) => c.type === type);

  /** Cuts a byte stream into whole top-level boxes. */
  class BoxSplitter {
    constructor() {
      this.rest = new Uint8Array(0);
    }

    /** Bytes in; complete boxes out as { type, data } (data: the whole box). */
    push(chunk) {
      let buffer = chunk;
      if (this.rest.length) {
        buffer = new Uint8Array(this.rest.length + chunk.length);
        buffer.set(this.rest);
        buffer.set(chunk, this.rest.length);
      }
      const boxes = [];
      let at = 0;
      while (buffer.length - at >= 8) {
        let size = u32(buffer, at);
        if (size === 1) {
          if (buffer.length - at < 16) break;
          size = u64(buffer, at + 8);
        }
        const type = fourcc(buffer, at + 4);
        if (size < 8 || !/^[\x20-\x7e]{4}$/.test(type)) throw new Error('not an MP4 stream');
        if (buffer.length - at < size) break;
        boxes.push({ type, data: buffer.subarray(at, at + size) });
        at += size;
      }
      this.rest = buffer.slice(at);
      return boxes;
    }
  }

  /** From the moov: the video track's id and timescale, and whether there is a sound track. */
  function readInit(moov) {
    const b = moov.data;
    const result = { videoId: 0, timescale: 1000, audio: false };
    for (const trak of boxesIn(b, 8, b.length).filter((c) => c.type === 'trak')) {
      const tkhd = child(b, trak, 'tkhd');
      const mdia = child(b, trak, 'mdia');
      const hdlr = mdia && child(b, mdia, 'hdlr');
      const mdhd = mdia && child(b, mdia, 'mdhd');
      if (!tkhd || !hdlr || !mdhd) continue;
      const handler = fourcc(b, hdlr.start + 8);
      if (handler === 'soun') result.audio = true;
      if (handler !== 'vide') continue;
      result.videoId = u32(b, tkhd.start + (b[tkhd.start] === 1 ? 20 : 12));
      result.timescale = u32(b, mdhd.start + (b[mdhd.start] === 1 ? 20 : 12)) || 1000;
    }
    return result;
  }

  /** The base media decode time (tfdt) of the video track in a moof, in track units; null if none. */
  function readDecodeTime(moof, videoId) {
    const b = moof.data;
    for (const traf of boxesIn(b, 8, b.length).filter((c) => c.type === 'traf')) {
      const tfhd = child(b, traf, 'tfhd');
      const tfdt = child(b, traf, 'tfdt');
      if (!tfhd || !tfdt || u32(b, tfhd.start + 4) !== videoId) continue;
      return b[tfdt.start] === 1 ? u64(b, tfdt.start + 4) : u32(b, tfdt.start + 4);
    }
    return null;
  }

  /** A prft box: the wall-clock time (ms since 1970) of a media time (track units), for a track. */
  function readPrft(prft) {
    const b = prft.data;
    const version = b[8];
    const seconds = u32(b, 16);
    const fraction = u32(b, 20);
    return {
      trackId: u32(b, 12),
      wallMs: (seconds - NTP_UNIX_OFFSET) * 1000 + (fraction / 4294967296) * 1000,
      media: version === 1 ? u64(b, 24) : u32(b, 24),
    };
  }

  // --- the player ----------------------------------------------------------------------------------

  /**
   * Plays `url` in `video`. Options: `now()` (the server's clock in ms, for the delay), and
   * callbacks `onPicture()` (a frame is on screen), `onStats({ fps, delayMs, kbps })` (about once a
   * second), `onFail(reason)` (this browser or camera cannot play it: the page falls back to MJPEG).
   */
  class H264Player {
    constructor(video, url, options = {}) {
      this.video = video;
      this.url = url;
      this.now = options.now || Date.now;
      this.onPicture = options.onPicture || (() => {});
      this.onStats = options.onStats || (() => {});
      this.onFail = options.onFail || (() => {});
      this.running = false;
      this.failures = 0;
      this.presented = [];
      this.delays = [];
      this.bytes = [];
      this.onVideoError = () => this.reconnect(true);
      video.muted = true;
      video.playsInline = true;
      video.disableRemotePlayback = true;
    }

    start() {
      if (this.running) return;
      this.running = true;
      this.failures = 0;
      this.video.addEventListener('error', this.onVideoError);
      this.timer = setInterval(() => this.tick(), 250);
      this.statsTimer = setInterval(() => this.report(), 1000);
      this.watchFrames();
      this.connect();
    }

    stop() {
      if (!this.running) return;
      this.running = false;
      clearInterval(this.timer);
      clearInterval(this.statsTimer);
      clearTimeout(this.retry);
      this.video.removeEventListener('error', this.onVideoError);
      this.closeConnection();
      this.detach();
    }

    // --- MediaSource ---------------------------------------------------------------------------

    /** A new MediaSource on the video; resolves when it is open. */
    attach() {
      this.detach();
      const source = new MS();
      this.source = source;
      this.objectUrl = URL.createObjectURL(source);
      const opened = new Promise((resolve) => source.addEventListener('sourceopen', resolve, { once: true }));
      this.video.src = this.objectUrl;
      return opened;
    }

    detach() {
      this.sourceBuffer = undefined;
      this.bufferType = undefined;
      this.queue = [];
      this.queuedBytes = 0;
      this.prfts = [];
      if (this.objectUrl) {
        this.video.removeAttribute('src');
        this.video.load();
        URL.revokeObjectURL(this.objectUrl);
      }
      this.source = undefined;
      this.objectUrl = undefined;
    }

    /** The SourceBuffer for `type`, made (or changed) when the stream's codec is known. */
    bufferFor(type) {
      if (this.sourceBuffer && this.bufferType === type) return this.sourceBuffer;
      if (this.sourceBuffer) {
        if (typeof this.sourceBuffer.changeType !== 'function') throw new Error('codec changed');
        this.queue.push({ changeType: type });
        this.bufferType = type;
        return this.sourceBuffer;
      }
      const buffer = this.source.addSourceBuffer(type);
      buffer.addEventListener('updateend', () => {
        this.keepLive();
        this.pump();
      });
      this.sourceBuffer = buffer;
      this.bufferType = type;
      return buffer;
    }

    enqueue(operation) {
      if (operation.data) this.queuedBytes += operation.data.byteLength;
      this.queue.push(operation);
      if (this.queuedBytes > MAX_QUEUED_BYTES) {
        this.reconnect(true);
        return;
      }
      this.pump();
    }

    /** Runs the next queued operation on the SourceBuffer once it is idle. */
    pump() {
      const buffer = this.sourceBuffer;
      if (!buffer || buffer.updating || !this.source || this.source.readyState !== 'open') return;
      const next = this.queue.shift();
      if (!next) return;
      try {
        if (next.data) {
          this.queuedBytes -= next.data.byteLength;
          buffer.appendBuffer(next.data);
        } else if (next.remove) {
          buffer.remove(next.remove[0], next.remove[1]);
        } else if (next.changeType) {
          buffer.changeType(next.changeType);
          this.pump();
        } else if (next.offset !== undefined) {
          buffer.timestampOffset = next.offset;
          this.pump();
        }
      } catch {
        // QuotaExceededError, a closed source ...: start over from the newest key frame.
        this.reconnect(true);
      }
    }

    // --- the connection ------------------------------------------------------------------------

    closeConnection() {
      if (this.abort) this.abort.abort();
      this.abort = undefined;
    }

    /** Ends this connection and opens a new one after the backoff; `reset`: a new MediaSource too. */
    reconnect(reset) {
      if (!this.running) return;
      this.closeConnection();
      if (reset) this.detach();
      clearTimeout(this.retry);
      const delay = Math.min(10_000, 500 * 2 ** Math.min(this.failures, 5));
      this.failures++;
      this.retry = setTimeout(() => this.connect(), delay);
    }

    async connect() {
      if (!this.running) return;
      const abort = new AbortController();
      this.abort = abort;
      const startedAt = Date.now();
      let fragments = 0;
      try {
        const response = await fetch(this.url, { credentials: 'same-origin', cache: 'no-store', signal: abort.signal });
        if (response.status === 404) {
          this.fail('this camera has no H.264 view');
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        const contentType = response.headers.get('Content-Type') || '';
        const codecs = /codecs="?([^";]+)"?/.exec(contentType);
        if (!codecs) throw new Error('no codec in the answer');
        if (!this.source || this.source.readyState !== 'open') await this.attach();
        if (abort.signal.aborted) return;
        const splitter = new BoxSplitter();
        const reader = response.body.getReader();
        const connection = { offset: undefined, held: [], init: undefined };
        for (;;) {
          const { done, value } = await reader.read();
          if (done || abort.signal.aborted) break;
          this.bytes.push([performance.now(), value.byteLength]);
          for (const box of splitter.push(value)) {
            if (this.handleBox(box, connection, codecs[1])) fragments++;
          }
        }
      } catch {
        if (abort.signal.aborted && this.abort !== abort) return; // stopped or replaced on purpose
      }
      if (this.abort !== abort || !this.running) return;
      // The response ended (the encoder was replaced, the server restarted) or failed.
      if (fragments > 0 && Date.now() - startedAt > 5_000) this.failures = 0;
      if (fragments === 0 && this.failures >= 5 && !this.pictureShown) {
        this.fail('the H.264 view does not play here');
        return;
      }
      this.reconnect(false);
    }

    fail(reason) {
      this.stop();
      this.onFail(reason);
    }

    /** One top-level box of the stream; true when it completed a fragment. */
    handleBox(box, connection, codecs) {
      switch (box.type) {
        case 'ftyp':
          connection.ftyp = box.data;
          return false;
        case 'moov': {
          const init = readInit(box);
          connection.init = init;
          const codecList = init.audio && !/mp4a/.test(codecs) ? `${codecs},mp4a.40.2` : codecs;
          const type = `video/mp4; codecs="${codecList}"`;
          if (!canPlayH264(type)) {
            this.fail(`this browser cannot play ${codecList}`);
            return false;
          }
          this.bufferFor(type);
          const data = new Uint8Array((connection.ftyp ? connection.ftyp.length : 0) + box.data.length);
          if (connection.ftyp) data.set(connection.ftyp);
          data.set(box.data, data.length - box.data.length);
          this.enqueue({ data });
          return false;
        }
        case 'prft':
        case 'moof':
          connection.held.push(box);
          return false;
        case 'mdat': {
          const held = connection.held;
          connection.held = [];
          const moof = held.find((b) => b.type === 'moof');
          if (!moof || !connection.init) return false;
          const init = connection.init;
          const decodeTime = readDecodeTime(moof, init.videoId);
          if (connection.offset === undefined) {
            // The first fragment of this response: place it right after what is buffered (or at 0),
            // whatever media time a new encoder or a resumed one starts at.
            const buffered = this.video.buffered;
            const end = buffered.length ? buffered.end(buffered.length - 1) : 0;
            connection.offset = end - (decodeTime || 0) / init.timescale;
            this.enqueue({ offset: connection.offset });
          }
          const prft = held.find((b) => b.type === 'prft');
          if (prft) {
            const stamp = readPrft(prft);
            if (stamp.trackId === init.videoId || stamp.trackId === 0) {
              this.prfts.push({ t: stamp.media / init.timescale + connection.offset, wallMs: stamp.wallMs });
              if (this.prfts.length > 64) this.prfts.shift();
            }
          }
          const data = new Uint8Array(moof.data.length + box.data.length);
          data.set(moof.data);
          data.set(box.data, moof.data.length);
          this.enqueue({ data });
          return true;
        }
        default:
          connection.held = [];
          return false;
      }
    }

    // --- staying live --------------------------------------------------------------------------

    /** Keeps the playhead near the newest frame, jumps gaps, trims the buffer behind it. */
    keepLive() {
      const video = this.video;
      const buffered = video.buffered;
      if (!this.running || !buffered.length) return;
      const t = video.currentTime;
      const last = buffered.length - 1;
      const end = buffered.end(last);
      let inside = false;
      for (let i = 0; i < buffered.length; i++) {
        if (t >= buffered.start(i) - 0.05 && t < buffered.end(i)) inside = true;
      }
      const lag = end - t;
      if (!inside || lag > MAX_LAG || (this.stuckSince && performance.now() - this.stuckSince > 1500 && lag > 0.1)) {
        // Before the first frame, at a gap (the server skipped ahead), stuck, or too far behind.
        const target = Math.max(buffered.start(last), end - TARGET_LAG);
        if (Math.abs(target - t) > 0.05) video.currentTime = target;
        this.stuckSince = undefined;
        video.playbackRate = 1;
      } else if (lag > SPEED_UP_LAG) {
        video.playbackRate = 1.1;
      } else if (lag < TARGET_LAG + 0.1) {
        video.playbackRate = 1;
      }
      if (video.paused && video.readyState >= 2) {
        const playing = video.play();
        if (playing) playing.catch(() => undefined);
      }
      const start = buffered.start(0);
      if (t - start > TRIM_BEHIND && this.sourceBuffer && !this.queue.some((op) => op.remove)) {
        this.enqueue({ remove: [start, t - KEEP_BEHIND] });
      }
    }

    /** Every 250 ms: notices a playhead that stopped moving, and keeps it live between fragments. */
    tick() {
      const t = this.video.currentTime;
      if (t !== this.lastTime) {
        this.lastTime = t;
        this.stuckSince = undefined;
      } else if (!this.stuckSince) {
        this.stuckSince = performance.now();
      }
      this.keepLive();
    }

    // --- what the viewer sees ------------------------------------------------------------------

    /** The wall-clock time (server clock, ms) of media time `t` (seconds on the video's timeline). */
    wallClockAt(t) {
      for (let i = this.prfts.length - 1; i >= 0; i--) {
        const stamp = this.prfts[i];
        if (stamp.t <= t + 0.001) return stamp.wallMs + (t - stamp.t) * 1000;
      }
      return undefined;
    }

    /** Counts the frames put on screen and the delay of each (requestVideoFrameCallback where it exists). */
    watchFrames() {
      const video = this.video;
      const seen = (mediaTime) => {
        const wall = this.wallClockAt(mediaTime);
        if (wall !== undefined) this.delays.push([performance.now(), this.now() - wall]);
        if (!this.pictureShown) {
          this.pictureShown = true;
          this.onPicture();
        }
      };
      if (typeof video.requestVideoFrameCallback === 'function') {
        const onFrame = (_now, metadata) => {
          if (!this.running) return;
          this.presented.push(performance.now());
          seen(metadata.mediaTime);
          video.requestVideoFrameCallback(onFrame);
        };
        video.requestVideoFrameCallback(onFrame);
        this.countFrames = undefined;
      } else {
        // No per-frame callback: frames from the playback quality, the delay at the playhead.
        this.countFrames = () => {
          const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : undefined;
          const total = quality ? quality.totalVideoFrames - quality.droppedVideoFrames : 0;
          const added = this.lastTotal === undefined ? 0 : Math.max(0, total - this.lastTotal);
          this.lastTotal = total;
          const now = performance.now();
          for (let i = 0; i < added; i++) this.presented.push(now);
          if (video.readyState >= 2 && !video.paused) seen(video.currentTime);
        };
      }
    }

    /** About once a second: frames per second and delay over the last two seconds, and kbit/s. */
    report() {
      if (this.countFrames) this.countFrames();
      const now = performance.now();
      const from = now - 2000;
      this.presented = this.presented.filter((at) => at >= from);
      this.delays = this.delays.filter(([at]) => at >= from);
      this.bytes = this.bytes.filter(([at]) => at >= from);
      const delays = this.delays.map(([, delay]) => delay).sort((a, b) => a - b);
      this.onStats({
        fps: this.pictureShown ? this.presented.length / 2 : 0,
        delayMs: delays.length ? delays[Math.floor(delays.length / 2)] : undefined,
        kbps: (this.bytes.reduce((sum, [, n]) => sum + n, 0) * 8) / 2 / 1000,
      });
    }
  }

  window.WebcamPlayers = Object.assign(window.WebcamPlayers || {}, { canPlayH264, H264Player });
})();
