"""The stage cache: keys, atomic shards, resume (only missing shards computed), corrupt shards."""

import json
import os

import pytest

from xfast.errors import ParameterError, PipelineError
from xfast.pipelines.stagecache import (CacheStats, StageCache, StageContext, model_fingerprint, run_stage,
                                        shard_ranges, stage_key)


def test_stage_key_is_stable_and_sensitive():
    a = stage_key({"x": 1, "y": [1, 2]})
    assert a == stage_key({"y": [1, 2], "x": 1})  # key order does not matter
    assert a != stage_key({"x": 2, "y": [1, 2]})
    assert len(a) == 20


def test_shard_ranges():
    assert shard_ranges(0, 3) == []
    assert shard_ranges(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert shard_ranges(6, 3) == [(0, 3), (3, 6)]


def test_save_load_round_trip_and_no_temporary_files(tmp_path):
    c = StageCache(tmp_path, "translate", {"model": "m"}, shard_size=2)
    recs = c.save(0, 0, [{"text": "ä", "n": [1, (2, 3)]}, {"text": ""}], {"empty": 1})
    assert recs == [{"text": "ä", "n": [1, [2, 3]]}, {"text": ""}]  # what JSON gives back
    assert c.load(0, 0, 2) == (recs, {"empty": 1})
    assert sorted(p.name for p in c.dir.iterdir()) == ["key.json", "shard-00000.jsonl"]
    assert json.loads((c.dir / "key.json").read_text())["model"] == "m"
    assert c.dir == tmp_path / "translate" / c.key
    assert c.stats.as_dict() == {"loaded": {"translate": 1}, "computed": {"translate": 1}, "corrupt": {}}


def test_missing_wrong_and_corrupt_shards_are_not_trusted(tmp_path):
    c = StageCache(tmp_path, "s", {}, shard_size=2)
    assert c.load(0, 0, 2) is None  # missing: not counted as corrupt
    c.save(0, 0, [{"a": 1}, {"a": 2}], {})
    assert c.load(0, 2, 2) is None  # another start
    assert c.load(0, 0, 3) is None  # another size
    c.path(1).write_text('{"shard": 1, "start": 2, "n": 2}\n{"a": 3}\n{"a"')  # torn write
    assert c.load(1, 2, 2) is None
    assert c.stats.corrupt == {"s": 3}


def test_run_computes_only_missing_shards(tmp_path):
    calls = []

    def compute(lo, hi):
        calls.append((lo, hi))
        return [{"i": i} for i in range(lo, hi)], {"lo": lo}

    stats = CacheStats()
    ctx = StageContext(tmp_path, 2, stats, None, progress=False)
    recs, shard_stats, key = run_stage(ctx, "s", {"k": 1}, 5, compute)
    assert recs == [{"i": i} for i in range(5)] and calls == [(0, 2), (2, 4), (4, 5)]
    assert shard_stats == [{"lo": 0}, {"lo": 2}, {"lo": 4}]
    # a killed run: the middle shard is gone
    StageCache(tmp_path, "s", {"k": 1}, shard_size=2).path(1).unlink()
    calls.clear()
    recs2, shard_stats2, key2 = run_stage(ctx, "s", {"k": 1}, 5, compute)
    assert (recs2, shard_stats2, key2) == (recs, shard_stats, key) and calls == [(2, 4)]
    assert stats.loaded == {"s": 2} and stats.computed == {"s": 4}
    # another shard size is another key (batch composition may change outputs)
    calls.clear()
    run_stage(StageContext(tmp_path, 3, CacheStats(), None, progress=False), "s", {"k": 1}, 5, compute)
    assert calls == [(0, 3), (3, 5)]


def test_run_rejects_a_wrong_record_count_and_bad_shard_size(tmp_path):
    with pytest.raises(PipelineError, match="E511"):
        run_stage(StageContext(tmp_path, 2, CacheStats(), None, progress=False), "s", {}, 3,
                  lambda lo, hi: ([{}], {}))
    with pytest.raises(ParameterError, match="shard_size"):
        StageCache(tmp_path, "s", {}, shard_size=0)


def test_model_fingerprint(tmp_path):
    assert model_fingerprint("nllb-600m") == {"name": "nllb-600m"}
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.bin").write_bytes(b"abc")
    fp = model_fingerprint(d)
    assert fp == model_fingerprint(str(d)) and fp["path"] == str(d.resolve())

    class Loaded:
        model_dir = d

    assert model_fingerprint(Loaded()) == fp
    (d / "model.bin").write_bytes(b"abcd")
    os.utime(d / "model.bin", ns=(1, 1))
    assert model_fingerprint(d) != fp


def test_a_stage_can_move_its_bar_within_a_shard(tmp_path):
    """A model inside a stage reports each batch through stage_tick; outside a stage it is a no-op."""
    from xfast.pipelines import stagecache as C

    seen = []

    def compute(lo, hi):
        seen.append(C._TICK.get() is not None)
        C.stage_tick(hi - lo)
        return [{"i": i} for i in range(lo, hi)], {}

    C.run_stage(StageContext(tmp_path, 4, CacheStats(), None, progress=True), "s", {"x": 1}, 10, compute)
    assert seen == [True, True, True]
    assert C._TICK.get() is None
    C.stage_tick(3)  # no stage: nothing happens
