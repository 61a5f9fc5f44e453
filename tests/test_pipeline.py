"""Steps 1, 1b and 2 on tiny models and the shipped public-domain text."""

import copy
import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForMaskedLM, TrainerCallback

from hf_minimodel import LanguagePack, MiniModelAdapter, MiniModelConfig, XLMRobertaForDualMLM
from hf_minimodel.xlmr import base_fingerprint
from hf_minimodel.sample import read_sample
from hf_minimodel.target_embeddings import LearningCurve, initial_target_embeddings, start_target_vocabulary, train_target_embeddings
from hf_minimodel.tokenizer import train_target_tokenizer
from hf_minimodel import heldout_mlm_loss, pretrain_mlm

FAST = dict(batch_size=4, max_seq_length=32, disable_tqdm=True)


@pytest.fixture(scope="module")
def texts():
    return read_sample("en-kjv.train")[:400], read_sample("ru-synodal.train")[:400], read_sample("ru-synodal.test")[:60]


@pytest.fixture(scope="module")
def tokenizers(texts):
    en, ru, _ = texts
    return train_target_tokenizer(en, vocab_size=300, show_progress=False), train_target_tokenizer(ru, vocab_size=250, show_progress=False)


@pytest.fixture(scope="module")
def source(tokenizers, tmp_path_factory, texts):
    """A tiny MiniJoint source model after a few steps of step 1."""
    torch.manual_seed(0)
    en_tok, _ = tokenizers
    model = XLMRobertaForDualMLM(
        MiniModelConfig(vocab_size=len(en_tok), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=40, mini_num_layers=1)
    )
    report = pretrain_mlm(model, en_tok, texts[0], tmp_path_factory.mktemp("step1"), max_steps=3, learning_rate=1e-3, **FAST)
    assert report.steps == 3 and report.flops > 0 and report.tokens == 3 * 4 * 32
    return model.eval()


def _body(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "word_embeddings" not in k and "lm_head" not in k}


def test_step2_trains_only_the_embeddings_and_leaves_the_model_alone(source, tokenizers, texts, tmp_path):
    en_tok, ru_tok = tokenizers
    mini = MiniModelAdapter(source).export_mini_model()
    before = {k: v.clone() for k, v in mini.state_dict().items()}
    pack = train_target_embeddings(mini, ru_tok, texts[1], tmp_path, source_tokenizer=en_tok, max_steps=3, learning_rate=1e-2, **FAST)
    for name, tensor in mini.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    init = initial_target_embeddings(mini, ru_tok, en_tok, "overlap").embeddings
    assert pack.embeddings.shape == (len(ru_tok), 32)
    assert not torch.equal(pack.embeddings, init)
    assert pack.metadata["method"] == "minijoint" and pack.metadata["train_steps"] == 3
    assert pack.metadata["base_fingerprint"] == base_fingerprint(source)
    merged = MiniModelAdapter(source).merge(pack)
    for name, tensor in _body(MiniModelAdapter(source).full_masked_lm()).items():
        assert torch.equal(merged.state_dict()[name], tensor), name


def test_overlap_init_copies_rows_of_shared_tokens(source, tokenizers):
    en_tok, ru_tok = tokenizers
    start = initial_target_embeddings(source, ru_tok, en_tok, "overlap")
    source_rows, source_bias = source.get_input_embeddings().weight, source.lm_head.bias
    shared = [(i, en_tok.get_vocab()[t]) for t, i in ru_tok.get_vocab().items() if t in en_tok.get_vocab()]
    assert start.report.rows["copied"] == len(shared) >= 5  # at least the five special tokens
    for i, j in shared:
        assert torch.equal(start.embeddings[i], source_rows[j].detach())
        assert start.output_bias[i] == source_bias[j]
    paper = initial_target_embeddings(source, ru_tok, None, "random-paper")
    assert paper.report.rows["copied"] == 0 and not paper.output_bias.any()
    assert paper.embeddings.std() == pytest.approx(source.config.initializer_range, rel=0.2)


def test_overlap_init_needs_the_source_tokenizer(source, tokenizers):
    with pytest.raises(ValueError, match="source_tokenizer"):
        initial_target_embeddings(source, tokenizers[1], None, "overlap")


