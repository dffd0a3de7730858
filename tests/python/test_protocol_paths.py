"""Non-UTF-8 file names cross the CLI <-> session protocol byte for byte."""

import json
import os

from rpytest.protocol import decode, encode


def test_surrogate_escaped_paths_round_trip():
    name = os.fsdecode(b"tests/test_\xff\x80.py")
    msg = {"type": "result", "file": name, "nodes": [name + "::t"], name: 1}
    line = encode(msg)
    line.decode("utf-8")  # valid UTF-8: the CLI's JSON parser accepts it
    json.loads(line)
    assert decode(line.rstrip(b"\n")) == msg
    assert os.fsencode(decode(line)["file"]) == b"tests/test_\xff\x80.py"


def test_plain_messages_are_unchanged():
    msg = {"type": "result", "file": "tests/test_é.py"}
    assert encode(msg) == (json.dumps(msg, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    assert decode(encode(msg)) == msg
