// The WhisperX status card (one entry per backend with several GPU hosts), the "Install WhisperX" banner, the
// group's install/upgrade, the running-job banner and the removal.

import { api, coalesced } from "./api.js";
import { confirmAction } from "./confirm.js";
import { $, busy, el, setText, show, toast } from "./dom.js";
import { ago, clock, failureMessage, localTime } from "./format.js";
import { phaseNames, plan } from "./install-plan.js";
import { jobUrl, kindOf } from "./progress-dialog.js";
import { ensureSignedIn, SignInCanceled } from "./session.js";

const HOST_STATE = { true: "reachable", false: "unreachable", null: "unknown" };

export class WhisperxPanel {
  constructor(dialog, { onChange = () => {}, notice = () => {} } = {}) {
    this.dialog = dialog;
    this.onChange = onChange;
    this.notice = notice;
    this.status = null;
    this.fetchedAt = 0;
    this.firstRender = true;
    this.jobViews = new Map(); // finished jobs' records, read once
    this.refresh = coalesced(() => this.load()); // GET and render; callers after an action see its result
    $("#install-button").addEventListener("click", () => this.install());
    $("#group-install-button").addEventListener("click", () => this.installGroup());
    $("#install-options").addEventListener("submit", (event) => {
      event.preventDefault(); // Enter in an option field starts the install, as the button does
      this.install();
    });
    $("#remove-button").addEventListener("click", () => this.remove());
    $("#status-refresh").addEventListener("click", () => busy($("#status-refresh"), () => this.refresh()));
    $("#job-banner-show").addEventListener("click", () => this.dialog.open());
    for (const id of ["#last-job-log", "#install-last-log"]) {
      $(id).addEventListener("click", () => this.status?.job && this.dialog.attach(this.status.job.id));
    }
    setInterval(() => this.status && this.renderSource(), 1000);
  }

  async load() {
    try {
      this.status = await api("/api/whisperx/status");
      this.fetchedAt = performance.now();
      this.notice("whisperx", "");
      await this.render();
    } catch (error) {
      const why = error.status === 401 ? "sign in (top right) to see it" : error.message;
      this.notice("whisperx", `The WhisperX status is unavailable: ${why}`);
    }
  }

  // -- rendering ---------------------------------------------------------------------------------------
  async render() {
    const s = this.status;
    const health = s.health ?? {};
    const job = s.job;
    const jobRunning = job?.state === "running";
    const backends = s.backends ?? [];
    const several = backends.length > 1;
    this.dialog.setHosts(several ? backends.map((b) => b.name) : []);

    flag("#wx-installed", s.installed, "Installed", "Not installed");
    flag("#wx-running", s.running, "Running", "Not running", s.installed);
    flag("#wx-healthy", s.healthy, "Healthy", "Not healthy", s.running);
    const [summary, tone] = summarize(s, jobRunning && kindOf(this.dialog.job?.kind).noun);
    const badge = $("#wx-summary");
    setText(badge, summary);
    badge.className = `badge ${tone}`;

    setText($("#wx-model"), health.model ?? "—");
    const devices = health.whisper_device ? `Whisper ${health.whisper_device} · diarizer ${health.diarizer_device}` : health.device;
    setText($("#wx-device"), devices ? [devices, health.compute_type].filter(Boolean).join(" · ") : "—");
    const diarizer = health.status === "unloaded" ? "unloaded while idle (loads on the next request)"
      : health.diarizer_loaded ? "loaded" : "loading";
    setText($("#wx-diarizer"), "diarizer_loaded" in health ? diarizer : "—");
    setText($("#wx-aligner"), { wav2vec2: "wav2vec2 alignment", whisper: "from Whisper" }[health.aligner] ?? "—");
    const queue = health.queue;
    setText($("#wx-queue"), queue ? `${queue.running} running · ${queue.waiting} waiting (limit ${queue.limit})` : "—");
    setText($("#wx-version"), health.version ?? "—");
    setText($("#wx-host"), HOST_STATE[String(s.host_reachable)] ?? "unknown");
    setText($("#wx-url"), s.url);
    show($("#wx-facts"), !several);
    show($("#wx-backends-section"), several);
    if (several) this.renderBackends(backends);
    this.renderSource();
    const problem = several ? "" : health.error || failureMessage(s.checks?.container?.error ?? "");
    setText($("#wx-error"), problem);
    show($("#wx-error"), Boolean(problem));

    setText($("#install-host"), several ? backends.map((b) => where(b, backends)).join(", ") : hostOf(s.url));
    show($("#install-banner"), !s.installed && !jobRunning);
    $("#install-button").disabled = jobRunning;
    // With several hosts, once any is installed the banner is gone: this one button installs or upgrades them all.
    const missing = backends.filter((b) => !b.installed).length;
    setText($("#group-install-button"), missing ? "Install on every host…" : "Upgrade every host…");
    $("#group-install-button").className = missing ? "primary" : "secondary";
    show($("#group-install-button"), several && s.installed && !jobRunning);
    show($("#remove-button"), s.installed && !jobRunning);
    show($("#last-job-log"), Boolean(job) && !jobRunning);
    await this.renderLastAttempt(s, job);

    if (jobRunning && this.dialog.job?.id !== job.id) {
      // Another tab started it, or this page was reloaded: follow it (and show it on a fresh page).
      await this.dialog.attach(job.id, { open: this.firstRender });
    }
    this.firstRender = false;
    this.onProgress(this.dialog.job ? this.progress : null);
  }

