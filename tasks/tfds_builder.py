"""A TFDS builder for CoT record files, so the data can be built once and read from GCS.

    CotRecords(config="gsm8k", data_dir="gs://bucket/tfds").download_and_prepare()

(or `tfds build cot_records --imports=t5x_cot.tasks.tfds_builder --config=gsm8k
--data_dir=...`; TFDS 4.9's CLI itself also needs apache-beam and mlcroissant)
reads `<task>.jsonl` where `<task>_cot` would (see `sources.cot_records_file`) and writes
the same `train` / `validation` rows the registered `<task>_cot` task reads directly
(same filtering, same id-hash split). The dataset is versioned; the SHA-256 of the
records file it was built from is stored in its metadata (`records_sha256`) and, when
`expected_sha256` is given, checked before anything is written. Read it back with
`tfds_source(task, data_dir)`.
"""
from __future__ import annotations

import hashlib
import pathlib

import seqio
import tensorflow_datasets as tfds
from etils import epath

from t5x_cot.data import DataError
from t5x_cot.tasks import sources
from t5x_cot.tasks import splits as splits_lib

VERSION = "1.0.0"
TFDS_SPLITS = ("train", "validation")


def file_sha256(path: str | pathlib.Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CotRecordsConfig(tfds.core.BuilderConfig):
    """One builder config per dataset (gsm8k, strategyqa, coinflip)."""

    def __init__(self, *, task: str, **kwargs):
        super().__init__(name=task, description=f"{task} chain-of-thought records", **kwargs)
        self.task = task


class CotRecords(tfds.core.GeneratorBasedBuilder):
    """CoT records as (id, inputs, targets, answer) text examples, split train/validation."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {str(VERSION): "Questions as inputs, `<rationale> The answer is X.` targets."}
    BUILDER_CONFIGS = [CotRecordsConfig(task=task) for task in sources.TASKS]

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """This file (TFDS would otherwise derive it from the module name, which the
        `t5x_cot.tasks` -> `tasks/` package mapping breaks)."""
        return epath.Path(__file__)

    def __init__(self, *, records_path: str | None = None, expected_sha256: str | None = None,
                 **kwargs):
        self._records_path = records_path
        self._expected_sha256 = expected_sha256
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text()
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.builder_config.description,
            features=tfds.features.FeaturesDict(
                {"id": text, "inputs": text, "targets": text, "answer": text}),
            metadata=tfds.core.MetadataDict(),
            homepage="https://arxiv.org/abs/2212.08410",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # local records file, read below
        task = self.builder_config.task
        path = pathlib.Path(self._records_path or sources.cot_records_file(task))
        rows = sources.record_rows(task, path)
        sha = file_sha256(path)
        if self._expected_sha256 and sha != self._expected_sha256:
            raise DataError(path, f"SHA-256 {sha} does not match the expected "
                                  f"{self._expected_sha256}")
        self.info.metadata["records_sha256"] = sha
        self.info.metadata["records_file"] = str(path)
        return {split: self._generate_examples(
            splits_lib.split_training_set(rows, split, lambda r: r["id"]))
            for split in TFDS_SPLITS}

    def _generate_examples(self, rows):
        for index, row in enumerate(rows):
            yield index, dict(row)


def tfds_source(task: str, data_dir: str, version: str = VERSION) -> seqio.TfdsDataSource:
    """A seqio source over a built `cot_records/<task>` dataset (local path or gs://)."""
    return seqio.TfdsDataSource(tfds_name=f"cot_records/{task}:{version}", tfds_data_dir=data_dir,
                                splits=TFDS_SPLITS)
