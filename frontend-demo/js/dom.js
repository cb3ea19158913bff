// DOM helpers: build elements without innerHTML (product names and descriptions are data, not
// markup), and announce status messages through the page's aria-live region.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value == null) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

const TOAST_MS = 6000;

// kind: "info" | "success" | "error". The region is role="status" (polite); errors also get
// role="alert" on the toast itself so they interrupt.
export function announce(message, kind = "info") {
  if (!message) return;
  const region = byId("toasts");
  const toast = h(
    "div",
    { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : null },
    h("span", { class: "toast-text" }, message),
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss message" }, "×"),
  );
  const remove = () => toast.remove();
  toast.querySelector("button").addEventListener("click", remove);
  placeToasts(region);
  region.append(toast);
  while (region.children.length > 3) region.firstElementChild.remove();
  setTimeout(remove, kind === "error" ? TOAST_MS * 1.5 : TOAST_MS);
}

// While a modal dialog is open everything outside it is inert and under its backdrop, so the
// message region moves into the topmost open dialog, and back to the body when none is open.
function placeToasts(region = byId("toasts")) {
  const open = [...document.querySelectorAll("dialog[open]")];
  const host = open.length ? open[open.length - 1] : document.body;
  if (region.parentElement !== host) host.append(region);
}

// Native <dialog> gives focus trapping, inert background and Escape; this adds focus return.
export function openDialog(dialog, focusTarget) {
  if (dialog.open) return;
  dialog.returnFocusTo = document.activeElement;
  dialog.showModal();
  document.body.classList.add("has-dialog");
  placeToasts();
  const target = focusTarget || dialog.querySelector("[autofocus]") || dialog.querySelector("[data-close]");
  target?.focus();
}

export function closeDialog(dialog) {
  if (dialog.open) dialog.close();
}

export function wireDialog(dialog) {
  dialog.addEventListener("close", () => {
    if (!document.querySelector("dialog[open]")) document.body.classList.remove("has-dialog");
    placeToasts();
    // Back to where the shopper was; if that control is gone or hidden (say, "Check out" in a
    // drawer that closed), to the dialog's declared fallback.
    const back = dialog.returnFocusTo;
    dialog.returnFocusTo = null;
    const usable = (node) => node && node !== document.body && document.contains(node) && node.offsetParent !== null;
    const fallback = dialog.dataset.returnFocus && document.getElementById(dialog.dataset.returnFocus);
    if (usable(back)) back.focus();
    else if (usable(fallback)) fallback.focus();
  });
  dialog.addEventListener("click", (event) => {
    // A click on the backdrop lands on the <dialog> itself, outside its panel.
    if (event.target === dialog) dialog.close();
    if (event.target.closest("[data-close]")) dialog.close();
  });
  // Escape closes through the native "cancel" event; this also covers browsers that skip it.
  dialog.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && dialog.open) {
      event.preventDefault();
      dialog.close();
    }
  });
}
