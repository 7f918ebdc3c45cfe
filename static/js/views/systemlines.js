// Room events (member, topic) as one line of text, and as the system line a room's thread shows (text only, never HTML).

import { el } from "../dom.js";
import { messageTime } from "../format.js";

const DONE_BY = { invited: "invited", kicked: "kicked", banned: "banned", unbanned: "unbanned" };

function nameOf(raw) {
  return typeof raw === "string" && raw ? raw : "someone";
}

function memberText(ev) {
  const user = nameOf(ev.user);
  const by = nameOf(ev.by);
  const topic = typeof ev.topic === "string" && ev.topic ? " (topic: " + ev.topic + ")" : "";
  if (ev.change === "joined") return ev.created ? user + " created the room" + topic : user + " joined";
  if (ev.change === "left") return user + " left";
  if (ev.change in DONE_BY) return user + " was " + DONE_BY[ev.change] + " by " + by;
  if (ev.change === "role") return by + " made " + user + " " + (ev.role === "moderator" ? "a moderator" : "a " + nameOf(ev.role));
  return null;
}

// The text of a "member" or "topic" event, or null when it is neither (or a change this page does not know).
export function systemText(ev) {
  if (!ev || typeof ev !== "object") return null;
  if (ev.type === "member") return memberText(ev);
  if (ev.type === "topic") {
    const topic = typeof ev.topic === "string" ? ev.topic : "";
    return topic ? nameOf(ev.user) + " set the topic to “" + topic + "”" : nameOf(ev.user) + " cleared the topic";
  }
  return null;
}

export function isRoomEvent(ev) {
  return Boolean(ev) && (ev.type === "member" || ev.type === "topic");
}

// The thread's line for one event: its text and time, centred, not a message bubble.
export function buildSystemLine(text, t) {
  const li = el("li", "sys");
  li.dataset.t = String(t);
  li.appendChild(el("span", "sys-text", text));
  const time = el("time", "sys-time", messageTime(t));
  time.dateTime = new Date(t).toISOString();
  li.appendChild(time);
  return li;
}
