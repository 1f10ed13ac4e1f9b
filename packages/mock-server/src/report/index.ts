export { type ReportInput, renderReport, type StoredUsage } from './markdown.js';
export { buildReport, type InspectorRoutesOptions, inspectorRoutes } from './routes.js';
export { type HitCounts, keyPrefixOf, summarize, type TrafficSummary } from './summary.js';
