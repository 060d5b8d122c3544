/* baseline: flint bench --baseline's comparison. See baseline.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/baseline.h"
#include "bench/report.h"

/* err = "baseline NAME: <fmt...>", and -EINVAL. */
static int PRINTF(4, 5) bad(char *err, size_t errlen, const char *name, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return err_set(err, errlen, -EINVAL, "baseline %s: %s", name, what);
}

/* Whether vmm is flint's row: "flint", or another of its rows as
 * "flint-uffd" (restore's Uffd backend, alone with --backend uffd), as
 * bench_status counts a failed run; the peers' changes never count. */
static bool is_flint(const char *vmm)
{
	return !strcmp(vmm, "flint") || !strncmp(vmm, "flint-", 6);
}

/* Member k of object o when it is a string, else NULL. */
static const char *str_of(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* A STATS object of vmms[i] (at where) has a numeric p50. */
static int check_stats(json_t *st, const char *name, size_t i, const char *where, char *err,
		       size_t errlen)
{
	if (!json_is_object(st))
		return bad(err, errlen, name, "vmms[%zu].%s is not an object", i, where);
	/* a time: a hand-edited negative one made any time now "+inf%" */
	if (!json_is_number(json_object_get(st, "p50")) ||
	    json_number_value(json_object_get(st, "p50")) < 0)
		return bad(err, errlen, name, "vmms[%zu].%s.p50 is not a number >= 0", i, where);
	return 0;
}

/* vmms[i] of the baseline: a name, a status, and when ok its phases. */
static int check_vmm(json_t *vm, const char *name, size_t i, char *err, size_t errlen)
{
	json_t *phases, *st;
	const char *k, *status;
	char where[128];
	int r;

	if (!json_is_object(vm))
		return bad(err, errlen, name, "vmms[%zu] is not an object", i);
	if (!str_of(vm, "name"))
		return bad(err, errlen, name, "vmms[%zu].name is not a string", i);
	if (!(status = str_of(vm, "status")))
		return bad(err, errlen, name, "vmms[%zu].status is not a string", i);
	if (strcmp(status, "ok"))
		return 0;
	phases = json_object_get(vm, "phases");
	if (!json_is_object(phases))
		return bad(err, errlen, name, "vmms[%zu].phases is not an object", i);
	json_object_foreach(phases, k, st)
	{
		snprintf(where, sizeof(where), "phases.%s", k);
		if ((r = check_stats(st, name, i, where, err, errlen)) < 0)
			return r;
	}
	if ((st = json_object_get(vm, "startup")))
		return check_stats(st, name, i, "startup", err, errlen);
	return 0;
}

/* The baseline's vmms entry of vmm with status ok, or NULL. */
static json_t *vmm_in(json_t *doc, const char *vmm)
{
	json_t *vm;
	size_t i;

	json_array_foreach(json_object_get(doc, "vmms"), i, vm)
	{
		const char *status = str_of(vm, "status");

		if (!strcmp(str_of(vm, "name"), vmm))
			return status && !strcmp(status, "ok") ? vm : NULL;
	}
	return NULL;
}

/* How a boot bench launched flint (its config's flint_launch): a
 * baseline from before the field is a flint run's, as every boot was
 * then. NULL for the other modes. */
static const char *launch_of(json_t *doc, const char *mode)
{
	const char *l = str_of(json_object_get(doc, "config"), "flint_launch");

	return strcmp(mode, "boot") ? NULL : l ? l : "flint run";
}

/* base is a flint bench --json output of version 1 and mode, with flint,
 * and for a boot flint launched the same way (launch: "flint", as the
 * peers, or "flint run"): the two have other phases. */
static int check_base(json_t *base, const char *name, const char *mode, const char *launch,
		      char *err, size_t errlen)
{
	json_t *v, *vm;
	const char *m;
	bool flint = false;
	size_t i;
	int r;

	if (!json_is_object(base))
		return bad(err, errlen, name, "not a JSON object");
	v = json_object_get(base, "schema");
	if (!json_is_string(v) || strcmp(json_string_value(v), REPORT_SCHEMA))
		return bad(err, errlen, name,
			   "not a flint bench --json output (no \"schema\": \"" REPORT_SCHEMA
			   "\")");
	v = json_object_get(base, "version");
	if (!json_is_integer(v))
		return bad(err, errlen, name, "\"version\" is not an integer");
	if (json_integer_value(v) != REPORT_VERSION)
		return bad(err, errlen, name, "schema version %lld; this flint reads version %d",
			   (long long)json_integer_value(v), REPORT_VERSION);
	if (!(m = str_of(base, "mode")))
		return bad(err, errlen, name, "\"mode\" is not a string");
	if (strcmp(m, mode))
		return bad(err, errlen, name, "a bench of mode %s; this one is %s", m, mode);
	const char *then = launch_of(base, mode);
	if (launch && then && strcmp(launch, then))
		return bad(err, errlen, name,
			   "flint was launched as \"%s\" then and is as \"%s\" now: their phases "
			   "differ (%s); make a new baseline",
			   then, launch,
			   !strcmp(launch, "flint") ? "the baseline's was with --agent"
						    : "this bench's is with --agent");
	v = json_object_get(base, "vmms");
	if (!json_is_array(v))
		return bad(err, errlen, name, "\"vmms\" is not an array");
	json_array_foreach(v, i, vm)
	{
		if ((r = check_vmm(vm, name, i, err, errlen)) < 0)
			return r;
		/* with a p50 at least: one whose runs all failed compared
		 * nothing, and let any flint pass */
		flint =
		    flint || (is_flint(str_of(vm, "name")) && !strcmp(str_of(vm, "status"), "ok") &&
			      (json_object_size(json_object_get(vm, "phases")) ||
			       json_object_get(vm, "startup")));
	}
	if (!flint)
		return bad(err, errlen, name,
			   "no results of flint (none, missing, or every run of it failed)");
	return 0;
}

/* The p50 of a STATS object (NULL: none) into *v; false when none. */
static bool p50_of(json_t *st, double *v)
{
	json_t *p = st ? json_object_get(st, "p50") : NULL;

	*v = json_number_value(p);
	return json_is_number(p);
}

/* One figure's line; whether it counts as flint's regression. */
static bool line(FILE *out, const char *vmm, const char *fig, json_t *b, json_t *c, double max_pct)
{
	bool flint = is_flint(vmm), hb, hc, over = false;
	double vb, vc, pct = 0;
	char sb[32] = "-", sc[32] = "-", change[32];

	hb = p50_of(b, &vb);
	hc = p50_of(c, &vc);
	if (!hb && !hc)
		return false;
	if (hb)
		snprintf(sb, sizeof(sb), "%.3f", vb / 1000);
	if (hc)
		snprintf(sc, sizeof(sc), "%.3f", vc / 1000);
	if (!hb) {
		snprintf(change, sizeof(change), "new");
	} else if (!hc) {
		snprintf(change, sizeof(change), "gone");
		over = flint;
	} else if (vb <= 0) {
		snprintf(change, sizeof(change), vc > 0 ? "+inf%%" : "+0.0%%");
		over = flint && vc > 0;
	} else {
		pct = (vc - vb) / vb * 100;
		snprintf(change, sizeof(change), "%+.1f%%", pct);
		over = flint && vc > vb * (1 + max_pct / 100);
	}
	fprintf(out, "%-12s %-26s %11s %11s %9s", vmm, fig, sb, sc, change);
	if (over && !hc)
		fprintf(out, "  REGRESSED (not reached now)");
	else if (over)
		fprintf(out, "  REGRESSED (limit +%.1f%%)", max_pct);
	fputc('\n', out);
	return over;
}

/* vmm's figures in both: its phases in the order of the enum (then any
 * the baseline has that this flint does not know), then the start-up
 * latency. How many of them regressed. */
static size_t compare_vmm(FILE *out, const char *vmm, json_t *bvm, json_t *cvm, double max_pct)
{
	json_t *bp = json_object_get(bvm, "phases"), *cp = json_object_get(cvm, "phases"), *st;
	const char *k;
	size_t n = 0;

	for (int p = 0; p < BP_COUNT; p++) {
		const char *fig = bench_phase_name(p);

		n += line(out, vmm, fig, json_object_get(bp, fig), json_object_get(cp, fig),
			  max_pct);
	}
	json_object_foreach(bp, k, st)
	{
		if (bench_phase_from_name(k) < 0)
			n += line(out, vmm, k, st, NULL, max_pct);
	}
	n += line(out, vmm, "startup", json_object_get(bvm, "startup"),
		  json_object_get(cvm, "startup"), max_pct);
	return n;
}

/* The settings a bench's figures depend on, of those its config holds:
 * each that both base and cur give must be the same (an older baseline
 * without one is not held to it). Not the runs, the warm-ups or the
 * files' paths, which a CI machine's checkout moves. */
static int same_config(json_t *base, json_t *cur, const char *name, char *err, size_t errlen)
{
	static const char *const keys[] = {"concurrency", "vcpus",     "mem_mib",
					   "cmdline",	  "isolation", "command"};
	json_t *bc = json_object_get(base, "config"), *cc = json_object_get(cur, "config");
	const char *mode = str_of(base, "mode");

	/* A run bench's start-up ended at the first output until its config
	 * named the command; at the exit since. */
	if (mode && !strcmp(mode, "run") && !json_object_get(bc, "command"))
		return bad(err, errlen, name,
			   "made by an older flint bench, whose run start-up ended at the "
			   "first output, not at the exit: its figures do not compare; make a "
			   "new baseline");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *b = json_object_get(bc, keys[i]), *c = json_object_get(cc, keys[i]);
		char *bs, *cs;
		int r;

		if (!b || !c || json_equal(b, c))
			continue;
		bs = json_dumps(b, JSON_ENCODE_ANY);
		cs = json_dumps(c, JSON_ENCODE_ANY);
		r = bad(err, errlen, name,
			"made with %s %.200s; this bench has %.200s: its figures do not compare; "
			"make a new baseline",
			keys[i], bs ? bs : "?", cs ? cs : "?");
		free(bs);
		free(cs);
		return r;
	}
	return 0;
}

