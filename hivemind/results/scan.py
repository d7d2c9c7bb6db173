"""The final scan of written files: every file the results module stages, and every snapshot, is searched for
a key variable's value (as bytes) and for key-shaped strings (text, Parquet columns, SQLite stores and
compressed containers read decoded, as compression or page overflow may split a string in the bytes).

The patterns and the key variables are hivemind.core.secrets'; this module lives above the store because it
reads store files through it (only the store speaks SQL).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from hivemind.core.errors import HivemindError
from hivemind.core.secrets import ALLOW_KEY_SHAPED, find_key_shaped, hint, secret_values
from hivemind.store import Store

# The final scan ------------------------------------------------------------------------------------

DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")
TEXT_SUFFIXES = {".csv", ".json", ".jsonl", ".md", ".html", ".htm", ".yaml", ".yml", ".txt", ".tsv"}


def find_secrets(paths: Iterable[str | Path], config=None) -> list[tuple[Path, str]]:
    """(file, what) for each file under paths that holds a key variable's value or a key-shaped string.

    Every file is searched as bytes for the values; text files (and Parquet files and SQLite stores, whose
    strings are read decoded, as compression or page overflow may split them in the bytes) also for
    key-shaped strings."""
    secrets = secret_values(config)
    allow_shapes = os.environ.get(ALLOW_KEY_SHAPED, "") == "1"
    hits = []
    for path in _files(paths):
        for what in _file_hits(path, secrets, allow_shapes):
            hits.append((path, what))
    return hits


def scan_paths(paths: Iterable[str | Path] | str | Path, config=None, remove: bool = False) -> None:
    """Raise HivemindError naming each file (never the secret) that holds one; remove=True deletes those
    files first (for outputs that can be written again, never for a store)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = list(paths)
    hits = find_secrets(paths, config)
    if not hits:
        return
    if remove:
        for path, _ in hits:
            if path.suffix not in {".sqlite", ".db"}:
                path.unlink(missing_ok=True)
    raise HivemindError(leak_message("refusing to keep output that holds a secret" + (" (removed)" if remove else ""),
                                     [f"{path} ({what})" for path, what in hits]))


def leak_message(head: str, hits: list[str]) -> str:
    return (f"{head}: {'; '.join(hits)}. Keys come only from the environment; find where it entered (a config "
            f"value, a prompt, an answer) and remove it. A key-shaped string that is a model's made-up example "
            f"may be allowed with {ALLOW_KEY_SHAPED}=1 (key variables' values never are).")


def _files(paths: Iterable[str | Path]) -> list[Path]:
    files = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.is_file():
            files.append(path)
    return files


def _file_hits(path: Path, secrets: dict[str, str], allow_shapes: bool) -> list[str]:
    try:
        content = path.read_bytes()
    except OSError as err:
        raise HivemindError(f"{path}: cannot read it to check for secrets ({err.strerror})") from None
    texts = _decoded_strings(path)
    hits = []
    for name, value in secrets.items():
        if value.encode("utf-8") in content or any(value in text for text in texts):
            hits.append(f"the value of {name}")
    if not allow_shapes:
        sources = texts if texts else [content.decode("utf-8", errors="replace")] if _is_text(path, content) else []
        for text in sources:
            text = DATA_URI.sub("data:", text)  # embedded figures: base64 can spell AIza... by chance
            shapes = find_key_shaped(text, strict=True)
            if shapes:
                hits.append(f"a key-shaped string {hint(shapes[0])}")
                break
    return hits


def _is_text(path: Path, content: bytes) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES or (b"\0" not in content[:4096] and path.suffix.lower() != ".png")


def _decoded_strings(path: Path) -> list[str]:
    """The strings inside a Parquet file, an SQLite store or a compressed container (zip, such as Inspect's
    `.eval` logs, or gzip), where the bytes on disk do not spell them; [] for other files (searched as bytes).
    Told apart by their first bytes, not their names, so a renamed file is still read."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if path.suffix.lower() == ".parquet" or head[:4] == b"PAR1":
        return _parquet_strings(path)
    if head == b"SQLite format 3\x00":
        return _store_strings(path)
    if head[:4] == b"PK\x03\x04" or head[:2] == b"\x1f\x8b":
        return _container_strings(path.name, path.read_bytes())
    return []


MAX_UNPACKED = 2 << 30    # bytes unpacked from one container: a zip bomb is refused, not scanned forever


def _container_strings(name: str, content: bytes, depth: int = 0) -> list[str]:
    """Every member of a zip or gzip container (nested ones too, three deep), decoded as UTF-8."""
    import gzip
    import io
    import zipfile
    import zlib

    if depth > 3:
        raise HivemindError(f"{name}: containers nested too deep to check for secrets")
    members: list[tuple[str, bytes]] = []
    try:
        if content[:2] == b"\x1f\x8b":
            with gzip.open(io.BytesIO(content)) as handle:
                members.append((name, handle.read(MAX_UNPACKED + 1)))
        else:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED:
                    raise HivemindError(f"{name}: unpacks to more than {MAX_UNPACKED >> 30} GB; not kept")
                members += [(f"{name}/{info.filename}", archive.read(info)) for info in archive.infolist()
                            if not info.is_dir()]
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError) as err:
        raise HivemindError(f"{name}: a damaged compressed file ({err}); cannot check it for secrets") from None
    texts = []
    for member, data in members:
        if len(data) > MAX_UNPACKED:
            raise HivemindError(f"{member}: unpacks to more than {MAX_UNPACKED >> 30} GB; not kept")
        if data[:4] == b"PK\x03\x04" or data[:2] == b"\x1f\x8b":
            texts += _container_strings(member, data, depth + 1)
        else:
            texts.append(data.decode("utf-8", errors="replace"))
    return texts


def _parquet_strings(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise HivemindError(f"{path}: not a readable Parquet file ({err}); cannot check it for secrets") from None
    out = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            out.append("\n".join(v for v in column.to_pylist() if v is not None))
    return out


def _store_strings(path: Path) -> list[str]:
    try:
        with Store.open_readonly(path) as store:
            frame = store.responses_frame()
            texts = ["\n".join(frame[c].dropna().astype(str)) for c in frame.columns if frame[c].dtype == object]
            texts += ["\n".join(f"{s['model']} {s['api_base']} {s['params']}" for s in store.systems())]
            texts += ["\n".join(p.text for p in store.prompts())]
    except Exception:  # an unreadable store is reported by the stages; here its bytes are still searched
        return []
    return texts
