/* prom: Prometheus' text exposition format. See prom.h. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/prom.h"

/* One set of label values and what was counted under it. */
struct series {
	char **values;	   /* the family's nlabels strings */
	double value;	   /* a counter's or gauge's */
	double sum;	   /* a histogram's: the sum of what it observed, and */
	uint64_t counts[]; /* per bucket, not cumulative: nbounds + 1, the
			    * last for what is above every bound */
};

struct prom_family {
	enum prom_type type;
	char *name, *help;
	char *labels[PROM_MAX_LABELS];
	size_t nlabels;
	double bounds[PROM_MAX_BOUNDS];
	size_t nbounds;
	pthread_mutex_t lock;	/* the series and everything in them */
	struct series **series; /* sorted by values */
	size_t nseries, cap;
	struct prom_family *next;
};

struct prom_registry {
	pthread_mutex_t lock; /* the list of families */
	struct prom_family *first, *last;
};

static const char *const type_names[] = {"counter", "gauge", "histogram"};

int prom_registry_create(struct prom_registry **out)
{
	struct prom_registry *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;
}

static void series_free(struct series *s, size_t nlabels)
{
	if (!s)
		return;
	for (size_t i = 0; s->values && i < nlabels; i++)
		free(s->values[i]);
	free(s->values);
	free(s);
}

