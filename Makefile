# e2b-ci: the in-sandbox code-interpreter daemon.
#
#   make run     install what is missing, build the daemon and every kernel
#                part, start the daemon on :49999
#   make test    install what is missing, run every test tier
#   make asan    unit + end-to-end tiers under AddressSanitizer + UBSan
#   make check   clang-format, cppcheck, clang-tidy, the include graph
#   make install PREFIX=/usr/local DESTDIR=

PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
CC       ?= cc
PKGS     := libmicrohttpd jansson libzmq uuid libsystemd
PY       := /usr/bin/python3

WARN     := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Werror
CFLAGS   ?= -O2 -g
ALL_CFLAGS = $(WARN) $(CFLAGS) -D_GNU_SOURCE -Iserver \
             -DE2BCI_KERNELS_DIR='"$(KERNELS_DIR)"' \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS      = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Link options (the asan target's sanitizer runtime, a distribution's
# hardening): every link rule passes them.
LDFLAGS  ?=
# Each compile also writes the headers its output was made from, as make
# rules in $@.d (included below): touching a header rebuilds only what
# includes it. -MP adds an empty rule per header, so a header that is
# removed breaks no build. Every rule that compiles C uses it (daemon,
# unit tests, fuzz and bench objects, the kernel host).
DEPFLAGS  = -MMD -MP -MF $@.d -MT $@

# Kernelspecs we ship: the build tree's copy, or the installed one.
KERNELS_DIR ?= $(abspath kernels)

SRCS     := $(wildcard server/*.c)
LIBSRCS  := $(filter-out server/main.c,$(SRCS))
OBJS     := $(LIBSRCS:server/%.c=$(BUILD)/obj/%.o)
UNITSRCS := $(wildcard tests/unit/test_*.c)
UNITBINS := $(UNITSRCS:tests/unit/%.c=$(BUILD)/tests/%)

# `make` alone means `make all`. Set once, here, before the fragments below
# define the first explicit targets (none of them touches it).
.DEFAULT_GOAL := all

# Our own kernels and other parts add their rules (and EXTRA_TARGETS) here.
-include $(sort $(wildcard kernels/*/build.mk mk/*.mk))

# The header dependencies written by DEPFLAGS, of every output built so far.
-include $(wildcard $(BUILD)/*.d $(BUILD)/obj/*.d $(BUILD)/tests/*.d \
	$(BUILD)/obj-kh/*.d $(BUILD)/fuzz/obj/*.d $(BUILD)/obj-bench/*.d)

# An object without its dependency file was built before the rules above
# wrote one (a tree built by an older Makefile): nothing would rebuild it
# when a header it includes changes, and a struct it shares with a rebuilt
# object could differ (seen: a kernel host that never answered). Rebuild it
# once; from then on its .d file says what it depends on.
$(foreach o,$(wildcard $(BUILD)/obj/*.o $(BUILD)/obj-kh/*.o),\
	$(if $(wildcard $(o).d),,$(eval $(o): FORCE)))
FORCE:

.PHONY: all deps run test unit e2e sdk kernels-test system asan check install clean FORCE

all: $(BUILD)/e2b-ci $(UNITBINS) $(EXTRA_TARGETS)

# What the daemon serves with: itself and what our kernels run on
# (EXTRA_TARGETS: the kernel host, the Java runner). `make run` builds these,
# not the tests, in parallel unless the caller chose -j.
SERVE_TARGETS = $(BUILD)/e2b-ci $(EXTRA_TARGETS)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

deps:
	@template/install-deps.sh

$(BUILD)/obj/%.o: server/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/libe2bci.a: $(OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/e2b-ci: $(BUILD)/obj/main.o $(BUILD)/libe2bci.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libe2bci.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< \
		$(BUILD)/libe2bci.a $(LIBS)

run: deps
	+@$(MAKE) --no-print-directory $(if $(filter -j%,$(MAKEFLAGS)),,-j$(JOBS)) \
		$(SERVE_TARGETS)
	exec $(BUILD)/e2b-ci

unit: $(UNITBINS)
	@set -e; for t in $(UNITBINS); do echo "== $$t"; $$t; done

e2e: $(BUILD)/e2b-ci
	E2BCI_BIN=$(abspath $(BUILD)/e2b-ci) $(PY) -m pytest -q tests/e2e

sdk: $(BUILD)/e2b-ci
	tests/sdk/run.sh $(abspath $(BUILD)/e2b-ci)

kernels-test: all
	E2BCI_BIN=$(abspath $(BUILD)/e2b-ci) $(PY) -m pytest -q tests/kernels

system: all
	E2BCI_BIN=$(abspath $(BUILD)/e2b-ci) $(PY) -m pytest -q tests/system

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory kernels-test
	@$(MAKE) --no-print-directory sdk
	@$(MAKE) --no-print-directory system
	@$(MAKE) --no-print-directory loadtest-quick

ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan CFLAGS='$(ASAN_FLAGS)' \
		LDFLAGS='$(ASAN_FLAGS)' all
	@$(MAKE) --no-print-directory BUILD=build-asan CFLAGS='$(ASAN_FLAGS)' \
		LDFLAGS='$(ASAN_FLAGS)' unit
	@$(MAKE) --no-print-directory BUILD=build-asan CFLAGS='$(ASAN_FLAGS)' \
		LDFLAGS='$(ASAN_FLAGS)' e2e

# The include graph of server/ has no cycle, and each module's object
# exports only what its header declares (main.o: main alone), so calls go
# the way includes do (mk/include-graph.py; ARCHITECTURE.md shows --list).
check: $(OBJS) $(BUILD)/obj/main.o
	clang-format --dry-run --Werror server/*.c server/*.h tests/unit/*.c \
		kernels/host/*.c kernels/host/*.h kernels/ir/zyg/*.c
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr -D__GNUC__ server kernels/ir/zyg
	clang-tidy --quiet server/*.c -- $(ALL_CFLAGS)
	$(PY) mk/include-graph.py --check --objs $(BUILD)/obj

clean:
	rm -rf build build-asan
