"""Files from the internet, checked before use: official weight files by URL, fakescope checkpoints on the
Hugging Face Hub (``hf-hub:user/name[@revision]``).

Downloads go to ``$FAKESCOPE_HOME`` (default: ``fakescope`` in the Hugging Face home,
``~/.cache/huggingface/fakescope``), with a progress bar, to a temporary name that becomes the file only
when its byte size and SHA-256 are those the entry declares. A file that fails the check (a truncated
download, another file at the same address) is moved aside (``<name>.rejected``), never used. With no
network, or ``HF_HUB_OFFLINE=1``, a missing file is an error naming the URL and the exact path to put the
file at.

Transformers models that a detector builds from the Hub by name (a backbone, a whole classifier:
:class:`HubModel`) are looked up in the Hugging Face cache first, without the network; when one is missing,
one metadata request with a short timeout (:data:`PROBE_TIMEOUT`) tells whether the Hub answers before
anything is downloaded. huggingface_hub's own download retries a failed request five times with backoff
(about 25 s), so with no network it is never reached: a missing model is an error at once, naming its files
and where they go in the cache (:func:`hub_recipe`).
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from fakescope.errors import WeightsUnavailableError
# Hub references and the cache are read where architectures name them; re-exported as this package's Hub API
from fakescope.models.sources import (HF_PREFIX, WEIGHTS_NAMES, HubModel, cached_file, hub_cache,  # noqa: F401
                                      hub_cached, parse_hub_id, set_weight_source)

CHECKPOINT_FILES = ("config.json", "model.safetensors", "README.md")
PROBE_TIMEOUT = 3.0  # seconds for the one request that tells whether the Hub answers


@dataclass(frozen=True)
class RemoteFile:
    """A file at an official address, as its authors published it."""

    filename: str
    urls: tuple[str, ...]  # the official address first, then mirrors the official README names
    size: int | None = None  # bytes
    sha256: str | None = None
    source: str = ""  # where the size and hash were read (e.g. a Git LFS pointer file)
    notes: tuple[str, ...] = field(default_factory=tuple)




class NotDownloadable(WeightsUnavailableError):
    """``need`` (a :class:`RemoteFile` or :class:`HubModel`) is not here and cannot be downloaded now: ``why``;
    ``unreachable``: the network, not the file, is the reason (so nothing else is worth trying)."""

    def __init__(self, need: RemoteFile | HubModel, path: Path, why: str, *, unreachable: bool = False,
                 offline: bool = False, hint: str = "") -> None:
        self.need, self.path, self.why, self.unreachable, self.offline = need, path, why, unreachable, offline
        super().__init__(f"{_name(need)} is not here and cannot be downloaded: {why}. {recipe(need, path)}{hint}")


def _name(need: RemoteFile | HubModel) -> str:
    return need.filename if isinstance(need, RemoteFile) else f"{need.repo} ({need.role})"


def recipe(need: RemoteFile | HubModel, path: Path) -> str:
    """How to put ``need`` at ``path`` by hand."""
    if isinstance(need, HubModel):
        return hub_recipe(need)
    known = ", ".join(x for x in (f"{need.size:,} bytes" if need.size else "",
                                  f"SHA-256 {need.sha256}" if need.sha256 else "") if x)
    return (f"Download it from {need.urls[0]}{f' ({known})' if known else ''} and put it at {path}, or pass its "
            "path with --weights-file (Python: weights_file=...)")


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


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the network is not there (no DNS, refused, timed out), not that a file is missing."""
    while isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else OSError(str(exc.reason))
    if isinstance(exc, (socket.gaierror, ConnectionError, TimeoutError, socket.timeout)):
        return True
    kinds = {k.__module__.split(".")[0] + "." + k.__name__ for k in type(exc).__mro__}
    return bool(kinds & {"httpx2.NetworkError", "httpx2.TimeoutException", "httpx.NetworkError",
                         "httpx.TimeoutException", "requests.ConnectionError", "requests.Timeout"})


