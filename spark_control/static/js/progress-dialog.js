// The install / removal progress dialog: phase stepper, elapsed time, live log, cancel, outcome.
//
// It follows a job through its EventSource stream. EventSource reconnects by itself after a dropped
// connection and sends Last-Event-ID, so the server sends exactly what was missed; ids already seen
// are skipped anyway, so no line is shown twice. When the server ends the stream for good (204 after
// the job ended, 401, 404) the job's own record says how it ended.

import { api } from "./api.js";
import { confirmAction } from "./confirm.js";
import { $, busy, el, setText, show } from "./dom.js";
import { clock, failureMessage } from "./format.js";
import { phaseNames, plan } from "./install-plan.js";
import { LogView } from "./log-view.js";
import { ensureSignedIn, SignInCanceled } from "./session.js";

const RECOVER_MS = 2000;
const MAX_LOG_LINES = 2000;

export const jobUrl = (id) => `/api/whisperx/install/${encodeURIComponent(id)}`;

// What each kind of WhisperX job is called, as it runs and once it has succeeded or failed.
export const KINDS = {
  install: { noun: "install", running: "Installing WhisperX", starting: "Starting the playbook…", done: "WhisperX is installed",
             failed: "Install failed", canceled: "Install canceled" },
  remove: { noun: "removal", running: "Removing WhisperX", starting: "Removing the WhisperX container…", done: "WhisperX is removed",
            failed: "Removal failed", canceled: "Removal canceled" },
  rollback: { noun: "rollback", running: "Putting the previous WhisperX back", starting: "Putting the previous container back…",
              done: "The previous WhisperX is back", failed: "Rollback failed", canceled: "Rollback canceled" },
};
export const kindOf = (kind) => KINDS[kind] ?? KINDS.install;

export class ProgressDialog {
  constructor({ onFinished = () => {}, onProgress = () => {}, onRetry = () => {} } = {}) {
    this.dialog = $("#progress-dialog");
    this.steps = [];
    this.onFinished = onFinished;
    this.onProgress = onProgress;
    this.onRetry = onRetry;
    this.job = null;
    this.log = new LogView($("#progress-log"), {
      maxLines: MAX_LOG_LINES,
      onFollowChange: (following) => show($("#log-latest"), !following),
      droppedHint: "The whole log stays with the job on the server.",
    });
    $("#log-latest").addEventListener("click", () => this.log.scrollToEnd());
    $("#progress-close").addEventListener("click", () => this.hide());
    $("#progress-cancel").addEventListener("click", () => this.cancel());
    $("#progress-retry").addEventListener("click", () => {
      const kind = this.job?.kind ?? "install";
      this.hide();
      this.onRetry(kind);
    });
    this.dialog.addEventListener("close", () => this.notify());
    setInterval(() => this.tick(), 500);
  }

  get isOpen() {
    return this.dialog.open;
  }

  /** Follow job `jobId` (a running or a finished one), replaying its log from the start. */
  async attach(jobId, { open = true } = {}) {
    if (this.job?.id === jobId) {
      if (open) this.open();
      return;
    }
    this.detach();
    const job = {
      id: jobId,
      kind: "install",
      lastId: 0,
      phase: null, // the last phase event, ready/failed included
      workPhase: null, // the last of preflight..load: where a failure happened
      finished: false,
      state: "running",
      elapsed: 0,
      elapsedAt: performance.now(),
      frozen: false,
      source: null,
      recoverTimer: 0,
    };
    this.job = job;
    this.reset();
    if (open) this.open();
    await this.load(job);
  }

  /** Read the job's record (kind, clock), then follow its stream; retried while spark-control is away. */
  async load(job) {
    let view;
    try {
      view = await api(jobUrl(job.id));
    } catch (error) {
      if (this.job !== job) return;
      if (error.status === 404) {
        this.status(`spark-control no longer knows job ${job.id}.`, "bad");
        return;
      }
      this.status(`Cannot read job ${job.id}: ${error.message}. Retrying…`, "bad");
      job.recoverTimer = setTimeout(() => this.load(job), RECOVER_MS * 2);
      return;
    }
    if (this.job !== job) return;
    job.kind = view.kind;
    this.applyKind(job);
    this.syncClock(job, view);
    this.status(view.state === "running" ? "Connecting to the job's log…" : "Replaying the job's log…");
    this.connect(job);
  }

  detach() {
    const job = this.job;
    if (!job) return;
    job.source?.close();
    clearTimeout(job.recoverTimer);
    this.job = null;
  }

  open() {
    if (!this.dialog.open) this.dialog.showModal();
    $("#progress-close").focus();
    this.log.flush();
    if (this.log.follow) this.log.scrollToEnd();
    this.notify();
  }

  hide() {
    if (this.dialog.open) this.dialog.close();
  }

