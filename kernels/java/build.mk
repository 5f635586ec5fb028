# kernels/java/build.mk: the Java runner (kernels/java/README.md) into
# $(BUILD)/java: the classes of kernels/java/src/e2bci, the JNI header javac
# writes for them, and libe2bjenv.so (setenv and SIGINT help for the runner).
# Included by the top-level Makefile (which sets the default goal). Without
# javac (kernels/java/install.sh installs the JDK) the Java kernel is left
# out with a warning, and the daemon still builds.
JAVAC      ?= javac
JAVA_SRCS  := $(sort $(wildcard kernels/java/src/e2bci/*.java))
JAVA_OUT   := $(BUILD)/java
JAVA_MAIN  := $(JAVA_OUT)/e2bci/E2bJavaRunner.class
JAVA_JNI   := $(JAVA_OUT)/libe2bjenv.so
# The JDK home, for jni.h: javac's real path without /bin/javac.
JAVA_JDK   := $(patsubst %/bin/javac,%,$(realpath $(shell command -v $(JAVAC) 2>/dev/null)))
# Fixed flags, not $(CFLAGS): the library is loaded into the JVM, which an
# ASan build's flags would break.
JAVA_JNI_CFLAGS := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2 -Werror -O2 -fPIC -shared

ifeq ($(JAVA_JDK),)
$(warning kernels/java: $(JAVAC) not found, the Java kernel is not built (run kernels/java/install.sh))
else
# -XDignore.symbol.file: no "internal proprietary API" warnings for
# sun.misc.Signal (the supported way to catch SIGINT), so -Werror can stay.
$(JAVA_MAIN): $(JAVA_SRCS) kernels/java/build.mk
	@rm -rf $(JAVA_OUT)/e2bci $(JAVA_OUT)/include
	@mkdir -p $(JAVA_OUT)
	$(JAVAC) -encoding UTF-8 -Xlint:all -Werror -XDignore.symbol.file \
		-d $(JAVA_OUT) -h $(JAVA_OUT)/include $(JAVA_SRCS)

$(JAVA_JNI): kernels/java/src/e2bjenv.c $(JAVA_MAIN)
	$(CC) $(JAVA_JNI_CFLAGS) -I$(JAVA_JDK)/include -I$(JAVA_JDK)/include/linux \
		-I$(JAVA_OUT)/include -o $@ kernels/java/src/e2bjenv.c

EXTRA_TARGETS += $(JAVA_MAIN) $(JAVA_JNI)
endif

# The install layout run.sh looks for: classes and library in
# $(PREFIX)/lib/e2b-ci/java; kernels/java itself goes with the other
# kernelspecs to $(PREFIX)/share/e2b-ci/kernels/java.
.PHONY: install-java
install-java: $(JAVA_MAIN) $(JAVA_JNI)
	install -d $(DESTDIR)$(PREFIX)/lib/e2b-ci/java/e2bci
	install -m 644 $(JAVA_OUT)/e2bci/*.class $(DESTDIR)$(PREFIX)/lib/e2b-ci/java/e2bci/
	install -m 755 $(JAVA_JNI) $(DESTDIR)$(PREFIX)/lib/e2b-ci/java/
	install -d $(DESTDIR)$(PREFIX)/share/e2b-ci/kernels/java
	install -m 644 kernels/java/kernel.json $(DESTDIR)$(PREFIX)/share/e2b-ci/kernels/java/
	install -m 755 kernels/java/run.sh $(DESTDIR)$(PREFIX)/share/e2b-ci/kernels/java/
EXTRA_INSTALL += install-java
