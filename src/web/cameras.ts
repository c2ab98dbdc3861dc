// What the web side knows of a camera: its public description and its FrameHub (never ffmpeg).
import type { ControlsApi } from '../controls/camera-controls';
import type { FrameHub } from '../media/frame-hub';
import type { H264Stage } from '../media/h264-stage';

export interface WebCamera {
  id: string;
  name: string;
  width: number;
  height: number;
  fps: number;
  /** Draw a clock over the live image on the pages. */
  timestamp: boolean;
  hub: FrameHub;
  /** The shared H.264 stage, for the page's H.264 view (absent: MJPEG only). */
  h264?: H264Stage;
  /** The webcam's controls (brightness, focus ...); absent where nothing can tune them. */
  controls?: ControlsApi;
}

export class CameraNotFoundError extends Error {
  readonly statusCode = 404;
  constructor(id: string, known: string[]) {
    super(`No camera "${id.slice(0, 64)}". Cameras: ${known.join(', ') || 'none configured'}.`);
    this.name = 'CameraNotFoundError';
  }
}

/** JSON schema of the `:id` route parameter (absent on the root routes, which mean the first camera). */
export const cameraParams = {
  type: 'object',
  properties: { id: { type: 'string', maxLength: 128 } },
} as const;

/** The same for routes whose path always has `:id`. */
export const cameraIdParams = { ...cameraParams, required: ['id'] } as const;

/** The camera for an `:id` route parameter, or the first camera for the root routes. */
export function findCamera(cameras: WebCamera[], id?: string): WebCamera {
  const camera = id === undefined ? cameras[0] : cameras.find((c) => c.id === id);
  if (!camera) throw new CameraNotFoundError(id ?? '', cameras.map((c) => c.id));
  return camera;
}

/** The JSON description of a camera in /api/cameras. */
export function describeCamera(camera: WebCamera) {
  return {
    id: camera.id,
    name: camera.name,
    width: camera.width,
    height: camera.height,
    fps: camera.fps,
    online: camera.hub.online,
    state: camera.hub.state,
    // The frames the camera has delivered so far and when the latest came (ms since the epoch; 0:
    // none yet): two readings give the camera's real rate, which the page compares with the rate it
    // receives to tell a slow link.
    frames: camera.hub.latest?.seq ?? 0,
    frameAt: camera.hub.latest?.time ?? 0,
    // Whether the page can show the H.264 view (/stream.mp4).
    h264: camera.h264 !== undefined,
  };
}
