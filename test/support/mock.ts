import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type MockServer, type MockServerOptions, startMockServer } from '@gha-cache/mock-server';

/** One structured request-log line of the mock. */
export interface LogLine {
  msg: string;
  method?: string;
  url?: string;
  op?: string;
  key?: string;
  match?: string;
  encoding?: string;
  status?: number;
  bytes?: number;
  [k: string]: unknown;
}

export interface TestMock extends MockServer {
  dataDir: string;
  /** Request-log lines so far (msg === 'request'). */
  requests(): LogLine[];
  /**
   * The request-log lines once there are at least `count`: a line is written after its response is sent,
   * so a client can hold the last response before the mock has logged it.
   */
  waitForRequests(count: number, timeoutMs?: number): Promise<LogLine[]>;
  /** Closes the server and removes its data dir. */
  dispose(): Promise<void>;
}

/** Starts the mock on port 0 with the default fs storage in a fresh temp dir, capturing its request log. */
export async function startTestMock(options: MockServerOptions = {}): Promise<TestMock> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'gha-mock-')));
  const lines: LogLine[] = [];
  const requests = () => lines.filter((l) => l.msg === 'request');
  let onLine = () => {};
  const mock = await startMockServer({
    dataDir,
    ...options,
    logger: {
      level: 'info',
      stream: {
        write: (line: string) => {
          lines.push(JSON.parse(line) as LogLine);
          onLine();
        },
      },
    },
  });
  return Object.assign(mock, {
    dataDir,
    requests,
    waitForRequests: (count: number, timeoutMs = 30_000) =>
      new Promise<LogLine[]>((resolve, reject) => {
        const timer = setTimeout(() => {
          onLine = () => {};
          reject(
            new Error(`${requests().length} request-log lines after ${timeoutMs} ms, expected ${count}`),
          );
        }, timeoutMs);
        onLine = () => {
          if (requests().length < count) return;
          clearTimeout(timer);
          onLine = () => {};
          resolve(requests());
        };
        onLine();
      }),
    dispose: async () => {
      await mock.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  });
}