  /** One entry per backend: its state, model, devices, queue and version (each from its own /health). */
  renderBackends(backends) {
    const list = $("#wx-backends");
    list.replaceChildren(
      ...backends.map((b) => {
        const health = b.health ?? {};
        const [state, tone] = backendState(b);
        const queue = b.queue ?? health.queue;
        const fact = (term, value, title, wide) =>
          el("div", { class: wide ? "wide" : undefined }, el("dt", {}, term), el("dd", { title }, value ?? "—"));
        const problem = health.error || failureMessage(b.checks?.container?.error ?? "");
        return el(
          "li",
          { dataset: { backend: b.name } },
          el(
            "div",
            { class: "backend-head" },
            el("span", { class: "backend-name mono", title: b.url }, b.name),
            el("span", { class: `badge ${tone}` }, state),
          ),
          el(
            "dl",
            { class: "backend-facts" },
            fact("Model", health.model),
            fact("Device", devicesOf(health), health.compute_type ? `compute type ${health.compute_type}` : undefined),
            fact("Queue", queue && `${queue.running} running · ${queue.waiting} waiting (limit ${queue.limit})`, undefined, true),
            fact("Version", health.version),
          ),
          problem ? el("p", { class: "error small" }, problem) : null,
        );
      }),
    );
  }

  /** The status line: live /health or the cached container state, and how old each is. */
  renderSource() {
    const s = this.status;
    const since = (performance.now() - this.fetchedAt) / 1000;
    if ((s.backends?.length ?? 0) > 1) {
      setText($("#wx-source"), severalSource(s.backends, since));
      $("#wx-source").title = "";
      return;
    }
    const health = s.checks?.health;
    const container = s.checks?.container;
    let text;
    if (s.answered_from === "live") {
      text = `Live: /health answered in ${Math.round(health?.latency_ms ?? 0)} ms, ${ago((health?.age_s ?? 0) + since)}.`;
    } else {
      const silent = health?.error ? `/health does not answer (${health.error})` : "/health does not answer";
      const age = container?.age_s;
      const seen =
        age === null || age === undefined
          ? "No playbook has looked at the host yet."
          : `Container state from the last ${container.source}, ${ago(age + since)}${container.stale ? " (stale)" : ""}.`;
      text = `Cached: ${silent}. ${seen}${container?.refreshing ? " Checking the host now…" : ""}`;
    }
    setText($("#wx-source"), text);
    $("#wx-source").title = health?.checked_at ? `/health checked ${localTime(health.checked_at)}` : "";
  }

