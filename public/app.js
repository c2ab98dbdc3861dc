// Every page: keep the state badges current, draw the optional clocks, and (kiosk) bring the MJPEG
// image back after a drop. It polls /api/cameras and passes what it learns to the live views
// (live.js) as a 'webcam:cameras' event: the cameras, and how far this browser's clock is from the
// server's (the X-Server-Time header), so the delay shown does not depend on this device's clock.
// No framework; runs in any current browser.
'use strict';

(function () {
  const body = document.body;

  // The kiosk's image is the stream itself: a dropped stream is re-requested after a short pause.
  const kioskImage = body.classList.contains('kiosk-page') ? document.getElementById('live') : null;
  if (kioskImage) {
    let retry;
    kioskImage.addEventListener('error', function () {
      clearTimeout(retry);
      retry = setTimeout(function () {
        const url = new URL(kioskImage.src, location.href);
        url.searchParams.set('t', String(Date.now()));
        kioskImage.src = url.toString();
      }, 2000);
    });
  }

  const cameraOf = function (element) {
    const holder = element.closest('[data-camera]');
    return holder ? holder.dataset.camera : undefined;
  };
  const badges = Array.from(document.querySelectorAll('.state[data-camera]'));
  const clocks = Array.from(document.querySelectorAll('.clock')).filter(function (clock) {
    const holder = clock.closest('[data-timestamp]');
    return holder && holder.dataset.timestamp === '1';
  });

  const showState = function (cameraId, name) {
    badges.forEach(function (badge) {
      if (badge.dataset.camera !== cameraId || badge.textContent === name) return;
      badge.textContent = name;
      badge.className = 'state state-' + (name === 'unreachable' ? 'offline' : name);
    });
    // The clock is the viewer's time: mark it when the picture is not live.
    clocks.forEach(function (clock) {
      if (cameraOf(clock) === cameraId) clock.classList.toggle('stale', name !== 'streaming');
    });
  };

  // A picture arriving is the state this page sees, whatever the server said when it was built
  // (the capture was idle until this page asked for the stream). Load events do not bubble:
  // listen while they go down.
  const lastPicture = {};
  const pictureArrived = function (event) {
    const target = event.target;
    if (!(target instanceof Element) || !target.classList.contains('live')) return;
    const cameraId = cameraOf(target);
    if (!cameraId) return;
    lastPicture[cameraId] = Date.now();
    showState(cameraId, 'streaming');
  };
  document.addEventListener('load', pictureArrived, true);
  document.addEventListener('loadeddata', pictureArrived, true);

  // The server's clock: of recent polls, the one with the shortest round trip is the best guess.
  const samples = [];
  const clockOffset = function (sentAt, receivedAt, serverTime) {
    if (Number.isFinite(serverTime)) {
      samples.push({ rtt: receivedAt - sentAt, offset: serverTime - (sentAt + receivedAt) / 2 });
      if (samples.length > 12) samples.shift();
    }
    if (!samples.length) return 0;
    return samples.reduce(function (best, s) { return s.rtt < best.rtt ? s : best; }).offset;
  };

  const viewers = document.querySelector('.viewer');
  if (badges.length || clocks.length || viewers) {
    const refresh = function () {
      const sentAt = Date.now();
      fetch('/api/cameras', { cache: 'no-store', credentials: 'same-origin' })
        .then(function (response) {
          if (!response.ok) return Promise.reject(response.status);
          const receivedAt = Date.now();
          const serverTime = Number(response.headers.get('X-Server-Time'));
          return response.json().then(function (cameras) {
            cameras.forEach(function (camera) {
              // A picture that came after the question is newer news than the answer.
              if (camera.state === 'streaming' || !(lastPicture[camera.id] > sentAt)) showState(camera.id, camera.state);
            });
            document.dispatchEvent(new CustomEvent('webcam:cameras', {
              detail: { cameras: cameras, clockOffset: clockOffset(sentAt, receivedAt, serverTime) },
            }));
          });
        })
        .catch(function () {
          badges.forEach(function (badge) { showState(badge.dataset.camera, 'unreachable'); });
        });
    };
    // Soon after the start too: two readings of a running camera give the live views its real rate.
    refresh();
    setTimeout(refresh, 2500);
    setInterval(refresh, 5000);
  }

  if (clocks.length) {
    const tick = function () {
      const now = new Date();
      clocks.forEach(function (clock) {
        clock.dateTime = now.toISOString();
        clock.textContent = now.toLocaleString();
      });
    };
    clocks.forEach(function (clock) { clock.hidden = false; });
    tick();
    setInterval(tick, 1000);
  }
})();
