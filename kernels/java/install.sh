#!/bin/sh
# Installs what the Java kernel needs to build and run: a JDK (javac for the
# build, java and the jdk.jshell module at run time) from Debian, only when
# javac is missing. Idempotent; needs root (apt-get) only when it installs.
#
#   kernels/java/install.sh [--runtime-only]
#
# --runtime-only is accepted for the project's install script and changes
# nothing: the runner compiles snippets with javac at run time, so the
# runtime needs the JDK too.
set -eu

if command -v javac >/dev/null 2>&1 && [ -x /usr/bin/java ] &&
	/usr/bin/java --list-modules 2>/dev/null | grep -q '^jdk\.jshell@'; then
	echo "kernels/java: JDK is installed ($(javac -version 2>&1))"
	exit 0
fi

echo "kernels/java: apt-get install default-jdk-headless"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends default-jdk-headless; then
	apt-get update
	apt-get install -y --no-install-recommends default-jdk-headless
fi
javac -version
