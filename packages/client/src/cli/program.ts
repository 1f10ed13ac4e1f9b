import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { CLIENT_VERSION } from '../options.js';
import { type CliIo, CommandContext, type GlobalOptions } from './context.js';
import { deleteCommand } from './delete.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { parseSize } from './format.js';
import { getCommand } from './get.js';
import { listCommand } from './list.js';
import { lookupCommand } from './lookup.js';
import { putCommand } from './put.js';
import { restoreCommand } from './restore.js';
import { saveCommand } from './save.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function nonNegative(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0');
  return n;
}

function size(value: string): number {
  try {
    return parseSize(value);
  } catch {
    throw new InvalidArgumentError('expected a size such as 64M, 1G or 1048576');
  }
}

/**
 * The key of `put`, `get` and `lookup` and the arguments after it: the key is the first argument or
 * `--key K`. With `--key`, the arguments are the rest; a first argument equal to `--key` is the same key
 * given twice, which is allowed, a different one is an error, and so is no key at all.
 */
function keyAndArgs(cmd: Command, args: readonly (string | undefined)[], names: readonly string[]): string[] {
  const given = args.filter((a): a is string => a !== undefined);
  const option = (cmd.opts() as { key?: string }).key;
  let key: string | undefined;
  let rest: string[];
  if (option === undefined) [key, ...rest] = given;
  else if (given.length > names.length) {
    if (given[0] !== option) {
      cmd.error(`error: the key is given twice, differently: '${given[0]}' and --key '${option}'`);
    }
    [key, rest] = [option, given.slice(1)];
  } else [key, rest] = [option, given];
  if (key === undefined) cmd.error('error: missing the key: give it as the first argument or as --key <key>');
  if (rest.length < names.length) cmd.error(`error: missing required argument '${names[rest.length]}'`);
  return [key, ...rest];
}

const EXIT_HELP = `
Exit codes:
  0  hit / saved / already exists / restore miss without --fail-on-miss / listed / deleted
  1  cache miss (get, lookup, restore --fail-on-miss); delete found nothing
  2  usage error (bad arguments, invalid key or paths, no URL or token)
  3  service error (Twirp, blob store, network, tar; read/write denied)
  4  rate limited (429 beyond --max-retry-wait or after all attempts)
  130 interrupted

Environment: ACTIONS_RESULTS_URL, ACTIONS_RUNTIME_TOKEN (overridden by --url/--token),
ACTIONS_CACHE_MODE (none|read|write|write-only), GITHUB_WORKSPACE (archive root), RUNNER_TEMP.
list/delete (GitHub REST API): GITHUB_REPOSITORY, GITHUB_API_URL, GITHUB_TOKEN (else ACTIONS_RUNTIME_TOKEN),
overridden by --repo/--api-url/--token.`;

