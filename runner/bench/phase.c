/* phase: flint's phase lines, their names and their parser. See phase.h. */
#include "bench/phase.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const wire_names[BP_COUNT] = {
    [BP_PROCESS] = "process",
    [BP_VM_CREATED] = "vm-created",
    [BP_VCPUS_STARTED] = "vcpus-started",
    [BP_KERNEL_ENTRY] = "kernel-entry",
    [BP_INIT] = "init",
    [BP_AGENT_READY] = "agent-ready",
    [BP_FIRST_OUTPUT] = "first-output",
    [BP_STATE_READ] = "state-read",
    [BP_MEMORY_MAPPED] = "memory-mapped",
    [BP_RESUMED] = "resumed",
    [BP_FIRST_RESPONSE] = "first-response",
    /* BP_RESPONSE: flint bench serve's, the answer read; BP_EXIT: the
     * launcher's, when it reaps the VMM */
};

static const enum bench_phase after[BP_COUNT] = {
    [BP_PROCESS] = BP_COUNT,
    [BP_VM_CREATED] = BP_PROCESS,
    [BP_VCPUS_STARTED] = BP_VM_CREATED,
    [BP_KERNEL_ENTRY] = BP_VM_CREATED,
    [BP_INIT] = BP_KERNEL_ENTRY,
    [BP_AGENT_READY] = BP_INIT,
    [BP_FIRST_OUTPUT] = BP_AGENT_READY,
    [BP_STATE_READ] = BP_PROCESS,
    [BP_MEMORY_MAPPED] = BP_STATE_READ,
    [BP_RESUMED] = BP_MEMORY_MAPPED,
    [BP_FIRST_RESPONSE] = BP_RESUMED,
    [BP_RESPONSE] = BP_FIRST_RESPONSE,
    [BP_EXIT] = BP_COUNT,
};

const char *phase_wire_name(enum bench_phase p)
{
	return (unsigned)p < BP_COUNT ? wire_names[p] : NULL;
}

enum bench_phase phase_after(enum bench_phase p)
{
	return (unsigned)p < BP_COUNT ? after[p] : BP_COUNT;
}

bool phase_is_restore(enum bench_phase p)
{
	return p >= BP_STATE_READ && p <= BP_FIRST_RESPONSE;
}

static int fail(struct phase_parser *p, char *err, size_t errlen, const char *fmt, ...)
    PRINTF(4, 5);
static int fail(struct phase_parser *p, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "phase line %u: ", p->line);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	p->failed = true;
	return -EINVAL;
}

void phase_parser_init(struct phase_parser *p, struct bench_record *r, uint64_t base_us)
{
	memset(p, 0, sizeof(*p));
	p->r = r;
	p->base_us = base_us;
}

/* A decimal u64 filling [s, e): no sign, no leading zero, no overflow. */
static bool number(const char *s, const char *e, uint64_t *v)
{
	uint64_t x = 0;

	if (s == e || (*s == '0' && e - s > 1))
		return false;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9' || x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	return true;
}

/* Does [s, e) name this? */
static bool is(const char *s, const char *e, const char *name)
{
	return name && strlen(name) == (size_t)(e - s) && !memcmp(s, name, (size_t)(e - s));
}

static int phase_line(struct phase_parser *p, const char *s, const char *end, char *err,
		      size_t errlen)
{
	const char *sp = memchr(s, ' ', (size_t)(end - s));
	struct bench_record *r = p->r;
	uint64_t us;
	int k;

	if (!sp)
		return fail(p, err, errlen, "expected 'phase NAME US'");
	for (k = 0; k < BP_COUNT && !is(s, sp, wire_names[k]); k++)
		;
	if (k == BP_COUNT)
		return fail(p, err, errlen, "unknown phase '%.*s'", (int)(sp - s), s);
	if (!number(sp + 1, end, &us))
		return fail(p, err, errlen, "phase %s: '%.*s' is not a time in microseconds",
			    wire_names[k], (int)(end - sp - 1), sp + 1);
	if (p->skip & (1u << k))
		return 0;
	if (r->phase_us[k] != BENCH_NONE)
		return fail(p, err, errlen, "phase %s given twice", wire_names[k]);
	if (us < p->base_us)
		return fail(p, err, errlen, "phase %s at %llu us, before the launch (%llu us)",
			    wire_names[k], (unsigned long long)us, (unsigned long long)p->base_us);
	/* One kind per run: a restore's phase beside a boot's one. */
	for (int o = BP_VM_CREATED; k != BP_PROCESS && o <= BP_FIRST_RESPONSE; o++)
		if (r->phase_us[o] != BENCH_NONE && phase_is_restore(o) != phase_is_restore(k))
			return fail(p, err, errlen,
				    "phase %s in a run that has %s: a boot's and a "
				    "restore's phases together",
				    wire_names[k], wire_names[o]);
	r->phase_us[k] = us - p->base_us;
	return 0;
}

