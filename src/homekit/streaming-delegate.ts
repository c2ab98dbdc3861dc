// HomeKit's camera streaming delegate for one camera: snapshots from the Snapshotter, and live
// streams as StreamSessions fed by the camera's FrameHub. HAP-NodeJS (through Homebridge) speaks
// the protocol; this class only answers its four questions: snapshot, prepare, start/reconfigure,
// stop. A silent camera has an encoder started before START (warm-encoder.ts): with
// `homekit.warmEncoder` one is kept ready ahead of any session, else one is started at
// SetupEndpoints (a standby: it loads while HomeKit sends START, and nothing runs while nobody
// watches). SetupEndpoints answers with its SRTP key and SSRC, and a START that asks for exactly
// its command adopts it; other STARTs, and cameras with sound, spawn their encoder at START.
//
// What HomeKit asks is kept inside what this camera advertised (clampVideo: sizes, rates and
// bitrates never beyond the offer or the capture). HAP-NodeJS's session state is kept in step:
// it forgets a session whose START or RECONFIGURE is answered with an error, without a STOP, so
// such an answer ends our side of it too; a START for a session already streaming (HAP passes it
// on) is answered as a reconfigure of that stream, so HAP keeps the session and its END still
// arrives here. A stream whose viewer stops sending RTCP ends after a few of the intervals it
// asked for (rtcpTimeoutMs), and HAP is told (forceStopStreamingSession).
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';

import type {
  CameraController,
  CameraStreamingDelegate,
  HAP,
  PrepareStreamCallback,
  PrepareStreamRequest,
  PrepareStreamResponse,
  ReconfigureStreamRequest,
  SnapshotRequest,
  SnapshotRequestCallback,
  StartStreamRequest,
  StreamingRequest,
  StreamRequestCallback,
  VideoInfo,
} from 'homebridge';

import type { CameraConfig } from '../config';
import type { Log } from '../log';
import type { FrameHub } from '../media/frame-hub';
import type { Snapshotter } from '../media/snapshot';
import { StreamSession } from './stream-session';
import type { AdoptedEncoder } from './stream-session';
import { closeQuietly } from '../util/close-quietly';
import type { AudioCodecName, AudioRequest, RequestedVideo, Resolution, VideoChoice } from './stream-policy';
import {
  buildEncoderArgs,
  clampVideo,
  describeClamp,
  predictVideoChoice,
  RTCP_FIRST_REPORT_MS,
  rtcpTimeoutMs,
  sameAudio,
  sameVideoChoice,
  splitKeyAndSalt,
  supportedResolutions,
  videoChoiceOf,
  wantsWarmEncoder,
  WARM_REFILL_DELAY_MS,
} from './stream-policy';
import type { EncoderTarget } from './warm-encoder';
import { WarmEncoder, WarmEncoderKeeper } from './warm-encoder';

interface PendingSession {
  address: string;
  videoPort: number;
  /** The video's SRTP key and salt and SSRC, as SetupEndpoints answered them. */
  srtpKeyAndSalt: Buffer;
  ssrc: number;
  /** Our UDP socket for the video: the port announced, where RTCP arrives (and relayed RTP leaves). */
  rtcpSocket: Socket;
  /** Where HomeKit wants sound, when this camera streams sound. */
  audio?: { port: number; srtpKeyAndSalt: Buffer; ssrc: number; rtcpSocket: Socket };
  expires: NodeJS.Timeout;
  /** The warm encoder whose key and SSRC were answered, until START claims it. */
  warm?: WarmEncoder;
  /** Lets go of the capture this SetupEndpoints started, once the stream has it (or never comes). */
  releaseCapture: () => void;
}

/** What HomeKit prepared and asked for (the video kept inside the offer). */
interface StreamParameters {
  prepared: PendingSession;
  video: VideoInfo;
  /** `video` as the encoder takes it. */
  choice: VideoChoice;
  audio?: AudioRequest;
}

