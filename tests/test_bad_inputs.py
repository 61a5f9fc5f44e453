"""Bad input, as a new user gives it: every case ends in one line that names the problem and the fix (exit status 2
from the command line, a named exception from the library), before any work, and leaves nothing behind.

One table per surface, its rows grouped by the kind of mistake. Each row: what the user did, what they ran, a
fragment the one line must contain (and, for a few, how the machine is set up first: a full disk, a locked output).
Every row asserts the same four things: the exit status (or the exception), exactly one line on stderr (read at the
file descriptor, so that warnings and Rust output count too), no progress bar before it (bars are on, as a user has
them; a bar drawn means work started before the check), and every input file byte-identical afterwards, with no
output, temporary folder or lock file left.

Notes ("minimodel: note: ...", e.g. a --max-seq-length clamped to the model's position table) are printed only when
the work begins, after every check: a refused command prints its error alone, so "exactly one line" holds for notes
too. Count the rows with

    python -m pytest --collect-only -q tests/test_bad_inputs.py -k refuses      # "tests/test_bad_inputs.py: N"
"""

import errno
import gzip
import hashlib
import io
import json
import re
import shutil
import types
from contextlib import ExitStack
from pathlib import Path

import datasets
import huggingface_hub
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, XLMRobertaForMaskedLM, XLMRobertaForSequenceClassification

from hf_minimodel import LanguagePack, MiniModelAdapter, XLMRobertaForDualMLM, heldout_mlm_loss
from hf_minimodel import pretrain_mlm, train_target_tokenizer
from hf_minimodel import cli
from hf_minimodel.adapter import load_full_model
from hf_minimodel.checks import InputError, WrongModelError, check_model_files, check_vocabulary
from hf_minimodel.hub import check_pretrained
from hf_minimodel.cli import main
from hf_minimodel.demo import DemoConfig, run_demo
from hf_minimodel.configuration_minimodel import stock_config
from hf_minimodel.mini_model import cut_mini_model, minipost_config
from hf_minimodel.sample import sample_path
from hf_minimodel.saving import (OutputBusyError, OutputExistsError, OutputNotOursError, OutputPathError, atomic_directory,
                                 check_output, output_lock)
from hf_minimodel import source_config
from hf_minimodel.tasks import load_task
from hf_minimodel.blocks import check_one_block, mlm_blocks
from hf_minimodel.target_embeddings import check_step2, train_target_embeddings
from hf_minimodel.xlmr import base_fingerprint
from hf_minimodel.training import run_mlm_training
from hf_minimodel.transfer import evaluate_zero_shot, finetune, load_fine_tuned

SEQ = 32  # the tiny source model's position table holds this many tokens; the CLI's default asks for 128


def _lines(name, count):
    with gzip.open(sample_path(name), "rt", encoding="utf-8") as f:
        return [next(f).strip() for _ in range(count)]


