// GraphQL over HTTP and the shopper's identity: a bearer token when signed in, a guest session
// id otherwise. Both are kept in localStorage so a reload keeps the cart and the sign-in.

const TOKEN_KEY = "rushcart.token";
const SESSION_KEY = "rushcart.sessionId";
const EMAIL_KEY = "rushcart.email";

export const GRAPHQL_PATH = "/graphql";

function read(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage disabled: the page still works for this visit
  }
}

function write(key, value) {
  try {
    if (value == null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* storage disabled */
  }
}

export const identity = {
  get token() { return read(TOKEN_KEY); },
  set token(value) { write(TOKEN_KEY, value); },
  get sessionId() { return read(SESSION_KEY); },
  set sessionId(value) { write(SESSION_KEY, value); },
  get email() { return read(EMAIL_KEY); },
  set email(value) { write(EMAIL_KEY, value); },
  get signedIn() { return Boolean(read(TOKEN_KEY)); },
};

// A request that did not produce data: the network failed, the server answered with an HTTP
// error, or GraphQL put errors at the top level (malformed request or a bug on the server).
export class ApiError extends Error {
  constructor(message, { status = 0, errors = [] } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.errors = errors;
  }
}

// `as: "guest"` leaves the bearer token out: a place in a drop's line taken as a guest stays the
// guest session's after signing in, and is read back as that session's.
export function authHeaders({ as = "shopper" } = {}) {
  const headers = {};
  const token = identity.token;
  const sid = identity.sessionId;
  if (token && as !== "guest") headers.Authorization = `Bearer ${token}`;
  if (sid) headers["X-Session-Id"] = sid;
  return headers;
}

// POST JSON with the caller's identity; answers the response and its JSON body (null if none).
async function postJson(path, payload, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...authHeaders(options) },
      body: JSON.stringify(payload),
    });
  } catch {
    throw new ApiError("Can't reach the shop right now. Check your connection and try again.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON: each caller says what that means */
  }
  return { response, body };
}

export async function graphql(query, variables = {}, options = {}) {
  const { response, body } = await postJson(GRAPHQL_PATH, { query, variables }, options);
  if (body && Array.isArray(body.errors) && body.errors.length) {
    throw new ApiError(body.errors.map((e) => e.message).join("; "), {
      status: response.status,
      errors: body.errors,
    });
  }
  if (!response.ok || !body || !body.data) {
    throw new ApiError(`The shop answered with an error (HTTP ${response.status}). Please try again.`, {
      status: response.status,
    });
  }
  return body.data;
}

// The dev-only payment stand-in: POST /dev/pay {"orderId", "outcome": "succeeded" | "failed"} -> 202.
export async function devPay(orderId, outcome) {
  const { response, body } = await postJson("/dev/pay", { orderId, outcome });
  const detail = body && (body.error || body.detail);
  // Without the route (production), the static site answers 404/405 with no JSON error.
  if ((response.status === 404 || response.status === 405) && !detail) {
    throw new ApiError("Test payments are not available on this server (development mode only).", {
      status: response.status,
    });
  }
  if (!response.ok) {
    throw new ApiError(detail ? `Payment was not sent: ${detail}` : `Payment was not sent (HTTP ${response.status}).`, {
      status: response.status,
    });
  }
  return body;
}
