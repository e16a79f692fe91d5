// A confirmation step for actions that are hard to undo (remove, stop, cancel).

import { $, setText } from "./dom.js";

/** Resolves true when the operator confirms; Escape and "Keep it" resolve false. */
export function confirmAction({ title, body, confirm = "Confirm", cancel = "Keep it" }) {
  const dialog = $("#confirm-dialog");
  setText($("#confirm-title"), title);
  setText($("#confirm-body"), body);
  setText($("#confirm-ok"), confirm);
  setText($("#confirm-cancel"), cancel);
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("#confirm-cancel").focus(); // the safe choice has the focus
  });
}
