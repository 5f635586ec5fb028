"""/health, the default contexts and what the daemon says when one of them
cannot start.

- A default language without a kernelspec is skipped with a warning, and
  the list of default languages stays intact around it (main.c dropped it
  with a memmove one element too long, which ASan reports as a heap
  overflow for a one-letter language).
"""

import harness


def test_default_language_without_kernel_is_skipped(make_daemon):
    # "q" has no kernelspec anywhere. A one-letter name makes the list
    # exactly two pointers long ("q" and NULL), so moving one element too
    # many reads past it (ASan: heap-buffer-overflow).
    d = make_daemon(args=["--default-languages", "q"]).wait_healthy()
    assert "no kernel installed for default language q" in d.log_text()
    assert d.client().contexts() == []


def test_default_languages_around_a_missing_one_are_kept(make_daemon):
    d = make_daemon(args=["--default-languages", "q,python,z"]).wait_healthy()
    ctxs = d.client().contexts()
    assert [c["language"] for c in ctxs] == ["python"], ctxs
    log = d.log_text()
    assert "default language q;" in log and "default language z;" in log
