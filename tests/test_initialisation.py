"""Step 2's start (hf_minimodel.initialisation, hf_minimodel.focus) on tiny models: which row each init sets, and to
what; and the per-row rate of `start_rows_learning_rate`."""

import json

import pytest
import torch
from transformers import BertTokenizerFast, XLMRobertaConfig, XLMRobertaForMaskedLM

from hf_minimodel import InputError
from hf_minimodel.focus import focus_rows, sparsemax
from hf_minimodel.initialisation import (
    INITS,
    MIN_ROWS_PER_SCRIPT,
    composable_tokens,
    initial_target_embeddings,
    script_of,
    shared_tokens,
)
from hf_minimodel.sample import read_sample
from hf_minimodel.target_embeddings import train_target_embeddings
from hf_minimodel.tokenizer import _pipeline, train_target_tokenizer, xlmr_special_tokens


@pytest.fixture(scope="module")
def texts():
    return read_sample("en-kjv.train")[:600], read_sample("fr-segond.train")[:600]


@pytest.fixture(scope="module")
def tokenizers(texts):
    en, fr = texts
    return (train_target_tokenizer(en, vocab_size=400, show_progress=False),
            train_target_tokenizer(fr, vocab_size=300, show_progress=False))


@pytest.fixture(scope="module")
def source(tokenizers):
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=len(tokenizers[0]), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=40)
    model = XLMRobertaForMaskedLM(config).eval()
    with torch.no_grad():  # rows and biases far from zero, so that a copy or a mean is told apart from a draw
        model.get_input_embeddings().weight.normal_(0.5, 0.1)
        model.lm_head.bias.uniform_(-3, 3)
    return model


def test_compose_gives_a_token_the_mean_of_its_pieces_rows_and_biases(source, tokenizers):
    en_tok, fr_tok = tokenizers
    start = initial_target_embeddings(source, fr_tok, en_tok, "compose")
    rows, bias = source.get_input_embeddings().weight.detach(), source.lm_head.bias.detach()
    spelled = composable_tokens(fr_tok, en_tok, len(en_tok), skip=start.copied_from)
    assert len(spelled) > 50 and start.report.rows["composed"] == len(spelled)
    several = [(i, pieces) for i, pieces in spelled.items() if len(pieces) > 1]
    assert several  # French words the English vocabulary spells in several pieces
    for i, pieces in several[:20]:
        torch.testing.assert_close(start.embeddings[i], rows[pieces].mean(0))
        torch.testing.assert_close(start.output_bias[i], bias[pieces].mean())
        assert start.origin[i] == "composed"
    # Shared tokens stay copied, not composed.
    for i, j in start.copied_from.items():
        assert torch.equal(start.embeddings[i], rows[j]) and start.origin[i] == "copied"


def test_compose_spells_word_starts_as_words_and_continuations_by_continuing_pieces(tokenizers):
    en_tok, fr_tok = tokenizers
    spelled = composable_tokens(fr_tok, en_tok, len(en_tok))
    vocab, inverse = fr_tok.get_vocab(), {i: t for t, i in en_tok.get_vocab().items()}
    for token, i in vocab.items():
        if i in spelled:
            pieces = [inverse[j] for j in spelled[i]]
            assert "".join(p.lstrip("▁") for p in pieces) == token.lstrip("▁")
            assert pieces[0].startswith("▁") == token.startswith("▁")  # word start to word start
            assert not any(p.startswith("▁") for p in pieces[1:])


def test_compose_reads_a_wordpiece_source_through_its_normaliser():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "mais", "##on", "ma", "##is", "la"]
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    backend = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece = BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁Maison", "▁la", "is", "on", "▁zz", "<mask>"]
    target = xlmr_special_tokens(_pipeline(Tokenizer(models.Unigram([(p, -1.0) for p in pieces], unk_id=3))))
    spelled = composable_tokens(target, wordpiece, len(vocab))
    # Upper case at a word start: lower-cased by the source's normaliser, then spelled as the source spells "maison";
    # a continuation by continuing pieces; a word the source cannot spell without [UNK] is left out.
    assert spelled == {4: [5, 6], 5: [9], 6: [8], 7: [6]}
    # Special tokens pair by role, not by string.
    shared = shared_tokens(target, wordpiece, len(vocab))
    assert shared[target.pad_token_id] == 0 and shared[target.cls_token_id] == 2 and shared[target.sep_token_id] == 3
    assert shared[target.mask_token_id] == 4 and shared[target.unk_token_id] == 1