  async renderLastAttempt(s, job) {
    const line = $("#install-last");
    const failed = job && !s.installed && ["failed", "canceled", "interrupted"].includes(job.state);
    if (!failed) {
      show(line, false);
      show($("#install-last-log"), false);
      return;
    }
    let view = this.jobViews.get(job.id);
    if (!view) {
      try {
        view = await api(jobUrl(job.id));
        this.jobViews.set(job.id, view);
      } catch {
        return;
      }
    }
    const what = kindOf(view.kind).noun;
    const verb = { canceled: "was canceled", interrupted: "was interrupted" }[view.state] ?? "failed";
    const when = view.finished_at ? ` (${localTime(view.finished_at)})` : "";
    setText(line, `The last ${what} ${verb}${when}${view.error ? `: ${failureMessage(view.error)}` : "."}`);
    show(line, true);
    show($("#install-last-log"), true);
  }

  /** The model menu: the server's default first, then every model an install accepts. */
  buildModels() {
    const select = $("#install-model");
    const chosen = select.value;
    select.replaceChildren(
      el("option", { value: "" }, `server default (WHISPERX_MODEL: ${plan.defaultModel})`),
      ...plan.models.map((name) => el("option", { value: name }, name)),
    );
    select.value = plan.models.includes(chosen) ? chosen : "";
  }

  /** From the progress dialog: the running job's banner while its dialog is hidden. */
  onProgress(progress) {
    this.progress = progress;
    const visible = Boolean(progress?.running) && !progress.open;
    show($("#job-banner"), visible);
    if (visible) {
      show($("#install-banner"), false);
      setText($("#job-banner-title"), kindOf(progress.kind).running);
      const phases = phaseNames();
      const at = phases.indexOf(progress.phase);
      const phase = at >= 0 ? `phase ${at + 1} of ${phases.length}: ${progress.phase}` : "starting";
      setText($("#job-banner-phase"), progress.host ? `${progress.host}, ${phase}` : phase);
      setText($("#job-banner-elapsed"), clock(progress.elapsed));
    }
  }

  // -- actions -----------------------------------------------------------------------------------------
  /** Several hosts, some installed: one install of the group, host by host, after a confirmation. */
  async installGroup() {
    const backends = this.status?.backends ?? [];
    const missing = backends.filter((b) => !b.installed).length;
    const order = backends.map((b) => b.name).join(", then ");
    const confirmed = await confirmAction({
      title: missing ? "Install WhisperX on every host?" : `Upgrade WhisperX on ${backends.length} hosts?`,
      body:
        `The playbook goes one host at a time: ${order}. Each host's container is replaced once its new image is ` +
        "built, and the other hosts take the transcriptions meanwhile. A host that fails is put back as it was and " +
        "the hosts after it are not touched.",
      confirm: missing ? "Install on every host" : `Upgrade ${backends.length} hosts`,
      cancel: "Not now",
    });
    if (confirmed) await this.install($("#group-install-button"));
  }

  async install(button = $("#install-button")) {
    const tokenInput = $("#install-hf-token");
    const body = {};
    if ($("#install-model").value) body.model = $("#install-model").value;
    if (tokenInput.value.trim()) body.hf_token = tokenInput.value.trim();
    this.installError("");
    try {
      await ensureSignedIn("Installing WhisperX needs the API token.");
      const started = await busy(
        button,
        () => api("/api/whisperx/install", { method: "POST", json: body, why: "Installing WhisperX needs the API token." }),
        "Starting…",
      );
      tokenInput.value = "";
      await this.dialog.attach(started.job_id);
    } catch (error) {
      if (error instanceof SignInCanceled) return;
      if (error.status === 409 && error.body?.job_id) {
        toast("An install or removal is already running: here it is.");
        await this.dialog.attach(error.body.job_id);
        return;
      }
      if (error.status !== 422) tokenInput.value = "";
      this.installError(`The install did not start: ${error.message}`);
    } finally {
      this.refresh();
    }
  }