@pytest.fixture(scope="module", autouse=True)
def offline():
    """No Hub and no threads note; progress bars stay on, as a user has them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))

        def unreachable(*args, **kwargs):
            raise ConnectionError("[Errno -2] Name or service not known")

        patch.setattr("datasets.load_dataset", unreachable)
        patch.setattr(huggingface_hub.HfApi, "create_repo", unreachable)
        patch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
        yield


def _copy(root, name, to, edit=None):
    shutil.copytree(root / name, root / to)
    if edit:
        edit(root / to)
    return root / to


def _edit_json(name, change):
    def edit(folder):
        value = json.loads((folder / name).read_text())
        value = change(value)
        (folder / name).write_text(json.dumps(value) if not isinstance(value, str) else value)
    return edit


def _set(**fields):
    return _edit_json("config.json", lambda config: {**config, **fields})


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Tiny artifacts, built once and never trained (nothing here gets as far as training): tokenizers, a MiniJoint
    source model whose position table holds 32 tokens, a stock and a BERT masked LM, MiniPost mini-models of two
    bases, a task model, packs, and damaged or incomplete copies of each."""
    root = tmp_path_factory.mktemp("bad-inputs")
    en, ru = _lines("en-kjv.train", 200), _lines("ru-synodal.train", 200)
    (root / "en.txt").write_text("\n".join(en), encoding="utf-8")
    (root / "ru.txt").write_text("\n".join(ru), encoding="utf-8")
    (root / "short.txt").write_text("Да.\n", encoding="utf-8")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    en_tok = train_target_tokenizer(en, vocab_size=300, show_progress=False)
    ru_tok = train_target_tokenizer(ru, vocab_size=250, show_progress=False)
    big_tok = train_target_tokenizer(en + ru, vocab_size=420, show_progress=False)
    assert len(en_tok) == 300 and len(ru_tok) == 250 and len(big_tok) > 300
    for name, tokenizer in (("en-tok", en_tok), ("ru-tok", ru_tok), ("big-tok", big_tok)):
        tokenizer.save_pretrained(root / name)
    torch.manual_seed(0)
    shape = dict(hidden_size=32, num_layers=2, max_seq_length=SEQ)
    source = XLMRobertaForDualMLM(source_config(en_tok, **shape, mini_num_layers=1))
    stock = XLMRobertaForMaskedLM(source_config(en_tok, **shape))
    bert = BertForMaskedLM(BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64))
    genre = load_task("bible-genre", "en", "test", max_examples=2).label_names
    task = XLMRobertaForSequenceClassification(stock_config(source.config, num_labels=len(genre), id2label=dict(enumerate(genre)),
                                                            label2id={name: i for i, name in enumerate(genre)}))
    task.roberta.load_state_dict(source.roberta.state_dict(), strict=False)
    minipost = cut_mini_model(source, minipost_config(source.config, 1, 1), head=source.lm_head, num_copied_layers=2)
    other_minipost = cut_mini_model(stock, minipost_config(stock.config, 1, 1), head=stock.lm_head, num_copied_layers=2)
    for name, model in (("source", source), ("stock", stock), ("bert", bert), ("task", task), ("minipost", minipost),
                        ("minipost-other", other_minipost)):
        model.save_pretrained(root / name)
        en_tok.save_pretrained(root / name)
    source.save_pretrained(root / "notok")  # model folders saved without their tokenizer
    task.save_pretrained(root / "task-notok")
    for name, base in (("pack", source), ("pack-stock", stock)):
        LanguagePack(tokenizer=ru_tok, embeddings=torch.randn(len(ru_tok), 32) * 0.02,
                     metadata={"language": "ru", "method": "standard", "base_fingerprint": base_fingerprint(base)}).save_pretrained(root / name)
    LanguagePack(tokenizer=ru_tok, embeddings=torch.randn(len(ru_tok), 48), metadata={"language": "ru"}).save_pretrained(root / "pack-48")
    LanguagePack(tokenizer=ru_tok, embeddings=torch.randn(len(ru_tok), 32), metadata={"language": "ru"}).save_pretrained(root / "pack-no-base")
    (root / "qa.jsonl").write_text("".join(json.dumps({"id": str(i), "title": "Genesis", "context": en[i], "question": "Who?",
                                                       "answers": {"text": [en[i][:5]], "answer_start": [0]}}) + "\n" for i in range(3)))
    _copy(root, "pack", "pack-bad-json", lambda f: (f / "language_pack.json").write_text('{"language": "ru",, }'))
    _copy(root, "pack", "pack-cut", lambda f: _truncate(f / "language_pack.safetensors", 5))
    _copy(root, "pack", "pack-notok", lambda f: (f / "tokenizer.json").unlink())
    _copy(root, "source", "source-cut", lambda f: _truncate(f / "model.safetensors", (f / "model.safetensors").stat().st_size // 2))
    # configs that disagree with their weights, or hold the wrong type
    for name, fields in (("config-hidden", dict(hidden_size=64)), ("config-vocab", dict(vocab_size=500)),
                         ("config-layers", dict(num_hidden_layers=3)), ("config-positions", dict(max_position_embeddings=99)),
                         ("config-feed-forward", dict(intermediate_size=100)), ("config-str", dict(hidden_size="32")),
                         ("config-float", dict(num_hidden_layers=2.5)), ("config-bool", dict(vocab_size=True)),
                         ("config-null", dict(hidden_size=None)), ("config-negative", dict(num_attention_heads=-4))):
        _copy(root, "source", name, _set(**fields))
    _copy(root, "source", "config-bad-json", lambda f: (f / "config.json").write_text('{"hidden_size": 32,'))
    _copy(root, "source", "config-list", lambda f: (f / "config.json").write_text("[32, 2]"))
    _copy(root, "source", "no-config", lambda f: (f / "config.json").unlink())
    _copy(root, "source", "no-weights", lambda f: (f / "model.safetensors").unlink())
    _copy(root, "source", "pickle-only", lambda f: (f / "model.safetensors").rename(f / "pytorch_model.bin"))
    _copy(root, "source", "shard-missing", lambda f: (f / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"roberta.embeddings.word_embeddings.weight": "model-00002-of-00002.safetensors"}})))
    # tokenizers: no vocabulary, not JSON, no tokenizer.json at all, no mask token, another pad id
    _copy(root, "ru-tok", "tok-empty", _edit_json("tokenizer.json", lambda t: {**t, "model": {**t["model"], "vocab": []}}))
    _copy(root, "ru-tok", "tok-bad-json", lambda f: (f / "tokenizer.json").write_text('{"model": '))
    _copy(root, "ru-tok", "tok-config-only", lambda f: (f / "tokenizer.json").unlink())
    (root / "empty").mkdir()
    for name, change in (("tok-nomask", dict(mask_token=None)), ("tok-pad3", dict(pad_token="<unk>"))):
        tokenizer = AutoTokenizer.from_pretrained(root / "ru-tok")
        for key, value in change.items():
            setattr(tokenizer, key, value)
        tokenizer.save_pretrained(root / name)
    # saved datasets: the text in another column; a DatasetDict without a train split
    datasets.Dataset.from_dict({"sentence": ru}).save_to_disk(str(root / "ds-sentence"))
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict({"text": ru})}).save_to_disk(str(root / "ds-validation"))
    return types.SimpleNamespace(root=root, source=source, stock=stock, bert=bert, en_tok=en_tok, ru_tok=ru_tok, en=en, ru=ru,
                                 pack=LanguagePack.from_pretrained(root / "pack"), minipost=minipost, other_minipost=other_minipost)


def _truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)


# Setups: the machine as the case needs it (a full disk, an unreadable file, little memory, a run already under way).

def _lock_held(fx, tmp_path, patch, stack):
    stack.enter_context(output_lock(tmp_path / "out"))


def _disk_full_on_tokenizer_save(fx, tmp_path, patch, stack):
    from transformers import PreTrainedTokenizerFast

    def save_pretrained(self, folder, *args, **kwargs):
        (Path(folder) / "tokenizer.json").write_text('{"half": ')  # what a full disk leaves: a file cut short
        raise Exception("No space left on device (os error 28)")  # as the Rust tokenizers library says it

    patch.setattr(PreTrainedTokenizerFast, "save_pretrained", save_pretrained)


def _disk_full_on_output(fx, tmp_path, patch, stack):
    def mkdtemp(*args, dir=None, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(dir))

    patch.setattr("hf_minimodel.saving.tempfile.mkdtemp", mkdtemp)


def _no_write_permission(fx, tmp_path, patch, stack):
    def mkdtemp(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    patch.setattr("hf_minimodel.saving.tempfile.mkdtemp", mkdtemp)


def _unreadable(name):
    """`name` (under the fixtures' root) cannot be opened, as for a user without read permission (tests run as root
    here, whom file modes do not stop)."""
    def setup(fx, tmp_path, patch, stack):
        real, target = io.open, str(fx.root / name)

        def guarded(file, *args, **kwargs):
            if str(file) == target:
                raise PermissionError(errno.EACCES, "Permission denied", target)
            return real(file, *args, **kwargs)

        patch.setattr(io, "open", guarded)
        patch.setattr("builtins.open", guarded)
    return setup


def _little_memory(fx, tmp_path, patch, stack):
    """An address-space limit 1 GiB above what the process holds: a larger allocation fails at once, as on a
    machine without the memory (and never swaps or wakes the kernel's OOM killer)."""
    resource = pytest.importorskip("resource")
    with open("/proc/self/status") as status:
        held = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    limits = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (held + 2**30, limits[1]))
    stack.callback(resource.setrlimit, resource.RLIMIT_AS, limits)


