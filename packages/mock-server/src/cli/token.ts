/** `gha-cache-mock token`: prints a runtime token signed with a data dir's (or the given) secret. */
import type { Command } from 'commander';
import { createTokenAuthority } from '../auth/tokens.js';
import { collectScope, parseDuration, secretsFor } from './options.js';

export function tokenCommand(program: Command): void {
  program
    .command('token')
    .description("print a runtime token signed with the server's secret")
    .option('--scope <ref:perm>', 'scope, repeatable, in order (default refs/heads/main:rw)', collectScope)
    .option('--ttl <duration>', 'lifetime', parseDuration, 6 * 3_600_000)
    .option('--repository-id <id>', 'repository_id claim', '1')
    .option('--data-dir <dir>', 'data dir whose secret signs the token')
    .option('--token-secret <secret>', 'HS256 secret (overrides the data dir)')
    .action(async (opts) => {
      const { tokenSecret } = await secretsFor(opts);
      const tokens = createTokenAuthority({ secret: tokenSecret! });
      process.stdout.write(
        `${tokens.mint({ ...(opts.scope ? { scopes: opts.scope } : {}), ttlMs: opts.ttl, repositoryId: opts.repositoryId })}\n`,
      );
    });
}
