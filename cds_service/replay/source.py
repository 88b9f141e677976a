"""Reading SOURCE: FHIR Bulk Data NDJSON folders, folders of Bundles, or one Bundle, plain or gzip.

A SOURCE is a file or a folder; a folder is read recursively, its files in name order. Which files are read:

| file name ends in                            | read as                                                     |
|-----------------------------------------------|-------------------------------------------------------------|
| ``.ndjson``, ``.jsonl`` (and ``.gz``)         | one resource a line, as ``$export`` writes them (any split, |
|                                               | any name); a Bundle on a line is unpacked                   |
| ``.json`` (and ``.gz``)                       | one Bundle (urn:uuid references resolved) or one resource;  |
|                                               | a Bulk Data ``$export`` manifest is passed over             |
| anything else, or a name starting with ``.``  | not read                                                    |

Compression is recognised by content (the gzip magic bytes), not by name. A line or file that cannot be read
is a ``Problem`` (kind and where), never an exception: the caller counts it and reading goes on. Only a SOURCE
that is missing, or holds no file to read, raises ``SourceError``.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, cast

from cds_service.fhir.memory import resources_from_bundle

LINE_SUFFIXES: Final = (".ndjson", ".jsonl")
DOCUMENT_SUFFIXES: Final = (".json",)
_GZIP_MAGIC: Final = b"\x1f\x8b"
_BOM: Final = b"\xef\xbb\xbf"

# Problem kinds: a stable code and what it means, as the report states it.
PROBLEM_KINDS: Final[Mapping[str, str]] = {
    "unreadable-line": "a line that is not JSON (or not UTF-8): skipped",
    "not-a-resource": "JSON that is not a FHIR resource (no resourceType): skipped",
    "unreadable-file": "a file that could not be read, or is not JSON: skipped",
    "not-fhir": "a JSON file that is neither a FHIR resource nor a Bundle: skipped",
    "truncated-gzip": "a compressed file that ends early or is corrupt: what came before was used, the rest skipped",
    "no-patient": "a resource of a type the service reads, with no patient reference: not used",
    "no-id": "a resource without an id: used, with an id made for the replay (as a FHIR server would give one)",
    "patient-not-in-export": "resources of a patient whose Patient resource is not in the export: not replayed",
    "medication-not-in-export": "a medicationReference to a Medication that is not in the export: the service "
    "could not tell what the drug was",
    "order-without-date": "a ketamine or esketamine order without a usable authoredOn: not replayed (no instant "
    "to replay it at)",
    "evaluation-error": "an order the service failed on (it would have answered HTTP 500): the run went on",
}


class SourceError(Exception):
    """SOURCE cannot be used at all (missing, or no file to read). The message says which and why."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path
    label: str  # how the report names it: the SOURCE argument joined with the path inside it
    lines: bool  # NDJSON (one resource a line) rather than one JSON document


@dataclass(frozen=True, slots=True)
class Problem:
    """Input that could not be used: ``kind`` (a key of PROBLEM_KINDS) and where it is (``file:line``)."""

    kind: str
    file: str
    position: int  # line (NDJSON) or entry (Bundle) number, from 1; 0 for the whole file


ProblemSink = Callable[[Problem], None]


def discover(sources: Sequence[str]) -> list[SourceFile]:
    """Every file to read, in a fixed order (SOURCE arguments in the order given, then by path)."""
    if not sources:
        raise SourceError("no SOURCE given")
    files: list[SourceFile] = []
    for source in sources:
        root = Path(source)
        if not root.exists():
            raise SourceError(f"{source}: no such file or folder")
        if root.is_file():
            kind = _kind(root)
            if kind is None:
                raise SourceError(f"{source}: not an NDJSON (.ndjson, .jsonl) or JSON (.json) file, plain or .gz")
            if root.stat().st_size == 0:
                raise SourceError(f"{source}: the file is empty")
            files.append(SourceFile(root, source, kind))
            continue
        found = [
            SourceFile(p, str(Path(source) / p.relative_to(root)), kind)
            for p in sorted(root.rglob("*"))
            if p.is_file() and not _hidden(p.relative_to(root)) and (kind := _kind(p)) is not None
        ]
        if not any(f.path.stat().st_size for f in found):
            raise SourceError(
                f"{source}: no NDJSON (.ndjson, .jsonl) or Bundle (.json) file with content in this folder"
            )
        files.extend(found)
    return files


def _kind(path: Path) -> bool | None:
    """True for NDJSON, False for a JSON document, None for a file not read."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(LINE_SUFFIXES):
        return True
    if name.endswith(DOCUMENT_SUFFIXES):
        return False
    return None


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def read_resources(file: SourceFile, problem: ProblemSink) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, resource) for every resource of ``file``; everything unusable goes to ``problem``."""
    try:
        handle = _open(file.path)
    except OSError:
        problem(Problem("unreadable-file", file.label, 0))
        return
    with handle:
        if file.lines:
            yield from _lines(handle, file.label, problem)
        else:
            yield from _document(handle, file.label, problem)