def _raises(target, error):
    def setup(fx, tmp_path, patch, stack):
        def fail(*args, **kwargs):
            raise error

        patch.setattr(target, fail)
    return setup


ON_PROC = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
R = "{root}"
# --max-seq-length within the table: a longer one is clamped with a note, printed once the work begins.
EMB = ["train-embeddings", "--model", f"{R}/source", "--tokenizer", f"{R}/ru-tok", "--train", f"{R}/ru.txt", "--output", "{out}",
       "--max-seq-length", str(SEQ)]
PRE = ["pretrain", "--train", f"{R}/en.txt", "--tokenizer", f"{R}/en-tok", "--output", "{out}", "--hidden-size", "32"]
POST = ["minipost", "--model", f"{R}/source", "--train", f"{R}/en.txt", "--output", "{out}", "--max-seq-length", str(SEQ)]
MERGE = ["merge", "--model", f"{R}/source", "--pack", f"{R}/pack"]
FINE = ["finetune", "--model", f"{R}/source", "--task", "bible-genre", "--output", "{out}", "--max-seq-length", str(SEQ)]
EVAL = ["evaluate", "--model", f"{R}/task", "--task", "bible-genre", "--max-seq-length", str(SEQ)]
TOK = ["tokenizer", "--train", f"{R}/en.txt", "--output", "{out}"]
INITS = ["inits", "--model", f"{R}/source", "--tokenizer", f"{R}/ru-tok", "--heldout", f"{R}/ru.txt", "--max-seq-length", str(SEQ)]


def _with(argv, flag, value):
    """`argv` with `flag` set to `value` (replaced where it is, else added)."""
    if flag in argv:
        i = argv.index(flag)
        return [*argv[: i + 1], value, *argv[i + 2:]]
    return [*argv, flag, value]


