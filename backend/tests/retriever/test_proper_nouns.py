"""Names, product codes and loanwords Kiwi does not know, found again when a particle follows them.

Kiwi reads such a word by context: 박시우 whole in ``박시우는 주말마다 등산을 한다`` but 박/시/우
in ``박시우의 취미는?``. Search tokens add the eojeol without its particles, so both sides meet.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.core.config import RetrievalSettings
from app.models.hash import HashEmbedder
from app.retriever.hybrid import HybridRetriever
from app.retriever.indexer import Indexer
from app.retriever.vector_store import ChunkRow, PGVectorStore
from app.text.korean import analyse, search_tokens
from tests.conftest import StoreFactory, drop_schema, new_schema_name
from tests.utils.documents import korquad_paragraphs

# ----------------------------------------------------------------------------- search tokens


@pytest.mark.parametrize("particle", ["의", "에게", "와", "도", "께서", "로"])
def test_a_split_name_keeps_its_whole_form_before_its_pieces(particle: str) -> None:
    # Before these particles, in this question, Kiwi splits the name; the stem is the name alone.
    assert search_tokens(f"박시우{particle} 취미는?") == ["박시우", "박", "시", "우", "취미"]


def test_a_name_kiwi_reads_whole_gives_it_once() -> None:
    assert search_tokens("박시우는 주말마다 등산을 한다.") == ["박시우", "주말", "등산", "하"]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # A product code: the hyphen stays inside, the particle goes; its pieces follow.
        ("QX-12B의 배터리는?", ["qx-12b", "qx", "12", "b", "배터리"]),
        ("(XR-7700)과 비교하면", ["xr-7700", "xr", "7700", "비교"]),
        # Loanwords and names of firms that Kiwi splits.
        ("메타렌즈의 두께는?", ["메타렌즈", "메타", "렌즈", "두께"]),
        ("하람솔루션에서 만드는 제품은?", ["하람솔루션", "하람", "솔루션", "제품"]),
        # A noun compound before the copula.
        ("가상자산이다.", ["가상자산", "가상", "자산"]),
        ("가상자산이라는 말", ["가상자산", "가상", "자산", "말"]),
        # Quotes end the eojeol: the name inside is one morpheme, given once.
        ('"박시우"의 취미는?', ["박시우", "취미"]),
    ],
)
def test_stems_leave_out_particles_copulas_and_punctuation(text: str, tokens: list[str]) -> None:
    assert search_tokens(text) == tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # Verbs: their stems are the morphemes already (연락, 설립), no eojeol stem.
        ("연락했다", ["연락"]),
        ("설립되었다.", ["설립"]),
        ("읽고 썼다", ["읽", "쓰"]),
        # Dependent nouns (시, 년) end no stem: 9 and 2020 are the tokens.
        ("오전 9시에 문을 엽니다", ["오전", "9", "문", "열"]),
        ("2020년에", ["2020"]),
        # One morpheme before the particle: the morpheme is the stem, given once.
        ("취미는", ["취미"]),
        ("", []),
    ],
)
def test_no_stem_where_it_would_repeat_or_widen_a_morpheme(text: str, tokens: list[str]) -> None:
    assert search_tokens(text) == tokens


def test_one_analysis_gives_the_stems_at_their_place() -> None:
    text = "첫 문장은 짧다.\n\n둘째 문단에서 박시우의 취미는 등산이다. 메타렌즈의 두께는 얇다."
    analysis = analyse(text)
    assert analysis.token_starts == sorted(analysis.token_starts)
    assert analysis.tokens == search_tokens(text)
    second = text.index("박시우")
    assert analysis.token_starts[analysis.tokens.index("박시우")] == second
    assert analysis.token_starts[analysis.tokens.index("메타렌즈")] == text.index("메타렌즈")
    start, end = analysis.sentences[1]
    assert text[start:end] == "둘째 문단에서 박시우의 취미는 등산이다."
    assert "박시우" in analysis.tokens_in(start, end)
    assert "박시우" not in analysis.tokens_in(*analysis.sentences[0])


# ----------------------------------------------------------------------------- through the store

DIM = 128
# Made-up facts, each in its own file, among real KorQuAD paragraphs.
FACTS = {
    "박시우.txt": "박시우는 주말마다 등산을 한다. 지난달에는 지리산 천왕봉에 올랐다.",
    "크립토펑크.txt": "크립토펑크는 이더리움에서 발행된 초기 대체 불가능 토큰 모음이다.",
    "측정기.txt": "QX-12B는 무게가 삼백 그램인 휴대용 측정기로, 배터리는 열두 시간 간다.",
    # Every piece of the code, scattered, in a shorter passage.
    "시리즈.txt": "QX 시리즈 12종 가운데 B형만 단종되었다.",
    # Split on both sides alike: the stem adds to the pieces, which match anyway.
    "하람.txt": "하람솔루션은 대전에 본사를 둔 물류 소프트웨어 회사다.",
}


@pytest.fixture(scope="module")
def embedder() -> HashEmbedder:
    return HashEmbedder(DIM)


@pytest.fixture(scope="module")
def store(pg_url: str, embedder: HashEmbedder) -> Iterator[PGVectorStore]:
    schema = new_schema_name("names")
    store = PGVectorStore(pg_url, dimension=DIM, embedder_name=embedder.name, schema=schema)
    store.open()
    indexer = Indexer(store, embedder, RetrievalSettings())
    for number, (context, _) in enumerate(korquad_paragraphs(40)):
        indexer.ingest_bytes(f"korquad-{number}.txt", context.encode())
    for name, text in FACTS.items():
        indexer.ingest_bytes(name, text.encode())
    yield store
    store.close()
    drop_schema(pg_url, schema)


@pytest.fixture(scope="module")
def retriever(store: PGVectorStore, embedder: HashEmbedder) -> HybridRetriever:
    return HybridRetriever(store, embedder, RetrievalSettings())


QUESTIONS = [
    ("박시우의 취미는?", "박시우.txt"),
    ("박시우에게 어울리는 운동은?", "박시우.txt"),
    ("박시우도 산을 좋아하나?", "박시우.txt"),
    ("박시우께서 오른 산은?", "박시우.txt"),
    ("크립토펑크의 특징은?", "크립토펑크.txt"),
    ("QX-12B에 대해 알려줘", "측정기.txt"),
    ("하람솔루션의 본사는?", "하람.txt"),
]


@pytest.mark.parametrize("mode", ["sparse", "hybrid"])
@pytest.mark.parametrize(("question", "source"), QUESTIONS)
def test_the_passage_naming_it_comes_first(
    retriever: HybridRetriever, mode: str, question: str, source: str
) -> None:
    hits = retriever.search(question, top_k=3, mode=mode)  # type: ignore[arg-type]
    assert hits, question
    assert hits[0].metadata["source"] == source


def test_the_query_stem_is_what_finds_it(store: PGVectorStore) -> None:
    # Without the stem, the question's pieces of the name meet nothing of the passage.
    pieces = [t for t in search_tokens("박시우의 취미는?") if t != "박시우"]
    assert "박시우.txt" not in {h.metadata["source"] for h in store.search_sparse(pieces, k=10)}
    [best] = store.search_sparse(["박시우"], k=1)
    assert best.metadata["source"] == "박시우.txt"


def test_chunks_stored_before_stems_are_still_found_by_their_pieces(
    store_factory: StoreFactory, embedder: HashEmbedder
) -> None:
    old = store_factory(dimension=DIM, embedder_name=embedder.name)
    text = "박시우의 동생은 수영을 한다."
    # What the index held before stems: the content morphemes alone.
    morphemes = ["박", "시", "우", "동생", "수영", "하"]
    old.begin_document(
        document_id="old",
        collection="default",
        source="old.txt",
        title="old",
        content_hash="v1",
        size_bytes=len(text.encode()),
        metadata={},
    )
    old.replace_chunks(
        "old", "v1", [ChunkRow(0, text, morphemes, embedder.embed_documents([text])[0], {})]
    )
    [hit] = old.search_sparse(search_tokens("박시우의 동생은?"), k=3)
    assert hit.document_id == "old"