def test_step2_costs_less_on_the_mini_model(source, tokenizers, texts, tmp_path):
    en_tok, ru_tok = tokenizers
    adapter = MiniModelAdapter(source)
    kwargs = dict(source_tokenizer=en_tok, max_steps=2, learning_rate=1e-2, **FAST)
    standard = adapter.train_embeddings(ru_tok, texts[1], tmp_path / "s", **kwargs)
    mini = adapter.train_embeddings(ru_tok, texts[1], tmp_path / "m", mini_model=adapter.export_mini_model(), **kwargs)
    assert standard.metadata["method"] == "standard" and standard.metadata["step2_num_layers"] == 3
    assert mini.metadata["step2_num_layers"] == 1
    # The masking share is a setting of step 2, so the pack records it and keeps it through a save.
    assert standard.metadata["mlm_probability"] == 0.15
    masked = adapter.train_embeddings(ru_tok, texts[1], tmp_path / "x", mlm_probability=0.4, **{**kwargs, "max_steps": 1})
    assert LanguagePack.from_pretrained(masked.save_pretrained(tmp_path / "pack")).metadata["mlm_probability"] == 0.4
    assert 1.5 < standard.metadata["train_flops"] / mini.metadata["train_flops"] < 3


class _StopAt(TrainerCallback):
    """Ends training after `step` steps, as a killed job would (the checkpoint at that step is already saved)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.step


def test_step2_resumes_from_its_checkpoint(source, tokenizers, texts, tmp_path):
    en_tok, ru_tok = tokenizers
    mini = MiniModelAdapter(source).export_mini_model()
    kwargs = dict(source_tokenizer=en_tok, learning_rate=1e-2, save_steps=2, **FAST)
    straight = train_target_embeddings(mini, ru_tok, texts[1], tmp_path / "a", max_steps=4, **kwargs)
    interrupted = train_target_embeddings(mini, ru_tok, texts[1], tmp_path / "b", max_steps=4, callbacks=[_StopAt(2)], **kwargs)
    assert interrupted.metadata["train_steps"] == 2
    resumed = train_target_embeddings(mini, ru_tok, texts[1], tmp_path / "b", max_steps=4, resume_from_checkpoint=True, **kwargs)
    # The Trainer state comes back from the checkpoint: the counters cover the whole 4-step run, not 2 new steps.
    for key in ("train_steps", "train_tokens"):
        assert resumed.metadata[key] == straight.metadata[key], key
    assert not torch.equal(resumed.embeddings, interrupted.embeddings)


def test_minipost_trains_only_its_new_layer_and_head(source, tokenizers, texts, tmp_path):
    en_tok, _ = tokenizers
    adapter = MiniModelAdapter(source)
    mini = adapter.build_minipost(en_tok, texts[0], tmp_path, mini_num_layers=1, num_new_layers=1, max_steps=3, learning_rate=1e-2, **FAST)
    assert (mini.config.num_hidden_layers, mini.config.mini_num_new_layers, mini.config.full_num_hidden_layers) == (2, 1, 3)
    assert torch.equal(mini.roberta.embeddings.word_embeddings.weight, source.roberta.embeddings.word_embeddings.weight)
    for name, tensor in source.roberta.encoder.layer[0].state_dict().items():
        assert torch.equal(mini.roberta.encoder.layer[0].state_dict()[name], tensor), name
    # The new layer started as a copy of the full model's layer 1 and has moved.
    assert not torch.equal(mini.roberta.encoder.layer[1].output.dense.weight, source.roberta.encoder.layer[1].output.dense.weight)
    assert adapter.minipost_report.steps == 3
    assert base_fingerprint(mini) == base_fingerprint(source)


def test_minipost_depth_is_checked(source, tokenizers, texts, tmp_path):
    with pytest.raises(ValueError, match="not below the full model's depth"):
        MiniModelAdapter(source).build_minipost(tokenizers[0], texts[0], tmp_path, mini_num_layers=3, max_steps=1)


def test_step2_lowers_heldout_loss(source, tokenizers, texts, tmp_path):
    en_tok, ru_tok = tokenizers
    adapter = MiniModelAdapter(source)
    untrained = adapter.full_masked_lm()
    start_target_vocabulary(untrained, ru_tok, en_tok, "overlap")
    pack = adapter.train_embeddings(ru_tok, texts[1], tmp_path, source_tokenizer=en_tok, max_steps=30, learning_rate=2e-2, **FAST)
    before = heldout_mlm_loss(untrained, ru_tok, texts[2], max_seq_length=32)
    after = heldout_mlm_loss(adapter.merge(pack), ru_tok, texts[2], max_seq_length=32)
    assert after < before - 0.5


def test_anchored_step2_keeps_shared_rows_at_their_source_values_and_trains_the_rest(source, tokenizers, texts, tmp_path):
    from hf_minimodel.initialisation import shared_tokens

    en_tok, ru_tok = tokenizers
    adapter = MiniModelAdapter(source)
    begin = initial_target_embeddings(source, ru_tok, en_tok, "anchored")
    start, start_bias = begin.embeddings, begin.output_bias
    pack = adapter.train_embeddings(ru_tok, texts[1], tmp_path, source_tokenizer=en_tok, init="anchored", max_steps=3,
                                    learning_rate=1e-2, **FAST)
    rows = sorted(shared_tokens(ru_tok, en_tok, source.config.vocab_size))
    others = sorted(set(range(len(ru_tok))) - set(rows))
    assert rows and pack.metadata["init_rows_copied"] == len(rows)
    torch.testing.assert_close(pack.embeddings[rows], start[rows], rtol=0, atol=0)
    torch.testing.assert_close(pack.output_bias[rows], start_bias[rows], rtol=0, atol=0)
    assert not torch.allclose(pack.embeddings[others], start[others])


def test_anchored_step2_refuses_weight_decay_which_would_move_the_anchors(source, tokenizers, texts, tmp_path):
    en_tok, ru_tok = tokenizers
    with pytest.raises(ValueError, match="weight decay would shrink them"):
        MiniModelAdapter(source).train_embeddings(ru_tok, texts[1], tmp_path, source_tokenizer=en_tok, init="anchored",
                                                  weight_decay=0.1, max_steps=1, **FAST)


def test_merged_model_loads_in_stock_transformers(source, tokenizers, texts, tmp_path):
    from hf_minimodel.merge import save_merged_model

    en_tok, ru_tok = tokenizers
    adapter = MiniModelAdapter(source)
    pack = adapter.train_embeddings(ru_tok, texts[1], tmp_path / "ckpt", source_tokenizer=en_tok, max_steps=1, learning_rate=1e-2, **FAST)
    merged = adapter.merge(pack)
    save_merged_model(merged, ru_tok, tmp_path / "merged")
    assert not list((tmp_path / "merged").glob("*.py"))  # no remote code needed
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "merged").eval()
    assert type(loaded).__name__ == "XLMRobertaForMaskedLM"
    ids = ru_tok(texts[2][:2], return_tensors="pt", padding=True, truncation=True, max_length=32)
    torch.testing.assert_close(loaded(**ids).logits, merged.eval()(**ids).logits, rtol=0, atol=0)


def test_step1_reads_a_streamed_dataset(tokenizers, texts, tmp_path):
    from hf_minimodel import load_text_dataset

    corpus = tmp_path / "en.txt"
    corpus.write_text("\n".join(texts[0]), encoding="utf-8")
    stream = load_text_dataset(corpus, streaming=True)
    assert type(stream).__name__ == "IterableDataset"
    torch.manual_seed(0)
    model = XLMRobertaForDualMLM(
        MiniModelConfig(vocab_size=len(tokenizers[0]), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=40, mini_num_layers=1)
    )
    report = pretrain_mlm(model, tokenizers[0], stream, tmp_path / "ckpt", max_steps=2, learning_rate=1e-3, **FAST)
    assert report.steps == 2 and report.tokens == 2 * 4 * 32


def test_learning_curve_takes_packs_along_step2_with_their_cost(source, tokenizers, texts, tmp_path):
    en_tok, ru_tok = tokenizers
    mini = MiniModelAdapter(source).export_mini_model()
    curve = LearningCurve(steps=[2, 4])
    pack = train_target_embeddings(mini, ru_tok, texts[1], tmp_path, source_tokenizer=en_tok, max_steps=4,
                                   learning_rate=1e-2, callbacks=[curve], **FAST)
    start, first, last = curve.packs(pack)
    assert [p.metadata["train_steps"] for p in (start, first, last)] == [0, 2, 4]
    # Step 0 is the pack as initialised: the init's rows, before any step, at no cost.
    begin = initial_target_embeddings(mini, ru_tok, en_tok, "overlap")
    assert torch.equal(start.embeddings, begin.embeddings) and torch.equal(start.output_bias, begin.output_bias)
    assert (start.metadata["train_flops"], start.metadata["train_tokens"], start.metadata["train_seconds"]) == (0, 0, 0)
    assert start.metadata["train_final_loss"] is None and last.metadata["train_final_loss"] == pack.metadata["train_final_loss"]
    # The last snapshot is the final pack; the first is an earlier state that cost about half as much.
    assert torch.equal(last.embeddings, pack.embeddings) and torch.equal(last.output_bias, pack.output_bias)
    assert not torch.equal(first.embeddings, pack.embeddings)
    assert last.metadata["train_flops"] == pack.metadata["train_flops"]
    assert last.metadata["train_tokens"] == pack.metadata["train_tokens"] == 2 * first.metadata["train_tokens"]
    assert 0.3 < first.metadata["train_flops"] / last.metadata["train_flops"] < 0.7
    assert 0 < first.metadata["train_seconds"] <= last.metadata["train_seconds"]
    assert first.metadata["language"] == pack.metadata["language"] and first.tokenizer is pack.tokenizer


class StopAfter(TrainerCallback):
    """An interruption after step N (its checkpoint written): the process dies before step N + 1."""

    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_a_learning_curve_with_a_folder_survives_a_resumed_run(source, tokenizers, texts, tmp_path):
    """Interrupted after step 3 of 6 and resumed by another curve over the same folder: the snapshots taken before
    the stop are read back, the rest taken after it, and the seconds go on from the checkpoint's instead of from 0."""
    en_tok, ru_tok = tokenizers
    mini = MiniModelAdapter(source).export_mini_model()
    run = dict(source_tokenizer=en_tok, max_steps=6, learning_rate=1e-2, save_steps=3, **FAST)
    whole = LearningCurve(steps=[2, 4, 6])
    train_target_embeddings(copy.deepcopy(mini), ru_tok, texts[1], tmp_path / "whole", callbacks=[whole], **run)
    first = LearningCurve(steps=[2, 4, 6], folder=tmp_path / "curve")
    with pytest.raises(KeyboardInterrupt):
        train_target_embeddings(copy.deepcopy(mini), ru_tok, texts[1], tmp_path / "ckpt", callbacks=[first, StopAfter(3)], **run)
    assert sorted(p.name for p in (tmp_path / "curve").iterdir()) == ["step-0.safetensors", "step-2.safetensors"]
    # What a session stopped mid-write leaves: a checkpoint without its state (written last), and a snapshot's
    # hidden temporary file from a process that is gone. The resume passes over the first and removes the second.
    (tmp_path / "ckpt" / "checkpoint-6").mkdir()
    (tmp_path / "ckpt" / "checkpoint-6" / "model.safetensors").write_bytes(b"cut off")
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)
    (tmp_path / "curve" / f".step-4.safetensors.tmp-{gone}-0a1b2c3d").write_bytes(b"cut off")
    resumed = LearningCurve(steps=[2, 4, 6], folder=tmp_path / "curve")
    assert sorted(resumed.taken) == [0, 2]
    pack = train_target_embeddings(copy.deepcopy(mini), ru_tok, texts[1], tmp_path / "ckpt", callbacks=[resumed],
                                   resume_from_checkpoint=True, **run)
    packs, reference = resumed.packs(pack), whole.packs(pack)
    assert [p.metadata["train_steps"] for p in packs] == [0, 2, 4, 6]
    for got, want in zip(packs, reference):
        assert torch.allclose(got.embeddings, want.embeddings, atol=1e-6), got.metadata["train_steps"]
        assert (got.metadata["train_tokens"], got.metadata["train_flops"]) == (want.metadata["train_tokens"], want.metadata["train_flops"])
    seconds = [p.metadata["train_seconds"] for p in packs]
    assert seconds[1] == round(first.taken[2]["seconds"], 3)  # read back from the folder
    at_stop = json.loads((tmp_path / "ckpt" / "checkpoint-3" / LearningCurve.CLOCK).read_text())["seconds"]
    assert seconds[1] < at_stop < seconds[2] < seconds[3]  # counted on from step 3's checkpoint, not from the resume
    assert sorted(p.name for p in (tmp_path / "curve").iterdir()) == [f"step-{n}.safetensors" for n in (0, 2, 4, 6)]
    with pytest.raises(ValueError, match=r"resuming at step 6, the learning curve has no snapshots for its steps \[2, 6\]"):
        train_target_embeddings(copy.deepcopy(mini), ru_tok, texts[1], tmp_path / "ckpt", callbacks=[LearningCurve(steps=[2, 6])],
                                resume_from_checkpoint=True, **run)  # a curve without the stopped run's folder


