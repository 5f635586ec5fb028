# mk/loadtest.mk: `make loadtest`, `make loadtest-quick` and `make valgrind`
# (included by the top Makefile).
#
#   make loadtest        load, fault and soak scenarios at full size (a few
#                        minutes on 2 cores): 500 concurrent /health, 100
#                        concurrent streams over 20 contexts, aborting
#                        clients, SIGKILLed kernels, a 10,000-execution soak,
#                        a 300 MB print read as it arrives and read late.
#                        Each row shows the daemon's peak RSS (VmHWM), which
#                        must stay under --max-backlog-total + 32 MiB.
#                        Prints the table, writes $(BUILD)/loadtest-results.json
#                        and tests/load/latest.md (the README's table).
#   make loadtest-quick  the same scenarios with small counts and prints of
#                        40 and 80 MB (< 1 min), for `make test`; writes
#                        $(BUILD)/loadtest-quick.json only.
#   make valgrind        the end-to-end tier (tests/e2e) with every daemon
#                        under valgrind memcheck (tests/load/valgrind-e2b-ci):
#                        a memory error or a definite leak makes the daemon
#                        exit 99 instead of 0, which fails the test that
#                        stopped it; the logs with errors are printed at the
#                        end (kept in $(BUILD)/valgrind/). Debian 12's
#                        valgrind (3.19) lacks the pidfd_open system call,
#                        so the daemon gets tests/load/pidfd_shim.c preloaded
#                        (a pipe that turns readable when the child exits).
#
# LOADTEST_ARGS adds options to tests/load/loadtest.py (--seed N,
# --only health,bigprint,lateread, --log-level debug, --rss-slack-mib M; see --help).

LOADTEST_ARGS ?=
VALGRIND_LOGS  = $(abspath $(BUILD)/valgrind)

.PHONY: loadtest loadtest-quick valgrind

loadtest: $(BUILD)/e2b-ci
	$(PY) tests/load/loadtest.py --bin $(abspath $(BUILD)/e2b-ci) \
		--out $(BUILD)/loadtest-results.json --md tests/load/latest.md \
		$(LOADTEST_ARGS)

loadtest-quick: $(BUILD)/e2b-ci
	$(PY) tests/load/loadtest.py --quick --bin $(abspath $(BUILD)/e2b-ci) \
		--out $(BUILD)/loadtest-quick.json $(LOADTEST_ARGS)

$(BUILD)/pidfd_shim.so: tests/load/pidfd_shim.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O1 -g -fPIC -shared -o $@ $< -lpthread

# The harness starts E2BCI_BIN itself; the wrapper execs valgrind with the
# real binary. Both the tests and the log scan must pass.
valgrind: $(BUILD)/e2b-ci $(BUILD)/pidfd_shim.so
	@command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)" >&2; exit 2; }
	rm -rf $(VALGRIND_LOGS) && mkdir -p $(VALGRIND_LOGS)
	@st=0; \
	E2BCI_BIN=$(abspath tests/load/valgrind-e2b-ci) \
	E2BCI_REAL_BIN=$(abspath $(BUILD)/e2b-ci) \
	E2BCI_VALGRIND_LOGS=$(VALGRIND_LOGS) \
	E2BCI_VALGRIND_PRELOAD=$(abspath $(BUILD)/pidfd_shim.so) \
		$(PY) -m pytest -q tests/e2e || st=$$?; \
	tests/load/valgrind-report $(VALGRIND_LOGS) || st=1; \
	exit $$st
