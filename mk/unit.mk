# mk/unit.mk: what single unit-test binaries need besides the generic rule
# of the top Makefile (which links each test with libe2bci.a).
#
# test_kernel_recv injects receive failures that ZeroMQ cannot produce on
# its own: the linker routes zmq_msg_recv, zmq_msg_init and zmq_msg_close
# through the test's wrappers (-Wl,--wrap applies to libe2bci.a's objects).

$(BUILD)/tests/test_kernel_recv: LIBS += \
	-Wl,--wrap=zmq_msg_recv,--wrap=zmq_msg_init,--wrap=zmq_msg_close

# test_run drives run.c against a stub kernel, envd and clock that the test
# itself defines (kernel_execute, kernel_interrupt, envd_fetch, envd_cancel,
# loop_timer_arm, loop_timer_disarm, loop_now_ms): it links run.c and what
# run truly uses, not libe2bci.a, so a call run.c makes into any other
# module fails the link. This explicit rule wins over the generic one.
TEST_RUN_MODS := run exec enc flatj wire sha256 lang log metrics dbuf
TEST_RUN_OBJS := $(TEST_RUN_MODS:%=$(BUILD)/obj/%.o)

$(BUILD)/tests/test_run: tests/unit/test_run.c $(TEST_RUN_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< \
		$(TEST_RUN_OBJS) $(LIBS)
