// Generated from config.schema.json by test/config-typegen.ts (`npm run config-types`): do not edit.
// The config as the plugin reads it after validating it with the schema: a key with a default is
// always there.

export interface PluginSettings {
  /** Name. Shown in the web pages' titles and in the alert emails. */
  name: string;
  /** ffmpeg binary. Leave empty to use ffmpeg-for-homebridge's binary, else ffmpeg on PATH. */
  videoProcessor?: string;
  /** Cameras */
  cameras: CameraSettings[];
  /** Web server */
  web: WebSettings;
  /**
   * Email alerts. Emails on motion, a camera going offline and back, a public IP change and
   * failed-login bursts, through AWS SES or SMTP.
   */
  alerts: AlertsSettings;
}

/** Motion detection */
export interface MotionConfig {
  /** Detect motion (HomeKit motion sensor). Keeps the capture running to watch for motion. */
  enabled: boolean;
  /** Sensitivity. 0 reacts only to large changes, 100 to the smallest. */
  sensitivity: number;
  /** Cooldown (seconds). Motion stays detected this long, then clears: one notification per period. */
  cooldownSeconds: number;
}

/** HomeKit Secure Video */
export interface RecordingConfig {
  /**
   * Offer HomeKit Secure Video recording. The Home app can then record clips to iCloud when the
   * camera sees motion (camera settings › Recording Options). It needs a home hub (Apple TV,
   * HomePod or iPad at home) and an iCloud+ plan. Nothing runs until you turn recording on in the
   * Home app; while it is on, one H.264 encoder per camera keeps the last seconds ready, so each
   * clip starts a few seconds before the motion. Needs motion detection on.
   */
  enabled: boolean;
}

/** HomeKit */
export interface HomeKitConfig {
  /** Publish to HomeKit */
  enabled: boolean;
  /**
   * Own accessory (recommended for cameras). Add it in the Home app with the bridge's PIN. Off: the
   * camera is part of the bridge.
   */
  unbridge: boolean;
  /** Live streams at once */
  maxStreams: number;
  /** H.264 encoder */
  encoder: 'libx264' | 'h264_v4l2m2m';
  /**
   * Keep an encoder ready (faster stream start). One idle ffmpeg per HomeKit camera waits for the
   * next live stream, already loaded: the picture starts a little sooner, for no CPU while it waits
   * but about 45 MB resident (10 MB of its own). Off, the encoder starts when the Home app sets up
   * the stream. Cameras with sound start theirs when the stream starts.
   */
  warmEncoder: boolean;
  /** HomeKit Secure Video */
  recording: RecordingConfig;
}

/** Sound */
export interface AudioConfig {
  /** Stream sound to HomeKit (OPUS) */
  enabled: boolean;
  /**
   * ALSA capture device. arecord -L lists devices. A dsnoop device lets several streams share the
   * microphone.
   */
  source: string;
}

export interface CameraSettings {
  /**
   * Name. Its slug is the camera's address in URLs (Front Porch: /cameras/front-porch/). Renaming a
   * camera makes a new accessory in the Home app.
   */
  name: string;
  /**
   * Source. A V4L2 device (/dev/video0), the word testsrc (a moving test pattern), or a stream URL
   * (http://..., rtsp://...).
   */
  source: string;
  /**
   * Input format. What to ask the webcam for: mjpeg is passed through untouched; raw formats
   * (yuyv422) are encoded to JPEG.
   */
  inputFormat: string;
  /** Width */
  width: number;
  /** Height */
  height: number;
  /** Frames per second */
  fps: number;
  /**
   * JPEG quality (encoded sources). 2 is best, 31 smallest. Not used when an MJPEG webcam's frames
   * are passed through.
   */
  quality: number;
  /** Show a clock over the live image */
  timestamp: boolean;
  /**
   * Camera controls. Values applied whenever the camera starts, by the names the Camera controls
   * panel above (or `webcam-server controls`) lists, e.g. {"Brightness": 140, "Focus, Auto":
   * false}. The panel's "Keep in the config" button writes them here.
   */
  controls: Record<string, number | boolean>;
  /**
   * Controls device. The device whose controls are tuned, when the picture arrives another way (a
   * URL, or testsrc). Default: the source device.
   */
  controlsDevice?: string;
  /** Controls tool */
  controlsTool: 'auto' | 'uvcdynctrl' | 'v4l2-ctl';
  /**
   * Control mapping file (uvcdynctrl -i). A Logitech-style XML mapping imported before the values
   * are applied (extra controls such as LED1 Mode).
   */
  controlsFile?: string;
  /** Motion detection */
  motion: MotionConfig;
  /** HomeKit */
  homekit: HomeKitConfig;
  /** Sound */
  audio: AudioConfig;
}

/** HTTPS. Both PEM files, readable by the user running Homebridge; leave both empty for plain HTTP. */
export interface TlsSettings {
  /** Certificate (PEM file) */
  cert?: string;
  /** Private key (PEM file) */
  key?: string;
}

