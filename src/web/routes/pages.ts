// HTML pages: the live page (image, name, online state, optional clock) and the kiosk page (the
// image alone on black). Markup is rendered here with every value escaped; styles and scripts
// are static files under /static/, served by @fastify/static.
import { join } from 'node:path';

import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';

import type { WebCamera } from '../cameras';
import { cameraParams, findCamera } from '../cameras';

/** public/ at the package root, from both src/web/routes (tsx) and dist/web/routes (built). */
export const PUBLIC_DIR = join(__dirname, '..', '..', '..', 'public');

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const cameraBase = (camera: WebCamera): string => `/cameras/${encodeURIComponent(camera.id)}`;

function layout(title: string, bodyAttributes: string, body: string, extraHead = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
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

export function renderLivePage(camera: WebCamera, cameras: WebCamera[], siteName: string): string {
  const base = cameraBase(camera);
  const nav =
    cameras.length > 1
      ? `<nav aria-label="Cameras">${cameras
          .map((c) => `<a href="${cameraBase(c)}/"${c === camera ? ' aria-current="page"' : ''}>${escapeHtml(c.name)}</a>`)
          .join(' ')}</nav>`
      : '';
  return layout(
    `${camera.name} · ${siteName}`,
    dataAttributes(camera, 'live-page'),
    `<header>
  <h1>${escapeHtml(camera.name)}</h1>
  <span id="state" class="state state-${camera.hub.state}" role="status">${camera.hub.state}</span>
  ${nav}
</header>
<main>
  <figure class="viewer">
    <img id="live" src="${base}/stream.mjpg" alt="Live view of ${escapeHtml(camera.name)}" width="${camera.width}" height="${camera.height}">
    <time id="clock" class="clock" hidden></time>
  </figure>
  <p class="actions">
    <a href="${base}/snapshot.jpg" target="_blank" rel="noopener">Snapshot</a>
    <a href="${base}/kiosk">Kiosk view</a>
    <span class="size">${camera.width}×${camera.height} at ${camera.fps} fps</span>
    ${renderRateSelect(camera)}
  </p>
  ${renderControlsPanel(camera)}
</main>`,
    '<script src="/static/controls.js" defer></script>\n',
  );
}

/** Stream rates offered below the camera's own (flask-cam's "delay" between frames, as fps). */
export function rateChoices(fps: number): number[] {
  return [15, 10, 5, 2, 1].filter((rate) => rate < fps);
}

/** The stream rate cap: a list the page's script applies to the live image's URL. */
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

export const pageRoutes: FastifyPluginAsync<PageOptions> = async (app, { cameras, siteName, kioskFrameAncestors }) => {
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/static/', index: false, maxAge: 60_000 });

  const sendHtml = (reply: FastifyReply, text: string) => reply.type('text/html; charset=utf-8').header('Cache-Control', 'no-store').send(text);
  for (const url of ['/', '/cameras/:id', '/cameras/:id/']) {
    app.get<{ Params: { id?: string } }>(url, { schema: { params: cameraParams } }, async (request, reply) => {
      return sendHtml(reply, renderLivePage(findCamera(cameras, request.params.id), cameras, siteName));
    });
  }
  for (const url of ['/kiosk', '/cameras/:id/kiosk']) {
    app.get<{ Params: { id?: string } }>(url, { schema: { params: cameraParams } }, async (request, reply) => {
      if (kioskFrameAncestors.length > 0) {
        void reply.header('Content-Security-Policy', kioskCsp(String(reply.getHeader('Content-Security-Policy') ?? ''), kioskFrameAncestors));
        reply.removeHeader('X-Frame-Options');
      }
      return sendHtml(reply, renderKioskPage(findCamera(cameras, request.params.id), siteName));
    });
  }
};
