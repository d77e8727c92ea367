"""A small SentencePiece vocabulary trained on the demo's own text.

The T5 vocabulary lives in the data directory, which a fresh machine does not have; the
demo therefore trains a SentencePiece model on its generated questions and targets, with
T5's special ids (pad 0, EOS 1, unk 2, no BOS) and no byte fallback, and checks that every
name and both answers tokenize without unknown pieces.
"""
from __future__ import annotations

import pathlib
from collections.abc import Iterable, Sequence

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
MODEL_FILE = "spiece.model"


class VocabularyTrainingError(RuntimeError):
    """The trained model cannot spell some text the demo needs."""


def train_sentencepiece(lines: Iterable[str], out_dir: str | pathlib.Path, *,
                        vocab_size: int = 768, must_spell: Sequence[str] = ()) -> pathlib.Path:
    """Train a BPE SentencePiece model on `lines`; returns `out_dir/spiece.model`.

    BPE merges the frequent words first; on the demo's text 768 pieces spell every word and
    every name as one piece (a unigram model of that size splits common words into letters).
    `vocab_size` is a soft limit (a tiny corpus gets fewer pieces). Raises
    VocabularyTrainingError when a string of `must_spell` tokenizes to an unknown piece.
    """
    import sentencepiece as spm  # pylint: disable=import-outside-toplevel

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / MODEL_FILE.removesuffix(".model")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(lines)), model_prefix=str(prefix), vocab_size=vocab_size,
        model_type="bpe", hard_vocab_limit=False, character_coverage=1.0,
        byte_fallback=False, pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1,
        num_threads=2, minloglevel=2)
    path = out / MODEL_FILE
    processor = spm.SentencePieceProcessor(model_file=str(path))
    unknown = [text for text in must_spell if UNK_ID in processor.encode(text)]
    if unknown:
        raise VocabularyTrainingError(
            f"{path}: {len(unknown)} strings tokenize to the unknown piece, e.g. {unknown[:3]}")
    return path


def padded_size(num_pieces: int, multiple: int = 128) -> int:
    """The model's vocab size: `num_pieces` rounded up to a multiple of `multiple` (as T5)."""
    return -(-num_pieces // multiple) * multiple
