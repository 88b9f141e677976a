"""``--shard I/N``: a deterministic slice of the patients, the same on every machine and every run.

A patient belongs to shard ``blake2b(patient id) mod N``: no coordination between shards, no list to share,
and every shard of one export together holds every patient exactly once. ``I`` counts from 0, like the
``JOB_COMPLETION_INDEX`` of a Kubernetes Indexed Job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"the number of shards must be at least 1 (got {self.count})")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"shard index {self.index} is outside 0..{self.count - 1} (it counts from 0, like "
                "JOB_COMPLETION_INDEX)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"``, e.g. ``"0/4"``; ValueError with the reason otherwise."""
        index, sep, count = text.partition("/")
        if not sep or not index.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"expected I/N with whole numbers, e.g. 0/4 (got {text!r})")
        return cls(int(index), int(count))

    @property
    def is_whole(self) -> bool:
        return self.count == 1

    def owns(self, patient: str) -> bool:
        return self.count == 1 or bucket(patient, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Shard(0, 1)


def bucket(patient: str, count: int) -> int:
    digest = hashlib.blake2b(patient.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count
