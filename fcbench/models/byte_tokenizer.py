"""A byte-level tokenizer built in code: ids 0-255 are the bytes of UTF-8 text, then special tokens.

Key names: `ByteTokenizer`, `SPECIAL_TOKENS`, `GENERATED_BYTES`. No vocabulary file:
any text encodes (its UTF-8 bytes), and a token's text is known without looking at its
neighbours. What a model may *generate* is narrower (`ByteTokenizer.generation_mask`): printable
ASCII and newline, so every token decodes alone to valid UTF-8 and a stream can send it at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["GENERATED_BYTES", "SPECIAL_TOKENS", "ByteTokenizer"]

#: The special tokens of the built-in model, after the 256 byte ids.
SPECIAL_TOKENS: dict[str, int] = {"<bos>": 256, "<eos>": 257, "<pad>": 258}
#: The bytes a generated token may be: newline and printable ASCII (space to tilde).
GENERATED_BYTES: tuple[int, ...] = (10, *range(32, 127))



@dataclass(frozen=True)
class ByteTokenizer:
    """Bytes 0-255 are ids 0-255; `bos_id` / `eos_id` mark the start of a prompt and the end of
    an answer. A user's checkpoint keeps its own bos/eos ids (from its config.json)."""

    bos_id: int = SPECIAL_TOKENS["<bos>"]
    eos_id: int = SPECIAL_TOKENS["<eos>"]

    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        """The ids of `text`: its UTF-8 bytes, after `bos_id` when `add_bos`."""
        ids = list(text.encode("utf-8"))
        return [self.bos_id, *ids] if add_bos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; special and out-of-byte-range ids are skipped (as
        ``skip_special_tokens`` does), bytes that are not UTF-8 become U+FFFD."""
        return bytes(i for i in ids if 0 <= i < 256 and i not in (self.bos_id, self.eos_id)
                     ).decode("utf-8", errors="replace")

    def token_text(self, token_id: int) -> str:
        """The text of one generated token ("" for a special token)."""
        if 0 <= token_id < 128 and token_id not in (self.bos_id, self.eos_id):
            return chr(token_id)
        return self.decode([token_id])

    def generation_mask(self, vocab_size: int, *, allow_eos: bool) -> np.ndarray:
        """A bool [vocab_size] mask of the ids a model may generate: `GENERATED_BYTES`, plus
        `eos_id` when `allow_eos` (off for ``ignore_eos`` and before ``min_tokens``)."""
        mask = np.zeros(vocab_size, dtype=bool)
        mask[[b for b in GENERATED_BYTES if b < vocab_size]] = True
        if allow_eos and 0 <= self.eos_id < vocab_size:
            mask[self.eos_id] = True
        return mask

