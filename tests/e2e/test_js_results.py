"""JavaScript results are whole, as Python's are (issue 11, §9): a result's
text is not cut by util.inspect's defaults (10,000 characters of a string,
100 items of an array, depth 2 of plain data); the daemon's output bounds
are what limit it (--max-kernel-message, 6 MiB by default, caps one
message: test_memory.py covers a result beyond it)."""

from harness import main_text


def js(client, code):
    return main_text(client.execute(code, language="js", timeout=120))


def test_long_string_result_is_whole(client):
    # 400 times inspect's 10,000 characters, under --max-kernel-message.
    n = 4 * 1000 * 1000
    text = js(client, f"'x'.repeat({n})")
    assert "more characters" not in text[-100:], text[-100:]
    assert text.strip("'") == "x" * n, len(text)


def test_long_array_and_deep_data_are_whole(client):
    text = js(client, "Array.from({length: 5000}, (_, i) => i)")
    assert "more item" not in text, text[-200:]
    assert [int(v) for v in text.strip("[] \n").replace("\n", "").split(",")] == \
        list(range(5000))
    text = js(client, "JSON.parse(JSON.stringify({l1: {l2: {l3: {l4: {l5: [1, 2]}}}}}))")
    assert "[Object]" not in text and "l5: [ 1, 2 ]" in text, text
