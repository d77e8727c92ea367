"""The dynamic batcher on a real event loop: which requests share a decode, and its limits."""
from __future__ import annotations

import asyncio
import threading

import pytest

from t5x_cot.serve.batcher import BatcherClosed, DynamicBatcher, QueueFull


class Recorder:
    """A batch callback that records (key, rows) and answers each row with (key, row)."""

    def __init__(self, fail_key=None):
        self.calls: list[tuple[str, list]] = []
        self.fail_key = fail_key
        self.release = threading.Event()
        self.release.set()

    def __call__(self, key, rows):
        self.release.wait(10)
        self.calls.append((key, list(rows)))
        if key == self.fail_key:
            raise RuntimeError(f"decode of {key} failed")
        return [(key, row) for row in rows]


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_requests_with_the_same_key_share_a_batch_up_to_max_rows():
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=4, max_wait_s=0.2, max_queue=100)
        batcher.start()
        results = await asyncio.gather(
            batcher.submit("greedy", ["a", "b"]), batcher.submit("hot", ["c"]),
            batcher.submit("greedy", ["d"]), batcher.submit("greedy", ["e", "f"]),
            batcher.submit("greedy", ["g"]))
        await batcher.stop()
        return results, batcher.stats.as_dict()
    results, stats = _run(scenario())
    assert results == [[("greedy", "a"), ("greedy", "b")], [("hot", "c")], [("greedy", "d")],
                       [("greedy", "e"), ("greedy", "f")], [("greedy", "g")]]
    # oldest first; a request never split; at most 4 rows per decode; keys never mixed
    assert recorder.calls == [("greedy", ["a", "b", "d", "g"]), ("hot", ["c"]), ("greedy", ["e", "f"])]
    assert stats == {"batches": 3, "requests": 5, "batch_rows": {"1": 1, "2": 1, "4": 1}}


def test_full_queue_refuses_and_a_failed_decode_fails_only_its_batch():
    recorder = Recorder(fail_key="bad")
    recorder.release.clear()  # the first decode blocks until released

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=2, max_wait_s=0.0, max_queue=2)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit("bad", ["x"]))
        await asyncio.sleep(0.1)  # taken off the queue, decoding (blocked)
        queued = [asyncio.ensure_future(batcher.submit("ok", [i])) for i in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            await batcher.submit("ok", [9])
        recorder.release.set()
        with pytest.raises(RuntimeError, match="decode of bad failed"):
            await first
        done = await asyncio.gather(*queued)
        with pytest.raises(ValueError):
            await batcher.submit("ok", [1, 2, 3])  # more rows than max_batch
        await batcher.stop()
        with pytest.raises(BatcherClosed):
            await batcher.submit("ok", [1])
        return done
    assert _run(scenario()) == [[("ok", 0)], [("ok", 1)]]