def test_random_draws_at_the_source_statistics_and_random_paper_at_the_config_range(source, tokenizers):
    en_tok, fr_tok = tokenizers
    rows = source.get_input_embeddings().weight.detach()
    drawn = initial_target_embeddings(source, fr_tok, None, "random", seed=1)
    assert drawn.report.rows == {"copied": 0, "composed": 0, "similar": 0, "mean": 0, "random": len(fr_tok)}
    assert drawn.embeddings.mean().item() == pytest.approx(rows.mean().item(), abs=0.02)
    assert drawn.embeddings.std().item() == pytest.approx(rows.std().item(), rel=0.15)
    assert torch.all(drawn.output_bias == source.lm_head.bias.mean())
    paper = initial_target_embeddings(source, fr_tok, None, "random-paper", seed=1)
    assert paper.embeddings.mean().abs() < 0.01 and not paper.output_bias.any()
    assert paper.embeddings.std().item() == pytest.approx(source.config.initializer_range, rel=0.15)
    again = initial_target_embeddings(source, fr_tok, None, "random", seed=1)
    assert torch.equal(again.embeddings, drawn.embeddings)
    at_mean = initial_target_embeddings(source, fr_tok, None, "random", noise=0.0)  # no spread: every row the mean
    torch.testing.assert_close(at_mean.embeddings, rows.mean(0).expand(len(fr_tok), -1))


def test_mean_starts_every_row_at_the_mean_and_the_other_inits_leave_the_rest_there(source, tokenizers):
    en_tok, fr_tok = tokenizers
    rows = source.get_input_embeddings().weight.detach()
    mean = initial_target_embeddings(source, fr_tok, None, "mean", seed=1)
    torch.testing.assert_close(mean.embeddings, rows.mean(0).expand(len(fr_tok), -1))
    assert mean.report.rows["mean"] == len(fr_tok) and torch.all(mean.output_bias == source.lm_head.bias.mean())
    overlap = initial_target_embeddings(source, fr_tok, en_tok, "overlap", seed=1)
    rest = overlap.rows("mean")
    assert rest and overlap.rows("copied") and not overlap.rows("random")
    vocab = fr_tok.convert_ids_to_tokens(rest)
    latin = [i for i, token in zip(rest, vocab) if script_of(token) == "LATIN"]
    source_latin = [j for token, j in en_tok.get_vocab().items() if script_of(token) == "LATIN" and j < len(rows)]
    assert latin and len(source_latin) >= MIN_ROWS_PER_SCRIPT  # the Latin rows start at the Latin source rows' mean
    torch.testing.assert_close(overlap.embeddings[latin], rows[source_latin].mean(0).expand(len(latin), -1))
    assert len(torch.unique(overlap.embeddings[rest], dim=0)) <= len({script_of(token) for token in vocab})
    drawn = initial_target_embeddings(source, fr_tok, en_tok, "overlap", seed=1, noise=1.0)  # the old start, asked for
    assert drawn.rows("random") == rest and not torch.allclose(drawn.embeddings[rest], overlap.embeddings[rest])
    assert (mean.report.noise, overlap.report.noise, drawn.report.noise) == (0.0, 0.0, 1.0)
    paper = initial_target_embeddings(source, fr_tok, None, "random-paper", noise=0.0)  # its own draw, always
    assert paper.report.rows["random"] == len(fr_tok) and paper.report.noise is None
    assert initial_target_embeddings(source, fr_tok, None, "random", noise=0.0).report.rows["mean"] == len(fr_tok)


def test_random_rows_take_their_scripts_statistics_where_the_source_has_that_script(tokenizers):
    en_tok, _ = tokenizers
    ru_tok = train_target_tokenizer(read_sample("ru-synodal.train")[:300], vocab_size=200, show_progress=False)
    both = train_target_tokenizer(read_sample("en-kjv.train")[:300] + read_sample("ru-synodal.train")[:300],
                                  vocab_size=600, show_progress=False)
    config = XLMRobertaConfig(vocab_size=len(both), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=16, max_position_embeddings=40)
    model = XLMRobertaForMaskedLM(config)
    cyrillic = [i for t, i in both.get_vocab().items() if script_of(t) == "CYRILLIC"]
    assert len(cyrillic) >= 100
    with torch.no_grad():
        model.get_input_embeddings().weight.zero_()
        model.get_input_embeddings().weight[cyrillic] = 5.0  # Cyrillic rows live far from the others
    start = initial_target_embeddings(model, ru_tok, both, "random")
    ru_cyrillic = [i for t, i in ru_tok.get_vocab().items() if script_of(t) == "CYRILLIC"]
    ru_other = [i for t, i in ru_tok.get_vocab().items() if script_of(t) == "COMMON"]
    assert start.embeddings[ru_cyrillic].mean() == pytest.approx(5.0, abs=1e-4)
    assert start.embeddings[ru_other].mean() < 4.0  # all rows' statistics: no script of its own


