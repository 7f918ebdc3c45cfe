// Who this page is: a signed-in account or a guest's name; joining, leaving (Switch), and names the server refuses.

import { ACCOUNT, GROUP, GUESTS, MAX_NAME } from "./config.js";
import { setAvatar, ui } from "./dom.js";
import { keyOfRoom, normalizeName } from "./format.js";
import * as history from "./history.js";
import * as invitations from "./invitations.js";
import { openConv } from "./navigation.js";
import * as outbox from "./outbox.js";
import * as reads from "./reads.js";
import * as roomcommands from "./roomcommands.js";
import * as rooms from "./rooms.js";
import * as socket from "./socket.js";
import * as state from "./state.js";
import { load, NAME_KEY, resumeKey, save } from "./storage.js";
import * as typing from "./typing.js";
import { renderOnline } from "./views/people.js";
import { renderInvitations } from "./views/invitations.js";
import { closeMembers } from "./views/memberspanel.js";
import { closeTopicEditor } from "./views/roomheader.js";
import { closeRooms } from "./views/roomspanel.js";

// {name, valid, registered, held, signed_in, guests} from the server, or null when it cannot say.
// With this page's resume token, "held" means held by another guest.
function nameStatus(name) {
  const resume = ACCOUNT ? null : load(resumeKey(name), null);
  const query = typeof resume === "string" && resume ? "?resume=" + encodeURIComponent(resume) : "";
  return fetch("/api/names/" + encodeURIComponent(name) + query, { credentials: "same-origin", cache: "no-store" })
    .then((r) => (r.ok ? r.json() : null))
    .catch(() => null);
}

function showJoinError(text) {
  ui.joinError.textContent = text;
  ui.joinError.hidden = false;
  if (ui.joinName) ui.joinName.focus();
}

function registeredText(name) {
  return "“" + name + "” is a registered name. Sign in to use it, or pick another name.";
}

function heldText(name) {
  return "“" + name + "” is in use by another guest. Pick another name.";
}

function join(name) {
  state.setMe(name);
  if (!ACCOUNT) save(NAME_KEY, name);
  ui.joinScreen.hidden = true;
  ui.app.hidden = false;
  setAvatar(ui.meAvatar, name);
  ui.meName.textContent = name;
  state.conversation(GROUP);
  const params = new URLSearchParams(location.search);
  const wanted = normalizeName(params.get("with"));
  const room = params.has("room") ? keyOfRoom(params.get("room")) : null; // kept once the welcome says this user is in it
  openConv(room || (wanted && wanted !== name ? wanted : GROUP));
  renderOnline();
  socket.start();
}

// Back to the name picker, forgetting this name's conversations on this page (Switch, or a name the server refused).
export function leave() {
  socket.stop();
  save(NAME_KEY, null);
  state.reset();
  outbox.clear();
  history.clear();
  reads.clear();
  typing.clear();
  rooms.reset();
  invitations.reset();
  renderInvitations([]);
  roomcommands.connectionLost();
  closeRooms();
  closeMembers();
  closeTopicEditor();
  ui.conversations.replaceChildren();
  ui.online.replaceChildren();
  ui.thread.replaceChildren();
  ui.app.hidden = true;
  ui.joinScreen.hidden = false;
  window.history.replaceState(null, "", location.pathname);
  if (ui.joinName) {
    ui.joinName.value = "";
    ui.joinName.focus();
  }
}

// The server ended this page's right to its name (close code 4001).
export function credentialsEnded(reason) {
  if (ACCOUNT) {
    location.assign("/"); // signed out (here or in another tab): the page comes back signed out
    return;
  }
  const name = state.me();
  leave();
  showJoinError(reason === "name registered by another user" ? registeredText(name) : "You were disconnected: " + (reason || "the name can no longer be used") + ".");
}

// The socket closed before its welcome: if the handshake was refused because of the name, say so instead of retrying.
export function checkRefusal() {
  const name = state.me();
  if (!name) return;
  nameStatus(name).then((status) => {
    if (!status || state.me() !== name || socket.isWelcomed()) return;
    if (ACCOUNT) {
      if (!status.signed_in) location.assign("/"); // the session ended (signed out elsewhere, expired, removed)
    } else if (status.registered) {
      leave();
      showJoinError(registeredText(name));
    } else if (status.held) {
      save(resumeKey(name), null); // the token this page had (if any) no longer opens the name
      leave();
      showJoinError(heldText(name));
    } else if (!status.guests) {
      location.assign("/");
    }
  });
}

// The join form: a guest's name, checked here and with the server before the socket would refuse it.
export function submitJoin() {
  if (!ui.joinName) return; // no guests here: the page offers only sign-in and registration
  const name = normalizeName(ui.joinName.value);
  if (!name) {
    ui.joinError.textContent = "Use 1–" + MAX_NAME + " characters: letters a–z, digits, “_”, “.” and “-”, starting with a letter or digit.";
    ui.joinError.hidden = false;
    ui.joinName.focus();
    return;
  }
  ui.joinError.hidden = true;
  // A registered name would be refused at the handshake: say so here. If the server cannot tell, try anyway.
  nameStatus(name).then((status) => {
    if (state.me()) return; // joined meanwhile (another submit)
    if (status && status.registered && !status.signed_in) showJoinError(registeredText(name));
    else if (status && status.held) showJoinError(heldText(name));
    else join(name);
  });
}

// On load: the account's name, or the guest's remembered name, or the name picker.
export function begin() {
  const remembered = GUESTS ? normalizeName(load(NAME_KEY, null)) : null;
  if (ACCOUNT) {
    join(ACCOUNT);
  } else if (remembered) {
    join(remembered);
  } else {
    ui.joinScreen.hidden = false;
    if (ui.joinName) ui.joinName.focus();
  }
}
