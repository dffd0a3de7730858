"""The native module (`native/`, rpytest_native): its audit hook, its call
recorder, and the fallback when it cannot be loaded. Real module, built by
cargo (`cargo build` or `cargo test` first), loaded into this interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any, List, Tuple

import pytest

from conftest import PYTHON_DIR, clean_env, native_module_path
from rpytest import native


@pytest.fixture(scope="module")
def mod() -> Any:
    path = native_module_path()
    assert path, "no native module built: run `cargo build` first"
    module = native.load(path)
    assert module is not None, "the native module at %s did not load" % path
    return module


@pytest.fixture
def hook(mod: Any) -> Any:
    if not mod.set_audit_hook((), None) and sys.version_info < (3, 11):
        pytest.skip("the native audit hook needs CPython >= 3.11 (tracing paused for its callback)")
    yield mod
    mod.set_audit_hook((), None)


# ------------------------------------------------------------------ audit hook


def test_only_the_named_events_reach_the_callback(hook: Any) -> None:
    seen: List[Tuple[str, Tuple[Any, ...]]] = []
    assert hook.set_audit_hook(["rpytest.test.a", "open"], lambda e, a: seen.append((e, a)))
    assert hook.audit_hook_added()
    sys.audit("rpytest.test.a", 1, "x")
    sys.audit("rpytest.test.b", 2)
    sys.audit("rpytest.test.aa", 3)
    id(seen)  # builtins.id: an event, not named
    with open(__file__, "rb"):
        pass
    hook.set_audit_hook((), None)
    sys.audit("rpytest.test.a", 4)
    assert seen[0] == ("rpytest.test.a", (1, "x"))
    assert [e for e, _ in seen] == ["rpytest.test.a", "open"]
    assert seen[1][1][0] == __file__


def test_names_and_callback_are_replaced(hook: Any) -> None:
    first: List[str] = []
    second: List[str] = []
    hook.set_audit_hook(["rpytest.test.a"], lambda e, a: first.append(e))
    hook.set_audit_hook(["rpytest.test.b"], lambda e, a: second.append(e))
    sys.audit("rpytest.test.a")
    sys.audit("rpytest.test.b")
    assert (first, second) == ([], ["rpytest.test.b"])


def test_the_callback_sees_the_frame_that_raised_the_event(hook: Any) -> None:
    callers: List[str] = []

    def callback(event: str, args: Any) -> None:
        callers.append(sys._getframe(1).f_code.co_name)

    def raiser() -> None:
        sys.audit("rpytest.test.a")

    hook.set_audit_hook(["rpytest.test.a"], callback)
    raiser()
    assert callers == ["raiser"]


def test_an_exception_of_the_callback_fails_the_audited_operation(hook: Any) -> None:
    def callback(event: str, args: Any) -> None:
        raise PermissionError("refused by the hook")

    hook.set_audit_hook(["rpytest.test.a"], callback)
    with pytest.raises(PermissionError, match="refused by the hook"):
        sys.audit("rpytest.test.a")


def test_the_callback_runs_with_tracing_paused(hook: Any) -> None:
    """As CPython calls a Python audit hook: a debugger's or coverage's trace
    function never sees the recorder's frames."""
    traced: List[str] = []

    def callback(event: str, args: Any) -> None:
        def inner() -> None:
            pass

        inner()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        traced.append(frame.f_code.co_name)
        return None

    def raiser() -> None:
        sys.audit("rpytest.test.a")

    hook.set_audit_hook(["rpytest.test.a"], callback)
    sys.settrace(tracer)
    try:
        raiser()
    finally:
        sys.settrace(None)
    assert "raiser" in traced
    assert "callback" not in traced and "inner" not in traced


# --------------------------------------------------------------- call recorder


def _called() -> int:
    return 1


class _Thing:
    def method(self) -> int:
        return _called()


def _gen() -> Any:
    yield _called()


def test_calls_records_each_python_code_object_entered_once(mod: Any) -> None:
    assert mod.calls_start()
    try:
        mod.calls_take()
        for _ in range(3):
            _Thing().method()
        list(_gen())
        len([1])  # a C function: not recorded
        codes = mod.calls_take()
        again = mod.calls_take()
    finally:
        assert mod.calls_stop()
    names = sorted(c.co_name for c in codes)
    assert names == sorted(set(names))
    assert {"method", "_called", "_gen"} <= set(names)
    assert _called.__code__ in codes and _Thing.method.__code__ in codes
    assert all(type(c) is type(_called.__code__) for c in codes)
    assert again == []


def test_calls_keeps_the_code_objects_alive(mod: Any) -> None:
    namespace: dict = {}
    exec(compile("def short_lived():\n    return 42\n", "<short-lived>", "exec"), namespace)
    mod.calls_start()
    try:
        mod.calls_take()
        namespace["short_lived"]()
        namespace.clear()
        codes = mod.calls_take()
    finally:
        mod.calls_stop()
    assert [c.co_filename for c in codes if c.co_name == "short_lived"] == ["<short-lived>"]


def test_calls_sees_only_the_thread_that_started_it(mod: Any) -> None:
    def in_thread() -> None:
        _Thing().method()

    mod.calls_start()
    try:
        mod.calls_take()
        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
        codes = mod.calls_take()
    finally:
        mod.calls_stop()
    assert in_thread.__code__ not in codes and _Thing.method.__code__ not in codes


def test_calls_active_is_false_once_another_profiler_replaces_it(mod: Any) -> None:
    assert not mod.calls_active()
    mod.calls_start()
    assert mod.calls_active()
    assert sys.getprofile() is None  # invisible to code that looks

    def other(frame: Any, event: str, arg: Any) -> None:
        pass

    sys.setprofile(other)
    try:
        assert not mod.calls_active()
        assert not mod.calls_stop()  # leaves the other one in place
        assert sys.getprofile() is other
    finally:
        sys.setprofile(None)
    mod.calls_take()


def test_calls_active_is_false_under_cprofile(mod: Any) -> None:
    import cProfile

    mod.calls_start()
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        active = mod.calls_active()
    finally:
        profiler.disable()
    assert not active
    assert not mod.calls_stop()
    mod.calls_take()


def test_calls_stop_ends_the_recording(mod: Any) -> None:
    mod.calls_start()
    assert mod.calls_stop()
    assert not mod.calls_active()
    mod.calls_take()
    _called()
    assert mod.calls_take() == []


# -------------------------------------------------------------------- fallback


def test_a_module_that_cannot_load_is_none(tmp_path: Any) -> None:
    bad = tmp_path / "rpytest_native-bad.so"
    bad.write_bytes(b"not a shared object")
    assert native.load(str(bad)) is None
    assert native.load(str(tmp_path / "missing.so")) is None
    assert native.load(None) is None


def _probe(env: dict) -> List[str]:
    code = (
        "import os\n"
        "from rpytest import native\n"
        "print(native.MODULE is not None)\n"
        "print(os.environ.get('RPYTEST_NATIVE_MODULE'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_path_is_taken_from_the_environment_and_removed(mod: Any) -> None:
    path = native_module_path()
    env = clean_env(RPYTEST_NATIVE_MODULE=str(path), PYTHONPATH=str(PYTHON_DIR))
    env.pop("RPYTEST_NATIVE", None)
    assert _probe(env) == ["True", "None"]


def test_rpytest_native_0_turns_it_off(mod: Any) -> None:
    env = clean_env(RPYTEST_NATIVE_MODULE=str(native_module_path()), RPYTEST_NATIVE="0")
    assert _probe(env) == ["False", "None"]
