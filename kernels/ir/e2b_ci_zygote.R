# e2b-ci zygote: R kernels (IRkernel) forked from a preloaded process.
#
# One long-lived process per (kernelspec, user). It loads IRkernel and its
# dependencies (and the --preload list), runs once what a first cell runs
# (evaluate, repr, IRdisplay, jsonlite, digest) so that no kernel pays for
# it, stops the thread the cli package starts, and then, on request of the
# daemon, forks one kernel per context. The channel, the request checks, the
# forks and the set-up of a forked kernel are C (zyg/rzyg.c, loaded with
# dyn.load: base R cannot receive fds); in the forked kernel this script
# finishes R's own state and runs IRkernel::main(<connection file>) as
# `R --slave -e 'IRkernel::main()' --args <connection file>` would.
# Protocol: kernels/ZYGOTE-PROTOCOL.md.
#
# Invariants: the zygote never runs user code, never holds a thread or a
# ZeroMQ socket when it forks (rzyg.c counts /proc/self/task and refuses),
# never attaches a package (an exec'd kernel's search() has none of them).
#
# Usage (the daemon's; fd 3 a SOCK_SEQPACKET socket, the channel):
#   R --slave --no-restore -f e2b_ci_zygote.R --args [--channel-fd 3]
#     [--preload LIST] [--trace] [--no-warm] [--lib PATH/rzyg.so]

e2bci_zygote <- function() {
  args <- commandArgs(trailingOnly = TRUE)
  opt <- list(fd = 3L, preload = character(), trace = FALSE, warm = TRUE,
              lib = Sys.getenv("E2BCI_RZYG_LIB"))
  i <- 1L
  while (i <= length(args)) {
    a <- args[[i]]
    if (a %in% c("--channel-fd", "--preload", "--lib") && i < length(args)) {
      v <- args[[i + 1L]]
      i <- i + 1L
      if (a == "--channel-fd") opt$fd <- as.integer(v)
      if (a == "--preload")
        opt$preload <- Filter(nzchar, trimws(strsplit(v, ",")[[1]]))
      if (a == "--lib") opt$lib <- v
    } else if (a == "--trace") {
      opt$trace <- TRUE
    } else if (a == "--no-warm") {
      opt$warm <- FALSE
    } else {
      e2bci_say("error", paste("unknown argument", a))
      quit(save = "no", status = 2L)
    }
    i <- i + 1L
  }
  lib <- e2bci_find_lib(opt$lib)
  if (is.null(lib)) {
    e2bci_say("error", paste("rzyg.so not found (run make; or pass --lib,",
                             "or set E2BCI_RZYG_LIB)"))
    quit(save = "no", status = 1L)
  }
  dyn.load(lib)
  why <- .Call("rzyg_init", opt$fd, opt$trace, PACKAGE = "rzyg")
  if (!is.null(why)) {
    e2bci_say("error", why)
    quit(save = "no", status = if (grepl("channel", why)) 2L else 1L)
  }
  started <- proc.time()[["elapsed"]]
  loaded <- tryCatch({
    loadNamespace("IRkernel")
    TRUE
  }, error = function(e) conditionMessage(e))
  if (!isTRUE(loaded)) {
    e2bci_say("error", paste("cannot load IRkernel:", loaded))
    .Call("rzyg_failed", paste("IRkernel:", loaded), PACKAGE = "rzyg")
    quit(save = "no", status = 1L)
  }
  skipped <- list()
  preloaded <- character()
  for (name in opt$preload) {
    err <- tryCatch({
      suppressPackageStartupMessages(loadNamespace(name))
      NULL
    }, error = function(e) conditionMessage(e))
    if (is.null(err)) {
      preloaded <- c(preloaded, name)
    } else {
      e2bci_say("warning", sprintf("preload %s: %s; skipped", name, err))
      skipped[[length(skipped) + 1L]] <- list(package = name, error = err)
    }
  }
  if (opt$warm) e2bci_warm()
  e2bci_quiesce()
  threads <- .Call("rzyg_setup", e2bci_checks(), PACKAGE = "rzyg")
  if (threads != 1L)
    e2bci_say("warning", paste(.Call("rzyg_threads", PACKAGE = "rzyg"),
                               "after the preload: every spawn will be",
                               "refused"))
  ready <- list(type = "ready", pid = Sys.getpid(),
                r = paste(R.version$major, R.version$minor, sep = "."),
                irkernel = format(packageVersion("IRkernel")),
                preloaded = I(preloaded), skipped = I(skipped),
                threads = threads, tempdir = tempdir(), packages = length(loadedNamespaces()),
                fds = jsonlite::fromJSON(.Call("rzyg_preload_fds",
                                               PACKAGE = "rzyg")),
                ms = round(1000 * (proc.time()[["elapsed"]] - started)))
  if (length(ready$fds) == 0L) ready$fds <- structure(list(), names = character())
  .Call("rzyg_send", as.character(jsonlite::toJSON(ready, auto_unbox = TRUE)),
        PACKAGE = "rzyg")
  conn <- .Call("rzyg_serve", PACKAGE = "rzyg")
  if (is.null(conn)) quit(save = "no", status = 0L)
  e2bci_kernel(conn)
}

