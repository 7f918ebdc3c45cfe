// Slash commands typed in the composer (/join #r, /kick #r bob, /who…): sent as plain text frames, which the server reads as commands, and the answers meant for the reader (who, help, room) shown as a notice.

import { MAX_MESSAGE_SIZE } from "./config.js";
import { showNotice } from "./dom.js";
import { keyOfRoom, normalizeName } from "./format.js";
import * as rooms from "./rooms.js";
import * as socket from "./socket.js";
import * as state from "./state.js";

// Text the composer sends as a command: it starts with "/" but not "//" (which sends text starting with "/").
export function isCommand(text) {
  return text.charAt(0) === "/" && text.charAt(1) !== "/";
}

// "/say #r text" to a room this user is in, or "/msg NAME text" to someone else: {key, msg}, a message the page sends
// itself (pending until its ack, shown in that conversation, as the server would not echo it to this socket); else null.
export function asMessage(text) {
  const m = /^\/(say|msg)\s+(\S+)\s+([\s\S]*\S[\s\S]*)$/.exec(text);
  if (!m) return null;
  if (m[1] === "say") {
    const key = keyOfRoom(m[2].replace(/^#/, ""));
    return key && (key.charAt(0) !== "#" || rooms.isMember(key.slice(1))) ? { key: key, msg: m[3] } : null;
  }
  const name = normalizeName(m[2]);
  return name && name !== state.me() ? { key: name, msg: m[3] } : null;
}

// Send a typed command; false (with a notice) when it cannot go now, so the composer keeps it.
export function send(text) {
  if (!socket.isOpen()) {
    showNotice("Not connected: commands are sent once the chat is back.");
    return false;
  }
  if (new TextEncoder().encode(text).length > MAX_MESSAGE_SIZE) {
    showNotice("That command is too long to send.");
    return false;
  }
  socket.sendText(text);
  return true;
}

// The answer to /who, /help or /room (these have no view of their own).
export function onAnswer(ev) {
  if (ev.type === "help" && typeof ev.text === "string") showNotice(ev.text);
  else if (ev.type === "who" && Array.isArray(ev.online)) {
    const where = typeof ev.room === "string" ? " in #" + ev.room : "";
    showNotice("Online" + where + ": " + (ev.online.filter((n) => typeof n === "string").join(", ") || "nobody"));
  } else if (ev.type === "room" && typeof ev.room === "string") {
    showNotice("Your current room for commands is #" + ev.room + (typeof ev.topic === "string" && ev.topic ? " (" + ev.topic + ")" : "") + ".");
  }
}
