"""A run's artifacts: the file tree with sizes, and how each file may be previewed.

Pure logic. Listings come in through a ``list_folder`` function (one folder per call, as
MLflow lists them) and file contents as bytes, so pages pass in cached reads and tests pass in
plain data. Every preview keeps untrusted content as data: text is shown as text (HTML and
Markdown are never rendered), SVG counts as text because it can carry script, and images are
previewed only when their bytes start like the raster format their name claims.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import pandas as pd

from services.core.formatting import mlflow_run_url
from services.core.records import ArtifactEntry

PREVIEW_MAX_BYTES = 5 * 1024 * 1024
"""Files up to this size (bytes) are read and previewed in the page; bigger ones are not."""
DOWNLOAD_MAX_BYTES = 50 * 1024 * 1024
"""Files up to this size (bytes) get a download button; bigger ones link to MLflow's UI."""
TREE_MAX_ENTRIES = 500
"""The most files and folders an artifact tree lists before it stops and says so."""
TREE_MAX_DEPTH = 8
"""Folders nested deeper than this are shown but not opened."""
TREE_MAX_LISTINGS = 100
"""The most folder listings (one request each) a tree may cost."""
TABLE_PREVIEW_ROWS = 1000
"""Rows shown of a CSV, TSV or Parquet file."""
TEXT_PREVIEW_MAX_CHARS = 200_000
"""Characters shown of a text file; the rest is left to the download."""
DOWNLOAD_MIME = "application/octet-stream"
"""Downloads are always served as opaque bytes, so no browser renders an HTML or SVG artifact."""


class PreviewKind(StrEnum):
    """How a file's content is shown."""

    TEXT = "text"
    JSON = "json"
    CSV = "csv"
    TSV = "tsv"
    PARQUET = "parquet"
    IMAGE = "image"
    NONE = "other"


_KIND_BY_EXTENSION: dict[str, PreviewKind] = {
    **dict.fromkeys(
        (".txt", ".log", ".md", ".yaml", ".yml", ".py", ".cfg", ".ini", ".toml", ".html", ".htm"),
        PreviewKind.TEXT,
    ),
    # SVG and XML can carry script: shown as source text, never as an image.
    **dict.fromkeys(
        (".svg", ".xml", ".sh", ".sql", ".jsonl", ".rst", ".out", ".err"), PreviewKind.TEXT
    ),
    ".json": PreviewKind.JSON,
    ".csv": PreviewKind.CSV,
    ".tsv": PreviewKind.TSV,
    ".parquet": PreviewKind.PARQUET,
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".gif", ".webp"), PreviewKind.IMAGE),
}
_TEXT_FILE_NAMES = frozenset({"MLmodel", "Dockerfile", "LICENSE", "README", "requirements"})
_IMAGE_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".gif": (b"GIF87a", b"GIF89a"),
    ".webp": (b"RIFF",),
}


@dataclass(frozen=True, slots=True)
class ArtifactNode:
    """One file or folder in an artifact tree."""

    path: str
    """Path relative to the run's artifact root, with "/" separators."""
    is_dir: bool
    """True for a folder."""
    size_bytes: int | None
    """A file's size, or the total of the files listed under a folder; None when unknown."""
    complete: bool = True
    """False for a folder whose size leaves out contents that were not listed."""

    @property
    def name(self) -> str:
        """The last part of the path."""
        return posixpath.basename(self.path)

    @property
    def depth(self) -> int:
        """0 for entries at the artifact root, 1 one folder down, and so on."""
        return self.path.count("/")


@dataclass(frozen=True, slots=True)
class ArtifactTree:
    """A run's artifacts as far as they were listed."""

    nodes: tuple[ArtifactNode, ...]
    """Files and folders in tree order: each folder directly followed by its contents."""
    truncated: bool
    """True when some entries were left out because of the entry, depth or listing limits."""
    total_bytes: int
    """Total size of the listed files, in bytes."""

    @property
    def files(self) -> tuple[ArtifactNode, ...]:
        """Only the files, in tree order."""
        return tuple(node for node in self.nodes if not node.is_dir)

    def find(self, path: str) -> ArtifactNode | None:
        """The node at ``path``, or None when the tree does not hold it."""
        return next((node for node in self.nodes if node.path == path), None)


@dataclass(frozen=True, slots=True)
class PreviewPlan:
    """What the page may do with one file, decided from its name and size alone."""

    path: str
    """The file's artifact path."""
    kind: PreviewKind
    """How its content would be shown."""
    size_bytes: int | None
    """Its size in bytes, when MLflow reported one."""
    preview: bool
    """True when the page should read the file and show it."""
    download: bool
    """True when the file is small enough to offer as a download button."""
    reason: str = ""
    """Why there is no preview, for the page to say; empty when there is one."""

    @property
    def file_name(self) -> str:
        """The name a download is saved under."""
        return posixpath.basename(self.path)