CLI_KINDS = {
    "numbers out of range": [
        ("negative step budget", [*PRE, "--steps", "-5"], "argument --steps: -5 is too small: pass 1 or more"),
        ("zero step budget", [*PRE, "--steps", "0"], "argument --steps: 0 is too small"),
        ("negative demo steps", ["demo", "--steps", "-3", "--output", "{out}"], "argument --steps: -3 is too small"),
        ("zero demo source steps", ["demo", "--source-steps", "0"], "argument --source-steps: 0 is too small"),
        ("zero batch size", [*EMB, "--batch-size", "0"], "argument --batch-size: 0 is too small"),
        ("zero sequence length", _with(EMB, "--max-seq-length", "0"), "argument --max-seq-length: 0 is too small"),
        ("zero learning rate", [*PRE, "--learning-rate", "0"], "argument --learning-rate: 0 is out of range: pass a number > 0"),
        ("learning rate nan", [*EMB, "--learning-rate", "nan"], "argument --learning-rate: nan is out of range"),
        ("decay share beyond the steps after warm-up", [*EMB, "--decay-share", "1"],
         "decay share 1 must be above 0 and at most 0.95 (the steps after warm-up): 0.2 decays over the last fifth"),
        ("steps not a number", [*FINE, "--steps", "ten"], "argument --steps: 'ten' is not a whole number"),
        ("vocabulary too small for the special tokens", [*TOK, "--vocab-size", "3"], "argument --vocab-size: 3 is too small: pass 6 or more"),
        ("zero retrieval candidates", ["evaluate", "--model", f"{R}/source", "--task", "bible-retrieval", "--num-candidates", "0"],
         "argument --num-candidates: 0 is too small"),
        ("negative new layers", [*POST, "--new-layers", "-1"], "argument --new-layers: -1 is too small"),
        ("negative seed", [*EMB, "--seed", "-1"], "argument --seed: -1 is too small: pass 0 or more"),
        ("hidden size not a multiple of the heads", [*PRE, "--hidden-size", "30", "--num-heads", "4"], "hidden_size=30 is not a multiple of num_heads=4"),
        ("mini-model as deep as the model", [*PRE, "--num-layers", "2", "--mini-num-layers", "2"], "mini_num_layers=2 is not below"),
        ("MiniPost deeper than its model", [*POST, "--mini-num-layers", "2"], "mini_num_layers=2 is not below the full model's depth"),
    ],
    "settings that give no meaningful number": [
        ("a block of one token", _with(EMB, "--max-seq-length", "1"), "argument --max-seq-length: 1 is too small (<s> and </s>"),
        ("pretraining blocks of seven tokens", [*PRE, "--max-seq-length", "7"], "pass 8 or more"),
        ("MiniPost blocks of two tokens", _with(POST, "--max-seq-length", "2"), "--max-seq-length: 2 is too small"),
        ("fine-tuning on four tokens", _with(FINE, "--max-seq-length", "4"), "--max-seq-length: 4 is too small"),
        ("evaluating on three tokens", [*_with(EVAL, "--max-seq-length", "3"), "--source-language", "en"], "--max-seq-length: 3 is too small"),
        ("steps beyond any machine's reach", [*PRE, "--steps", "100000000000000000000000"], "is more than any run needs"),
        ("one step past the bound", [*EMB, "--steps", "10000001"], "pass at most 10,000,000"),
        ("checkpoints beyond the bound", [*EMB, "--save-steps", "999999999999"], "argument --save-steps: 999999999999 is more than"),
        ("demo steps beyond the bound", ["demo", "--source-steps", "1000000000000"], "argument --source-steps: 1000000000000 is more than"),
        ("fine-tuning steps beyond the bound", [*FINE, "--steps", "1000000000"], "argument --steps: 1000000000 is more than"),
        ("evaluating a masked LM as a task model", ["evaluate", "--model", f"{R}/stock", "--task", "bible-genre", "--source-language", "en",
                                                    "--max-seq-length", str(SEQ)], "has no trained classification head"),
        ("evaluating the MiniJoint model as a task model", [*_with(EVAL, "--model", f"{R}/source"), "--pack", f"{R}/pack"],
         "no classifier.* weights"),
        ("evaluating a task model on another task's labels", [*_with(EVAL, "--task", "bible-paraphrase"), "--source-language", "fr"],
         "was fine-tuned for the labels ['law'"),
        ("evaluating a classifier on extractive QA", [*_with(EVAL, "--task", "mlqa"), "--source-language", "en", "--test-file", f"{R}/qa.jsonl"],
         "has no trained qa head (no qa_outputs.* weights)"),
    ],
    "paths that are not there": [
        ("model id that is no folder, offline", [*_with(POST, "--model", "does-not-exist")], "no model folder does-not-exist, and HF_HUB_OFFLINE is set"),
        ("model path that does not exist", ["evaluate", "--model", "./does-not-exist", "--task", "bible-genre", "--source-language", "en"],
         "no model folder ./does-not-exist: check the path"),
        ("tokenizer path that does not exist", _with(EMB, "--tokenizer", "/no/such/tokenizer"), "no tokenizer folder /no/such/tokenizer"),
        ("mini-model path that does not exist", [*EMB, "--mini-model", f"{R}/no-minipost"], "no mini-model folder"),
        ("corpus file that does not exist", _with(EMB, "--train", f"{R}/missing.txt"), "corpus file not found"),
        ("pack that does not exist", [*_with(MERGE, "--pack", f"{R}/no-pack"), "--output", "{out}"], "is not a local folder"),
        ("resume with no checkpoint", [*EMB, "--resume"], "--resume: no finished checkpoint in"),
        ("a file as the model", _with(EMB, "--model", f"{R}/en.txt"), "is a file: pass the folder that holds it"),
    ],
    "folders without the parts the command needs": [
        ("MiniPost from a model saved without its tokenizer", _with(POST, "--model", f"{R}/notok"),
         "model folder {root}/notok has no tokenizer (tokenizer.json): pass --tokenizer"),
        ("step 2's source vocabulary from a model without a tokenizer", _with(EMB, "--model", f"{R}/notok"), "notok has no tokenizer"),
        ("step 3 from a model without a tokenizer", _with(FINE, "--model", f"{R}/notok"), "pass --tokenizer with the folder"),
        ("step 4 in the source language without a tokenizer", [*_with(EVAL, "--model", f"{R}/task-notok"), "--source-language", "en"],
         "task-notok has no tokenizer"),
        ("a model folder without config.json", _with(EMB, "--model", f"{R}/no-config"), "no-config has no config.json"),
        ("a model folder without weights", _with(MERGE, "--model", f"{R}/no-weights") + ["--output", "{out}"], "has no model.safetensors"),
        ("a model folder with a pickle only", _with(POST, "--model", f"{R}/pickle-only"), "has pytorch_model.bin but no model.safetensors"),
        ("a sharded model missing a shard", _with(EMB, "--model", f"{R}/shard-missing"), "lacks model-00002-of-00002.safetensors"),
        ("a tokenizer folder with tokenizer_config.json only", _with(EMB, "--tokenizer", f"{R}/tok-config-only"),
         "has no tokenizer (tokenizer.json): pass the folder that `minimodel tokenizer` wrote"),
        ("an empty folder as the tokenizer", _with(PRE, "--tokenizer", f"{R}/empty"), "empty has no tokenizer"),
        ("a pack without its tokenizer", [*_with(MERGE, "--pack", f"{R}/pack-notok"), "--output", "{out}"], "pack-notok has no tokenizer"),
        ("a mini-model folder without weights", [*EMB, "--mini-model", f"{R}/no-weights"], "has no model.safetensors"),
    ],
    "damaged files": [
        ("pack JSON malformed", [*_with(MERGE, "--pack", f"{R}/pack-bad-json"), "--output", "{out}"], "pack-bad-json/language_pack.json is not valid JSON"),
        ("pack weights cut short", [*_with(MERGE, "--pack", f"{R}/pack-cut"), "--output", "{out}"], "language_pack.safetensors is damaged or incomplete"),
        ("model weights cut short", [*_with(MERGE, "--model", f"{R}/source-cut"), "--output", "{out}"], "model.safetensors is damaged or incomplete"),
        ("config hidden size that disagrees with the weights", _with(EMB, "--model", f"{R}/config-hidden"), "config.json says hidden_size=64 but"),
        ("config vocabulary that disagrees with the weights", _with(POST, "--model", f"{R}/config-vocab"), "vocab_size=500 but the weights hold the word"),
        ("config depth that disagrees with the weights", _with(EMB, "--model", f"{R}/config-layers"), "num_hidden_layers=3 but the weights hold 2 layers"),
        ("config position table that disagrees", [*_with(MERGE, "--model", f"{R}/config-positions"), "--output", "{out}"],
         "max_position_embeddings=99 but the weights hold the position embeddings"),
        ("config feed-forward that disagrees", _with(FINE, "--model", f"{R}/config-feed-forward"), "intermediate_size=100 but"),
        ("config size as a string", _with(EMB, "--model", f"{R}/config-str"), 'hidden_size is "32", not a whole number'),
        ("config depth as a fraction", _with(POST, "--model", f"{R}/config-float"), "num_hidden_layers is 2.5, not a whole number"),
        ("config vocabulary as a boolean", [*_with(MERGE, "--model", f"{R}/config-bool"), "--output", "{out}"], "vocab_size is true, not a whole number"),
        ("config size missing", _with(EMB, "--model", f"{R}/config-null"), "hidden_size is null, not a whole number"),
        ("config heads negative", _with(FINE, "--model", f"{R}/config-negative"), "num_attention_heads=-4 must be at least 1"),
        ("config not JSON", _with(EMB, "--model", f"{R}/config-bad-json"), "config.json is not valid JSON"),
        ("config not an object", _with(EMB, "--model", f"{R}/config-list"), "config.json holds a JSON list, not an object"),
        ("tokenizer with an empty vocabulary", _with(EMB, "--tokenizer", f"{R}/tok-empty"), "tokenizer.json has an empty vocabulary"),
        ("tokenizer file not JSON", _with(EMB, "--tokenizer", f"{R}/tok-bad-json"), "tokenizer.json is not valid JSON"),
        ("corpus not UTF-8", [*_with(TOK, "--train", f"{R}/latin1.txt")], "is not UTF-8 text"),
        ("corpus shorter than one block", _with(EMB, "--train", f"{R}/short.txt"), "shorter than one block of 32 tokens"),
        ("held-out text shorter than one block", _with(INITS, "--heldout", f"{R}/short.txt"), "shorter than one block of 32 tokens"),
        ("a short corpus for an output in new folders", _with(_with(EMB, "--train", f"{R}/short.txt"), "--output", "{out}/runs/sw/pack"),
         "shorter than one block"),  # the folders made for the output's lock go again
    ],
    "parts that do not belong together": [
        ("a source tokenizer smaller than the model's vocabulary", [*EMB, "--source-tokenizer", f"{R}/ru-tok"],
         "has 250 tokens, fewer than the 300 rows of word embeddings"),
        ("a source tokenizer larger than the model's vocabulary", [*EMB, "--source-tokenizer", f"{R}/big-tok"], "more than the 300 rows"),
        ("MiniPost on another vocabulary", [*POST, "--tokenizer", f"{R}/ru-tok"], "pass --tokenizer with the folder of the model's own"),
        ("step 3 on another vocabulary", [*FINE, "--tokenizer", f"{R}/big-tok"], "it is not the model's vocabulary"),
        ("step 4 on another vocabulary", [*EVAL, "--source-language", "en", "--tokenizer", f"{R}/ru-tok"], "fewer than the 300 rows"),
        ("a MiniPost mini-model of another base", [*EMB, "--mini-model", f"{R}/minipost-other"],
         "the mini-model {root}/minipost-other was made for base model"),
        ("a full model as the mini-model", [*EMB, "--mini-model", f"{R}/stock"], "is a full model, not a mini-model"),
        ("MiniJoint export from a stock model", [*_with(EMB, "--model", f"{R}/stock"), "--mini-model", "minijoint"], "has no mini-model head to export"),
        ("a pack for another base model", [*_with(MERGE, "--model", f"{R}/stock"), "--output", "{out}"], "pass --no-check-base"),
        ("a pack of another hidden size", [*_with(MERGE, "--pack", f"{R}/pack-48"), "--output", "{out}"], "language pack has hidden size 48 but the model has 32"),
        ("step 4 with a pack for another base", [*EVAL, "--pack", f"{R}/pack-stock"], "the language pack was made for base model"),
        ("a target tokenizer with another pad id", _with(EMB, "--tokenizer", f"{R}/tok-pad3"), "pad token id is 3 but the model's is 1"),
        ("comparing inits from another source vocabulary", [*INITS, "--source-tokenizer", f"{R}/big-tok"], "more than the 300 rows"),
        ("a target tokenizer without a mask token", _with(EMB, "--tokenizer", f"{R}/tok-nomask"), "target tokenizer has no mask token: train it with minimodel tokenizer"),
        ("a BERT model", _with(POST, "--model", f"{R}/bert"), "bert model, which is not an XLM-R model"),
        ("a BERT model for step 2", _with(EMB, "--model", f"{R}/bert"), "is not an XLM-R model"),
        ("a BERT model for step 3", _with(FINE, "--model", f"{R}/bert"), "is not an XLM-R model"),
    ],
    "outputs that are inputs": [
        ("merging into the model it reads", [*MERGE, "--output", f"{R}/source", "--overwrite"], "the output {root}/source is the input {root}/source"),
        ("merging into the pack it reads", [*MERGE, "--output", f"{R}/pack", "--overwrite"], "is the input {root}/pack"),
        ("a pack written over its model", [*_with(EMB, "--output", f"{R}/source"), "--overwrite"], "is the input {root}/source"),
        ("a tokenizer written over its corpus", [*_with(TOK, "--output", f"{R}/en.txt"), "--overwrite"], "is the input {root}/en.txt"),
        ("a model written over its tokenizer", [*_with(PRE, "--output", f"{R}/en-tok"), "--overwrite"], "is the input {root}/en-tok"),
        ("a pack written over its target tokenizer", [*_with(EMB, "--output", f"{R}/ru-tok"), "--overwrite"], "is the input {root}/ru-tok"),
        ("a pack written over its mini-model", [*_with(EMB, "--output", f"{R}/minipost"), "--mini-model", f"{R}/minipost", "--overwrite"],
         "is the input {root}/minipost"),
        ("a task model written over its model", [*_with(FINE, "--output", f"{R}/source"), "--overwrite"], "is the input {root}/source"),
        ("init reports written over the held-out text", [*INITS, "--output", f"{R}/ru.txt", "--overwrite"], "is the input {root}/ru.txt"),
        ("an output inside the model folder", _with(POST, "--output", f"{R}/source/mini"), "is inside the input {root}/source"),
        ("an output inside the pack", [*MERGE, "--output", f"{R}/pack/merged"], "is inside the input {root}/pack"),
        ("results inside the task model", [*EVAL, "--source-language", "en", "--output", f"{R}/task/results.json"], "is inside the input"),
        ("an output that holds the inputs", [*MERGE, "--output", R, "--overwrite"], "holds the input {root}/source"),
        ("an output linked to an input", [*MERGE, "--output", "{link}", "--overwrite"], "is the input {root}/source"),
    ],
    "outputs that cannot or may not be written": [
        pytest.param("output inside /proc", [*MERGE, "--output", "/proc/m29"], "cannot write /proc/m29", None, marks=ON_PROC),
        ("output below a file", [*MERGE, "--output", f"{R}/en.txt/m30"], "en.txt is a file, not a folder"),
        ("output that exists", [*MERGE, "--output", "{existing}"], "already exists: pass --overwrite or choose another folder"),
        ("demo output that exists", ["demo", "--output", "{existing}"], "already exists"),
        ("results file below a file", [*EVAL, "--source-language", "en", "--output", f"{R}/en.txt/results.json"], "is a file, not a folder"),
        ("overwriting a folder hf-minimodel did not write", [*MERGE, "--output", "{existing}", "--overwrite"],
         "was not written by hf-minimodel (it has no .hf-minimodel file): --overwrite replaces only"),
        ("overwriting a user's file with a model", [*MERGE, "--output", "{existing}/keep.txt", "--overwrite"], "was not written by hf-minimodel"),
        ("overwriting a user's folder with the demo", ["demo", "--output", "{existing}", "--overwrite"], "was not written by hf-minimodel"),
        ("overwriting a user's file with results", [*EVAL, "--source-language", "en", "--output", "{existing}/keep.txt", "--overwrite"],
         "was not written by hf-minimodel"),
        ("overwriting a user's folder with a tokenizer", [*TOK, "--output", "{existing}", "--overwrite"], "was not written by hf-minimodel"),
    ],
    "an output another run is writing": [
        ("a second step 2 into one output", EMB, "another run (process", _lock_held),
        ("a second merge into one output", [*MERGE, "--output", "{out}"], "is writing {out}: wait for it to end, or choose another output",
         _lock_held),
        ("a second pretraining into one output", PRE, "another run", _lock_held),
        ("a second tokenizer into one output", TOK, "another run", _lock_held),
    ],
    "the machine's limits": [
        ("a full disk while saving a tokenizer", TOK, "no space left on the disk of {out}: free some space", _disk_full_on_tokenizer_save),
        ("a full disk where the output goes", [*MERGE, "--output", "{out}"], "no space left on the disk of {out}", _disk_full_on_output),
        ("a full disk before step 2", EMB, "no space left on the disk", _disk_full_on_output),
        ("no permission to write the output", [*MERGE, "--output", "{out}"], "permission denied for {out}: make it writable", _no_write_permission),
        ("no permission to read the corpus", TOK, "permission denied for {root}/en.txt: make it readable", _unreadable("en.txt")),
        ("no permission to read the model's config", EMB, "permission denied for {root}/source/config.json", _unreadable("source/config.json")),
        ("no permission to read the pack", [*MERGE, "--output", "{out}"], "permission denied", _unreadable("pack/language_pack.json")),
        pytest.param("a model too large for memory", [*PRE, "--hidden-size", "65536", "--num-heads", "1", "--num-layers", "1"],
                     "out of memory (", _little_memory, marks=ON_PROC),
        ("memory running out while training a tokenizer", TOK, "out of memory (MemoryError)",
         _raises("hf_minimodel.tokenizer.train_target_tokenizer", MemoryError())),
        ("memory running out while reading a corpus", EMB, "pass a smaller --batch-size or --max-seq-length",
         _raises("hf_minimodel.corpus.read_text_files", MemoryError())),
    ],
    "advice in the command line's terms": [
        ("a saved dataset's text in another column", _with(EMB, "--train", f"{R}/ds-sentence"), "pass --text-column with one of them"),
        ("a saved dataset without a train split", _with(EMB, "--train", f"{R}/ds-validation"), "pass --split with one of validation"),
        ("a text column for text files", [*TOK, "--text-column", "sentence"], "leave --text-column out"),
        ("a pack whose base cannot be checked", [*_with(MERGE, "--pack", f"{R}/pack-no-base"), "--output", "{out}"],
         "records no base fingerprint, so its base model cannot be checked: make it again with this version of hf-minimodel, or pass --no-check-base"),
        ("Hub task offline", [*FINE, "--task", "xnli"], "pass --train-file with a local .jsonl file"),
        ("nothing to evaluate", ["evaluate", "--model", f"{R}/source", "--task", "bible-genre"], "nothing to evaluate: pass --pack"),
        ("retrieval with nothing to retrieve", ["evaluate", "--model", f"{R}/source", "--task", "bible-retrieval", "--source-language", "en"],
         "nothing to evaluate"),
    ],
}