static void family_free(struct prom_family *f)
{
	for (size_t i = 0; i < f->nseries; i++)
		series_free(f->series[i], f->nlabels);
	free(f->series);
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void prom_registry_destroy(struct prom_registry *r)
{
	if (!r)
		return;
	for (struct prom_family *f = r->first, *next; f; f = next) {
		next = f->next;
		family_free(f);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* (metric) or [a-zA-Z_][a-zA-Z0-9_]* (label), of
 * at most PROM_MAX_NAME bytes. */
static bool valid_name(const char *s, bool colon)
{
	size_t n = strlen(s);

	if (n == 0 || n > PROM_MAX_NAME || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '_' && !(colon && s[i] == ':'))
			return false;
	return true;
}

/* The names a family of type and name takes in the text: its own (the
 * HELP and TYPE lines') and its samples'. Returns how many. */
static size_t names_of(enum prom_type type, const char *name, char out[4][PROM_MAX_NAME + 8])
{
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};

	snprintf(out[0], sizeof(out[0]), "%s", name);
	if (type != PROM_HISTOGRAM)
		return 1;
	for (size_t i = 0; i < 3; i++)
		snprintf(out[i + 1], sizeof(out[i + 1]), "%s%s", name, suffixes[i]);
	return 4;
}

/* Whether a family of type and name would share a name with f. */
static bool clashes(const struct prom_family *f, enum prom_type type, const char *name)
{
	char a[4][PROM_MAX_NAME + 8], b[4][PROM_MAX_NAME + 8];
	size_t na = names_of(type, name, a), nb = names_of(f->type, f->name, b);

	for (size_t i = 0; i < na; i++)
		for (size_t k = 0; k < nb; k++)
			if (!strcmp(a[i], b[k]))
				return true;
	return false;
}

static int check_family(enum prom_type type, const char *name, const char *help,
			const char *const *labels, const double *bounds, size_t n)
{
	size_t nlabels = 0;

	if ((unsigned)type > PROM_HISTOGRAM || !name || !valid_name(name, true) || !help)
		return -EINVAL;
	for (; labels && labels[nlabels]; nlabels++) {
		const char *l = labels[nlabels];

		if (nlabels == PROM_MAX_LABELS || !valid_name(l, false) || !strncmp(l, "__", 2) ||
		    (type == PROM_HISTOGRAM && !strcmp(l, "le")))
			return -EINVAL;
		for (size_t i = 0; i < nlabels; i++)
			if (!strcmp(labels[i], l))
				return -EINVAL;
	}
	if (type != PROM_HISTOGRAM)
		return bounds || n ? -EINVAL : 0;
	if (!bounds || n == 0 || n > PROM_MAX_BOUNDS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
			return -EINVAL;
	return 0;
}

static struct series *series_new(const struct prom_family *f, const char *const *values)
{
	size_t counts = f->type == PROM_HISTOGRAM ? f->nbounds + 1 : 0;
	struct series *s = calloc(1, sizeof(*s) + counts * sizeof(s->counts[0]));

	if (!s)
		return NULL;
	if (f->nlabels && !(s->values = calloc(f->nlabels, sizeof(*s->values))))
		goto err;
	for (size_t i = 0; i < f->nlabels; i++)
		if (!(s->values[i] = strdup(values[i])))
			goto err;
	return s;
err:
	series_free(s, f->nlabels);
	return NULL;
}

int prom_family_add(struct prom_registry *r, enum prom_type type, const char *name,
		    const char *help, const char *const *labels, const double *bounds, size_t n,
		    struct prom_family **out)
{
	struct prom_family *f;
	int ret;

	*out = NULL;
	if ((ret = check_family(type, name, help, labels, bounds, n)) < 0)
		return ret;
	if (!(f = calloc(1, sizeof(*f))))
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	f->type = type;
	if (!(f->name = strdup(name)) || !(f->help = strdup(help)))
		goto oom;
	for (; labels && labels[f->nlabels]; f->nlabels++)
		if (!(f->labels[f->nlabels] = strdup(labels[f->nlabels])))
			goto oom;
	if (n)
		memcpy(f->bounds, bounds, n * sizeof(*bounds));
	f->nbounds = n;
	/* Without labels, the one series is there from the start. */
	if (f->nlabels == 0) {
		if (!(f->series = calloc(1, sizeof(*f->series))) ||
		    !(f->series[0] = series_new(f, NULL)))
			goto oom;
		f->nseries = f->cap = 1;
	}

	pthread_mutex_lock(&r->lock);
	for (struct prom_family *g = r->first; g; g = g->next)
		if (clashes(g, type, name)) {
			pthread_mutex_unlock(&r->lock);
			family_free(f);
			return -EEXIST;
		}
	if (r->last)
		r->last->next = f;
	else
		r->first = f;
	r->last = f;
	pthread_mutex_unlock(&r->lock);
	*out = f;
	return 0;
oom:
	family_free(f);
	return -ENOMEM;
}

static int cmp_values(char *const *a, const char *const *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int c = strcmp(a[i], b[i]);
		if (c)
			return c;
	}
	return 0;
}

/* The index of values' series in f, or where it would go (*found false).
 * f's lock held. */
static size_t find(const struct prom_family *f, const char *const *values, bool *found)
{
	size_t lo = 0, hi = f->nseries;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_values(f->series[mid]->values, values, f->nlabels);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int check_values(const struct prom_family *f, const char *const *values)
{
	if (f->nlabels && !values)
		return -EINVAL;
	for (size_t i = 0; i < f->nlabels; i++)
		if (!values[i])
			return -EINVAL;
	return 0;
}

/* The series of values in f, made if new; NULL when out of memory. f's
 * lock held. */
static struct series *get(struct prom_family *f, const char *const *values)
{
	bool found;
	size_t at = find(f, values, &found);
	struct series *s;

	if (found)
		return f->series[at];
	if (f->nseries == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 8;
		struct series **v = realloc(f->series, cap * sizeof(*v));

		if (!v)
			return NULL;
		f->series = v;
		f->cap = cap;
	}
	if (!(s = series_new(f, values)))
		return NULL;
	memmove(f->series + at + 1, f->series + at, (f->nseries - at) * sizeof(*f->series));
	f->series[at] = s;
	f->nseries++;
	return s;
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static int update(struct prom_family *f, const char *const *values, enum op op, double v)
{
	struct series *s;
	int r;

	if ((r = check_values(f, values)) < 0)
		return r;
	pthread_mutex_lock(&f->lock);
	if (!(s = get(f, values))) {
		pthread_mutex_unlock(&f->lock);
		return -ENOMEM;
	}
	switch (op) {
	case OP_ADD:
		s->value += v;
		break;
	case OP_SET:
		s->value = v;
		break;
	case OP_OBSERVE: {
		/* The first bound >= v: a value on a bound is in its bucket. */
		size_t lo = 0, hi = f->nbounds;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (f->bounds[mid] >= v)
				hi = mid;
			else
				lo = mid + 1;
		}
		s->counts[lo]++;
		s->sum += v;
		break;
	}
	}
	pthread_mutex_unlock(&f->lock);
	return 0;
}

int prom_counter_add(struct prom_family *f, const char *const *values, double v)
{
	if (f->type != PROM_COUNTER || !(v >= 0) || isinf(v))
		return -EINVAL;
	return update(f, values, OP_ADD, v);
}

int prom_gauge_set(struct prom_family *f, const char *const *values, double v)
{
	if (f->type != PROM_GAUGE)
		return -EINVAL;
	return update(f, values, OP_SET, v);
}

int prom_gauge_add(struct prom_family *f, const char *const *values, double v)
{
	if (f->type != PROM_GAUGE)
		return -EINVAL;
	return update(f, values, OP_ADD, v);
}

int prom_histogram_observe(struct prom_family *f, const char *const *values, double v)
{
	if (f->type != PROM_HISTOGRAM || isnan(v))
		return -EINVAL;
	return update(f, values, OP_OBSERVE, v);
}

int prom_series_remove(struct prom_family *f, const char *const *values)
{
	bool found;
	size_t at;
	int r;

	if (f->nlabels == 0 || (r = check_values(f, values)) < 0)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	at = find(f, values, &found);
	if (found) {
		series_free(f->series[at], f->nlabels);
		f->nseries--;
		memmove(f->series + at, f->series + at + 1, (f->nseries - at) * sizeof(*f->series));
	}
	pthread_mutex_unlock(&f->lock);
	return found ? 0 : -ENOENT;
}

void prom_format_value(double v, char *buf)
{
	char e[PROM_VALUE_MAX];
	int p, x;

	if (isnan(v)) {
		strcpy(buf, "NaN");
		return;
	}
	if (isinf(v)) {
		strcpy(buf, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) { /* -0 too, as the Go client writes it */
		strcpy(buf, "0");
		return;
	}
	/* The fewest significant digits that read back as v (17 always do). */
	for (p = 1;; p++) {
		snprintf(e, sizeof(e), "%.*e", p - 1, v);
		if (p == 17 || strtod(e, NULL) == v)
			break;
	}
	/* Go's shortest 'g': the exponent form when the decimal exponent is
	 * below -4 or 6 and more, else as many decimals as the digits need. */
	x = atoi(strchr(e, 'e') + 1);
	if (x < -4 || x >= 6)
		snprintf(buf, PROM_VALUE_MAX, "%s", e);
	else
		snprintf(buf, PROM_VALUE_MAX, "%.*f", p - 1 - x > 0 ? p - 1 - x : 0, v);
}

/* s with backslash and line feed escaped, and double quote too in a label
 * value (quote). */
static void put_escaped(FILE *out, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else if (quote && *s == '"')
			fputs("\\\"", out);
		else
			fputc(*s, out);
	}
}

/* name, suffix, the labels of s and le (when not NULL), and v: one
 * sample line. */
static void put_sample(FILE *out, const struct prom_family *f, const char *suffix,
		       const struct series *s, const char *le, double v)
{
	char num[PROM_VALUE_MAX];

	fprintf(out, "%s%s", f->name, suffix);
	if (f->nlabels || le) {
		fputc('{', out);
		for (size_t i = 0; i < f->nlabels; i++) {
			fprintf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
			put_escaped(out, s->values[i], true);
			fputc('"', out);
		}
		if (le)
			fprintf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
		fputc('}', out);
	}
	prom_format_value(v, num);
	fprintf(out, " %s\n", num);
}

static void put_family(FILE *out, struct prom_family *f)
{
	fprintf(out, "# HELP %s ", f->name);
	put_escaped(out, f->help, false);
	fprintf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->nseries; i++) {
		const struct series *s = f->series[i];
		char le[PROM_VALUE_MAX];
		uint64_t total = 0;

		if (f->type != PROM_HISTOGRAM) {
			put_sample(out, f, "", s, NULL, s->value);
			continue;
		}
		for (size_t b = 0; b < f->nbounds; b++) {
			total += s->counts[b];
			prom_format_value(f->bounds[b], le);
			put_sample(out, f, "_bucket", s, le, (double)total);
		}
		total += s->counts[f->nbounds];
		put_sample(out, f, "_bucket", s, "+Inf", (double)total);
		put_sample(out, f, "_sum", s, NULL, s->sum);
		put_sample(out, f, "_count", s, NULL, (double)total);
	}
	pthread_mutex_unlock(&f->lock);
}

int prom_render(struct prom_registry *r, char **out, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	bool failed;

	*out = NULL;
	*len = 0;
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&r->lock);
	for (struct prom_family *fam = r->first; fam; fam = fam->next)
		put_family(f, fam);
	pthread_mutex_unlock(&r->lock);
	failed = ferror(f);
	if (fclose(f) || failed) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = size;
	return 0;
}
