"""ELIZA, Weizenbaum's 1966 psychotherapist: NLTK's script (nltk.chat.eliza), with a conversation of its own per user
and place: one in private, one in the group, never mixed."""
import random
from collections import OrderedDict, deque

from nltk.chat.eliza import pairs as SCRIPT
from nltk.chat.util import Chat, reflections

from . import Bot, register

MAX_CONVERSATIONS = 10000  # conversations remembered at once; the one silent longest is forgotten first
MAX_INPUT = 500  # characters of a message ELIZA reads: her rules need no more, and it bounds the regex work
MEMORY_SIZE = 3  # "my ..." statements remembered per user
GREETING = "Hello. How are you feeling today?"
# Weizenbaum's MEMORY: with no keyword to answer, ELIZA brings back something the user said earlier.
MEMORY_ANSWERS = (
    "Earlier you said {}.",
    "Does that have anything to do with the fact that {}?",
    "Let's discuss further why {}.",
)
_MY_RULE = next((i for i, (pattern, _) in enumerate(SCRIPT) if pattern == r"My (.*)"), None)


class Conversation:
    """What ELIZA remembers of one user in one place (private or group): where she is in each rule's answers, and what they told her about 'my ...'."""

    __slots__ = ("next_answer", "memory", "recalled")

    def __init__(self):
        self.next_answer = {}  # rule index -> index of the answer to give next
        self.memory = deque(maxlen=MEMORY_SIZE)
        self.recalled = 0


class Script(Chat):
    """NLTK's ELIZA rules, answered within a conversation: a rule's answers take turns instead of repeating at random."""

    def __init__(self):
        super().__init__(SCRIPT, reflections)
        self._fallback = len(self._pairs) - 1  # the last rule, "(.*)", matches anything

    def answer(self, conversation, text):
        for index, (pattern, answers) in enumerate(self._pairs):
            match = pattern.match(text)
            if match is None:
                continue
            if index == self._fallback and conversation.memory:
                template = MEMORY_ANSWERS[conversation.recalled % len(MEMORY_ANSWERS)]
                conversation.recalled += 1
                return template.format(conversation.memory.popleft())
            if index == _MY_RULE:
                conversation.memory.append(self._wildcards("your %1", match).rstrip(" .!?"))
            position = conversation.next_answer.get(index)
            if position is None:
                position = random.randrange(len(answers))
            conversation.next_answer[index] = (position + 1) % len(answers)
            return _tidy(self._wildcards(answers[position], match))
        return None


def _tidy(answer):
    """NLTK's own clean-up of an answer whose echoed words ended in punctuation."""
    if answer[-2:] == "?.":
        return answer[:-2] + "."
    if answer[-2:] == "??":
        return answer[:-2] + "?"
    return answer


@register
class Eliza(Bot):
    name = "eliza"

    def __init__(self, max_conversations=MAX_CONVERSATIONS):
        self._script = Script()
        self._conversations = OrderedDict()  # user -> Conversation, least recently active first
        self._max_conversations = max_conversations

    def reply(self, user, text, direct):
        conversation = self.conversation(user, direct)
        text = " ".join(text[:MAX_INPUT].split()).rstrip("!. ")
        if not text:
            return GREETING
        return self._script.answer(conversation, text)

    def conversation(self, user, direct=True):
        """`user`'s conversation in private (`direct`) or in the group, started if new; the least recently active
        one is dropped beyond the limit. What is said in one is never recalled in the other."""
        key = (user, bool(direct))
        conversations = self._conversations
        conversation = conversations.get(key)
        if conversation is None:
            conversation = conversations[key] = Conversation()
            if len(conversations) > self._max_conversations:
                conversations.popitem(last=False)
        else:
            conversations.move_to_end(key)
        return conversation

    def forget(self, user):
        for direct in (True, False):
            self._conversations.pop((user, direct), None)
