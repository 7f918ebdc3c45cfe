// The invitations this user has not acted on (live "invited" events, and rooms the server lists as "invited"), in the order they came; one dismissed stays away until a new invitation to that room.

const pending = new Map(); // room -> {room, by}: by is the inviter's name, or null when only the listing told
const dismissed = new Set(); // rooms whose invitation the user put away on this page

// A live invitation to `room` from `by`: shown even if an earlier one was dismissed.
export function invited(room, by) {
  dismissed.delete(room);
  pending.delete(room); // a new invitation comes last
  pending.set(room, { room: room, by: typeof by === "string" && by ? by : null });
}

// The invitation to `room` is over: joined, withdrawn (kicked) or banned.
export function settled(room) {
  pending.delete(room);
}

export function dismiss(room) {
  pending.delete(room);
  dismissed.add(room);
}

// A "rooms" answer: its rooms marked invited (and not joined) are pending unless dismissed; those it lists otherwise are
// not, and when the list is complete (`more` false) neither are those it leaves out.
export function fromListing(list, more) {
  const open = new Set();
  list.forEach((r) => {
    if (r.invited === true && r.joined !== true) {
      open.add(r.room);
      if (!pending.has(r.room) && !dismissed.has(r.room)) pending.set(r.room, { room: r.room, by: null });
    } else {
      pending.delete(r.room);
    }
  });
  if (!more) Array.from(pending.keys()).filter((room) => !open.has(room)).forEach((room) => pending.delete(room));
}

export function list() {
  return Array.from(pending.values());
}

// Leaving the page's name: nothing is pending any more.
export function reset() {
  pending.clear();
  dismissed.clear();
}
