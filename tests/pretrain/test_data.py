"""Token shards as a stream, packed windows, the resumable seeded sampler, the data module state."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest
import torch

from pipeline.pretrain.data import (
    PackedCollate,
    PackedWindows,
    PretrainDataModule,
    ResumableBatchSampler,
    TokenStream,
    ValidationBatchSampler,
)
from tests.pretrain.token_shards import write_split

EOD = 0


def test_stream_reads_across_shards_like_one_array(tmp_path):
    docs = [list(range(1, 1 + n)) for n in (5, 9, 3, 7, 11)]
    write_split(tmp_path, docs, EOD, per_shard=2)  # 3 shards
    stream = TokenStream(tmp_path)
    assert len(stream.paths) == 3  # index files are not token shards
    flat = np.concatenate([np.append(d, EOD) for d in docs])
    assert len(stream) == len(flat)
    for start, n in [(0, 6), (4, 10), (14, 17), (len(flat) - 3, 3)]:
        assert stream.read(start, n).tolist() == flat[start : start + n].tolist()
    pickled = pickle.dumps(stream)  # what a spawned DataLoader worker receives
    assert len(pickled) < 1000 and pickle.loads(pickled).read(4, 10).tolist() == flat[4:14].tolist()
    windows = PackedWindows(stream, block_size=8)
    assert len(windows) == (len(flat) - 1) // 8
    assert windows[2].tolist() == flat[16:25].tolist()  # consecutive windows share one token


def test_a_shard_with_the_wrong_column_is_a_clear_error(tmp_path):
    table = pa.table({"tokens": pa.array([1.0, 2.0])})
    with pa.ipc.new_file(str(tmp_path / "shard-00000.arrow"), table.schema) as w:
        w.write_table(table)
    with pytest.raises(ValueError, match="uint16/uint32 column `tokens`"):
        TokenStream(tmp_path)
    with pytest.raises(FileNotFoundError, match="no token shards"):
        TokenStream(tmp_path / "missing")


def test_collate_adds_document_ids_only_for_packed_rows():
    collate = PackedCollate(eod_id=EOD)
    plain = collate([torch.tensor([3, 4, 5, 6, 7]), torch.tensor([8, 9, 3, 4, EOD])])
    assert set(plain) == {"input_ids", "labels"}  # an EOD only as the last target
    packed = collate([torch.tensor([3, EOD, 5, 6, 7]), torch.tensor([8, 9, 3, 4, 5])])
    assert packed["doc_ids"].tolist() == [[0, 0, 1, 1], [0, 0, 0, 0]]
    assert packed["positions"].tolist() == [[0, 1, 0, 1], [0, 1, 2, 3]]
    assert packed["labels"].tolist() == [[EOD, 5, 6, 7], [9, 3, 4, 5]]
    assert set(PackedCollate(eod_id=None)([torch.tensor([3, EOD, 5])])) == {"input_ids", "labels"}


def take(sampler, n: int) -> list[list[int]]:
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_ranks_read_disjoint_samples_of_one_seeded_order():
    n, micro = 50, 4
    single = sum(take(ResumableBatchSampler(n, micro, 0, 1, seed=7, start_sample=0), 26), [])
    rank0 = take(ResumableBatchSampler(n, micro, 0, 2, seed=7, start_sample=0), 13)
    rank1 = take(ResumableBatchSampler(n, micro, 1, 2, seed=7, start_sample=0), 13)
    interleaved = sum((a + b for a, b in zip(rank0, rank1)), [])
    assert interleaved == single  # the same global order, split between the ranks
    assert sorted(single[:50]) == list(range(50))  # one epoch is a permutation
    assert single[50:100] != single[:50]  # the next epoch is shuffled anew
    assert sorted(single[50:100]) == list(range(50))
    other_seed = sum(take(ResumableBatchSampler(n, micro, 0, 1, seed=8, start_sample=0), 26), [])
    assert other_seed != single


def test_a_sampler_started_mid_run_continues_the_same_order():
    full = take(ResumableBatchSampler(37, 3, 0, 1, seed=1, start_sample=0), 30)
    resumed = take(ResumableBatchSampler(37, 3, 0, 1, seed=1, start_sample=3 * 17), 13)
    assert resumed == full[17:]


def test_validation_batches_are_fixed_and_split_across_ranks():
    rank0 = list(ValidationBatchSampler(100, 4, batches=3, rank=0, world=2))
    rank1 = list(ValidationBatchSampler(100, 4, batches=3, rank=1, world=2))
    assert sorted(sum(rank0 + rank1, [])) == list(range(24))
    assert len(list(ValidationBatchSampler(10, 4, batches=3, rank=0, world=1))) == 2
    with pytest.raises(ValueError, match="fewer than one batch per device"):
        ValidationBatchSampler(7, 4, batches=3, rank=0, world=2)


def test_data_module_state_is_the_data_position(tokenize_dir):
    dm = PretrainDataModule(tokenize_dir, 64, 4, 2, seed=3, eod_id=EOD, val_batches=2)
    assert dm.state_dict()["consumed_samples"] == 0  # no trainer yet: nothing consumed
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (4, 64) and batch["labels"].shape == (4, 64)
    state = {"consumed_samples": 40, "seed": 3, "block_size": 64, "train_windows": len(dm.train)}
    dm.load_state_dict(state)
    resumed = next(iter(dm.train_dataloader()))
    expected = ResumableBatchSampler(len(dm.train), 4, 0, 1, seed=3, start_sample=40)
    assert resumed["input_ids"].tolist() == [
        dm.train[i][:-1].tolist() for i in next(iter(expected))
    ]
    workers = PretrainDataModule(
        tokenize_dir, 64, 4, 2, seed=3, eod_id=EOD, val_batches=2, num_workers=2
    )
    workers.load_state_dict(state)
    assert next(iter(workers.train_dataloader()))["input_ids"].equal(resumed["input_ids"])
    with pytest.raises(ValueError, match="seed=9"):
        dm.load_state_dict({**state, "seed": 9})
    with pytest.raises(ValueError, match="changed"):
        dm.load_state_dict({**state, "train_windows": 1})
