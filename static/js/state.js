// The store: who this page is, its conversations (each with its message list and read state), who is online; changed only through these functions.

import { GROUP } from "./config.js";
import { el } from "./dom.js";

let myName = null;
let admin = false; // the welcome said this user is a server admin (the server still checks every action)
let active = null; // the open conversation
let lastId = 0; // the newest message id this page has seen live or in a replay
let seq = 0; // numbers the refs of sends and history requests
const convs = new Map(); // key -> conversation
const online = new Set();

export function me() {
  return myName;
}

export function setMe(name) {
  myName = name;
}

export function isAdmin() {
  return admin;
}

export function setAdmin(isAdmin) {
  admin = isAdmin === true;
}

// ---- conversations: read their fields anywhere, change them only here ----

// The conversation with `key` ("*", "#ROOM" or a user name), created empty on first use.
export function conversation(key) {
  let c = convs.get(key);
  if (!c) {
    c = {
      key: key,
      list: el("ol", "thread"), // its messages, shown while it is open
      byId: new Map(), // message id -> its <li>
      unread: 0, // as the server counts it (messages of others after its read marker), plus those since
      mentions: 0, // how many of the unread ones mention this user (general and rooms), as unread is counted
      read: 0, // the server's read marker: the newest message id read, in any tab or device
      counted: 0, // the newest id of another user's message the unread count accounts for
      newest: 0, // the newest message id shown in its thread
      loaded: false,
      loading: false,
      more: false,
      last: null, // {id, user, msg, t} of the newest message, for the list preview
    };
    c.list.dataset.conv = key;
    convs.set(key, c);
  }
  return c;
}

// The conversation with `key` if this page has it, or null.
export function findConversation(key) {
  return convs.get(key) || null;
}

// Forget conversation `key` (a room this user is no longer in): its messages, markers and counts.
export function dropConversation(key) {
  const c = convs.get(key);
  if (!c) return;
  convs.delete(key);
  if (active === c) active = null;
}

export function conversations() {
  return Array.from(convs.values());
}

export function activeConv() {
  return active;
}

export function setActive(c) {
  active = c;
}

export function setUnread(c, n) {
  c.unread = n;
  if (n === 0) c.mentions = 0; // nothing unread: no unread mention either
}

export function setMentions(c, n) {
  c.mentions = Math.min(n, c.unread);
}

export function countMention(c) {
  c.mentions += 1;
}

export function countUnread(c) {
  c.unread += 1;
}

// Markers only move forward, as on the server.
export function noteRead(c, id) {
  if (id > c.read) c.read = id;
}

export function noteCounted(c, id) {
  if (id > c.counted) c.counted = id;
}

export function startLoading(c) {
  c.loading = true;
}

export function finishLoading(c, more) {
  c.loading = false;
  c.loaded = true;
  c.more = more;
}

// The connection dropped: no history request is in flight any more.
export function stopLoading() {
  convs.forEach((c) => {
    c.loading = false;
  });
}

export function hasMessage(c, id) {
  return c.byId.has(id);
}

export function keepMessage(c, id, li) {
  c.byId.set(id, li);
  if (id > c.newest) c.newest = id;
}

// The list preview shows `last` if it is at least as new as what it shows.
export function noteLast(c, last) {
  if (!c.last || last.id >= c.last.id) c.last = last;
}

export function setLast(c, last) {
  c.last = last;
}

// ---- ids and refs ----

export function lastSeenId() {
  return lastId;
}

export function noteId(id) {
  if (typeof id === "number" && id > lastId) lastId = id;
}

export function nextSeq() {
  seq += 1;
  return seq;
}

// ---- who is online ----

export function isOnline(name) {
  return online.has(name);
}

// The server lists at most a page of names (max_online_listed) with the count of everyone online; presence changes
// keep both current, so the count is right even for names this page was never listed.
let onlineTotal = 0;

export function onlineCount() {
  return Math.max(onlineTotal, online.size);
}

export function onlineNames() {
  return Array.from(online);
}

export function setOnline(names, total) {
  online.clear();
  names.forEach((name) => online.add(name));
  if (myName) online.add(myName);
  onlineTotal = Number.isInteger(total) && total >= 0 ? total : online.size;
}

// One presence change; this page's own name never goes offline while it is here.
export function setPresence(name, isOn) {
  if (isOn) {
    if (!online.has(name)) onlineTotal += 1;
    online.add(name);
  } else if (name !== myName) {
    online.delete(name);
    onlineTotal = Math.max(0, onlineTotal - 1);
  }
}

// Leaving: forget the name, its conversations and who was online.
export function reset() {
  myName = null;
  lastId = 0;
  convs.clear();
  online.clear();
  onlineTotal = 0;
  active = null;
}
