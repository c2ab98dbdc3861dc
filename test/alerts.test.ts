// Email alerts: the config, the rate rules, the SES error explanations, and end to end with real
// parts: the SES emulator (aws-ses-v2-local) on a loopback port, the moving testsrc pattern for
// motion, a camera reading another server's stream for offline/online, real failed logins over
// HTTP, and a tiny DNS server standing in for OpenDNS.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { SMTPServer } from 'smtp-server';

import { sendTestAlert } from '../src/alerts/alerts';
import { normalizeAlerts } from '../src/alerts/config';
import { AlertMailer } from '../src/alerts/mailer';
import { silentLog } from '../src/log';
import { duration, motionAlert } from '../src/alerts/messages';
import { admit, FailureWindow } from '../src/alerts/policy';
import { backoffDelay } from '../src/util/backoff';
import { parseResolver } from '../src/alerts/public-ip';
import { buildMime, explainSesError } from '../src/alerts/transport';
import { SesEmulator, TinyDns } from './alert-helpers';
import { basic, commandFailure, execFileAsync, freeTcpPort, MjpegClient, nth, probeSize, recordingLog, sleep, startTestServer, tempDir } from './helpers';

const quiet = { motion: false, offline: false, publicIpChange: false, failedLogins: 0 };
const ses = (emulator: SesEmulator) => ({ region: 'us-west-2', from: 'cam@example.com', to: ['me@example.com'], accessKeyId: 'AKIATEST', secretAccessKey: 'secret', endpoint: emulator.endpoint });

describe('alerts config', () => {
  it('takes SES or SMTP (with flask-cam secrets names) and fills the defaults', () => {
    const { alerts, problems } = normalizeAlerts({ ses: { region: 'us-west-2', from: 'cam@example.com', to: 'me@example.com, you@example.com' } });
    assert.deepEqual(problems, []);
    assert.deepEqual(alerts?.ses?.to, ['me@example.com', 'you@example.com']);
    assert.deepEqual(alerts.on, { motion: true, offline: true, publicIpChange: true, failedLogins: 5 });
    assert.equal(alerts.publicIp.resolver, 'resolver1.opendns.com');
    assert.equal(alerts.cooldownSeconds, 300);
    const smtp = normalizeAlerts({ smtp: { host: 'email-smtp.us-west-2.amazonaws.com', port: '587', sender: 'cam@example.com', sender_name: 'Cam', recipient: 'me@example.com', smtp_username: 'AKIA', smtp_password: 'pw' } });
    assert.deepEqual(smtp.problems, []);
    assert.deepEqual(smtp.alerts?.smtp, { host: 'email-smtp.us-west-2.amazonaws.com', port: 587, username: 'AKIA', password: 'pw', from: 'cam@example.com', fromName: 'Cam', to: ['me@example.com'] });
  });

  it('names each problem and its fix', () => {
    assert.match(nth(normalizeAlerts({ ses: { region: 'us-west-2' } }).problems, 0, 'the problems'), /"alerts.ses" has no "from" \(set the sender, an address verified in SES such as camera@example.com\) and no "to" \(add one or more recipients .*\); SES is off\./);
    assert.match(nth(normalizeAlerts({ ses: { region: 'Oregon', from: 'a@b.c', to: 'a@b.c' } }).problems, 0, 'the problems'), /"alerts.ses.region" "Oregon" must be an AWS region such as us-west-2; SES is off\./);
    assert.match(nth(normalizeAlerts({ ses: { region: 'us-west-2', from: 'nope', to: 'a@b.c' } }).problems, 0, 'the problems'), /"alerts.ses.from" "nope" must be an email address such as camera@example.com/);
    assert.match(nth(normalizeAlerts({ ses: { region: 'us-west-2', from: 'Cam <a@b.c', to: 'a@b.c' } }).problems, 0, 'the problems'), /"alerts.ses.from" "Cam <a@b.c" must be an email address .*; SES is off\./);
    assert.match(nth(normalizeAlerts({ ses: { region: 'us-west-2', from: 'a@b.c', to: ['a@b.c', 'bad'] } }).problems, 0, 'the problems'), /"alerts.ses.to" entry "bad" must be an email address such as me@example.com; skipping it\./);
    assert.deepEqual(normalizeAlerts({ on: { motion: true } }), { problems: [] }, 'no sender: alerts are off, quietly');
    const partial = normalizeAlerts({ ses: { region: 'us-west-2', from: 'a@b.c', to: 'a@b.c', accessKeyId: 'AKIA' }, cooldownSeconds: -1 });
    assert.match(partial.problems.join('\n'), /"alerts.ses" needs both "accessKeyId" and "secretAccessKey", or neither; using neither/);
    assert.match(partial.problems.join('\n'), /"alerts.cooldownSeconds" must be a whole number from 0 to 604800 \(got -1\); using 300\./);
    assert.equal(partial.alerts?.ses?.accessKeyId, undefined);
    assert.equal(normalizeAlerts(undefined).alerts, undefined);
    // flask-cam-era switches: failed-login alerts as true (the default count) or false (off).
    assert.equal(normalizeAlerts({ ses: { region: 'us-west-2', from: 'a@b.c', to: 'a@b.c' }, on: { failedLogins: false } }).alerts?.on.failedLogins, 0);
    assert.equal(normalizeAlerts({ ses: { region: 'us-west-2', from: 'a@b.c', to: 'a@b.c' }, on: { failedLogins: true } }).alerts?.on.failedLogins, 5);
  });
});