  // -- the stream --------------------------------------------------------------------------------------
  connect(job) {
    const url = `${jobUrl(job.id)}/stream${job.lastId ? `?after=${job.lastId}` : ""}`;
    const source = new EventSource(url);
    job.source = source;
    source.addEventListener("open", () => this.streamState(job, ""));
    for (const type of ["phase", "log", "done"]) source.addEventListener(type, (event) => this.receive(job, type, event));
    source.addEventListener("error", () => {
      if (this.job !== job || job.finished || job.source !== source) return;
      if (source.readyState === EventSource.CONNECTING) {
        this.streamState(job, "Connection lost, reconnecting…"); // EventSource resumes with Last-Event-ID
        return;
      }
      source.close();
      job.source = null;
      this.recover(job);
    });
  }

  receive(job, type, event) {
    if (this.job !== job) return;
    const id = Number(event.lastEventId);
    if (Number.isInteger(id) && id > 0) {
      if (id <= job.lastId) return; // already shown
      job.lastId = id;
    }
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    this.streamState(job, "");
    if (!job.phase && !job.receiving) {
      job.receiving = true; // the first event: say what runs until a phase says more
      this.status(kindOf(job.kind).starting);
    }
    if (type === "log") {
      this.log.append(String(data.line ?? ""));
    } else if (type === "phase") {
      this.phase(job, data);
    } else {
      job.source?.close();
      job.source = null;
      this.finish(job, data.state);
    }
  }

  /** The stream ended without `done` (or was refused): the job's record decides what comes next. */
  async recover(job) {
    let view;
    try {
      view = await api(jobUrl(job.id));
    } catch (error) {
      if (this.job !== job) return;
      this.streamState(job, `The log is unavailable: ${error.message}. Retrying…`);
      job.recoverTimer = setTimeout(() => this.recover(job), RECOVER_MS * 2);
      return;
    }
    if (this.job !== job) return;
    if (view.state !== "running") {
      this.finish(job, view.state, view);
      return;
    }
    this.streamState(job, "Reconnecting…");
    job.recoverTimer = setTimeout(() => this.job === job && this.connect(job), RECOVER_MS);
  }

  /** The stepper, one step per install phase of the plan, then the outcome (Ready, or Failed). */
  buildSteps() {
    const step = (name, title, covers) =>
      el("li", { dataset: { phase: name } }, el("span", { class: "step-name" }, title), el("span", { class: "step-hint" }, covers));
    this.steps = [...plan.phases, plan.outcome].map((p) => step(p.name, p.title, p.covers));
    $("#progress-steps").replaceChildren(...this.steps);
  }

  phase(job, data) {
    job.phase = data.phase;
    const known = plan.phases.find((p) => p.name === data.phase);
    if (known) {
      job.workPhase = data.phase;
      this.status(`${known.doing}…`);
    }
    this.log.append(`── ${data.phase} ──`, "phase");
    if (data.line) this.log.append(String(data.line));
    this.renderSteps(job);
    this.notify();
  }

  async finish(job, state, knownView = null) {
    if (job.finished) return;
    job.finished = true;
    job.state = state;
    job.phase = state === "successful" ? "ready" : "failed";
    let view = knownView;
    if (!view) {
      try {
        view = await api(jobUrl(job.id));
      } catch {
        view = null;
      }
    }
    if (this.job !== job) return;
    if (view) this.syncClock(job, view);
    else job.elapsed = this.elapsed();
    job.frozen = true;
    this.renderSteps(job);
    this.renderOutcome(job, view);
    this.notify();
    this.onFinished(job);
  }

  // -- actions -----------------------------------------------------------------------------------------
  async cancel() {
    const job = this.job;
    if (!job || job.finished) return;
    const what = kindOf(job.kind).noun;
    const confirmed = await confirmAction({
      title: `Cancel the ${what}?`,
      body:
        "The playbook stops at its current task. What it has already changed on the host stays: " +
        "install again to finish, or remove WhisperX to clean up.",
      confirm: `Cancel the ${what}`,
      cancel: "Keep going",
    });
    if (!confirmed || this.job !== job || job.finished) return;
    const button = $("#progress-cancel");
    try {
      await ensureSignedIn(`Canceling the ${what} needs the API token.`);
      await busy(button, () => api(`${jobUrl(job.id)}/cancel`, { method: "POST" }), "Canceling…");
      if (!job.finished) this.status("Canceling: the playbook stops at its current task…");
    } catch (error) {
      if (error instanceof SignInCanceled || error.status === 409) return; // 409: it ended meanwhile
      this.status(`Could not cancel: ${error.message}`, "bad");
    }
  }

