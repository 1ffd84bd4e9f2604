"""`clue-harness download` against a loopback server that serves zips of the fixture files.

The zips are built at test time: afqmc with its files at the top level, cmnli inside a
`cmnli_public/` folder, as the official archives are laid out. No test reaches any host
other than the server it starts on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import zipfile
from pathlib import Path

import pytest
from servers.zip_server import ZipServer
from tiny_models import FIXTURES

from harness.cli import main
from harness.data.download import (
    BASE_URL_ENV,
    DOWNLOADS_FOLDER,
    RECORD_NAME,
    ArchiveManifest,
    DownloadError,
    Expected,
    download_tasks,
    load_manifest,
)
from harness.data.layout import locate_file
from harness.tasks import get_task
from harness.tasks.examples import load_split

DATA_ROOT = FIXTURES / "clue"
AFQMC_PATH = "/afqmc_public.zip"
CMNLI_PATH = "/cmnli_public.zip"
# The shipped manifest lists digests of the official afqmc and cmnli files. The made-up
# fixture files do not match them, so most tests check against an empty manifest.
NO_DIGESTS = {"afqmc": ArchiveManifest(), "cmnli": ArchiveManifest()}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def task_zip(task: str, prefix: str = "") -> bytes:
    folder = DATA_ROOT / task
    return zip_bytes(
        {prefix + path.name: path.read_bytes() for path in sorted(folder.glob("*.json"))}
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def staging_folders(dest: Path) -> list[str]:
    return sorted(path.name for path in dest.glob(".*unpack-*"))


@pytest.fixture
def server():
    server = ZipServer().start()
    server.files[AFQMC_PATH] = task_zip("afqmc")
    server.files[CMNLI_PATH] = task_zip("cmnli", prefix="cmnli_public/")
    yield server
    server.stop()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "data"


def download(names, dest: Path, url: str, **options):
    options.setdefault("manifest", NO_DIGESTS)
    return download_tasks(names, dest, url, retry_wait=0, **options)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_download_gives_loadable_files(server, dest):
    outcomes = download(["afqmc", "cmnli"], dest, server.url)

    assert [outcome.status for outcome in outcomes] == ["downloaded", "downloaded"]
    for task_name, split, count in (("afqmc", "dev", 12), ("cmnli", "dev", 10)):
        task = get_task(task_name)
        path = locate_file(dest, task.directory, task.split(split).filename)
        assert path == dest / task_name / "dev.json"
        assert path.read_bytes() == (DATA_ROOT / task_name / "dev.json").read_bytes()
        assert len(load_split(task, split, path).examples) == count
    assert not (dest / "cmnli" / "cmnli_public").exists()
    assert not (dest / DOWNLOADS_FOLDER / "afqmc_public.zip").exists()


def test_first_download_records_sha256(server, dest):
    download(["afqmc"], dest, server.url)

    record = json.loads((dest / RECORD_NAME).read_text(encoding="utf-8"))["archives"]["afqmc"]
    assert record["sha256"] == sha256(server.files[AFQMC_PATH])
    assert record["size"] == len(server.files[AFQMC_PATH])
    assert record["url"] == server.url + AFQMC_PATH
    dev = (DATA_ROOT / "afqmc" / "dev.json").read_bytes()
    assert record["files"]["dev.json"] == {"size": len(dev), "sha256": sha256(dev)}


def test_present_task_not_downloaded(server, dest):
    download(["afqmc"], dest, server.url)

    outcomes = download(["afqmc"], dest, server.url)

    assert outcomes[0].status == "present"
    assert len(server.requests) == 1


def test_changed_archive_fails_record_check(server, dest):
    download(["afqmc"], dest, server.url)
    first = sha256(server.files[AFQMC_PATH])
    server.files[AFQMC_PATH] = zip_bytes({"dev.json": b'{"sentence1": "a"}\n'})
    second = sha256(server.files[AFQMC_PATH])

    with pytest.raises(DownloadError) as caught:
        download(["afqmc"], dest, server.url, force=True)

    message = str(caught.value)
    assert f"{dest / DOWNLOADS_FOLDER / 'afqmc_public.zip'} ({server.url}{AFQMC_PATH})" in message
    assert f"sha256 mismatch: expected {first}" in message
    assert f"got {second}" in message
    assert (dest / "afqmc" / "dev.json").read_bytes() == (
        DATA_ROOT / "afqmc" / "dev.json"
    ).read_bytes()
    assert staging_folders(dest) == []
    assert not (dest / DOWNLOADS_FOLDER / "afqmc_public.zip").exists()


def test_manifest_mismatch_leaves_nothing(server, dest):
    official = load_manifest()["afqmc"].files["dev.json"]
    fixture_sha256 = sha256((DATA_ROOT / "afqmc" / "dev.json").read_bytes())
    manifest = {
        "afqmc": ArchiveManifest(files={"dev.json": Expected(None, official.sha256, "test")})
    }

    with pytest.raises(DownloadError) as caught:
        download(["afqmc"], dest, server.url, manifest=manifest)

    message = str(caught.value)
    assert f"afqmc/dev.json in {server.url}{AFQMC_PATH}: sha256 mismatch" in message
    assert f"expected {official.sha256} (test), got {fixture_sha256}" in message
    assert not (dest / "afqmc").exists()
    assert staging_folders(dest) == []
    assert not (dest / RECORD_NAME).exists()


def test_partial_download_resumed(server, dest):
    body = server.files[AFQMC_PATH]
    part = dest / DOWNLOADS_FOLDER / "afqmc_public.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:100])

    outcomes = download(["afqmc"], dest, server.url, keep_zip=True)

    assert server.requests == [(AFQMC_PATH, "bytes=100-", 206)]
    assert (dest / DOWNLOADS_FOLDER / "afqmc_public.zip").read_bytes() == body
    assert "resumed at byte 100" in outcomes[0].verified
    assert not part.exists()


def test_ignored_range_restarts_download(server, dest):
    server.ignore_range = True
    body = server.files[AFQMC_PATH]
    part = dest / DOWNLOADS_FOLDER / "afqmc_public.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 100)

    download(["afqmc"], dest, server.url, keep_zip=True)

    assert server.requests == [(AFQMC_PATH, "bytes=100-", 200)]
    assert (dest / DOWNLOADS_FOLDER / "afqmc_public.zip").read_bytes() == body


def test_dropped_connection_resumed(server, dest):
    server.cut_after[AFQMC_PATH] = 150
    body = server.files[AFQMC_PATH]

    download(["afqmc"], dest, server.url, keep_zip=True)

    assert server.requests == [(AFQMC_PATH, None, 200), (AFQMC_PATH, "bytes=150-", 206)]
    assert (dest / DOWNLOADS_FOLDER / "afqmc_public.zip").read_bytes() == body


def test_refused_connection_explains_offline(dest):
    url = f"http://127.0.0.1:{closed_port()}"

    with pytest.raises(DownloadError) as caught:
        download(["afqmc"], dest, url, attempts=2)

    message = str(caught.value)
    assert message.startswith(f"Could not download {url}{AFQMC_PATH}: ")
    assert "Connection refused" in message
    assert "This machine may be offline, or the server may be unreachable." in message
    assert f"unzip it so that {dest / 'afqmc'}/ contains its files" in message
    assert "CLUE_DATA_DIR" in message
    assert caught.value.offline


def test_escaping_member_rejected(server, dest):
    server.files[AFQMC_PATH] = zip_bytes({"dev.json": b"{}\n", "../x.json": b"{}\n"})

    with pytest.raises(DownloadError) as caught:
        download(["afqmc"], dest, server.url)

    assert "member '../x.json' would be written outside the target folder" in str(caught.value)
    assert not (dest.parent / "x.json").exists()
    assert not (dest / "x.json").exists()
    assert not (dest / "afqmc").exists()
    assert staging_folders(dest) == []


def test_cli_prints_summary(server, dest, monkeypatch, capsys):
    # The shipped manifest lists no file of these two archives, so the fixtures pass it.
    server.files["/tnews_public.zip"] = task_zip("tnews")
    server.files["/ocnli_public.zip"] = task_zip("ocnli", prefix="ocnli_public/")
    monkeypatch.setenv(BASE_URL_ENV, server.url)

    status = main(["download", "tnews", "ocnli", "--dest", str(dest)])

    output = capsys.readouterr().out
    tnews_bytes = server.files["/tnews_public.zip"]
    assert status == 0
    assert f"tnews  downloaded  {len(tnews_bytes)} bytes  sha256 {sha256(tnews_bytes)}" in output
    assert f"-> {dest / 'ocnli'} (4 files)" in output
    assert "2 downloaded, 0 already present, 0 failed" in output


def test_cli_offline_stops_early(dest, monkeypatch, capsys):
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("CLUE_DATA_DIR", str(dest))

    status = main(["download", "afqmc", "cmnli", "--base-url", url, "--retries", "0"])

    output = capsys.readouterr().out
    assert status == 1
    assert f"afqmc  failed: Could not download {url}{AFQMC_PATH}" in output
    assert "cmnli  not tried" in output
    assert "CLUE_DATA_DIR" in output
