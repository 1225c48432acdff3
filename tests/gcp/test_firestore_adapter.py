"""The private parts of google-cloud-firestore that shared.gcp.firestore relies on.

The bounded transaction overrides ``Transaction._begin``, ``_commit`` and ``_rollback`` (the
library offers no public way to bound them). If an upgrade renames or reshapes them, these tests
fail before a deploy silently goes back to minute-long retries.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from google.cloud.firestore_v1 import transaction as library

from shared.gcp import firestore as fs


def test_the_overridden_methods_still_exist_with_the_same_shape() -> None:
    cls = library.Transaction
    assert list(inspect.signature(cls._begin).parameters) == ["self", "retry_id"]
    assert list(inspect.signature(cls._commit).parameters) == ["self"]
    assert list(inspect.signature(cls._rollback).parameters) == ["self"]
    for name in ("_options_protobuf", "_clean_up", "in_progress", "_add_write_pbs"):
        assert hasattr(cls, name), name
    # The library's own bodies call the RPCs we re-issue with bounds, and nothing more.
    for method, rpc in ((cls._begin, "begin_transaction"), (cls._commit, "commit")):
        assert f"_firestore_api.{rpc}(" in inspect.getsource(method)


def test_transactional_drives_the_transaction_through_begin_and_commit() -> None:
    source = inspect.getsource(library._Transactional)
    assert "transaction._begin(" in source
    assert "transaction._commit()" in source
    assert "transaction._rollback()" in source
    assert "_max_attempts" in source


@pytest.mark.firestore
def test_every_rpc_of_a_transaction_carries_a_deadline(firestore_env: str) -> None:
    db = fs.client()
    api = db._firestore_api
    seen: dict[str, Any] = {}
    originals = {name: getattr(api, name) for name in ("begin_transaction", "commit")}

    def spy(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen[name] = kwargs.get("timeout")
            return originals[name](*args, **kwargs)

        return call

    for name in originals:
        setattr(api, name, spy(name))
    try:
        ref = db.collection("adapter").document("x")
        fs.transaction(lambda txn: txn.set(ref, {"ok": True}), timeout_s=7.0)
    finally:
        for name, original in originals.items():
            setattr(api, name, original)
    assert set(seen) == {"begin_transaction", "commit"}
    assert all(0 < t <= 7.0 for t in seen.values()), seen
