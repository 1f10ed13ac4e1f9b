import type { Writable } from 'node:stream';
import { type CacheClient, createCacheClient } from '../cache-client.js';
import { GhaCacheError, ValidationError } from '../errors.js';
import { type CacheClientOptions, fromEnv } from '../options.js';
import { createRestCacheClient, DEFAULT_API_URL, type RestCacheClient } from '../rest/cache-api.js';
import type { TwirpEncoding } from '../twirp/transport.js';
import { createProgressReporter, type ProgressReporter } from './progress.js';
import { createTraceWriter, type TraceWriter } from './trace.js';

export interface CliIo {
  stdin: NodeJS.ReadableStream & AsyncIterable<Uint8Array>;
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
}

/** Options every command accepts. */
export interface GlobalOptions {
  url?: string;
  token?: string;
  /** `list`/`delete`: `owner/repo`. */
  repo?: string;
  /** `list`/`delete`: REST API base URL. */
  apiUrl?: string;
  json?: boolean;
  trace?: string;
  encoding?: TwirpEncoding;
  timeout?: number;
  concurrency?: number;
  blockSize?: number;
  rangeSize?: number;
  splitBelow?: number;
  attempts?: number;
  maxRetryWait?: number;
  quiet?: boolean;
  progress?: boolean;
}

export class CommandContext {
  readonly #env: Record<string, string | undefined>;
  readonly io: CliIo;
  readonly opts: GlobalOptions;
  readonly signal: AbortSignal;
  readonly command: string;
  #client: CacheClient | undefined;
  #rest: RestCacheClient | undefined;
  #trace: TraceWriter | undefined;
  #progress: ProgressReporter | undefined;
  /** Set when a command writes data to stdout (`get -`), so results go to stderr. */
  stdoutIsData = false;

  constructor(
    command: string,
    env: Record<string, string | undefined>,
    io: CliIo,
    opts: GlobalOptions,
    signal: AbortSignal,
  ) {
    this.command = command;
    this.#env = env;
    this.io = io;
    this.opts = opts;
    this.signal = signal;
  }

