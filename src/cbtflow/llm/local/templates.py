"""Chat templates: rendering a conversation, and whether a template is prefix-stable (what
training's assistant masks and generation's KV reuse both need)."""

from __future__ import annotations

from collections.abc import Sequence


def render(tokenizer, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def prefix_stable(tokenizer, messages: Sequence[dict[str, str]]) -> bool:
    """Whether the text before each assistant turn (with the generation prompt) and the text
    up to its end are prefixes of the whole rendering.

    Mistral v0.3's published template puts the system text inside the last user turn only:
    the prompt before an assistant turn carries it, the whole conversation (ending on an
    assistant turn) drops it. Such a template is not prefix-stable. Training needs this to
    mask assistant tokens; generation needs it to continue a conversation's stored KV state
    (each turn's prompt then starts with the previous prompt and reply)."""
    text = render(tokenizer, messages, add_generation_prompt=False)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head = render(tokenizer, messages[:index], add_generation_prompt=True)
        upto = render(tokenizer, messages[: index + 1], add_generation_prompt=False)
        if not (text.startswith(upto) and upto.startswith(head)):
            return False
    return True


# A conversation to probe a chat template with (``prefix_stable``) before reusing KV states.
TEMPLATE_PROBE = (
    {"role": "system", "content": "You are a careful therapist."},
    {"role": "user", "content": "I have felt low for weeks."},
    {"role": "assistant", "content": "That sounds hard. What has been happening?"},
    {"role": "user", "content": "Work, mostly. I can't sleep."},
    {"role": "assistant", "content": "Let's look at one night together."},
    {"role": "user", "content": "Last night I lay awake until three."},
)


def template_accepts(tokenizer) -> bool:
    """Whether the template is prefix-stable on the probe conversation (KV states can be reused)."""
    try:
        return prefix_stable(tokenizer, TEMPLATE_PROBE)
    except Exception:  # a template that rejects the probe (strict alternation rules, say)
        return False