  async remove() {
    const s = this.status;
    const confirmed = await confirmAction({
      title: "Remove WhisperX?",
      body:
        `This stops and removes the WhisperX container on ${hostOf(s?.url)}. Its image and downloaded models stay, ` +
        "so a later install is quick. Parakeet is not touched: transcriptions go back to it.",
      confirm: "Remove WhisperX",
      cancel: "Keep it",
    });
    if (!confirmed) return;
    try {
      await ensureSignedIn("Removing WhisperX needs the API token.");
      const started = await busy($("#remove-button"), () => api("/api/whisperx/remove", { method: "POST" }), "Removing…");
      await this.dialog.attach(started.job_id);
    } catch (error) {
      if (error instanceof SignInCanceled) return;
      if (error.status === 409 && error.body?.job_id) {
        toast("An install or removal is already running: here it is.");
        await this.dialog.attach(error.body.job_id);
        return;
      }
      toast(`The removal did not start: ${error.message}`, "bad", 10000);
    } finally {
      this.refresh();
    }
  }

  installError(text) {
    const node = $("#install-error");
    setText(node, text);
    show(node, Boolean(text));
  }
}

function flag(selector, value, yes, no, relevant = true) {
  const node = $(selector);
  setText(node, value ? yes : no);
  node.className = `flag ${value ? "yes" : relevant ? "bad" : "no"}`;
}

function summarize(s, runningJob) {
  const health = s.health ?? {};
  if (runningJob) return [`${runningJob} running`, "info"];
  if (!s.installed) return ["not installed", ""];
  const backends = s.backends ?? [];
  const ready = backends.filter((b) => b.healthy).length;
  if (s.healthy && backends.length > 1 && ready < backends.length) {
    return [`ready on ${ready} of ${backends.length} hosts`, "warn"];
  }
  if (s.healthy) return [health.status === "unloaded" ? "idle, models unloaded" : "ready", "ok"];
  if (s.running && health.status === "loading") return ["loading models", "warn"];
  if (s.running && health.status === "error") return ["error", "bad"];
  if (!s.running) return ["stopped", "bad"];
  return s.answered_from === "live" ? ["not healthy", "bad"] : ["not answering", "bad"];
}

/** One backend's state in a word or two: ready, loading, not running, unreachable... */
function backendState(b) {
  const status = b.health?.status;
  if (b.answered_from === "live") {
    if (b.healthy) return status === "unloaded" ? ["idle, models unloaded", "ok"] : ["ready", "ok"];
    if (status === "loading") return ["loading", "warn"];
    return [status === "error" ? "error" : "not healthy", "bad"];
  }
  if (b.host_reachable === false) return ["unreachable", "bad"];
  if (!b.installed) return ["not installed", ""];
  return [b.running ? "not answering" : "not running", "bad"];
}

/** "cuda" when Whisper and the diarizer share it, else both; the older /health's one device otherwise. */
function devicesOf(health) {
  const { whisper_device: whisper, diarizer_device: diarizer } = health;
  if (!whisper) return health.device;
  return !diarizer || diarizer === whisper ? whisper : `Whisper ${whisper} · diarizer ${diarizer}`;
}

/** The status line with several backends: how many answered /health and how old the oldest answer is. */
function severalSource(backends, since) {
  const live = backends.filter((b) => b.answered_from === "live");
  const refreshing = backends.some((b) => b.checks?.container?.refreshing);
  const checking = refreshing ? " Checking the hosts now…" : "";
  if (!live.length) return `Cached: no host's /health answers; each entry shows what the last playbook saw.${checking}`;
  const oldest = Math.max(...live.map((b) => b.checks?.health?.age_s ?? 0));
  const silent = live.length < backends.length ? " The others show what the last playbook saw." : "";
  return `Live: /health answered on ${live.length} of ${backends.length} hosts, ${ago(oldest + since)}.${silent}${checking}`;
}

/** A backend's host, with its port when another backend shares the host. */
function where(backend, backends) {
  const shared = backends.filter((b) => b.host === backend.host).length > 1;
  return shared ? `${backend.host}:${backend.port}` : backend.host;
}

function hostOf(url) {
  try {
    return new URL(url).hostname;
  } catch {
    return "the WhisperX host";
  }
}
