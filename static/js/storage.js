// What this browser remembers between visits (localStorage): a guest's name and its resume tokens (conversations and read markers are the server's).

export const NAME_KEY = "chat.name"; // a guest's name, remembered for the next visit
// A guest's resume token for its name (the welcome gives it): only it reopens the name while the server holds it
// for this guest, so reconnects and the next visit keep the name and its messages (docs/protocol.md).
export const resumeKey = (name) => "chat.resume." + name;

export function load(key, fallback) {
  try {
    const raw = window.localStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch (e) {
    return fallback;
  }
}

export function save(key, value) {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, JSON.stringify(value));
  } catch (e) {
    /* storage unavailable (private mode): the page still works, it just forgets */
  }
}
