// Small DOM helpers. Text from the API (logs, transcripts, errors) is only ever set as text, never as HTML.

export const $ = (selector, root = document) => root.querySelector(selector);

/** el("li", {class: "x", dataset: {phase: "ship"}}, "text", child) */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function show(node, visible = true) {
  node.hidden = !visible;
}

/** Marks a button busy (spinner, aria-busy) while `work` runs; returns work's result. */
export async function busy(button, work, label) {
  const original = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  if (label) button.textContent = label;
  try {
    return await work();
  } finally {
    button.removeAttribute("aria-busy");
    button.disabled = false;
    button.textContent = original;
  }
}

export function toast(message, kind = "info", timeoutMs = 6000) {
  const box = document.getElementById("toasts");
  const item = el("div", { class: `toast ${kind}` }, message);
  box.append(item);
  while (box.childElementCount > 4) box.firstElementChild.remove();
  setTimeout(() => item.remove(), timeoutMs);
}
