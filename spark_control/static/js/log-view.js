// A live log that stays responsive for hours of build output: lines are added once per animation frame,
// the DOM keeps only the newest `maxLines`, and it follows the end unless the reader scrolled up.

import { el, setText } from "./dom.js";

const KINDS = [
  [/^(fatal|failed):|^ERROR!/m, "fatal"],
  [/^(TASK|PLAY|RUNNING HANDLER) \[|^PLAY RECAP/, "task"],
  [/^changed:/, "changed"],
];

export function lineKind(text) {
  for (const [pattern, kind] of KINDS) if (pattern.test(text)) return kind;
  return "";
}

export class LogView {
  constructor(container, { maxLines = 2000, onFollowChange = () => {}, droppedHint = "" } = {}) {
    this.container = container;
    this.maxLines = maxLines;
    this.onFollowChange = onFollowChange;
    this.droppedHint = droppedHint;
    this.queue = [];
    this.lines = 0; // .line elements in the DOM
    this.total = 0; // lines received
    this.dropped = 0; // lines received but no longer (or never) in the DOM
    this.follow = true;
    this.frame = 0;
    this.note = null;
    container.addEventListener("scroll", () => {
      const atEnd = container.scrollHeight - container.scrollTop - container.clientHeight < 24;
      if (atEnd !== this.follow) {
        this.follow = atEnd;
        this.onFollowChange(atEnd);
      }
    });
  }

  append(text, kind = lineKind(text)) {
    this.total += 1;
    this.queue.push([text, kind]);
    if (this.queue.length > this.maxLines) {
      // A hidden tab gets no animation frames: drop from the queue too, so memory stays bounded.
      const extra = this.queue.length - this.maxLines;
      this.queue.splice(0, extra);
      this.dropped += extra;
    }
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    const run = () => this.flush();
    this.frame = requestAnimationFrame(run);
    this.timer = setTimeout(run, 250); // animation frames pause in background tabs; timers only slow down
  }

  flush() {
    cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
    this.frame = 0;
    if (!this.queue.length) return;
    const fragment = document.createDocumentFragment();
    for (const [text, kind] of this.queue) fragment.append(el("div", { class: kind ? `line ${kind}` : "line" }, text));
    this.lines += this.queue.length;
    this.queue = [];
    this.container.append(fragment);
    while (this.lines > this.maxLines) {
      this.container.querySelector(".line")?.remove();
      this.lines -= 1;
      this.dropped += 1;
    }
    if (this.dropped) this.showDropped();
    if (this.follow) this.scrollToEnd();
  }

  showDropped() {
    if (!this.note) {
      this.note = el("div", { class: "dropped" });
      this.container.prepend(this.note);
    }
    setText(this.note, `… ${this.dropped} earlier lines are not shown here. ${this.droppedHint}`.trim());
  }

  scrollToEnd() {
    this.container.scrollTop = this.container.scrollHeight;
    if (!this.follow) {
      this.follow = true;
      this.onFollowChange(true);
    }
  }

  clear() {
    cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
    this.frame = 0;
    this.queue = [];
    this.lines = this.total = this.dropped = 0;
    this.note = null;
    this.container.replaceChildren();
    this.follow = true;
  }
}
