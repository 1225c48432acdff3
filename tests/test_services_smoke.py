"""The real local peers start, answer and reset."""

from typing import Any


def test_redis_answers(redis_client: Any) -> None:
    assert redis_client.ping() is True
    redis_client.set("k", "v")
    assert redis_client.get("k") == b"v"


def test_firestore_emulator_round_trip(firestore_client: Any, unique: str) -> None:
    ref = firestore_client.collection("smoke").document(unique)
    ref.set({"n": 1})
    assert ref.get().to_dict() == {"n": 1}
