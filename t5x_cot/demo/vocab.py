"""Stage 3, vocabulary: a small SentencePiece model trained on the demo's own text.

The T5 vocabulary lives in the data directory, which a fresh machine does not have; the demo
trains a BPE SentencePiece model on its questions and targets, with T5's special ids (pad 0,
EOS 1, unk 2, no BOS) and no byte fallback. The annotation markers `<<`, `=` and `>>` are
atomic pieces and digits are split, so no piece merges `=` with a number (the calculator in
the loop pauses at a piece holding `=` and needs nothing else in it) and a number is spelled
digit by digit. One trainer thread: the merges SentencePiece picks depend on its thread
count (a fixed count repeats exactly), so one thread gives the same model on every machine.
"""
from __future__ import annotations

import pathlib
from collections.abc import Iterable, Sequence

from t5x_cot.errors import UserError

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
MODEL_FILE = "spiece.model"
ATOMIC_SYMBOLS = ("<<", ">>", "=")


class VocabularyTrainingError(UserError, RuntimeError):
    """The trained model cannot spell some text the demo needs."""


def train_sentencepiece(lines: Iterable[str], out_dir: str | pathlib.Path, *,
                        vocab_size: int = 768, must_spell: Sequence[str] = (),
                        atomic_symbols: Sequence[str] = ATOMIC_SYMBOLS,
                        split_digits: bool = True) -> pathlib.Path:
    """Train a BPE SentencePiece model on `lines`; returns `out_dir/spiece.model`.

    BPE merges the frequent words first, so every word of the demo's text is one piece.
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
        user_defined_symbols=list(atomic_symbols), split_digits=split_digits,
        num_threads=1, minloglevel=2)
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
