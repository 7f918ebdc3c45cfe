// Slash commands typed in the composer (/join #r, /kick #r bob, /who…): sent as plain text frames, which the server reads as commands, and the answers meant for the reader (who, help, room) shown as a notice.

import { MAX_MESSAGE_SIZE } from "./config.js";
import { showNotice } from "./dom.js";
import * as socket from "./socket.js";

// Text the composer sends as a command: it starts with "/" but not "//" (which sends text starting with "/").
export function isCommand(text) {
  return text.charAt(0) === "/" && text.charAt(1) !== "/";
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
