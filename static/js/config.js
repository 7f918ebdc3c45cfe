// Settings: the server's limits and the visitor's identity as the page's <body> data-* attributes give them, and fixed tunings.

const data = document.body.dataset;

export const GROUP = "*"; // conversation key of the group chat; user names cannot contain "*"
export const MAX_NAME = Number(data.maxNameLength) || 32; // the server's max_name_length
export const NAME_RE = new RegExp("^[a-z0-9][a-z0-9_.-]{0," + (MAX_NAME - 1) + "}$"); // as the server: starts with a letter or digit
// The server's max_message_size: it closes a socket (1009) that sends a larger message, counted in UTF-8 bytes of the
// whole frame (the JSON command, not only its text).
export const MAX_MESSAGE_SIZE = Number(data.maxMessageSize) || 65536;
// Signed in (the server put the account's name on the page): the socket's handshake carries the session
// cookie, so the page connects as that name with no name picker. Otherwise the visitor is a guest.
export const ACCOUNT = data.user || null;
export const GUESTS = data.allowGuests !== "false";
export const UPLOADS = data.uploads === "true"; // the server accepts some kinds of file
export const MAX_UPLOAD = Number(data.maxUpload) || 0; // bytes; the server says the same with a 413
// The server's typing_interval: it forwards at most one "typing" a connection and conversation this often.
export const TYPING_INTERVAL_MS = (data.typingInterval && Number(data.typingInterval) >= 0 ? Number(data.typingInterval) : 2) * 1000;
// The server's max_topic_length (characters of one line): a longer topic is refused (bad_field).
export const MAX_TOPIC = Number(data.maxTopicLength) > 0 ? Number(data.maxTopicLength) : 300;
// The server's max_mentions_per_message: only the first names a message's text mentions count (0: none).
export const MAX_MENTIONS = Number(data.maxMentions) >= 0 && data.maxMentions !== "" ? Number(data.maxMentions) : 20;

export const PAGE_SIZE = 50; // messages per history page
export const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];
export const READ_EVERY_MS = 500; // at most one "read" a conversation this often: a burst of messages is one frame
export const SAME_BLOCK_MS = 5 * 60 * 1000; // consecutive messages of one sender within this are grouped
export const CLOSE_CREDENTIALS_ENDED = 4001; // signed out, token revoked, account removed, or the guest's name registered
// Refusals that only say "not now" (HTTP 429/503 naming one of these limits, with Retry-After): sent again later.
export const RETRY_LIMITS = ["upload_rate", "image_decode_concurrency"];
export const UPLOAD_RETRIES = 5;
