// "Recent transcripts": the jobs WhisperX keeps (GET /api/audio/jobs), newest first, each with its length,
// speakers and state, to open, download in any format, cancel or delete.

import { api, ApiError } from "./api.js";
import { confirmAction } from "./confirm.js";
import { $, el, setText, show, toast } from "./dom.js";
import { clock, plural } from "./format.js";
import { downloadResult } from "./transcript-view.js";

const SHOWN = 20;
const FORMATS = [
  ["json", "JSON"],
  ["srt", "SRT"],
  ["vtt", "VTT"],
  ["text", "Text"],
  ["rttm", "RTTM"],
];
export const RUNNING = new Set(["queued", "running"]);

export class RecentTranscripts {
  /** onOpen(job): show that job in the card (watch it when it runs). onDelete(id): it is gone. */
  constructor({ onOpen, onDelete }) {
    this.onOpen = onOpen;
    this.onDelete = onDelete;
    this.list = $("#recent-list");
    this.drawn = null; // the list as last drawn (JSON), so a poll that changes nothing redraws nothing
    $("#recent-refresh").addEventListener("click", () => this.refresh());
  }

  /** Reload the list; true when the job API answers, false when it is unavailable (no ready WhisperX). */
  async refresh() {
    let page;
    try {
      page = await api(`/api/audio/jobs?limit=${SHOWN}`, { prompt: false });
    } catch (error) {
      const unavailable = error instanceof ApiError && error.status === 503;
      this.list.replaceChildren();
      this.drawn = null;
      this.say(
        unavailable
          ? "Transcripts are kept as jobs on WhisperX, which is not available now: files are transcribed in one request instead."
          : `The list of transcripts is unavailable: ${error.message}`,
      );
      return !unavailable;
    }
    const jobs = page?.data ?? [];
    const drawn = JSON.stringify(jobs);
    if (drawn !== this.drawn) this.list.replaceChildren(...jobs.map((job) => this.item(job))); // an open menu stays open
    this.drawn = drawn;
    this.say(jobs.length ? "" : "No transcripts yet: the files you transcribe here are kept for a week.");
    return true;
  }

  say(text) {
    setText($("#recent-empty"), text);
    show($("#recent-empty"), Boolean(text));
  }

  item(job) {
    const running = RUNNING.has(job.status);
    const facts = [
      job.duration != null ? clock(job.duration) : null,
      job.speakers != null ? plural(job.speakers, "speaker") : null,
      running && job.progress ? `${job.status} · ${Math.round(100 * job.progress.fraction)} %` : job.status,
    ].filter(Boolean);
    const actions = el("div", { class: "actions" });
    if (job.status === "completed" || running) {
      actions.append(el("button", { type: "button", class: "secondary", onclick: () => this.onOpen(job) }, "Open"));
    }
    if (job.status === "completed") {
      const menu = el("details", { class: "menu" }, el("summary", {}, "Download"));
      const choices = el("div", { class: "menu-items" });
      for (const [format, label] of FORMATS) {
        choices.append(
          el("button", { type: "button", class: "secondary", onclick: () => this.download(job, format, menu) }, label),
        );
      }
      menu.append(choices);
      actions.append(menu);
    }
    actions.append(
      el(
        "button",
        { type: "button", class: running ? "secondary" : "danger", onclick: () => this.remove(job) },
        running ? "Cancel" : "Delete",
      ),
    );
    const error = job.status === "failed" && job.error?.message ? el("span", { class: "detail bad" }, job.error.message) : null;
    return el(
      "li",
      { dataset: { job: job.id, status: job.status } },
      el("div", { class: "recent-what" }, el("span", { class: "recent-name" }, job.filename), el("span", { class: "detail" }, facts.join(" · ")), error),
      actions,
    );
  }

  async download(job, format, menu) {
    menu.open = false;
    try {
      await downloadResult(job.id, job.filename, format);
    } catch (error) {
      toast(`The ${format.toUpperCase()} download failed: ${error.message}`, "bad");
    }
  }

  async remove(job) {
    const running = RUNNING.has(job.status);
    const ok = await confirmAction({
      title: running ? `Cancel ${job.filename}?` : `Delete ${job.filename}?`,
      body: running
        ? "The transcription stops within one window, and what it did so far is deleted with the upload."
        : "The transcript and everything kept with it are deleted from WhisperX.",
      confirm: running ? "Cancel it" : "Delete",
    });
    if (!ok) return;
    try {
      await api(`/api/audio/jobs/${encodeURIComponent(job.id)}`, { method: "DELETE" });
      toast(running ? `${job.filename}: canceled.` : `${job.filename}: deleted.`, "ok");
      this.onDelete(job.id);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        toast(`It could not be deleted: ${error.message}`, "bad");
        return;
      }
      this.onDelete(job.id);
    }
    await this.refresh();
  }
}