def _open(path: Path) -> IO[bytes]:
    handle: IO[bytes] = path.open("rb")
    if handle.read(2) == _GZIP_MAGIC:
        handle.seek(0)
        return cast(IO[bytes], gzip.GzipFile(fileobj=handle, mode="rb"))  # closing it leaves the file open
    handle.seek(0)
    return handle


def _lines(handle: Iterable[bytes], label: str, problem: ProblemSink) -> Iterator[tuple[int, dict[str, Any]]]:
    number = 0
    try:
        for number, raw in enumerate(handle, 1):  # the number is also read after a failure
            line = raw.strip()
            if number == 1:
                line = line.removeprefix(_BOM)
            if not line:
                continue
            try:
                doc = json.loads(line)
            except (ValueError, RecursionError):
                problem(Problem("unreadable-line", label, number))
                continue
            yield from _resources_in(doc, number, label, problem)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        problem(Problem("truncated-gzip", label, number + 1))
    except OSError:
        problem(Problem("unreadable-file", label, number + 1))
    finally:
        _close_inner(handle)


def _document(handle: IO[bytes], label: str, problem: ProblemSink) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        data = handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error):
        problem(Problem("truncated-gzip", label, 0))
        return
    except OSError:
        problem(Problem("unreadable-file", label, 0))
        return
    finally:
        _close_inner(handle)
    try:
        doc = json.loads(data.removeprefix(_BOM))
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # NDJSON in a file named .json: read it line by line
            yield from _lines(_BytesLines(data), label, problem)
            return
        problem(Problem("unreadable-file", label, 0))
        return
    except (ValueError, RecursionError):
        problem(Problem("unreadable-file", label, 0))
        return
    if isinstance(doc, dict) and "resourceType" not in doc and "transactionTime" in doc and "output" in doc:
        return  # the Bulk Data $export manifest: it lists the files, it holds no resource
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        problem(Problem("not-fhir", label, 0))
        return
    if doc["resourceType"] == "Bundle":
        yield from _bundle(doc, 0, label, problem)
    else:
        yield 1, doc


def _resources_in(
    doc: Any, position: int, label: str, problem: ProblemSink
) -> Iterator[tuple[int, dict[str, Any]]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str) or not doc["resourceType"]:
        problem(Problem("not-a-resource", label, position))
    elif doc["resourceType"] == "Bundle":
        yield from _bundle(doc, position, label, problem)
    else:
        yield position, doc


def _bundle(
    bundle: Mapping[str, Any], position: int, label: str, problem: ProblemSink
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The resources of a Bundle, numbered by entry (or all at ``position``, for a Bundle on an NDJSON line)."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return
    for number, resource in enumerate(resources_from_bundle(bundle), 1):
        yield from _resources_in(resource, position or number, label, problem)


def _close_inner(handle: object) -> None:
    """Close the file under a GzipFile (GzipFile.close leaves a file object it was given open)."""
    inner = getattr(handle, "fileobj", None)
    if inner is not None:
        inner.close()


class _BytesLines:
    """Lines of an in-memory document, read like a binary file."""

    def __init__(self, data: bytes) -> None:
        self._lines = data.splitlines(keepends=True)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._lines)


def patient_key(resource: Mapping[str, Any]) -> str | None:
    """The id of the patient ``resource`` belongs to: its own id for a Patient, else the id in its
    ``subject`` or ``patient`` reference (``Patient/1``, ``https://ehr/fhir/Patient/1/_history/2``,
    ``urn:uuid:1``); None when there is none."""
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) and rid else None
    for element in ("subject", "patient"):
        holder = resource.get(element)
        reference = holder.get("reference") if isinstance(holder, Mapping) else None
        if isinstance(reference, str):
            return reference_id(reference)
    return None


def reference_id(reference: str) -> str | None:
    """The Patient id in a reference; None when it does not name a Patient."""
    if reference.startswith("urn:uuid:"):
        return reference.removeprefix("urn:uuid:") or None
    head = reference.split("/_history/", 1)[0].rstrip("/")
    if "Patient/" not in head:
        return None
    rid = head.rsplit("Patient/", 1)[1]
    return rid if rid and "/" not in rid else None


def with_canonical_reference(resource: dict[str, Any], key: str) -> dict[str, Any]:
    """``resource`` whose patient reference reads ``Patient/<key>``, the way a FHIR server's search answers
    name a patient of its own (a copy when it read otherwise, e.g. an absolute URL)."""
    if resource.get("resourceType") == "Patient":
        return resource
    canonical = f"Patient/{key}"
    for element in ("subject", "patient"):
        holder = resource.get(element)
        if isinstance(holder, Mapping) and isinstance(holder.get("reference"), str):
            if holder["reference"] == canonical:
                return resource
            return {**resource, element: {**holder, "reference": canonical}}
    return resource
