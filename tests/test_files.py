"""The one atomic writer and the one working-directory lock (scalms.files)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from scalms.files import (
    LOCK_NAME,
    CorruptFile,
    WorkDirBusy,
    WorkDirLock,
    atomic_path,
    atomic_write_json,
    read_json,
)

HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from scalms.files import WorkDirLock
    with WorkDirLock(sys.argv[1], "the holder"):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    """
)


def hold_lock(folder):
    """A second process that holds ``folder``'s lock; returns once it does (it says so)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"  # a state, not a time
    return holder


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_json(target, {"frames": 5})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"frames": ')  # half written when the writer fails
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"frames": 5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_completed_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "sub" / "state.json"
    atomic_write_json(target, {"frames": 5})
    atomic_write_json(target, {"frames": 6})
    assert read_json(target) == {"frames": 6}
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_a_damaged_json_file_is_named_with_what_to_do(tmp_path):
    target = tmp_path / "geometry.json"
    target.write_text('{"request": {"kind": "nano')  # cut short by hand or by an old writer
    with pytest.raises(CorruptFile, match=r"manifest .*geometry\.json is damaged.*start again"):
        read_json(target, "manifest", fix="start again with --overwrite")


def test_a_second_process_is_refused_the_lock_while_the_first_holds_it(tmp_path):
    holder = hold_lock(tmp_path)
    try:
        with pytest.raises(WorkDirBusy, match=rf"in use by pid {holder.pid} \(the holder\)"):
            WorkDirLock(tmp_path, "scalms test").acquire()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    with WorkDirLock(tmp_path, "scalms test"):  # free again once the holder has ended
        pass


def test_a_killed_holder_frees_the_lock(tmp_path):
    holder = hold_lock(tmp_path)
    holder.kill()
    holder.wait(timeout=60)
    with WorkDirLock(tmp_path, "scalms test"):
        assert "scalms test" in (tmp_path / LOCK_NAME).read_text()


def test_the_lock_nests_within_one_process(tmp_path):
    with WorkDirLock(tmp_path, "outer"), WorkDirLock(tmp_path, "inner"):
        pass
    holder = hold_lock(tmp_path)  # and the outer release really released it
    holder.stdin.close()
    holder.wait(timeout=60)


def test_a_refused_command_leaves_no_folder_behind(tmp_path):
    folder = tmp_path / "new"
    with pytest.raises(ValueError), WorkDirLock(folder, "scalms test"):
        raise ValueError("bad request found after the lock was taken")
    assert not folder.exists()
