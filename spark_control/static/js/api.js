// One way to call the API: JSON in, JSON out, errors as ApiError with the server's own message.

import { sessionExpired, signIn } from "./session.js";

// Sent on every request the dashboard makes: spark-control refuses a cookie-authenticated change without
// it (security.py, CSRF), and a page on another origin cannot add it without a CORS preflight.
export const DASHBOARD_HEADER = { "X-Spark-Control": "dashboard" };

export class ApiError extends Error {
  constructor(status, message, body = null, headers = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/** The message in any of the API's error shapes: OpenAI's {error: {message}}, FastAPI's {detail}. */
export function errorMessage(body, status) {
  if (body && typeof body === "object") {
    if (body.error && typeof body.error === "object" && body.error.message) return String(body.error.message);
    if (typeof body.error === "string") return body.error;
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((d) => [d.loc?.slice(1).join("."), d.msg].filter(Boolean).join(": ")).join("; ");
    }
    if (typeof body.message === "string") return body.message;
  }
  if (typeof body === "string" && body.trim() && body.length < 300) return body.trim();
  return status ? `HTTP ${status}` : "no answer";
}

export function parseBody(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * api("/api/whisperx/status"), api(path, {method: "POST", json: {...}}).
 * A 401 on an action opens the sign-in dialog once and repeats the request (`why` says what needs the
 * token). Reads do not prompt by default: a poll must not reopen a dialog the operator just closed.
 */
export async function api(path, { method = "GET", json, signal, why, prompt = method !== "GET" } = {}) {
  const init = { method, signal, credentials: "same-origin", headers: { accept: "application/json", ...DASHBOARD_HEADER } };
  if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "spark-control did not answer. Is it running?");
  }
  if (response.status === 401) sessionExpired();
  if (response.status === 401 && prompt) {
    await signIn(why || "This action needs the API token.");
    return api(path, { method, json, signal, why, prompt: false });
  }
  const body = parseBody(await response.text());
  if (!response.ok) throw new ApiError(response.status, errorMessage(body, response.status), body, response.headers);
  return body;
}

/**
 * refresh = coalesced(() => this.load()): concurrent calls share one load, and a call made while a load
 * is in flight gets one more load after it, so what it renders was asked for after the call (an action's
 * result), never a poll that left before it.
 */
export function coalesced(load) {
  let inflight = null;
  let again = null;
  return function refresh() {
    if (!inflight) {
      inflight = load().finally(() => {
        inflight = null;
      });
      return inflight;
    }
    again ??= inflight.then(() => {
      again = null;
      return refresh();
    });
    return again;
  };
}
