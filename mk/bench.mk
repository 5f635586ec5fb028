# mk/bench.mk: `make bench` (included by the top Makefile).
#
#   make bench                      e2b-ci next to its direct-ZeroMQ floor
#   make bench AGAINST=http://h:p   the HTTP rows also against another
#                                   E2B-compatible server (extra column)
#
# build/bench (tests/bench/*.c; bench.h says which file does what) starts
# the daemon itself (loopback, free port, temp dirs) and talks to the same
# kernelspec directly through the daemon's own kernel_ module as the floor,
# then starts every language's kernel (3 starts each, one at a time) for
# the "Kernels" table (start p50, idle RSS of the kernel's process tree);
# it writes the measurements to $(BUILD)/bench-measured.json.
# tests/bench/report.py turns them into rows, prints the tables and writes
# $(BUILD)/bench-results.json plus tests/bench/latest.{json,md};
# tests/bench/chart.py draws tests/bench/latest.svg from the results.

AGAINST ?=

.PHONY: bench

# libfloor.c is a program of its own; every other .c here is part of bench.
BENCH_SRCS := $(filter-out tests/bench/libfloor.c,$(wildcard tests/bench/*.c))
BENCH_OBJS := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/obj-bench/%.o)

$(BUILD)/obj-bench/%.o: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -Itests/bench -c -o $@ $<

$(BUILD)/bench: $(BENCH_OBJS) $(BUILD)/libe2bci.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS) -lm

# The daemon's libraries alone, initialised and idle: the RSS floor.
$(BUILD)/libfloor: tests/bench/libfloor.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) $(LDFLAGS) -o $@ $< $(LIBS)

bench: all $(BUILD)/bench $(BUILD)/libfloor
	$(BUILD)/bench --daemon $(abspath $(BUILD)/e2b-ci) \
		--lib-floor $(abspath $(BUILD)/libfloor) \
		--out $(BUILD)/bench-measured.json \
		$(if $(AGAINST),--against $(AGAINST))
	$(PY) tests/bench/report.py $(BUILD)/bench-measured.json \
		$(BUILD)/bench-results.json \
		--copy tests/bench/latest.json --md tests/bench/latest.md
	$(PY) tests/bench/chart.py $(BUILD)/bench-results.json tests/bench/latest.svg