/** Runs the CLI; returns the exit code. `env` and `argv` are passed in by `main.ts`. */
export async function runCli(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  io: CliIo,
  signal: AbortSignal,
): Promise<number> {
  let code: number = EXIT.OK;
  const program = new Command('gha-cache')
    .description('Fast, resumable client for the GitHub Actions cache (service API v2)')
    .version(CLIENT_VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXIT_HELP);

  /** Options every command that talks HTTP shares: output, tracing, timeouts and retries. */
  const withHttpOptions = (cmd: Command) =>
    cmd
      .option('--json', 'print the result as one JSON object')
      .option('--trace <file>', 'write one NDJSON line per HTTP exchange to <file>')
      .option('--timeout <ms>', 'idle timeout per attempt (default 60000)', positiveInt)
      .option('--attempts <n>', 'attempts per HTTP request (default 5)', positiveInt)
      .option(
        '--max-retry-wait <seconds>',
        'longest Retry-After of a 429 to wait out (default 60)',
        nonNegative,
      );

  const withGlobals = (cmd: Command) =>
    withHttpOptions(
      cmd
        .option('--url <url>', 'cache service URL (default: $ACTIONS_RESULTS_URL)')
        .option('--token <token>', 'runtime token (default: $ACTIONS_RUNTIME_TOKEN)'),
    )
      .addOption(
        new Option('--encoding <encoding>', 'Twirp encoding').choices(['json', 'protobuf']).default('json'),
      )
      .option(
        '--concurrency <n>',
        'parallel block uploads / ranged downloads (default 16 uploads, 8 downloads)',
        positiveInt,
      )
      .option('--block-size <size>', 'upload block size (default 64M)', size)
      .option('--range-size <size>', 'download range size (default 16M)', size)
      .option(
        '--split-below <size>',
        'a download to a file starts as one GET and splits into ranges while it runs below <size> per second (default 100M; 0 = ranges from the start)',
        size,
      )
      .option('-q, --quiet', 'no progress or messages on stderr')
      .option('--no-progress', 'no progress output');

  /** Options of the REST commands (`list`, `delete`). */
  const withRestGlobals = (cmd: Command) =>
    withHttpOptions(
      cmd
        .option('--repo <owner/name>', 'repository (default: $GITHUB_REPOSITORY)')
        .option('--api-url <url>', 'GitHub REST API URL (default: $GITHUB_API_URL or https://api.github.com)')
        .option('--token <token>', 'API token (default: $GITHUB_TOKEN, else $ACTIONS_RUNTIME_TOKEN)'),
    ).option('-q, --quiet', 'no messages on stderr');

  const run =
    <A extends unknown[]>(name: string, fn: (ctx: CommandContext, ...args: A) => Promise<number>) =>
    async (...args: unknown[]) => {
      const cmd = args.at(-1) as Command;
      const opts = cmd.opts() as GlobalOptions;
      const ctx = new CommandContext(name, env, io, opts, signal);
      try {
        code = await fn(ctx, ...(args.slice(0, -1) as A));
      } catch (err) {
        ctx.error(err);
        code = exitCodeFor(signal.aborted ? signal.reason : err);
        if (signal.aborted) code = EXIT.INTERRUPTED;
      } finally {
        await ctx.close();
      }
    };

  withGlobals(
    program
      .command('save')
      .description('archive paths like actions/cache and save them under a key')
      .requiredOption('-p, --path <path>', 'path or glob pattern to cache (repeatable)', collect)
      .requiredOption('-k, --key <key>', 'cache key')
      .option('--enable-cross-os-archive', 'do not mark archives made on Windows as Windows-only'),
  ).action(run('save', (ctx, o: Parameters<typeof saveCommand>[1]) => saveCommand(ctx, o)));

  withGlobals(
    program
      .command('restore')
      .description('restore paths saved by save or by actions/cache')
      .requiredOption('-p, --path <path>', 'path or glob pattern (as when saving; repeatable)', collect)
      .requiredOption('-k, --key <key>', 'primary key')
      .option('-r, --restore-key <key>', 'fallback key prefix, tried in order (repeatable)', collect)
      .option('--lookup-only', 'check for an entry without downloading it')
      .option('--fail-on-miss', 'exit 1 when no entry matches')
      .option('--enable-cross-os-archive', 'restore archives made on another OS'),
  ).action(run('restore', (ctx, o: Parameters<typeof restoreCommand>[1]) => restoreCommand(ctx, o)));

  withGlobals(
    program
      .command('put')
      .description('store a raw blob (a file, or - for stdin) under a key')
      .usage('[options] <key> <file> | --key <key> <file>')
      .argument('[key]', 'cache key (or --key)')
      .argument('[file]', 'file to upload, or - for stdin')
      .option('-k, --key <key>', 'cache key, instead of the first argument')
      .option('--version <version>', 'entry version (default: the gha-cache raw-blob version)'),
  ).action(
    (a: string | undefined, b: string | undefined, o: Parameters<typeof putCommand>[3], cmd: Command) => {
      const [key, file] = keyAndArgs(cmd, [a, b], ['file']) as [string, string];
      return run('put', (ctx) => putCommand(ctx, key, file, o))(cmd);
    },
  );

  withGlobals(
    program
      .command('get')
      .description('fetch a raw blob into a file, or - for stdout')
      .usage('[options] <key> <file> | --key <key> <file>')
      .argument('[key]', 'cache key (or --key)')
      .argument('[file]', 'destination file, or - for stdout')
      .option('-k, --key <key>', 'cache key, instead of the first argument')
      .option('-r, --restore-key <key>', 'fallback key prefix (repeatable)', collect)
      .option('--version <version>', 'entry version (default: the gha-cache raw-blob version)'),
  ).action(
    (a: string | undefined, b: string | undefined, o: Parameters<typeof getCommand>[3], cmd: Command) => {
      const [key, file] = keyAndArgs(cmd, [a, b], ['file']) as [string, string];
      return run('get', (ctx) => getCommand(ctx, key, file, o))(cmd);
    },
  );

  withGlobals(
    program
      .command('lookup')
      .description('look an entry up without downloading it; prints the matched key')
      .usage('[options] <key> | --key <key>')
      .argument('[key]', 'cache key (or --key)')
      .option('-k, --key <key>', 'cache key, instead of the argument')
      .option('-r, --restore-key <key>', 'fallback key prefix (repeatable)', collect)
      .option('--version <version>', 'entry version')
      .option('-p, --path <path>', 'archive paths: look up the entry save would make (repeatable)', collect)
      .option('--enable-cross-os-archive', 'as for save/restore'),
  ).action((a: string | undefined, o: Parameters<typeof lookupCommand>[2], cmd: Command) => {
    const [key] = keyAndArgs(cmd, [a], []) as [string];
    return run('lookup', (ctx) => lookupCommand(ctx, key, o))(cmd);
  });

  withRestGlobals(
    program
      .command('list')
      .description("list the repository's caches (GitHub REST API)")
      .option('-k, --key <prefix>', 'only caches whose key starts with this')
      .option('--ref <ref>', 'only caches of this ref, e.g. refs/heads/main or refs/pull/7/merge')
      .addOption(
        new Option('--sort <field>', 'sort by')
          .choices(['last_accessed_at', 'created_at', 'size_in_bytes'])
          .default('last_accessed_at'),
      )
      .addOption(new Option('--direction <dir>', 'sort direction').choices(['desc', 'asc']).default('desc'))
      .option('-L, --limit <n>', 'at most n caches (default: all)', positiveInt),
  ).action(run('list', (ctx, o: Parameters<typeof listCommand>[1]) => listCommand(ctx, o)));

  withRestGlobals(
    program
      .command('delete')
      .description('delete one cache by id, or every cache with a key (GitHub REST API)')
      .argument('[id]', 'cache id, as `list` shows it')
      .option('-k, --key <key>', 'delete every cache with exactly this key')
      .option('--ref <ref>', 'with --key: only the cache of this ref'),
  ).action(
    run('delete', (ctx, id: string | undefined, o: Parameters<typeof deleteCommand>[2]) =>
      deleteCommand(ctx, id, o),
    ),
  );

  // commander's own --version would shadow the put/get --version option; keep it on the root only.
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0
        ? EXIT.OK
        : EXIT.USAGE;
    }
    throw err;
  }
  return code;
}
