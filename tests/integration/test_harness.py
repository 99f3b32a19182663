"""Self-tests of the integration harness: if these fail, the agent results mean nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import procs
from postfix_instance import PostfixInstance, register_alternate_config_dir


def test_register_alternate_restores_exact_bytes_and_keeps_others(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    original = "# comment\nmyhostname = vm\ninet_protocols = all"  # no final newline on purpose
    main_cf.write_text(original)
    lock = tmp_path / "lock"
    a = register_alternate_config_dir(Path("/tmp/a/etc"), main_cf, lock)
    b = register_alternate_config_dir(Path("/tmp/b/etc"), main_cf, lock)
    a.__enter__()
    assert "alternate_config_directories = /tmp/a/etc\n" in main_cf.read_text()
    b.__enter__()
    assert "alternate_config_directories = /tmp/a/etc /tmp/b/etc\n" in main_cf.read_text()
    a.__exit__(None, None, None)  # out of order: a leaves while b is still registered
    text = main_cf.read_text()
    assert "alternate_config_directories = /tmp/b/etc\n" in text and "/tmp/a/etc" not in text
    b.__exit__(None, None, None)
    assert "alternate_config_directories" not in main_cf.read_text()
    with register_alternate_config_dir(Path("/tmp/c/etc"), main_cf, lock):
        pass
    assert main_cf.read_text().rstrip("\n") == original


def test_register_alternate_extends_an_existing_multiline_entry(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    original = "alternate_config_directories = /srv/x,\n    /srv/y\nbiff = no\n"
    main_cf.write_text(original)
    with register_alternate_config_dir(Path("/tmp/c/etc"), main_cf, tmp_path / "lock"):
        lines = main_cf.read_text().splitlines()
        assert lines[0] == "alternate_config_directories = /srv/x /srv/y /tmp/c/etc"
        assert "biff = no" in lines
    assert main_cf.read_text() == original


def test_instance_accepts_and_delivers_mail(running_postfix: PostfixInstance) -> None:
    inst = running_postfix
    subject, reply = inst.send_mail()
    assert reply[0] == 250
    deadline = time.monotonic() + 10
    while not any(subject in m for m in inst.delivered()):
        assert time.monotonic() < deadline, inst.maillog_tail()
        time.sleep(0.1)


def test_killed_master_is_reaped_promptly_and_teardown_finds_children(running_postfix: PostfixInstance) -> None:
    inst = running_postfix
    master = inst.master_pid()
    assert master and master in inst.processes()
    assert len(inst.processes()) >= 4, "master, pickup, qmgr, postlogd at least"
    os.kill(master, signal.SIGKILL)
    # Without our subreaper, PID 1 here leaves it a zombie for ~1.5-1.8 s.
    assert not procs.wait_gone([master], 1.2), "killed master still alive or a zombie after 1.2 s"
    assert not inst.kill_all()
    assert not inst.processes()


def test_tmpfs_queue_instance_runs(make_postfix) -> None:
    inst = make_postfix(queue_tmpfs_mib=8, start=True)
    st = os.statvfs(inst.queue_dir)
    assert st.f_blocks * st.f_frsize <= 8 * 1024 * 1024
    assert inst.send_mail()[1][0] == 250


def test_wedge_holds_a_process_against_term_and_cont_but_not_kill() -> None:
    p = procs.popen(["sleep", "100"])
    try:
        with procs.Wedge([p.pid]):
            os.kill(p.pid, signal.SIGTERM)
            os.kill(p.pid, signal.SIGCONT)
            time.sleep(0.3)
            assert procs.alive(p.pid), "a wedged process died of TERM"
            os.kill(p.pid, signal.SIGKILL)
            assert not procs.wait_gone([p.pid], 2), "KILL did not end a wedged process"
    finally:
        p.kill()
        p.wait()
        procs.release(p)
