"""stdout and stderr arrive in the order the cell wrote them, wherever the
kernel can know it (issue 11 §9): our kernel host reads the runner's pipes
in the order data arrived in them (an edge-triggered epoll set), and bash's
begin marker has a pipe of its own, so both output pipes are empty when a
cell starts.

What the kernel cannot know is the order of writes that land in both pipes
before it reads either; so the interleaved case waits between writes
(0.1 s, far longer than the host needs to read a pipe).
"""

import pytest

from harness import content, error, need_kernel


def sequence(lines):
    """[(stream, line), ...] in arrival order, however the text was cut
    into stream lines."""
    out, partial = [], {}
    for l in content(lines):
        if l["type"] not in ("stdout", "stderr"):
            continue
        text = partial.pop(l["type"], "") + l["text"]
        *done, rest = text.split("\n")
        out += [(l["type"], d) for d in done]
        if rest:
            partial[l["type"]] = rest
    return out


@pytest.fixture
def lang_ctx(client, new_context):
    def make(lang):
        need_kernel(lang)
        return new_context({"language": lang})
    return make


def run(client, ctx, code):
    lines = client.execute(code, context_id=ctx["id"], timeout=60)
    assert error(lines) is None, lines
    return sequence(lines)


BASH_FIRST = [
    ("echo err >&2; echo out", [("stderr", "err"), ("stdout", "out")]),
    ("echo out; echo err >&2", [("stdout", "out"), ("stderr", "err")]),
    ("printf e1 >&2; printf '\\n' >&2; /bin/echo o1",
     [("stderr", "e1"), ("stdout", "o1")]),
]


@pytest.mark.parametrize("code,want", BASH_FIRST, ids=["err-out", "out-err", "child"])
def test_bash_first_write_comes_first(client, lang_ctx, code, want):
    ctx = lang_ctx("bash")
    # Several times: the order must not depend on when the host woke up.
    for _ in range(5):
        assert run(client, ctx, code) == want


def test_bash_interleaved_writes_keep_their_order(client, lang_ctx):
    ctx = lang_ctx("bash")
    code = ("for i in 1 2 3; do echo o$i; sleep 0.1; echo e$i >&2; sleep 0.1; "
            "done")
    want = [(s, f"{s[3]}{i}") for i in (1, 2, 3) for s in ("stdout", "stderr")]
    assert run(client, ctx, code) == want


def test_javascript_first_write_comes_first(client, lang_ctx):
    ctx = lang_ctx("javascript")
    for _ in range(5):
        assert run(client, ctx, "console.error('err'); console.log('out');") \
            == [("stderr", "err"), ("stdout", "out")]
