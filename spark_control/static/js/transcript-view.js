// The transcript as the Transcribe card shows it: backend, facts, speakers, segments coloured by speaker,
// and its downloads. A job's segments arrive window by window (live, then append); a finished transcript
// is drawn whole (render). Text from the service is only ever set as text.

import { api, DASHBOARD_HEADER, errorMessage, parseBody } from "./api.js";
import { $, el, setText, show, toast } from "./dom.js";
import { duration, position } from "./format.js";
import { askName, nameSpeaker } from "./voices.js";

const PALETTE_SIZE = 8;
const EXTENSION = { json: "transcript.json", srt: "srt", vtt: "vtt", text: "txt", rttm: "rttm" };

/** `/api/audio/jobs/<id>/result?format=` as a file the browser saves; the server renders every format. */
export async function downloadResult(jobId, name, format) {
  const response = await fetch(`/api/audio/jobs/${encodeURIComponent(jobId)}/result?format=${format}`, {
    credentials: "same-origin",
    headers: DASHBOARD_HEADER,
  });
  if (!response.ok) {
    const body = parseBody(await response.text());
    throw new Error(`HTTP ${response.status}: ${errorMessage(body, response.status)}`);
  }
  save(await response.blob(), `${baseName(name)}.${EXTENSION[format]}`);
}

