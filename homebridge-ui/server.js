// The server side of this plugin's custom settings page in the Homebridge UI
// (homebridge-config-ui-x). The UI starts this file as a child process while the settings are
// open and relays the page's `homebridge.request(path, body)` calls to it. The work itself is in
// the compiled plugin (dist/ui/handlers.js): webcams, preview, camera controls, users, test email.
'use strict';

const path = require('node:path');

/** Loads the compiled handlers; a missing build is answered (on /status) with what to do. */
function loadHandlers(storagePath) {
  try {
    const { createUiHandlers, UiError } = require(path.join(__dirname, '..', 'dist', 'ui', 'handlers.js'));
    const { consoleLog } = require(path.join(__dirname, '..', 'dist', 'log.js'));
    return { handlers: createUiHandlers({ storagePath, log: consoleLog('Webcam Server UI') }), UiError };
  } catch (error) {
    const message = `The plugin's compiled code could not be loaded (${error.message}): reinstall the plugin (or run "npm run build" in a development copy).`;
    return { loadError: message };
  }
}

/** What the page is told when a handler fails: UiError's words and code, else a generic line (the details go to the log). */
function requestError(route, error, UiError, RequestError) {
  if (error instanceof RequestError) return error;
  if (UiError && error instanceof UiError) return new RequestError(error.message, { code: error.code });
  console.error(`Webcam Server UI: ${route} failed:`, error);
  return new RequestError(`Something went wrong (${error && error.message}); the Homebridge log has the details.`, { code: 'INTERNAL' });
}

async function main() {
  // plugin-ui-utils 2 is an ES module: import() loads it from CommonJS on every Node version.
  const { HomebridgePluginUiServer, RequestError } = await import('@homebridge/plugin-ui-utils');
  // Only the library's public API (onRequest, ready). Its dispatcher prints "Incoming Request: <path>"
  // for every request, which the Homebridge UI copies into its log (once a second while the preview
  // runs); that line cannot be turned off without reaching into the library's private methods.
  const server = new HomebridgePluginUiServer();
  const storagePath = server.homebridgeStoragePath || path.join(require('node:os').homedir(), '.homebridge');
  const { handlers, UiError, loadError } = loadHandlers(storagePath);
  if (loadError) {
    // The page asks for /status first and shows its answer at the top: that is where the fix is said.
    console.error(`Webcam Server UI: ${loadError}`);
    server.onRequest('/status', () => {
      throw new RequestError(loadError, { code: 'NOT_BUILT' });
    });
  } else {
    for (const [route, handler] of Object.entries(handlers)) {
      server.onRequest(route, async (body) => {
        try {
          return await handler(body);
        } catch (error) {
          throw requestError(route, error, UiError, RequestError);
        }
      });
    }
  }
  server.ready();
  return server;
}

// The UI ends this process with SIGTERM when the settings close: exit through Node's 'exit' hooks,
// which stop any ffmpeg or controls tool still running for it.
process.on('SIGTERM', () => process.exit(0));

main().catch((error) => {
  console.error('Webcam Server UI could not start:', error);
  process.exit(1);
});
