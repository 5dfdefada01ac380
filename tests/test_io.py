import pytest

from cbtflow.io import read_json, read_jsonl, sha256_json, write_json, write_jsonl


def test_write_json_is_atomic_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_json(target, {"b": 1, "a": [1, 2]})
    assert read_json(target) == {"a": [1, 2], "b": 1}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"ok": True})
    with pytest.raises(TypeError):
        write_json(target, {"bad": object()})
    assert read_json(target) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_jsonl_roundtrip_and_error_names_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"a": 1}, {"a": 2}])
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{broken\n')
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path)


def test_hash_ignores_key_order():
    assert sha256_json({"a": 1, "b": 2}) == sha256_json({"b": 2, "a": 1})
    assert sha256_json({"a": 1}) != sha256_json({"a": 2})
