// Talks to the mock's admin API, same origin only. Every request sends the admin token when one is
// stored; every change sends JSON and the UI's own header; a 401 asks for the token once and retries.
const TOKEN_KEY = 'gha-cache-admin-token';
const UI_HEADER = 'X-Requested-By';
const UI_HEADER_VALUE = 'gha-cache-ui';

let asking;

function headersFor(method, extra = {}) {
  const headers = { [UI_HEADER]: UI_HEADER_VALUE, ...extra };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (method !== 'GET' && method !== 'HEAD') headers['Content-Type'] = 'application/json';
  return headers;
}

/** Shows the token form (once at a time); resolves when a token was stored. */
function askForToken() {
  asking ??= new Promise((resolve) => {
    const dialog = document.getElementById('token-dialog');
    const form = document.getElementById('token-form');
    const input = document.getElementById('token-input');
    input.value = '';
    const done = (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value);
      form.removeEventListener('submit', done);
      dialog.close();
      asking = undefined;
      resolve();
    };
    form.addEventListener('submit', done);
    dialog.showModal();
  });
  return asking;
}

/** `fetch` with the contract above; retries once after asking for the token on a 401. */
export async function request(method, path, body, retried = false) {
  const init = { method, headers: headersFor(method), credentials: 'same-origin' };
  if (method !== 'GET' && method !== 'HEAD') init.body = JSON.stringify(body ?? {});
  const res = await fetch(path, init);
  if (res.status === 401 && !retried) {
    await askForToken();
    return request(method, path, body, true);
  }
  return res;
}

/** GET → parsed JSON; throws with the server's message on an error answer. */
export async function getJson(path) {
  const res = await request('GET', path);
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new Error(json?.msg ?? json?.message ?? `${res.status} ${res.statusText}`);
  return json;
}

export async function send(method, path, body) {
  const res = await request(method, path, body);
  if (!res.ok) {
    const text = await res.text();
    let msg = `${res.status} ${res.statusText}`;
    try {
      msg = JSON.parse(text).msg ?? msg;
    } catch {}
    throw new Error(msg);
  }
  return res;
}

/**
 * Server-Sent Events over `fetch` (EventSource cannot send the admin token): calls `onEvent` with
 * each parsed event, reconnects after `Last-Event-ID`, until `signal` aborts.
 */
export async function stream(path, onEvent, { signal, onState } = {}) {
  let lastId;
  let tokenAsked = false;
  while (!signal?.aborted) {
    try {
      const headers = headersFor('GET', { Accept: 'text/event-stream' });
      if (lastId !== undefined) headers['Last-Event-ID'] = String(lastId);
      const res = await fetch(path, { headers, signal, credentials: 'same-origin' });
      if (res.status === 401 && !tokenAsked) {
        tokenAsked = true;
        await askForToken();
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
      onState?.('live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) lastId = Number(line.slice(4));
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) onEvent(JSON.parse(data));
          end = buffer.indexOf('\n\n');
        }
      }
    } catch (err) {
      if (signal?.aborted) return;
      onState?.(`reconnecting (${err.message})`);
    }
    await new Promise((r) => setTimeout(r, 1500));
  }
}
