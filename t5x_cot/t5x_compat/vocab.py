"""The vocabularies T5X model gin files name: public SentencePiece models on gs://t5-data are
read from a local copy under $T5X_COT_DATA_DIR/vocab/ when the bucket is out of reach, and a
vocabulary that cannot be read is refused naming it (and, for a public one, how to get it)."""
from __future__ import annotations

import os
import pathlib
from typing import Any, NamedTuple

from t5x_cot import paths

DATA_DIR_ENV = "T5X_COT_DATA_DIR"


class PublicVocab(NamedTuple):
    """Where a public model's local copy lives, and the extra ids to add to it."""

    local_file: str
    extra_ids: int


T5_LOCAL_FILE = "vocab/t5_spiece.model"
# Public path -> local copy (the `100extra` files have their extra ids built in; the T5 local
# copy is the 32000-piece model, so its 100extra path adds them).
PUBLIC_VOCABS = {
    "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model": PublicVocab(T5_LOCAL_FILE, 0),
    "gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model": PublicVocab(T5_LOCAL_FILE, 100),
    "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model": PublicVocab("vocab/mc4.250000.100extra.model", 0),
}
REACH_TIMEOUT_S = 3.0
MODEL_HINT = "bind seqio.SentencePieceVocabulary.sentencepiece_model_file to a readable SentencePiece model"


def local_copy(public: PublicVocab) -> pathlib.Path | None:
    """The local copy of a public vocabulary under $T5X_COT_DATA_DIR, or None when absent
    (the T5 model is also checked against its recorded checksum)."""
    from t5x_cot.data import download

    data_dir = os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        return None
    entry = next((item for item in download.MANIFEST if item.path == public.local_file), None)
    path = pathlib.Path(data_dir) / public.local_file
    present = download.is_present(entry, pathlib.Path(data_dir)) if entry is not None else path.is_file()
    return path if present else None


def localize(vocabulary: Any) -> Any:
    """`vocabulary`, checked readable; a public one whose bucket cannot be reached is read from its
    local copy (extra ids kept equal). Raises VocabularyError naming an unreadable vocabulary."""
    from t5x_cot.tasks.vocab import VocabularyError, check_readable

    path = getattr(vocabulary, "sentencepiece_model_file", None)
    if path is None:
        return vocabulary
    public = PUBLIC_VOCABS.get(path)
    if public is None or paths.reachable(path, REACH_TIMEOUT_S):
        check_readable(path, MODEL_HINT)
        return vocabulary
    local = local_copy(public)
    if local is None:
        raise VocabularyError(
            f"vocabulary {path} is not reachable (no network or credentials) and has no local copy: "
            f"copy it to ${DATA_DIR_ENV}/{public.local_file} (e.g. gsutil cp {path} "
            f"${DATA_DIR_ENV}/{public.local_file}), or {MODEL_HINT}")
    import seqio

    extra_ids = getattr(vocabulary, "extra_ids", 0) + public.extra_ids
    return seqio.SentencePieceVocabulary(check_readable(str(local), MODEL_HINT), extra_ids=extra_ids)


def describe(vocabulary: Any) -> str:
    """`path (+N extra ids)` of a SentencePiece vocabulary, else its type name."""
    path = getattr(vocabulary, "sentencepiece_model_file", None)
    if path is None:
        return type(vocabulary).__name__
    return f"{path} (+{getattr(vocabulary, 'extra_ids', 0)} extra ids)"



def same_sentencepiece(a: Any, b: Any) -> bool | None:
    """Whether two SentencePiece vocabularies encode alike (same model bytes and extra ids);
    None when either is not a SentencePiece vocabulary (e.g. seqio's PassThroughVocabulary)."""
    if not (hasattr(a, "sp_model") and hasattr(b, "sp_model")):
        return None
    return a.extra_ids == b.extra_ids and a.sp_model == b.sp_model
