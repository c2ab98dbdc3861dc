// Names Homebridge and users see: the npm package, the platform key in config.json, the default web
// port, and the folder the plugin keeps its files in under Homebridge.
import { join, resolve } from 'node:path';

export const PLUGIN_NAME = 'homebridge-webcam-server';
export const PLATFORM_NAME = 'WebcamServer';
export const DEFAULT_PORT = 8181;
export const AUTH_REALM = 'Webcam Server';

/** The plugin's folder in the Homebridge storage folder: the users file, the preview token, the last public IP. */
export const STORAGE_FOLDER = 'webcam-server';

/** `<storage>/webcam-server`. */
export function pluginStorageDir(storagePath: string): string {
  return join(storagePath, STORAGE_FOLDER);
}

/** The users file under Homebridge: `web.usersFile` (relative to the storage folder), else `<storage>/webcam-server/users`. */
export function usersFilePath(storagePath: string, usersFile?: string): string {
  return resolve(storagePath, usersFile?.trim() || join(STORAGE_FOLDER, 'users'));
}
