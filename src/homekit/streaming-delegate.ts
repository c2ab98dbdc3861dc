// HomeKit's camera streaming delegate for one camera: snapshots from the Snapshotter, and live
// streams as StreamSessions fed by the camera's FrameHub. HAP-NodeJS (through Homebridge) speaks
// the protocol; this class only answers its four questions: snapshot, prepare, start/reconfigure,
// stop. A silent camera's prepare also spawns a standby encoder for the START it expects (this
// camera's previous one, else the Home app's usual), which START adopts when it asks for exactly
// that.
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
import { StandbyEncoder } from './standby-encoder';
import { StreamSession } from './stream-session';
import { closeQuietly } from '../util/close-quietly';
import type { AudioCodecName, AudioRequest, VideoChoice } from './stream-policy';
import { buildEncoderArgs, predictVideoChoice, videoChoiceOf } from './stream-policy';

interface PendingSession {
  address: string;
  videoPort: number;
  srtpKeyAndSalt: Buffer;
  ssrc: number;
  rtcpSocket: Socket;
  /** Where HomeKit wants sound, when this camera streams sound. */
  audio?: { port: number; srtpKeyAndSalt: Buffer; ssrc: number; rtcpSocket: Socket };
  expires: NodeJS.Timeout;
  /** The encoder spawned for the START we expect (silent cameras only). */
  standby?: StandbyEncoder;
}

/** What HomeKit prepared and asked for. */
interface StreamParameters {
  prepared: PendingSession;
  video: VideoInfo;
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
  /** End a stream after this long without RTCP from the Home app (default 30 s). */
  rtcpTimeoutMs?: number;
  /** Stop a standby encoder no START has claimed after this long (default 20 s). */
  standbyTimeoutMs?: number;
}

/** A snapshot slower than this gets a log line (HomeKit gives up after 5 s). */
const SLOW_SNAPSHOT_MS = 1_500;

export class WebcamStreamingDelegate implements CameraStreamingDelegate {
  controller?: CameraController;
  private readonly pending = new Map<string, PendingSession>();
  private readonly sessions = new Map<string, ActiveSession>();
  /** The video of this camera's last START: what the next one most likely asks for. */
  private lastStart?: VideoChoice;

  constructor(private readonly options: StreamingDelegateOptions) {}

  handleSnapshotRequest(request: SnapshotRequest, callback: SnapshotRequestCallback): void {
    const started = Date.now();
    this.options.snapshotter.get(request.width, request.height).then(
      (image) => {
        const took = Date.now() - started;
        if (took > SLOW_SNAPSHOT_MS) this.options.log.warn(`Snapshot ${request.width}x${request.height} took ${took} ms (HomeKit waits 5 s at most).`);
        else this.options.log.debug(`Snapshot ${request.width}x${request.height} in ${took} ms.`);
        callback(undefined, image);
      },
      (error: Error) => {
        this.options.log.warn(`Snapshot failed: ${error.message}`);
        callback(error);
      },
    );
  }

  prepareStream(request: PrepareStreamRequest, callback: PrepareStreamCallback): void {
    void this.prepare(request).then(
      (response) => {
        callback(undefined, response);
        // After the answer is on its way: spawning takes a few ms of this thread.
        setImmediate(() => this.spawnStandby(request.sessionID, request.addressVersion));
      },
      (error: Error) => {
        this.options.log.error(`Could not prepare the stream: ${error.message}`);
        callback(error);
      },
    );
  }

  private async prepare(request: PrepareStreamRequest): Promise<PrepareStreamResponse> {
    const { hap, log } = this.options;
    const type = request.addressVersion === 'ipv6' ? 'udp6' : 'udp4';
    const sockets = await Promise.allSettled([bindUdp(type), this.options.audioCodecs.length > 0 ? bindUdp(type) : Promise.resolve(undefined)]);
    const [video, sound] = sockets.map((result) => (result.status === 'fulfilled' ? result.value : undefined));
    const failed = sockets.find((result) => result.status === 'rejected');
    if (!video || failed) {
      closeQuietly(video, sound);
      throw new Error(`no UDP port for the stream (${String(failed?.reason ?? 'unknown')})`);
    }
    // From here on a socket error must not, unhandled, end Homebridge.
    for (const socket of [video, sound]) socket?.on('error', (error) => log.debug(`Stream UDP socket: ${error.message}`));
    const ssrc = hap.CameraController.generateSynchronisationSource();
    const audioSsrc = hap.CameraController.generateSynchronisationSource();
    // Forget a prepared session HomeKit never starts.
    const expires = setTimeout(() => this.dropPending(request.sessionID), 30_000);
    expires.unref();
    this.dropPending(request.sessionID); // a second SetupEndpoints for a session replaces the first
    this.pending.set(request.sessionID, {
      address: request.targetAddress,
      videoPort: request.video.port,
      srtpKeyAndSalt: Buffer.concat([request.video.srtp_key, request.video.srtp_salt]),
      ssrc,
      rtcpSocket: video,
      audio: sound && {
        port: request.audio.port,
        srtpKeyAndSalt: Buffer.concat([request.audio.srtp_key, request.audio.srtp_salt]),
        ssrc: audioSsrc,
        rtcpSocket: sound,
      },
      expires,
    });
    return {
      video: { port: video.address().port, ssrc, srtp_key: request.video.srtp_key, srtp_salt: request.video.srtp_salt },
      audio: sound && { port: sound.address().port, ssrc: audioSsrc, srtp_key: request.audio.srtp_key, srtp_salt: request.audio.srtp_salt },
    };
  }

