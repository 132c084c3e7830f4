"""How the sandbox's read rules leave out the paths a child must never reach."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tether.runner import confinement, landlock
from tether.runner.confinement import is_within, read_rules


def rule_paths(roots: list[Path], protected: list[Path]) -> set[str]:
    rules = read_rules([str(r) for r in roots], [os.path.realpath(p) for p in protected])
    assert all(access == landlock.FS_READ for _, access in rules)
    return {path for path, _ in rules}


def test_a_root_without_a_protected_path_is_one_rule(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    assert rule_paths([tmp_path / "lib"], [tmp_path / "data"]) == {str(tmp_path / "lib")}


def test_a_root_holding_the_data_directory_is_split_around_it(tmp_path: Path) -> None:
    for name in ("src", "data/deeper", "docs"):
        (tmp_path / "repo" / name).mkdir(parents=True)
    (tmp_path / "repo" / "README").write_text("hi")
    (tmp_path / "repo" / "data" / "notes").write_text("hi")
    paths = rule_paths([tmp_path / "repo"], [tmp_path / "repo" / "data" / "deeper"])
    repo = tmp_path / "repo"
    assert paths == {
        str(repo / "src"),
        str(repo / "docs"),
        str(repo / "README"),
        str(repo / "data" / "notes"),
    }


def test_a_symbolic_link_to_the_data_directory_grants_nothing(tmp_path: Path) -> None:
    (tmp_path / "repo" / "src").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "repo" / "shortcut").symlink_to(tmp_path / "data")
    (tmp_path / "repo" / "up").symlink_to(tmp_path)  # out of the root: left out too
    paths = rule_paths([tmp_path / "repo"], [tmp_path / "data"])
    assert paths == {str(tmp_path / "repo")}  # the link resolves where Landlock checks it
    paths = rule_paths([tmp_path], [tmp_path / "data"])
    assert str(tmp_path / "data") not in paths and str(tmp_path) not in paths
    assert not any(is_within(os.path.realpath(p), str(tmp_path / "data")) for p in paths)


def test_a_protected_root_is_left_out_whole(tmp_path: Path) -> None:
    (tmp_path / "data" / "inner").mkdir(parents=True)
    assert (
        rule_paths([tmp_path / "data" / "inner", tmp_path / "data"], [tmp_path / "data"]) == set()
    )


def test_is_within_compares_whole_path_segments() -> None:
    assert is_within("/srv/data/x", "/srv/data")
    assert is_within("/srv/data", "/srv/data/")
    assert not is_within("/srv/database", "/srv/data")


def test_only_the_scratch_roots_of_fork_servers_that_are_gone_are_removed(
    tmp_path: Path,
) -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()  # a pid that no longer runs (reused meanwhile: the root is only kept)
    stale = tmp_path / f"{confinement.SCRATCH_PREFIX}{ended.pid}-abc"
    (stale / "123").mkdir(parents=True)  # with a child's directory in it
    live = tmp_path / f"{confinement.SCRATCH_PREFIX}{os.getpid()}-def"
    live.mkdir()
    other = tmp_path / "tether-scratch-old-style"
    other.mkdir()
    confinement.remove_stale_scratch_roots(str(tmp_path))
    assert not stale.exists()
    assert live.exists(), "a running fork server's root is never touched"
    assert other.exists(), "a name without a pid says nothing about its owner"