e2bci_say <- function(level, text) {
  cat(sprintf("e2b-ci-zygote[%d]: %s: %s\n", Sys.getpid(), level, text),
      file = stderr())
}

# rzyg.so, first of: --lib or $E2BCI_RZYG_LIB, the build trees next to this
# kernelspec (make all, make asan), an install (<prefix>/lib/e2b-ci/ir when
# this script is <prefix>/share/e2b-ci/kernels/ir/).
e2bci_find_lib <- function(given) {
  a <- commandArgs()
  file <- sub("^--file=", "", a[grepl("^--file=", a)])
  if (!length(file) && "-f" %in% a) file <- a[[match("-f", a) + 1L]]
  here <- if (length(file)) dirname(normalizePath(file[[1]])) else getwd()
  for (p in c(given, file.path(here, "../../build/ir/rzyg.so"),
              file.path(here, "../../build-asan/ir/rzyg.so"),
              file.path(here, "../../../../lib/e2b-ci/ir/rzyg.so")))
    if (nzchar(p) && file.exists(p)) return(normalizePath(p))
  NULL
}

# What a first cell runs, once, without a kernel: evaluate with IRkernel's
# kind of output handler, the repr and IRdisplay conversions of a value, a
# message's JSON and signature. Leaves no device, no attached package and
# no .Random.seed behind.
e2bci_warm <- function() {
  ok <- tryCatch({
    oh <- evaluate::new_output_handler(value = function(v, visible = TRUE) {
      if (visible) IRdisplay::prepare_mimebundle(v)
    })
    evaluate::evaluate("1+1", envir = new.env(), output_handler = oh,
                       stop_on_error = 1L)
    evaluate::evaluate("stop()", stop_on_error = 1L,
                       output_handler = evaluate::new_output_handler())
    for (f in c("repr_text", "repr_html", "repr_markdown", "repr_latex"))
      get(f, asNamespace("repr"))(2)
    IRdisplay::prepare_mimebundle(data.frame(a = 1:2, b = c("x", "y")))
    msg <- list(header = list(msg_id = "0", msg_type = "execute_reply",
                              date = format(Sys.time(), "%Y-%m-%dT%H:%M:%OS6Z")),
                content = list(status = "ok", execution_count = 1L))
    j <- jsonlite::toJSON(msg, auto_unbox = TRUE, null = "null")
    jsonlite::fromJSON(j, simplifyVector = FALSE)
    digest::hmac("key", as.character(j), "sha256")
    TRUE
  }, error = function(e) conditionMessage(e))
  if (!isTRUE(ok)) e2bci_say("warning", paste("warm-up:", ok))
  grDevices::graphics.off()
  if (exists(".Random.seed", envir = globalenv(), inherits = FALSE))
    rm(".Random.seed", envir = globalenv())
}