int baseline_check_config(json_t *base, const char *name, const struct bench_set *s, char *err,
			  size_t errlen)
{
	json_t *cur;
	int r;

	if ((r = report_json_build(s, &cur)) < 0)
		return err_set(err, errlen, r, "baseline %s: %s", name, strerror(-r));
	r = same_config(base, cur, name, err, errlen);
	json_decref(cur);
	return r;
}

int baseline_compare(json_t *base, json_t *cur, const char *name, double max_pct, FILE *out,
		     bool *regressed, char *err, size_t errlen)
{
	const char *mode = str_of(cur, "mode");
	json_t *vm;
	size_t i, over = 0, flint_compared = 0;
	bool flint_now = false;
	int r;

	*regressed = false;
	if (!(max_pct >= 0))
		return err_set(err, errlen, -EINVAL, "--max-regress: %g is not a percentage >= 0",
			       max_pct);
	if ((r = check_base(base, name, mode ? mode : "", launch_of(cur, mode ? mode : ""), err,
			    errlen)) < 0 ||
	    (r = same_config(base, cur, name, err, errlen)) < 0)
		return r;
	fprintf(out,
		"baseline %s: p50 then and now in ms, flint's limit +%.1f%%\n"
		"%-12s %-26s %11s %11s %9s\n",
		name, max_pct, "vmm", "figure", "baseline", "now", "change");
	json_array_foreach(json_object_get(cur, "vmms"), i, vm)
	{
		const char *vmm = str_of(vm, "name"), *status = str_of(vm, "status");
		json_t *bvm = vmm_in(base, vmm);
		/* a VMM every run of which failed has its figures all gone */
		bool ran = status && (!strcmp(status, "ok") || !strcmp(status, "failed"));

		flint_now = flint_now || is_flint(vmm);
		if (!ran)
			fprintf(out, "%-12s (missing in this bench)\n", vmm);
		else if (!bvm)
			fprintf(out, "%-12s (not in the baseline)\n", vmm);
		else
			over += compare_vmm(out, vmm, bvm, vm, max_pct);
		flint_compared += is_flint(vmm) && bvm && ran;
	}
	json_array_foreach(json_object_get(base, "vmms"), i, vm)
	{
		const char *vmm = str_of(vm, "name");
		json_t *c;
		size_t j;
		bool seen = false;

		json_array_foreach(json_object_get(cur, "vmms"), j, c)
		{
			seen = seen || !strcmp(str_of(c, "name"), vmm);
		}
		if (!seen && is_flint(vmm) && !flint_now) {
			/* flint not run at all now: all of its figures are gone (a
			 * row of it not run beside others, a --backend left out) */
			over += compare_vmm(out, vmm, vm, NULL, max_pct);
			flint_compared++;
		} else if (!seen) {
			fprintf(out, "%-12s (in the baseline, not in this bench)\n", vmm);
		}
	}
	/* flint's rows now and then all different (a restore's --backend
	 * file against uffd): nothing was held to the limit. */
	if (!flint_compared)
		return err_set(err, errlen, -EINVAL,
			       "baseline %s: none of flint's rows in this bench is in it (see the "
			       "rows above): nothing to compare; make a new baseline",
			       name);
	if (over)
		fprintf(out, "flint regressed: %zu figure%s over +%.1f%% or gone\n", over,
			over == 1 ? "" : "s", max_pct);
	else
		fprintf(out, "flint within +%.1f%% of the baseline\n", max_pct);
	*regressed = over > 0;
	if (fflush(out) == EOF || ferror(out))
		return err_set(err, errlen, -EIO, "baseline %s: writing the comparison failed",
			       name);
	return 0;
}

