export { buildProxyApp, type ProxyAppOptions, parseUpstream } from './app.js';
export type { BlobMode } from './context.js';
