// "Transcribe with speakers": upload a file through the audio proxy and show who said what.
// XMLHttpRequest rather than fetch: it reports upload progress, which matters for a 90-minute recording.

import { DASHBOARD_HEADER, errorMessage, parseBody } from "./api.js";
import { $, el, setText, show, toast } from "./dom.js";
import { bytes, clock, duration, plural, position } from "./format.js";

const ENDPOINT = "/api/audio/transcribe-with-speakers";
const PALETTE_SIZE = 8;

export class TranscribePanel {
  constructor() {
    this.form = $("#transcribe-form");
    this.request = null;
    this.result = null;
    this.retryTimer = 0;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    $("#transcribe-cancel").addEventListener("click", () => this.request?.abort());
    $("#transcribe-retry").addEventListener("click", () => this.submit());
    $("#transcript-download").addEventListener("click", () => this.download());
    $("#transcript-copy").addEventListener("click", () => this.copy());
  }

  submit() {
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
    show($("#transcript"), false); // what is shown always belongs to the last file sent
    this.result = null;
    const xhr = new XMLHttpRequest();
    this.request = xhr;
    const started = performance.now();
    let uploaded = false;
    const progress = $("#transcribe-upload");
    const tick = setInterval(() => {
      if (uploaded) setText($("#transcribe-progress-text"), `Transcribing… ${clock((performance.now() - started) / 1000)}`);
    }, 500);
    this.busy(true);
    progress.value = 0;
    setText($("#transcribe-progress-text"), `Uploading ${file.name} (${bytes(file.size)})…`);
    setText($("#transcribe-status"), `Uploading ${file.name}…`);

    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      progress.value = Math.round((100 * event.loaded) / event.total);
      setText($("#transcribe-progress-text"), `Uploading: ${bytes(event.loaded)} of ${bytes(event.total)}`);
    });
    xhr.upload.addEventListener("load", () => {
      uploaded = true;
      progress.value = 100;
      setText($("#transcribe-progress-text"), "Transcribing…");
      setText($("#transcribe-status"), "Uploaded; the service is transcribing.");
    });
    const end = () => {
      clearInterval(tick);
      this.request = null;
      this.busy(false);
    };
    xhr.addEventListener("load", () => {
      end();
      this.answer(xhr, file, (performance.now() - started) / 1000);
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
    xhr.open("POST", ENDPOINT);
    xhr.setRequestHeader("accept", "application/json");
    for (const [name, value] of Object.entries(DASHBOARD_HEADER)) xhr.setRequestHeader(name, value);
    xhr.send(form);
  }

  answer(xhr, file, seconds) {
    const body = parseBody(xhr.responseText);
    if (xhr.status === 200 && body && typeof body === "object" && Array.isArray(body.segments)) {
      this.result = { body, text: xhr.responseText, name: file.name };
      this.render(body, xhr.getResponseHeader("X-ASR-Backend"), xhr.getResponseHeader("X-ASR-Fallback-Reason"));
      setText($("#transcribe-status"), `Done in ${duration(seconds)}: ${plural(body.segments.length, "segment")}, ${plural(speakerIds(body).length, "speaker")}.`);
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
    }[xhr.status];
    this.fail(`HTTP ${xhr.status}: ${message}`, hint);
    if (xhr.status >= 500) show($("#transcribe-retry"), true);
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
    $("#transcribe-submit").disabled = on;
    show($("#transcribe-cancel"), on);
    show($("#transcribe-progress"), on);
    if (on) show($("#transcribe-retry"), false);
  }

  fail(message, hint = "") {
    const box = $("#transcribe-error");
    box.replaceChildren();
    if (message) box.append(el("strong", {}, message), hint ? el("p", { class: "hint" }, hint) : null);
    show(box, Boolean(message));
    if (message) setText($("#transcribe-status"), "");
  }

  render(body, backend, fallbackReason) {
    const ids = speakerIds(body);
    const colour = (id) => (id == null ? "spk-none" : `spk-${ids.indexOf(id) % PALETTE_SIZE}`);
    const which = backend ?? body.backend ?? "unknown";
    const badge = $("#transcript-backend");
    setText(badge, which === "whisperx" ? "Backend: WhisperX" : which === "legacy" ? "Backend: legacy (Parakeet + Sortformer)" : `Backend: ${which}`);
    badge.className = `badge ${which === "whisperx" ? "ok" : "warn"}`;
    const facts = [
      body.model && `model ${body.model}`,
      body.language && `language ${body.language}`,
      body.duration != null && `${duration(body.duration)} of audio`,
      body.timings?.total_s != null && `took ${duration(body.timings.total_s)}`,
    ].filter(Boolean);
    setText($("#transcript-facts"), facts.join(" · "));
    setText($("#transcript-fallback"), fallbackReason ? `WhisperX was not used: ${fallbackReason}` : "");
    show($("#transcript-fallback"), Boolean(fallbackReason));

    const talk = new Map((body.speakers ?? []).map((s) => [s.id, s.duration]));
    $("#transcript-speakers").replaceChildren(
      ...ids.map((id) => el("li", { class: colour(id) }, talk.has(id) ? `${id} · ${duration(talk.get(id))}` : id)),
    );
    const segments = body.segments.map((segment) =>
      el(
        "li",
        { class: colour(segment.speaker) },
        el(
          "div",
          { class: "seg-head" },
          el("span", { class: "seg-speaker" }, segment.speaker ?? "unknown speaker"),
          el("span", { class: "seg-time" }, `${position(segment.start)} – ${position(segment.end)}`),
        ),
        el("p", { class: "seg-text" }, String(segment.text ?? "").trim()),
      ),
    );
    if (!segments.length) segments.push(el("li", { class: "spk-none" }, "No speech was found in this file."));
    $("#transcript-segments").replaceChildren(...segments);
    show($("#transcript"), true);
  }

  download() {
    if (!this.result) return;
    const blob = new Blob([this.result.text], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: `${this.result.name.replace(/\.[^.]+$/, "")}.transcript.json` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async copy() {
    if (!this.result) return;
    const text = this.result.body.segments
      .map((s) => `[${position(s.start)}] ${s.speaker ?? "?"}: ${String(s.text ?? "").trim()}`)
      .join("\n");
    try {
      await navigator.clipboard.writeText(text);
      toast("Transcript copied.", "ok");
    } catch {
      toast("The browser refused the clipboard (it needs HTTPS or localhost): use Download JSON.", "bad");
    }
  }
}

/** Speaker ids in order: the response's speaker list first, then any other a segment names. */
export function speakerIds(body) {
  const ids = (body.speakers ?? []).map((s) => s.id);
  for (const segment of body.segments ?? []) {
    if (segment.speaker != null && !ids.includes(segment.speaker)) ids.push(segment.speaker);
  }
  return ids;
}
