import type { AzureError } from '../errors.js';

const XML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!);
}

/** Azure's `Time:` stamp: ISO 8601 with seven fractional digits, e.g. `2026-11-26T12:00:01.0000000Z`. */
export function azureTimestamp(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 23)}0000Z`;
}

/**
 * The Azure Storage error body (docs/protocol.md §5.7):
 * `<?xml …?><Error><Code>…</Code><Message>…\nRequestId:…\nTime:…</Message>[details]</Error>`.
 */
export function renderAzureErrorXml(error: AzureError, requestId: string, now: number): string {
  const message = `${error.message}\nRequestId:${requestId}\nTime:${azureTimestamp(now)}`;
  const details = Object.entries(error.details)
    .filter(([name]) => /^[A-Za-z][A-Za-z0-9]*$/.test(name))
    .map(([name, value]) => `<${name}>${escapeXml(value)}</${name}>`)
    .join('');
  return (
    '<?xml version="1.0" encoding="utf-8"?>' +
    `<Error><Code>${escapeXml(error.code)}</Code><Message>${escapeXml(message)}</Message>${details}</Error>`
  );
}