def test_sparsemax_weights_are_sparse_and_sum_to_one():
    scores = torch.tensor([[0.9, 0.85, 0.1, -0.5], [0.2, 0.2, 0.2, 0.2], [3.0, 0.0, 0.0, 0.0]])
    weights = sparsemax(scores)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert (weights >= 0).all()
    assert weights[0, 2] == 0 and weights[0, 3] == 0 and weights[0, 0] > weights[0, 1] > 0
    torch.testing.assert_close(weights[1], torch.full((4,), 0.25))
    torch.testing.assert_close(weights[2], torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_focus_mixes_copied_rows_with_weights_that_sum_to_one(source, tokenizers, texts):
    pytest.importorskip("gensim")
    en_tok, fr_tok = tokenizers
    start = initial_target_embeddings(source, fr_tok, en_tok, "focus", corpus=texts[1])
    mixes = focus_rows(fr_tok, start.copied_from, texts[1], seed=0)
    rows, bias = source.get_input_embeddings().weight.detach(), source.lm_head.bias.detach()
    assert mixes and start.report.rows["similar"] == len(mixes)
    for i, (source_rows, weights) in list(mixes.items())[:20]:
        assert weights.sum().item() == pytest.approx(1.0, abs=1e-5) and (weights > 0).all()
        assert set(source_rows.tolist()) <= set(start.copied_from.values())
        torch.testing.assert_close(start.embeddings[i], weights @ rows[source_rows])
        torch.testing.assert_close(start.output_bias[i], weights @ bias[source_rows])
    for i, j in start.copied_from.items():
        assert torch.equal(start.embeddings[i], rows[j])


def test_focus_compose_keeps_focus_rows_and_composes_only_what_focus_left(source, tokenizers, texts):
    pytest.importorskip("gensim")
    en_tok, fr_tok = tokenizers
    focus = initial_target_embeddings(source, fr_tok, en_tok, "focus", corpus=texts[1])
    compose = initial_target_embeddings(source, fr_tok, en_tok, "compose")
    both = initial_target_embeddings(source, fr_tok, en_tok, "focus-compose", corpus=texts[1])
    assert focus.rows("similar") and focus.rows("mean")  # the fixture leaves FOCUS rows both to mix and to leave
    assert both.rows("copied") == focus.rows("copied") and both.rows("similar") == focus.rows("similar")
    for i in focus.rows("copied", "similar"):  # FOCUS's rows win where it has a vector
        assert torch.equal(both.embeddings[i], focus.embeddings[i]) and both.output_bias[i] == focus.output_bias[i]
    left = set(focus.rows("mean"))
    composed = both.rows("composed")
    assert composed and set(composed) == left & set(compose.rows("composed"))
    for i in composed:  # the rest as compose would set them: its pieces' mean
        assert torch.equal(both.embeddings[i], compose.embeddings[i])
    assert set(both.rows("mean")) == left - set(composed)


def test_inits_that_read_the_source_vocabulary_ask_for_it(source, tokenizers):
    for init in ("overlap", "compose", "focus", "focus-compose", "anchored"):
        with pytest.raises(InputError, match="source_tokenizer"):
            initial_target_embeddings(source, tokenizers[1], None, init)
    with pytest.raises(InputError, match="not one of"):
        initial_target_embeddings(source, tokenizers[1], tokenizers[0], "fvt")
    assert "compose" in INITS and "focus" in INITS and "focus-compose" in INITS


def test_the_pack_records_the_init_report(source, tokenizers, texts, tmp_path):
    en_tok, fr_tok = tokenizers
    pack = train_target_embeddings(source, fr_tok, texts[1], tmp_path, source_tokenizer=en_tok, init="compose",
                                   max_steps=1, batch_size=2, max_seq_length=16, disable_tqdm=True)
    report = pack.metadata["init_report"]
    assert report["init"] == "compose" and sum(report["rows"].values()) == len(fr_tok)
    assert report["rows"]["composed"] > 0 and pack.metadata["init_rows_copied"] == report["rows"]["copied"]
    pack.save_pretrained(tmp_path / "pack")
    from hf_minimodel import LanguagePack

    assert LanguagePack.from_pretrained(tmp_path / "pack").metadata["init_report"] == report


def test_rows_from_the_source_train_at_their_own_rate(source, tokenizers, texts, tmp_path):
    en_tok, fr_tok = tokenizers
    begin = initial_target_embeddings(source, fr_tok, en_tok, "compose")
    from_source = begin.rows("copied", "composed")
    new_rows = begin.rows("mean")
    assert from_source and new_rows
    kwargs = dict(source_tokenizer=en_tok, init="compose", max_steps=4, learning_rate=1e-2, batch_size=4,
                  max_seq_length=16, disable_tqdm=True, warmup_ratio=0.0)
    same = train_target_embeddings(source, fr_tok, texts[1], tmp_path / "a", **kwargs)
    slow = train_target_embeddings(source, fr_tok, texts[1], tmp_path / "b", start_rows_learning_rate=1e-3, **kwargs)
    frozen_like = train_target_embeddings(source, fr_tok, texts[1], tmp_path / "c", start_rows_learning_rate=1e-9, **kwargs)
    moved = lambda pack, rows: (pack.embeddings[rows] - begin.embeddings[rows]).abs().sum(-1)
    # At a tenth of the rate, the rows from the source move less (Adam: about a tenth); the new rows alike.
    assert moved(slow, from_source).sum() < 0.3 * moved(same, from_source).sum()
    assert moved(frozen_like, from_source).max() < 1e-6
    assert moved(frozen_like, new_rows).sum() > 0
    assert same.metadata["init_noise"] == 0.0 and same.metadata["init_report"]["noise"] == 0.0  # the spread used
    torch.testing.assert_close(frozen_like.output_bias[from_source], begin.output_bias[from_source], atol=1e-6, rtol=0)


def test_compare_inits_measures_each_start_without_training(source, tokenizers, texts):
    from hf_minimodel.target_embeddings import compare_inits

    en_tok, fr_tok = tokenizers
    before = {k: v.clone() for k, v in source.state_dict().items()}
    reports = compare_inits(source, fr_tok, texts[1][-40:], source_tokenizer=en_tok, max_seq_length=16,
                            retrieval=lambda pack: float(pack.metadata["init"] == "compose"))
    assert [r.init for r in reports] == ["random-paper", "random", "mean", "overlap", "compose"]
    for report in reports:
        assert report.step0["heldout_mlm_loss"] > 0 and report.step0["retrieval_at_1"] == (report.init == "compose")
    assert all(torch.equal(v, before[k]) for k, v in source.state_dict().items())  # the model is left as it was
    assert [r.init for r in compare_inits(source, fr_tok, texts[1][-40:], max_seq_length=16)] == ["random-paper", "random", "mean"]


def test_the_cli_prints_and_writes_each_inits_report(source, tokenizers, texts, tmp_path, capsys):
    from hf_minimodel.cli import main

    en_tok, fr_tok = tokenizers
    source.save_pretrained(tmp_path / "model")
    en_tok.save_pretrained(tmp_path / "model")
    fr_tok.save_pretrained(tmp_path / "fr-tok")
    (tmp_path / "heldout.txt").write_text("\n".join(texts[1][-40:]) + "\n", encoding="utf-8")
    argv = ["inits", "--model", str(tmp_path / "model"), "--tokenizer", str(tmp_path / "fr-tok"), "--heldout",
            str(tmp_path / "heldout.txt"), "--inits", "random", "compose", "--max-seq-length", "16", "--output",
            str(tmp_path / "inits.json")]
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("init ")]
    assert len(lines) == 2 and lines[1].startswith("init compose:") and "composed" in lines[1]
    saved = json.loads((tmp_path / "inits.json").read_text())
    assert [r["init"] for r in saved] == ["random", "compose"] and saved[0]["step0"]["heldout_mlm_loss"] > 0


def test_focus_without_gensim_or_without_text_says_what_to_do(source, tokenizers, texts, gensim_fails):
    en_tok, fr_tok = tokenizers
    with pytest.raises(InputError, match="pass corpus="):
        initial_target_embeddings(source, fr_tok, en_tok, "focus")
    gensim_fails(ImportError("no gensim here"))
    with pytest.raises(InputError, match=r'pip install "hf-minimodel\[focus\]"'):
        initial_target_embeddings(source, fr_tok, en_tok, "focus", corpus=texts[1])

    # installed, but built against another numpy
    gensim_fails(ValueError("numpy.dtype size changed, may indicate binary incompatibility.\nExpected 96 from C header"))
    with pytest.raises(InputError) as refused:
        initial_target_embeddings(source, fr_tok, en_tok, "focus-compose", corpus=texts[1])
    message = str(refused.value)
    assert "installed but does not import" in message and "numpy.dtype size changed" in message
    assert "Expected 96" not in message and "\n" not in message and 'use init="compose"' in message