static int exits_line(struct phase_parser *p, const char *s, const char *end, char *err,
		      size_t errlen)
{
	uint64_t v[BE_COUNT];

	if (p->exits_seen)
		return fail(p, err, errlen, "a second exits line");
	for (int e = 0; e < BE_COUNT; e++)
		v[e] = BENCH_NONE;
	while (s < end) {
		const char *w = memchr(s, ' ', (size_t)(end - s)), *eq;
		int e;

		w = w ? w : end;
		eq = memchr(s, '=', (size_t)(w - s));
		if (!eq)
			return fail(p, err, errlen, "exits: '%.*s' is not NAME=N", (int)(w - s), s);
		for (e = 0; e < BE_COUNT && !is(s, eq, bench_exit_name(e)); e++)
			;
		if (e == BE_COUNT)
			return fail(p, err, errlen, "exits: unknown counter '%.*s'", (int)(eq - s),
				    s);
		if (v[e] != BENCH_NONE)
			return fail(p, err, errlen, "exits: %s given twice", bench_exit_name(e));
		if (!number(eq + 1, w, &v[e]) || v[e] == BENCH_NONE)
			return fail(p, err, errlen, "exits: %s: '%.*s' is not a count",
				    bench_exit_name(e), (int)(w - eq - 1), eq + 1);
		s = w == end ? end : w + 1;
		if (w != end && s == end)
			return fail(p, err, errlen, "exits: a space at the end of the line");
	}
	memcpy(p->r->exits, v, sizeof(v));
	p->exits_seen = true;
	return 0;
}

static int one_line(struct phase_parser *p, const char *s, size_t n, char *err, size_t errlen)
{
	const char *end = s + n;

	p->line++;
	if (memchr(s, '\0', n))
		return fail(p, err, errlen, "a NUL byte");
	if (n > 6 && !memcmp(s, "phase ", 6))
		return phase_line(p, s + 6, end, err, errlen);
	if (n > 6 && !memcmp(s, "exits ", 6))
		return exits_line(p, s + 6, end, err, errlen);
	return fail(p, err, errlen, "'%.*s' is neither a phase nor an exits line",
		    (int)(n > 40 ? 40 : n), s);
}

int phase_feed(struct phase_parser *p, const char *buf, size_t n, char *err, size_t errlen)
{
	if (p->failed)
		return fail(p, err, errlen, "the input was refused already");
	while (n) {
		const char *nl = memchr(buf, '\n', n);
		size_t take = nl ? (size_t)(nl - buf) : n;
		int r;

		if (p->plen + take >= PHASE_LINE_MAX) {
			p->line++;
			return fail(p, err, errlen, "longer than %d bytes", PHASE_LINE_MAX - 1);
		}
		memcpy(p->part + p->plen, buf, take);
		p->plen += take;
		if (!nl)
			break;
		if ((r = one_line(p, p->part, p->plen, err, errlen)) < 0)
			return r;
		p->plen = 0;
		buf += take + 1;
		n -= take + 1;
	}
	return 0;
}

int phase_finish(struct phase_parser *p, char *err, size_t errlen)
{
	const uint64_t *t = p->r->phase_us;

	if (p->failed)
		return fail(p, err, errlen, "the input was refused already");
	if (p->plen) {
		p->line++;
		return fail(p, err, errlen, "'%.*s' ends without a newline", (int)p->plen, p->part);
	}
	for (int k = 0; k < BP_COUNT; k++) {
		enum bench_phase a = after[k];

		if (t[k] == BENCH_NONE)
			continue;
		/* The nearest earlier phase the run reached. */
		while (a != BP_COUNT && t[a] == BENCH_NONE)
			a = after[a];
		if (a != BP_COUNT && t[k] < t[a]) {
			p->failed = true;
			snprintf(err, errlen, "phase %s (%llu us) before %s (%llu us)",
				 wire_names[k], (unsigned long long)t[k], wire_names[a],
				 (unsigned long long)t[a]);
			return -EINVAL;
		}
	}
	return 0;
}

int phase_parse(const char *buf, size_t n, uint64_t base_us, struct bench_record *r, char *err,
		size_t errlen)
{
	struct phase_parser p;
	int ret;

	phase_parser_init(&p, r, base_us);
	if ((ret = phase_feed(&p, buf, n, err, errlen)) < 0)
		return ret;
	return phase_finish(&p, err, errlen);
}
