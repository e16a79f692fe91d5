// The managed services table: state, health, watchdog, deep check, and start/stop/restart/deep-check.
// Rows are kept per service across refreshes, so focus and the last action's feedback survive a poll.

import { api, coalesced } from "./api.js";
import { confirmAction } from "./confirm.js";
import { $, el, setText } from "./dom.js";
import { ago, duration, failureMessage, localTime, plural, secondsSince } from "./format.js";
import { ensureSignedIn, SignInCanceled } from "./session.js";

const ACTIONS = [
  ["start", "Start", "Starting…"],
  ["stop", "Stop", "Stopping…"],
  ["restart", "Restart", "Restarting…"],
  ["deep-check", "Deep check", "Checking…"],
];
const DONE = { start: "Started", stop: "Stopped", restart: "Restarted" };

export class ServicesTable {
  constructor({ onChange = () => {}, notice = () => {} } = {}) {
    this.body = $("#services-body");
    this.rows = new Map();
    this.onChange = onChange;
    this.notice = notice;
    this.refresh = coalesced(() => this.load()); // GET and render; callers after an action see its result
  }

  async load() {
    let services;
    try {
      services = await api("/api/services");
    } catch (error) {
      const why = error.status === 401 ? "sign in (top right) to see them" : error.message;
      this.notice("services", `The services are unavailable: ${why}`);
      return;
    }
    this.notice("services", "");
    if (this.body.querySelector("td[colspan]")) this.body.replaceChildren();
    const names = new Set(services.map((s) => s.name));
    for (const [name, row] of this.rows) {
      if (!names.has(name)) {
        row.tr.remove();
        this.rows.delete(name);
      }
    }
    for (const service of services) {
      const row = this.rows.get(service.name) ?? this.addRow(service);
      row.service = service;
      this.renderRow(row);
    }
    setText($("#services-checked"), services.length ? "health checked just now" : "");
  }

  addRow(service) {
    const cell = (label) => el("td", { "data-label": label });
    const row = {
      tr: el("tr", { dataset: { service: service.name } }),
      name: cell("Service"),
      state: cell("State"),
      health: cell("Health"),
      watchdog: cell("Watchdog"),
      check: cell("Deep check"),
      actions: el("td", { class: "actions-cell" }),
      buttons: {},
      feedback: el("span", { class: "feedback", role: "status" }),
      busy: false,
    };
    const group = el("div", { class: "actions", role: "group", "aria-label": `Actions for ${service.title}` });
    for (const [action, label, doing] of ACTIONS) {
      const button = el("button", { type: "button", class: "secondary small", dataset: { action } }, label);
      button.setAttribute("aria-label", `${label} ${service.title}`);
      button.addEventListener("click", () => this.act(row, action, label, doing));
      row.buttons[action] = button;
      group.append(button);
    }
    row.actions.append(group, row.feedback);
    row.tr.append(row.name, row.state, row.health, row.watchdog, row.check, row.actions);
    this.body.append(row.tr);
    this.rows.set(service.name, row);
    return row;
  }

