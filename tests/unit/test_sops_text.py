"""What sops says, quoted in a message: one line, at most OUTSIDE_TEXT_LIMIT characters, cut between words with a
marker, never inside a word (nor inside a secret: it is redacted first)."""

from __future__ import annotations

from reconciler.secrets.redaction import Redactor
from reconciler.sops import CUT_MARKER, OUTSIDE_TEXT_LIMIT, outside_text


def test_a_short_text_is_one_line_as_it_is() -> None:
    assert outside_text(
        "Error decrypting tree:\n  | cipher: message authentication failed\n", Redactor()
    ) == ("Error decrypting tree: cipher: message authentication failed")


def test_a_long_text_is_cut_between_words_with_a_marker() -> None:
    text = " ".join(f"word{number:04d}" for number in range(100))  # 9 characters a word and its space
    shown = outside_text(text, Redactor())
    assert len(shown) <= OUTSIDE_TEXT_LIMIT and shown.endswith(CUT_MARKER)
    kept = shown.removesuffix(CUT_MARKER)
    assert text.startswith(kept + " ")  # whole words only
    assert len(kept) > OUTSIDE_TEXT_LIMIT - len(CUT_MARKER) - len("word0000 ")  # as many as fit


def test_one_word_longer_than_the_limit_is_cut_inside_it() -> None:
    shown = outside_text("failed: " + "x" * 1000, Redactor())
    assert shown == "failed: " + "x" * (OUTSIDE_TEXT_LIMIT - len(CUT_MARKER) - len("failed: ")) + CUT_MARKER


def test_a_secret_at_the_cut_is_redacted_before_the_cut() -> None:
    redactor = Redactor()
    secret = "s3cret-value-that-is-long-enough"
    redactor.register(secret)
    text = "a " * 140 + secret + " tail" * 40
    shown = outside_text(text, redactor)
    assert "s3cret" not in shown and "***" in shown and shown.endswith(CUT_MARKER)
