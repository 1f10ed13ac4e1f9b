/**
 * `--log-format pretty`: turns the JSON lines the logger writes into one aligned line per request for a
 * person — time, client, operation, key (shortened in the middle, never dropped), outcome and its
 * reason, size, duration — and a plain line for everything else. Colours only when asked.
 */

export interface PrettyOptions {
  /** ANSI colours. */
  readonly color: boolean;
  /** Widest key shown before it is shortened in the middle. Default 56. */
  readonly keyWidth?: number;
}

/** Something the logger can write JSON lines to. */
export interface LineSink {
  write(line: string): void;
}

const ANSI = {
  reset: '\x1b[0m',
  dim: '\x1b[2m',
  red: '\x1b[31m',
  green: '\x1b[32m',
  yellow: '\x1b[33m',
  blue: '\x1b[34m',
  magenta: '\x1b[35m',
  cyan: '\x1b[36m',
} as const;

type Colour = keyof typeof ANSI;

/** `abcdef…uvwxyz`: keeps both ends (the prefix says what it is, the end which one). */
export function shortenMiddle(text: string, width: number): string {
  if (text.length <= width) return text;
  const keep = width - 1;
  const head = Math.ceil(keep / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (keep - head))}`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function outcomeColour(outcome: string): Colour {
  if (outcome.startsWith('hit') || outcome === 'created' || outcome === 'committed' || outcome === 'ok')
    return 'green';
  if (outcome === 'miss' || outcome === 'conflict' || outcome === 'not-found') return 'yellow';
  if (outcome === 'fault') return 'magenta';
  return 'red';
}

const LEVELS: Readonly<Record<number, [string, Colour]>> = {
  10: ['TRACE', 'dim'],
  20: ['DEBUG', 'dim'],
  30: ['INFO', 'blue'],
  40: ['WARN', 'yellow'],
  50: ['ERROR', 'red'],
  60: ['FATAL', 'red'],
};

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const padStart = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

function clock(time: unknown): string {
  const d = typeof time === 'number' ? new Date(time) : new Date();
  return d.toISOString().slice(11, 23);
}

/** One pretty line (with its newline) for one JSON log line; non-JSON input is passed through. */
export function formatLogLine(line: string, options: PrettyOptions): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const paint = (c: Colour, s: string) => (options.color ? `${ANSI[c]}${s}${ANSI.reset}` : s);
  const time = paint('dim', clock(rec.time));
  if (rec.msg === 'request') {
    const keyWidth = options.keyWidth ?? 56;
    const outcome = typeof rec.outcome === 'string' ? rec.outcome : String(rec.status ?? '');
    const key = typeof rec.key === 'string' ? shortenMiddle(rec.key, keyWidth) : '-';
    const size = typeof rec.bytes === 'number' ? formatBytes(rec.bytes) : '';
    const ms = typeof rec.ms === 'number' ? `${rec.ms.toFixed(1)} ms` : '';
    const status = typeof rec.status === 'number' ? String(rec.status) : '';
    const reason =
      typeof rec.reason === 'string' ? paint(outcome === 'miss' ? 'yellow' : 'dim', `  ${rec.reason}`) : '';
    return (
      [
        time,
        paint('cyan', pad(typeof rec.client === 'string' ? rec.client : '-', 13)),
        pad(typeof rec.op === 'string' ? rec.op : `${rec.method ?? ''}`, 26),
        pad(key, keyWidth),
        paint(outcomeColour(outcome), pad(outcome, 12)),
        padStart(status, 3),
        padStart(size, 9),
        padStart(ms, 10),
      ].join(' ') + `${reason}\n`
    );
  }
  const [label, colour] = LEVELS[rec.level as number] ?? ['LOG', 'dim'];
  const { level: _l, time: _t, pid: _p, hostname: _h, msg, reqId: _r, ...rest } = rec;
  const extra = Object.keys(rest).length > 0 ? ` ${paint('dim', JSON.stringify(rest))}` : '';
  return `${time} ${paint(colour, pad(label, 5))} ${typeof msg === 'string' ? msg : ''}${extra}\n`;
}

/** A sink for the logger's `stream` option that writes pretty lines to `out`. */
export function createPrettySink(out: LineSink, options: PrettyOptions): LineSink {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line !== '') out.write(formatLogLine(line, options));
    },
  };
}