def test_learning_curve_steps_beyond_the_run_are_refused(source, tokenizers, texts, tmp_path):
    en_tok, ru_tok = tokenizers
    curve = LearningCurve(steps=[2, 9])
    pack = train_target_embeddings(MiniModelAdapter(source).export_mini_model(), ru_tok, texts[1], tmp_path,
                                   source_tokenizer=en_tok, max_steps=2, callbacks=[curve], **FAST)
    with pytest.raises(ValueError, match=r"\[9\]"):
        curve.packs(pack)
    with pytest.raises(ValueError, match="at least 0"):
        LearningCurve(steps=[-1, 3])
    assert LearningCurve(steps=[3]).steps == LearningCurve(steps=[0, 3]).steps == [0, 3]


def test_continued_step1_can_keep_the_pretrained_vocabulary(tokenizers, texts, tmp_path):
    en_tok, _ = tokenizers
    torch.manual_seed(0)
    model = XLMRobertaForDualMLM(MiniModelConfig(vocab_size=len(en_tok), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                                 intermediate_size=64, max_position_embeddings=40, mini_num_layers=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pretrain_mlm(model, en_tok, texts[0], tmp_path, max_steps=2, learning_rate=1e-2, train_word_embeddings=False, **FAST)
    after = model.state_dict()
    assert torch.equal(after["roberta.embeddings.word_embeddings.weight"], before["roberta.embeddings.word_embeddings.weight"])
    for name in ("roberta.encoder.layer.0.attention.self.query.weight", "lm_head.dense.weight", "mini_lm_head.dense.weight"):
        assert not torch.equal(after[name], before[name]), name


def test_merged_model_works_with_the_fill_mask_pipeline_and_its_card_reports_the_measured_loss(source, tokenizers, texts, tmp_path):
    from huggingface_hub import ModelCard
    from transformers import pipeline

    from hf_minimodel.merge import save_merged_model

    en_tok, ru_tok = tokenizers
    adapter = MiniModelAdapter(source)
    pack = adapter.train_embeddings(ru_tok, texts[1], tmp_path / "ckpt", source_tokenizer=en_tok, language="ru",
                                    base_model="FacebookAI/xlm-roberta-base", max_steps=1, learning_rate=1e-2, **FAST)
    assert pack.metadata["train_device"] == f"CPU ({torch.get_num_threads()} threads)"
    assert pack.metadata["license"] is None  # the base model's card is not on this machine: not guessed
    merged = adapter.merge(pack)
    loss = heldout_mlm_loss(merged, ru_tok, texts[2], max_seq_length=32)
    pack.add_evaluation("fill-mask", "bible", "loss", loss, split="test", language="ru", name="held-out MLM loss")
    folder = save_merged_model(merged, ru_tok, tmp_path / "merged", pack=pack, license="mit")

    fill_mask = pipeline("fill-mask", model=str(folder))  # stock transformers, the folder's own files only
    predictions = fill_mask(f"В начале {fill_mask.tokenizer.mask_token} Бог", top_k=3)
    assert len(predictions) == 3 and all(p["token"] < len(ru_tok) for p in predictions)

    card = ModelCard((folder / "README.md").read_text())
    assert card.data.license == "mit" and card.data.base_model == "FacebookAI/xlm-roberta-base"
    assert card.data.language == ["ru"] and card.data.library_name == "transformers" and card.data.pipeline_tag == "fill-mask"
    [result] = card.data.eval_results
    assert (result.task_type, result.metric_type) == ("fill-mask", "loss") and result.metric_value == pytest.approx(loss, rel=1e-5)
    assert 'pip install "transformers>=5"' in card.text and 'pipeline("fill-mask", model="merged")' in card.text
    assert "| Training steps | 1 |" in card.text and "| Training device | CPU (" in card.text


def test_the_standard_approach_trains_in_the_mixed_precision_asked_for(tokenizers, texts, tmp_path):
    """A stock masked LM (the standard approach) runs through labelled_mlm_loss, not its forward: bf16=True must still
    reach its layers (on an H100 it once ran in fp32, 8x slower than MiniJoint instead of 3x)."""
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    en_tok, ru_tok = tokenizers
    torch.manual_seed(0)
    stock = XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=len(en_tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                   intermediate_size=64, max_position_embeddings=40))
    dtypes = set()
    stock.roberta.encoder.layer[0].intermediate.dense.register_forward_hook(lambda module, args, out: dtypes.add(out.dtype))
    train_target_embeddings(stock, ru_tok, texts[1], tmp_path, source_tokenizer=en_tok, max_steps=1, learning_rate=1e-2,
                            bf16=True, use_cpu=True, **FAST)
    assert dtypes == {torch.bfloat16}


def test_step1_can_train_the_body_gently_and_the_new_heads_fast(tokenizers, texts, tmp_path):
    """body_learning_rate: the heads move at learning_rate, the body (embeddings, layers) at its own rate; zero-like
    rates keep it where it was."""
    en_tok, _ = tokenizers
    torch.manual_seed(0)
    model = XLMRobertaForDualMLM(MiniModelConfig(vocab_size=len(en_tok), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                                 intermediate_size=64, max_position_embeddings=40, mini_num_layers=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pretrain_mlm(model, en_tok, texts[0], tmp_path, max_steps=3, learning_rate=1e-2, body_learning_rate=1e-12,
                 train_word_embeddings=False, **FAST)
    after = model.state_dict()

    def moved(name):
        return float((after[name] - before[name]).abs().max())

    assert moved("lm_head.dense.weight") > 1e-4 and moved("mini_lm_head.dense.weight") > 1e-4
    assert moved("roberta.encoder.layer.0.attention.self.query.weight") < 1e-9
    assert torch.equal(after["roberta.embeddings.word_embeddings.weight"], before["roberta.embeddings.word_embeddings.weight"])


def test_the_method_is_recorded_when_the_mini_model_is_cut_and_checked_when_stated(source, tokenizers, tmp_path):
    from hf_minimodel.modeling_minimodel import MiniModelForMaskedLM

    _, ru_tok = tokenizers
    mini = MiniModelAdapter(source).export_mini_model()
    assert mini.config.mini_method == "minijoint"
    mini.save_pretrained(tmp_path / "mini")
    loaded = MiniModelForMaskedLM.from_pretrained(tmp_path / "mini")
    assert loaded.config.mini_method == "minijoint"  # a saved mini-model says what it is
    with pytest.raises(ValueError, match=r"method='minipost', but the model given is a minijoint mini-model"):
        train_target_embeddings(loaded, ru_tok, ["text"], tmp_path / "step2", method="minipost")
    with pytest.raises(ValueError, match=r"method='standard', but the model given is a minijoint mini-model"):
        train_target_embeddings(loaded, ru_tok, ["text"], tmp_path / "step2", method="standard")
    with pytest.raises(ValueError, match=r"method='minijoint', but the model given is a full model"):
        train_target_embeddings(source, ru_tok, ["text"], tmp_path / "step2", method="minijoint")
    assert not (tmp_path / "step2").exists()


def test_the_method_is_read_from_the_config_whatever_the_class(source):
    from types import SimpleNamespace

    from hf_minimodel.mini_model import method_of

    mini = MiniModelAdapter(source).export_mini_model()
    # A mini-model loaded as remote code has a class of its own, not this package's: its config still says.
    assert method_of(SimpleNamespace(config=mini.config)) == "minijoint"
    assert method_of(source) == "standard" and method_of(source, "standard") == "standard"
    del mini.config.mini_method  # as saved by hf-minimodel 0.1.0: no record, so a stated method is taken as given
    assert method_of(mini) == "minijoint" and method_of(mini, "minipost") == "minipost"
    with pytest.raises(ValueError, match="method='standard', but the model given is a mini-model"):
        method_of(mini, "standard")


def test_minipost_starts_its_new_layer_and_head_as_copies_of_the_full_models_own(source, tokenizers, texts, tmp_path):
    """new_layers_init="copy": the new layer on top of the k frozen ones starts as the full model's layer k, the head
    as its head (one step at a learning rate of 1e-9 moves nothing measurable); "random" starts both afresh."""
    en_tok, _ = tokenizers
    full = source.roberta.encoder.layer
    copied = MiniModelAdapter(source).build_minipost(en_tok, texts[0], tmp_path / "a", mini_num_layers=1, max_steps=1,
                                                     learning_rate=1e-9, **FAST)
    for name, tensor in full[1].state_dict().items():
        torch.testing.assert_close(copied.roberta.encoder.layer[1].state_dict()[name], tensor, atol=1e-6, rtol=0, msg=name)
    for name, tensor in source.lm_head.state_dict().items():
        torch.testing.assert_close(copied.lm_head.state_dict()[name], tensor, atol=1e-6, rtol=0, msg=name)
    for name, tensor in full[0].state_dict().items():
        assert torch.equal(copied.roberta.encoder.layer[0].state_dict()[name], tensor), name  # frozen: exactly
    fresh = MiniModelAdapter(source).build_minipost(en_tok, texts[0], tmp_path / "b", mini_num_layers=1, max_steps=1,
                                                    learning_rate=1e-9, new_layers_init="random", **FAST)
    assert (fresh.roberta.encoder.layer[1].attention.self.query.weight - full[1].attention.self.query.weight).abs().max() > 1e-2
    assert (fresh.lm_head.dense.weight - source.lm_head.dense.weight).abs().max() > 1e-2
    assert copied.config.base_fingerprint == fresh.config.base_fingerprint == base_fingerprint(source)


def test_a_shared_view_is_made_of_the_full_models_own_modules(source, tokenizers):
    from hf_minimodel.mini_model import cut_mini_model

    config = source.config.for_mini_model(num_new_layers=0)
    view = cut_mini_model(source, config, source.mini_lm_head, share=True)
    assert view.roberta.embeddings is source.roberta.embeddings and view.lm_head is source.mini_lm_head
    assert len(view.roberta.encoder.layer) == config.mini_num_layers == 1
    assert all(mine is theirs for mine, theirs in zip(view.roberta.encoder.layer, source.roberta.encoder.layer))
    assert view.training == source.training and view.config.base_fingerprint == base_fingerprint(source)
    ids = tokenizers[0](["In the beginning God created the heaven"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        states = source.roberta(input_ids=ids, output_hidden_states=True).hidden_states
        assert torch.equal(view.roberta(input_ids=ids).last_hidden_state, states[1])  # the full model's layer-1 states
        torch.testing.assert_close(view(input_ids=ids).logits, source(input_ids=ids, mini_only=True).mini_logits)
    with pytest.raises(ValueError, match="can have no new layers"):
        cut_mini_model(source, source.config.for_mini_model(num_new_layers=1), share=True)


def test_the_checkpoint_to_resume_from_is_the_newest_whole_one(tmp_path):
    """Numbered, not sorted as text (1000 after 900), and only a folder with the Trainer's state, which it writes
    last: the newest folder a stopped session cut off would fail every resume."""
    from hf_minimodel.training import last_whole_checkpoint

    assert last_whole_checkpoint(tmp_path / "none-yet") is None
    for step, whole in ((500, True), (900, True), (1000, True), (1500, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if whole:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-latest").mkdir()
    assert last_whole_checkpoint(tmp_path) == str(tmp_path / "checkpoint-1000")
    (tmp_path / "checkpoint-1000" / "trainer_state.json").unlink()
    assert last_whole_checkpoint(tmp_path) == str(tmp_path / "checkpoint-900")
