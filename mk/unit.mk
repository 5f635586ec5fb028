# mk/unit.mk: link options of single unit-test binaries (included by the
# top Makefile; the build rule itself is the generic one there).
#
# test_kernel_recv injects receive failures that ZeroMQ cannot produce on
# its own: the linker routes zmq_msg_recv, zmq_msg_init and zmq_msg_close
# through the test's wrappers (-Wl,--wrap applies to libe2bci.a's objects).

$(BUILD)/tests/test_kernel_recv: LIBS += \
	-Wl,--wrap=zmq_msg_recv,--wrap=zmq_msg_init,--wrap=zmq_msg_close
