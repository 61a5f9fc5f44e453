"""Bad input, as a new user gives it: every case ends in one line that names the problem and the fix (exit status 2
from the command line, a named exception from the library), before any work, and leaves nothing behind.

One table per surface. Each row: what the user did, what they ran, a fragment the one line must contain.
"""

import gzip
import shutil
import types
from pathlib import Path

import datasets
import huggingface_hub
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, XLMRobertaForMaskedLM
from transformers.utils import logging as transformers_logging

from hf_minimodel import LanguagePack, MiniModelAdapter, XLMRobertaForDualMLM, base_fingerprint, heldout_mlm_loss
from hf_minimodel import pretrain_mlm, train_target_embeddings, train_target_tokenizer
from hf_minimodel import cli
from hf_minimodel.adapter import load_full_model
from hf_minimodel.checks import InputError, WrongModelError, check_pretrained
from hf_minimodel.cli import main
from hf_minimodel.demo import DemoConfig, run_demo
from hf_minimodel.sample import sample_path
from hf_minimodel.saving import OutputExistsError, OutputPathError, atomic_directory
from hf_minimodel import source_config
from hf_minimodel.training import mlm_blocks, run_mlm_training

SEQ = 32  # the tiny source model's position table holds this many tokens; the CLI's default asks for 128


def _lines(name, count):
    with gzip.open(sample_path(name), "rt", encoding="utf-8") as f:
        return [next(f).strip() for _ in range(count)]


@pytest.fixture(scope="module", autouse=True)
def quiet_and_offline():
    """No Hub, no threads note, no loading bars: so that stderr holds exactly what the command says."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))

        def unreachable(*args, **kwargs):
            raise ConnectionError("[Errno -2] Name or service not known")

        patch.setattr("datasets.load_dataset", unreachable)
        patch.setattr(huggingface_hub.HfApi, "create_repo", unreachable)
        patch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
        bars = transformers_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()
        datasets.disable_progress_bars()
        yield
        if bars[0]:
            transformers_logging.enable_progress_bar()
        if bars[1]:
            datasets.enable_progress_bars()


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Tiny artifacts, built once and never trained (nothing here gets as far as training): tokenizers, a MiniJoint
    source model whose position table holds 32 tokens, a stock and a BERT masked LM, a pack, and damaged copies."""
    root = tmp_path_factory.mktemp("bad-inputs")
    en, ru = _lines("en-kjv.train", 200), _lines("ru-synodal.train", 200)
    (root / "en.txt").write_text("\n".join(en), encoding="utf-8")
    (root / "ru.txt").write_text("\n".join(ru), encoding="utf-8")
    (root / "short.txt").write_text("Да.\n", encoding="utf-8")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    en_tok = train_target_tokenizer(en, vocab_size=300, show_progress=False)
    ru_tok = train_target_tokenizer(ru, vocab_size=250, show_progress=False)
    en_tok.save_pretrained(root / "en-tok")
    ru_tok.save_pretrained(root / "ru-tok")
    torch.manual_seed(0)
    shape = dict(hidden_size=32, num_layers=2, max_seq_length=SEQ)
    source = XLMRobertaForDualMLM(source_config(en_tok, **shape, mini_num_layers=1))
    stock = XLMRobertaForMaskedLM(source_config(en_tok, **shape))
    bert = BertForMaskedLM(BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64))
    for name, model in (("source", source), ("stock", stock), ("bert", bert)):
        model.save_pretrained(root / name)
        en_tok.save_pretrained(root / name)
    pack = LanguagePack(tokenizer=ru_tok, embeddings=torch.randn(len(ru_tok), 32) * 0.02,
                        metadata={"language": "ru", "method": "standard", "base_fingerprint": base_fingerprint(source)})
    pack.save_pretrained(root / "pack")
    shutil.copytree(root / "pack", root / "pack-bad-json")
    (root / "pack-bad-json" / "language_pack.json").write_text('{"language": "ru",, }')
    shutil.copytree(root / "pack", root / "pack-cut")
    with open(root / "pack-cut" / "language_pack.safetensors", "r+b") as f:
        f.truncate(5)
    shutil.copytree(root / "source", root / "source-cut")
    weights = root / "source-cut" / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    return types.SimpleNamespace(root=root, source=source, stock=stock, bert=bert, en_tok=en_tok, ru_tok=ru_tok, pack=pack, en=en, ru=ru)


