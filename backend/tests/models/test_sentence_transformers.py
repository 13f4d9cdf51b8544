"""SentenceTransformerEmbedder on a tiny BERT built and saved here: loaded by path, no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="needs the local extra: pip install '.[local]'")

from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Transformer
from sentence_transformers.sentence_transformer.modules import Pooling
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import BertConfig, BertModel, BertTokenizerFast

from app.core.config import EmbeddingSettings
from app.core.errors import ModelUnavailable
from app.models.base import EmbeddingClient
from app.models.factory import build_embedding_client
from app.models.sentence_transformers import SentenceTransformerEmbedder

CORPUS = [
    "중앙도서관은 평일 오전 9시부터 오후 10시까지 문을 엽니다.",
    "주말에는 오후 5시에 문을 닫습니다.",
    "책은 한 번에 다섯 권까지 2주 동안 빌릴 수 있습니다.",
    "query: passage: The library opens at nine and closes at ten.",
]


def _build(directory: Path) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocabulary trained on ``CORPUS``, mean-pooled."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(
        CORPUS * 5, trainers.WordPieceTrainer(vocab_size=300, special_tokens=special)
    )
    fast = BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    bert_dir = directory / "bert"
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(bert_dir)
    fast.save_pretrained(bert_dir)
    transformer = Transformer(str(bert_dir), max_seq_length=64)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(directory / "st"))
    return directory / "st"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("tiny-encoder"))


def test_loads_by_path_and_normalises(model_dir: Path) -> None:
    embedder = SentenceTransformerEmbedder(str(model_dir), device="cpu", batch_size=2)
    assert isinstance(embedder, EmbeddingClient)
    assert embedder.name == f"sentence-transformers:{model_dir}"
    assert embedder.dimension == 32
    vectors = np.array(embedder.embed_documents(CORPUS[:3]))
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embedder.embed_documents([]) == []
    # Without the e5 prefixes, a query and a passage of the same text are the same vector.
    np.testing.assert_allclose(embedder.embed_query(CORPUS[1]), vectors[1], rtol=1e-5, atol=1e-6)
    embedder.close()


def test_e5_models_get_query_and_passage_prefixes(model_dir: Path, tmp_path: Path) -> None:
    e5_dir = tmp_path / "tiny-multilingual-e5"
    e5_dir.symlink_to(model_dir, target_is_directory=True)
    plain = SentenceTransformer(str(model_dir), device="cpu")
    embedder = SentenceTransformerEmbedder(str(e5_dir), device="cpu")
    text = "The library opens at nine"
    expected_query, expected_passage = plain.encode(
        [f"query: {text}", f"passage: {text}"], normalize_embeddings=True
    )
    np.testing.assert_allclose(embedder.embed_query(text), expected_query, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        embedder.embed_documents([text])[0], expected_passage, rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(expected_query, expected_passage)


def test_missing_model_is_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="EMBEDDING_MODEL"):
        SentenceTransformerEmbedder(str(tmp_path / "no-such-model"), device="cpu")


def test_factory_builds_it_from_settings(model_dir: Path) -> None:
    settings = EmbeddingSettings(
        provider="sentence-transformers", model=str(model_dir), device="cpu", batch_size=4
    )
    embedder = build_embedding_client(settings)
    assert isinstance(embedder, SentenceTransformerEmbedder) and embedder.dimension == 32
