# mk/install.mk: `make install` and `make uninstall` (included by the top
# Makefile). Both honour PREFIX (default /usr/local) and DESTDIR (a staging
# root, for packaging and tests; never part of any path written into a file).
#
# What goes where:
#   $(PREFIX)/bin/e2b-ci                     the daemon, built again in
#                                            $(BUILD)/install$(PREFIX) with its
#                                            kernelspec default set to
#                                            $(PREFIX)/share/e2b-ci/kernels
#   $(PREFIX)/bin/e2b-ci-debug-probe         template/debug-probe.sh
#   $(PREFIX)/share/e2b-ci/kernels/          the whole kernels/ tree as it is
#                                            (kernelspec dirs, startup files,
#                                            node_modules, launch scripts)
#   $(PREFIX)/lib/e2b-ci/                    every EXTRA_TARGETS entry under
#                                            $(BUILD), at the same relative
#                                            path ($(BUILD)/e2b-kernel ->
#                                            lib/e2b-ci/e2b-kernel, $(BUILD)/java
#                                            -> lib/e2b-ci/java)
#   $(UNITDIR)/e2b-ci.service                the unit, /usr/local -> PREFIX
#   $(SYSCONFDIR)/default/e2b-ci             the options file; an existing one
#                                            is kept (the shipped copy is also
#                                            in $(PREFIX)/share/e2b-ci/)
#   $(PREFIX)/share/doc/e2b-ci/README.md
#
# The E2B template (template/template.mjs) installs with PREFIX=/usr: E2B
# runs `chmod -R 777 /usr/local` after a template's steps, which would make
# the unit file, the binary the unit runs as root and the kernels writable
# by the sandbox's user.
#
# UNITDIR: for PREFIX /usr or /usr/local the unit goes to
# $(PREFIX)/lib/systemd/system, which systemd searches (the package
# location, resp. the one for units the administrator installs locally);
# for any other prefix systemd would not find it there, so it goes to
# /etc/systemd/system. Override with UNITDIR=... Neither target runs
# systemctl: after a live install run `systemctl daemon-reload` and
# `systemctl enable --now e2b-ci` yourself.

SYSCONFDIR ?= /etc
UNITDIR    ?= $(if $(filter /usr /usr/local,$(PREFIX)),$(PREFIX)/lib/systemd/system,/etc/systemd/system)
INSTALL    ?= install

E2BCI_SHARE := $(PREFIX)/share/e2b-ci
E2BCI_LIB   := $(PREFIX)/lib/e2b-ci
E2BCI_DOC   := $(PREFIX)/share/doc/e2b-ci

# Paths in the unit and the options file are written for /usr/local and
# /etc; this puts the real ones in.
E2BCI_SUBST := sed -e 's|/usr/local/|$(PREFIX)/|g' \
		   -e 's|/etc/default/e2b-ci|$(SYSCONFDIR)/default/e2b-ci|g'

.PHONY: uninstall install-staged

# The installed binary must find the installed kernelspecs, not this tree's,
# so it is compiled again with another KERNELS_DIR, in a build dir of its own
# per PREFIX (the objects do not track the flags they were built with).
install:
	@case "$(PREFIX)" in /*) ;; *) echo "install: PREFIX must be absolute" >&2; exit 2;; esac
	+@$(MAKE) --no-print-directory BUILD=$(BUILD)/install$(PREFIX) \
		KERNELS_DIR=$(E2BCI_SHARE)/kernels install-staged

# Runs in the sub-make above: $(BUILD) and $(EXTRA_TARGETS) are the
# install build's.
install-staged: $(BUILD)/e2b-ci $(EXTRA_TARGETS)
	$(INSTALL) -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(E2BCI_SHARE) \
		$(DESTDIR)$(E2BCI_DOC) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)/default
	$(INSTALL) -m 0755 $(BUILD)/e2b-ci $(DESTDIR)$(PREFIX)/bin/e2b-ci
	$(INSTALL) -m 0755 template/debug-probe.sh \
		$(DESTDIR)$(PREFIX)/bin/e2b-ci-debug-probe
	rm -rf $(DESTDIR)$(E2BCI_SHARE)/kernels $(DESTDIR)$(E2BCI_LIB)
	cp -R kernels $(DESTDIR)$(E2BCI_SHARE)/kernels
	find $(DESTDIR)$(E2BCI_SHARE)/kernels -name __pycache__ -prune \
		-exec rm -rf {} +
	$(INSTALL) -d $(DESTDIR)$(E2BCI_LIB)
	@set -e; for t in $(patsubst $(BUILD)/%,%,$(filter $(BUILD)/%,$(EXTRA_TARGETS))); do \
		t=$${t%/}; mkdir -p "$(DESTDIR)$(E2BCI_LIB)/$$(dirname "$$t")"; \
		echo "cp -R $(BUILD)/$$t $(DESTDIR)$(E2BCI_LIB)/$$t"; \
		cp -R "$(BUILD)/$$t" "$(DESTDIR)$(E2BCI_LIB)/$$t"; \
	done
	$(E2BCI_SUBST) e2b-ci.service > $(BUILD)/e2b-ci.service
	$(INSTALL) -m 0644 $(BUILD)/e2b-ci.service $(DESTDIR)$(UNITDIR)/e2b-ci.service
	$(E2BCI_SUBST) template/e2b-ci.default > $(BUILD)/e2b-ci.default
	$(INSTALL) -m 0644 $(BUILD)/e2b-ci.default $(DESTDIR)$(E2BCI_SHARE)/e2b-ci.default
	@f=$(DESTDIR)$(SYSCONFDIR)/default/e2b-ci; \
	if [ -e "$$f" ] && ! cmp -s "$$f" $(BUILD)/e2b-ci.default; then \
		echo "install: kept $$f (shipped defaults: $(E2BCI_SHARE)/e2b-ci.default)"; \
	else \
		echo "$(INSTALL) -m 0644 $(BUILD)/e2b-ci.default $$f"; \
		$(INSTALL) -m 0644 $(BUILD)/e2b-ci.default "$$f"; \
	fi
	@if [ -f README.md ]; then \
		echo "$(INSTALL) -m 0644 README.md $(DESTDIR)$(E2BCI_DOC)/README.md"; \
		$(INSTALL) -m 0644 README.md $(DESTDIR)$(E2BCI_DOC)/README.md; \
	fi
	+$(if $(EXTRA_INSTALL),@$(MAKE) --no-print-directory BUILD=$(BUILD) \
		KERNELS_DIR=$(KERNELS_DIR) $(EXTRA_INSTALL))

# Removes what install put there; the options file only if unchanged.
uninstall:
	@f=$(DESTDIR)$(SYSCONFDIR)/default/e2b-ci; \
	if [ -e "$$f" ] && cmp -s "$$f" $(DESTDIR)$(E2BCI_SHARE)/e2b-ci.default; then \
		echo "rm -f $$f"; rm -f "$$f"; \
	elif [ -e "$$f" ]; then echo "uninstall: kept $$f (changed)"; fi
	rm -f $(DESTDIR)$(PREFIX)/bin/e2b-ci $(DESTDIR)$(PREFIX)/bin/e2b-ci-debug-probe \
		$(DESTDIR)$(UNITDIR)/e2b-ci.service
	rm -rf $(DESTDIR)$(E2BCI_SHARE) $(DESTDIR)$(E2BCI_LIB) $(DESTDIR)$(E2BCI_DOC)