def _rows(kinds):
    """Each row as a test named by its description (rows that are already pytest.param keep their marks), with the
    setup column filled in."""
    rows = []
    for kind, cases in kinds.items():
        for case in cases:
            values, marks = (case.values, case.marks) if hasattr(case, "marks") else (case, ())
            values = (*values, None)[:4] if len(values) < 4 else values
            rows.append(pytest.param(*values, id=values[0], marks=marks))
    return rows


def _hashes(folder: Path) -> dict:
    """Every file under `folder` by its content's hash (and every folder, by its name): byte-identical or not."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(folder.rglob("*"))}


# Advice a Python caller would follow and a command-line user cannot: keyword arguments and their values.
PYTHON_ADVICE = re.compile(r"\b(?:pass|use|set) [a-z_]+=|[a-z_]+=(?:True|False|None)\b|[a-z_]+= ")


@pytest.mark.parametrize("description, argv, fragment, setup", _rows(CLI_KINDS))
def test_command_line_refuses_with_one_line(description, argv, fragment, setup, fx, tmp_path, capfd, monkeypatch):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("earlier work")
    (tmp_path / "link").symlink_to(fx.root / "source")
    names = dict(root=fx.root, out=tmp_path / "out", existing=existing, link=tmp_path / "link")
    argv = [a.format(**names) for a in argv]
    before, fixtures = _hashes(tmp_path), _hashes(fx.root)
    capfd.readouterr()
    with ExitStack() as stack:
        if setup:
            setup(fx, tmp_path, monkeypatch, stack)
        code = main(argv)
        monkeypatch.undo()
    err = capfd.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "\r" not in err, err  # one line, no progress bar drawn before it
    assert err.startswith("minimodel ") and "error: " in err and "Traceback" not in err, err
    assert fragment is None or fragment.format(**names) in err, err
    assert not PYTHON_ADVICE.search(err), err
    assert _hashes(tmp_path) == before and _hashes(fx.root) == fixtures  # no output, no temporary, no lock, inputs as they were


def test_python_advice_is_recognised():
    """The check above must be able to fail: the messages of before are caught."""
    for advice in ("pass text_column= one of them", "or pass check_base=False", "pass overwrite=True (CLI: --overwrite)"):
        assert PYTHON_ADVICE.search(advice), advice
    for fine in ("config.json says hidden_size=64 but", "mini_num_layers=2 is not below", "pass --max-seq-length 32 or less"):
        assert not PYTHON_ADVICE.search(fine), fine


def _enter(path, **kwargs):
    with atomic_directory(path, **kwargs):
        pass


def _steps(fx, out, **kwargs):
    return pretrain_mlm(fx.source, fx.en_tok, fx.en, out, learning_rate=1e-3, max_seq_length=SEQ, **kwargs)


def _step2(fx, out, **kwargs):
    return MiniModelAdapter(fx.source).train_embeddings(fx.ru_tok, fx.ru, out, source_tokenizer=fx.en_tok, max_steps=2,
                                                        max_seq_length=SEQ, **kwargs)


def _hold_and_enter(fx, out):
    with output_lock(out), output_lock(out):
        pass


API_KINDS = {
    "numbers out of range": [
        ("negative step budget", lambda fx, out: _steps(fx, out, max_steps=-5), InputError, "max_steps=-5: must be a whole number of at least 1"),
        ("zero step budget", lambda fx, out: _steps(fx, out, max_steps=0), InputError, "max_steps=0"),
        ("zero batch size", lambda fx, out: _steps(fx, out, max_steps=2, batch_size=0), InputError, "batch_size=0"),
        ("negative learning rate", lambda fx, out: pretrain_mlm(fx.source, fx.en_tok, fx.en, out, max_steps=2, learning_rate=-1.0,
                                                                max_seq_length=SEQ), InputError, "learning_rate=-1.0"),
        ("fractional save steps", lambda fx, out: run_mlm_training(fx.source, fx.en_tok, mlm_blocks(fx.en, fx.en_tok, SEQ), out, max_steps=2,
                                                                   learning_rate=1e-3, save_steps=0.5), InputError, "save_steps=0.5"),
        ("masking every token", lambda fx, out: run_mlm_training(fx.source, fx.en_tok, mlm_blocks(fx.en, fx.en_tok, SEQ), out, max_steps=2,
                                                                 learning_rate=1e-3, mlm_probability=1.0), InputError, "mlm_probability=1.0"),
        # Refused with step 2's other numbers, before the init and the model's copy, not when training starts.
        ("masking no token", lambda fx, out: check_step2(fx.source.config, fx.ru_tok, mlm_probability=0.0), InputError, "mlm_probability=0.0"),
        ("negative demo steps", lambda fx, out: run_demo(DemoConfig(step2_steps=-3, cache_dir=out / "cache"), output=out), InputError, "step2_steps=-3"),
        ("zero block length", lambda fx, out: mlm_blocks(fx.en, fx.en_tok, max_seq_length=0), InputError, "max_seq_length=0"),
        ("hidden size not a multiple of the heads", lambda fx, out: source_config(fx.en_tok, hidden_size=30, num_heads=4), InputError, "hidden_size=30"),
        ("vocabulary too small", lambda fx, out: train_target_tokenizer(fx.en, vocab_size=3), ValueError, "vocab_size must leave room"),
    ],
    "settings that give no meaningful number": [
        ("blocks of four tokens", lambda fx, out: mlm_blocks(fx.en, fx.en_tok, max_seq_length=4), InputError,
         "max_seq_length=4: sequences of fewer than 8 tokens"),
        ("a step budget beyond any machine", lambda fx, out: _steps(fx, out, max_steps=10**23), InputError, "is more than any run needs"),
        ("step 2 for ten million and one steps", lambda fx, out: train_target_embeddings(fx.source, fx.ru_tok, fx.ru, out, source_tokenizer=fx.en_tok,
                                                                                        max_steps=10_000_001, max_seq_length=SEQ),
         InputError, "at most 10,000,000"),
        ("fine-tuning on two tokens", lambda fx, out: finetune(fx.source, fx.en_tok, None, out, max_seq_length=2), InputError, "pass max_seq_length=8 or more"),
        ("evaluating on three tokens", lambda fx, out: evaluate_zero_shot(fx.source, None, pack=fx.pack, max_seq_length=3), InputError,
         "max_seq_length=3"),
        ("a masked LM loaded as a task model", lambda fx, out: load_fine_tuned(fx.root / "stock"), InputError, "has no trained classification head"),
        ("a classifier loaded for question answering", lambda fx, out: load_fine_tuned(fx.root / "task", "qa"), InputError, "no qa_outputs.* weights"),
        ("a classifier of other labels", lambda fx, out: load_fine_tuned(fx.root / "task", "classification", ["yes", "no"]), InputError,
         "the task's are ['yes', 'no']"),
        ("a classifier of as many labels, named otherwise", lambda fx, out: load_fine_tuned(fx.root / "task", "classification", list("abcdef")),
         InputError, "was fine-tuned for the labels ['law', 'history'"),
    ],
    "damaged or incomplete files": [
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
        ("text checked for one block before any work", lambda fx, out: check_one_block(["Да."], fx.ru_tok, SEQ), InputError,
         "pass more text, or a lower max_seq_length"),
        ("pack rows do not match the tokenizer", lambda fx, out: LanguagePack(tokenizer=fx.ru_tok, embeddings=torch.zeros(3, 32)),
         ValueError, "a language pack needs one row per token"),
        ("pack JSON malformed", lambda fx, out: LanguagePack.from_pretrained(fx.root / "pack-bad-json"), InputError, "language_pack.json is not valid JSON"),
        ("pack weights cut short", lambda fx, out: LanguagePack.from_pretrained(fx.root / "pack-cut"), InputError, "is damaged or incomplete"),
        ("pack without a tokenizer", lambda fx, out: LanguagePack.from_pretrained(fx.root / "pack-notok"), InputError, "has no tokenizer (tokenizer.json)"),
        ("model weights cut short", lambda fx, out: load_full_model(fx.root / "source-cut"), InputError, "model.safetensors is damaged"),
        ("config that disagrees with its weights", lambda fx, out: load_full_model(fx.root / "config-layers"), InputError, "num_hidden_layers=3"),
        ("config size of the wrong type", lambda fx, out: check_model_files(fx.root / "config-float"), InputError, "not a whole number"),
        ("a pickled model", lambda fx, out: check_pretrained(fx.root / "pickle-only"), InputError, "hf-minimodel loads safetensors only"),
        ("a tokenizer with an empty vocabulary", lambda fx, out: check_pretrained(fx.root / "tok-empty", "tokenizer", needs=("tokenizer",)),
         InputError, "has an empty vocabulary: copy the tokenizer again, or train it again (train_target_tokenizer)"),
    ],
    "parts that do not belong together": [
        ("a tokenizer of another vocabulary", lambda fx, out: check_vocabulary(fx.ru_tok, 300, "ru-tok", "source"), InputError,
         "has 250 tokens, fewer than the 300 rows"),
        ("a tokenizer of a larger vocabulary", lambda fx, out: check_vocabulary(fx.en_tok, 250, "en-tok", "ru"), InputError, "more than the 250 rows"),
        ("a mini-model of another base", lambda fx, out: _step2(fx, out, mini_model=fx.other_minipost), InputError,
         "the mini-model was made for base model"),
        ("a pack for another base", lambda fx, out: fx.pack.apply(XLMRobertaForMaskedLM(fx.stock.config)), InputError,
         "or pass check_base=False"),
        ("model id offline", lambda fx, out: load_full_model("does-not-exist"), InputError, "HF_HUB_OFFLINE is set"),
        ("push to the Hub offline", lambda fx, out: fx.pack.push_to_hub("someone/ru-pack"), OSError,
         "could not upload the language pack to the Hugging Face Hub"),
        ("not an XLM-R model", lambda fx, out: MiniModelAdapter(fx.bert), WrongModelError, "BertForMaskedLM is not an XLM-R model"),
        ("MiniJoint export from a stock model", lambda fx, out: MiniModelAdapter(fx.stock).export_mini_model(), WrongModelError, "build_minipost"),
    ],
    "outputs": [
        pytest.param("output inside /proc", lambda fx, out: _enter("/proc/m29"), OutputPathError, "cannot write /proc/m29", marks=ON_PROC),
        ("output below a file", lambda fx, out: _enter(fx.root / "en.txt" / "m30"), OutputPathError, "is a file, not a folder"),
        ("output that exists", lambda fx, out: _enter(fx.root / "pack"), OutputExistsError, "already exists: pass overwrite=True"),
        ("overwriting what hf-minimodel did not write", lambda fx, out: _enter(fx.root / "empty", overwrite=True), OutputNotOursError,
         "overwrite=True replaces only what hf-minimodel wrote"),
        ("an output that is an input", lambda fx, out: check_output(fx.root / "pack", True, inputs=[fx.root / "pack"]), InputError, "is the input"),
        ("an output inside an input", lambda fx, out: check_output(fx.root / "pack" / "x", inputs=[fx.root / "pack"]), InputError, "is inside the input"),
        ("an output above an input", lambda fx, out: check_output(fx.root, True, inputs=[fx.root / "en.txt"]), InputError, "holds the input"),
        ("an output another run holds", lambda fx, out: _hold_and_enter(fx, out), OutputBusyError, "another run (process"),
    ],
}


@pytest.mark.parametrize("description, call, error, fragment", [
    pytest.param(*(case.values if hasattr(case, "marks") else case), id=(case.values if hasattr(case, "marks") else case)[0],
                 marks=case.marks if hasattr(case, "marks") else ())
    for cases in API_KINDS.values() for case in cases])
def test_library_refuses_with_a_named_error(description, call, error, fragment, fx, tmp_path, capfd):
    before, fixtures = _hashes(tmp_path), _hashes(fx.root)
    capfd.readouterr()
    with pytest.raises(error) as info:
        call(fx, tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and fragment in message, message
    assert capfd.readouterr().err == ""  # no progress bar, no warning: refused before any work
    assert _hashes(tmp_path) == before and _hashes(fx.root) == fixtures


def test_the_matrix_covers_each_kind_several_times_and_a_hundred_cases_in_all():
    for kinds in (CLI_KINDS, API_KINDS):
        assert all(len(cases) >= 4 for cases in kinds.values()), {kind: len(cases) for kind, cases in kinds.items()}
    assert sum(map(len, CLI_KINDS.values())) + sum(map(len, API_KINDS.values())) >= 100


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


def test_a_runtime_error_that_is_not_the_machines_stays_a_bug(fx, tmp_path, monkeypatch, capsys):
    """Only what names a limit of the machine (space, memory, permission) is the user's: other errors from the same
    layers (a RuntimeError of torch's) still show their traceback."""
    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x32 and 64x32)")

    monkeypatch.setattr("hf_minimodel.tokenizer.train_target_tokenizer", broken)
    assert main(["tokenizer", "--train", str(fx.root / "en.txt"), "--output", str(tmp_path / "t")]) == 1
    assert "Traceback" in capsys.readouterr().err and not (tmp_path / "t").exists()