describe('alert rules', () => {
  it('holds an alert back within its cooldown and beyond the hourly cap', () => {
    const history = { lastByKey: new Map<string, number>(), admitted: [] as number[] };
    assert.equal(admit(history, 'motion:a', 0, 60_000, 3), 'ok');
    assert.equal(admit(history, 'motion:a', 59_999, 60_000, 3), 'cooldown');
    assert.equal(admit(history, 'motion:b', 1, 60_000, 3), 'ok', 'another key has its own cooldown');
    assert.equal(admit(history, 'motion:a', 60_000, 60_000, 3), 'ok');
    assert.equal(admit(history, 'x', 70_000, 60_000, 3), 'cap');
    assert.equal(admit(history, 'x', 3_600_001, 60_000, 3), 'ok', 'the hour has passed');
  });

  it('doubles retry delays up to the maximum', () => {
    assert.deepEqual([1, 2, 3, 4, 8].map((n) => backoffDelay(n, 5_000, 60_000)), [5_000, 10_000, 20_000, 40_000, 60_000]);
  });

  it('reports one burst when an address reaches the threshold within the window', () => {
    const window = new FailureWindow(3, 60_000);
    assert.equal(window.record('1.2.3.4', 'root', 0), undefined);
    assert.equal(window.record('5.6.7.8', 'x', 1), undefined);
    assert.equal(window.record('1.2.3.4', 'admin', 70_000), undefined, 'the first try left the window');
    assert.equal(window.record('1.2.3.4', 'admin', 70_001), undefined);
    assert.deepEqual(window.record('1.2.3.4', 'pi', 70_002), { address: '1.2.3.4', count: 3, users: ['admin', 'pi'] });
    assert.equal(window.record('1.2.3.4', 'pi', 70_003), undefined, 'counting starts over');
    assert.equal(new FailureWindow(0, 1000).record('a', 'b', 0), undefined, '0 switches it off');
  });

  it('a full queue drops the oldest waiting alert, never the one being sent', async () => {
    const sent: string[] = [];
    let release = () => {};
    const sender = {
      name: 'test',
      send: async (alert: { subject: string }) => {
        if (sent.length === 0) await new Promise<void>((resolve) => (release = resolve));
        sent.push(alert.subject);
        return 'id';
      },
      close: () => {},
    };
    const mailer = new AlertMailer({ sender, log: silentLog, cooldownMs: 0, maxPerHour: 100, maxQueue: 3 });
    const alert = (n: number) => ({ kind: 'test' as const, key: `k${n}`, subject: `s${n}`, text: '', html: '' });
    for (let n = 1; n <= 5; n++) mailer.submit(alert(n));
    release();
    await mailer.idle();
    assert.deepEqual(sent, ['s1', 's4', 's5'], 's1 was in flight; s2 and s3 were the oldest waiting');
  });

  it('explains SES refusals and says which are worth retrying', () => {
    const config = { region: 'us-west-2', from: 'cam@example.com' };
    const unverified = explainSesError(
      Object.assign(new Error('Email address is not verified. The following identities failed the check in region US-WEST-2: cam@example.com'), { name: 'MessageRejected' }),
      config,
    );
    assert.equal(unverified.retryable, false);
    assert.match(unverified.message, /not verified in us-west-2: cam@example.com\. Verify the sender .* sandbox, every recipient must be verified too/);
    assert.equal(explainSesError(Object.assign(new Error('Maximum sending rate exceeded.'), { name: 'Throttling' }), config).retryable, true);
    const credentials = explainSesError(Object.assign(new Error('The security token included in the request is invalid.'), { name: 'InvalidClientTokenId' }), config);
    assert.match(credentials.message, /rejected the AWS credentials .*accessKeyId/);
    assert.equal(credentials.retryable, false);
    assert.match(explainSesError(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }), config).message, /ses:SendRawEmail/);
    const network = explainSesError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), config);
    assert.equal(network.retryable, true);
    assert.match(network.message, /could not be reached/);
  });

  it('writes readable messages with the frame attached inline', async () => {
    assert.deepEqual([duration(45_000), duration(200_000), duration(7_500_000)], ['45 s', '3 min 20 s', '2 h 5 min']);
    const jpeg = readFileSync(join(__dirname, 'fixtures', 'frame.jpg'));
    const alert = motionAlert({ id: 'porch', name: 'Porch <1>' }, jpeg, 0.123, { siteName: 'Home', at: new Date('2026-11-28T10:00:00Z') });
    assert.equal(alert.subject, '[Home] Motion: Porch <1>');
    assert.match(alert.html, /Porch &lt;1&gt; saw motion/);
    assert.match(alert.text, /12% of the picture changed/);
    const mime = (await buildMime(alert, 'cam@example.com', ['me@example.com'])).toString();
    assert.match(mime, /Content-Type: image\/jpeg; name=porch-2026-11-28T10-00-00-000Z\.jpg/);
    assert.match(mime, /Content-ID: <frame>/);
    assert.deepEqual(parseResolver('[::1]:5353'), { host: '::1', port: 5353 });
    assert.deepEqual(parseResolver('resolver1.opendns.com'), { host: 'resolver1.opendns.com', port: 53 });
  });
});

