const SECRET_PARAMS = new Set(['sig', 'signature', 'x-amz-signature', 'token']);

/** Returns `url` with SAS signatures (and similar secrets) in the query replaced by `REDACTED`. */
export function redactUrl(url: string | URL): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return String(url).replace(/([?&](?:sig|signature)=)[^&]*/gi, '$1REDACTED');
  }
  for (const name of [...parsed.searchParams.keys()]) {
    if (SECRET_PARAMS.has(name.toLowerCase())) parsed.searchParams.set(name, 'REDACTED');
  }
  return parsed.toString();
}
