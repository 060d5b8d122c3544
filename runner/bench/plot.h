/* plot: flint bench --svg FILE. One SVG with two plots side by side
 * (gnuplot's multiplot): the CDF of the start-up latency (launch to the
 * last start-up phase a run reached, stats.h) per VMM, a step per run;
 * and a stacked bar per VMM of its mean phase durations (a phase's time
 * minus the previous one's), means rather than medians because means add
 * up: a bar is as tall as the VMM's mean start-up latency, which medians
 * of the parts are not. Only successful runs count; the key gives each
 * VMM's count of them, and a line under the plots names the missing
 * peers (with their reason) and the VMMs without a successful run.
 *
 * gnuplot draws it (Debian's gnuplot-nox; its svg terminal): started as a
 * child process without a shell, the script and its data (inline
 * datablocks) written to its stdin, the SVG read from its stdout; no
 * temporary file. Text from the set (VMM names, reasons, the mode) reaches
 * the script only as letters, digits and a few punctuation marks, never a
 * quote or a backslash, so that nothing in it is a gnuplot command. */
#ifndef FLINT_BENCH_PLOT_H
#define FLINT_BENCH_PLOT_H

#include <stddef.h>
#include <stdio.h>

#include "bench/record.h"
#include "core/util.h"

/* The gnuplot script (data included) for set s, to out. 0 or -errno
 * (-EIO when a write fails, -ENOMEM, -E2BIG for too many VMMs). */
int plot_script(const struct bench_set *s, FILE *out) WARN_UNUSED;

/* Runs gnuplot (the program gnuplot, NULL: "gnuplot" looked up in PATH)
 * on plot_script()'s script and writes the SVG it made to out_fd, only
 * once gnuplot succeeded (nothing is written on a failure). 0, or -errno
 * with err saying why: -ENOENT naming Debian's gnuplot-nox when gnuplot is
 * not installed, -EPROTO with gnuplot's last message when it failed,
 * -ETIMEDOUT when it took more than 60 s (then killed). */
int plot_svg(const struct bench_set *s, int out_fd, const char *gnuplot, char *err,
	     size_t errlen) WARN_UNUSED;

#endif
