export { recognizeClient, UI_HEADER, UI_HEADER_VALUE } from './clients.js';
export { type ExplainContext, type ExplainStore, explainMiss, type MissQuery } from './explain.js';
export {
  DEFAULT_JOURNAL_CAPACITY,
  type JournalOptions,
  matchesFilter,
  type NewTrafficEvent,
  openJournal,
  parseTrafficFilter,
  type TrafficJournal,
  type TrafficListener,
} from './journal.js';
export { type JournalPluginOptions, journalPlugin } from './plugin.js';
export {
  createRemovalLedger,
  noteRemovals,
  type Removal,
  type RemovalCause,
  type RemovalLedger,
  type RemovedEntry,
} from './removals.js';
export { type TrafficRoutesOptions, trafficRoutes } from './routes.js';
export * from './types.js';
