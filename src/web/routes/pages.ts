// HTML pages: the live page of one camera (picture, name, state, the picture's mode, frame rate and
// delay, fullscreen, snapshot, controls), the grid of every camera at / when there are several, and
// the kiosk page (the MJPEG image alone on black). Markup is rendered here with every value
// escaped; styles and scripts are static files under /static/, served by @fastify/static. The
// live views are played by live.js (MJPEG read by the page, or H.264 through Media Source Extensions).
import { join } from 'node:path';

import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyReply } from 'fastify';

import { escapeHtml } from '../../util/escape-html';
import type { WebCamera } from '../cameras';
import { cameraParams, findCamera } from '../cameras';

/** public/ at the package root, from both src/web/routes (tsx) and dist/web/routes (built). */
export const PUBLIC_DIR = join(__dirname, '..', '..', '..', 'public');

const cameraBase = (camera: WebCamera): string => `/cameras/${encodeURIComponent(camera.id)}`;

function layout(title: string, bodyAttributes: string, body: string, extraHead = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="theme-color" content="#111111">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
${extraHead}</head>
<body ${bodyAttributes}>
${body}
</body>
</html>
`;
}

function dataAttributes(camera: WebCamera, page: string): string {
  return `class="${page}" data-camera="${escapeHtml(camera.id)}" data-timestamp="${camera.timestamp ? '1' : '0'}"`;
}

/** The scripts of the pages with live views: the two players, then the page logic. */
const LIVE_SCRIPTS = ['h264-player.js', 'mjpeg-player.js', 'live.js'].map((file) => `<script src="/static/${file}" defer></script>\n`).join('');

/** The state badge of a camera, kept current by app.js. */
function renderState(camera: WebCamera, id?: string): string {
  const state = camera.hub.state;
  return `<span${id ? ` id="${id}"` : ''} class="state state-${state}" data-camera="${escapeHtml(camera.id)}" role="status">${state}</span>`;
}

/**
 * One camera's live view: the picture (an image for MJPEG, a video for H.264: live.js shows one),
 * the clock, and a bar with what the picture is (mode, frame rate, delay) and its buttons.
 * `tile`: a grid tile, whose picture links to the camera's own page.
 */
function renderViewer(camera: WebCamera, tile: boolean): string {
  const base = cameraBase(camera);
  const name = escapeHtml(camera.name);
  const size = `width="${camera.width}" height="${camera.height}"`;
  const ids = (id: string) => (tile ? '' : ` id="${id}"`);
  const picture = `<img class="live"${ids('live')} alt="Live view of ${name}" ${size}>
      <video class="live"${ids('live-video')} ${size} muted playsinline disableremoteplayback hidden></video>
      <noscript><img class="live" src="${base}/stream.mjpg" alt="Live view of ${name}" ${size}></noscript>
      <time class="clock"${ids('clock')} hidden></time>`;
  const stats = `<output class="stats"${ids('stats')}><span class="stat-mode">MJPEG</span> <span class="stat-fps"></span> <span class="stat-delay"></span></output>`;
  const snapshot = `<a class="button" href="${base}/snapshot.jpg" target="_blank" rel="noopener">Snapshot</a>`;
  const attributes = `data-camera="${escapeHtml(camera.id)}" data-fps="${camera.fps}" data-width="${camera.width}" data-height="${camera.height}" data-h264="${camera.h264 ? '1' : '0'}" data-timestamp="${camera.timestamp ? '1' : '0'}" data-mjpeg="${base}/stream.mjpg" data-mp4="${base}/stream.mp4"`;
  if (tile) {
    return `<figure class="viewer tile" ${attributes}>
    <a class="picture" href="${base}/" aria-label="${name}: open its page">
      ${picture}
    </a>
    <figcaption class="bar">
      <a class="name" href="${base}/">${name}</a> ${renderState(camera)}
      ${stats}
      <span class="buttons">${snapshot}</span>
    </figcaption>
  </figure>`;
  }
  return `<figure class="viewer" ${attributes}>
    <div class="picture">
      ${picture}
    </div>
    <figcaption class="bar">
      ${stats}
      <span class="buttons">${snapshot} <button type="button" class="button fullscreen" aria-pressed="false">Fullscreen</button></span>
    </figcaption>
  </figure>`;
}

/** The picture's mode: Auto (the page decides), MJPEG or H.264; live.js remembers the choice. */
function renderModeSwitch(cameras: WebCamera[]): string {
  if (!cameras.some((c) => c.h264)) return '';
  const choice = (value: string, label: string) => `<label><input type="radio" name="mode" value="${value}"${value === 'auto' ? ' checked' : ''}> ${label}</label>`;
  return `<fieldset class="modes" id="modes"><legend>Picture</legend>${choice('auto', 'Auto')}${choice('mjpeg', 'MJPEG')}${choice('h264', 'H.264')}</fieldset>`;
}

export function renderLivePage(camera: WebCamera, cameras: WebCamera[], siteName: string): string {
  const base = cameraBase(camera);
  const nav =
    cameras.length > 1
      ? `<nav aria-label="Cameras"><a href="/">All cameras</a> ${cameras
          .map((c) => `<a href="${cameraBase(c)}/"${c === camera ? ' aria-current="page"' : ''}>${escapeHtml(c.name)}</a>`)
          .join(' ')}</nav>`
      : '';
  return layout(
    `${camera.name} · ${siteName}`,
    dataAttributes(camera, 'live-page'),
    `<header>
  <h1>${escapeHtml(camera.name)}</h1>
  ${renderState(camera, 'state')}
  ${nav}
</header>
<main>
  ${renderViewer(camera, false)}
  <div class="options">
    ${renderModeSwitch([camera])}
    ${renderRateSelect(camera)}
    <a href="${base}/kiosk">Kiosk view</a>
    <span class="size">${camera.width}×${camera.height} at ${camera.fps} fps</span>
  </div>
  ${renderControlsPanel(camera)}
</main>`,
    `${LIVE_SCRIPTS}<script src="/static/controls.js" defer></script>\n`,
  );
}

/** Every camera in a grid, each tile linking to the camera's page: `/` when there are several. */
export function renderGridPage(cameras: WebCamera[], siteName: string): string {
  return layout(
    siteName,
    'class="grid-page"',
    `<header>
  <h1>${escapeHtml(siteName)}</h1>
  ${renderModeSwitch(cameras)}
  <button type="button" class="button fullscreen" aria-pressed="false">Fullscreen</button>
</header>
<main class="grid cols-${Math.min(4, Math.ceil(Math.sqrt(cameras.length)))}">
  ${cameras.map((camera) => renderViewer(camera, true)).join('\n  ')}
</main>`,
    LIVE_SCRIPTS,
  );
}

/** Stream rates offered below the camera's own (flask-cam's "delay" between frames, as fps). */
export function rateChoices(fps: number): number[] {
  return [15, 10, 5, 2, 1].filter((rate) => rate < fps);
}

/** The stream rate cap of the MJPEG view: a list live.js applies to the stream it reads. */
function renderRateSelect(camera: WebCamera): string {
  const rates = rateChoices(camera.fps)
    .map((rate) => `<option value="${rate}">${rate} fps</option>`)
    .join('');
  return `<label class="rate">Stream rate <select id="rate"><option value="">Full (${camera.fps} fps)</option>${rates}</select></label>`;
}

/** The controls panel, filled in by controls.js from the controls API; only for cameras with a device to tune. */
function renderControlsPanel(camera: WebCamera): string {
  if (!camera.controls) return '';
  return `<section id="controls" class="panel" aria-labelledby="controls-title">
    <h2 id="controls-title">Camera controls</h2>
    <p id="controls-state" class="controls-state" role="status">Loading the camera's controls…</p>
    <table id="controls-table" hidden>
      <thead><tr><th scope="col">Control</th><th scope="col">Set</th><th scope="col">Current</th><th scope="col"><span class="visually-hidden">Default</span></th></tr></thead>
      <tbody></tbody>
    </table>
  </section>`;
}

export function renderKioskPage(camera: WebCamera, siteName: string): string {
  return layout(
    `${camera.name} · ${siteName}`,
    dataAttributes(camera, 'kiosk-page'),
    `<img id="live" src="${cameraBase(camera)}/stream.mjpg" alt="Live view of ${escapeHtml(camera.name)}">
<time id="clock" class="clock" hidden></time>`,
  );
}

interface PageOptions {
  cameras: WebCamera[];
  siteName: string;
  /** Origins that may frame the kiosk page; every other page can only be framed by this server. */
  kioskFrameAncestors: string[];
}

/** The kiosk's CSP: helmet's, with frame-ancestors opened to the configured origins. */
export function kioskCsp(csp: string, ancestors: string[]): string {
  const rest = csp.split(';').map((d) => d.trim()).filter((d) => d && !d.startsWith('frame-ancestors'));
  return [...rest, `frame-ancestors 'self' ${ancestors.join(' ')}`].join(';');
}

export const pageRoutes: FastifyPluginAsyncJsonSchemaToTs<{ Options: PageOptions }> = async (app, { cameras, siteName, kioskFrameAncestors }) => {
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/static/', index: false, maxAge: 60_000 });

  const sendHtml = (reply: FastifyReply, text: string) => reply.type('text/html; charset=utf-8').header('Cache-Control', 'no-store').send(text);
  // One camera: / is its page. Several: / shows them all, each with its own page.
  app.get('/', async (_request, reply) => {
    return sendHtml(reply, cameras.length > 1 ? renderGridPage(cameras, siteName) : renderLivePage(findCamera(cameras), cameras, siteName));
  });
  for (const url of ['/cameras/:id', '/cameras/:id/']) {
    app.get(url, { schema: { params: cameraParams } }, async (request, reply) => {
      return sendHtml(reply, renderLivePage(findCamera(cameras, request.params.id), cameras, siteName));
    });
  }
  for (const url of ['/kiosk', '/cameras/:id/kiosk']) {
    app.get(url, { schema: { params: cameraParams } }, async (request, reply) => {
      if (kioskFrameAncestors.length > 0) {
        void reply.header('Content-Security-Policy', kioskCsp(String(reply.getHeader('Content-Security-Policy') ?? ''), kioskFrameAncestors));
        reply.removeHeader('X-Frame-Options');
      }
      return sendHtml(reply, renderKioskPage(findCamera(cameras, request.params.id), siteName));
    });
  }
};