/** A running stream and the session that serves it. */
interface ActiveSession extends StreamParameters {
  session: StreamSession;
}

export interface StreamingDelegateOptions {
  hap: HAP;
  camera: CameraConfig;
  hub: FrameHub;
  snapshotter: Snapshotter;
  ffmpegPath: string;
  /** The sound codecs offered (the caller checked ffmpeg has their encoders); none: no sound. */
  audioCodecs: AudioCodecName[];
  log: Log;
  /**
   * End a stream after this long without RTCP from the Home app, from the start on (tests).
   * Default: a few of the intervals the Home app asked for (rtcpTimeoutMs in stream-policy.ts).
   */
  rtcpTimeoutMs?: number;
  /** The first wait before replacing a warm encoder that exited by itself (default 1 s). */
  warmRetryMs?: number;
}

/** A snapshot slower than this gets a log line (HomeKit gives up after 5 s). */
const SLOW_SNAPSHOT_MS = 1_500;

export class WebcamStreamingDelegate implements CameraStreamingDelegate {
  controller?: CameraController;
  /** The configurations this camera advertises (give the CameraController these). */
  readonly resolutions: Resolution[];
  private readonly pending = new Map<string, PendingSession>();
  private readonly sessions = new Map<string, ActiveSession>();
  /** Keeps a warm encoder ready (silent cameras with `homekit.warmEncoder`), from start() on. */
  private warm?: WarmEncoderKeeper;
  /** The last START's video: what a standby encoder is started for. */
  private lastChoice?: VideoChoice;
  /** Aborted by stopAll() (Homebridge shutting down): no encoder is started after it. */
  private readonly lifetime = new AbortController();

  constructor(private readonly options: StreamingDelegateOptions) {
    this.resolutions = supportedResolutions(options.camera);
  }

  /** Starts the warm encoder, when this camera keeps one (call once the accessory is set up). */
  start(): void {
    const { camera, hap, log } = this.options;
    if (this.warm || this.lifetime.signal.aborted || !wantsWarmEncoder(camera.homekit, this.options.audioCodecs)) return;
    this.warm = new WarmEncoderKeeper(
      {
        ffmpegPath: this.options.ffmpegPath,
        command: (choice, target) => this.commandFor(choice, target),
        newSsrc: () => hap.CameraController.generateSynchronisationSource(),
        log,
        retryBaseMs: this.options.warmRetryMs,
      },
      predictVideoChoice(camera, 'ipv4'),
    );
  }

  handleSnapshotRequest(request: SnapshotRequest, callback: SnapshotRequestCallback): void {
    const started = Date.now();
    this.options.snapshotter.get(request.width, request.height).then(
      (image) => {
        const took = Date.now() - started;
        if (took > SLOW_SNAPSHOT_MS) this.options.log.warn(`Snapshot ${request.width}x${request.height} took ${took} ms (HomeKit waits 5 s at most).`);
        else this.options.log.debug(`Snapshot ${request.width}x${request.height} in ${took} ms.`);
        callback(undefined, image);
      },
      (error: unknown) => {
        this.options.log.warn(`Snapshot failed: ${(error as Error).message}`);
        callback(error as Error);
      },
    );
  }

  prepareStream(request: PrepareStreamRequest, callback: PrepareStreamCallback): void {
    void this.prepare(request).then(
      (response) => callback(undefined, response),
      (error: unknown) => {
        this.options.log.error(`Could not prepare the stream: ${(error as Error).message}`);
        callback(error as Error);
      },
    );
  }

