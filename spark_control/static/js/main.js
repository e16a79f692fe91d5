// The dashboard's entry point: session, the Audio / Speech tab's parts, and polling while visible.

import { $, setText, show } from "./dom.js";
import { ensurePlan } from "./install-plan.js";
import { ProgressDialog } from "./progress-dialog.js";
import { ServicesTable } from "./services.js";
import { loadSession, signIn, signOut, SignInCanceled } from "./session.js";
import { TranscribePanel } from "./transcribe.js";
import { VoicesCard } from "./voices.js";
import { WhisperxPanel } from "./whisperx.js";

const STATUS_POLL_MS = 5000;
const SERVICES_POLL_MS = 10000;

// One notice line per source, so a recovered source clears only its own message.
const notices = new Map();
function notice(source, text) {
  if (text) notices.set(source, text);
  else notices.delete(source);
  const box = $("#notice");
  setText(box, [...notices.values()].join(" "));
  show(box, notices.size > 0);
}

let whisperx;
let services;
const dialog = new ProgressDialog({
  onProgress: (progress) => whisperx?.onProgress(progress),
  onFinished: () => {
    whisperx?.refresh();
    services?.refresh();
  },
  onRetry: (kind) => (kind === "remove" ? whisperx?.remove() : whisperx?.install()),
});
whisperx = new WhisperxPanel(dialog, { notice, onChange: () => services.refresh() });
// `whisperx`, or `whisperx@host` for each of several GPU hosts
const isWhisperx = (name) => name === "whisperx" || name.startsWith("whisperx@");
services = new ServicesTable({ notice, onChange: (name) => isWhisperx(name) && whisperx.refresh() });
const voices = new VoicesCard();
const transcribe = new TranscribePanel({ onNamed: () => voices.refresh() });

$("#login-button").addEventListener("click", () => signIn().then(refreshAll, ignoreCanceled));
$("#logout-button").addEventListener("click", () => signOut());

function ignoreCanceled(error) {
  if (!(error instanceof SignInCanceled)) throw error;
}

let planShown = false;
/** The install plan (stepper and model menu) once; a failure (reads need a sign-in) is tried again later. */
async function showPlan() {
  if (planShown) return;
  try {
    await ensurePlan();
    dialog.buildSteps();
    whisperx.buildModels();
    planShown = true;
    notice("plan", "");
  } catch (error) {
    notice("plan", `The install options are unavailable: ${error.message}`);
  }
}

async function refreshAll() {
  await showPlan();
  return Promise.all([whisperx.refresh(), services.refresh(), transcribe.recent.refresh(), voices.refresh()]);
}

async function fetchVersion() {
  try {
    const response = await fetch("/healthz");
    const body = await response.json();
    setText($("#version"), body.version ? `v${body.version}` : "");
  } catch {
    // the status calls report an unreachable server
  }
}

function poll(work, everyMs) {
  setInterval(() => {
    if (document.visibilityState === "visible") work();
  }, everyMs);
}

async function start() {
  fetchVersion();
  try {
    const state = await loadSession();
    notice("session", "");
    if (state.readsRequireToken && !state.authenticated) {
      await signIn("This spark-control protects reads too: sign in to see the dashboard.").catch(ignoreCanceled);
    }
  } catch (error) {
    notice("session", `spark-control did not answer: ${error.message}`);
  }
  await refreshAll();
  document.body.dataset.ready = "true"; // for tests and screenshots: the first render is done
  poll(() => whisperx.refresh(), STATUS_POLL_MS);
  poll(() => services.refresh(), SERVICES_POLL_MS);
  poll(() => transcribe.recent.refresh(), SERVICES_POLL_MS); // jobs others submitted, and their states
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refreshAll();
  });
}

start();
