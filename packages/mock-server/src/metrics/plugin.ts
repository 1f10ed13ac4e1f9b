import type { FastifyPluginAsync } from 'fastify';
import type { MockMetrics } from './metrics.js';

export interface MetricsPluginOptions {
  readonly metrics: MockMetrics;
}

/** `GET /metrics`: the Prometheus text format. */
export const metricsPlugin: FastifyPluginAsync<MetricsPluginOptions> = async (app, { metrics }) => {
  app.get('/metrics', async (_request, reply) => {
    const { contentType, text } = await metrics.scrape();
    return reply.type(contentType).header('cache-control', 'no-store').send(text);
  });
};
