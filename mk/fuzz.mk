# mk/fuzz.mk: libFuzzer targets (included by the top Makefile).
#
#   make fuzz          runs every target for FUZZ_SECONDS (default 600) each;
#                      `make -j2 fuzz` runs two at a time
#   make fuzz-smoke    10 s per target: the short run `make test` makes
#   make fuzz-build    only builds $(BUILD)/fuzz/fuzz_<t>
#   make fuzz-<t>      one target (req, wire, enc, kspec, flatj, stream) for
#                      FUZZ_SECONDS
#
# Each target is tests/fuzz/fuzz_<t>.c plus the server modules it exercises,
# compiled with clang -fsanitize=fuzzer-no-link,address,undefined and the
# same warnings and pkg-config flags as the daemon. A run works on
# $(BUILD)/fuzz/corpus-<t>, seeded from tests/fuzz/corpus/<t> (which runs
# never write into) and kept between runs so coverage accumulates. A crash,
# leak, timeout or broken invariant fails the run; the input that caused it
# stays in $(BUILD)/fuzz/<t>-crash-* (or -leak-, -timeout-, -oom-) and
# replays with `$(BUILD)/fuzz/fuzz_<t> $(BUILD)/fuzz/<t>-crash-...`. Add it
# to tests/fuzz/corpus/<t>/ once fixed. The log of the last run of each
# target is $(BUILD)/fuzz/<t>.log.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS  ?= -O1 -g
FUZZ_ARGS    ?= -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
FUZZ_TARGETS := req wire enc kspec flatj stream

# The server modules each target links.
FUZZ_MODS_req   := req errmsg
FUZZ_MODS_wire  := wire flatj sha256 dbuf
FUZZ_MODS_enc   := enc flatj dbuf
FUZZ_MODS_kspec := kspec log errmsg dbuf
FUZZ_MODS_flatj := flatj wire sha256 dbuf
FUZZ_MODS_stream := enc flatj wire sha256 dbuf

FUZZ_DIR  := $(BUILD)/fuzz
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_COMPILE = $(FUZZ_CC) $(ALL_CFLAGS) $(FUZZ_CFLAGS) $(FUZZ_SAN)

.PHONY: fuzz fuzz-smoke fuzz-build $(FUZZ_TARGETS:%=fuzz-%) \
	$(FUZZ_TARGETS:%=fuzz-smoke-%)

$(FUZZ_DIR)/obj/%.o: server/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_COMPILE) $(DEPFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/obj/fuzz_%.o: tests/fuzz/fuzz_%.c
	@mkdir -p $(dir $@)
	$(FUZZ_COMPILE) $(DEPFLAGS) -fsanitize=fuzzer-no-link -Itests/fuzz \
		-c -o $@ $<

# One link rule per target (no .SECONDEXPANSION: it would reach every rule
# of the Makefiles included after this one).
define fuzz_link
$(FUZZ_DIR)/fuzz_$(1): $(FUZZ_DIR)/obj/fuzz_$(1).o \
		$(FUZZ_MODS_$(1):%=$(FUZZ_DIR)/obj/%.o)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) $$(FUZZ_SAN) $$(LDFLAGS) -fsanitize=fuzzer \
		-o $$@ $$^ $$(LIBS) -lm
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_link,$(t))))

fuzz-build: $(FUZZ_BINS)

# $(call fuzz_run,target,seconds): seeds the working corpus, runs, keeps the
# log, shows its tail and fails when libFuzzer did.
define fuzz_run
	@mkdir -p $(FUZZ_DIR)/corpus-$(1)
	@cp tests/fuzz/corpus/$(1)/* $(FUZZ_DIR)/corpus-$(1)/
	@echo "== fuzz_$(1): $(2) s, log in $(FUZZ_DIR)/$(1).log"
	@UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_DIR)/fuzz_$(1) $(FUZZ_ARGS) \
		-max_total_time=$(2) \
		-artifact_prefix=$(abspath $(FUZZ_DIR))/$(1)- \
		$(if $(wildcard tests/fuzz/$(1).dict),-dict=tests/fuzz/$(1).dict) \
		$(FUZZ_DIR)/corpus-$(1) >$(FUZZ_DIR)/$(1).log 2>&1; \
	rc=$$?; grep -E '^(stat::|Done|#[0-9]+ *DONE)' $(FUZZ_DIR)/$(1).log; \
	if [ $$rc -ne 0 ]; then tail -n 60 $(FUZZ_DIR)/$(1).log; \
		ls $(FUZZ_DIR)/$(1)-* 2>/dev/null; \
		echo "fuzz_$(1): FAILED ($$rc)"; exit 1; fi
endef

$(FUZZ_TARGETS:%=fuzz-%): fuzz-%: $(FUZZ_DIR)/fuzz_%
	$(call fuzz_run,$*,$(FUZZ_SECONDS))

$(FUZZ_TARGETS:%=fuzz-smoke-%): fuzz-smoke-%: $(FUZZ_DIR)/fuzz_%
	$(call fuzz_run,$*,10)

fuzz: $(FUZZ_TARGETS:%=fuzz-%)

fuzz-smoke: $(FUZZ_TARGETS:%=fuzz-smoke-%)
