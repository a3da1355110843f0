// The one way the page talks to the server: every data request carries the bearer token (if
// one is set) in the Authorization header, never in a URL, and every failure becomes an
// ApiProblem built from the server's RFC 9457 problem body.

const TOKEN_KEY = "mamamia.token";

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage off (private mode): the token lives for this page only */
  }
  memoryToken = token;
}

let memoryToken = getToken();

export class ApiProblem extends Error {
  constructor({ status = 0, title = "Error", detail = "", type = "", rule = null, errors = null }) {
    super(`${status ? status + " " : ""}${title}${detail ? ": " + detail : ""}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.type = type;
    this.rule = rule;
    this.errors = errors;
  }
}

function reasonPhrase(status) {
  const known = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    409: "Conflict", 413: "Content Too Large", 422: "Unprocessable Content",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
  };
  return known[status] || "HTTP error";
}

async function problemOf(response) {
  const type = response.headers.get("Content-Type") || "";
  let body = null;
  let text = "";
  try {
    text = await response.text();
    if (type.includes("json")) body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (body && typeof body === "object" && !Array.isArray(body)) {
    let detail = typeof body.detail === "string" ? body.detail : "";
    if (!detail && Array.isArray(body.detail)) detail = body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    if (Array.isArray(body.errors) && body.errors.length) {
      const each = body.errors.map((e) => {
        const where = Array.isArray(e.loc) ? e.loc.join(".") : e.loc || e.location || "";
        return `${where ? where + ": " : ""}${e.msg || e.message || JSON.stringify(e)}`;
      });
      detail = detail ? `${detail} (${each.join("; ")})` : each.join("; ");
    }
    return new ApiProblem({
      status: body.status || response.status,
      title: body.title || response.statusText || reasonPhrase(response.status),
      detail,
      type: body.type || "",
      rule: body.rule || null,
      errors: body.errors || null,
    });
  }
  return new ApiProblem({
    status: response.status,
    title: response.statusText || reasonPhrase(response.status),
    detail: text.slice(0, 300),
  });
}

// Resolve a /v1 path against the page's own location, so a server behind a path prefix works.
export function apiUrl(path, query) {
  const url = new URL(path.replace(/^\//, ""), document.baseURI);
  if (query) {
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined || value === null || value === "") continue;
      url.searchParams.set(key, String(value));
    }
  }
  return url.toString();
}

export async function request(path, { method = "GET", query, json, accept, signal } = {}) {
  const headers = {};
  if (memoryToken) headers["Authorization"] = `Bearer ${memoryToken}`;
  if (accept) headers["Accept"] = accept;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(apiUrl(path, query), { method, headers, body, signal, cache: "no-store" });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiProblem({ status: 0, title: "Network error", detail: `the server did not answer (${error && error.message ? error.message : error})` });
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

export async function getJSON(path, options = {}) {
  const response = await request(path, { ...options, accept: "application/json" });
  return response.json();
}

export async function postJSON(path, json, options = {}) {
  const response = await request(path, { ...options, method: "POST", json, accept: "application/json" });
  return response.json();
}

export async function getBlob(path, options = {}) {
  const response = await request(path, options);
  return { blob: await response.blob(), headers: response.headers };
}

// Save bytes through a temporary blob: URL (the token never appears in a link).
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.style.display = "none";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

// A short hash of a query (FNV-1a, 32 bits): each cohort's downloads get their own name.
export function shortHash(value) {
  let h = 0x811c9dc5;
  for (const ch of JSON.stringify(value ?? {})) {
    h ^= ch.codePointAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

// SQL string literal for a value-set chip ('it''s').
export function sqlLiteral(value) {
  return `'${String(value).replace(/'/g, "''")}'`;
}