int baseline_load(const char *path, const char *mode, const char *launch, json_t **out, char *err,
		  size_t errlen)
{
	json_t *base;
	json_error_t je;
	struct stat st;
	FILE *f;
	int r;

	*out = NULL;
	/* Non-blocking: a FIFO nobody writes gives no JSON at once rather
	 * than hold the bench, which takes no signal yet; a pipe's writer is
	 * then waited for as usual. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fcntl(fd, F_SETFL, 0) < 0 || !(f = fdopen(fd, "r"))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return err_set(err, errlen, r, "baseline %s: cannot read it: %s", path,
			       strerror(-r));
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return err_set(err, errlen, -EISDIR, "baseline %s: a directory, not a file", path);
	}
	base = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
	fclose(f);
	if (!base)
		return err_set(err, errlen, -EINVAL,
			       "baseline %s: not JSON: %s (line %d, column %d)", path, je.text,
			       je.line, je.column);
	if ((r = check_base(base, path, mode, launch, err, errlen)) < 0) {
		json_decref(base);
		return r;
	}
	*out = base;
	return 0;
}

int baseline_check(const struct bench_set *s, json_t *base, const char *name, double max_pct,
		   FILE *out, bool *regressed, char *err, size_t errlen)
{
	json_t *cur;
	int r;

	*regressed = false;
	if ((r = report_json_build(s, &cur)) < 0)
		return err_set(err, errlen, r, "baseline %s: %s", name, strerror(-r));
	r = baseline_compare(base, cur, name, max_pct, out, regressed, err, errlen);
	json_decref(cur);
	return r;
}