  private async prepare(request: PrepareStreamRequest): Promise<PrepareStreamResponse> {
    const { hap, log } = this.options;
    const type = request.addressVersion === 'ipv6' ? 'udp6' : 'udp4';
    // A silent camera without a warm encoder starts one now, first thing: it loads while HomeKit
    // reads this answer and sends START (a repeated SetupEndpoints keeps the first one's).
    const standby = !this.warm && !this.pending.get(request.sessionID)?.warm && this.options.audioCodecs.length === 0 ? this.startStandby(request.addressVersion) : undefined;
    const sockets = await Promise.allSettled([bindUdp(type), this.options.audioCodecs.length > 0 ? bindUdp(type) : Promise.resolve(undefined)]);
    const [video, sound] = sockets.map((result) => (result.status === 'fulfilled' ? result.value : undefined));
    const failed = sockets.find((result) => result.status === 'rejected');
    if (!video || failed) {
      closeQuietly(video, sound);
      void standby?.then((encoder) => encoder?.stop());
      throw new Error(`no UDP port for the stream (${String(failed?.reason ?? 'unknown')})`);
    }
    // From here on a socket error must not, unhandled, end Homebridge.
    for (const socket of [video, sound]) socket?.on('error', (error) => log.debug(`Stream UDP socket: ${error.message}`));
    // A silent stream takes the warm encoder, and HomeKit gets its key and SSRC; else we encrypt
    // with the key HomeKit offered, as before. A second SetupEndpoints for a session replaces the
    // first, and keeps the warm encoder the first was answered with (the same controller has it).
    const previous = this.pending.get(request.sessionID);
    const kept = sound ? undefined : (previous?.warm ?? this.warm?.take());
    const started = await standby;
    const warm = kept ?? started;
    if (started && started !== warm) started.stop();
    if (previous) previous.warm = undefined;
    this.dropPending(request.sessionID);
    const srtpKeyAndSalt = warm?.keyAndSalt ?? Buffer.concat([request.video.srtp_key, request.video.srtp_salt]);
    const ssrc = warm?.ssrc ?? hap.CameraController.generateSynchronisationSource();
    const audioSsrc = hap.CameraController.generateSynchronisationSource();
    // A stopped capture starts now rather than at START: the stream's first frame is sooner.
    const releaseCapture = this.options.hub.hold();
    // Forget a prepared session HomeKit never starts.
    const expires = setTimeout(() => this.dropPending(request.sessionID), 30_000);
    expires.unref();
    this.pending.set(request.sessionID, {
      address: request.targetAddress,
      videoPort: request.video.port,
      srtpKeyAndSalt,
      ssrc,
      rtcpSocket: video,
      audio: sound && {
        port: request.audio.port,
        srtpKeyAndSalt: Buffer.concat([request.audio.srtp_key, request.audio.srtp_salt]),
        ssrc: audioSsrc,
        rtcpSocket: sound,
      },
      expires,
      warm,
      releaseCapture,
    });
    const { key, salt } = splitKeyAndSalt(srtpKeyAndSalt);
    return {
      video: { port: video.address().port, ssrc, srtp_key: key, srtp_salt: salt },
      audio: sound && { port: sound.address().port, ssrc: audioSsrc, srtp_key: request.audio.srtp_key, srtp_salt: request.audio.srtp_salt },
    };
  }

  handleStreamRequest(request: StreamingRequest, callback: StreamRequestCallback): void {
    const { hap, log } = this.options;
    // Every path answers HomeKit exactly once, and nothing thrown here reaches Homebridge.
    let answered = false;
    const answer = (error?: Error) => {
      if (answered) return;
      answered = true;
      try {
        callback(error);
      } catch (thrown) {
        log.error(`HomeKit rejected our answer: ${(thrown as Error).message}`);
      }
    };
    const work = (async () => {
      switch (request.type) {
        case hap.StreamRequestTypes.START:
          await this.startStream(request);
          return;
        case hap.StreamRequestTypes.RECONFIGURE:
          await this.reconfigureStream(request);
          return;
        case hap.StreamRequestTypes.STOP:
          // HAP has already closed the session: answer first, then tear down.
          answer();
          await this.stopStream(request.sessionID);
          return;
      }
    })();
    work.then(
      () => answer(),
      (error: unknown) => {
        log.error(`Stream request ${request.type} failed: ${(error as Error).message}`);
        answer(error as Error);
        // HAP forgets a session whose request failed, and sends no STOP for it: end ours too, so
        // no encoder outlives the session HomeKit knows.
        this.stopStream(request.sessionID).catch((thrown: unknown) => log.error(`Could not stop the stream: ${(thrown as Error).message}`));
      },
    );
  }

