"""Downloading the official CLUE zips into a data root (`clue-harness download`).

Each archive is fetched from `<base URL>/<name>_public.zip` into
`<dest>/.downloads/<name>_public.zip.part` (resumed when a `.part` file is there, see
harness.data.fetch) and unpacked into `<dest>/<name>/`, the folder the loaders try first.

Checks, in order; any mismatch removes the downloaded zip and raises DownloadError naming
the file and both values:
1. The received length equals the response's Content-Length.
2. The zip's size and sha256 equal those in the manifest `clue_downloads.json` where it
   lists them. Where it does not, the first download records the zip's size and sha256 in
   `<dest>/.clue-download.json`, and every later download of that archive must have that
   sha256.
3. After unpacking, every file that the manifest lists with a sha256 matches it.
Files are unpacked into a temporary folder inside `<dest>` and renamed into place only after
all checks passed, so a failed run leaves no partly unpacked folder.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
import httpx

from harness import __version__
from harness.data.download_manifest import ArchiveManifest, Expected, load_manifest
from harness.data.fetch import FetchFailed, fetch
from harness.data.jsonl import sha256_file
from harness.data.layout import DATA_ENV
from harness.data.unpack import unpack_zip
from harness.errors import HarnessError
from harness.outputs import write_json

logger = logging.getLogger(__name__)

ARCHIVE_NAMES = (
    "afqmc",
    "tnews",
    "iflytek",
    "cmnli",
    "ocnli",
    "cluewsc2020",
    "csl",
    "cmrc2018",
    "chid",
    "c3",
    "cluener",
    "clue_diagnostics",
)
DEFAULT_BASE_URL = "https://storage.googleapis.com/cluebenchmark/tasks"
BASE_URL_ENV = "CLUE_DOWNLOAD_BASE_URL"
RECORD_NAME = ".clue-download.json"
DOWNLOADS_FOLDER = ".downloads"
LOCK_NAME = ".clue-download.lock"


class DownloadError(HarnessError):
    """A download, check or unpack failed; `offline` is True when no connection was made."""

    def __init__(self, message: str, *, offline: bool = False) -> None:
        super().__init__(message)
        self.offline = offline


@dataclass
class Outcome:
    """The result of one archive.

    `status` is "downloaded", "present" (files already there, skipped), "failed" (with
    `error`) or "not tried" (skipped after an earlier archive found the server unreachable).
    """

    name: str
    status: str
    folder: Path
    url: str
    size: int | None = None
    sha256: str | None = None
    files: int = 0
    verified: list[str] = field(default_factory=list)
    error: str | None = None


def archive_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{name}_public.zip"


def default_base_url() -> str:
    return os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


def failure_message(url: str, reason: str, dest: Path, name: str, *, offline: bool) -> str:
    """Explain a failed transfer and how to place the archive's files by hand."""
    cause = " This machine may be offline, or the server may be unreachable." if offline else ""
    return (
        f"Could not download {url}: {reason}.{cause} To place the files by hand, download "
        f"{url} on a machine with internet access and unzip it so that {dest / name}/ "
        f"contains its files (for example {dest / name / 'dev.json'}), then point the "
        f"harness at {dest} with --clue-data or the {DATA_ENV} environment variable"
    )


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(path.is_file() for path in folder.rglob("*"))


