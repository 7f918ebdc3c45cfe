// Who is typing: this page says so while its user writes (at most one "typing" a conversation every typing_interval), and shows who else is under the open conversation.

import { TYPING_INTERVAL_MS } from "./config.js";
import { ui } from "./dom.js";
import { keyOfWire, normalizeName, wireOfKey } from "./format.js";
import { isCommand } from "./slash.js";
import * as socket from "./socket.js";
import * as state from "./state.js";

const DEFAULT_TTL_S = 6; // the server's default typing_ttl, for an event that does not say
const MAX_TTL_S = 60;

const lastSent = new Map(); // conversation key -> when this page last said it types there (Infinity: the server refused it)
const refs = new Map(); // ref of the newest "typing" sent for each conversation -> its key
const typers = new Map(); // conversation key -> Map(user -> timer that ends their entry)

// The composer's text changed: say so in the open conversation, unless said recently or there is nothing written.
export function onInput() {
  const c = state.activeConv();
  if (!c || !ui.input.value.trim() || isCommand(ui.input.value.trim()) || !socket.isOpen()) return; // a command is no message
  const now = Date.now();
  const last = lastSent.get(c.key);
  if (last !== undefined && now - last < TYPING_INTERVAL_MS) return;
  lastSent.set(c.key, now);
  refs.forEach((key, ref) => key === c.key && refs.delete(ref));
  const ref = "t" + state.nextSeq();
  refs.set(ref, c.key);
  socket.send(Object.assign({ type: "typing" }, wireOfKey(c.key), { ref: ref }));
}

// An "error" with a ref: true when it refused a "typing" (e.g. no such user): that conversation is not told again.
export function refuse(ref) {
  if (!refs.has(ref)) return typeof ref === "string" && ref.charAt(0) === "t";
  lastSent.set(refs.get(ref), Infinity);
  refs.delete(ref);
  return true;
}

// A "typing" event: its user writes in that conversation; shown for its "ttl" seconds unless it comes again.
export function onTyping(ev) {
  const key = keyOfWire(ev);
  const user = normalizeName(ev.user);
  if (!key || !user || user === state.me()) return;
  const ttl = typeof ev.ttl === "number" && ev.ttl > 0 ? Math.min(ev.ttl, MAX_TTL_S) : DEFAULT_TTL_S;
  let users = typers.get(key);
  if (!users) {
    users = new Map();
    typers.set(key, users);
  }
  clearTimeout(users.get(user));
  users.set(user, setTimeout(() => stopped(key, user), ttl * 1000));
  render();
}

// `user` no longer types in conversation `key` (their entry expired, or their message arrived).
export function stopped(key, user) {
  const users = typers.get(key);
  if (!users || !users.has(user)) return;
  clearTimeout(users.get(user));
  users.delete(user);
  if (users.size === 0) typers.delete(key);
  render();
}

export function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return names[0] + " is typing…";
  if (names.length === 2) return names[0] + " and " + names[1] + " are typing…";
  return "several people are typing…";
}

// The line under the open conversation.
export function render() {
  const c = state.activeConv();
  const users = c ? typers.get(c.key) : undefined;
  const names = users ? Array.from(users.keys()) : [];
  ui.typing.textContent = typingText(names);
  ui.typing.hidden = names.length === 0;
}

// Leaving: nobody is shown typing, and this page has said nothing yet.
export function clear() {
  typers.forEach((users) => users.forEach((timer) => clearTimeout(timer)));
  typers.clear();
  lastSent.clear();
  refs.clear();
  render();
}