def test_a_full_disk_at_the_final_save_names_the_output_and_leaves_the_inputs_and_nothing_else(fx, tmp_path, monkeypatch, capfd):
    """The disk fills at the end, after the work (so progress bars ran): the error is still one line, the last,
    names the output rather than the hidden folder being written, and nothing is left beside it."""
    import hf_minimodel.merge

    def card(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(next(tmp_path.glob(".merged.tmp-*")) / "README.md"))

    monkeypatch.setattr(hf_minimodel.merge, "merged_card", card)
    fixtures = _hashes(fx.root)
    assert main(["merge", "--model", str(fx.root / "source"), "--pack", str(fx.root / "pack"), "--output", str(tmp_path / "merged")]) == 2
    last = capfd.readouterr().err.splitlines()[-1]
    assert last == (f"minimodel merge: error: no space left on the disk of {tmp_path / 'merged' / 'README.md'}: free some space, "
                    "or write to a disk with room (--output; HF_DATASETS_CACHE for the cache of a large corpus); nothing was left behind")
    assert list(tmp_path.iterdir()) == [] and _hashes(fx.root) == fixtures


def test_minipost_refuses_a_bad_number_before_it_tokenises_a_corpus(fx, tmp_path, capfd):
    """A Dataset (not a list) is tokenised with a progress bar: a step budget out of range must be refused first."""
    corpus = datasets.Dataset.from_dict({"text": fx.en})
    capfd.readouterr()
    for bad in (dict(max_steps=10**9), dict(max_steps=2, batch_size=0), dict(max_steps=2, max_seq_length=64)):
        with pytest.raises(InputError):
            MiniModelAdapter(fx.source).build_minipost(fx.en_tok, corpus, tmp_path, mini_num_layers=1,
                                                       **{"max_seq_length": SEQ, "learning_rate": 1e-3, **bad})
    assert capfd.readouterr().err == "" and list(tmp_path.iterdir()) == []