  /**
   * An encoder for the START this camera most likely gets (its previous one, else the Home app's
   * usual), started at SetupEndpoints; undefined when it cannot be (the START spawns one then).
   */
  private async startStandby(addressVersion: 'ipv4' | 'ipv6'): Promise<WarmEncoder | undefined> {
    const { camera, hap, log } = this.options;
    const choice = predictVideoChoice(camera, addressVersion, this.lastChoice);
    try {
      const standby = await WarmEncoder.start(this.options.ffmpegPath, choice, hap.CameraController.generateSynchronisationSource(), (c, target) => this.commandFor(c, target), log, 'Standby encoder');
      if (!this.lifetime.signal.aborted) return standby;
      standby.stop();
    } catch (error) {
      log.debug(`Standby encoder: not started (${(error as Error).message}).`);
    }
    return undefined;
  }

  /** Ends every stream and the warm encoder (Homebridge shutting down). */
  async stopAll(): Promise<void> {
    this.lifetime.abort();
    this.warm?.stop();
    for (const id of [...this.pending.keys()]) this.dropPending(id);
    await Promise.all([...this.sessions.keys()].map((id) => this.stopStream(id)));
  }

  private async startStream(request: StartStreamRequest): Promise<void> {
    // HAP passes on a START for a session that is already streaming (the session is its own).
    const active = this.sessions.get(request.sessionID);
    if (active) {
      await this.restartActive(active, request);
      return;
    }
    const prepared = this.pending.get(request.sessionID);
    if (!prepared) throw new Error('unknown stream session');
    clearTimeout(prepared.expires);
    this.pending.delete(request.sessionID);
    try {
      await this.startPrepared(prepared, request);
    } finally {
      // The stream holds the capture now (or failed): SetupEndpoints' hold can go.
      prepared.releaseCapture();
    }
  }

  /** What a START asks for, the video kept inside the offer (and a log line when it was not). */
  private parametersOf(prepared: PendingSession, request: StartStreamRequest): StreamParameters {
    const { hap, camera, log } = this.options;
    const asked: AudioCodecName | undefined =
      request.audio.codec === hap.AudioStreamingCodecType.OPUS ? 'opus' : request.audio.codec === hap.AudioStreamingCodecType.AAC_ELD ? 'aac-eld' : undefined;
    const codec = asked && this.options.audioCodecs.includes(asked) ? asked : undefined;
    const audio = codec ? prepared.audio : undefined;
    if (prepared.audio && !audio) log.warn(`The Home app asked for ${request.audio.codec} sound, which this camera does not offer: the stream is silent.`);
    const video = this.withinOffer(request.video);
    return {
      prepared,
      video,
      choice: videoChoiceOf(video, camera.fps),
      audio: audio && codec && {
        codec,
        source: camera.audio.source,
        sampleRate: request.audio.sample_rate,
        bitrate: request.audio.max_bit_rate,
        channels: request.audio.channel,
        packetTime: request.audio.packet_time,
        payloadType: request.audio.pt,
        ssrc: audio.ssrc,
        srtpKeyAndSalt: audio.srtpKeyAndSalt,
        targetPort: audio.port,
      },
    };
  }

