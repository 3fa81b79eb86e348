// The one way the UI talks to the manager: JSON over fetch, with the bearer token once one is needed.

const ROOT = new URL('../', document.baseURI); // the UI lives at <manager>/ui/
const TOKEN_KEY = 'jobbers.apiToken';

/** An answer other than 2xx. `detail` is the API's: a string, or a list of {loc, msg} for a 422. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(status, detail));
    this.status = status;
    this.detail = detail;
  }

  /** The 422 field errors ([{loc, msg, type}]); empty for every other error. */
  get fieldErrors() {
    return Array.isArray(this.detail) ? this.detail : [];
  }
}

function describe(status, detail) {
  if (Array.isArray(detail)) {
    return detail.map((e) => {
      const where = (e.loc || []).filter((part) => part !== 'body').join('.');
      return where ? `${where}: ${e.msg}` : String(e.msg);
    }).join('; ');
  }
  if (typeof detail === 'string' && detail) return detail;
  return status ? `HTTP ${status}` : 'the manager did not answer';
}

let tokenPrompt = null; // set by the app: async (message) => token, or null when the user declines
let pendingPrompt = null;
let declined = false;

/** Register the function that asks the user for a token (it returns null when they decline). */
export function onTokenNeeded(prompt) {
  tokenPrompt = prompt;
}

/** Ask for a token on the next 401 again, after the user declined once. */
export function allowTokenPrompt() {
  declined = false;
}

export function currentToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function askForToken(refused) {
  if (declined || !tokenPrompt) return Promise.resolve(null);
  // Every request that meets a 401 while the dialog is open waits for the same answer.
  pendingPrompt ||= tokenPrompt(refused ? 'That token was refused; check it and try again.' : '')
    .then((token) => {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else declined = true;
      return token;
    })
    .finally(() => { pendingPrompt = null; });
  return pendingPrompt;
}

/** Call the API: `query` values may be arrays (repeated parameters); empty values are left out. */
export async function request(method, path, { query, body } = {}) {
  const url = new URL(path.replace(/^\//, ''), ROOT);
  for (const [name, value] of Object.entries(query || {})) {
    for (const item of [].concat(value)) {
      if (item !== undefined && item !== null && item !== '') url.searchParams.append(name, String(item));
    }
  }
  for (let attempt = 0; ; attempt += 1) {
    const token = currentToken();
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(url, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store',
      });
    } catch (err) {
      throw new ApiError(0, `the manager did not answer (${err.message})`);
    }
    if (response.status === 401 && attempt < 5) {
      if (currentToken() !== token) continue; // another request got a new token meanwhile
      if (await askForToken(Boolean(token))) continue;
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data ? data.detail : null);
    return data;
  }
}

export const get = (path, query) => request('GET', path, { query });
export const post = (path, body) => request('POST', path, { body });
export const put = (path, body) => request('PUT', path, { body });
export const del = (path, query) => request('DELETE', path, { query });

/**
 * Follow a server-sent event stream: calls `onEvent(name, data)` for each event (data parsed as
 * JSON) until the stream ends or `signal` aborts. Returns normally when the server closed the
 * stream; throws an ApiError when it could not be opened. EventSource cannot send the bearer
 * token, so this reads the stream over fetch.
 */
export async function follow(path, onEvent, signal) {
  const token = currentToken();
  const headers = { Accept: 'text/event-stream' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(new URL(path.replace(/^\//, ''), ROOT), { headers, signal, cache: 'no-store' });
  } catch (err) {
    if (signal && signal.aborted) return;
    throw new ApiError(0, `the manager did not answer (${err.message})`);
  }
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new ApiError(response.status, data ? data.detail : null);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) name = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length) onEvent(name, JSON.parse(data.join('\n')));
      }
    }
  } catch (err) {
    if (signal && signal.aborted) return;
    throw new ApiError(0, `the stream broke (${err.message})`);
  }
}