describe('alerts through the SES emulator', () => {
  it('motion on the moving pattern: one email with the frame; more motion inside the cooldown: none', async (t) => {
    const emulator = await SesEmulator.start(t);
    const server = await startTestServer(t, {
      cameras: [{ name: 'Porch', source: 'testsrc', width: 320, height: 240, fps: 10, motion: { sensitivity: 60, cooldownSeconds: 1 }, homekit: { enabled: false } }],
      alerts: { ses: ses(emulator), on: { ...quiet, motion: true }, cooldownSeconds: 300 },
    });
    let motions = 0;
    server.runtime.on('motion', () => motions++);
    const email = await emulator.waitForEmail();
    assert.equal(email.subject, '[Webcam Server] Motion: Porch');
    assert.deepEqual(email.destination.to, ['me@example.com']);
    assert.match(email.from, /cam@example\.com/);
    assert.match(email.body.text ?? '', /Porch saw motion at/);
    assert.equal(email.attachments.length, 1);
    const [attachment] = email.attachments;
    assert.ok(attachment);
    assert.equal(attachment.contentType, 'image/jpeg');
    const file = join(tempDir(), 'attached.jpg');
    writeFileSync(file, Buffer.from(attachment.content, 'base64'));
    assert.deepEqual(await probeSize(file), [320, 240], 'a decodable JPEG of the camera');
    // The detector's own cooldown is 1 s: wait for it to report motion again.
    const deadline = Date.now() + 15_000;
    while (motions < 2 && Date.now() < deadline) await sleep(100);
    assert.ok(motions >= 2, `motion was seen again (${motions})`);
    await sleep(500);
    assert.equal((await emulator.emails()).length, 1, 'the alert cooldown held the second one back');
  });

  it('a camera kept offline sends one offline email, and one when it is back', async (t) => {
    const emulator = await SesEmulator.start(t);
    // The camera under test reads another server's stream; stopping that server keeps it down.
    const upstreamPort = await freeTcpPort();
    const upstreamOptions = {
      cameras: [{ name: 'Upstream', source: 'testsrc', width: 160, height: 120, fps: 10 }],
      web: { port: upstreamPort, trustedNetworks: ['127.0.0.1/32'] },
    };
    const upstream = await startTestServer(t, upstreamOptions);
    const server = await startTestServer(t, {
      cameras: [{ name: 'Gate', source: `http://127.0.0.1:${upstreamPort}/stream.mjpg`, width: 160, height: 120, fps: 10 }],
      alerts: { ses: ses(emulator), on: { ...quiet, offline: true }, offlineAfterSeconds: 1 },
    });
    const viewer = new MjpegClient(`${server.url}/cameras/gate/stream.mjpg`, basic('alice', 'wonderland'));
    await viewer.open();
    t.after(() => viewer.close());
    await viewer.waitForParts(1, 15_000);
    await upstream.close();
    const offline = await emulator.waitForEmail(20_000);
    assert.equal(offline.subject, '[Webcam Server] Offline: Gate');
    assert.match(offline.body.text ?? '', /Gate has had no picture since .*\nReason: /);
    await startTestServer(t, upstreamOptions); // the same port: the camera's source is back
    const emails = await emulator.waitForEmails(2, 45_000);
    assert.equal(emails[1]?.subject, '[Webcam Server] Back online: Gate');
    assert.match(emails[1].body.text ?? '', /Gate is streaming again after \d+ s offline/);
  });

  it('a burst of failed logins sends exactly one email naming the address', async (t) => {
    const emulator = await SesEmulator.start(t);
    const server = await startTestServer(t, {
      alerts: { ses: ses(emulator), on: { ...quiet, failedLogins: 3 }, failedLoginWindowMinutes: 5 },
    });
    for (let i = 0; i < 7; i++) {
      const res = await fetch(`${server.url}/api/cameras`, { headers: { authorization: basic(i % 2 ? 'root' : 'admin', `guess${i}`) } });
      assert.equal(res.status, 401);
    }
    const ok = await fetch(`${server.url}/api/cameras`, { headers: { authorization: basic('alice', 'wonderland') } });
    assert.equal(ok.status, 200);
    const email = await emulator.waitForEmail();
    assert.equal(email.subject, '[Webcam Server] 3 failed logins from 127.0.0.1');
    assert.match(email.body.text ?? '', /User names tried \(as typed\): "admin", "root"/);
    await sleep(1000);
    assert.equal((await emulator.emails()).length, 1, 'the second burst is inside the cooldown');
  });

  it('a public IP change seen through DNS sends one email; a restart with the same IP sends none', async (t) => {
    const emulator = await SesEmulator.start(t);
    const dns = await TinyDns.start(t, 'myip.opendns.com', '203.0.113.7');
    const stateDir = tempDir();
    const alerts = { ses: ses(emulator), on: { ...quiet, publicIpChange: true }, publicIp: { resolver: dns.resolver } };
    const first = await startTestServer(t, { alerts, stateDir });
    await first.runtime.alerts?.publicIp?.check();
    assert.equal(readFileSync(join(stateDir, 'public-ip'), 'utf8'), '203.0.113.7\n', 'the first address is kept');
    assert.deepEqual(dns.questions.slice(0, 1), ['A myip.opendns.com']);
    dns.address = '198.51.100.23';
    await first.runtime.alerts?.publicIp?.check();
    const email = await emulator.waitForEmail();
    assert.equal(email.subject, '[Webcam Server] Public IP changed to 198.51.100.23');
    assert.match(email.body.text ?? '', /changed from 203\.0\.113\.7 to 198\.51\.100\.23/);
    await first.close();

    const log = recordingLog();
    const second = await startTestServer(t, { alerts, stateDir, log });
    await second.runtime.alerts?.publicIp?.check();
    await sleep(300);
    assert.equal((await emulator.emails()).length, 1, 'same address after the restart: no email');
    assert.ok(dns.questions.length >= 3, 'the restarted server asked again');
  });

  it('with the emulator stopped: errors logged, nothing crashes, the alert arrives once it is back', async (t) => {
    const emulator = await SesEmulator.start(t);
    const log = recordingLog();
    const server = await startTestServer(t, {
      alerts: { ses: ses(emulator), on: { ...quiet, failedLogins: 2 } },
      log,
      alertRetryInitialMs: 300,
    });
    await emulator.stop();
    for (let i = 0; i < 2; i++) await fetch(`${server.url}/`, { headers: { authorization: basic('mallory', 'x') } });
    const deadline = Date.now() + 10_000;
    while (!log.lines.some((l) => /not sent yet: SES could not be reached/.test(l)) && Date.now() < deadline) await sleep(100);
    assert.ok(log.lines.some((l) => /^warn \[alerts\] Alert "\[Webcam Server\] 2 failed logins from 127\.0\.0\.1" not sent yet: SES could not be reached .*Next try in/.test(l)), log.lines.join('\n'));
    // The server still serves while the mail service is down.
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    await emulator.resume();
    const email = await emulator.waitForEmail(20_000);
    assert.equal(email.subject, '[Webcam Server] 2 failed logins from 127.0.0.1');
    assert.ok(log.lines.some((l) => /Alert sent through SES/.test(l)));
    assert.ok(!log.lines.some((l) => /secret/.test(l)), 'no credentials in the log');
  });
});

