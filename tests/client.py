"""A minimal HTTP client for the tests (urllib, so the tests need nothing extra)."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


class HttpError(Exception):
    def __init__(self, status: int, body: str, content_type: str):
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body
        self.content_type = content_type

    def json(self):
        return json.loads(self.body)


class Client:
    def __init__(self, base: str):
        self.base = base

    def request(self, method: str, path: str, body=None, content_type: str = "application/json"):
        data = None
        headers = {}
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as e:
            raise HttpError(e.code, e.read().decode(), e.headers.get("Content-Type", "")) from None

    def get(self, path: str):
        return json.loads(self.request("GET", path)[2])

    def post(self, path: str, body=None):
        return json.loads(self.request("POST", path, body)[2])

    def submit(self, query: str, context: dict | None = None, **extra) -> str:
        body = {"query": query, "context": context or {}, **extra}
        status, _, text = self.request("POST", "/druid/v2/sql/task", body)
        assert status == 202, text
        return json.loads(text)["taskId"]

    def status(self, task_id: str) -> dict:
        return self.get(f"/druid/indexer/v1/task/{task_id}/status")["status"]

    def report(self, task_id: str) -> dict:
        return self.get(f"/druid/indexer/v1/task/{task_id}/reports")["multiStageQuery"]["payload"]

    def wait(self, task_id: str, timeout: float = 180) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = self.status(task_id)
            if status["statusCode"] != "RUNNING":
                return status
            time.sleep(0.1)
        raise TimeoutError(f"task {task_id} still running")

    def sql(self, query: str, **body) -> list:
        return json.loads(self.request("POST", "/druid/v2/sql", {"query": query, **body})[2])
