"""The Java kernel behind the daemon (issue 10, item 5; issue 11, item 7):
each flush of System.out is one stdout line of the stream, so println's
text arrives without its newline first, as the E2B SDK's own Java test
expects (logs.stdout[0] == "Hello, World!"); and no failing snippet breaks
the JShell session: a class-file limit (here through an env var far over
the 64 KiB constant limit, and a string literal) fails its cell only."""

import pytest

from harness import error, main_text, of_type, stdout


@pytest.fixture
def java_ctx(new_context):
    return new_context({"language": "java"})


def chunks(lines):
    return [l["text"] for l in of_type(lines, "stdout")]


def test_println_arrives_without_its_newline_first(client, java_ctx):
    lines = client.execute('System.out.println("Hello, World!")', context_id=java_ctx["id"])
    assert error(lines) is None, lines
    assert chunks(lines) == ["Hello, World!", "\n"]
    # The default Java context, as the SDK's run_code(language="java") uses it.
    lines = client.execute('System.out.println("Hello, World!")', language="java")
    assert chunks(lines)[0] == "Hello, World!"


def assert_healthy(client, ctx):
    assert error(client.execute("int q = 5;", context_id=ctx["id"])) is None
    assert main_text(client.execute("q", context_id=ctx["id"])) == "5"
    lines = client.execute('System.out.println("still here")', context_id=ctx["id"])
    assert stdout(lines) == "still here\n", lines


def test_huge_env_value_does_not_poison_the_context(client, java_ctx):
    client.execute("1", context_id=java_ctx["id"], env_vars={"L": "x" * 49200},
                   timeout=120)
    assert_healthy(client, java_ctx)


def test_huge_string_literal_fails_only_its_cell(client, java_ctx):
    lines = client.execute('String big = "' + "y" * 70000 + '";', context_id=java_ctx["id"],
                           timeout=120)
    err = error(lines)
    assert err is not None and err["name"] == "CompilationError", lines
    assert "constant string too long" in err["value"]
    assert_healthy(client, java_ctx)