  // -- rendering ---------------------------------------------------------------------------------------
  reset() {
    this.log.clear();
    setText($("#progress-title"), "Installing WhisperX");
    setText($("#progress-elapsed"), "0:00");
    this.status("");
    show($("#progress-failure"), false);
    $("#progress-failure").replaceChildren();
    show($("#progress-cancel"), true);
    show($("#progress-retry"), false);
    setText($("#progress-close"), "Hide");
    show($("#log-latest"), false);
    setText($("#stream-state"), "");
    this.renderSteps({ kind: "install", phase: null, workPhase: null });
  }

  applyKind(job) {
    const install = job.kind === "install";
    setText($("#progress-title"), kindOf(job.kind).running);
    setText($("#progress-cancel"), `Cancel ${kindOf(job.kind).noun}`);
    show($("#progress-steps"), install);
  }

  renderSteps(job) {
    if (!plan.outcome) return; // drawn once the plan is known (main.js)
    const done = job.phase === "ready";
    const failed = job.phase === "failed";
    const phases = phaseNames();
    const at = phases.indexOf(job.workPhase);
    for (const step of this.steps) {
      const name = step.dataset.phase;
      let state = "pending";
      if (name === plan.outcome.name) {
        state = done ? "done" : failed ? "failed" : "pending";
        setText(step.querySelector(".step-name"), failed ? "Failed" : plan.outcome.title);
        setText(step.querySelector(".step-hint"), failed ? "stopped" : plan.outcome.covers);
      } else {
        const index = phases.indexOf(name);
        if (done || index < at) state = "done";
        else if (index === at) state = failed ? "failed" : "current";
      }
      step.className = state === "pending" ? "" : state;
      if (state === "current") step.setAttribute("aria-current", "step");
      else step.removeAttribute("aria-current");
      const label = { pending: "not started", current: "in progress", done: "done", failed: "failed" }[state];
      step.setAttribute("aria-label", `${step.querySelector(".step-name").textContent}: ${label}`);
    }
  }

  renderOutcome(job, view) {
    const install = job.kind === "install";
    const took = clock(job.elapsed);
    const where = job.workPhase ? ` during the ${job.workPhase} phase` : "";
    show($("#progress-cancel"), false);
    setText($("#progress-close"), "Close");
    const kind = kindOf(job.kind);
    if (job.state === "successful") {
      setText($("#progress-title"), kind.done);
      const said = {
        install: `WhisperX is ready (took ${took}). Transcriptions now go to it.`,
        remove: `WhisperX was removed (took ${took}). Transcriptions go to the legacy service.`,
        rollback: `The container that ran before the canceled install is back (took ${took}).`,
      };
      this.status(said[job.kind] ?? said.install, "ok");
      return;
    }
    const what = kind.noun;
    const headline = {
      canceled: `The ${what} was canceled${where}.`,
      interrupted: `spark-control stopped while the ${what} was running${where}.`,
    }[job.state] ?? `The ${what} failed${where}.`;
    setText($("#progress-title"), job.state === "canceled" ? kind.canceled : kind.failed);
    this.status(""); // the failure box below is an alert: it is announced, and said once
    const box = $("#progress-failure");
    const message = view?.error ? failureMessage(view.error) : "";
    const raw = view?.error && view.error.trim() !== message ? view.error : "";
    box.replaceChildren(
      el("strong", {}, headline),
      message ? el("p", { class: "failure-message" }, message) : null,
      raw ? el("details", {}, el("summary", {}, "Ansible's whole message"), el("pre", {}, raw)) : null,
      el("p", { class: "small" }, "The log below has the details. ", install ? "Parakeet still serves transcriptions." : ""),
    );
    show(box, true);
    setText($("#progress-retry"), `Retry ${kind.noun}`);
    show($("#progress-retry"), job.kind !== "rollback"); // a rollback follows a cancel; an install is the way on
  }

  status(text, tone = "") {
    const node = $("#progress-status");
    setText(node, text);
    node.className = `status ${tone}`.trim();
  }

  streamState(job, text) {
    if (this.job === job) setText($("#stream-state"), text);
  }

  syncClock(job, view) {
    job.elapsed = Number(view.elapsed_s) || 0;
    job.elapsedAt = performance.now();
    job.frozen = view.state !== "running";
    this.tick();
  }

  elapsed() {
    const job = this.job;
    if (!job) return 0;
    return job.frozen ? job.elapsed : job.elapsed + (performance.now() - job.elapsedAt) / 1000;
  }

  tick() {
    if (!this.job) return;
    setText($("#progress-elapsed"), clock(this.elapsed()));
    setText($("#log-count"), this.log.total ? `${this.log.total} lines` : "");
    if (!this.job.finished) this.notify();
  }

  notify() {
    const job = this.job;
    this.onProgress(job ? { id: job.id, kind: job.kind, phase: job.phase, running: !job.finished, elapsed: this.elapsed(), open: this.dialog.open } : null);
  }
}
