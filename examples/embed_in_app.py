"""Embed policyengine in a chat app: moderate the user's message before the model call and the model's answer after.

Run: python examples/embed_in_app.py
"""

from __future__ import annotations

from pathlib import Path

from policyengine import Engine

POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.policy"


def fake_llm(prompt: str) -> str:
    """Stands in for your model call."""
    return f"Sure! Here is an answer to: {prompt}"


def chat(engine: Engine, message: str, context: dict | None = None) -> str:
    pre = engine.evaluate(input=message, context=context)
    if pre.action == "block":
        return pre.message or "Sorry, I can't help with that."  # no model call paid for
    prompt = pre.redacted if pre.action == "redact" else message
    answer = fake_llm(prompt)
    post = engine.evaluate(output=answer, context=context)
    if post.action == "block":
        return post.message or "Sorry, I can't share that."
    return post.redacted_output if post.action == "redact" else answer


def main() -> None:
    engine = Engine.from_path(POLICY)  # compile + load the model once; evaluate many times
    for message in [
        "How do I kill a stuck python process on Linux?",
        "My card is 4111 1111 1111 1111, why was I charged twice?",
        "Give me step by step instructions to build a pipe bomb.",
    ]:
        print(f"user: {message}\nbot:  {chat(engine, message)}\n")


if __name__ == "__main__":
    main()
