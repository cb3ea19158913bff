// Guest sessions, signing up, in and out.

import { graphql, identity } from "./api.js";
import { loadCart, setCart } from "./cart.js";
import { announce, closeDialog, openDialog } from "./dom.js";
import { ws, watchOrders } from "./feeds.js";
import { mergeReportText, userErrorText } from "./format.js";
import { loadOrders, renderOrders } from "./orders.js";
import * as Q from "./queries.js";
import { el, errorText, state } from "./store.js";

let sessionPromise = null;

export function ensureSession() {
  if (identity.signedIn || identity.sessionId) return Promise.resolve();
  sessionPromise ||= graphql(Q.START_SESSION)
    .then((data) => {
      identity.sessionId = data.startSession.sessionId;
    })
    .finally(() => {
      sessionPromise = null;
    });
  return sessionPromise;
}

export function renderAccount() {
  const signedIn = Boolean(state.me);
  el.signin.hidden = signedIn;
  el.signout.hidden = !signedIn;
  el.accountEmail.hidden = !signedIn;
  el.accountEmail.textContent = signedIn ? state.me.email : "";
  el.ordersLink.hidden = !signedIn;
  el.ordersSection.hidden = !signedIn;
}

export function signedOutLocally(message) {
  identity.token = null;
  identity.email = null;
  state.me = null;
  state.orders.clear();
  state.orderIds = [];
  renderAccount();
  renderOrders();
  watchOrders();
  ws.restart();
  if (message) announce(message, "info");
}

export async function tokenExpired() {
  signedOutLocally("Your sign-in has expired. Please sign in again.");
  await loadCart();
}

export function setAuthMode(mode) {
  state.authMode = mode;
  const register = mode === "register";
  el.authTitle.textContent = register ? "Create your account" : "Sign in";
  el.authSubmit.textContent = register ? "Create account" : "Sign in";
  el.modeSignin.setAttribute("aria-pressed", String(!register));
  el.modeRegister.setAttribute("aria-pressed", String(register));
  el.authPassword.autocomplete = register ? "new-password" : "current-password";
  el.authError.textContent = "";
  for (const input of [el.authEmail, el.authPassword]) input.removeAttribute("aria-invalid");
}

export function openAuth(mode = "signin", intro = "") {
  setAuthMode(mode);
  el.authIntro.textContent = intro || "Sign in to check out and see your orders. Anything in your cart comes with you.";
  closeDialog(el.drawer);
  openDialog(el.authDialog, el.authEmail);
}

function fieldInput(field) {
  if (field === "email") return el.authEmail;
  if (field === "password") return el.authPassword;
  return null;
}

export async function submitAuth(event) {
  event.preventDefault();
  const email = el.authEmail.value.trim();
  const password = el.authPassword.value;
  el.authError.textContent = "";
  for (const input of [el.authEmail, el.authPassword]) input.removeAttribute("aria-invalid");
  if (!email || !el.authEmail.checkValidity()) {
    el.authEmail.setAttribute("aria-invalid", "true");
    el.authError.textContent = "Please enter a valid email address.";
    el.authEmail.focus();
    return;
  }
  if (password.length < 8) {
    el.authPassword.setAttribute("aria-invalid", "true");
    el.authError.textContent = "Your password needs at least 8 characters.";
    el.authPassword.focus();
    return;
  }
  const register = state.authMode === "register";
  const label = el.authSubmit.textContent;
  el.authSubmit.disabled = true;
  el.authSubmit.textContent = register ? "Creating account…" : "Signing in…";
  try {
    const data = await graphql(register ? Q.REGISTER : Q.LOGIN, { email, password });
    const result = register ? data.register : data.login;
    if (result.errors.length) {
      el.authError.textContent = result.errors.map((e) => userErrorText(e)).join(" ");
      const input = fieldInput(result.errors[0].field);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
      return;
    }
    const reopenCart = state.afterAuth === "cart";
    state.afterAuth = null;
    identity.token = result.token;
    identity.email = result.customer.email;
    state.me = result.customer;
    el.authPassword.value = "";
    renderAccount();
    ws.restart();
    const merged = mergeReportText(result.cartMerge);
    state.cartNotice = merged;
    setCart(result.cart);
    closeDialog(el.authDialog);
    announce(
      `${register ? "Welcome! Your account is ready" : "Welcome back"}, ${result.customer.email}.${merged ? ` ${merged}` : ""}`,
      "success",
    );
    loadOrders();
    if (reopenCart) openDialog(el.drawer);
  } catch (err) {
    el.authError.textContent = errorText(err);
  } finally {
    el.authSubmit.disabled = false;
    el.authSubmit.textContent = label;
  }
}

export async function signOut() {
  el.signout.disabled = true;
  try {
    await graphql(Q.LOGOUT);
  } catch {
    /* the token is forgotten here either way */
  } finally {
    el.signout.disabled = false;
  }
  signedOutLocally("You're signed out.");
  state.cartNotice = "";
  await loadCart();
}

export function wireAccount() {
  el.signin.addEventListener("click", () => openAuth("signin"));
  el.signout.addEventListener("click", signOut);
  el.modeSignin.addEventListener("click", () => setAuthMode("signin"));
  el.modeRegister.addEventListener("click", () => setAuthMode("register"));
  el.authForm.addEventListener("submit", submitAuth);
  // Closed without signing in: a later sign-in from the header should not pop the cart open.
  el.authDialog.addEventListener("close", () => {
    if (!state.me) state.afterAuth = null;
  });
}
