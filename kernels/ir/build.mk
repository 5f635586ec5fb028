# kernels/ir/build.mk: rzyg.so, the C half of the R zygote
# (kernels/ir/e2b_ci_zygote.R, kernels/ZYGOTE-PROTOCOL.md), into $(BUILD)/ir.
# Included by the top-level Makefile (which sets the default goal). Built
# with gcc directly against R's headers (no r-base-dev: no R CMD SHLIB); the
# symbols of libR resolve when R dyn.loads it. Without R's headers the R
# zygote is left out with a warning (R kernels are then exec'd).
RZYG_INC    ?= /usr/share/R/include
RZYG_SO     := $(BUILD)/ir/rzyg.so
# Fixed flags, not $(CFLAGS): the library is loaded into R, which an ASan
# build's flags would break.
RZYG_CFLAGS := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2 -Werror -O2 -g -fPIC -shared

ifeq ($(wildcard $(RZYG_INC)/Rinternals.h),)
$(warning kernels/ir: $(RZYG_INC)/Rinternals.h not found, the R zygote is not built)
else
$(RZYG_SO): kernels/ir/zyg/rzyg.c kernels/ir/build.mk
	@mkdir -p $(dir $@)
	$(CC) $(RZYG_CFLAGS) -I$(RZYG_INC) \
		$(shell pkg-config --cflags jansson 2>/dev/null) -o $@ $< \
		$(shell pkg-config --libs jansson 2>/dev/null)

EXTRA_TARGETS += $(RZYG_SO)
endif
