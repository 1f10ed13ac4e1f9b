/** A deliberately plain Twirp JSON caller for tests: what a client sends, nothing more. */
export const SERVICE = '/twirp/github.actions.results.api.v1.CacheService/';

export async function twirp(
  baseUrl: string,
  token: string,
  method: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(new URL(SERVICE + method, baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) as Record<string, unknown> };
}
