// Browser notifications for messages that mention this user and for one-to-one messages, while the tab is hidden: off
// until the user turns them on with the Notify button (the only place the browser is asked for permission; never on
// load), remembered for the next visit. A notification's text is plain text; clicking it opens its conversation.

import { GROUP } from "./config.js";
import { oneLine, titleOf } from "./format.js";
import { load, save } from "./storage.js";

export const NOTIFY_KEY = "chat.notify"; // true: the user turned notifications on (and the browser allowed them)
const BODY_CHARS = 200; // characters of the message a notification shows

let button = null;
let openConversation = () => {};
let wanted = false; // the user turned them on (they show only while the browser allows them too)

function supported() {
  return typeof window.Notification === "function";
}

function permission() {
  return supported() ? window.Notification.permission : "denied";
}

function on() {
  return wanted && permission() === "granted";
}

function render() {
  if (!button) return;
  button.hidden = !supported();
  const blocked = permission() === "denied";
  button.classList.toggle("on", on());
  button.setAttribute("aria-pressed", on() ? "true" : "false");
  button.textContent = on() ? "Notify: on" : "Notify: off";
  button.title = blocked
    ? "Notifications are blocked for this site: allow them in the browser's site settings"
    : on()
      ? "You are notified of mentions and one-to-one messages while this tab is hidden. Click to stop."
      : "Be notified of mentions and one-to-one messages while this tab is hidden";
}

// A click on the button: ask the browser (only now, on the user's click) when it has not been asked, else toggle.
async function toggle() {
  if (!supported()) return;
  if (on()) {
    wanted = false;
  } else {
    let answer = permission();
    if (answer === "default") {
      try {
        answer = await window.Notification.requestPermission();
      } catch (e) {
        answer = "denied";
      }
    }
    wanted = answer === "granted";
  }
  save(NOTIFY_KEY, wanted);
  render();
}

// `btn`: the Notify button; `open(key)`: opens a conversation (js/navigation.js), for a notification's click.
export function init(btn, open) {
  button = btn;
  openConversation = open;
  wanted = load(NOTIFY_KEY, false) === true; // asks nothing: a permission given on an earlier visit still holds
  if (button) button.addEventListener("click", toggle);
  render();
}

// A live message `ev` from someone else arrived in conversation `key`; `mentioned`: its text mentions this user.
export function onMessage(ev, key, mentioned) {
  const direct = ev.type === "direct";
  if (!on() || document.visibilityState === "visible" || (!direct && !mentioned)) return;
  const where = key === GROUP ? "Everyone" : titleOf(key);
  const title = direct ? ev.user : ev.user + " mentioned you in " + where;
  let note;
  try {
    // title and body are plain text to the browser: no markup in them is ever interpreted
    note = new window.Notification(title, { body: oneLine(ev.msg, BODY_CHARS), tag: "chat:" + key });
  } catch (e) {
    return; // e.g. a browser that allows notifications only from a service worker
  }
  note.onclick = () => {
    window.focus();
    openConversation(key);
    note.close();
  };
}
