/**
 * Read-only views over the traffic and the store: `GET /_admin/summary` (JSON, for the UI),
 * `GET /_admin/report` (Markdown, for `$GITHUB_STEP_SUMMARY`) and `GET /_admin/buildkit` (BuildKit's
 * cache indexes decoded). Register with `prefix: '/_admin'`.
 */
import type { FastifyPluginAsync } from 'fastify';
import { type BuildkitStore, inspectBuildkit } from '../buildkit/inspect.js';
import type { TrafficJournal } from '../journal/journal.js';
import type { RemovalLedger } from '../journal/removals.js';
import { queryOf } from '../plugins/query.js';
import type { RepositoryUsage } from '../storage/types.js';
import { renderReport, type StoredUsage } from './markdown.js';
import { summarize } from './summary.js';

export interface InspectorRoutesOptions {
  readonly journal: TrafficJournal;
  readonly removals: RemovalLedger;
  readonly store: BuildkitStore & { listRepositoryUsage(): RepositoryUsage[] | Promise<RepositoryUsage[]> };
  readonly repositoryName: (id: string) => string | undefined;
  readonly repositoryId: (fullName: string) => string | undefined;
}

/** The Markdown report of what the journal and the store hold now. */
export async function buildReport(options: InspectorRoutesOptions): Promise<string> {
  const stored: StoredUsage[] = (await options.store.listRepositoryUsage()).map((u) => ({
    repository: options.repositoryName(u.repositoryId) ?? `id ${u.repositoryId}`,
    count: u.count,
    sizeBytes: u.sizeBytes,
  }));
  return renderReport({
    summary: summarize(options.journal.query()),
    stored,
    removals: options.removals.counts(),
    capacity: options.journal.capacity,
  });
}

export const inspectorRoutes: FastifyPluginAsync<InspectorRoutesOptions> = async (app, options) => {
  app.get('/summary', async () => ({
    ...summarize(options.journal.query()),
    removals: options.removals.counts(),
    capacity: options.journal.capacity,
  }));

  app.get('/report', async (_request, reply) =>
    reply.type('text/markdown; charset=utf-8').send(await buildReport(options)),
  );

  app.get('/buildkit', async (request, reply) => {
    const repository = queryOf(request).get('repository');
    let repositoryId: string | undefined;
    if (repository !== null && repository !== '') {
      repositoryId = options.repositoryId(repository);
      if (repositoryId === undefined) {
        return reply
          .code(404)
          .type('application/json')
          .send(JSON.stringify({ code: 'not_found', msg: `unknown repository "${repository}"` }));
      }
    }
    return inspectBuildkit(options.store, repositoryId);
  });
};
