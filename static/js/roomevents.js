// Room membership as it changes: the welcome's list says which rooms this user is in, then live "member" and "topic" events add their system line and move the conversation list, the header, the invitations and the open room along.

import { GROUP } from "./config.js";
import { nearBottom, scrollToBottom, showNotice } from "./dom.js";
import { keyOfRoom, keyOfWire, normalizeName, roomKey } from "./format.js";
import { openConv } from "./navigation.js";
import * as invitations from "./invitations.js";
import * as reads from "./reads.js";
import { addRoomEvent } from "./receive.js";
import { listMembers, openOnJoin, refreshRooms } from "./roomcommands.js";
import * as rooms from "./rooms.js";
import * as state from "./state.js";
import { renderConvList, renderHeader } from "./views/conversations.js";
import { renderInvitations } from "./views/invitations.js";
import { closeMembers, membersRoomShown } from "./views/memberspanel.js";
import { renderThreadChrome } from "./views/messages.js";

const GONE = { left: "You left", kicked: "You were kicked from", banned: "You were banned from" };

// This user is no longer in `room`: its conversation is forgotten (a later join loads it afresh); if it was open,
// the group opens instead.
function forget(room) {
  rooms.leaveRoom(room);
  if (membersRoomShown() === room) closeMembers();
  const key = roomKey(room);
  const wasOpen = state.activeConv() !== null && state.activeConv().key === key;
  state.dropConversation(key);
  if (wasOpen) openConv(GROUP, { noFocus: true });
}

// The welcome's "conversations": the named rooms listed are exactly the rooms this user is in now.
export function onWelcome(list) {
  const names = (Array.isArray(list) ? list : [])
    .map((entry) => keyOfWire(entry))
    .filter((key) => key && key !== GROUP && key.charAt(0) === "#")
    .map((key) => key.slice(1));
  const before = rooms.memberRooms();
  rooms.setMembership(names);
  before.filter((room) => !rooms.isMember(room)).forEach(forget);
  const active = state.activeConv();
  if (active && active.key.charAt(0) === "#" && !rooms.isMember(active.key.slice(1))) forget(active.key.slice(1)); // ?room= of a room not joined
}

// A change about this user, who may not be in the room (an invitation, or its withdrawal by a kick or a ban).
function onOwnChange(room, ev) {
  const by = ev.by && ev.by !== state.me() ? ev.by : null;
  const wasMember = rooms.isMember(room);
  if (ev.change === "joined") {
    rooms.joinRoom(room, ev.role);
    invitations.settled(room);
    if (openOnJoin(room)) openConv(roomKey(room));
    if (!ev.created) refreshRooms(); // only the listing says whether a room joined (not created) is private
  } else if (ev.change in GONE) {
    invitations.settled(room);
    if (!wasMember && ev.change === "kicked") showNotice((by || "Someone") + " withdrew your invitation to #" + room + ".");
    else if (ev.change !== "left" || by) showNotice(GONE[ev.change] + " #" + room + (by ? " by " + by : "") + ".");
    forget(room);
  } else if (ev.change === "role") {
    rooms.note(room, { role: ev.role });
  } else if (ev.change === "invited") {
    rooms.note(room, { invited: true });
    invitations.invited(room, ev.by);
  }
  renderInvitations(invitations.list());
}

// A live "member" or "topic" event in a named room.
export function onRoomEvent(ev) {
  state.noteId(ev.id);
  const key = keyOfRoom(ev.room);
  if (!key || key === GROUP) return;
  const room = key.slice(1);
  const active = state.activeConv();
  const open = active !== null && active.key === key;
  const stick = open && nearBottom();
  if (ev.type === "topic") rooms.note(room, { topic: ev.topic });
  else if (ev.created) rooms.note(room, { topic: ev.topic, private: ev.private });
  const mine = ev.type === "member" && normalizeName(ev.user) === state.me();
  const known = rooms.isMember(room) || (mine && ev.change === "joined");
  if (known) addRoomEvent(ev); // a room this user is not in (an invitation) keeps no thread
  if (mine) onOwnChange(room, ev);
  if (ev.type === "member" && membersRoomShown() === room && rooms.isMember(room)) listMembers(room);
  renderConvList();
  const now = state.activeConv();
  if (now !== null && now.key === key) {
    renderHeader();
    renderThreadChrome();
    reads.seen(now);
    if (stick) scrollToBottom();
  } else if (open) {
    renderHeader();
  }
}
