// The Homebridge UI's live preview: one frame of a camera, grabbed by a short-lived ffmpeg that
// reads the camera's source exactly as the capture does (same input arguments), scales it down
// and writes one JPEG. Failures come back with the capture's own explanation of what to change.
import { spawn } from 'node:child_process';

import type { CaptureSource } from '../media/capture-args';
import { buildCaptureArgs, explainCaptureError, redactSecrets, sourceKind } from '../media/capture-args';
import { track } from '../media/processes';

export class PreviewError extends Error {
  constructor(
    message: string,
    /** The device is open in another program: under Homebridge, usually this plugin's own capture. */
    readonly busy = false,
  ) {
    super(message);
    this.name = 'PreviewError';
  }
}

/** ffmpeg's arguments for one preview frame: the capture's input, then one scaled JPEG on stdout. */
export function previewArgs(camera: CaptureSource, maxWidth = 640): string[] {
  const capture = buildCaptureArgs(camera);
  // Everything before `-an` reads the source (format, size, rate, device or URL), as the capture does.
  const input = capture.slice(0, capture.indexOf('-an')).filter((arg) => arg !== '-re');
  return [
    ...input,
    // A webcam's first frames after opening are often dark or green while its exposure settles.
    ...(sourceKind(camera.source) === 'device' ? ['-ss', '0.5'] : []),
    '-an',
    '-frames:v', '1',
    '-vf', `scale='min(${maxWidth},iw)':-2`,
    '-c:v', 'mjpeg',
    '-pix_fmt', 'yuvj420p',
    '-q:v', '5',
    '-f', 'mjpeg',
    'pipe:1',
  ];
}

/** Grabs one frame as a JPEG; rejects with a PreviewError that says what to do. */
export function grabPreview(ffmpeg: string, camera: CaptureSource, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpeg, previewArgs(camera), { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    const chunks: Buffer[] = [];
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 16_384) stderr += chunk.toString();
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new PreviewError(`ffmpeg (${ffmpeg}) could not be started: ${error.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const jpeg = Buffer.concat(chunks);
      if (code === 0 && jpeg.length > 4 && jpeg[0] === 0xff && jpeg[1] === 0xd8) {
        resolve(jpeg);
        return;
      }
      const source = redactSecrets(camera.source);
      if (timedOut) {
        const what = sourceKind(camera.source) === 'url' ? 'the stream did not answer' : 'the camera gave no picture';
        reject(new PreviewError(`No picture from ${source} within ${timeoutMs / 1000} s: ${what}.`));
        return;
      }
      if (/Device or resource busy/i.test(stderr)) {
        reject(
          new PreviewError(
            `${source} is busy: only one program can open a webcam, and one has it now (when Homebridge runs this plugin, its capture does, for a viewer, a HomeKit stream or motion detection). The live page shows the picture meanwhile.`,
            true,
          ),
        );
        return;
      }
      const hint = explainCaptureError(stderr, camera.source);
      const said = redactSecrets(stderr.trim().split('\n').slice(-1)[0] ?? '');
      reject(new PreviewError(hint ? `No picture from ${source}: ${hint}.` : `No picture from ${source}: ffmpeg said "${said || `exit code ${code}`}".`));
    });
  });
}
