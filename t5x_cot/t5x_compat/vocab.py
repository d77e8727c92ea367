"""Public T5 SentencePiece models on gs://t5-data, served from the local checked copy offline."""
from __future__ import annotations

import os
import pathlib
from typing import Any

from t5x_cot import paths

LOCAL_FILE = "vocab/t5_spiece.model"
DATA_DIR_ENV = "T5X_COT_DATA_DIR"
# Public path -> extra ids on top of the 32000-piece model (the `100extra` file has them built in).
PUBLIC_T5_VOCABS = {
    "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model": 0,
    "gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model": 100,
}
REACH_TIMEOUT_S = 3.0


def local_copy() -> pathlib.Path | None:
    """`$T5X_COT_DATA_DIR/vocab/t5_spiece.model` when present and its checksum matches, else None."""
    from t5x_cot.data import download

    data_dir = os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        return None
    entry = next(item for item in download.MANIFEST if item.path == LOCAL_FILE)
    return pathlib.Path(data_dir) / LOCAL_FILE if download.is_present(entry, pathlib.Path(data_dir)) else None


def localize(vocabulary: Any) -> Any:
    """`vocabulary` itself, or, for a public T5 model whose bucket cannot be reached, the same
    vocabulary read from the checked local copy (extra ids kept equal)."""
    path = getattr(vocabulary, "sentencepiece_model_file", None)
    if path not in PUBLIC_T5_VOCABS or paths.reachable(path, REACH_TIMEOUT_S):
        return vocabulary
    local = local_copy()
    if local is None:
        return vocabulary
    import seqio

    extra_ids = getattr(vocabulary, "extra_ids", 0) + PUBLIC_T5_VOCABS[path]
    return seqio.SentencePieceVocabulary(str(local), extra_ids=extra_ids)
