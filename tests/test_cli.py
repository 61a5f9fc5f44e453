"""The command line: each step as a command, and one-line errors with a non-zero exit for bad input."""

import gzip
import json
from pathlib import Path

import pytest
from transformers import AutoModelForMaskedLM

from hf_minimodel.cli import main
from hf_minimodel.sample import sample_path

STEP = ["--steps", "2", "--batch-size", "4", "--max-seq-length", "32"]


def _write_sample(name, path, lines):
    with gzip.open(sample_path(name), "rt", encoding="utf-8") as f:
        path.write_text("".join(next(f) for _ in range(lines)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    """tokenizer -> pretrain (MiniJoint) -> minipost -> train-embeddings -> merge, through main()."""
    root = tmp_path_factory.mktemp("cli")
    en = _write_sample("en-kjv.train", root / "en.txt", 300)
    ru = _write_sample("ru-synodal.train", root / "ru.txt", 300)
    assert main(["tokenizer", "--train", str(en), "--vocab-size", "300", "--output", str(root / "en-tok")]) == 0
    assert main(["tokenizer", "--train", str(ru), "--vocab-size", "250", "--output", str(root / "ru-tok")]) == 0
    assert main(["pretrain", "--train", str(en), "--tokenizer", str(root / "en-tok"), "--output", str(root / "source"),
                 "--hidden-size", "32", "--num-layers", "3", "--mini-num-layers", "1", *STEP]) == 0
    assert main(["minipost", "--model", str(root / "source"), "--train", str(en), "--output", str(root / "minipost"),
                 "--mini-num-layers", "1", *STEP]) == 0
    for name, mini in (("standard", []), ("minijoint", ["--mini-model", "minijoint"]), ("minipost", ["--mini-model", str(root / "minipost")])):
        assert main(["train-embeddings", "--model", str(root / "source"), *mini, "--tokenizer", str(root / "ru-tok"),
                     "--train", str(ru), "--language", "ru", "--output", str(root / f"pack-{name}"), *STEP]) == 0
    assert main(["merge", "--model", str(root / "source"), "--pack", str(root / "pack-minijoint"), "--output", str(root / "merged")]) == 0
    return root


def _fails(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err  # may also hold progress bars from loading
    errors = [line for line in err.splitlines() if line.startswith("minimodel ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]) and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_every_step_runs_from_the_command_line(steps):
    import json

    for name in ("standard", "minijoint", "minipost"):
        assert json.loads((steps / f"pack-{name}" / "language_pack.json").read_text())["method"] == name
    assert type(AutoModelForMaskedLM.from_pretrained(steps / "merged")).__name__ == "XLMRobertaForMaskedLM"
    card = (steps / "merged" / "README.md").read_text()  # the pack's story reaches the merged model's card
    assert 'language: ["ru"]' in card and "| Method | MiniJoint" in card and "FLOPs" in card, card


def test_mini_depth_at_or_above_the_model_depth(steps, tmp_path, capsys):
    _fails(capsys, ["minipost", "--model", str(steps / "source"), "--train", str(steps / "en.txt"), "--output",
                    str(tmp_path / "x"), "--mini-num-layers", "3", *STEP], "mini_num_layers=3", "use 1..2")
    assert not (tmp_path / "x").exists()


def test_target_tokenizer_without_a_mask_token(steps, tmp_path, capsys):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(steps / "ru-tok")
    tokenizer.mask_token = None
    tokenizer.save_pretrained(tmp_path / "nomask")
    _fails(capsys, ["train-embeddings", "--model", str(steps / "source"), "--tokenizer", str(tmp_path / "nomask"),
                    "--train", str(steps / "ru.txt"), "--output", str(tmp_path / "pack"), *STEP], "mask token")


def test_pack_for_another_base_model(steps, tmp_path, capsys):
    assert main(["pretrain", "--train", str(steps / "en.txt"), "--tokenizer", str(steps / "en-tok"), "--output", str(tmp_path / "other"),
                 "--hidden-size", "32", "--num-layers", "3", "--seed", "1", *STEP]) == 0
    _fails(capsys, ["merge", "--model", str(tmp_path / "other"), "--pack", str(steps / "pack-minijoint"), "--output",
                    str(tmp_path / "m")], "fingerprint", "--no-check-base")
    assert main(["pretrain", "--train", str(steps / "en.txt"), "--tokenizer", str(steps / "en-tok"), "--output", str(tmp_path / "wide"),
                 "--hidden-size", "48", "--num-layers", "3", *STEP]) == 0
    _fails(capsys, ["merge", "--model", str(tmp_path / "wide"), "--pack", str(steps / "pack-minijoint"), "--output",
                    str(tmp_path / "m")], "hidden size 32", "48")
    assert not (tmp_path / "m").exists()


def test_empty_and_non_utf8_corpora(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n  \n")
    _fails(capsys, ["tokenizer", "--train", str(tmp_path / "empty.txt"), "--output", str(tmp_path / "t")], "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    _fails(capsys, ["tokenizer", "--train", str(tmp_path / "latin1.txt"), "--output", str(tmp_path / "t")], "UTF-8")
    assert not (tmp_path / "t").exists()


def test_existing_output_is_not_overwritten_unless_asked(steps, capsys):
    before = (steps / "merged" / "model.safetensors").read_bytes()
    _fails(capsys, ["merge", "--model", str(steps / "source"), "--pack", str(steps / "pack-standard"), "--output",
                    str(steps / "merged")], "already exists", "--overwrite")
    assert (steps / "merged" / "model.safetensors").read_bytes() == before
    assert main(["merge", "--model", str(steps / "source"), "--pack", str(steps / "pack-standard"), "--output",
                 str(steps / "merged"), "--overwrite"]) == 0
    assert (steps / "merged" / "model.safetensors").read_bytes() != before


def test_missing_tokenizer_folder(steps, tmp_path, capsys):
    _fails(capsys, ["train-embeddings", "--model", str(steps / "source"), "--tokenizer", str(tmp_path / "nowhere"),
                    "--train", str(steps / "ru.txt"), "--output", str(tmp_path / "p"), *STEP], "nowhere")


def test_a_killed_command_leaves_no_temporary_folder(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "demo-out"
    env = {"HF_MINIMODEL_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen([sys.executable, "-m", "hf_minimodel.cli", "demo", "--output", str(out)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".demo-out.tmp-*")) and time.time() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob(".demo-out.tmp-*")), "the demo never started writing"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err.splitlines()[-1]
    assert not out.exists() and not list(tmp_path.glob(".demo-out*"))


def test_training_shows_a_progress_bar_not_log_dicts_and_keeps_the_log(steps, tmp_path, capsys):
    import json

    out = tmp_path / "pack"
    assert main(["train-embeddings", "--model", str(steps / "source"), "--tokenizer", str(steps / "ru-tok"),
                 "--train", str(steps / "ru.txt"), "--output", str(out), *STEP]) == 0
    captured = capsys.readouterr()
    assert "{'loss'" not in captured.out and "{'loss'" not in captured.err
    assert captured.out.strip().splitlines()[-1].startswith("Step 2 (standard): 2 steps")
    assert "loss=" in captured.err and "tokens/s=" in captured.err  # the bar's postfix
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log if "loss" in entry] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pack"]  # no empty pack.checkpoints, no .pack.tmp-*


def test_a_sequence_length_beyond_the_position_table_is_clamped_with_a_note(steps, tmp_path, capsys):
    # The source model was pretrained with --max-seq-length 32; train-embeddings asks for the default 128.
    assert main(["train-embeddings", "--model", str(steps / "source"), "--tokenizer", str(steps / "ru-tok"),
                 "--train", str(steps / "ru.txt"), "--output", str(tmp_path / "pack"), "--steps", "1", "--batch-size", "2"]) == 0
    note = "minimodel: note: --max-seq-length 128 is longer than the model's position table: using 32"
    assert note in capsys.readouterr().err.splitlines()


def test_a_resumed_run_does_not_warn_about_tied_weights(steps, tmp_path):
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    trainer_logger = logging.getLogger("transformers.trainer")
    argv = ["pretrain", "--train", str(steps / "en.txt"), "--tokenizer", str(steps / "en-tok"), "--output", str(tmp_path / "m"),
            "--hidden-size", "32", "--num-layers", "3", "--mini-num-layers", "1", "--batch-size", "4", "--max-seq-length", "32",
            "--save-steps", "1"]
    assert main([*argv, "--steps", "2"]) == 0
    trainer_logger.addHandler(handler)
    try:
        assert main([*argv, "--steps", "3", "--resume", "--overwrite"]) == 0
    finally:
        trainer_logger.removeHandler(handler)
    assert not [r for r in records if "missing keys" in r.getMessage()]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.checkpoints"]  # checkpoints kept: --save-steps asked
    assert [json.loads(line)["step"] for line in (tmp_path / "m" / "training_log.jsonl").read_text().splitlines()][-1] == 3


def test_subcommand_help_shows_the_defaults(capsys):
    assert main(["pretrain", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    for default in ("optimizer steps (default: 10000)", "sequences per step (default: 32)", "(default: 128)", "random seed (default: 0)"):
        assert default in shown
    assert main(["demo", "--help"]) == 0
    assert "(default: 250), 300 with --source toy" in " ".join(capsys.readouterr().out.split())


def test_threads_are_fewer_on_a_busy_machine():
    from hf_minimodel.cli import threads_for

    assert threads_for(cores=2, load=0.1, threads=2) == 2  # a quiet machine: torch's own choice
    assert threads_for(cores=2, load=1.2, threads=2) == 1  # one core busy elsewhere: the measured 60x case
    assert threads_for(cores=2, load=5.0, threads=2) == 1  # never fewer than one
    assert threads_for(cores=2, load=0.0, threads=16) == 2  # torch counts the host's cores, the container has 2


def test_help_imports_no_torch_transformers_or_datasets():
    """The package is lazy: `minimodel --help` (and every subcommand's help) answers without loading the stack."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "import hf_minimodel\n"
        "from hf_minimodel.cli import main\n"
        "for argv in (['--help'], ['demo', '--help'], ['train-embeddings', '--help'], ['evaluate', '--help'], ['--version']):\n"
        "    assert main(argv) == 0, argv\n"
        "heavy = sorted(name for name in ('torch', 'transformers', 'datasets', 'accelerate', 'tokenizers') if name in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr, result.stderr[-2000:]
    assert "usage: minimodel demo" in result.stdout and "default: ru-synodal" in result.stdout, result.stdout[-2000:]


def test_public_names_load_on_first_use_and_register_the_config(tmp_path):
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "import hf_minimodel\n"
        "assert 'torch' not in sys.modules\n"
        "from hf_minimodel import MiniModelConfig, XLMRobertaForDualMLM\n"
        "from transformers import AutoConfig, AutoTokenizer\n"
        "assert set(hf_minimodel.__all__) <= set(dir(hf_minimodel))\n"
        "XLMRobertaForDualMLM(MiniModelConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,\n"
        "    intermediate_size=32, mini_num_layers=1)).save_pretrained(sys.argv[1])\n"
        "assert type(MiniModelConfig.from_pretrained(sys.argv[1])) is MiniModelConfig\n"
        "assert isinstance(AutoConfig.from_pretrained(sys.argv[2]), MiniModelConfig)  # an earlier version's folder\n"
        "try:\n"
        "    hf_minimodel.no_such_name\n"
        "except AttributeError as error:\n"
        "    assert 'no_such_name' in str(error)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "dual"), str(Path(__file__).parent / "artifacts" / "v0.1.0" / "dual")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_an_interrupt_is_told_on_a_line_of_its_own_with_the_checkpoint_kept(steps, tmp_path, monkeypatch, capfd):
    """Ctrl-C (or SIGTERM) at step 3 of 4: the progress bar is closed first, so the "interrupted" line starts a line
    of its own; it says the output was not written and which checkpoint --resume continues from."""
    from hf_minimodel.progress import TrainingProgress

    out = tmp_path / "m"
    argv = ["pretrain", "--train", str(steps / "en.txt"), "--tokenizer", str(steps / "en-tok"), "--output", str(out),
            "--hidden-size", "32", "--num-layers", "2", "--batch-size", "4", "--max-seq-length", "32", "--save-steps", "1", "--steps", "4"]
    begin = TrainingProgress.on_step_begin

    def stop_at_step_3(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise KeyboardInterrupt
        return begin(self, args, state, control, **kwargs)

    monkeypatch.setattr(TrainingProgress, "on_step_begin", stop_at_step_3)
    capfd.readouterr()
    assert main(argv) == 130
    err = capfd.readouterr().err
    assert err.endswith("\n") and err.rstrip("\n").split("\n")[-1] == (
        f"minimodel pretrain: interrupted; nothing was written to {out}; checkpoint {out}.checkpoints/checkpoint-2 is kept: "
        "run the same command with --resume to continue from it"), err[-600:]
    assert "training:" in err  # the bar was there, and ended before the line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.checkpoints"]
    monkeypatch.undo()
    assert main([*argv, "--resume"]) == 0
    assert [json.loads(line)["step"] for line in (out / "training_log.jsonl").read_text().splitlines()][-1] == 4


def test_notes_wait_for_the_work_so_a_refused_command_prints_its_error_alone(steps, tmp_path, capsys):
    # The default --max-seq-length (128) is clamped to the model's 32 with a note; the corpus fills no block of 32.
    (tmp_path / "short.txt").write_text("Да.\n")
    assert main(["train-embeddings", "--model", str(steps / "source"), "--tokenizer", str(steps / "ru-tok"),
                 "--train", str(tmp_path / "short.txt"), "--output", str(tmp_path / "pack")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "minimodel train-embeddings: error: the text is shorter than one block of 32 tokens: pass more text, or a lower --max-seq-length"]


def test_a_saved_dataset_with_another_text_column_trains_with_text_column(steps, tmp_path):
    import datasets

    datasets.Dataset.from_dict({"sentence": (steps / "ru.txt").read_text().splitlines()}).save_to_disk(str(tmp_path / "ds"))
    assert main(["train-embeddings", "--model", str(steps / "source"), "--tokenizer", str(steps / "ru-tok"), "--train",
                 str(tmp_path / "ds"), "--text-column", "sentence", "--output", str(tmp_path / "pack"), *STEP]) == 0


def test_decay_share_holds_the_rate_then_decays_it_over_the_last_share(steps, tmp_path):
    """--decay-share 0.5 over 10 steps: one warm-up step, the peak held, then a linear decay to zero over the last 5
    steps; without it, the rate decays from the end of warm-up (the Trainer's linear schedule)."""
    import json

    def rates(*extra):
        out = tmp_path / f"pack{len(extra)}"
        assert main(["train-embeddings", "--model", str(steps / "source"), "--tokenizer", str(steps / "ru-tok"),
                     "--train", str(steps / "ru.txt"), "--output", str(out), "--steps", "10", "--batch-size", "2",
                     "--max-seq-length", "32", "--learning-rate", "1e-3", *extra]) == 0
        log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
        return [entry["learning_rate"] for entry in log if "learning_rate" in entry]

    held = rates("--decay-share", "0.5")
    assert len(held) == 10 and held[0] < 1e-3 and held[1:6] == [pytest.approx(1e-3)] * 5, held
    assert all(a > b for a, b in zip(held[5:], held[6:])) and held[-1] < 3e-4, held
    linear = rates()
    assert all(a > b for a, b in zip(linear[1:], linear[2:])), linear
