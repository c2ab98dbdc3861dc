// A camera whose source is another server's MJPEG stream over http(s) (an ESP32-CAM, another Pi
// running `webcam-server serve`, an IP camera), read in Node: credentials from the URL go in an
// Authorization header (never on a command line, where `ps` shows them to every local user), the
// multipart answer is cut into JPEGs, and frames arrive at the source's own rate, capped at the
// camera's fps by dropping. A frame already of the camera's size is passed through untouched;
// other sizes go to one ffmpeg on stdin that scales and re-encodes them (the URL never reaches
// its arguments). An answer that is not multipart is handed to `fallback` (ffmpeg reading the
// address itself), as other URL schemes are. Exactly one 'exit' explains how it ended.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, RequestOptions } from 'node:http';
import https from 'node:https';

import type { Log } from '../log';
import { whenAborted } from '../util/lifetime';
import type { CaptureExit, FrameSource } from './capture';
import { LineRing } from './capture';
import { redactSecrets } from './capture-args';
import { writeJpegPart } from './frame-pipe';
import { JpegSplitter } from './jpeg-splitter';
import type { JpegChunks } from './jpeg-chunks';
import { jpegSize, MultipartJpegReader } from './mjpeg-parts';
import { stopProcess, track } from './processes';
import { FrameRateCap } from './rate-cap';

export interface HttpMjpegSourceOptions {
  /** The http(s) address, credentials included (`http://user:password@host/stream`). */
  url: string;
  /** The camera's size: frames of this size are passed through as they are. */
  width: number;
  height: number;
  /** The camera's fps: more frames than this are dropped. */
  maxFps: number;
  ffmpegPath: string;
  /** ffmpeg's arguments to scale frames: mpjpeg parts on stdin, JPEGs on stdout. */
  scaleArgs: string[];
  /** Started instead when the answer is not a multipart stream (ffmpeg reading the URL itself). */
  fallback?: () => FrameSource;
  log?: Log;
  /** How long to wait for the answer's headers (default 10 s). */
  responseTimeoutMs?: number;
}

/** Pure: the Authorization header for the credentials in a URL, if it has any. */
export function basicAuthorization(url: URL): string | undefined {
  if (!url.username && !url.password) return undefined;
  const decode = (part: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  };
  return `Basic ${Buffer.from(`${decode(url.username)}:${decode(url.password)}`).toString('base64')}`;
}

/** Pure: a 401 whose challenge offers Digest and not Basic. */
export function isDigestOnly(headers: IncomingHttpHeaders): boolean {
  const challenge = headers['www-authenticate'] ?? '';
  return /\bdigest\b/i.test(challenge) && !/\bbasic\b/i.test(challenge);
}

/** How far into a frame its size is looked for before joining it (SOF follows the tables). */
const SIZE_LOOKUP_BYTES = 4096;

/** Sources already warned about handing Digest to ffmpeg (once per address, not at every restart). */
const digestWarned = new Set<string>();

/** Pure: what a non-200 answer means for the user, in one sentence. */
export function explainHttpStatus(status: number, statusMessage: string, headers: IncomingHttpHeaders, sentCredentials: boolean): string {
  const said = `HTTP ${status}${statusMessage ? ` ${statusMessage}` : ''}`;
  if (status === 401) {
    if (isDigestOnly(headers)) {
      return `the camera asks for Digest authentication (${said}), which this reader does not speak: switch the camera to Basic authentication, or use its RTSP address`;
    }
    return sentCredentials
      ? `the user name or password was refused (${said}): check the credentials in "source"`
      : `the camera asks for a password (${said}): put it in "source" as http://user:password@host/...`;
  }
  if (status === 403) return `access is forbidden (${said}): check the user's rights on the camera`;
  if (status === 429) return `the server refuses for now (${said}), often after failed logins: check the credentials in "source"`;
  if (status === 404) return `there is no stream at this address (${said}): check the path (webcam-server: /stream.mjpg, ESP32-CAM: :81/stream)`;
  if (status >= 300 && status < 400) {
    const location = headers.location ? ` to ${redactSecrets(headers.location)}` : '';
    return `the address redirects (${said})${location}: put the final address in "source"`;
  }
  return `the server answered ${said}`;
}

