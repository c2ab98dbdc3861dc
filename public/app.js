// Live and kiosk pages: keep the state badge current, bring the stream back after a drop, and
// draw the optional clock. No framework; runs in any current browser.
'use strict';

(function () {
  const body = document.body;
  const cameraId = body.dataset.camera;
  const live = document.getElementById('live');
  const state = document.getElementById('state');
  const clock = document.getElementById('clock');

  // A dropped stream (camera restart, network blip) is re-requested after a short pause.
  if (live) {
    let retry;
    live.addEventListener('error', function () {
      clearTimeout(retry);
      retry = setTimeout(function () {
        const url = new URL(live.src, location.href);
        url.searchParams.set('t', String(Date.now()));
        live.src = url.toString();
      }, 2000);
    });
  }

  const showState = function (name) {
    if (state) {
      state.textContent = name;
      state.className = 'state state-' + name;
    }
    // The clock is the viewer's time: mark it when the picture is not live.
    if (clock) clock.classList.toggle('stale', name !== 'streaming');
  };

  // A picture arriving is the state this page sees, whatever the server said when it was built
  // (the capture was idle until this page asked for the stream).
  if (live) live.addEventListener('load', function () { showState('streaming'); });

  if (cameraId && (state || clock)) {
    const refresh = function () {
      fetch('/api/cameras', { cache: 'no-store', credentials: 'same-origin' })
        .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
        .then(function (cameras) {
          const camera = cameras.find(function (c) { return c.id === cameraId; });
          if (camera) showState(camera.state);
        })
        .catch(function () {
          showState('unreachable');
          if (state) state.className = 'state state-offline';
        });
    };
    setInterval(refresh, 5000);
  }

  if (clock && body.dataset.timestamp === '1') {
    const tick = function () {
      const now = new Date();
      clock.dateTime = now.toISOString();
      clock.textContent = now.toLocaleString();
    };
    clock.hidden = false;
    tick();
    setInterval(tick, 1000);
  }
})();
