// The MJPEG live view, read by the page itself: fetch() the multipart stream, cut it into JPEGs by
// each part's Content-Length, and show the newest one in the <img> (a blob: URL per frame; a frame
// that arrives while the previous one is still decoding replaces the waiting one, so the picture
// never falls behind). Reading the stream here, rather than handing its URL to the <img>, lets the
// page count the frames it receives: the measure of a slow link (the server sends a slow link
// fewer frames, never old ones). A new request follows a dropped stream, with backoff.
'use strict';

(function () {
  const CRLFCRLF = [13, 10, 13, 10];

  function indexOfHeaderEnd(b, from) {
    for (let i = from; i + 3 < b.length; i++) {
      if (b[i] === CRLFCRLF[0] && b[i + 1] === CRLFCRLF[1] && b[i + 2] === CRLFCRLF[2] && b[i + 3] === CRLFCRLF[3]) return i;
    }
    return -1;
  }

  /** Cuts a multipart MJPEG byte stream into JPEGs (each part needs a Content-Length). */
  class MjpegParts {
    constructor() {
      this.rest = new Uint8Array(0);
      this.need = undefined;
    }

    /** Bytes in; the complete JPEGs out. Throws when a part has no Content-Length. */
    push(chunk) {
      let b = chunk;
      if (this.rest.length) {
        b = new Uint8Array(this.rest.length + chunk.length);
        b.set(this.rest);
        b.set(chunk, this.rest.length);
      }
      const parts = [];
      let at = 0;
      for (;;) {
        if (this.need === undefined) {
          const end = indexOfHeaderEnd(b, at);
          if (end < 0) {
            if (b.length - at > 16 * 1024) throw new Error('no part headers in the stream');
            break;
          }
          // The closing CRLF and boundary of the previous part, then this part's headers.
          const headers = String.fromCharCode.apply(null, b.subarray(at, end));
          const length = /content-length:\s*(\d+)/i.exec(headers);
          if (!length) throw new Error('a part without Content-Length');
          this.need = Number(length[1]);
          at = end + 4;
        }
        if (b.length - at < this.need) break;
        parts.push(b.slice(at, at + this.need));
        at += this.need;
        this.need = undefined;
      }
      this.rest = b.slice(at);
      return parts;
    }
  }

  /**
   * Shows `url` (multipart MJPEG) in `img`. Options: callbacks `onPicture()` (a frame is on screen),
   * `onStats({ fps, receivedFps, kbps })` (about once a second), `onFail(reason)` (the stream cannot
   * be read here: the page hands the URL to the <img> instead).
   */
  class MjpegPlayer {
    constructor(img, url, options = {}) {
      this.img = img;
      this.url = url;
      this.onPicture = options.onPicture || (() => {});
      this.onStats = options.onStats || (() => {});
      this.onFail = options.onFail || (() => {});
      this.running = false;
      this.failures = 0;
      this.shown = [];
      this.received = [];
      img.addEventListener('load', () => this.loaded());
      img.addEventListener('error', () => this.loaded());
    }

    start() {
      if (this.running) return;
      this.running = true;
      this.failures = 0;
      this.statsTimer = setInterval(() => this.report(), 1000);
      this.connect();
    }

    stop() {
      if (!this.running) return;
      this.running = false;
      clearInterval(this.statsTimer);
      clearTimeout(this.retry);
      if (this.abort) this.abort.abort();
      this.abort = undefined;
      this.next = undefined;
      this.received = [];
      this.shown = [];
    }

    /** A new stream URL (another rate cap): reconnects at once when running. */
    setUrl(url) {
      if (url === this.url) return;
      this.url = url;
      if (!this.running) return;
      this.stop();
      this.start();
    }

    /** Frames per second received from the network over the last `ms` (the link's measure). */
    receivedRate(ms) {
      const from = performance.now() - ms;
      return this.received.filter(([at]) => at >= from).length / (ms / 1000);
    }

    /** Milliseconds since this stream's first frame (0: none yet). */
    streamingFor() {
      return this.firstFrameAt ? performance.now() - this.firstFrameAt : 0;
    }

    async connect() {
      if (!this.running) return;
      const abort = new AbortController();
      this.abort = abort;
      this.firstFrameAt = undefined;
      const startedAt = Date.now();
      let frames = 0;
      try {
        const response = await fetch(this.url, { credentials: 'same-origin', cache: 'no-store', signal: abort.signal });
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        const parts = new MjpegParts();
        const reader = response.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done || abort.signal.aborted) break;
          let jpegs;
          try {
            jpegs = parts.push(value);
          } catch (error) {
            this.stop();
            this.onFail(error.message);
            return;
          }
          for (const jpeg of jpegs) {
            const now = performance.now();
            this.received.push([now, jpeg.length]);
            if (!this.firstFrameAt) this.firstFrameAt = now;
            frames++;
            this.show(new Blob([jpeg], { type: 'image/jpeg' }));
          }
        }
      } catch {
        if (this.abort !== abort) return; // stopped or replaced on purpose
      }
      if (this.abort !== abort || !this.running) return;
      if (frames > 0 && Date.now() - startedAt > 5_000) this.failures = 0;
      const delay = Math.min(10_000, 1000 * 2 ** Math.min(this.failures, 4));
      this.failures++;
      this.retry = setTimeout(() => this.connect(), delay);
    }

    /** Latest frame wins: one frame decodes at a time, the newest waits. */
    show(blob) {
      if (this.loading) {
        this.next = blob;
        return;
      }
      this.loading = URL.createObjectURL(blob);
      this.img.src = this.loading;
    }

    loaded() {
      if (!this.loading || this.img.src !== this.loading) return;
      if (this.current) URL.revokeObjectURL(this.current);
      this.current = this.loading;
      this.loading = undefined;
      if (this.img.naturalWidth > 0) {
        this.shown.push(performance.now());
        this.onPicture();
      }
      const next = this.next;
      this.next = undefined;
      if (next && this.running) this.show(next);
    }

    /** About once a second: frames shown and received per second over two seconds, and kbit/s. */
    report() {
      const from = performance.now() - 2000;
      this.shown = this.shown.filter((at) => at >= from);
      this.received = this.received.filter(([at]) => at >= from - 8000);
      const recent = this.received.filter(([at]) => at >= from);
      this.onStats({
        fps: this.shown.length / 2,
        receivedFps: recent.length / 2,
        kbps: (recent.reduce((sum, [, n]) => sum + n, 0) * 8) / 2 / 1000,
      });
    }
  }

  window.WebcamPlayers = Object.assign(window.WebcamPlayers || {}, { MjpegParts, MjpegPlayer });
})();
