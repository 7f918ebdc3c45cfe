// The page's elements, building nodes (user text only as textContent), scrolling and the notice bar.

import { GROUP } from "./config.js";
import { colorClass } from "./format.js";

const $ = (id) => document.getElementById(id);

// Elements the template may leave out (no guests: no join-name; no uploads: no upload form) are null.
export const ui = {
  joinScreen: $("join-screen"),
  joinForm: $("join-form"),
  joinName: $("join-name"),
  joinError: $("join-error"),
  app: $("app"),
  meAvatar: $("me-avatar"),
  meName: $("me-name"),
  switchUser: $("switch-user"),
  conversations: $("conversations"),
  online: $("online"),
  onlineCount: $("online-count"),
  back: $("back"),
  backBadge: $("back-badge"),
  chatAvatar: $("chat-avatar"),
  chatTitle: $("chat-title"),
  chatSub: $("chat-sub"),
  conn: $("conn"),
  connText: $("conn-text"),
  banner: $("banner"),
  bannerText: $("banner-text"),
  retryNow: $("retry-now"),
  messages: $("messages"),
  loadOlder: $("load-older"),
  thread: $("thread"),
  empty: $("empty"),
  typing: $("typing"),
  partial: $("partial"),
  notice: $("notice"),
  noticeText: $("notice-text"),
  noticeClose: $("notice-close"),
  composer: $("composer"),
  input: $("input"),
  send: $("send"),
  chat: $("chat"),
  uploads: $("uploads"),
  dropOverlay: $("drop-overlay"),
  dropText: $("drop-text"),
  uploadForm: $("upload-form"),
  fileInput: $("file-input"),
  attach: $("attach"),
  roomsOpen: $("rooms-open"),
  notifyToggle: $("notify-toggle"),
  roomActions: $("room-actions"),
  roomTopic: $("room-topic"),
  roomMembers: $("room-members"),
  roomLeave: $("room-leave"),
  roomsDialog: $("rooms-dialog"),
  roomsClose: $("rooms-close"),
  roomsStatus: $("rooms-status"),
  roomsList: $("rooms-list"),
  roomsError: $("rooms-error"),
  createRoom: $("create-room"),
  createRoomName: $("create-room-name"),
  createRoomTopic: $("create-room-topic"),
  createRoomPrivate: $("create-room-private"),
  membersDialog: $("members-dialog"),
  membersTitle: $("members-title"),
  membersClose: $("members-close"),
  membersStatus: $("members-status"),
  membersList: $("members-list"),
  membersError: $("members-error"),
  membersDone: $("members-done"),
  memberTools: $("member-tools"),
  memberToolsName: $("member-tools-name"),
  memberBan: $("member-ban"),
  memberUnban: $("member-unban"),
  topicForm: $("topic-form"),
  topicInput: $("topic-input"),
  topicCancel: $("topic-cancel"),
  topicError: $("topic-error"),
  invitations: $("invitations"),
};

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export function setAvatar(node, key) {
  node.className = "avatar " + (key === GROUP ? "group" : colorClass(key)) + (key.charAt(0) === "#" ? " room" : "");
  const letter = key === GROUP ? "#" : ((key.match(/[a-z0-9]/) || [key.charAt(0)])[0] || "?").toUpperCase();
  node.textContent = letter;
}

// A small padlock (decorative: whoever shows it gives it a label).
export function lockIcon() {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "12");
  svg.setAttribute("height", "12");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(NS, "path");
  path.setAttribute("fill", "currentColor");
  path.setAttribute("d", "M17 9h-1V7a4 4 0 0 0-8 0v2H7a2 2 0 0 0-2 2v9a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2v-9a2 2 0 0 0-2-2zm-7-2a2 2 0 0 1 4 0v2h-4z");
  svg.appendChild(path);
  return svg;
}

// A link-styled button (Retry, Delete, Cancel) that calls `action` when clicked.
export function linkButton(text, action) {
  const button = el("button", "link-btn", text);
  button.type = "button";
  if (action) button.addEventListener("click", action);
  return button;
}

export function nearBottom() {
  const s = ui.messages;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
}

export function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

let noticeTimer = 0;

export function showNotice(text) {
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(hideNotice, 8000);
}

// Shown while this connection was let in without the database (a welcome marked "partial"), until the next welcome.
export function showPartial(text) {
  ui.partial.textContent = text || "";
  ui.partial.hidden = !text;
}

export function hideNotice() {
  ui.notice.hidden = true;
}