class Downloader:
    """Download, check and unpack CLUE archives into one data root.

    `timeout` is the limit in seconds for connecting and for each read; `attempts` and
    `retry_wait` (seconds, doubled after each failure) control retries.
    """

    def __init__(
        self,
        dest: Path,
        base_url: str | None = None,
        *,
        manifest: Mapping[str, ArchiveManifest] | None = None,
        force: bool = False,
        keep_zip: bool = False,
        timeout: float = 60.0,
        attempts: int = 4,
        retry_wait: float = 1.0,
    ) -> None:
        self.dest = Path(dest)
        self.base_url = base_url or default_base_url()
        self.manifest = load_manifest() if manifest is None else manifest
        self.force = force
        self.keep_zip = keep_zip
        self.timeout = timeout
        self.attempts = attempts
        self.retry_wait = retry_wait
        self.record_path = self.dest / RECORD_NAME

    def download_all(self, names: Iterable[str], *, keep_going: bool = False) -> list[Outcome]:
        """Download each archive in turn and return one Outcome per name.

        The first DownloadError is raised, unless `keep_going` is set: then a failed
        archive gets status "failed" and the next one is tried. After a failure to reach
        the server at all (offline), the remaining archives get status "not tried".
        """
        names = list(names)
        self.dest.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.dest / LOCK_NAME)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            logger.info("waiting for another download into %s to finish", self.dest)
            lock.acquire()

        outcomes: list[Outcome] = []
        try:
            headers = {"User-Agent": f"clue-harness/{__version__}"}
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 15.0))
            with httpx.Client(timeout=timeout, headers=headers, follow_redirects=True) as client:
                for position, name in enumerate(names):
                    try:
                        outcomes.append(self.download(client, name))
                    except DownloadError as error:
                        if not keep_going:
                            raise
                        logger.error("%s: %s", name, error)
                        outcomes.append(self._failed(name, "failed", str(error)))
                        if error.offline:
                            outcomes += [
                                self._failed(rest, "not tried") for rest in names[position + 1 :]
                            ]
                            break
        finally:
            lock.release()
        return outcomes

    def _failed(self, name: str, status: str, error: str | None = None) -> Outcome:
        url = archive_url(self.base_url, name)
        return Outcome(name, status, self.dest / name, url, error=error)

    def download(self, client: httpx.Client, name: str) -> Outcome:
        """Download, check and unpack one archive, unless its folder already contains files."""
        if name not in ARCHIVE_NAMES:
            raise DownloadError(f"unknown archive {name!r} (known: {', '.join(ARCHIVE_NAMES)})")
        url = archive_url(self.base_url, name)
        target = self.dest / name
        outcome = Outcome(name, "present", target, url)

        present = [
            folder for folder in (target, self.dest / f"{name}_public") if _has_files(folder)
        ]
        if present and not self.force:
            logger.info(
                "%s: skipped because %s already contains files (--force downloads again)",
                name,
                present[0],
            )
            outcome.folder = present[0]
            return outcome

        archive = self.dest / DOWNLOADS_FOLDER / f"{name}_public.zip"
        if archive.is_file():
            logger.info("%s: using %s from an earlier download", name, archive)
        else:
            part = archive.with_name(archive.name + ".part")
            logger.info("%s: downloading %s", name, url)
            try:
                fetched = fetch(
                    client,
                    url,
                    part,
                    attempts=self.attempts,
                    retry_wait=self.retry_wait,
                    label=name,
                )
            except FetchFailed as error:
                message = failure_message(
                    url, error.reason, self.dest, name, offline=error.connection
                )
                raise DownloadError(message, offline=error.connection) from None
            os.replace(part, archive)
            if fetched.length_checked:
                outcome.verified.append("length equals Content-Length")
            else:
                outcome.verified.append("length not checked: the server sent no Content-Length")
            if fetched.resumed_from:
                outcome.verified.append(f"resumed at byte {fetched.resumed_from}")

        outcome.size = archive.stat().st_size
        outcome.sha256 = sha256_file(archive)
        expected = self.manifest.get(name, ArchiveManifest())
        outcome.verified += self._check_archive(name, url, archive, outcome, expected.archive)

        files = self._unpack(name, url, archive, target, expected.files)
        outcome.files = len(files)
        if any(item.sha256 for item in expected.files.values()):
            listed = sorted(member for member, item in expected.files.items() if item.sha256)
            outcome.verified.append("manifest sha256 of " + ", ".join(listed))
        self._record(name, url, outcome, files)
        if not self.keep_zip:
            archive.unlink()
        outcome.status = "downloaded"
        logger.info("%s: unpacked %d files into %s", name, len(files), target)
        return outcome

    # Checks ------------------------------------------------------------------------------

    def _reject(self, archive: Path, message: str) -> DownloadError:
        archive.unlink(missing_ok=True)
        return DownloadError(
            message + f"; {archive} was removed, so the next run downloads it again"
        )

    def _check_archive(
        self, name: str, url: str, archive: Path, outcome: Outcome, expected: Expected
    ) -> list[str]:
        """Compare the zip with the manifest, else with the record; return what matched."""
        if expected.size is not None and outcome.size != expected.size:
            raise self._reject(
                archive,
                f"{archive} ({url}): size mismatch: expected {expected.size} bytes "
                f"(manifest), got {outcome.size}",
            )
        if expected.sha256:
            if outcome.sha256 != expected.sha256:
                raise self._reject(
                    archive,
                    f"{archive} ({url}): sha256 mismatch: expected {expected.sha256} "
                    f"(manifest), got {outcome.sha256}",
                )
            return ["sha256 equals the manifest"]

        recorded = self._read_record().get(name)
        if recorded is None:
            return [f"no known sha256: recorded in {self.record_path}"]
        if recorded.get("sha256") != outcome.sha256:
            raise self._reject(
                archive,
                f"{archive} ({url}): sha256 mismatch: expected {recorded.get('sha256')} "
                f"(recorded in {self.record_path} on {recorded.get('recorded')}), got "
                f"{outcome.sha256}. If the published archive changed on purpose, delete the "
                f"'{name}' entry from that file and run again",
            )
        return [f"sha256 equals the record of {recorded.get('recorded')}"]

    def _unpack(
        self, name: str, url: str, archive: Path, target: Path, expected: Mapping[str, Expected]
    ) -> list[str]:
        """Unpack into a temporary folder, check listed files, then move it to `target`."""
        staging = Path(tempfile.mkdtemp(dir=self.dest, prefix=f".{name}.unpack-"))
        try:
            try:
                paths = [path.as_posix() for path in unpack_zip(archive, staging)]
            except zipfile.BadZipFile as error:
                raise self._reject(
                    archive, f"{archive} ({url}): not a valid zip archive: {error}"
                ) from None
            except HarnessError as error:
                # An unsafe member name or an empty archive: nothing may be unpacked.
                raise self._reject(archive, f"{error} ({url})") from None
            for member, item in sorted(expected.items()):
                self._check_member(name, url, archive, staging, member, item)
            self._move_into_place(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

        public = self.dest / f"{name}_public"
        if _has_files(public):
            logger.warning(
                "%s: %s is still there, but the loaders now read %s first", name, public, target
            )
        return sorted(paths)

    def _check_member(
        self, name: str, url: str, archive: Path, staging: Path, member: str, item: Expected
    ) -> None:
        path = staging / member
        if not path.is_file():
            raise self._reject(
                archive,
                f"{archive} ({url}): {member} is missing from the archive; nothing was unpacked",
            )
        size = path.stat().st_size
        if item.size is not None and size != item.size:
            raise self._reject(
                archive,
                f"{name}/{member} in {url}: size mismatch: expected {item.size} bytes "
                f"({item.source}), got {size}; nothing was unpacked",
            )
        digest = sha256_file(path)
        if item.sha256 and digest != item.sha256:
            raise self._reject(
                archive,
                f"{name}/{member} in {url}: sha256 mismatch: expected {item.sha256} "
                f"({item.source}), got {digest}; nothing was unpacked",
            )

    def _move_into_place(self, staging: Path, target: Path) -> None:
        """Rename `staging` to `target`, replacing an earlier folder only once it is moved aside."""
        if not target.exists():
            os.replace(staging, target)
            return
        old = Path(tempfile.mkdtemp(dir=self.dest, prefix=f".{target.name}.old-"))
        os.replace(target, old / target.name)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)

    # Record ------------------------------------------------------------------------------

    def _read_record(self) -> dict[str, Any]:
        if not self.record_path.is_file():
            return {}
        try:
            data = json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise DownloadError(
                f"{self.record_path}: cannot read the download record: {error}. Fix or delete "
                "the file; deleting it means the next download is recorded again, unchecked"
            ) from None
        return data.get("archives", {})

    def _record(self, name: str, url: str, outcome: Outcome, files: list[str]) -> None:
        """Store the zip's size and sha256, and each unpacked file's, in the record."""
        archives = self._read_record()
        previous = archives.get(name, {})
        target = self.dest / name
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        archives[name] = {
            "url": url,
            "size": outcome.size,
            "sha256": outcome.sha256,
            "recorded": previous.get("recorded") or now,
            "downloaded": now,
            "files": {
                member: {
                    "size": (target / member).stat().st_size,
                    "sha256": sha256_file(target / member),
                }
                for member in files
            },
        }
        write_json(self.record_path, {"harness_version": __version__, "archives": archives})


def download_tasks(
    names: Iterable[str], dest: Path, base_url: str | None = None, **options: Any
) -> list[Outcome]:
    """Download, check and unpack the named archives into `dest`; see Downloader."""
    return Downloader(dest, base_url, **options).download_all(names)
