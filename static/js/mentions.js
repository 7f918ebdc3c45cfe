// Mentions: which names a message's text calls with "@name", by the server's rule (chat/store/mentions.py, tested to
// agree), and whether one calls this page's user; the highlight of such a message.

const MENTION = /@([A-Za-z0-9][A-Za-z0-9_.-]*)/g;
const JOINER = /^[\p{L}\p{N}_.@-]$/u; // a letter or digit of any script, or _ . - @: next to a token, it is no mention
const LONGEST_NAME = 64; // the widest name any server setting allows: a longer token is no name

// The character (code point) that ends just before index `i` of `text`, or "".
function before(text, i) {
  const chars = Array.from(text.slice(Math.max(0, i - 2), i));
  return chars.length ? chars[chars.length - 1] : "";
}

// The distinct names `text` mentions, in the order first written, at most `limit` (the server's max_mentions_per_message).
export function mentionedNames(text, limit) {
  const names = [];
  if (typeof text !== "string" || !(limit >= 1) || text.indexOf("@") < 0) return names;
  MENTION.lastIndex = 0;
  let match;
  while ((match = MENTION.exec(text)) !== null) {
    const start = match.index;
    const end = start + match[0].length;
    if (start > 0 && JOINER.test(before(text, start))) continue;
    if (end < text.length && JOINER.test(String.fromCodePoint(text.codePointAt(end)))) continue;
    const name = match[1].replace(/\.+$/, "").toLowerCase();
    if (name.length > LONGEST_NAME || names.indexOf(name) >= 0) continue;
    names.push(name);
    if (names.length >= limit) break;
  }
  return names;
}

// Whether message text `text` from `sender` mentions `me` (one's own messages never do), as the server counts it.
export function mentions(text, sender, me, limit) {
  return Boolean(me) && sender !== me && mentionedNames(text, limit).indexOf(me) >= 0;
}

// Mark (or unmark) a message's <li> as mentioning this page's user.
export function highlight(li, on) {
  li.classList.toggle("mention", on);
}
