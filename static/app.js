// The chat page's entry: wires the modules under static/js/ to the page's elements and the socket, then joins.
/*
 * The chat page: a conversation list ("Everyone" and one entry per one-to-one chat), who is online,
 * and the open conversation, all over one WebSocket to /ws/NAME (protocol: docs/protocol.md).
 *
 * - Each conversation loads its history from the server when opened ({"type":"history","with":NAME}),
 *   and older pages on demand ("before": the oldest id shown): js/history.js.
 * - Sent messages look pending until their "ack" (matched by "ref"); an "error" with that "ref" is shown
 *   next to the message it refused; a message larger than the server's max_message_size is not sent: js/outbox.js.
 * - When the socket drops the page reconnects with backoff and asks for "?since=LAST_ID": everything it
 *   missed is replayed, and every message is kept once per id: js/socket.js, js/receive.js.
 * - The conversation list, read markers and unread counts are the server's (the welcome's "conversations", then
 *   "read" events from this user's other tabs and devices); the open conversation, while the tab is in front, is
 *   read up to its newest message ({"type":"read"}, at most one a conversation every 500 ms): js/reads.js.
 * - While the user writes, the page says so ({"type":"typing"}, at most once per typing_interval), and shows who else
 *   is typing in the open conversation, each for the event's "ttl" seconds or until their message: js/typing.js.
 * - Named rooms (docs/protocol.md, issue 14): the list shows the rooms this user is in (the welcome's list, then live
 *   "member" events: a room joined or created appears, one left, kicked or banned from disappears); a room's messages
 *   carry "room":R, its member and topic events are system lines in its thread, its header shows the topic. The Rooms
 *   dialog lists rooms (private and invited ones marked) with Join, and creates one; the header's Members and Leave act
 *   on the open room; private rooms have a lock in the list (the "rooms" listing says which, asked again after a join).
 *   Owners and moderators get the header's Topic editor and, in the Members dialog, Kick and Ban on those they outrank
 *   and a name field to invite, ban or unban; the owner makes moderators and members there. An invitation shows above
 *   the composer with Join until joined, dismissed or withdrawn: js/rooms.js, js/roomevents.js, js/roomcommands.js,
 *   js/invitations.js, js/views/roomspanel.js, js/views/memberspanel.js, js/views/roomheader.js,
 *   js/views/invitations.js, js/views/systemlines.js.
 * - A line typed starting with "/" (not "//") is a command the server reads (/join #r, /kick #r bob, /who…): it goes
 *   as a plain text frame; "//text" sends "/text": js/slash.js.
 * - User-supplied text is only ever inserted with textContent, never parsed as HTML: js/dom.js, js/views/.
 * - Files (signed-in users): dropped on the conversation, pasted, or picked with the attach button; each is
 *   uploaded with its own XHR (POST /files) and progress bar, and comes back as a message with an "attachment":
 *   a thumbnail that opens the picture in a new tab, or a download link with the file's name and size: js/uploads.js.
 */
import { begin, checkRefusal, credentialsEnded, leave, submitJoin } from "./js/accounts.js";
import { hideNotice, ui } from "./js/dom.js";
import { handle } from "./js/events.js";
import { isRoomKey, keyOfRoom } from "./js/format.js";
import * as history from "./js/history.js";
import * as lifecycle from "./js/lifecycle.js";
import "./js/messageactions.js";
import * as invitations from "./js/invitations.js";
import { openConv } from "./js/navigation.js";
import * as outbox from "./js/outbox.js";
import * as reads from "./js/reads.js";
import * as reply from "./js/reply.js";
import * as roomcommands from "./js/roomcommands.js";
import * as search from "./js/search.js";
import * as slash from "./js/slash.js";
import * as socket from "./js/socket.js";
import * as state from "./js/state.js";
import * as typing from "./js/typing.js";
import { enableUploads } from "./js/uploads.js";
import { renderInvitations } from "./js/views/invitations.js";
import * as members from "./js/views/memberspanel.js";
import { renderThreadChrome } from "./js/views/messages.js";
import * as header from "./js/views/roomheader.js";
import * as panel from "./js/views/roomspanel.js";

socket.init({
  onEvent: handle,
  onDrop() {
    outbox.connectionLost();
    history.clear();
    reads.connectionLost();
    roomcommands.connectionLost();
    lifecycle.connectionLost();
    state.stopLoading();
    renderThreadChrome();
  },
  onCredentialsEnded: credentialsEnded,
  onRefusedMaybe: checkRefusal,
});

enableUploads();
search.init(); // the search box (js/search.js)

// ---- the composer ----

function resizeInput() {
  ui.input.style.height = "auto";
  ui.input.style.height = Math.min(ui.input.scrollHeight, 160) + "px";
}

function submitComposer() {
  let text = ui.input.value.replace(/^(?:[ \t]*\n)+/, "").replace(/(?:\n[ \t]*)+$/, "");
  const command = slash.isCommand(text.trim());
  if (!command && text.startsWith("//")) text = text.slice(1); // "//text" is the text "/text", as the server reads it
  const routed = command ? slash.asMessage(text.trim()) : null;
  let sent;
  if (routed) sent = outbox.sendText(routed.msg, routed.key);
  else if (command) sent = slash.send(text.trim());
  else sent = text.trim() && state.activeConv() && outbox.sendText(text, undefined, reply.fieldsFor(state.activeConv().key));
  if (sent) {
    if (!command) reply.cancel();
    ui.input.value = "";
    resizeInput();
  }
  ui.input.focus();
}

