// The install / removal progress dialog: phase stepper, elapsed time, live log, cancel, outcome.
//
// With several GPU hosts the install rolls one host (one `serial` batch) at a time, and a row per host says
// where each is. Phase events name no host (a task's start is host-less), so the current phase goes to the
// hosts the following log lines are about; a `PLAY [...]` line starts the next batch. The closing phase
// event (or the job's record) says how each host it reached ended; the others were not touched.
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
    this.hostNames = []; // the backends' inventory names when there are several (whisperx.js)
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

  /** The GPU hosts an install rolls over, in order; per-host rows are drawn when there are several. */
  setHosts(names) {
    if (names.join("\n") === this.hostNames.join("\n")) return;
    this.hostNames = names;
    if (this.job) this.renderHosts(this.job);
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
      batch: 0, // the rollout's batch: one more at each PLAY line
      hostBatch: {}, // host -> the batch it ran in
      hostPhases: {}, // host -> its last phase of preflight..load
      currentHost: null, // the host the latest line was about
      outcomes: null, // host -> ready | failed, once the job ended
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
      if (data.host) this.hostLine(job, String(data.host));
      else if (String(data.line ?? "").startsWith("PLAY [")) job.batch += 1;
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
      if (!this.perHost(job)) this.status(`${known.doing}…`); // several hosts: said with the host (hostLine)
    }
    if (data.hosts) job.outcomes = data.hosts;
    this.log.append(`── ${data.phase} ──`, "phase");
    if (data.line) this.log.append(String(data.line));
    if (known && data.host) this.hostLine(job, String(data.host));
    this.renderSteps(job);
    this.renderHosts(job);
    this.notify();
  }

  /** A line about one host: the current phase is that host's. */
  hostLine(job, host) {
    job.hostBatch[host] = job.batch;
    if (!job.workPhase || (job.hostPhases[host] === job.workPhase && job.currentHost === host)) return;
    job.hostPhases[host] = job.workPhase;
    job.currentHost = host;
    if (!this.perHost(job) || job.finished) return;
    const known = plan.phases.find((p) => p.name === job.workPhase);
    const index = this.hostNames.indexOf(host);
    const which = index >= 0 ? ` (host ${index + 1} of ${this.hostNames.length})` : "";
    if (known) this.status(`${host}${which}: ${known.doing}…`);
    this.renderHosts(job);
    this.notify();
  }

  perHost(job) {
    return job.kind === "install" && this.hostNames.length > 1;
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
    if (view?.hosts && Object.keys(view.hosts).length) job.outcomes = view.hosts;
    job.frozen = true;
    this.renderSteps(job);
    this.renderHosts(job);
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
    show($("#progress-hosts"), false);
    $("#progress-hosts").replaceChildren();
  }

  applyKind(job) {
    const install = job.kind === "install";
    setText($("#progress-title"), kindOf(job.kind).running);
    setText($("#progress-cancel"), `Cancel ${kindOf(job.kind).noun}`);
    show($("#progress-steps"), install);
    this.renderHosts(job);
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

  /** One row per host: its name, its phases as a small bar, and where it is (or how it ended). */
  renderHosts(job) {
    const box = $("#progress-hosts");
    const visible = this.perHost(job);
    show(box, visible);
    if (!visible) return;
    const phases = phaseNames();
    box.replaceChildren(
      ...this.hostNames.map((host) => {
        const { state, label, at } = this.hostState(job, host);
        const bar = phases.map((_, i) => {
          let part = "";
          if (state === "ready" || state === "installed" || i < at) part = "done";
          else if (i === at) part = state === "failed" ? "failed" : "current";
          return el("span", { class: `part ${part}`.trim() });
        });
        const end = { ready: "done", failed: "failed" }[state] ?? "";
        bar.push(el("span", { class: `part end ${end}`.trim() }));
        return el(
          "li",
          { class: state, dataset: { host, state } },
          el("span", { class: "host-name mono" }, host),
          el("span", { class: "host-bar", "aria-hidden": "true" }, bar),
          el("span", { class: "host-state" }, label),
        );
      }),
    );
  }

  /** Where one host is: waiting, current (in a phase), installed (its batch is over), ready, failed, untouched. */
  hostState(job, host) {
    const phases = phaseNames();
    const phase = job.hostPhases[host];
    const at = phases.indexOf(phase);
    const where = at >= 0 ? `phase ${at + 1} of ${phases.length}: ${phase}` : "starting";
    if (job.finished) {
      const outcome = (job.outcomes ?? this.guessOutcomes(job))[host];
      if (outcome === "ready") return { state: "ready", label: "ready", at };
      if (outcome === "failed") {
        const verb = job.state === "canceled" ? "canceled" : "failed";
        return { state: "failed", label: phase ? `${verb} during ${phase}` : verb, at };
      }
      return { state: "untouched", label: "not touched", at: -1 };
    }
    if (!(host in job.hostBatch)) return { state: "waiting", label: "waiting for its turn", at: -1 };
    if (job.hostBatch[host] < job.batch) return { state: "installed", label: "installed", at };
    return { state: "current", label: where, at };
  }

  /** A job record without per-host outcomes: the host that was working failed, the others it reached are ready. */
  guessOutcomes(job) {
    const outcomes = {};
    for (const host of Object.keys(job.hostPhases)) {
      outcomes[host] = job.state !== "successful" && host === job.currentHost ? "failed" : "ready";
    }
    return outcomes;
  }

  renderOutcome(job, view) {
    const install = job.kind === "install";
    const took = clock(job.elapsed);
    const several = this.perHost(job);
    const outcomes = job.outcomes ?? this.guessOutcomes(job);
    const failedHosts = this.hostNames.filter((host) => outcomes[host] === "failed");
    const untouched = this.hostNames.filter((host) => !(host in outcomes));
    const failedPhase = job.hostPhases[failedHosts[0]] ?? job.workPhase;
    let where = job.workPhase ? ` during the ${job.workPhase} phase` : "";
    if (several && failedHosts.length) {
      where = ` on ${failedHosts.join(", ")}${failedPhase ? ` during the ${failedPhase} phase` : ""}`;
    }
    show($("#progress-cancel"), false);
    setText($("#progress-close"), "Close");
    const kind = kindOf(job.kind);
    if (job.state === "successful") {
      setText($("#progress-title"), kind.done);
      const ready = this.hostNames.filter((host) => outcomes[host] === "ready").length;
      const said = {
        install: several
          ? `WhisperX is ready on ${ready} of ${this.hostNames.length} hosts (took ${took}). Transcriptions go to them.`
          : `WhisperX is ready (took ${took}). Transcriptions now go to it.`,
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
    const spared = several && untouched.length
      ? `${untouched.join(", ")} ${untouched.length === 1 ? "was" : "were"} not touched.`
      : "";
    box.replaceChildren(
      el("strong", {}, headline),
      message ? el("p", { class: "failure-message" }, message) : null,
      spared ? el("p", {}, spared) : null,
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
    const host = job && this.perHost(job) ? job.currentHost : null;
    this.onProgress(job ? { id: job.id, kind: job.kind, phase: job.phase, host, running: !job.finished, elapsed: this.elapsed(), open: this.dialog.open } : null);
  }
}