  /**
   * `video` with its size, rate, bitrate and payload type kept inside what this camera advertised
   * (and so inside the capture's own size and rate); says in the log what was asked and what is
   * used when that changed anything.
   */
  private withinOffer<T extends { width: number; height: number; fps: number; max_bit_rate: number; pt: number }>(video: T): T {
    const requested: RequestedVideo = { width: video.width, height: video.height, fps: video.fps, bitrate: video.max_bit_rate, payloadType: video.pt };
    const clamped = clampVideo(requested, this.resolutions);
    if (clamped.changes.length === 0) return video;
    const line = describeClamp(requested, clamped);
    if (clamped.outsideOffer) this.options.log.warn(line);
    else this.options.log.info(line);
    return { ...video, width: clamped.width, height: clamped.height, fps: clamped.fps, max_bit_rate: clamped.bitrate, pt: clamped.payloadType };
  }

  /** How long a stream may go without RTCP, from the interval the Home app asked for (seconds). */
  private rtcpTimeouts(intervalSeconds: number | undefined): { rtcpTimeoutMs: number; firstRtcpTimeoutMs: number } {
    const override = this.options.rtcpTimeoutMs;
    if (override !== undefined) return { rtcpTimeoutMs: override, firstRtcpTimeoutMs: override };
    return { rtcpTimeoutMs: rtcpTimeoutMs(intervalSeconds), firstRtcpTimeoutMs: RTCP_FIRST_REPORT_MS };
  }

  private async startPrepared(prepared: PendingSession, request: StartStreamRequest): Promise<void> {
    const { log } = this.options;
    const stream = this.parametersOf(prepared, request);
    const { choice } = stream;
    this.lastChoice = choice;
    this.describe(stream, 'Starting');
    const timeouts = this.rtcpTimeouts(request.video.rtcp_interval);
    log.debug(`The stream ends after ${timeouts.rtcpTimeoutMs} ms without RTCP (the Home app asked for a report every ${request.video.rtcp_interval} s).`);
    // Hit: the warm encoder was started with exactly this command (sent to its relay), and the
    // relay now forwards to HomeKit. Miss: it stops, and an encoder with the same key and SSRC
    // is spawned, sending to HomeKit directly.
    const warm = prepared.warm;
    prepared.warm = undefined;
    let adopted: AdoptedEncoder | undefined;
    let args: string[] | undefined;
    if (warm) {
      const warmArgs = this.commandFor(choice, warm.target);
      adopted = warm.claim(warmArgs, choice, { socket: prepared.rtcpSocket, address: prepared.address, port: prepared.videoPort });
      if (adopted) args = warmArgs;
    }
    args ??= this.commandFor(choice, directTarget(prepared), stream.audio);
    const session: StreamSession = new StreamSession({
      hub: this.options.hub,
      ffmpegPath: this.options.ffmpegPath,
      args,
      rtcpSocket: prepared.rtcpSocket,
      otherSockets: prepared.audio ? [prepared.audio.rtcpSocket] : [],
      ...timeouts,
      log,
      onEnded: () => {
        if (this.sessions.get(request.sessionID)?.session === session) this.sessions.delete(request.sessionID);
        // HAP still holds the session (no END came): free its stream service.
        this.controller?.forceStopStreamingSession(request.sessionID);
      },
    });
    const active: ActiveSession = { ...stream, session };
    // Registered before anything is awaited: a STOP, RECONFIGURE or repeated START arriving
    // meanwhile finds it. A failure below is answered with an error, which stops it.
    this.sessions.set(request.sessionID, active);
    try {
      await active.session.start(adopted);
    } finally {
      // The next warm encoder, for what this START asked (the camera's next START most likely
      // asks the same), once this stream's first frame is out: loading ffmpeg meanwhile would
      // slow that frame down.
      if (this.warm) setTimeout(() => this.warm?.refill(choice), WARM_REFILL_DELAY_MS).unref();
    }
  }

