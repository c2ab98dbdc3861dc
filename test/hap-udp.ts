// What the Home app's side needs in both the HomeKit tests and the HomeKit benchmark: HAP's
// short UUIDs in full, and the UDP ports a stream receiver binds on 127.0.0.1.
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';

/** `'110'` -> `00000110-0000-1000-8000-0026BB765291`; full UUIDs pass through (upper case). */
export const hapUuid = (type: string): string => (type.includes('-') ? type : `${type.padStart(8, '0')}-0000-1000-8000-0026BB765291`).toUpperCase();

/** A UDP socket bound on 127.0.0.1 (`port` 0: any free one). */
export function bindUdp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(port, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** An even UDP port whose neighbour is free too (ffmpeg's RTP receiver takes port and port + 1). */
export async function freeUdpPair(): Promise<number> {
  for (;;) {
    const a = await bindUdp(0);
    const port = a.address().port;
    if (port % 2 === 0 && port < 65_000) {
      const b = await bindUdp(port + 1).catch(() => undefined);
      if (b) {
        b.close();
        a.close();
        return port;
      }
    }
    a.close();
  }
}

/** True once something has bound UDP `port` on this machine. */
export function udpBound(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return ['/proc/net/udp', '/proc/net/udp6'].some((table) =>
    readFileSync(table, 'utf8')
      .split('\n')
      .some((line) => line.trim().split(/\s+/)[1]?.endsWith(hex)),
  );
}
