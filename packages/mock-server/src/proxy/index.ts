export { buildProxyApp, parseUpstream, type ProxyAppOptions } from './app.js';
export type { BlobMode } from './context.js';
