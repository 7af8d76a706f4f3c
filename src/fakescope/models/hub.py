"""Files from the internet, checked before use: official weight files by URL, fakescope checkpoints on the
Hugging Face Hub (``hf-hub:user/name[@revision]``).

Downloads go to ``$FAKESCOPE_HOME`` (default: ``fakescope`` in the Hugging Face home,
``~/.cache/huggingface/fakescope``), with a progress bar, to a temporary name that becomes the file only
when its byte size and SHA-256 are those the entry declares. A file that fails the check (a truncated
download, another file at the same address) is moved aside (``<name>.rejected``), never used. With no
network, or ``HF_HUB_OFFLINE=1``, a missing file is an error naming the URL and the exact path to put the
file at.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from fakescope.errors import WeightsUnavailableError

HF_PREFIX = "hf-hub:"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "README.md")


@dataclass(frozen=True)
class RemoteFile:
    """A file at an official address, as its authors published it."""

    filename: str
    urls: tuple[str, ...]  # the official address first, then mirrors the official README names
    size: int | None = None  # bytes
    sha256: str | None = None
    source: str = ""  # where the size and hash were read (e.g. a Git LFS pointer file)
    notes: tuple[str, ...] = field(default_factory=tuple)


def home() -> Path:
    """Where fakescope keeps downloads and converted checkpoints."""
    if os.environ.get("FAKESCOPE_HOME"):
        return Path(os.environ["FAKESCOPE_HOME"]).expanduser()
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HOME) / "fakescope"
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return Path("~/.cache/huggingface/fakescope").expanduser()


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_of(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def reject(path: Path, reason: str) -> WeightsUnavailableError:
    """Move a bad file aside (``<name>.rejected``) and return the error that says so."""
    aside = path.with_name(path.name + ".rejected")
    try:
        os.replace(path, aside)
        where = f"; it was moved aside to {aside}"
    except OSError as exc:  # pragma: no cover - a read-only folder
        where = f"; it could not be moved aside ({exc})"
    return WeightsUnavailableError(f"{path}: {reason}{where}")


def verify(path: Path, remote: RemoteFile, *, move_aside: bool = True) -> None:
    """Refuse ``path`` unless its size and SHA-256 are those ``remote`` declares (a file whose authors publish
    neither is used with a warning; its hash is recorded where it is converted)."""
    size = path.stat().st_size
    if remote.size is None and remote.sha256 is None:
        warnings.warn(f"{remote.filename}: no published size or SHA-256 to check the file against ({path})",
                      UserWarning, stacklevel=3)
        return
    problem = None
    if remote.size is not None and size != remote.size:
        problem = (f"{size:,} bytes where {remote.filename} has {remote.size:,} (a truncated or different "
                   "download)")
    elif remote.sha256 is not None and sha256_of(path) != remote.sha256:
        problem = f"SHA-256 differs from {remote.filename}'s {remote.sha256} (a different or corrupted file)"
    if problem:
        if move_aside:
            raise reject(path, problem)
        raise WeightsUnavailableError(f"{path}: {problem}")


def download_path(remote: RemoteFile) -> Path:
    """Where ``remote`` is (or will be) kept."""
    key = remote.sha256[:16] if remote.sha256 else hashlib.sha256(remote.urls[0].encode()).hexdigest()[:16]
    return home() / "downloads" / key / remote.filename


def fetch(remote: RemoteFile, *, progress: bool = True, local_file: str | Path | None = None) -> Path:
    """``remote``, downloaded once and checked; ``local_file`` (a copy the user downloaded by hand) is checked
    and used instead."""
    if local_file is not None:
        path = Path(local_file).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"{path}: weights file not found")
        verify(path, remote, move_aside=False)
        return path
    path = download_path(remote)
    if path.is_file():
        verify(path, remote)
        return path
    if offline():
        raise WeightsUnavailableError(_missing(remote, path, "HF_HUB_OFFLINE is set, so nothing is downloaded"))
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + f".part-{os.getpid()}")
    errors = []
    for url in remote.urls:
        try:
            _download(url, part, remote.size, progress)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
            part.unlink(missing_ok=True)
            continue
        os.replace(part, path)
        verify(path, remote)
        return path
    raise WeightsUnavailableError(_missing(remote, path, "the download failed (" + "; ".join(errors) + ")"))


def _missing(remote: RemoteFile, path: Path, why: str) -> str:
    return (f"{remote.filename} is not here and cannot be downloaded: {why}. Download it from {remote.urls[0]} "
            f"and put it at {path}, or pass its path with --weights-file (Python: weights_file=...)")


def _download(url: str, dest: Path, size: int | None, progress: bool) -> None:
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "fakescope"})
    with urllib.request.urlopen(request, timeout=60) as response, open(dest, "wb") as out:
        total = size or int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name.split(".part-")[0],
                  disable=not progress) as bar:
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))


# ------------------------------------------------------------------------ the Hub
def parse_hub_id(spec: str) -> tuple[str, str | None]:
    """``hf-hub:user/name[@revision]`` -> ``(user/name, revision)``."""
    ref = spec[len(HF_PREFIX):] if spec.startswith(HF_PREFIX) else spec
    repo, _, revision = ref.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise WeightsUnavailableError(f"{spec}: a Hub id is hf-hub:user/name or hf-hub:user/name@revision")
    return repo, revision or None


def hub_checkpoint(spec: str) -> Path:
    """The fakescope checkpoint folder of a Hub repository (downloaded once into the Hugging Face cache)."""
    from huggingface_hub import snapshot_download

    repo, revision = parse_hub_id(spec)
    try:
        folder = snapshot_download(repo, revision=revision, allow_patterns=list(CHECKPOINT_FILES),
                                   local_files_only=offline())
    except Exception as exc:
        hint = " (HF_HUB_OFFLINE is set: only the Hugging Face cache is searched)" if offline() else ""
        raise WeightsUnavailableError(f"{spec}: cannot get the checkpoint from the Hugging Face Hub{hint} "
                                      f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                                      ) from None
    return Path(folder)


def push_checkpoint(folder: str | Path, repo: str, *, private: bool = False, token: str | None = None,
                    message: str = "fakescope checkpoint") -> str:
    """Upload a checkpoint folder to the Hub repository ``repo`` (its model card becomes the repo's README);
    returns the commit's URL."""
    from huggingface_hub import HfApi

    repo_id, _ = parse_hub_id(repo)
    folder = Path(folder)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, allow_patterns=list(CHECKPOINT_FILES),
                             commit_message=message)
    return str(getattr(info, "commit_url", info))
