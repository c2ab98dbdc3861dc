// The live views of the camera page and the grid: each picture plays MJPEG (read by the page) or
// H.264 (Media Source Extensions), as the user chose (Auto, MJPEG, H.264; remembered in this
// browser). Auto starts with MJPEG, which is live at once and costs the server no encoder, and
// turns to H.264 when the link is slow: when this page receives for several seconds under 70% of
// the frames the camera makes (the server sends a slow link fewer frames), or when the browser says
// the link is slow (Save-Data, a 2G/3G connection). Once on H.264 a page stays there: it cannot
// see whether the link would carry MJPEG without trying, and flapping is worse than a steady
// picture. Each view shows its mode, the frame rate it gets and, for H.264, the delay it measures.
// Also: the stream rate cap, fullscreen, and pausing while the page is hidden.
'use strict';

(function () {
  const { canPlayH264, H264Player, MjpegPlayer } = window.WebcamPlayers;

  const MODE_KEY = 'webcam-server:mode';
  const MODES = ['auto', 'mjpeg', 'h264'];
  /** Main profile, level 4.0: the server's default stream; the exact codec is checked when it arrives. */
  const PROBE_TYPE = 'video/mp4; codecs="avc1.4d4028"';
  /** Auto: MJPEG is slow when it gets under this share of the camera's frames ... */
  const SLOW_SHARE = 0.7;
  /** ... measured over this window, in this many checks a second apart. */
  const SLOW_WINDOW_MS = 4000;
  const SLOW_CHECKS = 3;

  /** Pure policy: is a link that delivers `receivedFps` of `expectedFps` too slow for MJPEG? */
  function slowLink(receivedFps, expectedFps) {
    return expectedFps > 0 && receivedFps < SLOW_SHARE * expectedFps;
  }

  /** The browser's own word that the link is slow or metered, or undefined. */
  function connectionHint() {
    const connection = navigator.connection;
    if (!connection) return undefined;
    if (connection.saveData) return 'data saver is on';
    if (/^(slow-2g|2g|3g)$/.test(connection.effectiveType || '')) return `a ${connection.effectiveType} connection`;
    return undefined;
  }

  const storage = {
    get(key) {
      try {
        return localStorage.getItem(key);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        if (value) localStorage.setItem(key, value);
        else localStorage.removeItem(key);
      } catch {
        // Private mode: the choice lasts as long as the page.
      }
    },
  };

  const h264InBrowser = canPlayH264(PROBE_TYPE);
  let clockOffset = 0;
  const serverNow = () => Date.now() + clockOffset;
  /** The camera's real frame rate from two readings of /api/cameras (app.js polls it). */
  const cameraRates = new Map();

  const formatFps = (fps) => `${fps >= 10 ? Math.round(fps) : fps.toFixed(1).replace(/\.0$/, '')} fps`;
  const formatRate = (kbps) => (kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(kbps)} kbit/s`);

  class Viewer {
    constructor(figure, mode) {
      this.figure = figure;
      this.cameraId = figure.dataset.camera;
      this.fps = Number(figure.dataset.fps) || 0;
      this.img = figure.querySelector('img.live');
      this.video = figure.querySelector('video.live');
      this.stats = figure.querySelector('.stats');
      this.mode = mode;
      this.rateCap = 0;
      this.slowChecks = 0;
      this.paused = false;
      const picture = () => this.figure.classList.add('has-picture');
      this.mjpeg = new MjpegPlayer(this.img, figure.dataset.mjpeg, {
        onPicture: picture,
        onStats: (stats) => this.mjpegStats(stats),
        onFail: () => {
          // Not readable here (no Content-Length): the <img> takes the stream itself, without figures.
          this.nativeMjpeg = true;
          this.img.src = this.mjpegUrl();
          this.show('MJPEG', '', '');
        },
      });
      if (this.video && figure.dataset.h264 === '1' && h264InBrowser) {
        this.h264 = new H264Player(this.video, figure.dataset.mp4, {
          now: serverNow,
          onPicture: picture,
          onStats: (stats) => this.h264Stats(stats),
          onFail: (reason) => {
            this.h264Problem = reason;
            this.apply();
          },
        });
      } else {
        this.h264Problem = figure.dataset.h264 === '1' ? 'this browser cannot play H.264 here' : 'this camera has no H.264 view';
      }
    }

    mjpegUrl() {
      const url = new URL(this.figure.dataset.mjpeg, location.href);
      if (this.rateCap) url.searchParams.set('fps', String(this.rateCap));
      return url.pathname + url.search;
    }

    setMode(mode) {
      this.mode = mode;
      if (mode !== 'auto') this.autoReason = undefined;
      this.apply();
    }

    setRateCap(fps) {
      this.rateCap = fps;
      this.slowChecks = 0;
      if (this.nativeMjpeg) this.img.src = this.mjpegUrl();
      else this.mjpeg.setUrl(this.mjpegUrl());
    }

    /** What this view should play now. */
    wanted() {
      if (!this.h264 || this.h264Problem || this.mode === 'mjpeg') return 'mjpeg';
      if (this.mode === 'h264') return 'h264';
      if (!this.autoReason) {
        const hint = connectionHint();
        if (hint) this.autoReason = hint;
      }
      return this.autoReason ? 'h264' : 'mjpeg';
    }

    /** Plays what is wanted (and stops the other), or nothing while the page is hidden. */
    apply() {
      const want = this.paused ? undefined : this.wanted();
      if (want !== 'h264' && this.h264) this.h264.stop();
      if (want !== 'mjpeg') this.mjpeg.stop();
      if (this.nativeMjpeg && want !== 'mjpeg') this.img.removeAttribute('src');
      if (!want) return;
      this.figure.dataset.mode = want;
      this.img.hidden = want !== 'mjpeg';
      if (this.video) this.video.hidden = want !== 'h264';
      if (want === 'h264') this.h264.start();
      else if (!this.nativeMjpeg) this.mjpeg.start();
      else if (!this.img.getAttribute('src')) this.img.src = this.mjpegUrl();
      this.slowChecks = 0;
      document.dispatchEvent(new CustomEvent('webcam:mode', { detail: { camera: this.cameraId, mode: want } }));
      this.show(this.modeLabel(want), '', want === 'mjpeg' ? 'delay —' : '');
    }

    modeLabel(active) {
      const label = active === 'h264' ? 'H.264' : 'MJPEG';
      return this.mode === 'auto' ? `${label} (auto)` : label;
    }

    pause(paused) {
      this.paused = paused;
      this.apply();
    }

    show(mode, fps, delay, title) {
      const set = (selector, text) => {
        const element = this.stats && this.stats.querySelector(selector);
        if (element && element.textContent !== text) element.textContent = text;
      };
      set('.stat-mode', mode);
      set('.stat-fps', fps);
      set('.stat-delay', delay);
      if (this.stats) {
        const reason = this.mode === 'auto' ? this.autoReason || 'the link carries MJPEG' : '';
        const problem = this.h264Problem && this.mode !== 'mjpeg' ? `H.264: ${this.h264Problem}` : '';
        this.stats.title = [title, reason && `Auto: ${reason}`, problem].filter(Boolean).join('. ');
      }
    }

    mjpegStats(stats) {
      this.stats.dataset.fps = String(stats.fps);
      this.stats.dataset.kbps = String(Math.round(stats.kbps));
      delete this.stats.dataset.delayMs;
      this.show(this.modeLabel('mjpeg'), `${formatFps(stats.fps)} · ${formatRate(stats.kbps)}`, 'delay —', 'MJPEG frames carry no capture time, so the delay is not measured');
      this.judgeLink();
    }

    h264Stats(stats) {
      this.stats.dataset.fps = String(stats.fps);
      this.stats.dataset.kbps = String(Math.round(stats.kbps));
      if (stats.delayMs === undefined) delete this.stats.dataset.delayMs;
      else this.stats.dataset.delayMs = String(Math.round(stats.delayMs));
      const delay = stats.delayMs === undefined ? 'delay —' : `${(Math.max(0, stats.delayMs) / 1000).toFixed(1)} s delay`;
      this.show(this.modeLabel('h264'), `${formatFps(stats.fps)} · ${formatRate(stats.kbps)}`, delay, 'Delay: from the capture of the frame on screen to now');
    }

    /** Auto: once a second while on MJPEG, is the link too slow for it? */
    judgeLink() {
      if (this.mode !== 'auto' || this.autoReason || !this.h264 || this.h264Problem || document.hidden) return;
      if (this.mjpeg.streamingFor() < SLOW_WINDOW_MS) return;
      // Compared with what the camera really makes (a dim webcam may make fewer than its fps), once
    // two readings of /api/cameras have told it.
    const cameraRate = cameraRates.get(this.cameraId);
    if (!cameraRate || cameraRate.fps === undefined) return;
    const expected = Math.min(cameraRate.fps, this.fps || Infinity, this.rateCap || Infinity);
    const received = this.mjpeg.receivedRate(SLOW_WINDOW_MS);
      if (!slowLink(received, expected)) {
        this.slowChecks = 0;
        return;
      }
      this.slowChecks++;
      if (this.slowChecks < SLOW_CHECKS) return;
      this.autoReason = `slow link: ${formatFps(received)} of the camera's ${formatFps(expected)} came through`;
      this.apply();
    }
  }

  // --- the page ----------------------------------------------------------------------------------

  const figures = Array.from(document.querySelectorAll('figure.viewer[data-camera]'));
  const storedMode = storage.get(MODE_KEY);
  let mode = MODES.includes(storedMode) ? storedMode : 'auto';
  const viewers = figures.map((figure) => new Viewer(figure, mode));

  // The mode switch.
  const radios = Array.from(document.querySelectorAll('input[name="mode"]'));
  radios.forEach((radio) => {
    radio.checked = radio.value === mode;
    radio.addEventListener('change', () => {
      if (!radio.checked) return;
      mode = radio.value;
      storage.set(MODE_KEY, mode === 'auto' ? '' : mode);
      viewers.forEach((viewer) => viewer.setMode(mode));
    });
  });

  // The stream rate cap of the camera page's MJPEG view (flask-cam's "delay"), remembered per camera.
  const rate = document.getElementById('rate');
  const pageViewer = viewers.length === 1 ? viewers[0] : undefined;
  if (rate && pageViewer) {
    const key = 'webcam-server:rate:' + pageViewer.cameraId;
    const saved = storage.get(key);
    if (saved && Array.from(rate.options).some((option) => option.value === saved)) rate.value = saved;
    pageViewer.setRateCap(Number(rate.value) || 0);
    rate.addEventListener('change', () => {
      storage.set(key, rate.value);
      pageViewer.setRateCap(Number(rate.value) || 0);
    });
    // The H.264 view runs at the camera's rate: the cap is for MJPEG.
    document.addEventListener('webcam:mode', (event) => {
      rate.disabled = event.detail.mode !== 'mjpeg';
    });
  }

  // What app.js learns from /api/cameras: the server's clock and each camera's real frame rate.
  document.addEventListener('webcam:cameras', (event) => {
    clockOffset = event.detail.clockOffset || 0;
    for (const camera of event.detail.cameras) {
      if (typeof camera.frames !== 'number') {
        // A server that does not count frames: the camera's configured rate stands in.
        const figure = figures.find((f) => f.dataset.camera === camera.id);
        cameraRates.set(camera.id, { fps: figure ? Number(figure.dataset.fps) : undefined });
        continue;
      }
      if (!camera.frameAt) continue;
      const last = cameraRates.get(camera.id);
      if (!last || camera.frameAt < last.frameAt || camera.frames < last.frames) {
        cameraRates.set(camera.id, { frames: camera.frames, frameAt: camera.frameAt });
      } else if (camera.frameAt - last.frameAt >= 2000) {
        const fps = ((camera.frames - last.frames) * 1000) / (camera.frameAt - last.frameAt);
        cameraRates.set(camera.id, { frames: camera.frames, frameAt: camera.frameAt, fps });
      }
    }
  });

  // Fullscreen: the figure (camera page) or the whole grid, with the Fullscreen API where there is
  // one; iPhone Safari has it only for a playing video; elsewhere the picture fills the window.
  const fullscreenElement = () => document.fullscreenElement || document.webkitFullscreenElement;
  document.querySelectorAll('button.fullscreen').forEach((button) => {
    const target = button.closest('figure.viewer') || document.querySelector('main.grid');
    if (!target) return;
    const update = () => {
      const on = fullscreenElement() === target || target.classList.contains('filled');
      button.setAttribute('aria-pressed', String(on));
      button.textContent = on ? 'Exit fullscreen' : 'Fullscreen';
    };
    button.addEventListener('click', () => {
      if (fullscreenElement()) {
        (document.exitFullscreen || document.webkitExitFullscreen).call(document);
      } else if (target.classList.contains('filled')) {
        target.classList.remove('filled');
      } else if (target.requestFullscreen) {
        target.requestFullscreen().catch(() => target.classList.add('filled'));
      } else if (target.webkitRequestFullscreen) {
        target.webkitRequestFullscreen();
      } else {
        const video = target.querySelector('video.live:not([hidden])');
        if (video && video.webkitEnterFullscreen) video.webkitEnterFullscreen();
        else target.classList.add('filled');
      }
      update();
    });
    document.addEventListener('fullscreenchange', update);
    document.addEventListener('webkitfullscreenchange', update);
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && target.classList.contains('filled')) {
        target.classList.remove('filled');
        update();
      }
    });
  });

  // A hidden page (another tab, a locked phone) downloads nothing.
  document.addEventListener('visibilitychange', () => viewers.forEach((viewer) => viewer.pause(document.hidden)));
  viewers.forEach((viewer) => viewer.pause(document.hidden));
})();
