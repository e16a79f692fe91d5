// "Transcribe with speakers": upload a file, follow its transcription and show who said what.
//
// With a ready WhisperX the file becomes a job (POST /api/audio/jobs): an upload bar, then a processing bar
// fed by the job's event stream (windows, audio done, ETA), its segments shown as windows finish. The job's
// id goes into the address (?job=), so a reload or a reopened tab comes back to it. Without WhisperX the
// legacy service answers the synchronous endpoint, in one request, as before.
// XMLHttpRequest rather than fetch for uploads: it reports upload progress, which matters for a 90-minute file.

import { api, ApiError, DASHBOARD_HEADER, errorMessage, parseBody } from "./api.js";
import { $, el, setText, show } from "./dom.js";
import { bytes, clock, duration, plural } from "./format.js";
import { TranscriptView } from "./transcript-view.js";
import { RecentTranscripts, RUNNING } from "./transcripts.js";

const SYNC = "/api/audio/transcribe-with-speakers";
const JOBS = "/api/audio/jobs";
const RECONNECT_MS = 2000;

const jobUrl = (id) => `${JOBS}/${encodeURIComponent(id)}`;

export class TranscribePanel {
  /** onNamed(voice): a speaker of a transcript was named (the voice library changed). */
  constructor({ onNamed } = {}) {
    this.form = $("#transcribe-form");
    this.view = new TranscriptView({ onNamed });
    this.recent = new RecentTranscripts({
      onOpen: (job) => this.open(job),
      onDelete: (id) => this.forget(id),
    });
    this.upload = null; // the XMLHttpRequest on its way
    this.watching = null; // {id, name, source, lastId}: the job followed now
    this.retryTimer = 0;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    $("#transcribe-cancel").addEventListener("click", () => this.cancel());
    $("#transcribe-retry").addEventListener("click", () => this.submit());
    this.resume();
  }

  /** The job named in the address (a reload, a reopened tab): followed again, or shown when finished. */
  async resume() {
    const id = new URLSearchParams(window.location.search).get("job");
    if (!id) return;
    try {
      await this.open(await api(jobUrl(id)));
    } catch (error) {
      addressJob(null);
      const gone = error instanceof ApiError && error.status === 404;
      this.fail(gone ? "The transcript in this page's address is gone (deleted, or past its retention)." : `The transcript in this page's address is unavailable: ${error.message}`);
    }
  }

