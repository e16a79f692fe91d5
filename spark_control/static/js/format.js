// Durations and times as people read them.

/** 7 -> "0:07", 754 -> "12:34", 3723 -> "1:02:03" (elapsed clocks). */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** A position in audio: 5.24 -> "0:05.2", 3725.1 -> "1:02:05.1". */
export function position(seconds) {
  const t = Math.max(0, Number(seconds) || 0);
  const whole = Math.floor(t);
  const tenth = Math.floor((t - whole) * 10);
  return `${clock(whole)}.${tenth}`;
}

/** Seconds ago, for "checked 12 s ago". */
export function ago(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "never";
  const s = Math.max(0, seconds);
  if (s < 2) return "just now";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** An ISO timestamp as local time, for tooltips. */
export function localTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

/** Seconds since an ISO timestamp, by this browser's clock (use server ages where the API gives them). */
export function secondsSince(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : (Date.now() - t) / 1000;
}

export function duration(seconds) {
  const s = Number(seconds) || 0;
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  return clock(s);
}

export function bytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}

/**
 * The message of an Ansible failure line ('fatal: [host]: FAILED! => {"msg": "..."}'), else the
 * first non-empty line; the whole text stays available where the details are shown.
 */
export function failureMessage(text) {
  const raw = String(text ?? "");
  const result = raw.match(/=> (\{[\s\S]*\})\s*$/);
  if (result) {
    try {
      const parsed = JSON.parse(result[1]);
      const message = parsed.msg ?? parsed.message ?? parsed.stderr ?? parsed.reason;
      if (typeof message === "string" && message.trim()) return message.trim();
    } catch {
      // not JSON after all: fall through to the first line
    }
  }
  const line = raw.split("\n").find((l) => l.trim()) ?? "";
  return line.length > 300 ? `${line.slice(0, 300)}…` : line.trim();
}
