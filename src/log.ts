// The logger shape every part takes: Homebridge's `Logging` fits it, and so does the console logger
// used by `webcam-server serve`.
export interface Log {
  info(message: string, ...parameters: unknown[]): void;
  warn(message: string, ...parameters: unknown[]): void;
  error(message: string, ...parameters: unknown[]): void;
  debug(message: string, ...parameters: unknown[]): void;
}

/** A logger for the standalone server: timestamped lines on stdout/stderr, debug only when asked. */
export function consoleLog(prefix: string, debug = process.env.WEBCAM_SERVER_DEBUG === '1'): Log {
  const line = (level: string, message: string): string =>
    `[${new Date().toISOString()}] [${prefix}] ${level}${message}`;
  return {
    info: (m, ...p) => console.log(line('', m), ...p),
    warn: (m, ...p) => console.warn(line('WARN ', m), ...p),
    error: (m, ...p) => console.error(line('ERROR ', m), ...p),
    debug: (m, ...p) => {
      if (debug) console.log(line('debug ', m), ...p);
    },
  };
}

/** A logger that drops everything (tests and benchmarks that do not care). */
export const silentLog: Log = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

/** A prefixed view of a logger, e.g. `[Porch] capture started`. */
export function prefixed(log: Log, prefix: string): Log {
  const p = `[${prefix}] `;
  return {
    info: (m, ...a) => log.info(p + m, ...a),
    warn: (m, ...a) => log.warn(p + m, ...a),
    error: (m, ...a) => log.error(p + m, ...a),
    debug: (m, ...a) => log.debug(p + m, ...a),
  };
}