@dataclass(frozen=True, slots=True)
class ArtifactPreview:
    """A file's content, ready to show. Exactly one of the content fields is meaningful."""

    kind: PreviewKind
    """How to show it: TEXT with ``text``, JSON with ``value``, a table kind with ``table``,
    IMAGE with ``image``, or NONE with only the ``note``."""
    text: str = ""
    """Text to show verbatim (never rendered as Markdown or HTML)."""
    value: Any = None
    """The parsed JSON document."""
    table: pd.DataFrame | None = None
    """The first rows of a table."""
    image: bytes = b""
    """Raster image bytes whose signature matched their extension."""
    note: str = ""
    """A caption to show with the content, e.g. that only the first rows are shown."""
    language: str | None = None
    """Syntax highlighting for text, e.g. "yaml"; None for plain text."""


def build_artifact_tree(
    list_folder: Callable[[str | None], Sequence[ArtifactEntry]],
    max_entries: int = TREE_MAX_ENTRIES,
    max_depth: int = TREE_MAX_DEPTH,
    max_listings: int = TREE_MAX_LISTINGS,
) -> ArtifactTree:
    """List a run's artifacts folder by folder, breadth first, within fixed limits.

    Args:
        list_folder: Lists the entries directly under a folder (None for the root), e.g.
            ``lambda path: cache.artifacts(settings, run_id, path)``.
        max_entries: Stop after this many files and folders.
        max_depth: Do not open folders nested deeper than this.
        max_listings: Do not list more folders than this (each listing is one request).

    Returns:
        The tree in display order, with folder sizes summed from the files listed under them.
    """
    entries: list[ArtifactEntry] = []
    unlisted: set[str] = set()
    queue: deque[str | None] = deque([None])
    listings = 0
    truncated = False
    while queue:
        folder = queue.popleft()
        if listings >= max_listings or len(entries) >= max_entries:
            truncated = True
            unlisted.update(f for f in [folder, *queue] if f is not None)
            break
        listings += 1
        for entry in sorted(list_folder(folder), key=lambda e: e.path):
            if len(entries) >= max_entries:
                truncated = True
                if folder is not None:
                    unlisted.add(folder)
                break
            entries.append(entry)
            if not entry.is_dir:
                continue
            if entry.path.count("/") < max_depth:
                queue.append(entry.path)
            else:
                truncated = True
                unlisted.add(entry.path)
    nodes = tuple(
        _node(entry, entries, unlisted)
        for entry in sorted(entries, key=lambda e: _tree_key(e.path))
    )
    total = sum(e.size_bytes or 0 for e in entries if not e.is_dir)
    return ArtifactTree(nodes, truncated, total)


def artifact_table(tree: ArtifactTree) -> pd.DataFrame:
    """One row per file or folder, indented by depth, with readable and exact sizes."""
    rows = [
        {
            "Name": "    " * node.depth + (f"{node.name}/" if node.is_dir else node.name),
            "Path": node.path,
            "Type": "folder" if node.is_dir else preview_kind(node.path).value,
            "Size": human_size(node.size_bytes, at_least=not node.complete),
            "Bytes": node.size_bytes,
        }
        for node in tree.nodes
    ]
    return pd.DataFrame(rows, columns=["Name", "Path", "Type", "Size", "Bytes"])


def human_size(size_bytes: int | None, at_least: bool = False) -> str:
    """A size such as "812 B", "15.3 KB" or "6.0 MB" (powers of 1024); "" when unknown.

    Args:
        size_bytes: The size in bytes.
        at_least: Prefix "≥ " because the size leaves out what was not listed.
    """
    if size_bytes is None:
        return ""
    prefix = "≥ " if at_least else ""
    if size_bytes < 1024:
        return f"{prefix}{size_bytes} B"
    value = float(size_bytes)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            return f"{prefix}{value:.1f} {unit}"
    raise AssertionError("unreachable")


def preview_kind(path: str) -> PreviewKind:
    """How a file is previewed, from its name: extension first, then known file names."""
    name = posixpath.basename(path)
    extension = posixpath.splitext(name)[1].lower()
    if extension in _KIND_BY_EXTENSION:
        return _KIND_BY_EXTENSION[extension]
    if name in _TEXT_FILE_NAMES:
        return PreviewKind.TEXT
    return PreviewKind.NONE


def plan_preview(node: ArtifactNode) -> PreviewPlan:
    """Decide, before reading a byte, whether a file is previewed, downloadable, or neither.

    Files over :data:`PREVIEW_MAX_BYTES` are never previewed; files over
    :data:`DOWNLOAD_MAX_BYTES` are not offered as a download button either. A file of unknown
    size is treated as too big to read.
    """
    kind = preview_kind(node.path)
    size = node.size_bytes
    download = size is not None and size <= DOWNLOAD_MAX_BYTES
    if size is None:
        reason = "MLflow did not report this file's size, so it is not read here."
        return PreviewPlan(node.path, kind, size, False, False, reason)
    if size > PREVIEW_MAX_BYTES:
        reason = f"{human_size(size)} is over the {human_size(PREVIEW_MAX_BYTES)} preview limit."
        return PreviewPlan(node.path, kind, size, False, download, reason)
    if kind is PreviewKind.NONE:
        reason = "There is no preview for this type of file."
        return PreviewPlan(node.path, kind, size, False, download, reason)
    return PreviewPlan(node.path, kind, size, True, download)


