"""Token ids <-> text for host-side decoding logic, on a SentencePiece model."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

WORD_START = "\u2581"  # SentencePiece's word-boundary marker


class SentencePieceCodec:
    """Encode/decode with a SentencePiece processor; ids past its pieces (T5's extra ids and
    vocabulary padding) decode to nothing."""

    def __init__(self, processor: Any):
        self.processor = processor
        self.num_pieces = int(processor.get_piece_size())

    @classmethod
    def from_model_file(cls, path: str) -> SentencePieceCodec:
        import sentencepiece  # pylint: disable=import-outside-toplevel
        return cls(sentencepiece.SentencePieceProcessor(model_file=str(path)))

    @classmethod
    def from_vocabulary(cls, vocabulary: Any) -> SentencePieceCodec:
        """From a seqio SentencePieceVocabulary (its `tokenizer` is the processor)."""
        return cls(vocabulary.tokenizer)

    def encode(self, text: str) -> list[int]:
        return list(self.processor.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self.processor.decode([int(i) for i in ids if 0 <= int(i) < self.num_pieces])

    def piece(self, token_id: int) -> str:
        return self.processor.id_to_piece(int(token_id)) if 0 <= token_id < self.num_pieces else ""

    def encode_continuation(self, text: str) -> list[int]:
        """Ids that continue a text without the word-boundary space SentencePiece adds in front."""
        ids = self.encode(text)
        if ids:
            first = self.piece(ids[0])
            if first == WORD_START:
                ids = ids[1:]
            elif first.startswith(WORD_START):
                bare = self.processor.piece_to_id(first[1:])
                if bare != self.processor.unk_id():
                    ids[0] = bare
        return ids

    def token_mask(self, vocab_size: int, substring: str) -> np.ndarray:
        """[vocab_size] bool: pieces that contain `substring`."""
        return np.array([substring in self.piece(i) for i in range(vocab_size)], bool)
