// The console's HTTP calls: JSON in and out, the CSRF token on every POST.
//
// The session itself is an HttpOnly cookie that the browser sends by itself; the CSRF token
// comes from GET /api/session (and from a sign-in) and is kept only in this module.

let csrf = "";

export class ApiError extends Error {
  constructor(status, code, reason, body = {}) {
    super(reason || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
    this.reason = reason || "";
    this.body = body;
    const error = (body && body.error) || {};
    this.retryAfterMs = error.retry_after_ms ?? (body && body.retry_after_ms) ?? null;
  }
}

/** GET /api/session: {professional, csrf, oidc}; remembers the CSRF token. */
export async function loadSession() {
  const body = await request("GET", "/api/session");
  csrf = body.csrf || "";
  return body;
}

/** A new CSRF token, e.g. from a sign-in answer. */
export function setCsrf(token) {
  if (token) csrf = token;
}

export function get(path) {
  return request("GET", path);
}

/** POST with the CSRF header; a refused token is fetched again and the call retried once. */
export async function post(path, body = {}) {
  try {
    return await request("POST", path, body);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 403 || err.code !== "csrf") throw err;
    await loadSession();
    return request("POST", path, body);
  }
}

async function request(method, path, body = undefined) {
  const headers = { Accept: "application/json" };
  const options = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = csrf;
    options.body = JSON.stringify(body || {});
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(0, "network", "Cannot reach the server. Check the connection and try again.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code, error.reason, data);
  }
  return data;
}
