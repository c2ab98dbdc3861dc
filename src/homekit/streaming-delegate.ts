// HomeKit's camera streaming delegate for one camera: snapshots from the Snapshotter, and live
// streams as StreamSessions fed by the camera's FrameHub. HAP-NodeJS (through Homebridge) speaks
// the protocol; this class only answers its four questions: snapshot, prepare, start/reconfigure,
// stop.
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';

import type {
  CameraController,
  CameraStreamingDelegate,
  HAP,
  PrepareStreamCallback,
  PrepareStreamRequest,
  SnapshotRequest,
  SnapshotRequestCallback,
  StartStreamRequest,
  StreamingRequest,
  StreamRequestCallback,
} from 'homebridge';

import type { CameraConfig } from '../config';
import type { Log } from '../log';
import type { FrameHub } from '../media/frame-hub';
import type { Snapshotter } from '../media/snapshot';
import { StreamSession } from './stream-session';
import type { H264LevelName, H264ProfileName } from './stream-policy';
import { buildEncoderArgs } from './stream-policy';

interface PendingSession {
  address: string;
  videoPort: number;
  srtpKeyAndSalt: Buffer;
  ssrc: number;
  rtcpSocket: Socket;
  /** Where HomeKit wants sound, when this camera streams sound. */
  audio?: { port: number; srtpKeyAndSalt: Buffer; ssrc: number; rtcpSocket: Socket };
  expires: NodeJS.Timeout;
}

export interface StreamingDelegateOptions {
  hap: HAP;
  camera: CameraConfig;
  hub: FrameHub;
  snapshotter: Snapshotter;
  ffmpegPath: string;
  /** Stream sound (OPUS from camera.audio.source); the caller checked that ffmpeg has libopus. */
  audio: boolean;
  log: Log;
  /** End a stream after this long without RTCP from the Home app (default 30 s). */
  rtcpTimeoutMs?: number;
}

/** A snapshot slower than this gets a log line (HomeKit gives up after 5 s). */
const SLOW_SNAPSHOT_MS = 1_500;

export class WebcamStreamingDelegate implements CameraStreamingDelegate {
  controller?: CameraController;
  private readonly pending = new Map<string, PendingSession>();
  private readonly sessions = new Map<string, StreamSession>();

  constructor(private readonly options: StreamingDelegateOptions) {}

