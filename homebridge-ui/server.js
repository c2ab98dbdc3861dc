// The server side of this plugin's custom settings page in the Homebridge UI
// (homebridge-config-ui-x). The UI starts this file as a child process while the settings are
// open and relays the page's `homebridge.request(path, body)` calls to it. The work itself is in
// the compiled plugin (dist/ui/handlers.js): webcams, preview, camera controls, users, test email.
'use strict';

const path = require('node:path');

/** Loads the compiled handlers; a missing build is answered on every request with what to do. */
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

async function main() {
  // plugin-ui-utils 2 is an ES module: import() loads it from CommonJS on every Node version.
  const { HomebridgePluginUiServer, RequestError } = await import('@homebridge/plugin-ui-utils');

  class WebcamServerUiServer extends HomebridgePluginUiServer {
    constructor() {
      super();
      const storagePath = this.homebridgeStoragePath || path.join(require('node:os').homedir(), '.homebridge');
      const { handlers, UiError, loadError } = loadHandlers(storagePath);
      this.routes = handlers || {};
      this.UiError = UiError;
      this.loadError = loadError;
      this.ready();
    }

    // Replaces the base class's dispatcher, which logs every request: the preview asks once a
    // second, and the Homebridge log should not fill with that.
    async processRequest(request) {
      const handler = this.routes[request.path];
      if (this.loadError) return this.sendResponse(request, { message: this.loadError, error: { code: 'NOT_BUILT' } }, false);
      if (!handler) return this.sendResponse(request, { message: `Unknown request ${request.path}.`, error: { code: 'NOT_FOUND' } }, false);
      try {
        return this.sendResponse(request, await handler(request.body || {}), true);
      } catch (error) {
        if (this.UiError && error instanceof this.UiError) {
          return this.sendResponse(request, { message: error.message, error: { code: error.code } }, false);
        }
        if (error instanceof RequestError) return this.sendResponse(request, { message: error.message, error: error.requestError }, false);
        console.error(`Webcam Server UI: ${request.path} failed:`, error);
        return this.sendResponse(request, { message: `Something went wrong (${error && error.message}); the Homebridge log has the details.`, error: { code: 'INTERNAL' } }, false);
      }
    }
  }

  return new WebcamServerUiServer();
}

// The UI ends this process with SIGTERM when the settings close: exit through Node's 'exit' hooks,
// which stop any ffmpeg or controls tool still running for it.
process.on('SIGTERM', () => process.exit(0));

main().catch((error) => {
  console.error('Webcam Server UI could not start:', error);
  process.exit(1);
});
