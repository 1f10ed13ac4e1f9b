export { type BlobPluginOptions, blobPlugin, sendAzureError } from '../plugins/blob.js';
export { validateBlockId } from './block-id.js';
export { parseBlockListXml } from './block-list-xml.js';
export { parseRange, pickRangeHeader, type RangeRequest } from './ranges.js';
export {
  createSasSigner,
  formatSasDate,
  parseSasDate,
  SAS_VERSION,
  type SasSigner,
  type SasSignerOptions,
  type SasVerifyInput,
  type VerifiedSas,
} from './sas.js';
