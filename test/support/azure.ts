import { AZURITE_ACCOUNT, AZURITE_KEY, type Azurite } from '../client/support/azurite.js';

/** The connection string of a running Azurite, as `--azure-connection-string` takes it. */
export function azuriteConnectionString(azurite: Azurite): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${azurite.accountUrl};`;
}