  renderRow(row) {
    const s = row.service;
    fill(row.name, el("span", { class: "svc-title" }, s.title), detail(`${s.container} on ${s.host_group}`));

    const stoppedOnPurpose = s.intent === "stopped";
    const stateTone = s.state === "running" ? "ok" : s.state === "unknown" ? "" : stoppedOnPurpose ? "warn" : "bad";
    fill(
      row.state,
      badge(s.state, stateTone),
      stoppedOnPurpose ? detail("stopped on request") : null,
      s.state_at ? detail(`seen ${ago(secondsSince(s.state_at))}`, localTime(s.state_at)) : null,
    );

    const h = s.health;
    fill(
      row.health,
      badge(s.healthy ? "healthy" : "unhealthy", s.healthy ? "ok" : "bad"),
      detail(s.healthy ? `${Math.round(h.latency_ms)} ms` : (h.error ?? "no answer"), h.url),
    );

    const w = s.watchdog ?? {};
    const restarts = w.restarts ?? [];
    const last = restarts[0];
    const comingUp = Boolean(w.enabled && w.start_grace_until && !s.healthy);
    let watch;
    if (w.gave_up_at) watch = badge("gave up", "bad");
    else if (!w.enabled) watch = badge(stoppedOnPurpose ? "paused" : "off", "");
    else if (comingUp) watch = badge("coming up", "");
    else watch = badge(w.consecutive_failures ? `${w.consecutive_failures}/${w.threshold} failed` : "watching", w.consecutive_failures ? "warn" : "ok");
    fill(
      row.watchdog,
      watch,
      detail(`${plural(restarts.length, "restart")}, ${w.restarts_last_hour ?? 0} in the last hour`),
      last ? detail(`last ${ago(secondsSince(last.at))}: ${last.state}${last.reason ? ` (${last.reason})` : ""}`, localTime(last.at)) : null,
      w.gave_up_at ? detail(`after ${w.max_restarts_per_hour} restarts in an hour, ${localTime(w.gave_up_at)}; start it to resume`) : null,
      comingUp ? detail(`just (re)started: failed checks count once it answers, or from ${localTime(w.start_grace_until)}`) : null,
    );

    const c = s.deep_check;
    fill(
      row.check,
      c ? badge(c.ok ? "passed" : "failed", c.ok ? "ok" : "bad") : detail("not run yet"),
      c ? detail(`${ago(secondsSince(c.at))}, ${duration(c.latency_ms / 1000)}`, localTime(c.at)) : null,
      c && !c.ok && c.error ? detail(failureMessage(c.error)) : null,
    );

    if (!row.busy) this.enable(row);
  }

  enable(row) {
    const s = row.service;
    const running = s.state === "running" && s.healthy;
    const stopped = ["exited", "stopped", "created", "dead"].includes(s.state);
    row.buttons.start.disabled = running;
    row.buttons.stop.disabled = stopped;
    row.buttons.restart.disabled = false;
    row.buttons["deep-check"].disabled = stopped;
  }

  async act(row, action, label, doing) {
    const s = row.service;
    if (action === "stop") {
      const confirmed = await confirmAction({
        title: `Stop ${s.title}?`,
        body:
          `The ${s.container} container stops and stays stopped: the watchdog does not restart a service ` +
          "stopped on request. Clients of it get errors until it is started again.",
        confirm: `Stop ${s.title}`,
      });
      if (!confirmed) return;
    }
    const button = row.buttons[action];
    const started = performance.now();
    try {
      await ensureSignedIn(`${label} needs the API token.`);
    } catch {
      return;
    }
    row.busy = true;
    for (const b of Object.values(row.buttons)) b.disabled = true;
    button.setAttribute("aria-busy", "true");
    say(row, `${doing}`, "");
    try {
      const result = await api(`/api/services/${encodeURIComponent(s.name)}/${action}`, { method: "POST" });
      const took = duration((performance.now() - started) / 1000);
      if (action === "deep-check") {
        const heard = result.heard ? `: heard “${result.heard}”` : "";
        if (result.ok) say(row, `Deep check passed in ${took}${heard}.`, "ok");
        else say(row, `Deep check failed: ${result.error ?? "no reason given"}`, "bad");
      } else {
        say(row, `${DONE[action]} in ${took}.`, "ok");
      }
    } catch (error) {
      if (error instanceof SignInCanceled) {
        say(row, "", "");
      } else if (error.status === 409) {
        say(row, `Busy: ${error.message}. Try again when it has finished.`, "bad");
      } else if (error.status === 502 || error.status === 504) {
        const raw = error.body?.error;
        const why = raw ? failureMessage(raw) : error.status === 504 ? "still running after the time limit" : "the playbook failed";
        say(row, `${label} failed: ${why}`, "bad", raw);
      } else {
        say(row, `${label} failed: ${error.message}`, "bad");
      }
    } finally {
      button.removeAttribute("aria-busy");
      row.busy = false;
      this.enable(row);
      await this.refresh();
      this.onChange(s.name);
    }
  }
}

function say(row, text, tone, details = "") {
  setText(row.feedback, text);
  row.feedback.className = `feedback ${tone}`.trim();
  row.feedback.title = details ?? "";
}

function fill(cell, ...children) {
  cell.replaceChildren(...children.filter(Boolean));
}

function badge(text, tone) {
  return el("span", { class: `badge ${tone}`.trim() }, text);
}

function detail(text, title) {
  return el("span", { class: "detail", title }, text);
}
