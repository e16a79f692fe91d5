// The Voices card: the voice library (GET /api/voices) to list, listen to, add from a clip and delete, and the
// "Name this speaker" dialog a transcript's speaker chips open (POST .../speakers/<label>/voice).

import { api, ApiError, DASHBOARD_HEADER, errorMessage, parseBody } from "./api.js";
import { confirmAction } from "./confirm.js";
import { $, busy, el, setText, show, toast } from "./dom.js";
import { duration, plural } from "./format.js";
import { sessionExpired, signIn } from "./session.js";

export class VoicesCard {
  constructor() {
    this.list = $("#voices-list");
    this.drawn = null;
    $("#voice-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.add();
    });
  }

  async refresh() {
    let page;
    try {
      page = await api("/api/voices", { prompt: false });
    } catch (error) {
      this.say(`The voice library is unavailable: ${error.message}`);
      return;
    }
    const voices = page.data ?? [];
    const drawn = JSON.stringify(voices);
    if (drawn !== this.drawn) this.list.replaceChildren(...voices.map((voice) => this.item(voice))); // a playing clip plays on
    this.drawn = drawn;
    setText($("#voices-count"), `${voices.length} of ${page.limit}`);
    this.say(voices.length ? "" : "No voices yet: add a clip of someone speaking, or name a speaker of a transcript.");
  }

  say(text) {
    setText($("#voices-empty"), text);
    show($("#voices-empty"), Boolean(text));
  }

  item(voice) {
    const newest = voice.clips[voice.clips.length - 1];
    const from = newest?.source?.kind === "job" ? `from ${newest.source.speaker} of a transcript` : "from a clip";
    const facts = [plural(voice.clips.length, "clip"), newest ? `${duration(newest.duration)} ${from}` : null].filter(Boolean);
    return el(
      "li",
      { dataset: { voice: voice.id } },
      el("div", { class: "voice-what" }, el("span", { class: "voice-name" }, voice.name), el("span", { class: "detail" }, facts.join(" · "))),
      newest ? el("audio", { controls: true, preload: "none", src: newest.url, "aria-label": `${voice.name}'s newest clip` }) : null,
      el("button", { type: "button", class: "danger", onclick: () => this.remove(voice) }, "Delete"),
    );
  }

  async add() {
    const name = $("#voice-name").value.trim();
    const file = $("#voice-file").files[0];
    if (!name || !file) {
      toast(name ? "Choose a clip of 2–30 s of the person speaking." : "Give the voice a name.", "bad");
      (name ? $("#voice-file") : $("#voice-name")).focus();
      return;
    }
    const form = new FormData();
    form.append("name", name);
    form.append("file", file);
    await busy($("#voice-add"), async () => {
      try {
        await upload(form);
        toast(`${name} is in the library: transcripts name them from now on.`, "ok");
        $("#voice-form").reset();
      } catch (error) {
        toast(`The voice was not added: ${error.message}`, "bad");
      }
    }, "Adding…");
    await this.refresh();
  }

  async remove(voice) {
    const ok = await confirmAction({
      title: `Delete ${voice.name}?`,
      body: "Their clips are deleted, and transcripts stop naming them. Transcripts already made keep the name.",
      confirm: "Delete",
    });
    if (!ok) return;
    try {
      await api(`/api/voices/${encodeURIComponent(voice.id)}`, { method: "DELETE", why: "Deleting a voice needs the API token." });
      toast(`${voice.name}: deleted.`, "ok");
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) toast(`It could not be deleted: ${error.message}`, "bad");
    }
    await this.refresh();
  }
}

/** POST /api/voices (multipart), signing in once when the session is missing or expired. */
async function upload(form, again = true) {
  const response = await fetch("/api/voices", { method: "POST", body: form, credentials: "same-origin", headers: DASHBOARD_HEADER });
  if (response.status === 401) {
    sessionExpired();
    if (again) {
      await signIn("Adding a voice needs the API token.");
      return upload(form, false);
    }
  }
  const body = parseBody(await response.text());
  if (!response.ok) throw new ApiError(response.status, errorMessage(body, response.status), body);
  return body;
}

/** Asks for a name for `label`; resolves the name, or null when the operator cancels. */
export function askName(label) {
  const dialog = $("#name-dialog");
  setText($("#name-title"), `Who is ${label}?`);
  $("#name-input").value = "";
  dialog.returnValue = "";
  $("#name-cancel").onclick = () => dialog.close("cancel"); // a plain button: Enter in the field means Name
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? $("#name-input").value.trim() || null : null), { once: true });
    dialog.showModal();
    $("#name-input").focus();
  });
}

/** Names speaker `label` of finished job `jobId`: the transcript says the name, the library keeps the voice. */
export async function nameSpeaker(jobId, label, name) {
  return api(`/api/audio/jobs/${encodeURIComponent(jobId)}/speakers/${encodeURIComponent(label)}/voice`, {
    method: "POST",
    json: { name },
    why: "Naming a speaker needs the API token.",
  });
}