  /** The client, built from flags over environment (`--url` > `ACTIONS_RESULTS_URL`, …). */
  client(): CacheClient {
    if (this.#client) return this.#client;
    const env = fromEnv(this.#env);
    const baseUrl = this.opts.url ?? env.baseUrl;
    const token = this.opts.token ?? env.token;
    if (!baseUrl) throw new ValidationError('No cache service URL: pass --url or set ACTIONS_RESULTS_URL');
    if (!token) throw new ValidationError('No runtime token: pass --token or set ACTIONS_RUNTIME_TOKEN');
    if (this.opts.trace) this.#trace = createTraceWriter(this.opts.trace);
    const showProgress = this.opts.progress !== false && !this.opts.quiet;
    if (showProgress) this.#progress = createProgressReporter(this.io.stderr);
    const options: CacheClientOptions = {
      baseUrl,
      token,
      signal: this.signal,
      ...(env.cacheMode ? { cacheMode: env.cacheMode } : {}),
      ...(env.workingDirectory ? { workingDirectory: env.workingDirectory } : {}),
      ...(env.tempDirectory ? { tempDirectory: env.tempDirectory } : {}),
      ...(this.opts.encoding ? { encoding: this.opts.encoding } : {}),
      ...(this.opts.timeout ? { timeoutMs: this.opts.timeout } : {}),
      ...(this.opts.concurrency
        ? { uploadConcurrency: this.opts.concurrency, downloadConcurrency: this.opts.concurrency }
        : {}),
      ...(this.opts.blockSize ? { blockSizeBytes: this.opts.blockSize } : {}),
      ...(this.opts.rangeSize ? { downloadRangeBytes: this.opts.rangeSize } : {}),
      ...(this.opts.splitBelow !== undefined
        ? { downloadSplitBelowBytesPerSecond: this.opts.splitBelow }
        : {}),
      retry: {
        ...(this.opts.attempts ? { maxAttempts: this.opts.attempts } : {}),
        ...(this.opts.maxRetryWait !== undefined ? { maxRetryAfterMs: this.opts.maxRetryWait * 1000 } : {}),
      },
      ...(this.#trace ? { onExchange: this.#trace.write } : {}),
      ...(this.#progress ? { onProgress: this.#progress.update } : {}),
      logger: { warn: (m) => this.info(`warning: ${m}`) },
    };
    this.#client = createCacheClient(options);
    return this.#client;
  }

  /**
   * The REST cache-management client: `--repo` > `GITHUB_REPOSITORY`, `--api-url` > `GITHUB_API_URL` >
   * api.github.com, `--token` > `GITHUB_TOKEN` > `ACTIONS_RUNTIME_TOKEN`.
   */
  restClient(): RestCacheClient {
    if (this.#rest) return this.#rest;
    const repository = this.opts.repo ?? this.#env.GITHUB_REPOSITORY;
    const token = this.opts.token ?? (this.#env.GITHUB_TOKEN || this.#env.ACTIONS_RUNTIME_TOKEN);
    if (!repository)
      throw new ValidationError('No repository: pass --repo owner/name or set GITHUB_REPOSITORY');
    if (!token) throw new ValidationError('No token: pass --token or set GITHUB_TOKEN');
    if (this.opts.trace) this.#trace = createTraceWriter(this.opts.trace);
    this.#rest = createRestCacheClient({
      repository,
      token,
      apiUrl: this.opts.apiUrl ?? (this.#env.GITHUB_API_URL || DEFAULT_API_URL),
      signal: this.signal,
      ...(this.opts.timeout ? { timeoutMs: this.opts.timeout } : {}),
      retry: {
        ...(this.opts.attempts ? { maxAttempts: this.opts.attempts } : {}),
        ...(this.opts.maxRetryWait !== undefined ? { maxRetryAfterMs: this.opts.maxRetryWait * 1000 } : {}),
      },
      ...(this.#trace ? { onExchange: this.#trace.write } : {}),
    });
    return this.#rest;
  }

  /** A human line on stderr (suppressed by --quiet). */
  info(message: string): void {
    if (!this.opts.quiet) this.io.stderr.write(`${message}\n`);
  }

  /** The command's result: JSON (`--json`) or one human line. */
  result(data: Record<string, unknown>, human: string): void {
    this.#progress?.done();
    this.#progress = undefined;
    const out = this.stdoutIsData ? this.io.stderr : this.io.stdout;
    if (this.opts.json) out.write(`${JSON.stringify({ command: this.command, ...data })}\n`);
    else out.write(`${human}\n`);
  }

  /** Reports an error: a human line on stderr, plus a JSON object with `--json`. */
  error(err: unknown): void {
    this.#progress?.done();
    this.#progress = undefined;
    const message = err instanceof Error ? err.message : String(err);
    this.io.stderr.write(`gha-cache ${this.command}: ${message}\n`);
    if (this.opts.json) {
      const out = this.stdoutIsData ? this.io.stderr : this.io.stdout;
      out.write(`${JSON.stringify({ command: this.command, error: describeError(err) })}\n`);
    }
  }

  async close(): Promise<void> {
    this.#progress?.done();
    await this.#client?.close().catch(() => undefined);
    await this.#rest?.close().catch(() => undefined);
    await this.#trace?.close().catch(() => undefined);
  }
}

/** The wire facts of an error, for `--json`. */
export function describeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { code: 'ERR_INTERNAL', message: String(err) };
  const out: Record<string, unknown> = {
    code: err instanceof GhaCacheError ? err.code : 'ERR_INTERNAL',
    name: err.name,
    message: err.message,
  };
  for (const k of [
    'twirpCode',
    'httpStatus',
    'azureCode',
    'msg',
    'retryAfterMs',
    'errno',
    'serviceMessage',
    'documentationUrl',
  ]) {
    const v = (err as unknown as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  const resetAt = (err as { resetAt?: unknown }).resetAt;
  if (resetAt instanceof Date) out.resetAt = resetAt.toISOString();
  return out;
}
