"""The AMI recordings of the real sandbox (tests/fixtures/ami/*.txt), indexed for the fake AMI server.

Why: hand-written AMI text drifts from what Asterisk really sends (which headers, their names and order,
the exact `Message:` of a refusal, how an event list ends). `scripts/record-ami-fixtures` records raw
AMI per scenario; the fake only ever sends clones of recorded messages with values substituted, and a
substitution may only replace a header Asterisk sent (`clone` refuses new ones).

File format: after `#` comment lines, messages each after a marker line: `<<< banner` (the greeting),
`>>> sent` (an action we sent), `<<< received` (what Asterisk sent); a blank line ends each message.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ami"

Headers = tuple[tuple[str, str], ...]


def get(headers: Headers, key: str, default: str = "") -> str:
    return next((v for k, v in headers if k == key), default)


def clone(template: Headers, **values: object) -> Headers:
    """The template with these headers' values replaced (a header it lacks is refused: Asterisk never sent it)."""
    unknown = set(values) - {k for k, _ in template}
    if unknown:
        raise KeyError(f"recorded {get(template, 'Event') or get(template, 'Response')} has no {sorted(unknown)}")
    return tuple((k, str(values[k]) if k in values else v) for k, v in template)


@dataclass(frozen=True)
class Exchange:
    """One recorded action with Asterisk's answer: its response and the events carrying its ActionID."""

    action: Headers
    response: Headers
    events: tuple[Headers, ...]


class Recordings:
    def __init__(self, directory: Path = FIXTURES) -> None:
        self.banner = ""
        self.exchanges: list[Exchange] = []
        self.events: dict[str, Headers] = {}  # first asynchronous event of each name
        self.list_events: dict[str, Headers] = {}  # first event-list item of each name
        for path in sorted(directory.glob("*.txt")):
            self._load(path)
        if not self.exchanges:
            raise FileNotFoundError(f"no AMI recordings in {directory}; run scripts/record-ami-fixtures")

    @staticmethod
    def _messages(path: Path) -> list[tuple[str, list[str]]]:
        messages: list[tuple[str, list[str]]] = []
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.startswith(("<<< ", ">>> ")):
                messages.append((line[4:], []))
            elif messages and line:
                messages[-1][1].append(line)
        return messages

    def _load(self, path: Path) -> None:
        sent: dict[str, Headers] = {}
        answers: dict[str, tuple[Headers, list[Headers]]] = {}
        for kind, lines in self._messages(path):
            if kind == "banner":
                self.banner = lines[0]
                continue
            headers: Headers = tuple((k, v) for k, _, v in (line.partition(": ") for line in lines))
            action_id = get(headers, "ActionID")
            if kind == "sent":
                sent[action_id] = headers
            elif get(headers, "Response") and action_id in sent:
                answers[action_id] = (headers, [])
            elif action_id in answers:
                answers[action_id][1].append(headers)
                self.list_events.setdefault(get(headers, "Event"), headers)
            elif get(headers, "Event"):
                self.events.setdefault(get(headers, "Event"), headers)
        for action_id, (response, events) in answers.items():
            self.exchanges.append(Exchange(sent[action_id], response, tuple(events)))

    def response(self, action: str, message: str) -> Headers:
        """Asterisk's recorded answer to `action` whose Message is `message`."""
        for ex in self.exchanges:
            if get(ex.action, "Action") == action and get(ex.response, "Message") == message:
                return ex.response
        raise KeyError(f"no recorded {action} answered {message!r}")

    def event(self, name: str) -> Headers:
        """A recorded asynchronous event of this name (what the fake pushes)."""
        if name not in self.events:
            raise KeyError(f"no recorded event {name}; known: {sorted(self.events)}")
        return self.events[name]

    def list_event(self, name: str) -> Headers:
        """A recorded item (or `...Complete`) of an event list."""
        return self.list_events[name]

    def queue_status_all(self) -> Exchange:
        """The recorded QueueStatus of every queue: the sandbox's queues as the fake starts with them."""
        for ex in self.exchanges:
            if get(ex.action, "Action") == "QueueStatus" and not get(ex.action, "Queue"):
                return ex
        raise KeyError("no recorded QueueStatus of all queues")


@functools.cache
def recordings() -> Recordings:
    return Recordings()