describe('webcam-server alert-test', () => {
  it('sends a test email and prints what SES answered; a bad config exits 1 with the reason', async (t) => {
    const emulator = await SesEmulator.start(t);
    const dir = tempDir();
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ platforms: [{ platform: 'WebcamServer', name: 'Cabin', cameras: [], alerts: { ses: ses(emulator) } }] }));
    const cli = join(__dirname, '..', 'src', 'cli.ts');
    const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', cli, 'alert-test', '--config', file]);
    assert.match(stdout, /^Sent through SES \(us-west-2, http:\/\/127\.0\.0\.1:\d+\) to me@example\.com: message id \S+/);
    const email = await emulator.waitForEmail();
    assert.equal(email.subject, '[Cabin] Test email');

    writeFileSync(file, JSON.stringify({ alerts: { ses: { region: 'us-west-2', to: 'me@example.com' } } }));
    const failed = await execFileAsync(process.execPath, ['--import', 'tsx', cli, 'alert-test', '--config', file]).then(
      () => ({ code: 0, stderr: '' }),
      commandFailure,
    );
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /No usable "alerts" block .*"alerts.ses" has no "from": set the sender, an address verified in SES/);
  });

  it('sendTestAlert rejects with the explained reason when SES cannot be reached; the command says so and promises no retry', async () => {
    const port = await freeTcpPort();
    const ses = { region: 'us-west-2', from: 'a@b.cd', to: 'c@d.ef', accessKeyId: 'A', secretAccessKey: 'B', endpoint: `http://127.0.0.1:${port}` };
    const config = normalizeAlerts({ ses }).alerts!;
    await assert.rejects(sendTestAlert(config, 'Home'), /SES could not be reached/);
    const file = join(tempDir(), 'config.json');
    writeFileSync(file, JSON.stringify({ alerts: { ses } }));
    const failed = await execFileAsync(process.execPath, ['--import', 'tsx', join(__dirname, '..', 'src', 'cli.ts'), 'alert-test', '--config', file]).then(
      () => ({ code: 0, stderr: '' }),
      commandFailure,
    );
    assert.equal(failed.code, 1);
    assert.equal(failed.stderr, failed.stderr.match(/^webcam-server: The test email was not sent: SES could not be reached \(.+\)\.\n$/)?.[0], 'one line, no AWS SDK Node-version warning');
    assert.doesNotMatch(failed.stderr, /Next try/);
    assert.doesNotMatch(failed.stderr, /retrying later/);
  });
});

