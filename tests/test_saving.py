"""Atomic folder writes: an artifact on disk is complete or absent, and an earlier one survives a failed save."""

import pytest

from hf_minimodel.saving import OutputExistsError, atomic_directory


def write(folder, text):
    (folder / "weights.txt").write_text(text)


def test_the_folder_appears_only_when_the_body_finishes(tmp_path):
    target = tmp_path / "artifact"
    with atomic_directory(target) as folder:
        write(folder, "new")
        assert not target.exists()
        assert folder.parent == tmp_path and folder.name.startswith(".")
    assert (target / "weights.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]  # no temporary folder left behind


def test_a_failing_body_leaves_the_earlier_artifact_intact(tmp_path):
    target = tmp_path / "artifact"
    with atomic_directory(target) as folder:
        write(folder, "old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_directory(target, overwrite=True) as folder:
            write(folder, "half")
            raise RuntimeError("disk full")
    assert (target / "weights.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_a_failing_body_leaves_nothing_when_there_was_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(tmp_path / "artifact") as folder:
            write(folder, "half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused_before_any_work(tmp_path):
    target = tmp_path / "artifact"
    target.mkdir()
    ran = []
    with pytest.raises(OutputExistsError, match="already exists: pass overwrite=True"):
        with atomic_directory(target):
            ran.append(True)
    assert not ran and isinstance(OutputExistsError(target), FileExistsError)


def test_overwrite_replaces_the_folder_completely(tmp_path):
    target = tmp_path / "artifact"
    with atomic_directory(target) as folder:
        write(folder, "old")
        (folder / "stale.txt").write_text("from the old artifact")
    with atomic_directory(target, overwrite=True) as folder:
        write(folder, "new")
    assert sorted(p.name for p in target.iterdir()) == [".hf-minimodel", "weights.txt"]  # the marker: hf-minimodel wrote it
    assert (target / "weights.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_missing_parent_folders_are_created(tmp_path):
    with atomic_directory(tmp_path / "runs" / "ru" / "pack") as folder:
        write(folder, "new")
    assert (tmp_path / "runs" / "ru" / "pack" / "weights.txt").exists()


def test_parent_folders_created_for_a_failed_save_are_removed_again(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "runs" / "ru" / "pack") as folder:
            write(folder, "half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_an_output_below_a_file_is_refused_naming_the_file(tmp_path):
    from hf_minimodel.saving import OutputPathError, check_output

    (tmp_path / "en.txt").write_text("a corpus")
    with pytest.raises(OutputPathError, match=r"en.txt is a file, not a folder: choose another output path"):
        check_output(tmp_path / "en.txt" / "pack")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["en.txt"]


def test_a_scratch_folder_left_empty_is_removed_and_one_with_checkpoints_kept(tmp_path):
    from hf_minimodel.saving import scratch_folder

    with scratch_folder(tmp_path / "pack.checkpoints"):
        (tmp_path / "pack.checkpoints").mkdir()  # what the Trainer does even when it saves nothing
    assert not (tmp_path / "pack.checkpoints").exists()
    with scratch_folder(tmp_path / "pack.checkpoints") as folder:
        (folder / "checkpoint-10").mkdir(parents=True)
    assert (tmp_path / "pack.checkpoints" / "checkpoint-10").is_dir()