  /** Live sessions (tests and the shutdown path look at it). */
  get sessionCount(): number {
    return this.sessions.size;
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
      (error: Error) => {
        this.options.log.warn(`Snapshot failed: ${error.message}`);
        callback(error);
      },
    );
  }

  prepareStream(request: PrepareStreamRequest, callback: PrepareStreamCallback): void {
    const { hap, log } = this.options;
    const type = request.addressVersion === 'ipv6' ? 'udp6' : 'udp4';
    Promise.all([bindUdp(type), this.options.audio ? bindUdp(type) : undefined]).then(
      ([rtcpSocket, audioSocket]) => {
        // From here on a socket error must neither answer HomeKit twice nor, unhandled, end Homebridge.
        for (const socket of [rtcpSocket, audioSocket]) socket?.on('error', (error) => log.debug(`Stream UDP socket: ${error.message}`));
        const ssrc = hap.CameraController.generateSynchronisationSource();
        const audioSsrc = hap.CameraController.generateSynchronisationSource();
        // Forget a prepared session HomeKit never starts.
        const expires = setTimeout(() => this.dropPending(request.sessionID), 30_000);
        expires.unref();
        this.pending.set(request.sessionID, {
          address: request.targetAddress,
          videoPort: request.video.port,
          srtpKeyAndSalt: Buffer.concat([request.video.srtp_key, request.video.srtp_salt]),
          ssrc,
          rtcpSocket,
          audio: audioSocket && {
            port: request.audio.port,
            srtpKeyAndSalt: Buffer.concat([request.audio.srtp_key, request.audio.srtp_salt]),
            ssrc: audioSsrc,
            rtcpSocket: audioSocket,
          },
          expires,
        });
        callback(undefined, {
          video: { port: rtcpSocket.address().port, ssrc, srtp_key: request.video.srtp_key, srtp_salt: request.video.srtp_salt },
          audio: audioSocket && { port: audioSocket.address().port, ssrc: audioSsrc, srtp_key: request.audio.srtp_key, srtp_salt: request.audio.srtp_salt },
        });
      },
      (error: Error) => {
        log.error(`Could not open a UDP port for the stream: ${error.message}`);
        callback(error);
      },
    );
  }

  handleStreamRequest(request: StreamingRequest, callback: StreamRequestCallback): void {
    const { hap } = this.options;
    switch (request.type) {
      case hap.StreamRequestTypes.START:
        void this.startStream(request, callback);
        return;
      case hap.StreamRequestTypes.RECONFIGURE:
        // The encoder keeps its settings; HomeKit adapts. Restarting would cost a keyframe gap.
        this.options.log.debug(`Reconfigure to ${request.video.width}x${request.video.height}@${request.video.fps} ignored.`);
        callback();
        return;
      case hap.StreamRequestTypes.STOP:
        void this.stopStream(request.sessionID).finally(() => callback());
        return;
    }
  }

  /** Ends every stream (Homebridge shutting down). */
  async stopAll(): Promise<void> {
    for (const id of [...this.pending.keys()]) this.dropPending(id);
    await Promise.all([...this.sessions.keys()].map((id) => this.stopStream(id)));
  }

  private async startStream(request: StartStreamRequest, callback: StreamRequestCallback): Promise<void> {
    const { hap, camera, log } = this.options;
    const prepared = this.pending.get(request.sessionID);
    if (!prepared) {
      callback(new Error('unknown stream session'));
      return;
    }
    clearTimeout(prepared.expires);
    this.pending.delete(request.sessionID);

    const video = request.video;
    const profile: H264ProfileName = video.profile === hap.H264Profile.HIGH ? 'high' : video.profile === hap.H264Profile.MAIN ? 'main' : 'baseline';
    const level: H264LevelName = video.level === hap.H264Level.LEVEL4_0 ? '4.0' : video.level === hap.H264Level.LEVEL3_2 ? '3.2' : '3.1';
    const fps = Math.min(video.fps, camera.fps);
    const audio = prepared.audio && request.audio.codec === hap.AudioStreamingCodecType.OPUS ? prepared.audio : undefined;
    if (prepared.audio && !audio) log.warn(`The Home app asked for ${request.audio.codec} sound; this camera streams OPUS only, so the stream is silent.`);
    const args = buildEncoderArgs(
      {
        width: video.width,
        height: video.height,
        fps,
        bitrate: video.max_bit_rate,
        profile,
        level,
        payloadType: video.pt,
        ssrc: prepared.ssrc,
        mtu: video.mtu,
        srtpKeyAndSalt: prepared.srtpKeyAndSalt,
        targetAddress: prepared.address,
        targetPort: prepared.videoPort,
      },
      { encoder: camera.homekit.encoder },
      audio && {
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
    );
    log.info(`Starting a HomeKit stream: ${video.width}x${video.height} at ${fps} fps, ${video.max_bit_rate} kbit/s, H.264 ${profile} ${level} (${camera.homekit.encoder})${audio ? `, OPUS ${request.audio.sample_rate} kHz sound` : ''}.`);
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
    this.sessions.set(request.sessionID, session);
    try {
      await session.start();
      callback();
    } catch (error) {
      this.sessions.delete(request.sessionID);
      callback(error as Error);
    }
  }

  private async stopStream(sessionID: string): Promise<void> {
    this.dropPending(sessionID);
    const session = this.sessions.get(sessionID);
    if (!session) return;
    this.sessions.delete(sessionID);
    await session.stop();
    this.options.log.info('HomeKit stream stopped.');
  }

  private dropPending(sessionID: string): void {
    const prepared = this.pending.get(sessionID);
    if (!prepared) return;
    clearTimeout(prepared.expires);
    this.pending.delete(sessionID);
    for (const socket of [prepared.rtcpSocket, prepared.audio?.rtcpSocket]) {
      try {
        socket?.close();
      } catch {
        // already closed
      }
    }
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
