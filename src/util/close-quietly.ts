// Closing something that may already be closed, for teardown paths.
import type { Socket } from 'node:dgram';

/** Closes UDP sockets, ignoring ones already closed. */
export function closeQuietly(...sockets: Array<Socket | undefined>): void {
  for (const socket of sockets) {
    try {
      socket?.close();
    } catch {
      // already closed
    }
  }
}
