"""A small Hugging Face Hub-shaped HTTP server on 127.0.0.1, for push and download tests without a network.

huggingface_hub is pointed at it with HF_ENDPOINT (read when huggingface_hub is imported, so tests run the
client in a subprocess), and its real HTTP code paths run: create_repo, list_repo_tree, the README
validation, preupload, the NDJSON commit, create_tag, repo_info and the resolve HEAD/GET of snapshot_download.

Only what hivemind uses is served. Every file is a regular git blob (preupload never answers "lfs"), so no
LFS or Xet transfer is involved. Each commit is recorded: `hub.commits[repo]` lists them with their files.

    with FakeHub() as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_fake"}
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]          # the whole tree after this commit
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass
class Repo:
    commits: list[Commit] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)   # branch or tag -> commit oid
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.refs.get(revision) or self.tags.get(revision) or revision
        return next((c for c in self.commits if c.oid == oid), None)

    def commit(self, message: str, files: dict[str, bytes], added, deleted) -> Commit:
        oid = hashlib.sha1(f"{len(self.commits)}:{message}".encode() + repr(sorted(files)).encode()).hexdigest()
        self.commits.append(Commit(oid, message, files, list(added), list(deleted)))
        self.refs["main"] = oid
        return self.commits[-1]


class FakeHub:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def create(self, repo_id: str) -> bool:
        with self.lock:
            if repo_id in self.repos:
                return False
            repo = Repo()
            repo.commit("initial commit", {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"},
                         [".gitattributes"], [])
            self.repos[repo_id] = repo
            return True


_API = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/(?P<action>tree|preupload|commit|tag|revision|refs)"
                  r"/?(?P<rest>.*)$")
_RESOLVE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    @property
    def hub(self) -> FakeHub:
        return self.server.hub

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, status: int, data, headers: dict | None = None) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, code: str = "") -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code} if code else None)

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "Repository not found", "RepoNotFound")
        return repo

    # Routes -----------------------------------------------------------------------------------
    def do_POST(self) -> None:
        path = unquote(urlparse(self.path).path)
        body = self._body()
        if path == "/api/repos/create":
            data = json.loads(body)
            repo_id = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
            if self.hub.create(repo_id):
                return self._json(200, {"url": f"{self.hub.url}/datasets/{repo_id}", "name": repo_id})
            return self._json(409, {"error": "You already created this dataset repo",
                                    "url": f"{self.hub.url}/datasets/{repo_id}"})
        if path == "/api/validate-yaml":
            return self._json(200, {})
        match = _API.match(path)
        if not match:
            return self._error(404, f"no route {path}")
        repo = self._repo(match["repo"])
        if repo is None:
            return
        action = match["action"]
        if action == "preupload":
            files = json.loads(body)["files"]
            return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                               "oid": None} for f in files]})
        if action == "commit":
            return self._commit(repo, match["repo"], body)
        if action == "tag":
            tag = json.loads(body)["tag"]
            with self.hub.lock:
                target = repo.resolve(unquote(match["rest"]))
                if target is None:
                    return self._error(404, "Revision not found", "RevisionNotFound")
                if tag in repo.tags:
                    return self._error(409, f"tag {tag} already exists")
                repo.tags[tag] = target.oid
            return self._json(200, {})
        return self._error(404, f"no route {path}")

    def _commit(self, repo: Repo, repo_id: str, body: bytes) -> None:
        header, added, deleted = {}, {}, []
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if item["key"] == "header":
                header = item["value"]
            elif item["key"] == "file":
                added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                deleted.append(item["value"]["path"])
            else:
                return self._error(400, f"unsupported commit operation {item['key']}")
        with self.hub.lock:
            files = dict(repo.resolve("main").files)
            for path in deleted:
                files.pop(path, None)
            files.update(added)
            commit = repo.commit(header.get("summary", ""), files, added, deleted)
        self._json(200, {"commitUrl": f"{self.hub.url}/datasets/{repo_id}/commit/{commit.oid}",
                         "commitOid": commit.oid, "success": True})

    def do_GET(self) -> None:
        self._get(send_body=True)

    def do_HEAD(self) -> None:
        self._get(send_body=False)

    def _get(self, send_body: bool) -> None:
        path = unquote(urlparse(self.path).path)
        match = _RESOLVE.match(path)
        if match:
            return self._file(match["repo"], match["revision"], match["path"], send_body)
        match = _API.match(path)
        if not match or match["action"] not in ("tree", "revision", "refs"):
            return self._error(404, f"no route {path}")
        repo = self._repo(match["repo"])
        if repo is None:
            return
        if match["action"] == "refs":
            return self._json(200, {
                "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": o} for n, o in repo.refs.items()],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": o} for n, o in repo.tags.items()],
                "converts": []})
        revision = match["rest"].split("/", 1)[0]
        commit = repo.resolve(revision)
        if commit is None:
            return self._error(404, "Revision not found", "RevisionNotFound")
        if match["action"] == "revision":
            return self._json(200, {"id": match["repo"], "sha": commit.oid, "private": False,
                                    "siblings": [{"rfilename": p} for p in sorted(commit.files)]})
        entries = [{"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": p}
                   for p, data in sorted(commit.files.items())]
        self._json(200, entries)

    def _file(self, repo_id: str, revision: str, file_path: str, send_body: bool) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return
        commit = repo.resolve(revision)
        if commit is None or file_path not in commit.files:
            return self._error(404, "Entry not found", "EntryNotFound")
        data = commit.files[file_path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{git_blob_sha1(data)}"')
        self.send_header("X-Repo-Commit", commit.oid)
        self.end_headers()
        if send_body:
            self.wfile.write(data)
