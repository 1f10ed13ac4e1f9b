/**
 * @gha-cache/client — a client for the GitHub Actions Cache service API v2.
 * The library lands with its own issue; for now the package exports the generated contract.
 */
export * from './gen/results/api/v1/cache_pb.js';
