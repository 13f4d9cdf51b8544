"""``/api/finetune``'s data sets, memory plan and form options over a real server and database.

Keys of each role are created while the server runs (``AUTH_CACHE_S=0``, so every request asks
the database). The server's data set limit is 64 MB, so that a 50 MB line is refused for its
length and not for its size.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from app.auth.roles import Role
from app.auth.store import KeyStore
from app.core.config import AuthSettings, FinetuneSettings, JobsSettings
from app.main import create_app
from app.recipes.data import DataOptions, DataReport, load_reviews
from app.recipes.eval_settings import EvalSettings
from app.recipes.governor_settings import GovernorSettings
from app.recipes.plan import make_plan
from app.recipes.plan_estimate import PlanSettings
from app.recipes.settings_fields import cli_fields
from app.recipes.train_config import TrainConfig
from tests.api.conftest import make_settings
from tests.conftest import SHARED_DATA, drop_schema, require_shared
from tests.utils.live_server import live_server

LIMIT_MB = 64
MB = 1024 * 1024
NSMC_TRAIN = SHARED_DATA / "nsmc" / "train.tsv.gz"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


@dataclass
class Server:
    url: str
    client: httpx.Client
    pg_url: str
    schema: str
    datasets_dir: Path
    admin: dict[str, str]
    editor: dict[str, str]
    reader: dict[str, str]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def server(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("data")
    settings = make_settings(pg_url, data_dir).model_copy(
        update={
            "auth": AuthSettings(cache_s=0),
            "jobs": JobsSettings(serve_workers=0),
            "finetune": FinetuneSettings(
                dir=data_dir / "finetune", max_dataset_mb=LIMIT_MB, workers=0
            ),
        }
    )
    schema = f"ftds_{uuid.uuid4().hex[:10]}"
    app = create_app(settings, schema=schema, frontend_dir=None)
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=300) as client:
            keys = KeyStore(pg_url, schema)
            _, admin = keys.create(Role.admin, name="admin")
            _, editor = keys.create(Role.editor, name="editor")
            _, reader = keys.create(Role.reader, name="reader")
            yield Server(
                url,
                client,
                pg_url,
                schema,
                data_dir / "finetune" / "datasets",
                _bearer(admin),
                _bearer(editor),
                _bearer(reader),
            )
    finally:
        drop_schema(pg_url, schema)


@pytest.fixture(scope="module")
def nsmc_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 2,000 reviews of the NSMC training set, gzipped as the original is."""
    with gzip.open(require_shared(NSMC_TRAIN), "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(2001)]
    path = tmp_path_factory.mktemp("nsmc") / "train-head.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    return path


def _upload(
    server: Server, filename: str, data: bytes, headers=None, **fields: str
) -> httpx.Response:
    return server.client.post(
        "/api/finetune/datasets",
        headers=server.admin if headers is None else headers,
        files={"file": (filename, data, "application/octet-stream")},
        data=fields,
    )


def _add_path(server: Server, path: Path | str, **fields: object) -> httpx.Response:
    return server.client.post(
        "/api/finetune/datasets", headers=server.admin, json={"path": str(path), **fields}
    )


def _error(response: httpx.Response) -> dict:
    return response.json()["error"]


def _expected_report(path: Path, **options: object) -> dict:
    report: DataReport = load_reviews(path, DataOptions(**options))[1]  # type: ignore[arg-type]
    return report.to_dict()


def _stored_ids(server: Server) -> set[str]:
    listed = server.client.get("/api/finetune/datasets", headers=server.reader)
    assert listed.status_code == 200, listed.text
    return {d["id"] for d in listed.json()["datasets"]}


def _folders(server: Server) -> set[str]:
    root = server.datasets_dir
    return {p.name for p in root.iterdir()} if root.exists() else set()


def _add_job(server: Server, status: str, payload: dict) -> str:
    job_id = f"job_{uuid.uuid4().hex[:20]}"
    progress = Jsonb({"done": 0, "total": 10})
    with psycopg.connect(server.pg_url, autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{server.schema}".jobs (id, kind, status, payload, progress, settled)'
            " VALUES (%s, 'finetune', %s, %s, %s, %s)",
            (job_id, status, Jsonb(payload), progress, progress),
        )
    return job_id


def _set_status(server: Server, job_id: str, status: str) -> None:
    with psycopg.connect(server.pg_url, autocommit=True) as conn:
        conn.execute(
            f'UPDATE "{server.schema}".jobs SET status = %s WHERE id = %s', (status, job_id)
        )


# ----- adding data sets -------------------------------------------------------------------------


def test_an_upload_reports_what_training_reads(server: Server, nsmc_slice: Path) -> None:
    response = _upload(server, nsmc_slice.name, nsmc_slice.read_bytes())
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["report"] == _expected_report(nsmc_slice)
    report = dataset["report"]
    assert report["read"] == 2000 and report["kept"] == sum(report["ratings"].values())
    assert 0 < report["kept"] <= 2000
    assert set(report["ratings"]) <= {str(r) for r in range(1, 11)}
    assert dataset["source"] == "upload" and dataset["name"] == "train-head.tsv.gz"
    assert (dataset["format"], dataset["scale"]) == ("nsmc-tsv", 10)
    assert dataset["size_bytes"] == nsmc_slice.stat().st_size
    stored = server.datasets_dir / dataset["id"] / "data.tsv.gz"
    assert stored.read_bytes() == nsmc_slice.read_bytes()
    assert "path" not in dataset


def test_an_upload_takes_its_name_format_and_scale_from_the_form(server: Server) -> None:
    lines = [{"text": f"리뷰 {i}번, 괜찮아요", "stars": 1 + i % 3} for i in range(30)]
    data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    response = _upload(
        server, "shop.jsonl", data, name="쇼핑 리뷰", format="jsonl", rating_scale="5"
    )
    # jsonl's default columns are review/rating: these lines have neither, and are dropped.
    assert response.status_code == 422, response.text
    assert _error(response)["code"] == "dataset_unreadable"
    good = "".join(
        json.dumps({"review": line["text"], "rating": line["stars"]}, ensure_ascii=False) + "\n"
        for line in lines
    ).encode()
    response = _upload(
        server, "shop.jsonl", good, name="쇼핑 리뷰", format="jsonl", rating_scale="5"
    )
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert (dataset["name"], dataset["format"], dataset["scale"]) == ("쇼핑 리뷰", "jsonl", 5)
    assert dataset["report"]["ratings"] == {"1": 10, "2": 10, "3": 10}


def test_the_whole_nsmc_training_file_is_read_where_it_is(server: Server) -> None:
    path = require_shared(NSMC_TRAIN)
    response = _add_path(server, path, name="NSMC train")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["report"] == _expected_report(path)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        reviews = sum(1 for _ in f) - 1
    assert dataset["report"]["read"] == reviews > 100_000
    assert (dataset["source"], dataset["name"], dataset["format"]) == (
        "path",
        "NSMC train",
        "nsmc-tsv",
    )
    assert dataset["size_bytes"] == path.stat().st_size
    assert dataset["id"] not in _folders(server)


def test_a_folder_of_nsmc_json_files_is_a_data_set(server: Server, tmp_path: Path) -> None:
    for movie, reviews in {"1001": ["최고의 영화", "지루했다"], "1002": ["또 보고 싶다"]}.items():
        records = [
            {"review": text, "rating": str(2 + 4 * i), "movie_id": movie}
            for i, text in enumerate(reviews)
        ]
        (tmp_path / f"{movie}.json").write_text(json.dumps(records, ensure_ascii=False))
    response = _add_path(server, tmp_path)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert (dataset["format"], dataset["name"]) == ("nsmc-raw", tmp_path.name)
    assert dataset["report"]["ratings"] == {"2": 2, "6": 1}


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("relative/train.tsv", "is not an absolute path"),
        ("/nonexistent/train.tsv", "does not exist on the server"),
        ("/dev/null", "is neither a regular file nor a folder"),
    ],
)
def test_a_path_that_is_not_a_readable_file_is_refused_saying_why(
    server: Server, path: str, problem: str
) -> None:
    response = _add_path(server, path)
    assert response.status_code == 422, response.text
    assert _error(response)["code"] == "dataset_bad_path"
    assert problem in _error(response)["message"]