export function save(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function baseName(name) {
  return String(name || "transcript").replace(/\.[^.]+$/, "");
}

export class TranscriptView {
  /** onNamed(voice): a speaker was named, and the library has their voice. */
  constructor({ onNamed = () => {} } = {}) {
    this.onNamed = onNamed;
    this.box = $("#transcript");
    this.ids = []; // speaker ids in the order they were met: their colours
    this.segments = []; // what "Copy text" copies
    this.shown = null; // {name, jobId, body, text}: what the downloads are of
    $("#transcript-copy").addEventListener("click", () => this.copy());
    for (const button of this.box.querySelectorAll("[data-format]")) {
      button.addEventListener("click", () => this.download(button.dataset.format));
    }
  }

  clear() {
    show(this.box, false);
    this.ids = [];
    this.segments = [];
    this.shown = null;
    $("#transcript-speakers").replaceChildren();
    $("#transcript-segments").replaceChildren();
  }

  /** A job still running: segments come with `append` as its windows finish. */
  live(name, jobId) {
    this.clear();
    this.shown = { name, jobId };
    this.badge("whisperx");
    setText($("#transcript-facts"), `${name} · segments appear as each window finishes`);
    show($("#transcript-fallback"), false);
    show($("#transcript-actions"), false);
    show(this.box, true);
  }

  append(segments) {
    const list = $("#transcript-segments");
    const follow = list.scrollTop + list.clientHeight >= list.scrollHeight - 8; // at the end: stay there
    for (const segment of segments) this.addSegment(segment);
    this.drawSpeakers(new Map());
    if (follow) list.scrollTop = list.scrollHeight;
  }

  /** A finished transcript, whole: a job's (`jobId`: every format downloads) or a synchronous answer's. */
  render(body, { backend = null, fallbackReason = null, name, jobId = null, text = null }) {
    this.clear();
    this.shown = { name, jobId, body, text };
    this.ids = (body.speakers ?? []).map((s) => s.id);
    const which = backend ?? body.backend ?? "unknown";
    this.badge(which);
    const facts = [
      body.model && `model ${body.model}`,
      body.language && `language ${body.language}`,
      body.duration != null && `${duration(body.duration)} of audio`,
      body.timings?.total_s != null && `took ${duration(body.timings.total_s)}`,
    ].filter(Boolean);
    setText($("#transcript-facts"), facts.join(" · "));
    setText($("#transcript-fallback"), fallbackReason ? `WhisperX was not used: ${fallbackReason}` : "");
    show($("#transcript-fallback"), Boolean(fallbackReason));
    for (const segment of body.segments) this.addSegment(segment);
    if (!body.segments.length) $("#transcript-segments").append(el("li", { class: "spk-none" }, "No speech was found in this file."));
    this.drawSpeakers(new Map((body.speakers ?? []).map((s) => [s.id, s.duration])));
    for (const button of this.box.querySelectorAll("[data-format]")) show(button, Boolean(jobId) || button.dataset.format === "json");
    show($("#transcript-actions"), true);
    show(this.box, true);
  }

  speakerCount() {
    return this.ids.length;
  }

  // -- drawing ------------------------------------------------------------------------------------------
  badge(which) {
    const badge = $("#transcript-backend");
    const names = { whisperx: "Backend: WhisperX", legacy: "Backend: legacy (Parakeet + Sortformer)" };
    const host = String(which ?? "").match(/^whisperx@(.+)$/)?.[1]; // one of several GPU hosts
    setText(badge, host ? `Backend: WhisperX on ${host}` : names[which] ?? `Backend: ${which}`);
    badge.className = `badge ${which === "whisperx" || host ? "ok" : "warn"}`;
  }

  colour(id) {
    if (id == null) return "spk-none";
    if (!this.ids.includes(id)) this.ids.push(id);
    return `spk-${this.ids.indexOf(id) % PALETTE_SIZE}`;
  }

  addSegment(segment) {
    this.segments.push(segment);
    $("#transcript-segments").append(
      el(
        "li",
        { class: this.colour(segment.speaker) },
        el(
          "div",
          { class: "seg-head" },
          el("span", { class: "seg-speaker" }, segment.speaker ?? "unknown speaker"),
          el("span", { class: "seg-time" }, `${position(segment.start)} – ${position(segment.end)}`),
        ),
        el("p", { class: "seg-text" }, String(segment.text ?? "").trim()),
      ),
    );
  }

  drawSpeakers(talk) {
    const namable = Boolean(this.shown?.jobId && this.shown.body); // a finished job's transcript
    $("#transcript-speakers").replaceChildren(
      ...this.ids.map((id) =>
        el(
          "li",
          { class: this.colour(id), dataset: { speaker: id } },
          talk.has(id) ? `${id} · ${duration(talk.get(id))}` : id,
          namable
            ? el("button", { type: "button", class: "link small", "aria-label": `Name ${id}`, onclick: () => this.name(id) }, "Name")
            : null,
        ),
      ),
    );
  }

  // -- actions ------------------------------------------------------------------------------------------
  /** "Name this speaker": the job's transcript (and its downloads) say the name; the library keeps the voice. */
  async name(label) {
    const shown = this.shown;
    const name = await askName(label);
    if (!name || this.shown !== shown) return;
    try {
      const { voice } = await nameSpeaker(shown.jobId, label, name);
      const body = await api(`/api/audio/jobs/${encodeURIComponent(shown.jobId)}/result?format=json`);
      if (this.shown === shown) this.render(body, { backend: "whisperx", name: shown.name, jobId: shown.jobId });
      toast(`${label} is ${voice.name}: the next transcripts name them too.`, "ok");
      this.onNamed(voice);
    } catch (error) {
      toast(`${label} was not named: ${error.message}`, "bad");
    }
  }

  async download(format) {
    const shown = this.shown;
    if (!shown) return;
    if (!shown.jobId) {
      save(new Blob([shown.text ?? JSON.stringify(shown.body)], { type: "application/json" }), `${baseName(shown.name)}.${EXTENSION.json}`);
      return;
    }
    try {
      await downloadResult(shown.jobId, shown.name, format);
    } catch (error) {
      toast(`The ${format.toUpperCase()} download failed: ${error.message}`, "bad");
    }
  }

  async copy() {
    if (!this.segments.length) return;
    const text = this.segments
      .map((s) => `[${position(s.start)}] ${s.speaker ?? "?"}: ${String(s.text ?? "").trim()}`)
      .join("\n");
    try {
      await navigator.clipboard.writeText(text);
      toast("Transcript copied.", "ok");
    } catch {
      toast("The browser refused the clipboard (it needs HTTPS or localhost): use a download.", "bad");
    }
  }
}
