"""FOCUS (Dobler & de Melo, 2023): a new token starts as a mix of the rows the init copied, weighted by likeness.

The likeness comes from fastText vectors of the target tokens, trained on the target text as the target tokenizer
cuts it (FOCUS's "token-level" mode, no download): for each new token, its cosine similarity to every copied token,
made sparse by sparsemax (a few weights, summing to 1), mixes the copied tokens' source rows. Tokens too rare to get
a fastText vector (fewer than `min_count` occurrences) are left to the next rule (`initialisation`).

Why not the `deepfocus` package itself: it builds Facebook's `fasttext` from source (archived in 2024, no wheels for
Python 3.11; a compiler and minutes per install) and pulls numba, fastdist and print-on-steroids, for what is ~40
lines here. The fastText model here is gensim's (maintained, wheels for every platform), an optional extra:
`pip install "hf-minimodel[focus]"`. The defaults are deepfocus's (dim 100, 3 epochs, min_count 10, skip-gram).
"""

from __future__ import annotations

import torch

from .checks import InputError, fix


def sparsemax(scores: torch.Tensor) -> torch.Tensor:
    """Sparsemax (Martins & Astudillo, 2016) over the last dimension: the Euclidean projection of `scores` onto the
    probability simplex. Like softmax the weights sum to 1; unlike it, all but the highest scores get exactly 0."""
    ordered, _ = scores.sort(dim=-1, descending=True)
    ks = torch.arange(1, scores.shape[-1] + 1, dtype=scores.dtype, device=scores.device)
    cumulative = ordered.cumsum(-1)
    support = (1 + ks * ordered > cumulative).to(scores.dtype)
    k = support.sum(-1, keepdim=True)
    tau = (cumulative.gather(-1, k.long() - 1) - 1) / k
    return (scores - tau).clamp(min=0)


class _TokenizedCorpus:
    """The corpus as lists of target tokens, read again on every pass (gensim iterates once per epoch), in batches:
    never the whole corpus in memory as tokens."""

    def __init__(self, tokenizer, corpus):
        self.tokenizer, self.corpus = tokenizer, corpus

    def _texts(self):
        if hasattr(self.corpus, "iter") and hasattr(self.corpus, "column_names"):
            for batch in self.corpus.iter(batch_size=1000):
                yield from batch["text"]
        else:
            yield from self.corpus

    def __iter__(self):
        batch = []
        for text in self._texts():
            batch.append(text)
            if len(batch) == 1000:
                yield from self._tokens(batch)
                batch = []
        if batch:
            yield from self._tokens(batch)

    def _tokens(self, texts):
        for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]:
            if ids:
                yield self.tokenizer.convert_ids_to_tokens(ids)


def require_gensim():
    """gensim's FastText class, or the one-line error that names the extra to install (recipes ask before their
    long steps, so a missing extra is not found after them)."""
    try:
        from gensim.models import FastText
    except ImportError:
        raise InputError('init="focus" and "focus-compose" train fastText vectors with gensim, which is not '
                         'installed: pip install "hf-minimodel[focus]" (or pip install gensim), or ' + fix('use init="compose"', "use --init compose")) from None
    except Exception as error:  # installed but broken, e.g. built against another numpy
        reason = f"{type(error).__name__}: {str(error).splitlines()[0]}" if str(error) else type(error).__name__
        raise InputError(f'init="focus" and "focus-compose" need gensim, which is installed but does not import '
                         f'({reason}): pip install --upgrade "hf-minimodel[focus]", or '
                         + fix('use init="compose"', "use --init compose")) from None
    return FastText


def token_vectors(tokenizer, corpus, *, dim: int = 100, epochs: int = 3, min_count: int = 10, seed: int = 0) -> dict:
    """fastText (skip-gram with character n-grams) vectors of the target tokens, trained on `corpus` cut by
    `tokenizer`: target row -> vector, for the tokens seen at least `min_count` times."""
    FastText = require_gensim()  # noqa: N806 (a class)
    if corpus is None:
        raise InputError('init="focus" and "focus-compose" train fastText vectors on the target text: ' + fix(
            'pass corpus= (train_target_embeddings passes its train_data), or use init="compose"', "pass --train"))
    sentences = _TokenizedCorpus(tokenizer, corpus)
    # One worker: gensim's threads make the result depend on scheduling, and the seed is meant to pin it.
    model = FastText(vector_size=dim, sg=1, min_count=min_count, seed=seed, workers=1)
    model.build_vocab(corpus_iterable=sentences)
    if not len(model.wv):
        raise InputError(f'init="focus" and "focus-compose": no target token occurs {min_count} times in the corpus: '
                         'pass more text, or ' + fix('use init="compose"', "use --init compose"))
    model.train(corpus_iterable=sentences, total_examples=model.corpus_count, epochs=epochs)
    vocab = tokenizer.get_vocab()
    return {vocab[token]: torch.from_numpy(model.wv.get_vector(token).copy()) for token in model.wv.key_to_index}


def focus_rows(target_tokenizer, copied: dict, corpus, *, seed: int = 0, **fasttext_options) -> dict:
    """FOCUS's weights: target row -> (source rows, weights summing to 1) for every target token that was not
    copied and has a fastText vector, over the copied tokens that have one (`copied`: target row -> source row)."""
    vectors = token_vectors(target_tokenizer, corpus, seed=seed, **fasttext_options)
    basis = [i for i in sorted(copied) if i in vectors]
    new = [i for i in sorted(vectors) if i not in copied]
    if not basis or not new:
        return {}
    anchors = torch.nn.functional.normalize(torch.stack([vectors[i] for i in basis]), dim=-1)
    queries = torch.nn.functional.normalize(torch.stack([vectors[i] for i in new]), dim=-1)
    weights = sparsemax(queries @ anchors.T)
    source_rows = torch.tensor([copied[i] for i in basis])
    mixes = {}
    for row, w in zip(new, weights):
        keep = w > 0
        mixes[row] = (source_rows[keep], w[keep])
    return mixes
