"""The T5 SentencePiece vocabulary every task shares, and where its model file comes from.

Resolution order of the model path: the `path` argument, the gin binding
`vocabulary_path.path`, the environment variable `T5X_COT_VOCAB`,
`$T5X_COT_DATA_DIR/vocab/t5_spiece.model` when that file exists, and finally the public
T5X vocabulary on GCS (what T5X users on GCP already read).
"""
from __future__ import annotations

import os

import gin
import seqio
import tensorflow as tf

from t5x_cot.errors import UserError

PUBLIC_VOCABULARY = "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"
EXTRA_IDS = 100
ENV_VAR = "T5X_COT_VOCAB"


class VocabularyError(UserError, ValueError):
    """The SentencePiece model file cannot be read or is not a SentencePiece model."""


@gin.configurable("vocabulary_path", module="t5x_cot.tasks")
def vocabulary_path(path: str | None = None) -> str:
    """The SentencePiece model path, resolved as described in the module docstring."""
    if path:
        return str(path)
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    data_dir = os.environ.get("T5X_COT_DATA_DIR")
    if data_dir:
        local = os.path.join(data_dir, "vocab", "t5_spiece.model")
        if os.path.isfile(local):
            return local
    return PUBLIC_VOCABULARY


TASK_HINT = f"set {ENV_VAR} or the gin binding vocabulary_path.path to a T5 sentencepiece.model"


def check_readable(path: str, hint: str = TASK_HINT) -> str:
    """Returns `path` when it is a readable SentencePiece model, else raises VocabularyError
    (naming the path, the reason and `hint`)."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            blob = f.read()
    except (tf.errors.OpError, OSError) as e:
        reason = getattr(e, "message", None) or str(e)
        reason = reason.strip().splitlines()[0] if reason.strip() else type(e).__name__
        raise VocabularyError(f"cannot read vocabulary {path}: {reason}; {hint}") from None
    from sentencepiece import SentencePieceProcessor  # pylint: disable=import-outside-toplevel
    try:
        SentencePieceProcessor(model_proto=blob)
    except (RuntimeError, TypeError, ValueError):
        raise VocabularyError(
            f"vocabulary {path} is not a SentencePiece model ({len(blob)} bytes); {hint}") from None
    return path


def get_vocabulary(path: str | None = None) -> seqio.SentencePieceVocabulary:
    """The T5 vocabulary (SentencePiece + 100 extra ids); raises VocabularyError if unreadable."""
    resolved = check_readable(vocabulary_path(path) if path else vocabulary_path())
    return seqio.SentencePieceVocabulary(resolved, extra_ids=EXTRA_IDS)


class DeferredVocabulary(seqio.SentencePieceVocabulary):
    """The task vocabulary: its path is resolved and checked on first use, not at import.

    Tasks are registered when `t5x_cot.tasks` is imported, which may happen before gin
    bindings are parsed; resolving lazily lets `vocabulary_path.path` and `T5X_COT_VOCAB`
    apply to every registered task.
    """

    def __init__(self):
        super().__init__("", extra_ids=EXTRA_IDS)

    def _model_context(self):
        if self._model is None:
            self._sentencepiece_model_file = check_readable(vocabulary_path())
        return super()._model_context()

    @property
    def sentencepiece_model_file(self) -> str:
        return self._sentencepiece_model_file or vocabulary_path()


TASK_VOCABULARY = DeferredVocabulary()
