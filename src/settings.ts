// Names Homebridge and users see: the npm package, the platform key in config.json, the default web port.
export const PLUGIN_NAME = 'homebridge-webcam-server';
export const PLATFORM_NAME = 'WebcamServer';
export const DEFAULT_PORT = 8181;
export const AUTH_REALM = 'Webcam Server';
