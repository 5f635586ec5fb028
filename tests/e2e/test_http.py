"""HTTP surface: /health, routing, methods, CORS, request validation and the
body limit (docs/http-contract.md, "Routes" and "POST /execute request")."""

import json

import pytest

from harness import assert_json_type, assert_text_error, main_text


def test_health_is_json_ok(client):
    r = client.request("GET", "/health")
    assert r.status == 200, r
    assert_json_type(r)
    assert r.body.strip() == b'"OK"', r
    assert r.json() == "OK"


def test_query_string_is_ignored(client):
    # The JS SDK appends ?source=<E2B_USER_AGENT_SOURCE> to every URL.
    r = client.request("GET", "/health?source=ci")
    assert r.status == 200, r
    assert r.json() == "OK"
    assert main_text(client.execute("1+1", path="/execute?source=ci")) == "2"
    r = client.request("GET", "/contexts?source=ci")
    assert r.status == 200, r
    assert isinstance(r.json(), list)


def test_persistent_connection_serves_several_requests(client):
    # undici (the JS SDK's fetch) keeps connections alive between calls.
    conn = client.connection(60)
    try:
        for _ in range(2):
            conn.request("GET", "/health")
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read()) == "OK"
        body = json.dumps({"code": "6*7"})
        for _ in range(2):
            conn.request("POST", "/execute", body=body,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 200
            lines = [json.loads(l) for l in r.read().splitlines()]
            assert lines[-1] == {"type": "end_of_execution"}
            assert {"type": "result", "text": "42", "is_main_result": True,
                    "extra": {}} in lines
        conn.request("GET", "/contexts")
        r = conn.getresponse()
        assert r.status == 200 and isinstance(json.loads(r.read()), list)
    finally:
        conn.close()


@pytest.mark.parametrize("method,path", [
    ("GET", "/"),
    ("GET", "/nope"),
    ("POST", "/executes"),
    ("GET", "/contexts/abc/restart/more"),
    ("POST", "/contexts/abc/nope"),
])
def test_unknown_route_is_404(client, method, path):
    r = client.request(method, path, body={} if method == "POST" else None)
    assert r.status == 404, r


@pytest.mark.parametrize("method,path", [
    ("GET", "/execute"),
    ("PUT", "/contexts"),
    ("DELETE", "/contexts"),
    ("POST", "/health"),
    ("GET", "/contexts/abc/restart"),
    ("PATCH", "/contexts/abc"),
])
def test_wrong_method_is_405(client, method, path):
    r = client.request(method, path)
    assert r.status == 405, r


def test_cors_preflight(client):
    r = client.request("OPTIONS", "/execute", headers={
        "Origin": "http://example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-access-token,e2b-sandbox-id",
    })
    assert 200 <= r.status < 300, r
    origin = r.headers.get("access-control-allow-origin")
    assert origin in ("*", "http://example.com"), r
    methods = r.headers.get("access-control-allow-methods", "")
    assert methods.strip() == "*" or "POST" in methods.upper(), r
    allowed = r.headers.get("access-control-allow-headers", "").lower()
    assert allowed.strip() == "*" or all(
        h in allowed for h in ("content-type", "x-access-token", "e2b-sandbox-id")), r


@pytest.mark.parametrize("path", ["/contexts", "/contexts/abc", "/health"])
def test_cors_preflight_other_routes(client, path):
    r = client.request("OPTIONS", path, headers={
        "Origin": "http://example.com",
        "Access-Control-Request-Method": "DELETE" if path == "/contexts/abc" else "GET",
    })
    assert 200 <= r.status < 300, r
    assert r.headers.get("access-control-allow-origin") in ("*", "http://example.com"), r


def test_cors_on_normal_responses(client):
    hdr = {"Origin": "http://example.com"}
    for method, path, body in (("GET", "/health", None), ("GET", "/contexts", None),
                               ("POST", "/execute", {"code": "1"}),
                               ("GET", "/nope", None)):
        r = client.request(method, path, body=body, headers=hdr)
        assert r.headers.get("access-control-allow-origin") in (
            "*", "http://example.com"), (method, path, r)


# ------------------------------------------------------------ validation

def test_context_id_and_language_is_400(client):
    r = client.request("POST", "/execute", {"code": "1", "context_id": "x",
                                            "language": "python"})
    assert_text_error(r, 400)


@pytest.mark.parametrize("body", [b'{"code": ', b"not json", b'{"code": "1"} x',
                                  b"\xff\xfe"])
def test_malformed_json_is_400(client, body):
    r = client.request("POST", "/execute", body)
    assert_text_error(r, 400)


@pytest.mark.parametrize("body", [b"[]", b'"code"', b"null", b"1"])
def test_body_not_an_object_is_rejected(client, body):
    r = client.request("POST", "/execute", body)
    assert_text_error(r, range(400, 423))
    assert r.status in (400, 422), r


@pytest.mark.parametrize("body", [
    {},
    {"context_id": None},
    {"code": None},
    {"code": 1},
    {"code": ["1+1"]},
    {"code": "1", "env_vars": {"K": 1}},
    {"code": "1", "env_vars": {"K": None}},
    {"code": "1", "env_vars": {"K": {"a": "b"}}},
    {"code": "1", "env_vars": "K=V"},
    {"code": "1", "env_vars": ["K", "V"]},
    {"code": "1", "context_id": 5},
    {"code": "1", "language": ["python"]},
], ids=lambda b: json.dumps(b))
def test_schema_violation_is_422(client, body):
    r = client.request("POST", "/execute", body)
    assert_text_error(r, 422)


def test_python_sdk_shape_with_nulls(client):
    # The Python SDK sends all four keys, unset ones as null.
    lines = client.execute("1+1", context_id=None, language=None, env_vars=None)
    assert main_text(lines) == "2"


def test_empty_env_vars_object(client):
    assert main_text(client.execute("1+1", env_vars={})) == "2"


def test_unknown_request_keys_are_ignored(client):
    assert main_text(client.execute("1+1", future_field={"x": 1})) == "2"


@pytest.mark.parametrize("body", [b"", b"{}"])
def test_create_context_accepts_empty_body(client, daemon, body):
    r = client.request("POST", "/contexts", body)
    try:
        assert r.status == 200, r
        ctx = r.json()
        assert ctx["language"] == "python" and ctx["cwd"] == daemon.cwd, ctx
    finally:
        if r.status == 200:
            client.delete(r.json()["id"])


@pytest.mark.parametrize("body", [{"language": 5}, {"cwd": 5}, {"cwd": ["/tmp"]}],
                         ids=lambda b: json.dumps(b))
def test_create_context_schema_violation(client, body):
    r = client.request("POST", "/contexts", body)
    assert_text_error(r, range(400, 500))


def test_create_context_malformed_json(client):
    assert_text_error(client.request("POST", "/contexts", b'{"language": '), 400)


# ------------------------------------------------------------ body limit

def test_body_over_max_body_is_413(aux_daemon):
    c = aux_daemon.client()
    code = "# " + "x" * 10_000 + "\n1"
    r = c.request("POST", "/execute", {"code": code})
    assert r.status == 413, r
    # The daemon is still fine, and a body under the limit runs.
    assert c.request("GET", "/health").status == 200
    assert main_text(c.execute("# " + "y" * 3000 + "\n1+1")) == "2"


def test_body_over_max_body_on_contexts_is_413(aux_daemon):
    c = aux_daemon.client()
    r = c.request("POST", "/contexts", {"cwd": "/" + "d" * 10_000})
    assert r.status == 413, r
