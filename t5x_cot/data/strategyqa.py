"""StrategyQA (Geva et al. 2021): yes/no questions that need implicit multi-step reasoning.

`strategyqa/{train,dev}.json` are the 90%/10% split of the official training set published
with the paper's code (eladsegal/strategyqa; the official test set has no answers). Each file
is one JSON array of objects with `qid`, `question`, `answer` (bool), `facts` (list of str),
`decomposition`, .... The Example's id is the qid, its answer "yes"/"no", its rationale the
facts joined with spaces, each ending with a full stop (about 13% of the facts lack one,
which would run sentences together). Split "test" is an alias of "dev" (the paper's test set).
"""
from __future__ import annotations

import pathlib

from t5x_cot.data.example import Example
from t5x_cot.data.fields import iter_json_array, require

SPLITS = ("train", "dev")
_SENTENCE_END = (".", "!", "?")
ALIASES = {"test": "dev"}


def split_path(data_dir: pathlib.Path, split: str) -> pathlib.Path:
    """Where a split lives under the data dir."""
    return data_dir / "strategyqa" / f"{split}.json"


def load(split: str, data_dir: pathlib.Path) -> list[Example]:
    """All examples of a StrategyQA split (`train`, `dev`, or `test` meaning dev)."""
    split = ALIASES.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"strategyqa has splits {SPLITS} (and 'test' = 'dev'), got {split!r}")
    examples = []
    first_seen: dict[str, int] = {}
    for where, obj in iter_json_array(split_path(data_dir, split)):
        qid = require(obj, "qid", str, where)
        if qid in first_seen:
            raise where.error(f"duplicate qid {qid!r} (first at index {first_seen[qid]})", "qid")
        first_seen[qid] = where.index
        facts = require(obj, "facts", list, where)
        for position, fact in enumerate(facts):
            if not isinstance(fact, str) or not fact.strip():
                raise where.error(f"expected a non-empty string, got {fact!r}",
                                  f"facts[{position}]")
        examples.append(Example(
            id=qid, task="strategyqa", split=split,
            question=require(obj, "question", str, where).strip(),
            answer="yes" if require(obj, "answer", bool, where) else "no",
            rationale=" ".join(_as_sentence(fact) for fact in facts)))
    return examples


def _as_sentence(fact: str) -> str:
    fact = fact.strip()
    return fact if fact.endswith(_SENTENCE_END) else fact + "."
