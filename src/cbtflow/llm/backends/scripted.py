"""The scripted backend: replies computed from the conversation and seed, no model
(``scripted/<name>``), so the workflow's wiring runs in seconds in tests."""

from __future__ import annotations

import hashlib

from cbtflow.llm.backends import Backend, Messages, register
from cbtflow.llm.sampling import with_defaults


@register
class Scripted(Backend):
    """Deterministic stand-in replies, a pure function of the conversation and the seed:
    the workflow's wiring (cache, usage, gates, judging, statistics) runs in seconds, with
    no model. Replies vary with the turn so that the near-duplicate gate passes; scores
    favour the middle of the candidates. Never use it to answer the research question."""

    name = "scripted"
    order = 0

    @classmethod
    def serves(cls, endpoint):
        return endpoint.is_scripted

    OPENINGS = (
        "I hear that",
        "It sounds like",
        "Let us look at how",
        "Thank you for telling me that",
        "I wonder whether",
        "Can we write down that",
        "What goes through your mind when",
        "Last week you noticed that",
    )
    SUBJECTS = (
        "the thought about work keeps coming back",
        "your mood drops in the evenings",
        "the belief that you are failing feels true",
        "you avoid calling your friends",
        "sleep has been hard this week",
        "the worry grows when you are alone",
        "you criticise yourself after meetings",
        "small tasks feel heavy right now",
    )

    def _text(self, conversation: Messages, seed: int, max_tokens: int) -> str:
        digest = hashlib.sha256(f"{seed}|{len(conversation)}|{conversation[-1]['content']}".encode()).digest()
        words = f"{self.OPENINGS[digest[0] % 8]} {self.SUBJECTS[digest[1] % 8]} (turn {len(conversation)}).".split()
        return " ".join(words[: max(1, int(max_tokens))])

    def generate(self, endpoint, conversations, sampling, seeds, *, concurrency, on_reply, tolerate_failures):
        replies = []
        for j, (conversation, seed) in enumerate(zip(conversations, seeds)):
            text = self._text(conversation, seed, with_defaults(sampling)["max_tokens"])
            reply = {
                "text": text,
                "prompt_tokens": sum(len(m["content"].split()) for m in conversation),
                "completion_tokens": len(text.split()),
                "seconds": 0.0,
                "cost_usd": 0.0,
                "model": endpoint.model,
            }
            replies.append(reply)
            if on_reply:
                on_reply(j, reply)
        return replies

    def score(self, endpoint, conversations, candidates, prefix):
        out = []
        for conversation in conversations:
            digest = hashlib.sha256(conversation[-1]["content"].encode()).digest()
            centre = (len(candidates) - 1) / 2 + (digest[0] % 3 - 1)
            weights = [1.0 / (1.0 + abs(i - centre)) for i in range(len(candidates))]
            probs = [w / sum(weights) for w in weights]
            out.append({"probs": probs, "mass": 1.0, "prompt_tokens": len(conversation[-1]["content"].split())})
        return out
