// Signing in: POST /api/session with the API token sets an HttpOnly cookie; the page never keeps the token.

import { DASHBOARD_HEADER } from "./api.js";
import { $, setText, show } from "./dom.js";

export class SignInCanceled extends Error {
  constructor() {
    super("sign-in canceled");
    this.name = "SignInCanceled";
  }
}

const state = { authenticated: false, readsRequireToken: false };
const listeners = [];
let pending = null; // one sign-in dialog at a time; concurrent callers share it

export const session = {
  get authenticated() {
    return state.authenticated;
  },
  get readsRequireToken() {
    return state.readsRequireToken;
  },
};

export function onSessionChange(listener) {
  listeners.push(listener);
}

function update(authenticated, readsRequireToken = state.readsRequireToken) {
  state.authenticated = authenticated;
  state.readsRequireToken = readsRequireToken;
  setText($("#session-state"), authenticated ? "Signed in" : "Not signed in");
  show($("#login-button"), !authenticated);
  show($("#logout-button"), authenticated);
  for (const listener of listeners) listener(state);
}

export async function loadSession() {
  const response = await fetch("/api/session", { credentials: "same-origin" });
  if (!response.ok) throw new Error(`GET /api/session answered HTTP ${response.status}`);
  const body = await response.json();
  update(Boolean(body.authenticated), Boolean(body.reads_require_token));
  return state;
}

/** Ask for the token; resolves when a session cookie is set, rejects with SignInCanceled. */
export function signIn(reason = "") {
  if (!pending) {
    pending = openDialog(reason).finally(() => {
      pending = null;
    });
  }
  return pending;
}

export async function ensureSignedIn(reason) {
  if (!state.authenticated) await signIn(reason);
}

/** The cookie no longer works (a 401 came back): ask again next time. */
export function sessionExpired() {
  if (state.authenticated) update(false);
}

export async function signOut() {
  await fetch("/api/session", { method: "DELETE", credentials: "same-origin", headers: DASHBOARD_HEADER });
  update(false);
}

function openDialog(reason) {
  const dialog = $("#login-dialog");
  const form = $("#login-form");
  const input = $("#login-token");
  const error = $("#login-error");
  const submit = $("#login-submit");
  setText($("#login-reason"), reason);
  show($("#login-reason"), Boolean(reason));
  show(error, false);
  input.value = "";
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      input.value = "";
      form.removeEventListener("submit", onSubmit);
      $("#login-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      if (ok) resolve();
      else reject(new SignInCanceled());
    };
    const fail = (message) => {
      setText(error, message);
      show(error, true);
      input.focus();
      input.select();
    };
    async function onSubmit(event) {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return fail("Enter the API token.");
      submit.disabled = true;
      try {
        const response = await fetch("/api/session", {
          method: "POST",
          credentials: "same-origin",
          headers: { "content-type": "application/json", ...DASHBOARD_HEADER },
          body: JSON.stringify({ token }),
        });
        if (response.status === 204) {
          update(true);
          finish(true);
        } else if (response.status === 401) {
          fail("That is not the API token of this spark-control.");
        } else {
          fail(`Sign-in failed: HTTP ${response.status}.`);
        }
      } catch {
        fail("spark-control did not answer. Is it running?");
      } finally {
        submit.disabled = false;
      }
    }
    const onCancel = () => finish(false);
    const onClose = () => finish(false);
    form.addEventListener("submit", onSubmit);
    $("#login-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    input.focus();
  });
}
