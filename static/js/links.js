// Links in message text: http(s) addresses split out of the text (pure), and the text put into a node as text nodes and <a> elements (never HTML).

import { el } from "./dom.js";

// A candidate starts with http:// or https:// (any case) and runs to white space or a character no chat keeps in a link.
const CANDIDATE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,:;!?…'"*_~]$/; // punctuation that ends a sentence, not the address
const PAIRS = { ")": "(", "]": "[", "}": "{" };

function count(text, ch) {
  return text.split(ch).length - 1;
}

// Drop what follows an address in prose: trailing punctuation, and a closing bracket the address did not open.
function trimTail(url) {
  let u = url;
  for (;;) {
    const last = u.charAt(u.length - 1);
    if (TRAILING.test(last)) u = u.slice(0, -1);
    else if (last in PAIRS && count(u, last) > count(u, PAIRS[last])) u = u.slice(0, -1);
    else return u;
  }
}

// The address as a link's href, or null when it is not an http(s) URL with a host.
export function safeHref(text) {
  let url;
  try {
    url = new URL(text);
  } catch (e) {
    return null;
  }
  return (url.protocol === "http:" || url.protocol === "https:") && url.hostname ? url.href : null;
}

// `text` as parts in order: {text} for plain text, {text, href} for a link; joined, the texts are `text` again.
export function splitLinks(text) {
  const parts = [];
  let at = 0;
  const s = String(text);
  CANDIDATE.lastIndex = 0;
  let m;
  while ((m = CANDIDATE.exec(s)) !== null) {
    const raw = trimTail(m[0]);
    const href = safeHref(raw);
    if (!href) continue;
    if (m.index > at) parts.push({ text: s.slice(at, m.index) });
    parts.push({ text: raw, href: href });
    at = m.index + raw.length;
    CANDIDATE.lastIndex = at;
  }
  if (at < s.length || parts.length === 0) parts.push({ text: s.slice(at) });
  return parts;
}

// Fill `node` with `text`, its http(s) addresses as links that open in a new tab without access to this page.
export function fillLinked(node, text) {
  node.replaceChildren(
    ...splitLinks(text).map((part) => {
      if (!part.href) return document.createTextNode(part.text);
      const a = el("a", "msg-link", part.text);
      a.href = part.href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      return a;
    }),
  );
}