ON_PROC = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
R = "{root}"
# --max-seq-length within the table: a longer one is clamped with a note (tests/test_cli.py), a second line here.
EMB = ["train-embeddings", "--model", f"{R}/source", "--tokenizer", f"{R}/ru-tok", "--train", f"{R}/ru.txt", "--output", "{out}",
       "--max-seq-length", str(SEQ)]
PRE = ["pretrain", "--train", f"{R}/en.txt", "--tokenizer", f"{R}/en-tok", "--output", "{out}", "--hidden-size", "32"]
MERGE = ["merge", "--model", f"{R}/source", "--pack", f"{R}/pack"]

CLI_CASES = [
    # numbers, at the boundary
    ("negative step budget", [*PRE, "--steps", "-5"], "argument --steps: -5 is too small: pass 1 or more"),
    ("zero step budget", [*PRE, "--steps", "0"], "argument --steps: 0 is too small"),
    ("negative demo steps", ["demo", "--steps", "-3", "--output", "{out}"], "argument --steps: -3 is too small"),
    ("zero demo source steps", ["demo", "--source-steps", "0"], "argument --source-steps: 0 is too small"),
    ("zero batch size", [*EMB, "--batch-size", "0"], "argument --batch-size: 0 is too small"),
    ("zero sequence length", [*EMB[:-1], "0"], "argument --max-seq-length: 0 is too small"),
    ("zero learning rate", [*PRE, "--learning-rate", "0"], "argument --learning-rate: 0 is out of range: pass a number > 0"),
    ("learning rate nan", [*EMB, "--learning-rate", "nan"], "argument --learning-rate: nan is out of range"),
    ("steps not a number", ["finetune", "--model", f"{R}/source", "--task", "bible-genre", "--output", "{out}", "--steps", "ten"],
     "argument --steps: 'ten' is not a whole number"),
    ("vocabulary too small for the special tokens", ["tokenizer", "--train", f"{R}/en.txt", "--vocab-size", "3", "--output", "{out}"],
     "argument --vocab-size: 3 is too small: pass 6 or more"),
    ("zero retrieval candidates", ["evaluate", "--model", f"{R}/source", "--task", "bible-retrieval", "--num-candidates", "0"],
     "argument --num-candidates: 0 is too small"),
    ("negative new layers", ["minipost", "--model", f"{R}/source", "--train", f"{R}/en.txt", "--output", "{out}", "--new-layers", "-1"],
     "argument --new-layers: -1 is too small"),
    ("negative seed", [*EMB, "--seed", "-1"], "argument --seed: -1 is too small: pass 0 or more"),
    ("hidden size not a multiple of the heads", [*PRE, "--hidden-size", "30", "--num-heads", "4"], "hidden_size=30 is not a multiple of num_heads=4"),
    ("mini-model as deep as the model", [*PRE, "--num-layers", "2", "--mini-num-layers", "2"], "mini_num_layers=2 is not below"),
    # paths that are not there
    ("model id that is no folder, offline", ["minipost", "--model", "does-not-exist", "--train", f"{R}/en.txt", "--output", "{out}"],
     "no model folder does-not-exist, and HF_HUB_OFFLINE is set"),
    ("model path that does not exist", ["evaluate", "--model", "./does-not-exist", "--task", "bible-genre", "--source-language", "en"],
     "no model folder ./does-not-exist: check the path"),
    ("tokenizer path that does not exist", [*EMB[:4], "/no/such/tokenizer", *EMB[5:]], "no tokenizer folder /no/such/tokenizer"),
    ("mini-model path that does not exist", [*EMB, "--mini-model", f"{R}/no-minipost"], "no mini-model folder"),
    ("corpus file that does not exist", [*EMB[:6], f"{R}/missing.txt", *EMB[7:]], "corpus file not found"),
    ("corpus not UTF-8", ["tokenizer", "--train", f"{R}/latin1.txt", "--output", "{out}"], "is not UTF-8 text"),
    ("corpus shorter than one block", [*EMB[:6], f"{R}/short.txt", *EMB[7:]], "shorter than one block of 32 tokens"),
    ("resume with no checkpoint", [*EMB, "--resume"], "--resume: no checkpoint in"),
    # damaged files
    ("pack JSON malformed", [*MERGE[:4], f"{R}/pack-bad-json", "--output", "{out}"], "pack-bad-json/language_pack.json is not valid JSON"),
    ("pack weights cut short", [*MERGE[:4], f"{R}/pack-cut", "--output", "{out}"], "language_pack.safetensors is damaged or incomplete"),
    ("model weights cut short", ["merge", "--model", f"{R}/source-cut", "--pack", f"{R}/pack", "--output", "{out}"],
     "model.safetensors is damaged or incomplete"),
    # outputs that cannot be written
    pytest.param("output inside /proc", [*MERGE, "--output", "/proc/m29"], "cannot write /proc/m29", marks=ON_PROC),
    ("output below a file", [*MERGE, "--output", f"{R}/en.txt/m30"], "en.txt is a file, not a folder"),
    ("output that exists", [*MERGE, "--output", "{existing}"], "already exists: pass --overwrite or choose another folder"),
    ("demo output that exists", ["demo", "--output", "{existing}"], "already exists"),
    ("results file below a file", ["evaluate", "--model", f"{R}/source", "--task", "bible-genre", "--source-language", "en",
                                   "--output", f"{R}/en.txt/results.json"], "is a file, not a folder"),
    # models of the wrong kind, tasks that need the Hub
    ("MiniJoint export from a stock model", [*EMB[:2], f"{R}/stock", *EMB[3:], "--mini-model", "minijoint"], "has no mini-model head to export"),
    ("a BERT model", ["minipost", "--model", f"{R}/bert", "--train", f"{R}/en.txt", "--output", "{out}"], "is not an XLM-R model"),
    ("Hub task offline", ["finetune", "--model", f"{R}/source", "--task", "xnli", "--output", "{out}"], "(CLI: --train-file)"),
    ("nothing to evaluate", ["evaluate", "--model", f"{R}/source", "--task", "bible-genre"], "nothing to evaluate: pass --pack"),
]


