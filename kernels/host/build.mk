# kernels/host/build.mk: e2b-kernel, the Jupyter kernel host of our own
# kernels (see kernels/host/README.md). Included by the top-level Makefile,
# which sets the default goal and the header dependencies (DEPFLAGS).

KH_SRCS := $(wildcard kernels/host/*.c)
KH_OBJS := $(KH_SRCS:kernels/host/%.c=$(BUILD)/obj-kh/%.o)
# The daemon modules the host reuses, built by the top-level rules.
KH_REUSED := $(BUILD)/obj/wire.o $(BUILD)/obj/flatj.o $(BUILD)/obj/sha256.o \
	$(BUILD)/obj/loop.o $(BUILD)/obj/log.o $(BUILD)/obj/dbuf.o \
	$(BUILD)/obj/child.o

$(BUILD)/obj-kh/%.o: kernels/host/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -Ikernels/host -c -o $@ $<

$(BUILD)/e2b-kernel: $(KH_OBJS) $(KH_REUSED)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

EXTRA_TARGETS += $(BUILD)/e2b-kernel
