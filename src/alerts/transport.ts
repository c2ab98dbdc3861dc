// Sending one alert: the MIME message is built by nodemailer's MailComposer (text, HTML and the
// JPEG inline), then handed to AWS SES (SendRawEmail) or to an SMTP server. Failures come back
// explained: what SES or the server said, what to change, and whether trying again can help.
// The AWS SDK and nodemailer (~27 MiB resident together) are loaded at the first email, not at
// start: most installs have no alerts configured, and a Pi's memory is better spent elsewhere.
import type { SESClient } from '@aws-sdk/client-ses';
import type { Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import type Mail from 'nodemailer/lib/mailer';

import { whenAborted } from '../util/lifetime';
import type { SesConfig, SmtpConfig } from './config';
import type { Alert } from './messages';

export interface Sender {
  /** `SES (us-west-2)` or `SMTP (host:port)`, for log lines. */
  readonly name: string;
  /** Sends; resolves with the message id the service gave. Rejects with a SendError. */
  send(alert: Alert): Promise<string>;
  close(): void;
}

export class SendError extends Error {
  constructor(
    message: string,
    /** Trying again later can succeed (throttling, network, a 5xx). */
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SendError';
  }
}

function mailOptions(alert: Alert, from: string, to: string[]): Mail.Options {
  return {
    from,
    to,
    subject: alert.subject,
    text: alert.text,
    html: alert.html,
    attachments: alert.image
      ? [{ filename: alert.image.filename, content: alert.image.data, contentType: 'image/jpeg', cid: 'frame' }]
      : [],
  };
}

/** The raw MIME message (what SendRawEmail carries). */
export async function buildMime(alert: Alert, from: string, to: string[]): Promise<Buffer> {
  const { default: MailComposer } = await import('nodemailer/lib/mail-composer');
  return new MailComposer(mailOptions(alert, from, to)).compile().build();
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

interface AwsLikeError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** SES's usual refusals in plain words, with the fix. */
export function explainSesError(error: unknown, config: Pick<SesConfig, 'region' | 'from'>): SendError {
  const e = (error ?? {}) as AwsLikeError;
  const name = e.name ?? '';
  const said = (e.message ?? String(error)).trim();
  const status = e.$metadata?.httpStatusCode;
  if (name === 'MessageRejected' && /not verified/i.test(said)) {
    const identities = /failed the check in region [^:]+: (.*)$/i.exec(said)?.[1];
    return new SendError(
      `SES refused the email: ${identities ? `not verified in ${config.region}: ${identities}` : said}. ` +
        `Verify the sender (${config.from}) in the SES console for region ${config.region}; while the account is in the SES sandbox, ` +
        'every recipient must be verified too (or request production access).',
      false,
      { cause: error },
    );
  }
  if (/throttl/i.test(name) || /rate exceeded|throttl/i.test(said)) {
    return new SendError(`SES is throttling the account (${said}).`, true, { cause: error });
  }
  if (['InvalidClientTokenId', 'UnrecognizedClientException', 'SignatureDoesNotMatch', 'ExpiredToken', 'ExpiredTokenException'].includes(name)) {
    return new SendError(
      `SES rejected the AWS credentials (${name}): check "alerts.ses.accessKeyId" and "secretAccessKey" (or the AWS credentials of the user running the server) and the region.`,
      false,
      { cause: error },
    );
  }
  if (name === 'CredentialsProviderError') {
    return new SendError(
      'No AWS credentials found: set "alerts.ses.accessKeyId" and "secretAccessKey", or give the user running the server AWS credentials (~/.aws/credentials or the AWS_* environment variables).',
      false,
      { cause: error },
    );
  }
  if (/AccessDenied/i.test(name)) {
    return new SendError(`SES denied the request (${said}): allow "ses:SendRawEmail" in the IAM policy of these credentials.`, false, { cause: error });
  }
  if (name === 'AccountSendingPausedException') {
    return new SendError('Sending is paused for this SES account: see the SES console (reputation dashboard).', false, { cause: error });
  }
  if (NETWORK_CODES.has(e.code ?? '') || NETWORK_CODES.has(name) || name === 'TimeoutError' || /ECONNREFUSED|ETIMEDOUT|socket hang up|getaddrinfo/i.test(said)) {
    return new SendError(`SES could not be reached (${said || name}).`, true, { cause: error });
  }
  if (status !== undefined && status >= 500) {
    return new SendError(`SES failed (HTTP ${status}: ${said}).`, true, { cause: error });
  }
  return new SendError(`SES refused the email (${name ? `${name}: ` : ''}${said}).`, false, { cause: error });
}

/** SMTP refusals (nodemailer errors) in plain words. */
export function explainSmtpError(error: unknown, config: Pick<SmtpConfig, 'host' | 'port'>): SendError {
  const e = (error ?? {}) as { code?: string; responseCode?: number; response?: string; message?: string };
  const said = (e.response ?? e.message ?? String(error)).trim();
  const where = `${config.host}:${config.port}`;
  if (e.code === 'EAUTH') {
    return new SendError(`${where} refused the SMTP login (${said}): check "alerts.smtp.username" and "password" (SES SMTP credentials are not the AWS access keys).`, false, { cause: error });
  }
  if (/not verified/i.test(said)) {
    return new SendError(`${where} refused the email: ${said}. Verify the sender, and in the SES sandbox every recipient.`, false, { cause: error });
  }
  if (['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ECONNREFUSED'].includes(e.code ?? '') || e.responseCode === 421 || e.responseCode === 454) {
    return new SendError(`${where} could not take the email now (${said}).`, true, { cause: error });
  }
  return new SendError(`${where} refused the email (${said}).`, (e.responseCode ?? 0) >= 400 && (e.responseCode ?? 0) < 500, { cause: error });
}

/**
 * The AWS SDK warns on every Node below 22 that its future versions will need 22: nothing our
 * users can act on (Homebridge runs on 20). Made while the SDK's own switch for that is on, then
 * the environment is as it was.
 */
function withoutSdkNodeWarning<T>(make: () => T): T {
  const env = process.env;
  const before = env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  try {
    return make();
  } finally {
    if (before === undefined) delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
    else env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = before;
  }
}

export class SesSender implements Sender {
  readonly name: string;
  /** Made at the first email. */
  private client?: Promise<SESClient>;
  /** Aborted by close(): the client (if one was made) is destroyed, and nothing more is sent. */
  private readonly lifetime = new AbortController();

  constructor(private readonly config: SesConfig) {
    this.name = `SES (${config.region}${config.endpoint ? `, ${config.endpoint}` : ''})`;
    void whenAborted(this.lifetime.signal, () => this.client?.then((client) => client.destroy()));
  }

  private sesClient(): Promise<SESClient> {
    const config = this.config;
    this.client ??= import('@aws-sdk/client-ses').then(({ SESClient }) => withoutSdkNodeWarning(() =>
      new SESClient({
        region: config.region,
        endpoint: config.endpoint,
        credentials:
          config.accessKeyId && config.secretAccessKey
            ? { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey }
            : undefined,
        // The mailer retries with its own backoff and log lines.
        maxAttempts: 1,
        requestHandler: { connectionTimeout: 5_000, requestTimeout: 15_000 },
      }),
    ));
    return this.client;
  }

  async send(alert: Alert): Promise<string> {
    if (this.lifetime.signal.aborted) throw new SendError('the SES sender was closed', false);
    const raw = await buildMime(alert, this.config.from, this.config.to);
    const [client, { SendRawEmailCommand }] = await Promise.all([this.sesClient(), import('@aws-sdk/client-ses')]);
    try {
      const answer = await client.send(
        new SendRawEmailCommand({ RawMessage: { Data: raw }, Source: this.config.from, Destinations: this.config.to }),
      );
      return answer.MessageId ?? '(no id)';
    } catch (error) {
      throw explainSesError(error, this.config);
    }
  }

  close(): void {
    this.lifetime.abort();
  }
}

type SmtpTransporter = Transporter<SMTPTransport.SentMessageInfo, SMTPTransport.Options>;

export class SmtpSender implements Sender {
  readonly name: string;
  /** Made at the first email. */
  private transport?: Promise<SmtpTransporter>;
  /** Aborted by close(): the transport (if one was made) is closed, and nothing more is sent. */
  private readonly lifetime = new AbortController();

  constructor(private readonly config: SmtpConfig) {
    this.name = `SMTP (${config.host}:${config.port})`;
    void whenAborted(this.lifetime.signal, () => this.transport?.then((transport) => transport.close()));
  }

  private smtpTransport(): Promise<SmtpTransporter> {
    this.transport ??= this.createTransport();
    return this.transport;
  }

  private async createTransport(): Promise<SmtpTransporter> {
    const { createTransport } = await import('nodemailer');
    const config = this.config;
    // nodemailer's factory makes the Transporter instance; the rule cannot see through a factory.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
    return createTransport({
      host: config.host,
      port: config.port,
      secure: config.port === 465,
      requireTLS: config.port === 587,
      auth: config.username ? { user: config.username, pass: config.password ?? '' } : undefined,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 20_000,
    });
  }

  async send(alert: Alert): Promise<string> {
    if (this.lifetime.signal.aborted) throw new SendError('the SMTP sender was closed', false);
    const from = this.config.fromName ? { name: this.config.fromName, address: this.config.from } : this.config.from;
    const transport = await this.smtpTransport();
    try {
      const info = (await transport.sendMail({ ...mailOptions(alert, '', this.config.to), from })) as { messageId?: string };
      return info.messageId ?? '(no id)';
    } catch (error) {
      throw explainSmtpError(error, this.config);
    }
  }

  close(): void {
    this.lifetime.abort();
  }
}
