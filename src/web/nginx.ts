// `webcam-server nginx-config`: an nginx site that puts this server on the internet the way
// flask-cam's README did (nginx in front, TLS, a unix socket behind), with what a live MJPEG
// stream needs from a proxy: no buffering, long reads, and the client's address passed on.

export interface NginxOptions {
  /** The port nginx listens on. */
  port: number;
  serverName: string;
  /** The server's unix socket (`web.socket`); else `upstream`. */
  socket?: string;
  /** `host:port` of the server when it listens on TCP. Default 127.0.0.1:8181. */
  upstream?: string;
  /** PEM certificate and key: TLS and HSTS when both are given. */
  cert?: string;
  key?: string;
}

/** Checks the options; returns the problems, each naming the flag. */
export function checkNginxOptions(options: NginxOptions): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65_535) problems.push('--port must be 1..65535.');
  if (!/^[A-Za-z0-9.*_-]+( [A-Za-z0-9.*_-]+)*$/.test(options.serverName)) problems.push('--server-name must be host names separated by spaces (e.g. cam.example.com).');
  if (Boolean(options.cert) !== Boolean(options.key)) problems.push('--cert and --key go together.');
  const path = /^\/[A-Za-z0-9._/-]+$/;
  for (const [flag, value] of [['--socket', options.socket], ['--cert', options.cert], ['--key', options.key]] as const) {
    if (value !== undefined && !path.test(value)) problems.push(`${flag} must be an absolute path without spaces or quotes.`);
  }
  if (options.upstream !== undefined && !/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(options.upstream)) {
    problems.push('--upstream must be host:port (e.g. 127.0.0.1:8181).');
  }
  return problems;
}

/** The site file. Assumes checkNginxOptions found nothing wrong. */
export function nginxSite(options: NginxOptions): string {
  const tls = Boolean(options.cert && options.key);
  const server = options.socket ? `unix:${options.socket}` : (options.upstream ?? '127.0.0.1:8181');
  // sndbuf: the kernel's send queue to each visitor (Linux doubles it: 256 KiB). Left to grow to
  // megabytes, a live stream on a slow link queues seconds of frames there, and the server cannot
  // see a visitor's link through nginx. 256 KiB is ~1 s at 2 Mbit/s and still lets one visitor
  // take 20 Mbit/s at 100 ms round trip.
  const listen = `${tls ? `${options.port} ssl` : String(options.port)} sndbuf=128k`;
  const proxy = [
    'proxy_pass http://webcam_server;',
    'proxy_http_version 1.1;',
    'proxy_set_header Connection "";',
    // $http_host keeps the port, so the server's same-origin check sees what the browser sent.
    'proxy_set_header Host $http_host;',
    // The server believes the last address in this list: the one nginx adds.
    'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    'proxy_set_header X-Forwarded-Proto $scheme;',
  ];
  const indent = (lines: string[], depth: number) => lines.map((line) => `${'    '.repeat(depth)}${line}`).join('\n');
  const access = options.socket
    ? `# nginx's workers (www-data) must be able to open the socket, which the server creates with
# mode 0660: add www-data to the group of the user the server runs as, e.g.
#   sudo usermod -aG homebridge www-data && sudo systemctl restart nginx
`
    : `# The server must believe nginx's X-Forwarded-For, or every visitor has nginx's address (one
# person's wrong passwords would lock everyone out): set "web": { "trustProxy": true } when nginx
# runs on this machine, or the nginx machine's address, e.g. "trustProxy": ["192.168.1.2"].
`;
  return `# webcam-server behind nginx, written by \`webcam-server nginx-config\`.
# Install: save as /etc/nginx/sites-available/webcam-server, link it into sites-enabled,
# then: sudo nginx -t && sudo systemctl reload nginx
${access}upstream webcam_server {
    server ${server};
    keepalive 8;
}

server {
    # sndbuf bounds what waits in the kernel for each visitor: on a slow link a live stream would
    # otherwise queue seconds of old frames there. Smaller: less delay on slow links, less
    # throughput on long fast ones.
    listen ${listen};
    listen [::]:${listen};
    server_name ${options.serverName};
${
  tls
    ? `
    ssl_certificate ${options.cert};
    ssl_certificate_key ${options.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:webcam_server_tls:1m;
    add_header Strict-Transport-Security "max-age=31536000" always;
`
    : ''
}
    # Only small JSON bodies (camera controls) are ever sent.
    client_max_body_size 64k;

    location / {
${indent(proxy, 2)}
    }

    # Live streams never end and must not be held back in nginx's buffers.
    location ~ ^/(stream|stream\\.mjpg|cameras/[^/]+/stream|cameras/[^/]+/stream\\.mjpg)$ {
${indent(proxy, 2)}
        proxy_buffering off;
        proxy_read_timeout 1h;
        proxy_send_timeout 1h;
    }
}
`;
}