def _named(cases):
    """Each row as a test named by its description (rows that are already pytest.param keep their marks)."""
    rows = [(case.values, case.marks) if hasattr(case, "marks") else (case, ()) for case in cases]
    return [pytest.param(*values, id=values[0], marks=marks) for values, marks in rows]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_size if p.is_file() else None for p in folder.rglob("*")}


@pytest.mark.parametrize("description, argv, fragment", _named(CLI_CASES))
def test_command_line_refuses_with_one_line(description, argv, fragment, fx, tmp_path, capsys):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("earlier work")
    argv = [a.format(root=fx.root, out=tmp_path / "out", existing=existing) for a in argv]
    before, fixtures = _snapshot(tmp_path), _snapshot(fx.root)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("minimodel ") and "error: " in err, err
    assert fragment in err, err
    assert _snapshot(tmp_path) == before and _snapshot(fx.root) == fixtures  # no output, no temporary, no .checkpoints


def _enter(path):
    with atomic_directory(path):
        pass


def _steps(fx, out, **kwargs):
    return pretrain_mlm(fx.source, fx.en_tok, fx.en, out, learning_rate=1e-3, max_seq_length=SEQ, **kwargs)


API_CASES = [
    ("negative step budget", lambda fx, out: _steps(fx, out, max_steps=-5), InputError, "max_steps=-5: must be a whole number of at least 1"),
    ("zero step budget", lambda fx, out: _steps(fx, out, max_steps=0), InputError, "max_steps=0"),
    ("zero batch size", lambda fx, out: _steps(fx, out, max_steps=2, batch_size=0), InputError, "batch_size=0"),
    ("negative learning rate", lambda fx, out: pretrain_mlm(fx.source, fx.en_tok, fx.en, out, max_steps=2, learning_rate=-1.0,
                                                            max_seq_length=SEQ), InputError, "learning_rate=-1.0"),
    ("fractional save steps", lambda fx, out: run_mlm_training(fx.source, fx.en_tok, mlm_blocks(fx.en, fx.en_tok, SEQ), out, max_steps=2,
                                                               learning_rate=1e-3, save_steps=0.5), InputError, "save_steps=0.5"),
    ("negative demo steps", lambda fx, out: run_demo(DemoConfig(step2_steps=-3, cache_dir=out / "cache"), output=out), InputError, "step2_steps=-3"),
    ("zero block length", lambda fx, out: mlm_blocks(fx.en, fx.en_tok, max_seq_length=0), InputError, "max_seq_length=0"),
    ("blocks beyond the position table", lambda fx, out: train_target_embeddings(fx.source, fx.ru_tok, fx.ru, out, source_tokenizer=fx.en_tok,
                                                                                 max_steps=2, max_seq_length=128),
     InputError, "training blocks of 128 tokens do not fit the model's position table (32 tokens): pass max_seq_length=32"),
    ("held-out blocks beyond the position table", lambda fx, out: heldout_mlm_loss(fx.source, fx.en_tok, fx.en, max_seq_length=128),
     InputError, "pass max_seq_length=32 or less"),
    ("training text shorter than one block", lambda fx, out: train_target_embeddings(fx.source, fx.ru_tok, ["Да."], out,
                                                                                     source_tokenizer=fx.en_tok, max_steps=2, max_seq_length=SEQ),
     InputError, "shorter than one block of 32 tokens"),
    ("held-out text shorter than one block", lambda fx, out: heldout_mlm_loss(fx.source, fx.en_tok, ["Да."], max_seq_length=SEQ),
     InputError, "shorter than one block"),
    ("hidden size not a multiple of the heads", lambda fx, out: source_config(fx.en_tok, hidden_size=30, num_heads=4), InputError, "hidden_size=30"),
    ("vocabulary too small", lambda fx, out: train_target_tokenizer(fx.en, vocab_size=3), ValueError, "vocab_size must leave room"),
    ("pack rows do not match the tokenizer", lambda fx, out: LanguagePack(tokenizer=fx.ru_tok, embeddings=torch.zeros(3, 32)),
     ValueError, "a language pack needs one row per token"),
    ("pack JSON malformed", lambda fx, out: LanguagePack.from_pretrained(fx.root / "pack-bad-json"), InputError, "language_pack.json is not valid JSON"),
    ("pack weights cut short", lambda fx, out: LanguagePack.from_pretrained(fx.root / "pack-cut"), InputError, "is damaged or incomplete"),
    ("model weights cut short", lambda fx, out: load_full_model(fx.root / "source-cut"), InputError, "model.safetensors is damaged"),
    ("model id offline", lambda fx, out: load_full_model("does-not-exist"), InputError, "HF_HUB_OFFLINE is set"),
    ("push to the Hub offline", lambda fx, out: fx.pack.push_to_hub("someone/ru-pack"), OSError,
     "could not upload the language pack to the Hugging Face Hub"),
    ("not an XLM-R model", lambda fx, out: MiniModelAdapter(fx.bert), WrongModelError, "BertForMaskedLM is not an XLM-R model"),
    ("MiniJoint export from a stock model", lambda fx, out: MiniModelAdapter(fx.stock).export_mini_model(), WrongModelError, "build_minipost"),
    pytest.param("output inside /proc", lambda fx, out: _enter("/proc/m29"), OutputPathError, "cannot write /proc/m29", marks=ON_PROC),
    ("output below a file", lambda fx, out: _enter(fx.root / "en.txt" / "m30"), OutputPathError, "is a file, not a folder"),
    ("output that exists", lambda fx, out: _enter(fx.root / "pack"), OutputExistsError, "already exists"),
]


