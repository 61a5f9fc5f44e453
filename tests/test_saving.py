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


def test_a_failed_final_rename_puts_the_earlier_artifact_back(tmp_path, monkeypatch):
    """Overwriting moves the earlier folder aside, then renames the new one into place: if that second rename fails
    (a full disk's metadata, a folder locked on another OS), the earlier folder comes back and nothing else stays."""
    import os

    import hf_minimodel.saving as saving

    target = tmp_path / "artifact"
    with atomic_directory(target) as folder:
        write(folder, "old")
    real = os.replace

    def replace(source, destination):
        if ".tmp-" in str(source):
            raise OSError(28, "No space left on device")
        return real(source, destination)

    monkeypatch.setattr(saving.os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        with atomic_directory(target, overwrite=True) as folder:
            write(folder, "new")
    assert (target / "weights.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


def test_overwrite_replaces_only_what_hf_minimodel_wrote(tmp_path):
    from hf_minimodel.saving import MARKER_NAME, OutputNotOursError, written_by_us

    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    with atomic_directory(ours) as folder:
        write(folder, "old")
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("two years of work")
    assert written_by_us(ours) and (ours / MARKER_NAME).is_file() and not written_by_us(theirs)
    with atomic_directory(ours, overwrite=True) as folder:
        write(folder, "new")
    assert (ours / "weights.txt").read_text() == "new" and written_by_us(ours)
    with pytest.raises(OutputNotOursError, match="was not written by hf-minimodel"):
        _enter_overwriting(theirs)
    assert (theirs / "thesis.tex").read_text() == "two years of work"


def _enter_overwriting(path):
    with atomic_directory(path, overwrite=True):
        pass


def test_a_results_file_of_a_command_is_ours_and_other_files_are_not(tmp_path):
    import json

    from hf_minimodel.saving import written_by_us

    results, notes, rows = tmp_path / "results.json", tmp_path / "notes.json", tmp_path / "rows.json"
    results.write_text(json.dumps([{"language": "fr", "method": "minijoint", "task": "xnli", "accuracy": 0.5, "num_examples": 10}]))
    notes.write_text(json.dumps({"method": "mine", "num_examples": 3}))  # not a list of rows
    rows.write_text(json.dumps([{"method": "mine"}]))  # rows, but not evaluate's
    assert written_by_us(results) and not written_by_us(notes) and not written_by_us(rows)
    (tmp_path / "inits.json").write_text(json.dumps([{"init": "overlap", "rows": {"copied": 3}, "step0": {}}]))
    assert written_by_us(tmp_path / "inits.json")  # minimodel inits' reports
    assert not written_by_us(tmp_path / "missing.json")


def test_an_output_is_never_an_input_nor_inside_or_above_one(tmp_path):
    from hf_minimodel.checks import InputError
    from hf_minimodel.saving import check_output

    (tmp_path / "model").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "model")
    for output, relation in ((tmp_path / "model", "is the input"), (tmp_path / "link", "is the input"),
                             (tmp_path / "model" / "sub", "is inside the input"), (tmp_path, "holds the input")):
        with pytest.raises(InputError, match=relation):
            check_output(output, overwrite=True, inputs=[tmp_path / "model"])
    check_output(tmp_path / "elsewhere", inputs=[tmp_path / "model", "FacebookAI/xlm-roberta-base", None])  # a Hub id: not here


def test_an_output_lock_refuses_a_second_run_and_leaves_nothing(tmp_path):
    import os

    from hf_minimodel.saving import OutputBusyError, output_lock

    out = tmp_path / "runs" / "sw" / "pack"
    with output_lock(out):
        lock = out.parent / ".pack.lock"
        assert lock.read_text() == str(os.getpid())
        with pytest.raises(OutputBusyError, match=f"another run \\(process {os.getpid()}\\) is writing {out}"):
            with output_lock(out):
                pass
        assert lock.exists()  # the refused run left the holder's lock alone
    assert list(tmp_path.iterdir()) == []  # the lock and the folders made for it are gone
    with output_lock(out):
        pass


def test_a_lock_left_by_a_killed_run_does_not_stop_the_next(tmp_path):
    from hf_minimodel.saving import output_lock

    (tmp_path / ".pack.lock").write_text("99999999")  # a run killed outright leaves its file, but not its flock
    with output_lock(tmp_path / "pack"):
        assert (tmp_path / ".pack.lock").read_text() != "99999999"
    assert list(tmp_path.iterdir()) == []


def test_errors_name_the_output_not_the_hidden_folder_being_written(tmp_path):
    from hf_minimodel.saving import user_path

    assert user_path(tmp_path / ".pack.tmp-123-0a1b2c3d" / "model.safetensors") == tmp_path / "pack" / "model.safetensors"
    assert user_path(tmp_path / ".pack.old-9-ffffffff") == tmp_path / "pack"
    assert user_path(tmp_path / ".hidden" / "x") == tmp_path / ".hidden" / "x"
