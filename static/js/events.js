// Events from the server (docs/protocol.md), each handed to the module it concerns.

import { ACCOUNT } from "./config.js";
import { showNotice, showPartial } from "./dom.js";
import { normalizeName } from "./format.js";
import * as history from "./history.js";
import * as lifecycle from "./lifecycle.js";
import * as outbox from "./outbox.js";
import * as reads from "./reads.js";
import { onLive } from "./receive.js";
import * as roomcommands from "./roomcommands.js";
import * as roomevents from "./roomevents.js";
import * as search from "./search.js";
import * as slash from "./slash.js";
import * as socket from "./socket.js";
import * as state from "./state.js";
import { resumeKey, save } from "./storage.js";
import * as typing from "./typing.js";
import { renderHeader } from "./views/conversations.js";
import { renderOnline } from "./views/people.js";

function onWelcome(ev) {
  const me = state.me();
  if (!ACCOUNT && typeof ev.resume === "string" && me) save(resumeKey(me), ev.resume);
  state.setAdmin(ev.admin);
  renderHeader(); // an admin's Delete on others' messages
  state.setOnline((Array.isArray(ev.online) ? ev.online : []).map(normalizeName).filter(Boolean), ev.online_count);
  renderOnline();
  socket.markWelcomed();
  roomevents.onWelcome(ev.conversations);
  reads.onWelcome(ev);
  roomcommands.listRooms(); // the topics and roles of the rooms this user is in
  // Let in while the server's database is down (docs/protocol.md): say what this connect could not bring.
  showPartial(Array.isArray(ev.partial) && ev.partial.length ? PARTIAL_NOTICE : "");
}

const PARTIAL_NOTICE =
  "The server cannot reach its database right now. You are connected and can chat, but your conversation list is " +
  "empty and direct messages sent while you were away will come when you reconnect after it is back.";

function onAck(ev) {
  state.noteId(ev.id);
  if (!roomcommands.acknowledge(ev) && !lifecycle.acknowledge(ev)) outbox.acknowledge(ev);
}

function onError(ev) {
  const message = typeof ev.message === "string" ? ev.message : "the server refused that";
  if (ev.ref !== undefined) {
    // A message is not_found only for its "reply_to": the message it answers was deleted (or cannot be seen).
    const why = ev.code === "not_found" ? "Not sent: the message it answers was deleted." : message;
    if (outbox.refuse(ev.ref, why)) return; // shown next to the message it refused
    if (lifecycle.refuse(ev.ref, ev.code, message)) return; // shown in the editor, the delete question or a notice
    if (roomcommands.refuse(ev.ref, message)) return; // shown in the dialog it was asked from, or as a notice
    if (reads.refuse(ev.ref) || typing.refuse(ev.ref)) return; // nothing the user asked for: nothing to show
    if (search.refuse(ev.ref, message)) return; // shown under the search box
    history.refuse(ev.ref);
  }
  showNotice(message);
}

// One change ({"user","online"}) or several gathered by the server ({"changes":[...]}).
function onPresence(ev) {
  const changes = Array.isArray(ev.changes) ? ev.changes : [ev];
  changes.forEach((change) => {
    const name = change && normalizeName(change.user);
    if (name) state.setPresence(name, Boolean(change.online));
  });
  renderOnline();
}

export function handle(ev) {
  if (!ev || typeof ev !== "object") return;
  switch (ev.type) {
    case "welcome":
      onWelcome(ev);
      break;
    case "history":
      history.onHistory(ev);
      break;
    case "message":
    case "direct":
      onLive(ev);
      break;
    case "edit":
    case "delete":
    case "reaction":
      lifecycle.onLive(ev);
      break;
    case "ack":
      onAck(ev);
      break;
    case "error":
      onError(ev);
      break;
    case "presence":
      onPresence(ev);
      break;
    case "conversations":
      reads.onConversations(ev);
      break;
    case "read":
      reads.onRead(ev);
      break;
    case "typing":
      typing.onTyping(ev);
      break;
    case "member":
    case "topic":
      roomevents.onRoomEvent(ev);
      break;
    case "rooms":
      roomcommands.onRooms(ev);
      break;
    case "members":
      roomcommands.onMembers(ev);
      break;
    case "search":
      search.onResults(ev);
      break;
    case "who":
    case "help":
    case "room":
      slash.onAnswer(ev);
      break;
    default:
      break;
  }
}