def build_preview(plan: PreviewPlan, content: bytes) -> ArtifactPreview:
    """Turn a file's bytes into something safe to show; falls back to text if parsing fails.

    Args:
        plan: The decision from :func:`plan_preview`; its kind says how to read ``content``.
        content: The file's bytes.

    Returns:
        The preview. Content that does not parse as its extension claims is shown as text,
        with a note saying why; binary content gets no preview at all.
    """
    if plan.kind is PreviewKind.IMAGE:
        return _image_preview(plan.path, content)
    if _looks_binary(content) and plan.kind is not PreviewKind.PARQUET:
        return ArtifactPreview(PreviewKind.NONE, note="This file holds binary data: download it.")
    try:
        if plan.kind is PreviewKind.JSON:
            document = json.loads(content)
            if isinstance(document, dict | list):
                return ArtifactPreview(PreviewKind.JSON, value=document)
        if plan.kind in (PreviewKind.CSV, PreviewKind.TSV, PreviewKind.PARQUET):
            return _table_preview(plan.kind, content)
    except (ValueError, UnicodeDecodeError, ImportError, OSError) as exc:
        if plan.kind is PreviewKind.PARQUET:
            return ArtifactPreview(
                PreviewKind.NONE, note=f"Could not read this file as Parquet: {_first_line(exc)}"
            )
        fallback = _text_preview(plan.path, content)
        note = (
            f"Could not read it as {plan.kind.value.upper()} ({_first_line(exc)}); shown as text."
        )
        return ArtifactPreview(PreviewKind.TEXT, text=fallback.text, note=note)
    return _text_preview(plan.path, content)


def mlflow_artifact_url(tracking_uri: str, experiment_id: str, run_id: str, path: str) -> str:
    """The artifact in MLflow's own UI, for files too big to download through the dashboard."""
    return f"{mlflow_run_url(tracking_uri, experiment_id, run_id)}/artifactPath/{quote(path)}"


def _node(
    entry: ArtifactEntry, entries: Sequence[ArtifactEntry], unlisted: set[str]
) -> ArtifactNode:
    if not entry.is_dir:
        return ArtifactNode(entry.path, False, entry.size_bytes)
    prefix = entry.path + "/"
    inside = [e for e in entries if e.path.startswith(prefix)]
    size = sum(e.size_bytes or 0 for e in inside if not e.is_dir)
    complete = entry.path not in unlisted and not any(e.path in unlisted for e in inside)
    return ArtifactNode(entry.path, True, size, complete)


def _tree_key(path: str) -> tuple[str, ...]:
    """Sort so that each folder is followed by its contents ("a", "a/x", "a.txt", "b")."""
    return tuple(path.split("/"))


def _looks_binary(content: bytes) -> bool:
    return b"\x00" in content[:8192]


def _text_preview(path: str, content: bytes) -> ArtifactPreview:
    text = content.decode("utf-8", errors="replace")
    note = ""
    if len(text) > TEXT_PREVIEW_MAX_CHARS:
        text = text[:TEXT_PREVIEW_MAX_CHARS]
        note = f"Showing the first {TEXT_PREVIEW_MAX_CHARS:,} characters; download for the rest."
    return ArtifactPreview(PreviewKind.TEXT, text=text, note=note, language=_language(path))


def _language(path: str) -> str | None:
    extension = posixpath.splitext(path)[1].lower()
    if posixpath.basename(path) == "MLmodel" or extension in (".yaml", ".yml"):
        return "yaml"
    return {".py": "python", ".toml": "toml", ".ini": "ini", ".cfg": "ini"}.get(extension)


def _table_preview(kind: PreviewKind, content: bytes) -> ArtifactPreview:
    if kind is PreviewKind.PARQUET:
        frame = pd.read_parquet(io.BytesIO(content))
        total: int | None = len(frame)
        frame = frame.head(TABLE_PREVIEW_ROWS)
    else:
        separator = "\t" if kind is PreviewKind.TSV else ","
        frame = pd.read_csv(io.BytesIO(content), sep=separator, nrows=TABLE_PREVIEW_ROWS + 1)
        total = len(frame) if len(frame) <= TABLE_PREVIEW_ROWS else None
        frame = frame.head(TABLE_PREVIEW_ROWS)
    frame.columns = [str(c) for c in frame.columns]
    if total is not None and total <= TABLE_PREVIEW_ROWS:
        note = f"{_count(total, 'row')} × {_count(len(frame.columns), 'column')}"
    else:
        shown = f"{TABLE_PREVIEW_ROWS:,}"
        note = f"First {shown} of {total:,} rows" if total else f"First {shown} rows"
    return ArtifactPreview(kind, table=frame, note=note)


def _image_preview(path: str, content: bytes) -> ArtifactPreview:
    extension = posixpath.splitext(path)[1].lower()
    signatures = _IMAGE_SIGNATURES.get(extension, ())
    if not any(content.startswith(signature) for signature in signatures):
        return ArtifactPreview(
            PreviewKind.NONE, note=f"This file's content is not a {extension[1:].upper()} image."
        )
    return ArtifactPreview(PreviewKind.IMAGE, image=content)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
