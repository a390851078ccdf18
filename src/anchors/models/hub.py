"""Hugging Face hub names → a local snapshot folder, failing fast when no hub is reachable.

Left to itself, huggingface_hub retries an unreachable hub five times with back-off (~25 s per
file here) before giving up. We look in the local HF cache first, then probe the endpoint once
with a short timeout, and only download when the probe succeeds.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from anchors.errors import ModelLoadError
from anchors.models._errors import one_line_summary

PROBE_TIMEOUT_S = 3.0
# Safetensors only (never pickled *.bin weights), plus configs and tokenizer files.
SNAPSHOT_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_OFFLINE_VALUES = {"1", "on", "yes", "true"}


def looks_like_repo_id(name: str) -> bool:
    """'org/model' or 'model' (letters, digits, '-', '_', '.'), not a path."""
    return bool(_REPO_ID.match(name)) and ".." not in name


def hub_snapshot_folder(repo_id: str) -> Path:
    """A local folder holding `repo_id`: from the HF cache when present, else downloaded."""
    cached = _cached_snapshot(repo_id)
    if cached is not None:
        return cached
    unreachable = _why_hub_unreachable()
    if unreachable is not None:
        raise _hub_unreachable_error(repo_id, unreachable)
    return _download_snapshot(repo_id)


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=SNAPSHOT_PATTERNS))
    except Exception:  # LocalEntryNotFoundError and friends: not cached
        return None
    return folder if (folder / "config.json").is_file() else None


def _download_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=SNAPSHOT_PATTERNS))
    except Exception as error:
        raise ModelLoadError(
            f"could not download {repo_id!r} from the model hub ({one_line_summary(error)}). "
            "Check the name, or pass a local folder: --model /path/to/folder"
        ) from error


def _why_hub_unreachable() -> str | None:
    """None when the hub endpoint (or the HTTPS proxy) accepts a TCP connection; else the reason."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _OFFLINE_VALUES:
        return "HF_HUB_OFFLINE is set"
    host, port = _probe_target()
    return _tcp_probe(host, port, PROBE_TIMEOUT_S)


def _probe_target() -> tuple[str, int]:
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    from huggingface_hub import constants

    url = urlparse(proxy if proxy else constants.ENDPOINT)
    default_port = 443 if url.scheme == "https" else 80
    return url.hostname or "huggingface.co", url.port or default_port


def _tcp_probe(host: str, port: int, timeout_s: float) -> str | None:
    # A thread bounds the DNS lookup too, which socket timeouts do not cover.
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome.append(None)
        except OSError as error:
            outcome.append(f"{host}:{port}: {error}")

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout_s + 0.5)
    return outcome[0] if outcome else f"{host}:{port}: no answer within {timeout_s:.0f} s"


def _hub_unreachable_error(repo_id: str, reason: str) -> ModelLoadError:
    return ModelLoadError(
        f"{repo_id!r} is not a local path and is not in the local Hugging Face cache, and no model hub "
        f"was reachable ({reason}). Download the model on a machine with access and pass its local folder "
        "(config.json + *.safetensors): --model /path/to/folder, or a .gguf file."
    )