def test_a_file_the_server_may_not_read_is_refused(server: Server, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    locked = tmp_path / "locked.tsv"
    locked.write_text("1\t좋다\n")
    locked.chmod(0)
    response = _add_path(server, locked)
    assert response.status_code == 422 and "may not read" in _error(response)["message"]


# ----- hostile files ----------------------------------------------------------------------------


def _gzip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as f:
        f.write(data)
    return buffer.getvalue()


HOSTILE = {
    "nul.tsv": (b"review_id\tmovie_id\trating\treview\n1\t2\t3\t\x00\x00\n", "dataset_binary"),
    "picture.png": (PNG, "dataset_binary"),
    "broken.tsv.gz": (b"\x1f\x8b\x08\x00garbage that is no deflate stream", "dataset_bad_gzip"),
    "cut.tsv.gz": (_gzip("1\t2\t3\t좋다\n".encode() * 1000)[:-40], "dataset_bad_gzip"),
    "empty.tsv": (b"", "dataset_empty"),
    "blank.tsv": (b"\n \n\t\n", "dataset_empty"),
    "long-line.tsv": (b"1\t2\t3\t" + b"a" * (50 * MB), "dataset_line_too_long"),
    "not-reviews.txt": ("그냥 문장입니다.\n또 한 줄.\n".encode(), "dataset_unreadable"),
    "bad-ratings.csv": (b"review,rating\nfine,seven\n", "dataset_unreadable"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_is_refused_with_its_reason_and_nothing_is_kept(
    server: Server, name: str
) -> None:
    data, code = HOSTILE[name]
    before, folders = _stored_ids(server), _folders(server)
    response = _upload(server, name, data)
    assert response.status_code == 422, response.text
    error = _error(response)
    assert error["code"] == code and error["params"]["name"] == name
    assert _stored_ids(server) == before
    assert _folders(server) == folders


def test_an_upload_over_the_limit_is_413_and_nothing_is_kept(server: Server) -> None:
    folders = _folders(server)

    def body() -> Iterator[bytes]:
        boundary = "dataset-boundary"
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.tsv"'
            "\r\n\r\n"
        ).encode()
        line = "1\t2\t3\t괜찮은 영화였다\n".encode()
        for _ in range(LIMIT_MB + 2):
            yield line * (MB // len(line) + 1)
        yield f"\r\n--{boundary}--\r\n".encode()

    # Streamed without a length, so the limit is found while the file comes in.
    response = server.client.post(
        "/api/finetune/datasets",
        headers={**server.admin, "content-type": "multipart/form-data; boundary=dataset-boundary"},
        content=body(),
    )
    assert response.status_code == 413, response.text
    error = _error(response)
    assert error["code"] == "dataset_too_large" and error["params"] == {"limit_mb": LIMIT_MB}
    assert _folders(server) == folders


def test_a_declared_length_over_the_limit_is_refused_before_the_body(server: Server) -> None:
    response = _upload(server, "big.tsv", b"1\t2\t3\tx\n" * (LIMIT_MB * MB // 8 + 64 * 1024))
    assert response.status_code == 413 and _error(response)["code"] == "dataset_too_large"


def test_a_gzip_that_expands_past_the_limit_is_413(server: Server, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tsv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        for _ in range(LIMIT_MB + 1):
            f.write(b"1\t2\t3\tab\n" * (MB // 9 + 1))
    assert bomb.stat().st_size < MB
    response = _add_path(server, bomb)
    assert response.status_code == 413 and _error(response)["code"] == "dataset_too_large"


@pytest.mark.parametrize(
    "fields",
    [{"name": "가" * 201}, {"format": "xml"}, {"rating_scale": "7"}, {"colour": "red"}],
)
def test_bad_options_are_422_naming_the_field(server: Server, fields: dict[str, str]) -> None:
    response = _upload(server, "a.tsv", "1\t2\t3\t좋다\n".encode(), **fields)
    assert response.status_code == 422, response.text
    assert _error(response)["code"] == "invalid_input"
    assert next(iter(fields)) in _error(response)["params"]["fields"]
    long_name = _add_path(server, NSMC_TRAIN, **fields)
    assert long_name.status_code == 422 and _error(long_name)["code"] == "invalid_input"


def test_an_upload_without_a_file_or_with_two_is_422(server: Server) -> None:
    response = server.client.post(
        "/api/finetune/datasets", headers=server.admin, data={"name": "nothing"}, files={}
    )
    assert response.status_code == 422
    two = server.client.post(
        "/api/finetune/datasets",
        headers=server.admin,
        files=[("file", ("a.tsv", b"1\t2\n")), ("file", ("b.tsv", b"1\t2\n"))],
    )
    assert two.status_code == 422 and "more than one file" in _error(two)["message"]
    plain = server.client.post(
        "/api/finetune/datasets",
        headers={**server.admin, "content-type": "text/plain"},
        content=b"x",
    )
    assert plain.status_code == 422
    folders = _folders(server)
    cut = server.client.post(
        "/api/finetune/datasets",
        headers={**server.admin, "content-type": "multipart/form-data; boundary=b0undary"},
        content=b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.tsv"'
        b"\r\n\r\n1\t2\t3\t\xec\xa2\x8b\xeb\x8b\xa4\n",
    )
    assert cut.status_code == 422 and "ended before" in _error(cut)["message"]
    assert _folders(server) == folders


# ----- listing and deleting ---------------------------------------------------------------------


def test_list_get_and_delete(server: Server, nsmc_slice: Path, tmp_path: Path) -> None:
    uploaded = _upload(server, "older.tsv.gz", nsmc_slice.read_bytes()).json()
    on_server = tmp_path / "reviews.tsv"
    on_server.write_text("1\t2\t9\t다시 봐도 좋다\n3\t4\t2\t별로였다\n", encoding="utf-8")
    pointed = _add_path(server, on_server).json()
    listed = server.client.get("/api/finetune/datasets", headers=server.reader).json()["datasets"]
    assert [d["id"] for d in listed][:2] == [pointed["id"], uploaded["id"]]
    one = server.client.get(f"/api/finetune/datasets/{uploaded['id']}", headers=server.reader)
    assert one.status_code == 200 and one.json() == uploaded

    for dataset in (uploaded, pointed):
        deleted = server.client.delete(
            f"/api/finetune/datasets/{dataset['id']}", headers=server.admin
        )
        assert deleted.status_code == 204, deleted.text
        gone = server.client.get(f"/api/finetune/datasets/{dataset['id']}", headers=server.admin)
        assert gone.status_code == 404 and _error(gone)["code"] == "dataset_not_found"
    assert uploaded["id"] not in _folders(server)
    assert on_server.read_text(encoding="utf-8").startswith("1\t2\t9")
    again = server.client.delete(f"/api/finetune/datasets/{uploaded['id']}", headers=server.admin)
    assert again.status_code == 404


@pytest.mark.parametrize("field", ["dataset_id", "eval_dataset_id"])
def test_a_data_set_a_training_job_reads_cannot_be_deleted(
    server: Server, nsmc_slice: Path, field: str
) -> None:
    dataset = _upload(server, "used.tsv.gz", nsmc_slice.read_bytes()).json()
    _add_job(server, "succeeded", {field: dataset["id"]})
    job_id = _add_job(server, "queued", {field: dataset["id"]})
    url = f"/api/finetune/datasets/{dataset['id']}"
    for status in ("queued", "running"):
        _set_status(server, job_id, status)
        refused = server.client.delete(url, headers=server.admin)
        assert refused.status_code == 409, refused.text
        assert _error(refused)["code"] == "dataset_in_use"
        assert _error(refused)["params"] == {"id": dataset["id"], "job_id": job_id}
    assert dataset["id"] in _folders(server)
    _set_status(server, job_id, "cancelled")
    assert server.client.delete(url, headers=server.admin).status_code == 204
    assert dataset["id"] not in _folders(server)


# ----- roles ------------------------------------------------------------------------------------


def test_readers_read_and_only_admins_write(server: Server, nsmc_slice: Path) -> None:
    dataset = _upload(server, "roles.tsv.gz", nsmc_slice.read_bytes()).json()
    url = f"/api/finetune/datasets/{dataset['id']}"
    for headers in (server.reader, server.editor):
        for response in (
            _upload(server, "x.tsv", "1\t2\t3\t좋다\n".encode(), headers=headers),
            server.client.post(
                "/api/finetune/datasets", headers=headers, json={"path": str(NSMC_TRAIN)}
            ),
            server.client.delete(url, headers=headers),
        ):
            assert response.status_code == 403, response.text
            assert _error(response)["code"] == "forbidden_role"
        assert server.client.get(url, headers=headers).status_code == 200
        for path in ("/api/finetune/datasets", "/api/finetune/options"):
            assert server.client.get(path, headers=headers).status_code == 200
    assert server.client.get(url).status_code == 401
    assert server.client.get(url, headers=server.admin).status_code == 200


# ----- the memory plan and the form's options ---------------------------------------------------


def test_the_plan_is_the_planners(server: Server) -> None:
    query = {"gpu_mem_gb": 8, "seq_len": 256, "micro_batch": 2, "lora_rank": 8}
    response = server.client.get("/api/finetune/plan", params=query, headers=server.reader)
    assert response.status_code == 200, response.text
    settings = PlanSettings(seq_len=256, micro_batch=2, lora_rank=8)
    expected = make_plan("K-intelligence/Midm-2.0-Mini-Instruct", 8, settings).to_dict()
    assert response.json() == json.loads(json.dumps(expected))
    assert response.json()["recommendation"] is not None


@pytest.mark.parametrize(
    "query",
    [
        {"gpu_mem_gb": 0.1},
        {"gpu_mem_gb": 2000},
        {"gpu_mem_gb": 8, "seq_len": 8},
        {"gpu_mem_gb": 8, "micro_batch": 0},
        {"gpu_mem_gb": 8, "lora_rank": 2048},
        {"gpu_mem_gb": 8, "model": "m" * 501},
        {},
    ],
)
def test_plan_parameters_out_of_range_are_422(server: Server, query: dict) -> None:
    response = server.client.get("/api/finetune/plan", params=query, headers=server.reader)
    assert response.status_code == 422, response.text
    assert _error(response)["code"] == "invalid_input"


def test_a_model_the_planner_cannot_resolve_gets_its_error(server: Server, tmp_path: Path) -> None:
    unknown = server.client.get(
        "/api/finetune/plan",
        params={"gpu_mem_gb": 8, "model": "nobody/no-such-model"},
        headers=server.reader,
    )
    assert unknown.status_code == 404 and "no config" in _error(unknown)["message"]
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    folder = {"gpu_mem_gb": 8, "model": str(tmp_path)}
    other = server.client.get("/api/finetune/plan", params=folder, headers=server.admin)
    assert other.status_code == 415 and "bert" in _error(other)["message"]
    hidden = server.client.get("/api/finetune/plan", params=folder, headers=server.reader)
    assert hidden.status_code == 403


def test_the_options_are_every_recipe_field_with_its_default(server: Server) -> None:
    response = server.client.get("/api/finetune/options", headers=server.reader)
    assert response.status_code == 200, response.text
    sections = response.json()
    job_owned = {"data", "output", "cache_dir", "progress", "data_options", "governor"}
    for section, cls, skip in (
        ("train", TrainConfig, job_owned),
        ("data", DataOptions, set()),
        ("governor", GovernorSettings, set()),
        ("eval", EvalSettings, set()),
    ):
        fields = [f for f in cli_fields(cls) if f.name not in skip]
        assert [o["name"] for o in sections[section]] == [f.name for f in fields]
        assert set(sections[section][0]) == {"name", "type", "default", "choices", "help", "group"}
        for option, field in zip(sections[section], fields, strict=True):
            default = field.default
            assert option["default"] == (list(default) if isinstance(default, tuple) else default)
    train = {o["name"]: o for o in sections["train"]}
    assert train["method"]["choices"] == ["lora", "qlora"] and train["method"]["default"] == "lora"
    assert train["lr"]["type"] == "number" and train["max_steps"]["type"] == "integer"
    assert train["gradient_checkpointing"]["type"] == "boolean"
    assert train["target_modules"]["type"] == "string[]"
    assert train["micro_batch_size"]["help"] == "rows per forward pass (default 4)"
    assert train["save_every"]["group"] == "checkpoints and logs"
    data = {o["name"]: o for o in sections["data"]}
    assert data["rating_scale"]["choices"] == [5, 10]
    assert data["data_format"]["choices"][0] == "auto"
    evaluation = {o["name"]: o for o in sections["eval"]}
    assert evaluation["per_rating"]["default"] == EvalSettings().per_rating
    assert evaluation["ratings"]["type"] == "integer[]"
    assert {o["name"] for o in sections["governor"]} == {
        f.name for f in dataclasses.fields(GovernorSettings) if "setting" in f.metadata
    }