/** H.264 live view */
export interface H264ViewConfig {
  /**
   * H.264 view bitrate (kbit/s). The live page's H.264 mode, for slow links (a phone on mobile
   * data, a home uplink): 800 kbit/s suits 720p and still fits a 1 Mbit/s link; keep it below the
   * slowest link you watch over. One encoder per camera serves every H.264 viewer, and runs only
   * while one watches (or while HomeKit Secure Video records, whose settings then win).
   */
  bitrate: number;
}

/** Web server */
export interface WebSettings {
  /** Serve the live web page */
  enabled: boolean;
  /**
   * Listen address. 0.0.0.0 for every network interface, 127.0.0.1 for this machine only (behind a
   * proxy).
   */
  host: string;
  /** Port. 0 takes any free port (useful for tests only). */
  port: number;
  /**
   * Unix socket (instead of host and port). A unix socket path to listen on instead of the host and
   * port, for nginx in front (proxy_pass http://unix:/run/webcam/webcam.sock).
   */
  socket?: string;
  /**
   * Users file. Default: webcam-server/users in the Homebridge storage folder. The Users panel
   * above adds, changes and deletes users in it. A flask-cam users file works as it is.
   */
  usersFile?: string;
  /**
   * Trusted networks (no password asked). Off unless you add ranges here. Anyone in these ranges
   * sees the cameras without logging in.
   */
  trustedNetworks: string[];
  /**
   * Allowed host names (trusted networks). Names a browser on a trusted network may use for this
   * server without a password, besides its IP addresses, localhost and this machine's own name (and
   * name.local). Other names are refused unless the visitor logs in: that stops a foreign web page
   * from pointing its own name at your camera (DNS rebinding).
   */
  allowedHosts: string[];
  /**
   * HTTPS. Both PEM files, readable by the user running Homebridge; leave both empty for plain
   * HTTP.
   */
  tls?: TlsSettings;
  /**
   * Failed logins that lock an address out (0: off). Wrong passwords from one address within 10
   * minutes; then that address gets HTTP 429 until the lockout ends.
   */
  maxFailedLogins: number;
  /** Lockout (minutes) */
  lockoutMinutes: number;
  /**
   * Proxies to believe (X-Forwarded-For). For nginx in front: true for one proxy, or the proxies'
   * addresses. Default: true with a unix socket, else false. Failed logins and trusted networks
   * then count the client's address, not the proxy's.
   */
  trustProxy?: boolean | string[];
  /** H.264 live view */
  h264: H264ViewConfig;
  /**
   * Sites that may show the kiosk page in a frame. Origins such as https://dashboard.example.com.
   * Every other page can be framed only by this server.
   */
  kioskFrameAncestors: string[];
}

/**
 * AWS SES. Fill in region, sender and recipients to send through SES. Leave this empty to use SMTP
 * below.
 */
export interface SesConfig {
  /** Region */
  region: string;
  /** From (a sender verified in SES) */
  from: string;
  /** To. While the SES account is in the sandbox, each recipient must be verified in SES too. */
  to: string[];
  /** Access key id. Leave empty to use the AWS SDK's default credentials. */
  accessKeyId?: string;
  /** Secret access key. Set both keys or neither. */
  secretAccessKey?: string;
  /**
   * Endpoint (SES-compatible services). Only for SES-compatible services (LocalStack and the like).
   * Leave empty for AWS.
   */
  endpoint?: string;
}

/**
 * SMTP (instead of SES). Used when SES above is not set up, e.g. SES's SMTP interface with its SMTP
 * credentials.
 */
export interface SmtpConfig {
  /** Host */
  host: string;
  /** Port. 587 (STARTTLS, the default) or 465 (TLS). */
  port: number;
  /** Username */
  username?: string;
  /** Password */
  password?: string;
  /** From */
  from: string;
  /** From name */
  fromName?: string;
  /** To */
  to: string[];
}

/** Send an email on */
export interface AlertTriggers {
  /** Motion (with the frame) */
  motion: boolean;
  /** Camera offline and back */
  offline: boolean;
  /** Public IP change */
  publicIpChange: boolean;
  /** Failed logins from one address (0: off) */
  failedLogins: number;
}

/** Public IP check */
export interface PublicIpConfig {
  /** DNS server asked */
  resolver: string;
  /** Name asked */
  hostname: string;
  /** Every (minutes) */
  intervalMinutes: number;
}

/**
 * Email alerts. Emails on motion, a camera going offline and back, a public IP change and
 * failed-login bursts, through AWS SES or SMTP.
 */
export interface AlertsSettings {
  /**
   * AWS SES. Fill in region, sender and recipients to send through SES. Leave this empty to use
   * SMTP below.
   */
  ses?: SesConfig;
  /**
   * SMTP (instead of SES). Used when SES above is not set up, e.g. SES's SMTP interface with its
   * SMTP credentials.
   */
  smtp?: SmtpConfig;
  /** Send an email on */
  on: AlertTriggers;
  /** Least seconds between two alerts of one kind */
  cooldownSeconds: number;
  /** Most alerts in an hour */
  maxPerHour: number;
  /** Seconds offline before the alert */
  offlineAfterSeconds: number;
  /** Failed logins counted within (minutes) */
  failedLoginWindowMinutes: number;
  /** Public IP check */
  publicIp: PublicIpConfig;
}