  async submit() {
    const file = $("#transcribe-file").files[0];
    if (!file) {
      this.fail("Choose an audio or video file first.");
      $("#transcribe-file").focus();
      return;
    }
    const speakers = $("#transcribe-speakers").value.trim();
    if (speakers && !(Number.isInteger(Number(speakers)) && Number(speakers) >= 1)) {
      this.fail("Speakers must be a whole number of at least 1, or empty.");
      $("#transcribe-speakers").focus();
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    const language = $("#transcribe-language").value.trim();
    if (language) form.append("language", language);
    if (speakers) form.append("num_speakers", speakers);

    clearInterval(this.retryTimer);
    this.fail("");
    show($("#transcribe-retry"), false);
    this.stop("");
    this.view.clear(); // what is shown always belongs to the last file sent
    $("#transcribe-submit").disabled = true;
    const jobs = await this.recent.refresh(); // false: no ready WhisperX, so no jobs: one request instead
    this.send(form, file, jobs ? JOBS : SYNC);
  }

  send(form, file, endpoint) {
    const xhr = new XMLHttpRequest();
    this.upload = xhr;
    const started = performance.now();
    let uploaded = false;
    const bar = $("#transcribe-upload");
    const tick = setInterval(() => {
      if (uploaded && endpoint === SYNC) setText($("#transcribe-progress-text"), `Transcribing… ${clock((performance.now() - started) / 1000)}`);
    }, 500);
    this.busy(true);
    show($("#transcribe-work-row"), false);
    bar.value = 0;
    setText($("#transcribe-progress-text"), `Uploading ${file.name} (${bytes(file.size)})…`);
    setText($("#transcribe-status"), `Uploading ${file.name}…`);

    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      bar.value = Math.round((100 * event.loaded) / event.total);
      setText($("#transcribe-progress-text"), `Uploading: ${bytes(event.loaded)} of ${bytes(event.total)}`);
    });
    xhr.upload.addEventListener("load", () => {
      uploaded = true;
      bar.value = 100;
      setText($("#transcribe-progress-text"), endpoint === SYNC ? "Transcribing…" : "Uploaded.");
      setText($("#transcribe-status"), endpoint === SYNC ? "Uploaded; the service is transcribing." : "Uploaded; handing it to WhisperX…");
    });
    const end = () => {
      clearInterval(tick);
      this.upload = null;
      this.busy(false);
    };
    xhr.addEventListener("load", () => {
      end();
      const body = parseBody(xhr.responseText);
      if (endpoint === JOBS && xhr.status === 202 && body?.id) {
        this.open(body);
        this.recent.refresh();
      } else if (endpoint === JOBS && xhr.status === 503 && body?.error?.code === "backend_unavailable") {
        this.send(form, file, SYNC); // WhisperX went away since the list answered: the legacy service, then
      } else {
        this.answer(xhr, body, file, (performance.now() - started) / 1000);
      }
    });
    xhr.addEventListener("error", () => {
      end();
      this.fail("spark-control did not answer (network error). Is it running?");
      show($("#transcribe-retry"), true);
    });
    xhr.addEventListener("abort", () => {
      end();
      setText($("#transcribe-status"), "Canceled.");
    });
    xhr.open("POST", endpoint);
    xhr.setRequestHeader("accept", "application/json");
    for (const [name, value] of Object.entries(DASHBOARD_HEADER)) xhr.setRequestHeader(name, value);
    xhr.send(form);
  }

  /** The synchronous endpoint's answer, or a refused job. */
  answer(xhr, body, file, seconds) {
    if (xhr.status === 200 && body && typeof body === "object" && Array.isArray(body.segments)) {
      const backend = xhr.getResponseHeader("X-ASR-Backend");
      this.view.render(body, { backend, fallbackReason: xhr.getResponseHeader("X-ASR-Fallback-Reason"), name: file.name, text: xhr.responseText });
      setText($("#transcribe-status"), `Done in ${duration(seconds)}: ${plural(body.segments.length, "segment")}, ${plural(this.view.speakerCount(), "speaker")}.`);
      return;
    }
    const message = errorMessage(body, xhr.status);
    if (xhr.status === 429) {
      this.busyRetry(Number.parseInt(xhr.getResponseHeader("Retry-After") ?? "", 10), message);
      return;
    }
    const hint = {
      413: "The file is larger than this spark-control accepts (SPARK_CONTROL_PROXY_MAX_UPLOAD_MB).",
      415: "Send the file as multipart/form-data.",
      502: "Neither WhisperX nor the legacy service answered.",
      507: "WhisperX's job store is full: delete old transcripts below, or raise WHISPERX_JOBS_MAX_GB.",
    }[xhr.status];
    this.fail(`HTTP ${xhr.status}: ${message}`, hint);
    if (xhr.status >= 500) show($("#transcribe-retry"), true);
  }

  // -- a job, followed through its event stream -----------------------------------------------------
  /** Show a job: a finished one's transcript, or a queued or running one followed until it ends. */
  async open(job) {
    this.stop("");
    this.fail("");
    addressJob(job.id);
    if (!RUNNING.has(job.status)) {
      await this.ended(job.id, job.filename, { status: job.status, error: job.error });
      return;
    }
    const watch = { id: job.id, name: job.filename, source: null, lastId: 0, duration: job.duration, progress: job.progress };
    this.watching = watch;
    this.view.live(job.filename, job.id);
    this.progress(watch, job.status);
    this.busy(true);
    this.connect(watch);
  }

  connect(watch) {
    const source = new EventSource(`${jobUrl(watch.id)}/events`);
    watch.source = source;
    const receive = (type) => (event) => {
      if (this.watching !== watch) return;
      const id = Number(event.lastEventId);
      if (Number.isInteger(id) && id > 0) {
        if (id <= watch.lastId) return; // a new connection replays from the start: shown already
        watch.lastId = id;
      }
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (type === "progress") {
        watch.progress = data.progress;
        this.progress(watch, "running");
        this.view.append(data.segments ?? []);
        if (watch.duration == null) this.learnDuration(watch);
        this.recent.refresh(); // the list shows this job's share done too
      } else if (type === "status") {
        this.progress(watch, data.status);
        this.recent.refresh();
      } else {
        source.close();
        this.watching = null;
        this.busy(false);
        this.ended(watch.id, watch.name, data);
        this.recent.refresh();
      }
    };
    source.addEventListener("open", () => this.watching === watch && setText($("#transcribe-stream"), ""));
    for (const type of ["status", "progress", "done"]) source.addEventListener(type, receive(type));
    source.addEventListener("error", () => {
      if (this.watching !== watch || watch.source !== source) return;
      setText($("#transcribe-stream"), "Connection lost, reconnecting…"); // EventSource resumes with Last-Event-ID
      if (source.readyState === EventSource.CLOSED) watch.timer = setTimeout(() => this.recover(watch), RECONNECT_MS);
    });
  }

  /** The stream was refused or closed without `done`: the job's record decides what comes next. */
  async recover(watch) {
    let job;
    try {
      job = await api(jobUrl(watch.id));
    } catch (error) {
      if (this.watching !== watch) return;
      if (error instanceof ApiError && error.status === 404) {
        this.stop("This transcript was deleted.");
        return;
      }
      watch.timer = setTimeout(() => this.recover(watch), RECONNECT_MS * 2);
      return;
    }
    if (this.watching !== watch) return;
    if (RUNNING.has(job.status)) {
      this.connect(watch);
      return;
    }
    this.watching = null;
    this.busy(false);
    await this.ended(watch.id, watch.name, { status: job.status, error: job.error });
  }

  /** The recording's length (known once decoded), for "12:00 of 90:00 of audio". */
  async learnDuration(watch) {
    watch.duration = 0; // asked once
    try {
      watch.duration = (await api(jobUrl(watch.id))).duration;
    } catch {
      return; // the line goes without it
    }
    if (this.watching === watch) this.progress(watch, "running");
  }

  /** The processing bar and its line: windows done, audio done, time left. */
  progress(watch, status) {
    const { progress, duration: total } = watch;
    show($("#transcribe-work-row"), true);
    show($("#transcribe-upload-row"), false);
    const bar = $("#transcribe-work");
    if (progress) bar.value = progress.fraction;
    let line;
    if (status === "queued") line = "Queued: it starts when the service has room.";
    else if (!progress || !progress.windows_done) line = "Decoding and finding speech in the first window…";
    else {
      line = [
        `${progress.windows_done} of ${plural(progress.windows_total, "window")} done`,
        `${clock(progress.audio_s_done)}${total ? ` of ${clock(total)}` : ""} of audio`,
        progress.eta_s != null && progress.windows_done < progress.windows_total ? `about ${clock(progress.eta_s)} left` : null,
      ]
        .filter(Boolean)
        .join(" · ");
    }
    setText($("#transcribe-work-text"), line);
    setText($("#transcribe-status"), status === "queued" ? "Queued." : "Transcribing: you may close this page and come back.");
  }

  /** A finished job: its transcript, or why it has none. */
  async ended(id, name, { status, error }) {
    show($("#transcribe-progress"), false);
    if (status === "completed") {
      try {
        const body = await api(`${jobUrl(id)}/result?format=json`);
        this.view.render(body, { backend: "whisperx", name, jobId: id });
        setText($("#transcribe-status"), `Done: ${name}, ${plural(body.segments.length, "segment")}, ${plural(this.view.speakerCount(), "speaker")}.`);
      } catch (failure) {
        this.fail(`The transcript could not be read: ${failure.message}`);
      }
      return;
    }
    this.view.clear();
    if (status === "failed") this.fail(`The transcription of ${name} failed: ${error?.message ?? "no reason given"}`);
    else setText($("#transcribe-status"), `${name}: canceled.`);
  }

  /** A job was deleted from the list: no longer followed or shown. */
  forget(id) {
    if (this.watching?.id === id) this.stop("Canceled and deleted.");
    if (this.view.shown?.jobId === id) {
      this.view.clear();
      addressJob(null);
    }
  }

  /** Stop following (a new file, a deleted job); `why` for the status line. */
  stop(why) {
    const watch = this.watching;
    this.watching = null;
    if (watch) {
      watch.source?.close();
      clearTimeout(watch.timer);
      this.view.clear();
      this.busy(false);
      addressJob(null);
    }
    if (why) setText($("#transcribe-status"), why);
  }

  async cancel() {
    if (this.upload) {
      this.upload.abort();
      return;
    }
    const watch = this.watching;
    if (!watch) return;
    try {
      await api(jobUrl(watch.id), { method: "DELETE" });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        this.fail(`It could not be canceled: ${error.message}`);
        return;
      }
    }
    this.stop(`${watch.name}: canceled.`);
    this.recent.refresh();
  }

  /** 429: the service's queue is full; offer a retry once Retry-After has passed. */
  busyRetry(retryAfter, message) {
    let left = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 5;
    const retry = $("#transcribe-retry");
    this.fail(`The service is busy (HTTP 429): ${message}`, `Its queue is full. Retry in ${left} s.`);
    show(retry, true);
    retry.disabled = true;
    setText(retry, `Retry in ${left} s`);
    this.retryTimer = setInterval(() => {
      left -= 1;
      if (left > 0) {
        setText(retry, `Retry in ${left} s`);
        return;
      }
      clearInterval(this.retryTimer);
      retry.disabled = false;
      setText(retry, "Retry now");
      setText($("#transcribe-error").querySelector(".hint") ?? $("#transcribe-status"), "The queue may have room now.");
    }, 1000);
  }

  busy(on) {
    $("#transcribe-submit").disabled = Boolean(this.upload);
    show($("#transcribe-cancel"), on);
    show($("#transcribe-progress"), on);
    show($("#transcribe-upload-row"), Boolean(this.upload));
    if (on) show($("#transcribe-retry"), false);
  }

  fail(message, hint = "") {
    const box = $("#transcribe-error");
    box.replaceChildren();
    if (message) box.append(el("strong", {}, message), hint ? el("p", { class: "hint" }, hint) : null);
    show(box, Boolean(message));
    if (message) setText($("#transcribe-status"), "");
  }
}

/** ?job=<id> in the address while a job is shown, so a reload comes back to it. */
function addressJob(id) {
  const url = new URL(window.location.href);
  if (id) url.searchParams.set("job", id);
  else url.searchParams.delete("job");
  if (url.href !== window.location.href) window.history.replaceState(null, "", url);
}
