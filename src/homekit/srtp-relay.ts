// The loopback relay of a warm encoder. A warm encoder is started before anyone knows where its
// stream will go, so its ffmpeg sends SRTP (and its RTCP) to this UDP socket on 127.0.0.1. Until
// a session adopts the encoder nothing arrives here (ffmpeg is blocked on its input) and anything
// that does is dropped. Once adopted, every datagram is forwarded to the Home app's video port,
// sent from the session's own UDP socket: the port SetupEndpoints announced, so the Home app sees
// one endpoint for RTP and RTCP, and its receiver reports keep arriving at that socket. The
// socket is bound to 127.0.0.1 only, so nothing off this machine can reach it; what a local
// process could send through it is still SRTP the Home app authenticates and drops when forged.
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';

import type { Log } from '../log';
import { closeQuietly } from '../util/close-quietly';
import { whenAborted } from '../util/lifetime';

export class SrtpRelay {
  private destination?: { socket: Socket; address: string; port: number };
  /** Aborted by close(): the relay's one teardown point. */
  private readonly lifetime = new AbortController();
  /** Datagrams passed on to the Home app. */
  forwarded = 0;
  /** Datagrams that arrived with nowhere to go (before adoption, or after the session's socket closed). */
  dropped = 0;

  private constructor(
    private readonly socket: Socket,
    private readonly log: Log,
  ) {
    socket.on('message', (packet) => this.forward(packet));
    // After binding, an error must not, unhandled, end Homebridge.
    socket.on('error', (error) => log.debug(`Warm encoder relay: ${error.message}`));
    void whenAborted(this.lifetime.signal, () => {
      this.destination = undefined;
      closeQuietly(this.socket);
      if (this.dropped > 0) this.log.debug(`Warm encoder relay: ${this.dropped} datagram(s) dropped, ${this.forwarded} forwarded.`);
    });
  }

  /** A relay on a free UDP port of 127.0.0.1. */
  static open(log: Log): Promise<SrtpRelay> {
    return new Promise((resolve, reject) => {
      const socket = createSocket('udp4');
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve(new SrtpRelay(socket, log));
      });
    });
  }

  /** The port the encoder sends to. */
  get port(): number {
    return this.socket.address().port;
  }

  /** From now on, passes every datagram on to `address`:`port`, sent from `socket`. */
  forwardTo(socket: Socket, address: string, port: number): void {
    this.destination = { socket, address, port };
  }

  close(): void {
    this.lifetime.abort();
  }

  private forward(packet: Buffer): void {
    const to = this.destination;
    if (!to) {
      this.dropped++;
      return;
    }
    try {
      to.socket.send(packet, to.port, to.address);
      this.forwarded++;
    } catch {
      // The session's socket has closed: the session is ending and will close this relay too.
      this.dropped++;
    }
  }
}
