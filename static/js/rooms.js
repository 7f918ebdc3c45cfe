// The named rooms this page's user is in (the welcome's list, then live member events) and what the page knows of each room: topic, privacy, this user's role.

const joined = new Set(); // names of the named rooms this user is in
const known = new Map(); // room name -> {topic, private, role, members, invited}

export const RANK = { owner: 3, moderator: 2, member: 1 };

export function isMember(room) {
  return joined.has(room);
}

export function memberRooms() {
  return Array.from(joined);
}

// What the page knows of `room` (a fresh record when nothing yet).
export function infoOf(room) {
  let info = known.get(room);
  if (!info) {
    info = { topic: "", private: false, role: null, members: null, invited: false };
    known.set(room, info);
  }
  return info;
}

// Merge what an event or listing said about `room` (only the fields it carries).
export function note(room, fields) {
  const info = infoOf(room);
  if (typeof fields.topic === "string") info.topic = fields.topic;
  if (typeof fields.private === "boolean") info.private = fields.private;
  if (fields.role === null || typeof fields.role === "string") info.role = fields.role in RANK ? fields.role : null;
  if (Number.isSafeInteger(fields.members)) info.members = fields.members;
  if (typeof fields.invited === "boolean") info.invited = fields.invited;
}

// The welcome said which rooms this user is in: exactly these.
export function setMembership(names) {
  joined.clear();
  names.forEach((name) => joined.add(name));
}

export function joinRoom(room, role) {
  joined.add(room);
  note(room, { role: role in RANK ? role : "member", invited: false });
}

export function leaveRoom(room) {
  joined.delete(room);
  note(room, { role: null });
}

// This user may moderate `room` (invite, kick, ban, unban, set the topic): they are its owner or a moderator.
export function canModerate(room) {
  return isMember(room) && (RANK[infoOf(room).role] || 0) >= RANK.moderator;
}

// This user owns `room`: they give roles.
export function isOwner(room) {
  return isMember(room) && infoOf(room).role === "owner";
}

// This user may act on `target` (kick, ban) in `room`: they rank lower.
export function outranks(room, targetRole) {
  const mine = RANK[infoOf(room).role] || 0;
  return mine >= RANK.moderator && mine > (RANK[targetRole] || 0);
}

// Leaving the page's name: nothing is known any more.
export function reset() {
  joined.clear();
  known.clear();
}
