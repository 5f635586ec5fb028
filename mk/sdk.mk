# mk/sdk.mk: the SDK tier's npm step (included by the top Makefile, whose
# `make sdk` runs tests/sdk/run.sh).
#
# `make sdk-install` installs every locked @e2b/code-interpreter release of
# tests/sdk (the current one and tests/sdk/releases/*) where node_modules is
# missing or stale. It needs the network; `make sdk` then needs none, so it
# can run in a network namespace of its own.

.PHONY: sdk-install

sdk-install:
	tests/sdk/run.sh --install