describe('alerts through SMTP', () => {
  it('sends through a real SMTP server with flask-cam secrets fields, and explains a refused login', async (t) => {
    const received: Array<{ from: string; to: string[]; data: string; user?: string }> = [];
    const smtp = new SMTPServer({
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      onAuth(auth, _session, callback) {
        if (auth.username === 'AKIASMTP' && auth.password === 'smtp-secret') callback(null, { user: auth.username });
        else callback(new Error('Invalid username or password'));
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          received.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            data: Buffer.concat(chunks).toString(),
            user: session.user as string | undefined,
          });
          callback();
        });
      },
    });
    const port = await freeTcpPort();
    await new Promise<void>((resolve) => smtp.listen(port, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => smtp.close(() => resolve())));

    const secrets = { host: '127.0.0.1', port, sender: 'cam@example.com', sender_name: 'Porch camera', recipient: 'me@example.com', smtp_username: 'AKIASMTP', smtp_password: 'smtp-secret' };
    const config = normalizeAlerts({ smtp: secrets }).alerts!;
    const answer = await sendTestAlert(config, 'Cabin');
    assert.match(answer.via, /^SMTP \(127\.0\.0\.1:\d+\)$/);
    assert.equal(received.length, 1);
    const [mail] = received;
    assert.ok(mail);
    assert.deepEqual([mail.from, mail.to, mail.user], ['cam@example.com', ['me@example.com'], 'AKIASMTP']);
    assert.match(mail.data, /^From: Porch camera <cam@example\.com>$/m);
    assert.match(mail.data, /^Subject: \[Cabin\] Test email$/m);

    const wrong = normalizeAlerts({ smtp: { ...secrets, smtp_password: 'nope' } }).alerts!;
    await assert.rejects(sendTestAlert(wrong, 'Cabin'), /refused the SMTP login .*SES SMTP credentials are not the AWS access keys/);
  });
});