/** Pure: what a failed connection means for the user. */
export function explainRequestError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'connection refused: is the camera (or its server) running, and is the port right?';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name could not be found (${error.code})`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return `the camera could not be reached (${error.code}): is it on the network?`;
    case 'ECONNRESET':
      return `the camera closed the connection (${error.code})`;
    default:
      return `the stream could not be read: ${error.message}`;
  }
}

/** Why a source's lifetime ended: stop() asked, it failed (the reason, for the log), or its fallback ended. */
type EndReason = { kind: 'stopped' } | { kind: 'failed'; why: string } | { kind: 'fallback-ended' };

export class HttpMjpegSource extends EventEmitter implements FrameSource {
  private request?: ClientRequest;
  private responseTimer?: NodeJS.Timeout;
  private encoder?: ChildProcess;
  private readonly encoderStderr = new LineRing(10);
  private fallbackSource?: FrameSource;
  /** The fallback's one 'exit' (or why it could not start). */
  private fallbackExit?: Promise<CaptureExit>;
  private readonly cap: FrameRateCap;
  /** Aborted once, with an EndReason: from then on nothing new starts and nothing more is emitted but the exit. */
  private readonly lifetime = new AbortController();
  /** The one teardown: the request, the scaling ffmpeg and the fallback stopped, then exactly one 'exit'. */
  private readonly torndown: Promise<void>;
  private mode = '';
  /** JPEGs read from the server (before the rate cap). */
  framesRead = 0;
  /** The address without credentials, for messages. */
  private readonly where: string;

  constructor(private readonly options: HttpMjpegSourceOptions) {
    super();
    this.cap = new FrameRateCap(options.maxFps);
    this.where = redactSecrets(options.url);
    this.torndown = whenAborted(this.lifetime.signal, (reason) => this.teardown(reason as EndReason));
  }

  /** Set once the source is shutting down (stopped or failed). */
  private get ending(): boolean {
    return this.lifetime.signal.aborted;
  }

  /** The scaling ffmpeg's process id while it runs (undefined while frames pass through). */
  get encoderPid(): number | undefined {
    return this.encoder?.pid;
  }

  start(): void {
    let url: URL;
    try {
      url = new URL(this.options.url);
    } catch {
      setImmediate(() => this.fail('this is not a valid URL'));
      return;
    }
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') {
      setImmediate(() => this.fail('this is not an http or https URL'));
      return;
    }
    const authorization = basicAuthorization(url);
    const options: RequestOptions = {
      method: 'GET',
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
      headers: {
        'User-Agent': 'webcam-server',
        Accept: 'multipart/x-mixed-replace, */*',
        ...(authorization ? { Authorization: authorization } : {}),
      },
      // One connection per capture, closed with it; no pooled socket outlives the source.
      agent: false,
      // As ffmpeg did for these URLs: cameras mostly have self-signed certificates.
      ...(secure ? { rejectUnauthorized: false } : {}),
    };
    const request = (secure ? https : http).request(options, (res) => this.onResponse(res, authorization !== undefined));
    this.request = request;
    request.on('error', (error: NodeJS.ErrnoException) => this.fail(explainRequestError(error)));
    const timeoutMs = this.options.responseTimeoutMs ?? 10_000;
    this.responseTimer = setTimeout(() => this.fail(`no answer within ${Math.round(timeoutMs / 1000)} s`), timeoutMs);
    this.responseTimer.unref();
    request.end();
  }

  /** Stops everything; resolves once the 'exit' has been emitted. */
  stop(): Promise<void> {
    this.end({ kind: 'stopped' });
    return this.torndown;
  }

  private onResponse(res: IncomingMessage, sentCredentials: boolean): void {
    clearTimeout(this.responseTimer);
    if (this.ending) {
      res.destroy();
      return;
    }
    const status = res.statusCode ?? 0;
    if (status === 401 && this.options.fallback && isDigestOnly(res.headers)) {
      // ffmpeg speaks Digest: it reads the address itself, at the price of the credentials in its arguments.
      res.resume();
      if (!digestWarned.has(this.where)) {
        digestWarned.add(this.where);
        this.options.log?.warn(
          `${this.where} asks for Digest authentication: ffmpeg reads it, so its password is visible to local users in \`ps\`. Switch the camera to Basic authentication to keep it out.`,
        );
      }
      this.request?.destroy();
      this.startFallback(this.options.fallback);
      return;
    }
    if (status !== 200) {
      res.resume();
      this.fail(explainHttpStatus(status, res.statusMessage ?? '', res.headers, sentCredentials));
      return;
    }
    const type = res.headers['content-type'] ?? '';
    if (/^multipart\//i.test(type)) {
      this.readParts(res);
      return;
    }
    if (/^text\//i.test(type) || !this.options.fallback) {
      res.resume();
      this.fail(
        `the answer is ${type ? `"${type.split(';')[0]}"` : 'of no declared type'}, not an MJPEG stream (multipart/x-mixed-replace): use the camera's stream address, not its page`,
      );
      return;
    }
    // Another format (MPEG-TS, FLV, HLS...): ffmpeg reads the address itself.
    this.options.log?.debug(`${this.where} answers "${type}", not multipart MJPEG: ffmpeg reads it.`);
    this.request?.destroy();
    this.startFallback(this.options.fallback);
  }

  private readParts(res: IncomingMessage): void {
    const reader = new MultipartJpegReader((jpeg) => this.onJpeg(jpeg));
    res.on('data', (chunk: Buffer) => {
      if (this.ending) return;
      try {
        reader.push(chunk);
      } catch (error) {
        this.fail((error as Error).message);
      }
    });
    const ended = (why: string): void => {
      if (this.framesRead > 0) this.fail(why);
      else if (reader.skipped > 0) this.fail(`the stream's parts are "${reader.lastSkippedType}", not JPEG`);
      else this.fail(`${why} before the first frame`);
    };
    res.on('end', () => ended('the server ended the stream'));
    res.on('error', (error) => ended(`the stream broke off (${error.message})`));
    res.on('close', () => ended('the connection closed'));
  }

  private onJpeg(jpeg: JpegChunks): void {
    if (this.ending) return;
    this.framesRead++;
    if (!this.cap.admit(Date.now())) return;
    // The size is in the first few hundred bytes (its SOF marker): read there, unjoined.
    const size = jpegSize(jpeg.head(SIZE_LOOKUP_BYTES)) ?? jpegSize(jpeg.bytes());
    const { width, height } = this.options;
    if (size && size.width === width && size.height === height) {
      this.noteMode(`Frames are ${width}x${height}: passed through as they come.`);
      this.emit('frame', jpeg);
      return;
    }
    this.noteMode(`Frames are ${size ? `${size.width}x${size.height}` : 'of unknown size'}: ffmpeg scales them to ${width}x${height}.`);
    this.encode(jpeg);
  }

  private noteMode(message: string): void {
    if (message === this.mode) return;
    this.mode = message;
    this.options.log?.debug(message);
  }

  /** Hands a frame to the scaling ffmpeg; a frame that finds it busy is dropped (latest wins). */
  private encode(jpeg: JpegChunks): void {
    const encoder = this.encoder ?? this.startEncoder();
    const stdin = encoder.stdin;
    if (!stdin || stdin.destroyed || !stdin.writable || stdin.writableNeedDrain) return;
    writeJpegPart(stdin, jpeg.pieces(), jpeg.length);
  }

  private startEncoder(): ChildProcess {
    const child = spawn(this.options.ffmpegPath, this.options.scaleArgs, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.encoder = child;
    track(child);
    const splitter = new JpegSplitter((frame) => {
      if (!this.ending) this.emit('frame', frame);
    });
    child.stdout.on('data', (chunk: Buffer) => splitter.push(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => this.encoderStderr.push(text));
    child.stdin.on('error', () => {
      // EPIPE when ffmpeg exits first; its exit is reported below.
    });
    child.once('error', (error) => this.fail(`ffmpeg (${this.options.ffmpegPath}) could not be started to scale the frames: ${error.message}`));
    child.once('close', (code, signal) => {
      const said = this.encoderStderr.toString().split('\n').slice(-2).join(' | ');
      this.fail(`ffmpeg scaling the frames exited (${signal ?? `code ${code}`})${said ? `: ${said}` : ''}`);
    });
    return child;
  }

  private startFallback(create: () => FrameSource): void {
    const source = create();
    this.fallbackSource = source;
    source.on('frame', (frame: Buffer) => this.emit('frame', frame));
    this.fallbackExit = new Promise<CaptureExit>((resolve) => {
      source.once('exit', resolve);
      try {
        source.start();
      } catch (error) {
        resolve({ code: null, signal: null, stderr: '', requested: false, spawnError: error as Error });
      }
    });
    void this.fallbackExit.then(() => this.end({ kind: 'fallback-ended' }));
  }

  /**
   * Fails with `reason` (the first reason given wins; it goes into the exit). Once the fallback
   * runs, it owns the source: the abandoned request has nothing more to say.
   */
  private fail(reason: string): void {
    if (this.fallbackSource) return;
    this.end({ kind: 'failed', why: reason });
  }

  private end(reason: EndReason): void {
    this.lifetime.abort(reason);
  }

  /** Shuts everything down once, then emits the one 'exit': the fallback's when it ran, else the reason. */
  private async teardown(reason: EndReason): Promise<void> {
    clearTimeout(this.responseTimer);
    this.request?.destroy();
    const encoder = this.encoder;
    if (encoder && encoder.pid !== undefined) {
      encoder.stdin?.end();
      await stopProcess(encoder, 1_000);
    }
    const requested = reason.kind === 'stopped';
    const fallback = this.fallbackSource;
    if (fallback && this.fallbackExit) {
      if (reason.kind !== 'fallback-ended') await fallback.stop();
      this.emit('exit', { ...(await this.fallbackExit), requested } satisfies CaptureExit);
      return;
    }
    const stderr = reason.kind === 'failed' && reason.why ? redactSecrets(`${this.where}: ${reason.why}`) : '';
    this.emit('exit', { code: null, signal: null, stderr, requested } satisfies CaptureExit);
  }
}