  /** Spawns the standby encoder of a prepared session, unless it streams sound or has gone. */
  private spawnStandby(sessionID: string, addressVersion: 'ipv4' | 'ipv6'): void {
    const prepared = this.pending.get(sessionID);
    if (!prepared || prepared.audio || prepared.standby) return;
    const choice = predictVideoChoice(this.options.camera, addressVersion, this.lastStart);
    const args = this.commandFor(choice, prepared);
    const standby = new StandbyEncoder(this.options.ffmpegPath, args, choice, this.options.standbyTimeoutMs ?? 20_000, this.options.log);
    prepared.standby = standby;
    prepared.rtcpSocket.once('close', () => standby.stop());
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
      (error: Error) => {
        log.error(`Stream request ${request.type} failed: ${error.message}`);
        answer(error);
      },
    );
  }

  /** Ends every stream (Homebridge shutting down). */
  async stopAll(): Promise<void> {
    for (const id of [...this.pending.keys()]) this.dropPending(id);
    await Promise.all([...this.sessions.keys()].map((id) => this.stopStream(id)));
  }

  private async startStream(request: StartStreamRequest): Promise<void> {
    const { hap, camera, log } = this.options;
    const prepared = this.pending.get(request.sessionID);
    if (!prepared) throw new Error('unknown stream session');
    clearTimeout(prepared.expires);
    this.pending.delete(request.sessionID);

    const codec: AudioCodecName | undefined =
      request.audio.codec === hap.AudioStreamingCodecType.OPUS ? 'opus' : request.audio.codec === hap.AudioStreamingCodecType.AAC_ELD ? 'aac-eld' : undefined;
    const audio = prepared.audio && codec && this.options.audioCodecs.includes(codec) ? prepared.audio : undefined;
    if (prepared.audio && !audio) log.warn(`The Home app asked for ${request.audio.codec} sound, which this camera does not offer: the stream is silent.`);
    const stream: StreamParameters = {
      prepared,
      video: request.video,
      audio: audio && {
        codec: codec!,
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
    const choice = videoChoiceOf(request.video, camera.fps);
    this.lastStart = choice;
    const args = this.encoderArgs(stream, 'Starting');
    // Hit: the standby was spawned with exactly this command. Miss: it stops, a new one starts.
    const standby = prepared.standby?.claim(args, choice);
    const session = new StreamSession({
      hub: this.options.hub,
      ffmpegPath: this.options.ffmpegPath,
      args,
      rtcpSocket: prepared.rtcpSocket,
      otherSockets: prepared.audio ? [prepared.audio.rtcpSocket] : [],
      rtcpTimeoutMs: this.options.rtcpTimeoutMs ?? 30_000,
      log,
      onEnded: () => {
        this.sessions.delete(request.sessionID);
        this.controller?.forceStopStreamingSession(request.sessionID);
      },
    });
    const active: ActiveSession = { ...stream, session };
    this.sessions.set(request.sessionID, active);
    try {
      await active.session.start(standby);
    } catch (error) {
      this.sessions.delete(request.sessionID);
      throw error;
    }
  }

  private async reconfigureStream(request: ReconfigureStreamRequest): Promise<void> {
    const active = this.sessions.get(request.sessionID);
    if (!active) return;
    const { width, height, fps, max_bit_rate } = request.video;
    const before = active.video;
    if (before.width === width && before.height === height && before.fps === fps && before.max_bit_rate === max_bit_rate) return;
    active.video = { ...before, width, height, fps, max_bit_rate };
    await active.session.reconfigure(this.encoderArgs(active, 'Reconfiguring'));
  }

  /** The encoder command for a session's current parameters, with a log line saying what it is. */
  private encoderArgs(active: StreamParameters, verb: string): string[] {
    const { camera, log } = this.options;
    const { video, prepared, audio } = active;
    const choice = videoChoiceOf(video, camera.fps);
    log.info(
      `${verb} a HomeKit stream: ${choice.width}x${choice.height} at ${choice.fps} fps, ${choice.bitrate} kbit/s, H.264 ${choice.profile} ${choice.level} (${camera.homekit.encoder})` +
        `${audio ? `, ${audio.codec.toUpperCase()} ${audio.sampleRate} kHz sound` : ''}.`,
    );
    return this.commandFor(choice, prepared, audio);
  }

  /** The encoder command for `choice`, sent where a prepared session says. */
  private commandFor(choice: VideoChoice, prepared: PendingSession, audio?: AudioRequest): string[] {
    const target = { ssrc: prepared.ssrc, srtpKeyAndSalt: prepared.srtpKeyAndSalt, targetAddress: prepared.address, targetPort: prepared.videoPort };
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
    prepared.standby?.stop();
    closeQuietly(prepared.rtcpSocket, prepared.audio?.rtcpSocket);
  }
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