// A form the page handles itself: nothing is submitted to the server.
function onSubmit(form, action) {
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    action();
  });
}

onSubmit(ui.composer, submitComposer);
ui.input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    submitComposer();
  } else if (e.key === "Escape" && reply.cancel()) {
    e.preventDefault();
  }
});
ui.input.addEventListener("input", () => {
  resizeInput();
  typing.onInput();
});
ui.send.addEventListener("mousedown", (e) => e.preventDefault()); // keep the focus in the input

// ---- lists, buttons and the tab ----

onSubmit(ui.joinForm, submitJoin);
// A conversation in the list, or a person online: open that conversation.
ui.conversations.addEventListener("click", (e) => {
  const button = e.target.closest(".conv-btn");
  if (button) openConv(button.parentElement.dataset.conv);
});
ui.online.addEventListener("click", (e) => {
  const button = e.target.closest(".person-btn");
  if (button) openConv(button.parentElement.dataset.user);
});
ui.loadOlder.addEventListener("click", () => {
  const c = state.activeConv();
  if (c && !c.loading) history.requestHistory(c, "older");
});
ui.back.addEventListener("click", () => ui.app.classList.add("show-list"));

// ---- rooms ----

// The open conversation's room name, or null when it is not a named room.
function openRoom() {
  const c = state.activeConv();
  return c && isRoomKey(c.key) ? c.key.slice(1) : null;
}

ui.roomsOpen.addEventListener("click", () => {
  panel.openRooms();
  roomcommands.listRooms();
});
ui.roomsClose.addEventListener("click", panel.closeRooms);
ui.roomsList.addEventListener("click", (e) => {
  const button = e.target.closest("button");
  const room = button && button.closest("li").dataset.room;
  if (!room) return;
  if (button.classList.contains("room-join")) {
    roomcommands.join(room);
  } else {
    panel.closeRooms();
    openConv(keyOfRoom(room));
  }
});
onSubmit(ui.createRoom, () => {
  const fields = panel.createFields();
  if (!fields.room) {
    panel.showRoomsError("Give the room a name.");
    return;
  }
  roomcommands.create(fields.room, fields.private, fields.topic);
});
ui.roomMembers.addEventListener("click", () => {
  const room = openRoom();
  if (room && roomcommands.listMembers(room)) members.openMembers(room);
});
ui.roomLeave.addEventListener("click", () => {
  const room = openRoom();
  if (room) roomcommands.leave(room);
});
ui.roomTopic.addEventListener("click", () => {
  const room = openRoom();
  if (!room) return;
  if (header.topicEditorRoom() === room) header.closeTopicEditor();
  else header.openTopicEditor(room);
});
onSubmit(ui.topicForm, () => {
  const room = header.topicEditorRoom();
  if (room) roomcommands.setTopic(room, header.topicText());
});
ui.topicCancel.addEventListener("click", header.closeTopicEditor);
ui.topicInput.addEventListener("keydown", (e) => {
  if (e.key === "Escape") {
    e.preventDefault();
    header.closeTopicEditor();
    ui.input.focus();
  }
});
ui.membersClose.addEventListener("click", members.closeMembers);
// A member's Kick, Ban or role button.
ui.membersList.addEventListener("click", (e) => {
  const button = e.target.closest("button");
  const room = members.membersRoomShown();
  if (!button || !room) return;
  const user = button.closest("li").dataset.user;
  members.clearOutcome();
  if (button.classList.contains("member-kick")) roomcommands.moderate("kick", room, user);
  else if (button.classList.contains("member-ban")) roomcommands.moderate("ban", room, user);
  else if (button.classList.contains("member-role")) roomcommands.setRole(room, user, button.dataset.role);
});
// The name field: invite (its submit, Enter), ban or unban whoever it names, member or not.
function moderateByName(action) {
  const room = members.membersRoomShown();
  members.clearOutcome();
  const user = room && members.toolsName();
  if (user) roomcommands.moderate(action, room, user);
}
onSubmit(ui.memberTools, () => moderateByName("invite"));
ui.memberBan.addEventListener("click", () => moderateByName("ban"));
ui.memberUnban.addEventListener("click", () => moderateByName("unban"));
// An invitation's Join and Dismiss.
ui.invitations.addEventListener("click", (e) => {
  const button = e.target.closest("button");
  const room = button && button.closest("li").dataset.room;
  if (!room) return;
  if (button.classList.contains("invitation-join")) {
    roomcommands.join(room);
  } else {
    invitations.dismiss(room);
    renderInvitations(invitations.list());
  }
});
if (ui.switchUser) ui.switchUser.addEventListener("click", leave);
ui.retryNow.addEventListener("click", socket.reconnectNow);
ui.noticeClose.addEventListener("click", hideNotice);
window.addEventListener("online", socket.reconnectNow);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  reads.seen(state.activeConv()); // read now that the tab is in front
  socket.reconnectNow();
});

begin();