  private async reconfigureStream(request: ReconfigureStreamRequest): Promise<void> {
    const active = this.sessions.get(request.sessionID);
    if (!active) return;
    const { width, height, fps, max_bit_rate } = request.video;
    // HAP's RECONFIGURE carries no usable RTCP interval (it puts 0.5 s for the 0 the Home app
    // sends): the one START asked for stays.
    const video = this.withinOffer({ ...active.video, width, height, fps, max_bit_rate });
    await this.changeStream(active, { ...active, video, choice: videoChoiceOf(video, this.options.camera.fps) }, 'Reconfiguring');
  }

  /**
   * A START for a session that is already streaming: HAP passed it on and holds the session, so
   * it is answered as a reconfigure (its video, sound and RTCP interval), never by a second
   * encoder beside the first or by an error that would leave HAP without the session.
   */
  private async restartActive(active: ActiveSession, request: StartStreamRequest): Promise<void> {
    this.options.log.info('HomeKit sent START for a stream already running: it is reconfigured, not started twice.');
    if (this.options.rtcpTimeoutMs === undefined) active.session.setRtcpTimeout(rtcpTimeoutMs(request.video.rtcp_interval));
    await this.changeStream(active, this.parametersOf(active.prepared, request), 'Reconfiguring');
  }

  /** Moves a running stream to `next`: a new encoder when it makes a different one, else nothing. */
  private async changeStream(active: ActiveSession, next: StreamParameters, verb: string): Promise<void> {
    if (sameVideoChoice(active.choice, next.choice) && sameAudio(active.audio, next.audio)) return;
    active.video = next.video;
    active.choice = next.choice;
    active.audio = next.audio;
    this.describe(active, verb);
    // The same key and SSRC as answered, sent to HomeKit directly (a warm encoder's relay ends
    // with the encoder it replaces).
    await active.session.reconfigure(this.commandFor(next.choice, directTarget(active.prepared), next.audio));
  }

  /** A log line saying what a session's stream is now. */
  private describe(active: StreamParameters, verb: string): void {
    const { camera, log } = this.options;
    const { choice, audio } = active;
    log.info(
      `${verb} a HomeKit stream: ${choice.width}x${choice.height} at ${choice.fps} fps, ${choice.bitrate} kbit/s, H.264 ${choice.profile} ${choice.level} (${camera.homekit.encoder})` +
        `${audio ? `, ${audio.codec.toUpperCase()} ${audio.sampleRate} kHz sound` : ''}.`,
    );
  }

  /** The encoder command for `choice`, sent to `target` (with sound when `audio` is given). */
  private commandFor(choice: VideoChoice, target: EncoderTarget, audio?: AudioRequest): string[] {
    return buildEncoderArgs({ ...choice, ...target }, { encoder: this.options.camera.homekit.encoder }, audio);
  }

  private async stopStream(sessionID: string): Promise<void> {
    this.dropPending(sessionID);
    const active = this.sessions.get(sessionID);
    if (!active) return;
    this.sessions.delete(sessionID);
    await active.session.stop();
    this.options.log.info('HomeKit stream stopped.');
  }

  private dropPending(sessionID: string): void {
    const prepared = this.pending.get(sessionID);
    if (!prepared) return;
    clearTimeout(prepared.expires);
    this.pending.delete(sessionID);
    prepared.releaseCapture();
    closeQuietly(prepared.rtcpSocket, prepared.audio?.rtcpSocket);
    if (prepared.warm) {
      // Its key went to a controller that did not use it: never handed to another. A new one.
      prepared.warm.stop();
      this.warm?.refill();
    }
  }
}

/** Straight to HomeKit's video port, with the key and SSRC answered in SetupEndpoints. */
function directTarget(prepared: PendingSession): EncoderTarget {
  return { ssrc: prepared.ssrc, srtpKeyAndSalt: prepared.srtpKeyAndSalt, targetAddress: prepared.address, targetPort: prepared.videoPort };
}

/** A UDP socket on a free port. */
function bindUdp(type: 'udp4' | 'udp6'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(type);
    socket.once('error', reject);
    socket.bind(0, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}