# The cli package starts a ticker thread when it loads, OpenBLAS a pool; a
# fork copies only the calling thread, so they are stopped here (the ticker
# the way cli's unload does, and started again in each kernel).
e2bci_quiesce <- function() {
  if ("cli" %in% loadedNamespaces()) {
    cli <- asNamespace("cli")
    try(.Call(get("clic_stop_thread", cli)), silent = TRUE)
  }
  # OpenBLAS's pool, where R's BLAS is OpenBLAS (rzyg.c says why).
  .Call("rzyg_blas_shutdown", PACKAGE = "rzyg")
  # The thread ends at its next tick: milliseconds here, over a second
  # under an emulated CPU (QEMU's TCG, make vm-test), so the wait is long.
  deadline <- proc.time()[["elapsed"]] + 15
  while (length(list.files("/proc/self/task")) > 1L &&
         proc.time()[["elapsed"]] < deadline) Sys.sleep(0.005)
}

# What rzyg.c checks each request against (see rzyg_setup).
e2bci_checks <- function() {
  home <- R.home()
  libs <- .libPaths()
  # The candidates R's start-up considers (R_LIBS, R_LIBS_USER, R_LIBS_SITE),
  # existing or not: one that appears (a first install.packages() into
  # R_LIBS_USER) changes an exec'd R's .libPaths().
  cand <- character()
  for (v in c("R_LIBS", "R_LIBS_USER", "R_LIBS_SITE")) {
    x <- Sys.getenv(v)
    if (!nzchar(x)) next
    x <- tryCatch(get(".expand_R_libs_env_var", baseenv())(x),
                  error = function(e) x)
    cand <- c(cand, path.expand(strsplit(x, ":", fixed = TRUE)[[1]]))
  }
  cand <- unique(c(cand[nzchar(cand)], libs, .Library))
  cand <- vapply(cand, function(p)
    if (dir.exists(p)) normalizePath(p) else p, "")
  cand <- unique(unname(cand))
  pkgs <- loadedNamespaces()
  pkgdir <- function(p)
    if (p == "base") file.path(.Library, "base") else getNamespaceInfo(p, "path")
  pkglib <- vapply(pkgs, function(p) {
    d <- normalizePath(dirname(pkgdir(p)))
    m <- match(d, cand)
    if (is.na(m)) -1L else m - 1L
  }, 0L)
  files <- c(file.path(home, "bin", "exec", "R"),
             file.path(home, "lib", "libR.so"),
             file.path(home, "etc", c("Renviron", "Renviron.site",
                                      "Rprofile.site", "ldpaths")),
             file.path(home, "library", "base", "R", "Rprofile"),
             vapply(pkgs, function(p)
               file.path(pkgdir(p), "DESCRIPTION"), ""),
             vapply(getLoadedDLLs(), function(d) d[["path"]], ""))
  files <- unique(files[nzchar(files) & files != "base"])
  rbins <- c(file.path(home, "bin", "R"), Sys.which("R"))
  list(commandArgs()[[1]], unname(rbins[nzchar(rbins)]), unname(files),
       cand, pkgs, unname(pkglib))
}

# In a forked kernel (set up by rzyg.c up to R's own state): its own
# tempdir (made and removed by R: never the zygote's), no inherited
# RNG state, cli's ticker as after a load, then IRkernel as an exec'd
# kernel runs it.
e2bci_kernel <- function(conn) {
  tryCatch(.Call("rzyg_tempdir", PACKAGE = "rzyg"), error = function(e)
    .Call("rzyg_abort", "r", paste("tempdir:", conditionMessage(e)),
          PACKAGE = "rzyg"))
  if (exists(".Random.seed", envir = globalenv(), inherits = FALSE))
    rm(".Random.seed", envir = globalenv())
  if ("cli" %in% loadedNamespaces()) {
    ok <- tryCatch({
      cli <- asNamespace("cli")
      assign("load_time", Sys.time(), envir = cli$clienv)
      .Call(get("clic_start_thread", cli), cli, cli$clienv$tick_time,
            cli$clienv$speed_time)
      TRUE
    }, error = function(e) conditionMessage(e))
    if (!isTRUE(ok))
      .Call("rzyg_abort", "r", paste("cli ticker:", ok), PACKAGE = "rzyg")
  }
  # This script's own functions; what packages put there (pbdZMQ's
  # .pbd_env) stays, as in an exec'd kernel.
  rm(list = ls(globalenv(), pattern = "^e2bci_"), envir = globalenv())
  .Call("rzyg_started", PACKAGE = "rzyg")
  IRkernel::main(conn)
  quit(save = "no", status = 0L)
}

e2bci_zygote()