def sha256_of(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file, in hex: checks a download, and ties an exported model to the checkpoint it came from."""
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
        raise NotDownloadable(remote, path, "HF_HUB_OFFLINE is set, so nothing is downloaded", offline=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + f".part-{os.getpid()}")
    errors, network = [], []
    for url in remote.urls:
        try:
            _download(url, part, remote.size, progress)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
            network.append(unreachable(exc))
            part.unlink(missing_ok=True)
            continue
        os.replace(part, path)
        verify(path, remote)
        return path
    raise NotDownloadable(remote, path, "the download failed (" + "; ".join(errors) + ")", unreachable=all(network))


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




def hub_model(model: HubModel, *, network: bool = True, hint: str = "") -> Path:
    """``model``'s snapshot folder in the Hugging Face cache, downloaded once.

    From the cache when it is there (no network). Otherwise, offline (``HF_HUB_OFFLINE``) or with
    ``network=False``, :class:`NotDownloadable` at once; with a network, one metadata request
    (:data:`PROBE_TIMEOUT`) first: if the Hub does not answer, :class:`NotDownloadable` (never
    huggingface_hub's download, whose retries take about 25 s when the network is not there)."""
    from huggingface_hub import HfApi, constants, hf_hub_download

    found = hub_cached(model)
    if found is not None:
        return found
    where = hub_cache() / model.folder
    if offline() or constants.HF_HUB_OFFLINE:
        raise NotDownloadable(model, where, "HF_HUB_OFFLINE is set, so nothing is downloaded", offline=True,
                              hint=hint)
    if not network:
        raise NotDownloadable(model, where, "the network is not reachable (see above), so it was not tried",
                              unreachable=True, hint=hint)
    try:
        info = HfApi().model_info(model.repo, revision=model.revision, timeout=PROBE_TIMEOUT)
    except Exception as exc:
        down = unreachable(exc)  # huggingface_hub's OfflineModeIsEnabled is a ConnectionError
        why = "the Hugging Face Hub does not answer" if down else "the Hugging Face Hub refused it"
        raise NotDownloadable(model, where, f"{why} ({_short(exc)})", unreachable=down, hint=hint) from None
    present = {s.rfilename for s in info.siblings or ()}
    weights = next((w for w in model.weights if w in present), None)
    absent = [f for f in model.files if f not in present] + ([] if weights else [" or ".join(model.weights)])
    if absent:
        raise NotDownloadable(model, where, f"the repository has no {', '.join(absent)} at revision "
                              f"{model.revision or 'main'}", hint=hint)
    try:  # the Hub answered: huggingface_hub's download, with its retries for a network that drops mid-way
        for name in (*model.files, weights):
            hf_hub_download(model.repo, name, revision=model.revision, cache_dir=str(hub_cache()))
    except Exception as exc:
        raise NotDownloadable(model, where, f"the download failed ({_short(exc)})", unreachable=unreachable(exc),
                              hint=hint) from None
    found = hub_cached(model)
    if found is None:  # pragma: no cover - the download wrote elsewhere
        raise NotDownloadable(model, where, "downloaded, but not found in the cache afterwards", hint=hint)
    return found


def hub_recipe(model: HubModel) -> str:
    """Where ``model``'s files go in the Hugging Face cache, and how to get them there by hand."""
    names = [*model.files, model.weights[0]]
    folder = hub_cache() / model.folder
    if model.revision:
        rev, cli_rev = model.revision, f" --revision {model.revision}"
        where = f"{folder / 'snapshots' / model.revision}/"
    else:
        rev, cli_rev = "main (not pinned)", ""
        where = f"{folder / 'snapshots' / 'COMMIT'}/ and write COMMIT (main's commit hash) to {folder / 'refs/main'}"
    alternatives = f" (or {', '.join(model.weights[1:])} where the repository has no {model.weights[0]})" \
        if len(model.weights) > 1 else ""
    return (f"Put {' and '.join(names)}{alternatives} of https://huggingface.co/{model.repo} at revision {rev} in "
            f"{where}. Or, on a machine with network, run `hf download {model.repo} {' '.join(names)}{cli_rev} "
            f"--cache-dir DIR` (older huggingface_hub: huggingface-cli download, same arguments) and copy "
            f"DIR/{model.folder} to {hub_cache()}/")


def hub_file(spec: str, filename: str, role: str = "weights") -> Path:
    """``filename`` of the Hub repository ``spec`` (``hf-hub:user/name[@revision]``): from the Hugging Face cache,
    or downloaded by huggingface_hub (offline: the cache only). The source :mod:`fakescope.models.sources` uses."""
    from huggingface_hub import hf_hub_download

    repo, revision = parse_hub_id(spec)
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, revision=revision, cache_dir=str(hub_cache())))
    except Exception as exc:  # offline and not cached, no such repo or file, network or auth errors
        raise WeightsUnavailableError(f"could not get {role}: file '{filename}' of the Hugging Face hub repository "
                                      f"'{repo}' ({_short(exc)})") from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


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