@pytest.mark.parametrize("description, call, error, fragment", _named(API_CASES))
def test_library_refuses_with_a_named_error(description, call, error, fragment, fx, tmp_path):
    before, fixtures = _snapshot(tmp_path), _snapshot(fx.root)
    with pytest.raises(error) as info:
        call(fx, tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and fragment in message, message
    assert _snapshot(tmp_path) == before and _snapshot(fx.root) == fixtures


def test_the_matrix_covers_at_least_thirty_bad_inputs():
    assert len(CLI_CASES) + len(API_CASES) >= 30


def test_a_wrong_kind_of_model_is_still_a_type_error_to_python_callers():
    assert issubclass(WrongModelError, TypeError) and issubclass(WrongModelError, ValueError)


def test_an_unreachable_hub_answers_at_once(monkeypatch):
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    start = time.perf_counter()
    with pytest.raises(InputError, match="the Hugging Face Hub cannot be reached .*Name or service not known.*check the path"):
        check_pretrained("does-not-exist")
    assert time.perf_counter() - start < 5


def test_a_bug_of_ours_shows_its_traceback_and_asks_to_be_reported(fx, tmp_path, monkeypatch, capsys):
    def broken(args):
        raise TypeError("XLMRobertaModel._create_attention_masks() got an unexpected keyword argument 'input_embeds'")

    monkeypatch.setattr(cli, "_merge_cmd", broken)
    assert main(["merge", "--model", str(fx.root / "source"), "--pack", str(fx.root / "pack"), "--output", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "unexpected keyword argument" in err
    assert err.splitlines()[-1] == ("minimodel merge: this is a bug in hf-minimodel, not a mistake in your input; please "
                                    "report it with the traceback above")
